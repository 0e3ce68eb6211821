//! `GET /events`: stored events, filtered, in time order, one keyset page at a time.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use eye_core::auth::Scope;
use eye_store::{EventQuery, Order};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::routes::params::Params;
use crate::startup::AppState;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1_000;

const PARAMETERS: [&str; 8] = [
    "session_id",
    "category",
    "name",
    "from",
    "to",
    "limit",
    "cursor",
    "order",
];

pub async fn list_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.auth.require(&headers, Scope::Read).await?;
    let params = Params::parse(query.as_deref(), &PARAMETERS)?;
    let event_query = event_query(&params, DEFAULT_LIMIT)?;
    let page = state.store.events(event_query).await?;
    Ok(Json(json!({
        "events": page.items,
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}

/// The filters shared by `/events` and `/sessions/{id}`.
pub fn event_query(params: &Params, default_limit: u32) -> Result<EventQuery, ApiError> {
    let session_id = params.text("session_id");
    let from = params.time("from")?;
    let to = params.time("to")?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad_parameter("from", "`from` is later than `to`"));
    }
    // A session's timeline reads naturally oldest first; anything else newest first.
    let order = match params.text("order").as_deref() {
        None if session_id.is_some() => Order::Asc,
        None => Order::Desc,
        Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "order",
                "`order` must be `asc` or `desc`",
            ));
        }
    };
    Ok(EventQuery {
        session_id,
        category: params.text("category"),
        name: params.text("name"),
        from,
        to,
        order,
        limit: params.limit(default_limit, MAX_LIMIT)?,
        after: params.cursor()?,
    })
}
