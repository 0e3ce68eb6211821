//! `GET /sessions/{id}`: a session's summary and its events in the order they occurred.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use eye_core::auth::Scope;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::routes::events::{MAX_LIMIT, event_query};
use crate::routes::params::Params;
use crate::startup::AppState;

pub async fn get_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.auth.require(&headers, Scope::Read).await?;
    let params = Params::parse(
        query.as_deref(),
        &["limit", "cursor", "order", "from", "to"],
    )?;
    let summary = state.store.session(&session_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            format!("no session {session_id:?}"),
        )
    })?;
    let mut query = event_query(&params, MAX_LIMIT)?;
    query.session_id = Some(session_id);
    if params.text("order").is_none() {
        query.order = eye_store::Order::Asc;
    }
    let page = state.store.events(query).await?;
    let mut body = serde_json::to_value(&summary).map_err(ApiError::internal)?;
    body["events"] = json!(page.items);
    body["next_cursor"] = json!(page.next.map(|c| c.encode()));
    Ok(Json(body))
}
