//! The error store over HTTP: list and count what was refused, look at one error,
//! dismiss it, or reprocess the open ones after a fix.
//!
//! `GET /errors`, `GET /errors/summary`, `GET /errors/{id}`: read scope.
//! `POST /errors/reprocess`, `POST /errors/{id}/dismiss`: admin scope.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use eye_core::Timestamp;
use eye_store::{HourlyRefusedCount, RefusedCount, RefusedEvent, RefusedQuery};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::{Admin, Auth, Read};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::query::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::http::query::{Params, REFUSED_FILTER, refused_filter, refused_key};
use crate::service::refused::{self, ReprocessError};
use crate::state::AppState;

/// The filter parameters as the OpenAPI document lists them, for every error endpoint
/// that takes a filter. `status` is declared by each endpoint: reprocessing takes only
/// open errors.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct FilterParams {
    /// A reason code
    reason: Option<String>,
    category: Option<String>,
    name: Option<String>,
    /// Application name or id
    app: Option<String>,
    /// RFC 3339, inclusive, on the time received
    from: Option<String>,
    /// RFC 3339, exclusive
    to: Option<String>,
}

/// Default window of `/errors/summary` when `from` is not given.
const SUMMARY_WINDOW_MICROS: i64 = 24 * 3_600_000_000;

#[utoipa::path(
    get,
    path = "/errors",
    tag = "errors",
    description = "Error records, newest first.",
    params(
        FilterParams,
        ("status" = Option<String>, Query, description = "`open`, `reprocessed`, `dismissed` or `warning`"),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100"),
        ("cursor" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of errors", body = ErrorsPage),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
    )
)]
pub async fn list_errors(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    RawQuery(query): RawQuery,
) -> Result<Json<ErrorsPage>, ApiError> {
    let mut allowed = REFUSED_FILTER.to_vec();
    allowed.extend(["limit", "cursor"]);
    let params = Params::parse(query.as_deref(), &allowed)?;
    let error_query = RefusedQuery {
        filter: refused_filter(&params)?,
        limit: params.limit(DEFAULT_LIMIT, MAX_LIMIT)?,
        before_id: params.cursor()?.map(|c| c.pk),
    };
    let page = state.store.refused_events(error_query).await?;
    Ok(Json(ErrorsPage {
        errors: page.items,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// A page of `GET /errors`, newest first.
#[derive(Serialize, ToSchema)]
pub struct ErrorsPage {
    pub errors: Vec<RefusedEvent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/errors/{id}",
    tag = "errors",
    params(("id" = String, Path, description = "The `error_id` of an ingest verdict (a UUID), or the record's number")),
    responses(
        (status = 200, description = "The error", body = eye_store::RefusedEvent),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 404, description = "No such error", body = ErrorBody),
    )
)]
pub async fn get_error(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    Path(id): Path<String>,
) -> Result<Json<RefusedEvent>, ApiError> {
    let record = state
        .store
        .refused_event(refused_key(&id)?)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "error_not_found",
                format!("no error {id:?}"),
            )
        })?;
    Ok(Json(record))
}

#[utoipa::path(
    get,
    path = "/errors/summary",
    tag = "errors",
    description = "Error counts by reason and event type, overall and per hour. The range defaults to the 24 hours before `to` (default now).",
    params(
        FilterParams,
        ("status" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "The counts", body = ErrorSummaryAnswer),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
    )
)]
pub async fn error_summary(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    RawQuery(query): RawQuery,
) -> Result<Json<ErrorSummaryAnswer>, ApiError> {
    let params = Params::parse(query.as_deref(), &REFUSED_FILTER)?;
    let mut filter = refused_filter(&params)?;
    let to = filter.to.unwrap_or_else(Timestamp::now);
    let from = filter
        .from
        .unwrap_or_else(|| Timestamp::from_micros(to.as_micros() - SUMMARY_WINDOW_MICROS));
    if from >= to {
        return Err(ApiError::bad_parameter(
            "from",
            "`from` must be earlier than `to` (which defaults to now)",
        ));
    }
    (filter.from, filter.to) = (Some(from), Some(to));
    let summary = state.store.refused_summary(filter).await?;
    Ok(Json(ErrorSummaryAnswer {
        from,
        to,
        total: summary.total,
        by_reason_and_type: summary.by_reason_and_type,
        hourly: summary.hourly,
    }))
}

/// `GET /errors/summary`: counts over `[from, to)`.
#[derive(Serialize, ToSchema)]
pub struct ErrorSummaryAnswer {
    pub from: Timestamp,
    pub to: Timestamp,
    pub total: i64,
    pub by_reason_and_type: Vec<RefusedCount>,
    pub hourly: Vec<HourlyRefusedCount>,
}

#[utoipa::path(
    post,
    path = "/errors/{id}/dismiss",
    tag = "errors",
    params(("id" = String, Path, description = "The `error_id` (UUID) or the record's number")),
    responses(
        (status = 200, description = "The error, now dismissed", body = eye_store::RefusedEvent),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 404, description = "No such error", body = ErrorBody),
        (status = 409, description = "The error was reprocessed into an event (`invalid_state`)", body = ErrorBody),
    )
)]
pub async fn dismiss_error(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
) -> Result<Json<RefusedEvent>, ApiError> {
    let record =
        refused::dismiss(state.store.as_ref(), &auth.actor(), refused_key(&id)?, &id).await?;
    Ok(Json(record))
}

/// Rechecks every open error matching the filter against the current schemas: those
/// valid now are stored (with their original id and reception time) and marked
/// `reprocessed` in the same transaction; the others stay open with their new reason.
#[utoipa::path(
    post,
    path = "/errors/reprocess",
    tag = "errors",
    description = "Rechecks the open errors matching the filters against the current schemas; those valid now become events exactly once (same id, original reception time).",
    params(
        FilterParams,
    ),
    responses(
        (status = 200, description = "What was done", body = ReprocessAnswer),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
    )
)]
pub async fn reprocess_errors(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    RawQuery(query): RawQuery,
) -> Result<Json<ReprocessAnswer>, ApiError> {
    let allowed: Vec<&str> = REFUSED_FILTER
        .into_iter()
        .filter(|p| *p != "status")
        .collect();
    let params = Params::parse(query.as_deref(), &allowed)?;
    let filter = refused_filter(&params)?;
    let described = format!("errors:{}", query.as_deref().unwrap_or("all open"));
    let total = refused::reprocess(
        state.store.as_ref(),
        &state.checker,
        &state.metrics.pipeline,
        &auth.actor(),
        filter,
        &described,
    )
    .await?;
    Ok(Json(ReprocessAnswer {
        reprocessed: total.reprocessed,
        still_invalid: total.still_invalid,
    }))
}

/// `POST /errors/reprocess`: what was done.
#[derive(Serialize, ToSchema)]
pub struct ReprocessAnswer {
    /// Errors that became events.
    pub reprocessed: u64,
    /// Errors still invalid, left open with their new reason.
    pub still_invalid: u64,
}

impl From<ReprocessError> for ApiError {
    fn from(error: ReprocessError) -> Self {
        match error {
            ReprocessError::Registry(cause) => ApiError::internal(format!("{cause:#}")),
            ReprocessError::Store(error) => error.into(),
        }
    }
}
