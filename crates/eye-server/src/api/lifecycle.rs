//! Retention and erasure over HTTP (admin tokens): an application's own retention,
//! a retention run now, erasing a session at once (`DELETE /sessions/{id}`) and
//! erasure jobs for any filter of `GET /events` (`POST /erasures`, `GET
//! /erasures/{id}`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eye_core::retention::Retention;
use eye_store::{Erasure, ErasureFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::auth::{Admin, Auth};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::query::{Params, event_query};
use crate::service::lifecycle::{self, Expired, LifecycleError};
use crate::state::AppState;

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        let message = error.to_string();
        match error {
            LifecycleError::UnknownApp(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "app_not_found", message)
            }
            LifecycleError::NoFilter => ApiError::bad_request("no_filter", message),
            LifecycleError::UnknownErasure(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "erasure_not_found", message)
            }
            LifecycleError::Store(error) => error.into(),
        }
    }
}

/// The body of `PUT /apps/{name}/retention`, and its answer.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRetention {
    /// `30d`, `12h`, `forever`...; `null`: the global retention applies.
    #[schema(value_type = Option<String>, example = "30d")]
    pub retention: Option<Retention>,
}

#[utoipa::path(put, path = "/apps/{name}/retention", tag = "management",
    params(("name" = String, Path, description = "The application's name")),
    request_body = AppRetention,
    responses(
        (status = 200, description = "Its retention now; the next retention run applies it", body = AppRetention),
        (status = 400, description = "Not a valid body or retention", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
    ))]
pub async fn set_app_retention(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<AppRetention>, ApiError> {
    let request: AppRetention = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("the body must be {{\"retention\": \"30d\" | \"forever\" | null}}: {e}"),
        )
    })?;
    lifecycle::set_app_retention(
        state.store.as_ref(),
        &auth.actor(),
        &name,
        request.retention,
    )
    .await?;
    Ok(Json(request))
}

#[utoipa::path(post, path = "/retention/run", tag = "management",
    description = "Deletes now what is past its retention (the background runs do it every `retention_check_seconds`).",
    responses(
        (status = 200, description = "What was deleted", body = Expired),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
    ))]
pub async fn run_retention(
    State(state): State<AppState>,
    auth: Auth<Admin>,
) -> Result<Json<Expired>, ApiError> {
    let policy = state.settings.retention_policy();
    let expired = lifecycle::expire_now(
        state.store.as_ref(),
        policy,
        Some(&auth.actor()),
        Some(&state.metrics.pipeline),
    )
    .await?;
    Ok(Json(expired))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "erasure",
    description = "Erases a session: its events (of every application, or of `app`), its refused events, the session itself. Events of it accepted before this answer but still queued are dropped when they reach the store. Repeating it removes nothing more.",
    params(
        ("id" = String, Path, description = "The session id"),
        ("app" = Option<String>, Query, description = "Only this application's events (name or id)"),
    ),
    responses(
        (status = 200, description = "Done: what was removed", body = Erasure),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such application (`app_not_found`)", body = ErrorBody),
    ))]
pub async fn erase_session(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(session_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Erasure>, ApiError> {
    let params = Params::parse(query.as_deref(), &["app"])?;
    let app = params.text("app");
    let erasure = lifecycle::erase_session(
        state.store.as_ref(),
        &auth.actor(),
        &session_id,
        app.as_deref(),
    )
    .await?;
    Ok(Json(erasure))
}

/// The parameters of `POST /erasures`: those of `GET /events` that choose events.
const ERASURE_FILTERS: [&str; 7] = [
    "session_id",
    "app",
    "category",
    "name",
    "from",
    "to",
    "data.*",
];

#[utoipa::path(post, path = "/erasures", tag = "erasure",
    description = "Starts erasing every event (and refused event) that the filters select, as `GET /events` would, received up to this answer. From the answer on, queued events it covers are dropped when they reach the store; the deletes go on in the background, and resume after a restart. At least one filter is needed; `app` alone purges an application's data.",
    params(
        ("session_id" = Option<String>, Query),
        ("app" = Option<String>, Query, description = "Application name or id"),
        ("category" = Option<String>, Query),
        ("name" = Option<String>, Query),
        ("from" = Option<String>, Query, description = "Event time, RFC 3339, inclusive (refused events: their reception time)"),
        ("to" = Option<String>, Query, description = "Event time, RFC 3339, exclusive"),
    ),
    responses(
        (status = 202, description = "Started; follow it at `Location`", body = Erasure),
        (status = 400, description = "No filter, or a bad one", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such application (`app_not_found`)", body = ErrorBody),
    ))]
pub async fn start_erasure(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &ERASURE_FILTERS)?;
    let selected = event_query(&params, 1)?;
    let app_id = match &selected.app {
        Some(app) => Some(lifecycle::app_id(state.store.as_ref(), app).await?),
        None => None,
    };
    let filter = ErasureFilter {
        session_id: selected.session_id,
        app_id,
        category: selected.category,
        name: selected.name,
        from: selected.from,
        to: selected.to,
        data: selected
            .data
            .into_iter()
            .map(|filter| (filter.path, filter.value))
            .collect(),
    };
    let erasure = lifecycle::start_erasure(state.store.as_ref(), &auth.actor(), filter).await?;
    // The deletes start now; the background loop resumes them after a restart.
    let store = state.store.clone();
    let id = erasure.id;
    tokio::spawn(async move {
        if let Err(error) = lifecycle::finish_erasure(store.as_ref(), id).await {
            tracing::error!(%error, erasure = id, "erasure failed; the background loop retries it");
        }
    });
    let mut response = (StatusCode::ACCEPTED, Json(erasure)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/erasures/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/erasures/{id}", tag = "erasure",
    params(("id" = i64, Path, description = "The erasure's id, from `POST /erasures`")),
    responses(
        (status = 200, description = "Its status and what it has removed so far", body = Erasure),
        (status = 400, description = "Not an erasure id", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such erasure", body = ErrorBody),
    ))]
pub async fn get_erasure(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    Path(id): Path<String>,
) -> Result<Json<Erasure>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_parameter("id", "an erasure id is a whole number"))?;
    let erasure = state
        .store
        .erasure(id)
        .await?
        .ok_or(LifecycleError::UnknownErasure(id))?;
    Ok(Json(erasure))
}
