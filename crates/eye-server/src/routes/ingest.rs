//! `POST /events`: one event object, a JSON array of events, or NDJSON, optionally
//! gzip-compressed. Each element is checked and given an id; good ones and refused
//! ones alike are enqueued (refused ones for the error store), and the answer (202)
//! comes only once the queue has them on disk.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use eye_core::auth::Scope;
use eye_core::{Body as MessageBody, Envelope, IncomingEvent, Rejection, Timestamp, ids};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::startup::AppState;

enum Format {
    Json,
    Ndjson,
}

pub async fn ingest_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received_at = Timestamp::now().as_micros();
    let grant = state.auth.require(&headers, Scope::Ingest).await?;
    let app_id = grant
        .app_id
        .ok_or_else(|| ApiError::internal("ingest token without an application"))?;
    let format = content_type(&headers)?;
    let limits = &state.settings;
    let gzip = content_encoding(&headers)?;
    let bytes = read_body(body, limits.max_body_bytes, gzip).await?;

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
    let depth = state.queue.depth();
    if depth + elements.len() as u64 > limits.queue_max_depth {
        return Err(ApiError::unavailable(
            "queue_full",
            format!(
                "the queue holds {depth} events, its limit is {}; retry later",
                limits.queue_max_depth
            ),
            1,
        ));
    }

    let mut payloads = Vec::with_capacity(elements.len());
    let mut verdicts = Vec::with_capacity(elements.len());
    for value in elements {
        let (envelope, verdict) = envelope_for(value, app_id, received_at);
        payloads.push(envelope.encode());
        verdicts.push(verdict);
    }
    state.queue.enqueue(payloads).await.map_err(|error| {
        tracing::error!(%error, "enqueue failed");
        ApiError::unavailable(
            "queue_unavailable",
            "the queue cannot take events right now; retry later",
            1,
        )
    })?;

    let accepted = verdicts.iter().filter(|v| v.is_ok()).count();
    state.metrics.events_accepted.inc_by(accepted as u64);
    state.metrics.events_rejected.inc_by((verdicts.len() - accepted) as u64);
    if single && let Some(Err((rejection, error_id))) = verdicts.first() {
        return Err(
            ApiError::bad_request("invalid_event", rejection.message.clone()).with_details(json!({
                "reason": rejection.code,
                "field": rejection.field,
                "error_id": error_id,
            })),
        );
    }
    let results: Vec<Value> = verdicts
        .into_iter()
        .enumerate()
        .map(|(index, verdict)| match verdict {
            Ok(id) => json!({ "index": index, "status": "accepted", "id": id }),
            Err((rejection, error_id)) => json!({
                "index": index,
                "status": "rejected",
                "error": rejection,
                "error_id": error_id,
            }),
        })
        .collect();
    let body = json!({
        "accepted": accepted,
        "rejected": results.len() - accepted,
        "results": results,
    });
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

type Verdict = Result<uuid::Uuid, (Rejection, uuid::Uuid)>;

fn envelope_for(value: Value, app_id: i64, received_at: i64) -> (Envelope, Verdict) {
    // Keep the raw element only when it is refused; a good event travels parsed.
    let raw = serde_json::value::to_raw_value(&value).ok();
    match IncomingEvent::parse(value) {
        Ok(event) => {
            let id = match &event.client_id {
                Some(client_id) => ids::event_id_for_client_id(app_id, client_id),
                None => ids::new_event_id(),
            };
            let envelope = Envelope {
                id,
                app_id,
                received_at,
                body: MessageBody::Event(event),
            };
            (envelope, Ok(id))
        }
        Err(rejection) => {
            let id = ids::new_event_id();
            let raw = raw.unwrap_or_else(|| {
                serde_json::value::to_raw_value(&Value::Null).expect("null serializes")
            });
            let envelope = Envelope {
                id,
                app_id,
                received_at,
                body: MessageBody::Rejected {
                    rejection: rejection.clone(),
                    raw,
                },
            };
            (envelope, Err((rejection, id)))
        }
    }
}

fn content_type(headers: &HeaderMap) -> Result<Format, ApiError> {
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
        "application/json" => Ok(Format::Json),
        "application/x-ndjson" | "application/jsonlines" | "application/jsonl" => {
            Ok(Format::Ndjson)
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json or application/x-ndjson, not {:?}",
                value
            ),
        )),
    }
}

fn content_encoding(headers: &HeaderMap) -> Result<bool, ApiError> {
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

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

/// Reads the body, refusing it as soon as it passes `limit` (before or after gzip), so
/// that neither a large body nor a gzip bomb can take memory beyond the limit.
async fn read_body(body: Body, limit: usize, gzip: bool) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut buffer = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request("unreadable_body", format!("reading the body failed: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            buffer.extend_from_slice(&data);
        }
    }
    if !gzip {
        return Ok(Bytes::from(buffer));
    }
    use std::io::Read;
    let mut decoded = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(&buffer[..]).take(limit as u64 + 1);
    decoder.read_to_end(&mut decoded).map_err(|e| {
        ApiError::bad_request("invalid_gzip", format!("the body is not valid gzip: {e}"))
    })?;
    if decoded.len() > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(decoded))
}

/// Splits a body into its elements; `true` when it was a single JSON object.
fn split_elements(bytes: &[u8], format: Format) -> Result<(Vec<Value>, bool), ApiError> {
    match format {
        Format::Json => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(items)) => Ok((items, false)),
            Ok(object @ Value::Object(_)) => Ok((vec![object], true)),
            Ok(_) => Err(ApiError::bad_request(
                "invalid_body",
                "the body must be an event object or an array of events",
            )),
            Err(e) => Err(ApiError::bad_request(
                "invalid_json",
                format!("the body is not valid JSON: {e}"),
            )),
        },
        Format::Ndjson => {
            let mut items = Vec::new();
            for (number, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value = serde_json::from_slice(line).map_err(|e| {
                    ApiError::bad_request(
                        "invalid_json",
                        format!("line {} is not valid JSON: {e}", number + 1),
                    )
                    .with_details(json!({ "line": number + 1 }))
                })?;
                items.push(value);
            }
            Ok((items, false))
        }
    }
}
