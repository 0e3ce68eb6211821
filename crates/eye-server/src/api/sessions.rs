//! `GET /sessions`: sessions by last activity. `GET /sessions/{id}`: one session's
//! summary and its events in the order they occurred, each with the time since the
//! session's previous event.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use eye_store::{EventQuery, Order, SessionCursor, SessionQuery, SessionSummary, StoredEvent};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::{Auth, Read};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::query::Params;
use crate::http::query::{DEFAULT_LIMIT, MAX_LIMIT, event_query, with_cursor};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/sessions",
    tag = "query",
    description = "Sessions active in the range, most recently active first.",
    params(
        ("app" = Option<String>, Query, description = "Application name or id"),
        ("from" = Option<String>, Query, description = "Sessions whose last event is at or after this"),
        ("to" = Option<String>, Query, description = "Sessions whose first event is before this"),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100"),
        ("cursor" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "A page of sessions", body = SessionsPage),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
    )
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    RawQuery(query): RawQuery,
) -> Result<Json<SessionsPage>, ApiError> {
    let params = Params::parse(query.as_deref(), &["app", "from", "to", "limit", "cursor"])?;
    let (from, to) = (params.time("from")?, params.time("to")?);
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad_parameter("from", "`from` is later than `to`"));
    }
    let after = params
        .text("cursor")
        .map(|c| {
            SessionCursor::decode(&c).map_err(|e| ApiError::bad_parameter("cursor", e.to_string()))
        })
        .transpose()?;
    let session_query = SessionQuery {
        app: params.text("app"),
        from,
        to,
        limit: params.limit(DEFAULT_LIMIT, MAX_LIMIT)?,
        after,
    };
    let (sessions, next) = state.store.sessions(session_query).await?;
    Ok(Json(SessionsPage {
        sessions,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// A page of `GET /sessions`.
#[derive(Serialize, ToSchema)]
pub struct SessionsPage {
    pub sessions: Vec<SessionSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /sessions/{id}`: the session's summary, then a page of its events.
#[derive(Serialize, ToSchema)]
pub struct SessionTimeline {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub events: Vec<TimelineEvent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// An event of a session's timeline.
#[derive(Serialize, ToSchema)]
pub struct TimelineEvent {
    #[serde(flatten)]
    pub event: StoredEvent,
    /// Milliseconds since the session's previous event; `null` for its first.
    pub since_previous_ms: Option<f64>,
}

#[utoipa::path(
    get,
    path = "/sessions/{id}",
    tag = "query",
    description = "One session: its summary and its timeline, oldest first by default, each event with the time since the previous one.",
    params(
        ("id" = String, Path, description = "The session id"),
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("order" = Option<String>, Query, description = "`asc` (default) or `desc`"),
        ("limit" = Option<u32>, Query, description = "1–1000, default 1000"),
        ("cursor" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "The session", body = SessionTimeline),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 404, description = "No such session (`session_not_found`)", body = ErrorBody),
    )
)]
pub async fn get_session(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    Path(session_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<SessionTimeline>, ApiError> {
    let params = Params::parse(
        query.as_deref(),
        &["limit", "cursor", "order", "from", "to"],
    )?;
    // Session ids never hold control characters (ingest refuses them).
    let known = !session_id.chars().any(char::is_control);
    let summary = if known {
        state.store.session(&session_id).await?
    } else {
        None
    };
    let summary = summary.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            format!("no session {session_id:?}"),
        )
    })?;
    let mut query = event_query(&params, MAX_LIMIT)?;
    query.session_id = Some(session_id.clone());
    if params.text("order").is_none() {
        query.order = Order::Asc;
    }
    let query = with_cursor(&params, query)?;
    let (order, scope) = (query.order, query.scope());
    let page = state.store.events(query).await?;
    let events = with_gaps(&state, &session_id, page.items, order).await?;
    Ok(Json(SessionTimeline {
        summary,
        events,
        next_cursor: page.next.map(|c| c.encode_in(scope)),
    }))
}

/// Adds `since_previous_ms` to each event: the time since the session's previous event
/// in time order (`null` for its first). The one neighbour not on this page (before
/// the first item ascending, after the last descending) is looked up by its key.
async fn with_gaps(
    state: &AppState,
    session_id: &str,
    events: Vec<StoredEvent>,
    order: Order,
) -> Result<Vec<TimelineEvent>, ApiError> {
    let boundary = match order {
        Order::Asc => events.first(),
        Order::Desc => events.last(),
    };
    let before_boundary = match boundary {
        Some(event) => {
            let previous = state
                .store
                .events(EventQuery {
                    session_id: Some(session_id.to_owned()),
                    order: Order::Desc,
                    limit: 1,
                    after: Some(event.cursor),
                    ..EventQuery::default()
                })
                .await?;
            previous.items.first().map(|e| e.timestamp.as_micros())
        }
        None => None,
    };
    let count = events.len();
    let previous: Vec<Option<i64>> = (0..count)
        .map(|index| match order {
            Order::Asc if index == 0 => before_boundary,
            Order::Asc => Some(events[index - 1].timestamp.as_micros()),
            Order::Desc if index + 1 == count => before_boundary,
            Order::Desc => Some(events[index + 1].timestamp.as_micros()),
        })
        .collect();
    Ok(events
        .into_iter()
        .zip(previous)
        .map(|(event, previous)| TimelineEvent {
            since_previous_ms: previous
                .map(|previous| (event.timestamp.as_micros() - previous) as f64 / 1000.0),
            event,
        })
        .collect())
}
