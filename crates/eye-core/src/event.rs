//! Incoming events: parsing one JSON object from the wire into an [`IncomingEvent`].
//!
//! Parsing is strict and names the field at fault, so that a client learns exactly
//! what to fix. Unknown top-level fields are refused rather than dropped: a client
//! that sends `properties` instead of `data` would otherwise lose its payload silently.

use serde_json::{Map, Value};

use crate::reason::Rejection;
use crate::timestamp::Timestamp;

/// Longest accepted `session_id`, `category`, `name` or client `id`, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 256;

/// A session id chosen by the application: non-empty, at most [`MAX_IDENTIFIER_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        identifier(value).map(|v| SessionId(v.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event type: `category` and `name`, each a non-empty identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EventType {
    pub category: String,
    pub name: String,
}

fn identifier(value: &str) -> Result<&str, &'static str> {
    if value.trim().is_empty() {
        Err("must not be empty")
    } else if value.len() > MAX_IDENTIFIER_LEN {
        Err("must be at most 256 bytes long")
    } else {
        Ok(value)
    }
}

/// One event as the application sent it, with every field checked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IncomingEvent {
    /// The client's idempotency key, unique per application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub session_id: SessionId,
    #[serde(flatten)]
    pub event_type: EventType,
    pub data: Map<String, Value>,
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

impl IncomingEvent {
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_micros(self.timestamp)
    }

    /// The event in its wire form, as a client would send it (timestamps as RFC 3339),
    /// for the error store and for re-processing.
    pub fn to_wire(&self) -> Value {
        let mut object = Map::new();
        if let Some(id) = &self.client_id {
            object.insert("id".into(), Value::String(id.clone()));
        }
        object.insert(
            "session_id".into(),
            Value::String(self.session_id.0.clone()),
        );
        object.insert(
            "category".into(),
            Value::String(self.event_type.category.clone()),
        );
        object.insert("name".into(), Value::String(self.event_type.name.clone()));
        object.insert("data".into(), Value::Object(self.data.clone()));
        object.insert(
            "timestamp".into(),
            Value::String(self.timestamp().to_string()),
        );
        if let Some(sent_at) = self.sent_at {
            object.insert(
                "sent_at".into(),
                Value::String(Timestamp::from_micros(sent_at).to_string()),
            );
        }
        if let Some(seq) = self.seq {
            object.insert("seq".into(), Value::from(seq));
        }
        Value::Object(object)
    }

    /// Parses one element of an ingest body.
    pub fn parse(value: Value) -> Result<Self, Rejection> {
        let Value::Object(mut object) = value else {
            return Err(Rejection::new(
                "invalid_event",
                "an event must be a JSON object",
                None,
            ));
        };
        if let Some(unknown) = object.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(Rejection::new(
                "unknown_field",
                format!("unknown field `{unknown}`; the payload belongs in `data`"),
                Some(unknown),
            ));
        }
        let session_id = required_str(&object, "session_id")?;
        let session_id = SessionId::parse(session_id).map_err(|m| invalid("session_id", m))?;
        let category = required_str(&object, "category")?;
        let category = identifier(category).map_err(|m| invalid("category", m))?;
        let name = required_str(&object, "name")?;
        let name = identifier(name).map_err(|m| invalid("name", m))?;
        let event_type = EventType {
            category: category.to_owned(),
            name: name.to_owned(),
        };
        let timestamp = parse_time(required_str(&object, "timestamp")?, "timestamp")?;
        let sent_at = match object.get("sent_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(parse_time(s, "sent_at")?),
            Some(_) => return Err(wrong_type("sent_at", "a string")),
        };
        let seq = match object.get("seq") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_i64()
                    .ok_or_else(|| invalid("seq", "must be an integer between -2^63 and 2^63-1"))?,
            ),
            Some(_) => return Err(wrong_type("seq", "an integer")),
        };
        let client_id = match object.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(identifier(s).map_err(|m| invalid("id", m))?.to_owned()),
            Some(_) => return Err(wrong_type("id", "a string")),
        };
        let data = match object.remove("data") {
            None => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(wrong_type("data", "a JSON object")),
        };
        Ok(IncomingEvent {
            client_id,
            session_id,
            event_type,
            data,
            timestamp: timestamp.as_micros(),
            sent_at: sent_at.map(Timestamp::as_micros),
            seq,
        })
    }
}

const KNOWN_FIELDS: [&str; 8] = [
    "id",
    "session_id",
    "category",
    "name",
    "data",
    "timestamp",
    "sent_at",
    "seq",
];

fn required_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, Rejection> {
    match object.get(field) {
        None | Some(Value::Null) => Err(Rejection::new(
            "missing_field",
            format!("`{field}` is required"),
            Some(field),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(wrong_type(field, "a string")),
    }
}

fn parse_time(value: &str, field: &'static str) -> Result<Timestamp, Rejection> {
    Timestamp::parse(value).map_err(|e| {
        Rejection::new(
            "invalid_timestamp",
            format!("`{field}` is not a valid timestamp ({})", e.0),
            Some(field),
        )
    })
}

fn wrong_type(field: &'static str, expected: &str) -> Rejection {
    Rejection::new(
        "invalid_type",
        format!("`{field}` must be {expected}"),
        Some(field),
    )
}

fn invalid(field: &'static str, why: &str) -> Rejection {
    Rejection::new("invalid_value", format!("`{field}` {why}"), Some(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: Value, expect: Result<(), (&str, Option<&str>)>) {
        let got = IncomingEvent::parse(input.clone());
        match (got, expect) {
            (Ok(_), Ok(())) => {}
            (Err(r), Err((code, field))) => {
                assert_eq!(r.code, code, "{input}: {}", r.message);
                assert_eq!(r.field.as_deref(), field, "{input}");
            }
            (got, expect) => panic!("{input}: got {got:?}, expected {expect:?}"),
        }
    }

    fn base() -> Value {
        json!({"session_id": "s1", "category": "page interaction", "name": "pageview",
               "data": {"host": "h", "path": "/"}, "timestamp": "2023-01-01 09:15:27.243860"})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = base();
        v[field] = value;
        v
    }

    fn without(field: &str) -> Value {
        let mut v = base();
        v.as_object_mut().unwrap().remove(field);
        v
    }

    #[test]
    fn a_complete_event_parses_with_microseconds() {
        let event = IncomingEvent::parse(with("seq", json!(3))).unwrap();
        assert_eq!(event.timestamp, 1_672_564_527_243_860);
        assert_eq!(event.seq, Some(3));
        assert_eq!(event.data["path"], "/");
    }

    #[test]
    fn the_wire_form_parses_back_to_the_same_event() {
        let mut input = with("seq", json!(3));
        input["id"] = json!("client-1");
        input["sent_at"] = json!("2023-01-01T09:15:28Z");
        let event = IncomingEvent::parse(input).unwrap();
        assert_eq!(IncomingEvent::parse(event.to_wire()).unwrap(), event);
    }

    #[test]
    fn data_is_optional_and_defaults_to_an_empty_object() {
        assert!(
            IncomingEvent::parse(without("data"))
                .unwrap()
                .data
                .is_empty()
        );
    }

    #[test]
    fn each_required_field_is_named_when_missing() {
        for field in ["session_id", "category", "name", "timestamp"] {
            check(without(field), Err(("missing_field", Some(field))));
            check(
                with(field, Value::Null),
                Err(("missing_field", Some(field))),
            );
        }
    }

    #[test]
    fn wrong_types_and_values_are_named() {
        check(
            with("session_id", json!(5)),
            Err(("invalid_type", Some("session_id"))),
        );
        check(
            with("category", json!("")),
            Err(("invalid_value", Some("category"))),
        );
        check(
            with("name", json!("x".repeat(257))),
            Err(("invalid_value", Some("name"))),
        );
        check(
            with("data", json!([1])),
            Err(("invalid_type", Some("data"))),
        );
        check(
            with("data", json!("x")),
            Err(("invalid_type", Some("data"))),
        );
        check(
            with("timestamp", json!("yesterday")),
            Err(("invalid_timestamp", Some("timestamp"))),
        );
        check(
            with("timestamp", json!(1672564527)),
            Err(("invalid_type", Some("timestamp"))),
        );
        check(
            with("sent_at", json!("soon")),
            Err(("invalid_timestamp", Some("sent_at"))),
        );
        check(with("seq", json!(1.5)), Err(("invalid_value", Some("seq"))));
        check(with("seq", json!("1")), Err(("invalid_type", Some("seq"))));
        check(with("id", json!(7)), Err(("invalid_type", Some("id"))));
        check(
            with("properties", json!({})),
            Err(("unknown_field", Some("properties"))),
        );
        check(json!([1, 2]), Err(("invalid_event", None)));
        check(with("id", json!("abc")), Ok(()));
    }
}
