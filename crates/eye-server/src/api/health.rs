//! `GET /healthz` (the process answers) and `GET /readyz` (it can take and serve events).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process answers", body = Health)),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /healthz`: the process answers.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// `GET /readyz`: the process can take and serve events.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: &'static str,
    /// Events queued and not yet stored.
    pub queue_depth: u64,
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready: the store answers and the queue has room", body = Ready),
        (status = 503, description = "Not ready", body = ErrorBody),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
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
    Ok(Json(Ready {
        status: "ready",
        queue_depth: depth,
    }))
}

/// `GET /metrics`: the Prometheus (OpenMetrics) text exposition.
pub async fn render_metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.scrape(state.queue.as_ref()).await;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// What every process answers, a worker process included: health and metrics.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
}
