//! The error store over HTTP: list and count what was refused, look at one error,
//! dismiss it, or reprocess the open ones after a fix.
//!
//! `GET /errors`, `GET /errors/summary`, `GET /errors/{id}`: read scope.
//! `POST /errors/reprocess`, `POST /errors/{id}/dismiss`: admin scope.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use eye_core::Timestamp;
use eye_core::auth::Scope;
use eye_core::reason::REASON_CODES;
use eye_store::{RefusedFilter, RefusedKey, RefusedQuery, RefusedStatus, ReprocessOutcome};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::management::Actor;
#[allow(unused_imports)]
use crate::openapi::*;
use crate::routes::events::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::routes::params::Params;
use crate::startup::AppState;

/// The filter parameters every error endpoint takes.
pub(crate) const FILTER: [&str; 7] = ["reason", "category", "name", "app", "status", "from", "to"];

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

/// Open errors rechecked per store transaction during a reprocess.
const REPROCESS_CHUNK: u32 = 500;

/// Default window of `/errors/summary` when `from` is not given.
const SUMMARY_WINDOW_MICROS: i64 = 24 * 3_600_000_000;

pub(crate) fn filter_from(params: &Params) -> Result<RefusedFilter, ApiError> {
    let reason = params.text("reason");
    if let Some(reason) = &reason
        && !REASON_CODES.iter().any(|(code, _)| code == reason)
    {
        return Err(ApiError::bad_parameter(
            "reason",
            format!("`reason` {reason:?} is not a reason code; see docs/guide.md"),
        ));
    }
    let status = params
        .text("status")
        .map(|s| {
            RefusedStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_parameter(
                    "status",
                    "`status` must be one of open, reprocessed, dismissed, warning",
                )
            })
        })
        .transpose()?;
    let (from, to) = (params.time("from")?, params.time("to")?);
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(ApiError::bad_parameter(
            "to",
            "`to` must be later than `from`",
        ));
    }
    Ok(RefusedFilter {
        reason,
        category: params.text("category"),
        name: params.text("name"),
        app: params.text("app"),
        status,
        from,
        to,
    })
}

pub(crate) fn error_key(id: &str) -> Result<RefusedKey, ApiError> {
    RefusedKey::parse(id).ok_or_else(|| {
        ApiError::bad_parameter(
            "id",
            "an error id is the `error_id` UUID from the ingest answer, or the record's number",
        )
    })
}

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
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.auth.require(&headers, Scope::Read).await?;
    let mut allowed = FILTER.to_vec();
    allowed.extend(["limit", "cursor"]);
    let params = Params::parse(query.as_deref(), &allowed)?;
    let error_query = RefusedQuery {
        filter: filter_from(&params)?,
        limit: params.limit(DEFAULT_LIMIT, MAX_LIMIT)?,
        before_id: params.cursor()?.map(|c| c.pk),
    };
    let page = state.store.refused_events(error_query).await?;
    Ok(Json(json!({
        "errors": page.items,
        "next_cursor": page.next.map(|c| c.encode()),
    })))
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
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.auth.require(&headers, Scope::Read).await?;
    let record = state
        .store
        .refused_event(error_key(&id)?)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "error_not_found",
                format!("no error {id:?}"),
            )
        })?;
    Ok(Json(json!(record)))
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
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.auth.require(&headers, Scope::Read).await?;
    let params = Params::parse(query.as_deref(), &FILTER)?;
    let mut filter = filter_from(&params)?;
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
    Ok(Json(json!({
        "from": from,
        "to": to,
        "total": summary.total,
        "by_reason_and_type": summary.by_reason_and_type,
        "hourly": summary.hourly,
    })))
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
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let grant = state.auth.require(&headers, Scope::Admin).await?;
    let record = dismiss(&state, &Actor::Token(grant.token_id), &id).await?;
    Ok(Json(json!(record)))
}

/// Dismisses one error (API and admin UI), audited.
pub(crate) async fn dismiss(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<eye_store::RefusedEvent, ApiError> {
    let record = state.store.dismiss_refused(error_key(id)?).await?;
    crate::management::audit(
        state.store.as_ref(),
        actor,
        "error.dismiss",
        &format!("error:{id}"),
        None,
    )
    .await;
    Ok(record)
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
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let grant = state.auth.require(&headers, Scope::Admin).await?;
    let allowed: Vec<&str> = FILTER.into_iter().filter(|p| *p != "status").collect();
    let params = Params::parse(query.as_deref(), &allowed)?;
    let filter = filter_from(&params)?;
    let described = format!("errors:{}", query.as_deref().unwrap_or("all open"));
    let total = reprocess(&state, &Actor::Token(grant.token_id), filter, &described).await?;
    Ok(Json(json!({
        "reprocessed": total.reprocessed,
        "still_invalid": total.still_invalid,
    })))
}

/// Rechecks the open errors matching `filter` (API and admin UI), audited with
/// `described` as the target.
pub(crate) async fn reprocess(
    state: &AppState,
    actor: &Actor,
    filter: RefusedFilter,
    described: &str,
) -> Result<ReprocessOutcome, ApiError> {
    // "Current" means as of this request, whatever the registry's age.
    state.checker.registry.invalidate();
    state
        .checker
        .refresh_if_stale()
        .await
        .map_err(ApiError::internal)?;
    let mut total = ReprocessOutcome::default();
    let mut after_id = 0;
    loop {
        let open = state
            .store
            .open_refusals(filter.clone(), after_id, REPROCESS_CHUNK)
            .await?;
        let Some(last) = open.last() else { break };
        after_id = last.id;
        let resolutions = open
            .into_iter()
            .map(|error| state.checker.recheck(error))
            .collect();
        let outcome = state.store.resolve_refusals(resolutions).await?;
        total.reprocessed += outcome.reprocessed;
        total.still_invalid += outcome.still_invalid;
        state
            .metrics
            .pipeline
            .events_stored
            .inc_by(outcome.reprocessed);
        state.metrics.errors_reprocessed.inc_by(outcome.reprocessed);
    }
    crate::management::audit(
        state.store.as_ref(),
        actor,
        "errors.reprocess",
        described,
        Some(format!(
            "{} reprocessed, {} still invalid",
            total.reprocessed, total.still_invalid
        )),
    )
    .await;
    Ok(total)
}
