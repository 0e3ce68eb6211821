//! The JSON API: one module per resource, each handler parsing its request, calling
//! the store (reads) or the service layer (changes), and answering a typed body that
//! the OpenAPI document (`openapi`) is generated from.

pub mod apps;
pub mod auth;
pub mod event_types;
pub mod events;
pub mod health;
pub mod ingest;
pub mod lifecycle;
pub mod openapi;
pub mod refused;
pub mod sdk;
pub mod segment;
pub mod sessions;
pub mod stats;

use axum::Router;
use axum::routing::{get, post, put};

use crate::state::AppState;

/// Every route of the JSON API, the health and metrics endpoints and the browser SDK.
pub fn routes() -> Router<AppState> {
    // Browsers send events cross-origin: the ingest handlers and their preflight
    // answer CORS themselves (`ingest::preflight`, `http::cors::answer_ingest`).
    Router::new()
        .route(
            "/events",
            post(ingest::ingest_events)
                .get(events::list_events)
                .options(ingest::preflight),
        )
        .route(
            "/events/",
            post(ingest::ingest_events)
                .get(events::list_events)
                .options(ingest::preflight),
        )
        .route("/sessions", get(sessions::list_sessions))
        .route(
            "/sessions/{id}",
            get(sessions::get_session).delete(lifecycle::erase_session),
        )
        .route("/stats", get(stats::get_stats))
        .route("/errors", get(refused::list_errors))
        .route("/errors/summary", get(refused::error_summary))
        .route("/errors/reprocess", post(refused::reprocess_errors))
        .route("/errors/{id}", get(refused::get_error))
        .route("/errors/{id}/dismiss", post(refused::dismiss_error))
        .route("/event-types", get(event_types::list_types))
        .route("/event-types/{category}/{name}", get(event_types::get_type))
        .route(
            "/event-types/{category}/{name}/schema",
            get(event_types::get_schema)
                .put(event_types::put_schema)
                .delete(event_types::delete_schema),
        )
        .route(
            "/event-types/{category}/{name}/indexed",
            get(event_types::get_indexed).put(event_types::put_indexed),
        )
        .route("/apps", get(apps::list_apps).post(apps::create_app))
        .route("/apps/{name}/revoke", post(apps::revoke_app))
        .route("/apps/{name}/origins", put(apps::set_origins))
        .route("/apps/{name}/retention", put(lifecycle::set_app_retention))
        .route("/retention/run", post(lifecycle::run_retention))
        .route("/erasures", post(lifecycle::start_erasure))
        .route("/erasures/{id}", get(lifecycle::get_erasure))
        .route("/tokens", get(apps::list_tokens).post(apps::create_token))
        .route("/tokens/{id}/revoke", post(apps::revoke_token))
        .route("/audit", get(apps::audit_log))
        .route("/sdk/eye.js", get(sdk::eye_js))
        .merge(segment::routes())
        .merge(health::routes())
}
