//! The Segment tracking protocol (`/v1/track`, `/v1/batch`...) mapped onto The Eye's
//! events, one message at a time, into the native wire form that `POST /events` takes;
//! so that a Segment message meets exactly the checks, the idempotency and the error
//! store a native event does.
//!
//! The mapping (docs/segment.md says the same to users):
//! - `category` is the message type (`track`, `page`, `screen`, `identify`, `group`,
//!   `alias`); `name` is the track's `event`, the page's or screen's `name` (the type
//!   when it has none), or the type for the other three.
//! - The session is the first of `properties.session_id`, `properties.sessionId`,
//!   `context.session_id`, `context.sessionId`, `anonymousId`, `userId` that is a
//!   non-empty string or an integer.
//! - `data` is the message without the fields that become the event's own (`type`,
//!   `event`, `messageId`, `timestamp`, `sentAt`, `writeKey`) and those that only
//!   steer delivery (`integrations`, `_metadata`): `properties` or `traits`,
//!   `userId`, `anonymousId`, `context`, `groupId`, `previousId`, a page's `name` and
//!   `category`, anything else the message holds. `originalTimestamp` and `sentAt` are
//!   added when the time was corrected.
//! - `messageId` is the event's client `id`: its idempotency key.
//! - The time is Segment's clock-skew rule: `receivedAt - (sentAt - timestamp)` when a
//!   message has both, its `timestamp` when it has no `sentAt`, and the reception time
//!   when it has neither.

use serde_json::{Map, Value, json};

use crate::Refusal;
use crate::timestamp::Timestamp;

/// A Segment message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Track,
        Kind::Page,
        Kind::Screen,
        Kind::Identify,
        Kind::Group,
        Kind::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Track => "track",
            Kind::Page => "page",
            Kind::Screen => "screen",
            Kind::Identify => "identify",
            Kind::Group => "group",
            Kind::Alias => "alias",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Fields that become the event's own, or only steer delivery: not kept in `data`.
const NOT_DATA: [&str; 8] = [
    "type",
    "event",
    "messageId",
    "timestamp",
    "sentAt",
    "writeKey",
    "integrations",
    "_metadata",
];

/// Where a session id may come from, in order of preference.
const SESSION_SOURCES: [(&str, &str); 4] = [
    ("properties", "session_id"),
    ("properties", "sessionId"),
    ("context", "session_id"),
    ("context", "sessionId"),
];

/// The native wire event (JSON text) of one Segment message, or why it cannot be one.
/// `kind` is the endpoint's type (`/v1/track`), `None` for a batch, whose messages
/// say their own `type`. `received_at` is the server's time of reception (micros).
pub fn to_native(message: &Value, kind: Option<Kind>, received_at: i64) -> Result<String, Refusal> {
    let Some(object) = message.as_object() else {
        return Err(Refusal::new(
            "invalid_event",
            "a Segment message must be a JSON object",
            None,
        ));
    };
    let kind = match kind {
        Some(kind) => kind,
        None => {
            let text = object
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("type", "a batch message needs its `type`"))?;
            Kind::parse(text).ok_or_else(|| {
                Refusal::new(
                    "invalid_value",
                    format!(
                        "`type` {text:?} is not one of track, page, screen, identify, group, alias"
                    ),
                    Some("type"),
                )
            })?
        }
    };
    let name = match kind {
        Kind::Track => match object.get("event") {
            Some(Value::String(event)) if !event.trim().is_empty() => event.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(missing("event", "a track message needs its `event` name"));
            }
            Some(_) => return Err(wrong_type("event", "a string")),
        },
        Kind::Page | Kind::Screen => match object.get("name") {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => kind.as_str().to_owned(),
            Some(_) => return Err(wrong_type("name", "a string")),
        },
        Kind::Identify | Kind::Group | Kind::Alias => kind.as_str().to_owned(),
    };
    for field in ["properties", "traits", "context"] {
        match object.get(field) {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(_) => return Err(wrong_type(field, "a JSON object")),
        }
    }
    let session_id = session_of(object)?;
    let client_id = match object.get("messageId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(_) => return Err(wrong_type("messageId", "a non-empty string")),
    };
    let timestamp = time_of(object, "timestamp")?;
    let sent_at = time_of(object, "sentAt")?;

    let mut data: Map<String, Value> = object
        .iter()
        .filter(|(key, _)| !NOT_DATA.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let ts = match (timestamp, sent_at) {
        (Some(timestamp), Some(sent_at)) => {
            data.insert("originalTimestamp".into(), object["timestamp"].clone());
            data.insert("sentAt".into(), object["sentAt"].clone());
            received_at.saturating_sub(sent_at.as_micros().saturating_sub(timestamp.as_micros()))
        }
        (Some(timestamp), None) => timestamp.as_micros(),
        (None, _) => received_at,
    };
    let mut event = json!({
        "session_id": session_id,
        "category": kind.as_str(),
        "name": name,
        "data": Value::Object(data),
        "timestamp": Timestamp::from_micros(ts).to_string(),
    });
    if let Some(id) = client_id {
        event["id"] = Value::String(id);
    }
    Ok(event.to_string())
}

fn session_of(object: &Map<String, Value>) -> Result<String, Refusal> {
    let nested = SESSION_SOURCES
        .iter()
        .filter_map(|(holder, key)| object.get(*holder).and_then(|h| h.get(*key)));
    let top = ["anonymousId", "userId"]
        .iter()
        .filter_map(|key| object.get(*key));
    for value in nested.chain(top) {
        match value {
            Value::String(id) if !id.is_empty() => return Ok(id.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => return Ok(n.to_string()),
            _ => {}
        }
    }
    Err(missing(
        "anonymousId",
        "a Segment message needs an `anonymousId` or a `userId` (or a session id in its properties or context)",
    ))
}

fn time_of(object: &Map<String, Value>, field: &'static str) -> Result<Option<Timestamp>, Refusal> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Timestamp::parse(text).map(Some).map_err(|error| {
            Refusal::new(
                "invalid_timestamp",
                format!("`{field}` {text:?} is not an ISO 8601 time: {error}"),
                Some(field),
            )
        }),
        Some(_) => Err(wrong_type(field, "an ISO 8601 string")),
    }
}

fn missing(field: &str, message: &str) -> Refusal {
    Refusal::new("missing_field", message, Some(field))
}

fn wrong_type(field: &str, expected: &str) -> Refusal {
    Refusal::new(
        "invalid_type",
        format!("`{field}` must be {expected}"),
        Some(field),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVED: &str = "2026-12-05T12:00:00Z";

    fn native(message: Value, kind: Option<Kind>) -> Result<Value, Refusal> {
        let received = Timestamp::parse(RECEIVED).unwrap().as_micros();
        to_native(&message, kind, received).map(|text| serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn a_track_becomes_an_event_of_its_name_with_its_properties_and_ids_in_data() {
        let event = native(
            json!({
                "type": "track", "event": "Order Completed", "messageId": "m-1",
                "anonymousId": "anon-1", "userId": "u-1",
                "properties": {"total": 12.5}, "context": {"library": {"name": "x"}},
                "integrations": {"All": true}, "_metadata": {"x": 1},
                "timestamp": "2026-12-05T11:00:00Z", "writeKey": "secret"
            }),
            None,
        )
        .unwrap();
        assert_eq!(event["category"], "track");
        assert_eq!(event["name"], "Order Completed");
        assert_eq!(event["session_id"], "anon-1");
        assert_eq!(event["id"], "m-1");
        assert_eq!(event["timestamp"], "2026-12-05T11:00:00.000000Z");
        assert_eq!(
            event["data"],
            json!({"anonymousId": "anon-1", "userId": "u-1", "properties": {"total": 12.5},
                   "context": {"library": {"name": "x"}}})
        );
    }

    #[test]
    fn the_session_comes_from_an_explicit_id_first_then_the_anonymous_then_the_user_id() {
        let with = |extra: Value| {
            let mut message = json!({"type": "identify", "userId": "u", "anonymousId": "a"});
            message
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            native(message, None).unwrap()["session_id"].clone()
        };
        assert_eq!(with(json!({"properties": {"session_id": "p"}})), "p");
        assert_eq!(
            with(json!({"context": {"sessionId": 1700000000000u64}})),
            "1700000000000"
        );
        assert_eq!(with(json!({})), "a");
        let user_only = native(
            json!({"type": "alias", "userId": "u", "previousId": "old"}),
            None,
        )
        .unwrap();
        assert_eq!(user_only["session_id"], "u");
        assert_eq!(user_only["data"]["previousId"], "old");
    }

    #[test]
    fn segments_clock_skew_rule_puts_the_event_in_server_time() {
        // The client's clock is an hour behind: it sent at 11:00:10 what it saw at
        // 11:00:00, and we received it at 12:00:00.
        let event = native(
            json!({"anonymousId": "a", "timestamp": "2026-12-05T11:00:00Z",
                   "sentAt": "2026-12-05T11:00:10Z"}),
            Some(Kind::Page),
        )
        .unwrap();
        assert_eq!(event["timestamp"], "2026-12-05T11:59:50.000000Z");
        assert_eq!(event["name"], "page");
        assert_eq!(event["data"]["originalTimestamp"], "2026-12-05T11:00:00Z");
        let untimed = native(json!({"anonymousId": "a"}), Some(Kind::Screen)).unwrap();
        assert_eq!(untimed["timestamp"], "2026-12-05T12:00:00.000000Z");
    }

    #[test]
    fn malformed_messages_are_refused_with_the_field_at_fault() {
        let cases = [
            (json!([]), None, "invalid_event", None),
            (
                json!({"anonymousId": "a"}),
                None,
                "missing_field",
                Some("type"),
            ),
            (
                json!({"type": "boom", "anonymousId": "a"}),
                None,
                "invalid_value",
                Some("type"),
            ),
            (
                json!({"type": "track", "anonymousId": "a"}),
                None,
                "missing_field",
                Some("event"),
            ),
            (
                json!({"event": "e"}),
                Some(Kind::Track),
                "missing_field",
                Some("anonymousId"),
            ),
            (
                json!({"anonymousId": "a", "properties": 3}),
                Some(Kind::Page),
                "invalid_type",
                Some("properties"),
            ),
            (
                json!({"anonymousId": "a", "timestamp": "yesterday"}),
                Some(Kind::Page),
                "invalid_timestamp",
                Some("timestamp"),
            ),
            (
                json!({"anonymousId": "a", "messageId": 7}),
                Some(Kind::Page),
                "invalid_type",
                Some("messageId"),
            ),
        ];
        for (message, kind, code, field) in cases {
            let refusal = native(message.clone(), kind).unwrap_err();
            assert_eq!(refusal.code, code, "{message}");
            assert_eq!(refusal.field.as_deref(), field, "{message}");
        }
    }
}
