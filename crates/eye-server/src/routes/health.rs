//! `GET /healthz` (the process answers) and `GET /readyz` (it can take and serve events).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::ApiError;
#[allow(unused_imports)]
use crate::openapi::*;
use crate::startup::AppState;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process answers", body = Health)),
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready: the store answers and the queue has room", body = Health),
        (status = 503, description = "Not ready", body = ErrorBody),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let depth = state.queue.depth();
    if let Err(error) = state.queue.check() {
        tracing::warn!(%error, "readiness: queue unavailable");
        return Err(ApiError::unavailable(
            "queue_unavailable",
            format!("the queue is unavailable: {error}"),
            1,
        ));
    }
    if let Err(error) = state.store.list_apps().await {
        tracing::warn!(%error, "readiness: store unavailable");
        return Err(ApiError::unavailable(
            "store_unavailable",
            "the store does not answer",
            1,
        ));
    }
    if depth >= state.settings.queue_max_depth {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            "the queue is full",
        ));
    }
    Ok(Json(json!({ "status": "ready", "queue_depth": depth })))
}
