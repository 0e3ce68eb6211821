//! `GET /events`: stored events, filtered, in time order, one keyset page at a time;
//! or, with `Accept: application/x-ndjson` or `text/csv`, every matching event as one
//! stream in constant memory.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::Write;

use eye_store::{EventQuery, EventRow, RowEncoder, StoredEvent};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::{Auth, Read};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::query::{DEFAULT_LIMIT, PARAMETERS, Params, event_query, with_cursor};
use crate::state::AppState;

/// Export buffers (~256 KiB each, filled by the store's reader) waiting for a slow
/// client: with the one being filled, they bound an export's memory.
const EXPORT_BUFFERS_AHEAD: usize = 2;

/// What the client asked to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One page of JSON.
    Json,
    /// Every matching event, one JSON object per line.
    Ndjson,
    /// Every matching event, one CSV row per event after a header row.
    Csv,
}

/// Picks the format from `Accept` by preference (`q`), then by order; `406` when
/// nothing acceptable is offered.
pub fn negotiate(headers: &HeaderMap) -> Result<Format, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(Format::Json);
    };
    let accept = accept.to_str().unwrap_or("");
    let mut ranges: Vec<(f32, usize, String)> = accept
        .split(',')
        .enumerate()
        .filter_map(|(position, range)| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!media.is_empty() && q > 0.0).then_some((q, position, media))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, media) in &ranges {
        match media.as_str() {
            "application/json" | "application/*" | "*/*" => return Ok(Format::Json),
            "application/x-ndjson" | "application/jsonl" => return Ok(Format::Ndjson),
            "text/csv" | "text/*" => return Ok(Format::Csv),
            _ => {}
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "not_acceptable",
        format!(
            "cannot answer in {accept:?}; offered: application/json, application/x-ndjson, text/csv"
        ),
    ))
}

#[utoipa::path(
    get,
    path = "/events",
    tag = "query",
    description = "Stored events, filtered, in time order, one keyset page at a time. With `Accept: application/x-ndjson` or `text/csv`, every matching event as one stream (`limit` then caps the whole export). Payload filters: `data.<path>=<value>`, e.g. `data.form.first_name=John` (any number of them).",
    params(
        ("session_id" = Option<String>, Query),
        ("category" = Option<String>, Query),
        ("name" = Option<String>, Query),
        ("app" = Option<String>, Query, description = "Application name or id"),
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("order" = Option<String>, Query, description = "`asc` or `desc`; default ascending for a session, newest first otherwise"),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page, or an export stream", content((EventsPage = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 406, description = "No acceptable format in `Accept`", body = ErrorBody),
    )
)]
pub async fn list_events(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let format = negotiate(&headers)?;
    let params = Params::parse(query.as_deref(), &PARAMETERS)?;
    let event_query = with_cursor(&params, event_query(&params, DEFAULT_LIMIT)?)?;
    if format == Format::Json {
        let scope = event_query.scope();
        let page = state.store.events(event_query).await?;
        let page = EventsPage {
            events: page.items,
            next_cursor: page.next.map(|c| c.encode_in(scope)),
        };
        return Ok(Json(page).into_response());
    }
    // An export has no page limit; `limit`, when given, caps the whole export.
    let cap = params
        .text("limit")
        .is_some()
        .then_some(event_query.limit as usize);
    Ok(export(&state, event_query, format, cap))
}

/// A page of `GET /events`.
#[derive(Serialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn export(state: &AppState, query: EventQuery, format: Format, cap: Option<usize>) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(EXPORT_BUFFERS_AHEAD);
    let store = state.store.clone();
    let encode: RowEncoder = match format {
        Format::Csv => Box::new(csv_row),
        _ => Box::new(ndjson_line),
    };
    let header_row = (format == Format::Csv).then(|| CSV_HEADER.as_bytes().to_vec());
    tokio::spawn(async move {
        if let Some(header_row) = header_row
            && sender.send(header_row).await.is_err()
        {
            return;
        }
        let cap = cap.map(|c| c as u64);
        if let Err(error) = store.export_events(query, cap, encode, sender).await {
            // The status line is long gone: the stream ends early, and the client sees a
            // truncated body (no final chunk).
            tracing::error!(%error, "export failed midway");
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let bytes = receiver.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(bytes)),
            receiver,
        ))
    });
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        _ => "application/x-ndjson",
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Body::from_stream(body),
    )
        .into_response()
}

const CSV_HEADER: &str = "id,session_id,category,name,timestamp,seq,app,client_id,received_at,sent_at,schema_version,data\r\n";

/// One event as a JSON line, the same object `GET /events` gives in a page.
fn ndjson_line(event: &EventRow<'_>, out: &mut Vec<u8>) {
    let string = |out: &mut Vec<u8>, text: &str| {
        serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
    };
    let _ = write!(out, "{{\"id\":\"{}\",\"session_id\":", event.id);
    string(out, event.session_id);
    out.extend_from_slice(b",\"category\":");
    string(out, event.category);
    out.extend_from_slice(b",\"name\":");
    string(out, event.name);
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(event.data.as_bytes());
    let _ = write!(
        out,
        ",\"timestamp\":\"{}\",\"seq\":{},\"app\":",
        event.timestamp, event.seq
    );
    string(out, event.app);
    if let Some(client_id) = event.client_id {
        out.extend_from_slice(b",\"client_id\":");
        string(out, client_id);
    }
    let _ = write!(out, ",\"received_at\":\"{}\"", event.received_at);
    if let Some(sent_at) = event.sent_at {
        let _ = write!(out, ",\"sent_at\":\"{sent_at}\"");
    }
    if let Some(version) = event.schema_version {
        let _ = write!(out, ",\"schema_version\":{version}");
    }
    out.extend_from_slice(b"}\n");
}

/// One RFC 4180 row: fields with a comma, quote, CR or LF are quoted, quotes doubled.
fn csv_row(event: &EventRow<'_>, out: &mut Vec<u8>) {
    let id = event.id.to_string();
    let (timestamp, received_at) = (event.timestamp.to_string(), event.received_at.to_string());
    let seq = event.seq.to_string();
    let sent_at = event.sent_at.map(|t| t.to_string()).unwrap_or_default();
    let version = event
        .schema_version
        .map(|v| v.to_string())
        .unwrap_or_default();
    let fields: [&str; 12] = [
        &id,
        event.session_id,
        event.category,
        event.name,
        &timestamp,
        &seq,
        event.app,
        event.client_id.unwrap_or(""),
        &received_at,
        &sent_at,
        &version,
        event.data,
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, field);
    }
    out.extend_from_slice(b"\r\n");
}

fn csv_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Result<Format, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        negotiate(&headers)
    }

    #[test]
    fn negotiation_follows_preference_then_order() {
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Format::Json);
        assert_eq!(accept("text/csv").unwrap(), Format::Csv);
        assert_eq!(accept("application/x-ndjson").unwrap(), Format::Ndjson);
        assert_eq!(
            accept("text/csv;q=0.5, application/x-ndjson").unwrap(),
            Format::Ndjson
        );
        assert_eq!(accept("image/png, */*;q=0.1").unwrap(), Format::Json);
        assert_eq!(accept("text/html;q=0, text/*").unwrap(), Format::Csv);
        let refused = accept("image/png").unwrap_err();
        assert_eq!(refused.status, StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn an_ndjson_line_is_the_same_object_as_in_a_page() {
        use eye_core::Timestamp;
        let data = r#"{"q":"a \"b\"\n","n":[1,2]}"#;
        let row = EventRow {
            id: uuid::Uuid::now_v7(),
            session_id: "s\"1",
            category: "page interaction",
            name: "ünïcode",
            data,
            timestamp: Timestamp::from_micros(1_700_000_000_123_456),
            seq: 3,
            app: "web",
            client_id: Some("c-1"),
            received_at: Timestamp::from_micros(1_700_000_001_000_000),
            sent_at: None,
            schema_version: Some(2),
            cursor: eye_store::Cursor::default(),
        };
        let stored = eye_store::StoredEvent {
            id: row.id,
            session_id: row.session_id.into(),
            category: row.category.into(),
            name: row.name.into(),
            data: serde_json::value::RawValue::from_string(data.into()).unwrap(),
            timestamp: row.timestamp,
            seq: row.seq,
            app: row.app.into(),
            client_id: row.client_id.map(str::to_owned),
            received_at: row.received_at,
            sent_at: row.sent_at,
            schema_version: row.schema_version,
            cursor: row.cursor,
        };
        let mut line = Vec::new();
        ndjson_line(&row, &mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(
            String::from_utf8(line).unwrap().trim_end(),
            serde_json::to_string(&stored).unwrap()
        );
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        csv_field(&mut out, "plain");
        out.push(b'|');
        csv_field(&mut out, "a,b");
        out.push(b'|');
        csv_field(&mut out, "say \"hi\"\nbye");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain|\"a,b\"|\"say \"\"hi\"\"\nbye\""
        );
    }
}
