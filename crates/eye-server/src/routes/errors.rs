//! `GET /errors`: everything refused, newest first, with the reason and the raw event.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use eye_core::auth::Scope;
use eye_store::ErrorQuery;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::routes::events::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::routes::params::Params;
use crate::startup::AppState;

pub async fn list_errors(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    state.auth.require(&headers, Scope::Read).await?;
    let params = Params::parse(query.as_deref(), &["reason", "limit", "cursor"])?;
    let error_query = ErrorQuery {
        reason: params.text("reason"),
        limit: params.limit(DEFAULT_LIMIT, MAX_LIMIT)?,
        before_id: params.cursor()?.map(|c| c.pk),
    };
    let page = state.store.errors(error_query).await?;
    Ok(Json(json!({
        "errors": page.items,
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}
