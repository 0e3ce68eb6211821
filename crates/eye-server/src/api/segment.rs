//! The Segment HTTP tracking API, so that Segment's SDKs send to The Eye by changing
//! their host: `POST /v1/batch` (also `/v1/import`, `/v1/b`), `/v1/track` (`/v1/t`),
//! `/v1/page` (`/v1/p`), `/v1/screen` (`/v1/s`), `/v1/identify` (`/v1/i`),
//! `/v1/group` (`/v1/g`), `/v1/alias` (`/v1/a`).
//!
//! The write key is an application's ingest token, as the HTTP Basic user name (empty
//! password), as `writeKey` in the body, or as a bearer token. Each message becomes a
//! native event (`eye_core::segment`) and takes the path of `POST /events`: the same
//! checks, the same queue, the same durability, refused messages in the error store.
//! The answers are those Segment's clients expect: `200 {"success": true}` once the
//! messages are durable; 400 for a body that is not JSON or over the limits; 401 for a
//! bad key; 429 and 503 with `Retry-After`, on which the SDKs back off and retry.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use base64::Engine;
use eye_core::Timestamp;
use eye_core::auth::Scope;
use eye_core::segment::{self, Kind};
use eye_pipeline::{accept, checks};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::api::ingest;
use crate::http::cors;
use crate::http::error::ApiError;
use crate::state::AppState;

/// The routes, each path with its message type (`None`: a batch).
pub fn routes() -> axum::Router<AppState> {
    let mut router = axum::Router::new();
    let batch = ["/v1/batch", "/v1/import", "/v1/b"];
    for path in batch {
        router = router.route(path, endpoint(None));
    }
    for kind in Kind::ALL {
        let long = format!("/v1/{}", kind.as_str());
        let short = format!("/v1/{}", &kind.as_str()[..1]);
        router = router
            .route(&long, endpoint(Some(kind)))
            .route(&short, endpoint(Some(kind)));
    }
    router
}

fn endpoint(kind: Option<Kind>) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>, request: Request| async move {
            let origin = cors::origin(request.headers()).map(str::to_owned);
            let answer = async {
                receive(&state, request, kind)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            };
            cors::answer_ingest(&state.origins, origin.as_deref(), answer).await
        },
    )
    .options(ingest::preflight)
}

async fn receive(
    state: &AppState,
    request: Request,
    kind: Option<Kind>,
) -> Result<Response, ApiError> {
    let received_at = Timestamp::now().as_micros();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let settings = &state.settings;
    let limit = match kind {
        None => settings.segment_max_batch_bytes,
        Some(_) => settings.segment_max_message_bytes,
    };
    let body = read(state, body, limit, ingest::content_encoding(headers)?).await?;
    let mut body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object: a message, or {\"batch\": [messages]}",
        ));
    }
    let key = write_key(headers, &body)?;
    let grant = state.auth.require_token(&key, Scope::Ingest).await?;
    let app_id = grant
        .app_id
        .ok_or_else(|| ApiError::internal("ingest token without an application"))?;
    state.origins.check_app(app_id, headers).await?;

    let messages = match kind {
        Some(_) => vec![body],
        None => batch_messages(&mut body)?,
    };
    if messages.len() > settings.max_batch_events {
        return Err(ApiError::bad_request(
            "too_many_events",
            format!(
                "a batch may hold at most {} messages; this one holds {}",
                settings.max_batch_events,
                messages.len()
            ),
        ));
    }
    let mut texts = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let text = message.to_string();
        if text.len() > settings.segment_max_message_bytes {
            return Err(ApiError::bad_request(
                "message_too_large",
                format!(
                    "message {index} is {} bytes, more than the limit of {} (EYE_SEGMENT_MAX_MESSAGE_BYTES)",
                    text.len(),
                    settings.segment_max_message_bytes
                ),
            )
            .with_details(json!({ "index": index })));
        }
        texts.push(text);
    }
    if messages.is_empty() {
        return Ok(success());
    }
    ingest::admit(state, app_id, messages.len()).await?;
    let payload_limits = settings.payload_limits();
    let envelopes: Vec<_> = messages
        .iter()
        .zip(texts)
        .map(|(message, text)| {
            let native = segment::to_native(message, kind, received_at).and_then(|native| {
                RawValue::from_string(native)
                    .map_err(|e| eye_core::Refusal::new("invalid_event", e.to_string(), None))
            });
            match native {
                Ok(raw) => checks::accept(&raw, app_id, received_at, &payload_limits),
                Err(refusal) => {
                    let raw = RawValue::from_string(text).expect("serialized JSON is JSON");
                    accept::refused(raw, app_id, received_at, refusal)
                }
            }
        })
        .collect();
    ingest::enqueue(state, &envelopes).await?;
    // One message refused: say why, as `POST /events` does for one event (it is in the
    // error store all the same).
    if kind.is_some()
        && let eye_core::Body::Refused { refusal, .. } = &envelopes[0].body
    {
        return Err(
            ApiError::bad_request("invalid_event", refusal.message.clone()).with_details(json!({
                "reason": refusal.code,
                "field": refusal.field,
                "error_id": envelopes[0].id,
            })),
        );
    }
    Ok(success())
}

fn success() -> Response {
    (StatusCode::OK, axum::Json(json!({"success": true}))).into_response()
}

/// The body within `limit`: past it a 400, as Segment answers (its SDKs keep a 413
/// for nothing).
async fn read(
    state: &AppState,
    body: Body,
    limit: usize,
    gzip: bool,
) -> Result<bytes::Bytes, ApiError> {
    ingest::read_body_in_time(state, body, limit, gzip)
        .await
        .map_err(|error| {
            if error.status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::bad_request(
                    "body_too_large",
                    format!("the body is larger than the limit of {limit} bytes"),
                )
            } else {
                error
            }
        })
}

/// The write key: the Basic user name, a bearer token, or `writeKey` in the body.
fn write_key(headers: &HeaderMap, body: &Value) -> Result<String, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned());
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not text"))?;
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| unauthorized("the Basic credentials are not base64 of `key:`"))?;
            let user = decoded.split(':').next().unwrap_or_default();
            if !user.is_empty() {
                return Ok(user.to_owned());
            }
        } else if scheme.eq_ignore_ascii_case("bearer") && !credentials.trim().is_empty() {
            return Ok(credentials.trim().to_owned());
        }
    }
    match body.get("writeKey") {
        Some(Value::String(key)) if !key.is_empty() => Ok(key.clone()),
        _ => Err(unauthorized(
            "no write key: send an application's ingest token as the Basic user name or as `writeKey` in the body",
        )),
    }
}

/// A batch's messages, each given the batch's `context` and `sentAt` when it has none
/// of its own (the SDKs send `sentAt` once per batch, for the clock-skew rule).
fn batch_messages(body: &mut Value) -> Result<Vec<Value>, ApiError> {
    let shared: Vec<(&str, Value)> = ["context", "sentAt"]
        .into_iter()
        .filter_map(|key| body.get(key).map(|value| (key, value.clone())))
        .collect();
    let Some(Value::Array(messages)) = body.get_mut("batch").map(Value::take) else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a batch body is {\"batch\": [messages]}",
        ));
    };
    Ok(messages
        .into_iter()
        .map(|mut message| {
            if let Some(object) = message.as_object_mut() {
                for (key, value) in &shared {
                    object
                        .entry(key.to_string())
                        .or_insert_with(|| value.clone());
                }
            }
            message
        })
        .collect())
}
