//! `GET /healthz` (the process answers) and `GET /readyz` (it can take and serve events).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::startup::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let depth = state.queue.depth();
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
