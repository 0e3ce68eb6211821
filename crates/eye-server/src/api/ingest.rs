//! `POST /events`: one event object, a JSON array of events, or NDJSON, optionally
//! gzip-compressed. Each element is checked and given an id; good ones and refused
//! ones alike are enqueued (refused ones for the error store), and the answer (202)
//! comes only once the queue has them on disk.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use eye_core::auth::Scope;
use eye_core::body::{self, BodyError, BodyFormat};
use eye_core::{Body as MessageBody, Envelope, Refusal, Timestamp};
use eye_pipeline::accept;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::cors;
use crate::http::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/events",
    tag = "ingest",
    description = "One event object, a JSON array of events, or NDJSON (`application/x-ndjson`), optionally gzip-compressed. `202` only once the events are durable. Also at `/events/`. Browsers' beacons, which cannot set headers, send their ingest token as `?token=` and their body as `text/plain` (read as JSON).",
    params(
        ("token" = Option<String>, Query, description = "An ingest token, only when there is no `Authorization` header (for `navigator.sendBeacon`); any other token here is `401`"),
    ),
    request_body(content(
        (WireEvent = "application/json"),
        (Vec<WireEvent> = "application/json"),
        (String = "application/x-ndjson"),
    )),
    responses(
        (status = 202, description = "Accepted: a verdict per element", body = IngestAnswer),
        (status = 400, description = "Not JSON, empty, bad gzip, or a single event refused (`invalid_event`)", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the body read timeout", body = ErrorBody),
        (status = 413, description = "Body or batch too large", body = ErrorBody),
        (status = 415, description = "Unsupported Content-Type or Content-Encoding", body = ErrorBody),
        (status = 429, description = "The application's rate limit is reached; see Retry-After", body = ErrorBody),
        (status = 503, description = "Queue full or unavailable; see Retry-After", body = ErrorBody),
    )
)]
pub async fn ingest_events(State(state): State<AppState>, request: Request) -> Response {
    let origin = cors::origin(request.headers()).map(str::to_owned);
    let answer = async {
        ingest(&state, request)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    cors::answer_ingest(&state.origins, origin.as_deref(), answer).await
}

async fn ingest(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let received_at = Timestamp::now().as_micros();
    // Taking the request whole avoids the copy of every header that the `HeaderMap`
    // extractor makes.
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let grant = match beacon_token(&parts.uri, headers)? {
        Some(token) => state.auth.require_token(&token, Scope::Ingest).await?,
        None => state.auth.require(headers, Scope::Ingest).await?,
    };
    let app_id = grant
        .app_id
        .ok_or_else(|| ApiError::internal("ingest token without an application"))?;
    state.origins.check_app(app_id, headers).await?;
    let format = content_type(headers)?;
    let limits = &state.settings;
    let gzip = content_encoding(headers)?;
    let bytes = read_body_in_time(state, body, limits.max_body_bytes, gzip).await?;

    let (elements, single) = split_elements(&bytes, format)?;
    if elements.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "the request holds no events",
        ));
    }
    if elements.len() > limits.max_batch_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!(
                "a request may hold at most {} events; this one holds {}",
                limits.max_batch_events,
                elements.len()
            ),
        ));
    }
    admit(state, app_id, elements.len()).await?;
    let envelopes = accept::envelopes(elements, app_id, received_at, &limits.payload_limits());
    enqueue(state, &envelopes).await?;

    let verdicts: Vec<Verdict<'_>> = envelopes.iter().enumerate().map(Verdict::of).collect();
    let accepted = verdicts.iter().filter(|v| v.error.is_none()).count();
    if single && let Some(refusal) = verdicts[0].error {
        return Err(
            ApiError::bad_request("invalid_event", refusal.message.clone()).with_details(json!({
                "reason": refusal.code,
                "field": refusal.field,
                "error_id": verdicts[0].error_id,
            })),
        );
    }
    let answer = IngestAnswer {
        accepted,
        rejected: verdicts.len() - accepted,
        results: verdicts,
    };
    let body = serde_json::to_vec(&answer).map_err(ApiError::internal)?;
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Lets `events` more of an application's events in, or says why not: its rate limit
/// (429) or a queue that stayed full (503), each with a `Retry-After`.
pub(crate) async fn admit(state: &AppState, app_id: i64, events: usize) -> Result<(), ApiError> {
    let limits = &state.settings;
    if let Some(limiter) = &state.rate_limiter
        && let Err(wait) = limiter.take(app_id, events, std::time::Instant::now())
    {
        return Err(ApiError::too_many_requests(
            format!(
                "this application may send {} events per second; retry later",
                limits.rate_limit_events_per_second
            ),
            wait,
        ));
    }
    if let Err(depth) = wait_for_room(state, events as u64).await {
        return Err(ApiError::unavailable(
            "queue_full",
            format!(
                "the queue holds {depth} events, its limit is {}; retry later",
                limits.queue_max_depth
            ),
            1,
        ));
    }
    Ok(())
}

/// Enqueues a request's envelopes, accepted and refused alike; durable on return.
pub(crate) async fn enqueue(state: &AppState, envelopes: &[Envelope]) -> Result<(), ApiError> {
    let messages = accept::messages(envelopes, state.queue.one_message_per_event());
    state.queue.enqueue(messages).await.map_err(|error| {
        tracing::error!(%error, "enqueue failed");
        ApiError::unavailable(
            "queue_unavailable",
            "the queue cannot take events right now; retry later",
            1,
        )
    })?;
    let refused = envelopes
        .iter()
        .filter(|e| matches!(e.body, MessageBody::Refused { .. }))
        .count();
    tracing::debug!(
        accepted = envelopes.len() - refused,
        refused,
        "events queued"
    );
    state
        .metrics
        .events_accepted
        .inc_by((envelopes.len() - refused) as u64);
    state.metrics.events_refused.inc_by(refused as u64);
    Ok(())
}

/// `202`: every element's verdict, in order.
#[derive(Serialize, ToSchema)]
pub struct IngestAnswer<'a> {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<Verdict<'a>>,
}

/// One element's fate: its event id, or why it was refused and the id of its error record.
#[derive(Serialize, ToSchema)]
pub struct Verdict<'a> {
    pub index: usize,
    /// `accepted` or `rejected`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// The event id (accepted elements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Why it was refused (rejected elements).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Refusal>)]
    pub error: Option<&'a Refusal>,
    /// Its record in the error store (rejected elements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<Uuid>,
}

impl<'a> Verdict<'a> {
    fn of((index, envelope): (usize, &'a Envelope)) -> Self {
        match &envelope.body {
            MessageBody::Event(_) => Verdict {
                index,
                status: "accepted",
                id: Some(envelope.id),
                error: None,
                error_id: None,
            },
            MessageBody::Refused { refusal, .. } => Verdict {
                index,
                status: "rejected",
                id: None,
                error: Some(refusal),
                error_id: Some(envelope.id),
            },
        }
    }
}

/// Returns once the queue has room for `events` more, waiting up to
/// `queue_full_wait_ms` for the worker to make some; otherwise the depth it last saw.
///
/// Waiting is the backpressure: under a load the worker cannot match, clients are
/// slowed to its pace (the backlog, and so the lag to storage, stays bounded by the
/// limit) instead of being refused at once; only a wait that runs out is a 503. The
/// depth is polled because every queue can report it, the distributed ones included.
async fn wait_for_room(state: &AppState, events: u64) -> Result<(), u64> {
    const POLL: std::time::Duration = std::time::Duration::from_millis(5);
    let max = state.settings.queue_max_depth;
    let fits = |depth: u64| depth + events <= max;
    let depth = state.queue.depth();
    let wait = std::time::Duration::from_millis(state.settings.queue_full_wait_ms);
    if fits(depth) {
        return Ok(());
    }
    // A request larger than the whole limit would wait for nothing.
    if events > max || wait.is_zero() {
        return Err(depth);
    }
    state.metrics.ingest_waits.inc();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now = tokio::time::Instant::now();
        tokio::time::sleep_until((now + POLL).min(deadline)).await;
        let depth = state.queue.depth();
        if fits(depth) {
            return Ok(());
        }
        if now + POLL >= deadline {
            return Err(depth);
        }
    }
}

/// `navigator.sendBeacon` cannot set headers, so a browser's last events of a page
/// carry their ingest token as `?token=`. Only without an `Authorization` header, and
/// only an ingest token (see `ingest_events`): the same secret that page already holds.
fn beacon_token(uri: &axum::http::Uri, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Ok(None);
    }
    let token = uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value.into_owned())
    });
    match token {
        Some(token) if token.starts_with("eye_i_") => Ok(Some(token)),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "only an ingest token may travel in the URL (`?token=`); use the Authorization header",
        )),
        None => Ok(None),
    }
}

fn content_type(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        // `text/plain` is what `sendBeacon` can send without a CORS preflight.
        "application/json" | "text/plain" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/jsonlines" | "application/jsonl" => {
            Ok(BodyFormat::Ndjson)
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json, application/x-ndjson or (from browsers' beacons) text/plain, not {:?}",
                value
            ),
        )),
    }
}

pub(crate) fn content_encoding(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
    {
        None => Ok(false),
        Some(e) if e == "identity" || e.is_empty() => Ok(false),
        Some(e) if e == "gzip" => Ok(true),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding must be gzip or identity, not {other:?}"),
        )),
    }
}

pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

/// [`read_body`] within the body read timeout (408 past it).
pub(crate) async fn read_body_in_time(
    state: &AppState,
    body: Body,
    limit: usize,
    gzip: bool,
) -> Result<Bytes, ApiError> {
    let timeout_ms = state.settings.body_read_timeout_ms;
    tokio::time::timeout(
        std::time::Duration::from_millis(timeout_ms),
        read_body(body, limit, gzip),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {timeout_ms} ms"),
        )
    })?
}

/// Reads the body, refusing it as soon as it passes `limit` (before or after gzip), so
/// that neither a large body nor a gzip bomb can take memory beyond the limit.
async fn read_body(body: Body, limit: usize, gzip: bool) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request("unreadable_body", format!("reading the body failed: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total > limit {
                return Err(too_large(limit));
            }
            chunks.push(data);
        }
    }
    // A small body usually arrives in one chunk: use it as it is, without a copy.
    let raw = if chunks.len() == 1 {
        chunks.pop().expect("one chunk")
    } else {
        Bytes::from(chunks.concat())
    };
    if !gzip {
        return Ok(raw);
    }
    use std::io::Read;
    let mut decoded = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
    decoder.read_to_end(&mut decoded).map_err(|e| {
        ApiError::bad_request("invalid_gzip", format!("the body is not valid gzip: {e}"))
    })?;
    if decoded.len() > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(decoded))
}

/// Splits a body into its elements, borrowed from it; `true` when it was a single
/// JSON object rather than an array or NDJSON.
fn split_elements(bytes: &[u8], format: BodyFormat) -> Result<(Vec<&RawValue>, bool), ApiError> {
    body::split(bytes, format).map_err(|error| match &error {
        BodyError::InvalidJson(_) => ApiError::bad_request("invalid_json", error.to_string()),
        BodyError::InvalidLine { line, .. } => {
            ApiError::bad_request("invalid_json", error.to_string())
                .with_details(json!({ "line": line }))
        }
        BodyError::NotEvents => ApiError::bad_request("invalid_body", error.to_string()),
    })
}

/// `OPTIONS /events`: a browser's preflight (see `http::cors::preflight`).
pub async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    cors::preflight(&state.origins, &headers).await
}

/// One event as an application sends it. Unknown top-level fields are refused.
#[derive(Serialize, ToSchema)]
// Never built: the ingest parser is hand-written (strict, naming the field at fault,
// no tree for `data`); this is its documentation, checked against it by
// `crates/eye/tests/api/analytics.rs` (schemathesis sends what it describes).
#[allow(dead_code)]
pub struct WireEvent {
    /// Chosen by the application; 1–256 characters.
    session_id: String,
    /// For example `page interaction`; 1–256 characters.
    category: String,
    /// For example `pageview`; 1–256 characters.
    name: String,
    /// The payload, checked against the type's schema; `{}` when absent.
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Value>,
    /// When it happened: `2023-01-01 09:15:27.243860`, `…Z`, or RFC 3339; no zone means UTC.
    #[schema(example = "2023-01-01 09:15:27.243860Z")]
    timestamp: String,
    /// Idempotency key, unique per application: a resend is stored once.
    id: Option<String>,
    /// The client's clock when it sent the request.
    sent_at: Option<String>,
    /// Orders events with equal timestamps.
    seq: Option<i64>,
}
