//! Incoming events: parsing one JSON object from the wire into an [`IncomingEvent`].
//!
//! Parsing is strict and names the field at fault, so that a client learns exactly
//! what to fix. Unknown top-level fields are refused rather than dropped: a client
//! that sends `properties` instead of `data` would otherwise lose its payload silently.
//! The parser borrows the request body and keeps `data` as the client's own JSON text,
//! so an event's payload is never parsed into a tree or re-serialized on the ingest path.

use serde_json::Value;
use serde_json::value::RawValue;

use crate::reason::Refusal;
use crate::timestamp::Timestamp;

/// Longest accepted `session_id`, `category`, `name` or client `id`, in characters.
pub const MAX_IDENTIFIER_LEN: usize = 256;

/// A session id chosen by the application: non-empty, at most [`MAX_IDENTIFIER_LEN`]
/// characters.
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

impl EventType {
    /// The type named by `category` and `name`, each checked as an identifier; the
    /// error names the field at fault and why.
    pub fn parse(category: &str, name: &str) -> Result<EventType, (&'static str, &'static str)> {
        let category = identifier(category).map_err(|why| ("category", why))?;
        let name = identifier(name).map_err(|why| ("name", why))?;
        Ok(EventType {
            category: category.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn identifier(value: &str) -> Result<&str, &'static str> {
    if value.trim().is_empty() {
        Err("must not be empty")
    } else if value.len() > MAX_IDENTIFIER_LEN && value.chars().count() > MAX_IDENTIFIER_LEN {
        Err("must be at most 256 characters long")
    } else if value.chars().any(char::is_control) {
        // NUL cannot be stored in PostgreSQL text, and the rest has no place in a name.
        Err("must not contain control characters")
    } else {
        Ok(value)
    }
}

/// One event as the application sent it, with every field checked.
///
/// Its serde form (the queue's JSON, see `message`) has `category` and `name` beside
/// the other fields; it goes through [`QueuedEvent`] rather than `#[serde(flatten)]`,
/// which made serde buffer every field of the event into an intermediate map and cost
/// the worker more to decode an event than the rest of its envelope.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "QueuedEvent")]
pub struct IncomingEvent {
    /// The client's idempotency key, unique per application.
    pub client_id: Option<String>,
    pub session_id: SessionId,
    pub event_type: EventType,
    /// The payload: a JSON object, as the client wrote it.
    pub data: Box<RawValue>,
    pub timestamp: i64,
    pub sent_at: Option<i64>,
    pub seq: Option<i64>,
}

/// The serde form of an [`IncomingEvent`], field for field: owned to decode, borrowed
/// (`S = &str`, `D = &RawValue`) to encode.
#[derive(serde::Serialize, serde::Deserialize)]
struct QueuedEvent<S = String, D = Box<RawValue>> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<S>,
    session_id: S,
    category: S,
    name: S,
    data: D,
    timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
}

impl From<QueuedEvent> for IncomingEvent {
    /// The queue holds only what the API checked, so the fields are taken as they are.
    fn from(queued: QueuedEvent) -> Self {
        IncomingEvent {
            client_id: queued.client_id,
            session_id: SessionId(queued.session_id),
            event_type: EventType {
                category: queued.category,
                name: queued.name,
            },
            data: queued.data,
            timestamp: queued.timestamp,
            sent_at: queued.sent_at,
            seq: queued.seq,
        }
    }
}

impl serde::Serialize for IncomingEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        QueuedEvent::<&str, &RawValue> {
            client_id: self.client_id.as_deref(),
            session_id: self.session_id.as_str(),
            category: &self.event_type.category,
            name: &self.event_type.name,
            data: &self.data,
            timestamp: self.timestamp,
            sent_at: self.sent_at,
            seq: self.seq,
        }
        .serialize(serializer)
    }
}

impl PartialEq for IncomingEvent {
    fn eq(&self, other: &Self) -> bool {
        self.client_id == other.client_id
            && self.session_id == other.session_id
            && self.event_type == other.event_type
            && self.data.get() == other.data.get()
            && self.timestamp == other.timestamp
            && self.sent_at == other.sent_at
            && self.seq == other.seq
    }
}

/// The wire shape, borrowed from the request body; every field is checked by hand so
/// that each refusal can name its field and the reason.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    session_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    category: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sent_at: Option<&'a RawValue>,
    #[serde(borrow, default)]
    seq: Option<&'a RawValue>,
}

impl IncomingEvent {
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_micros(self.timestamp)
    }

    /// The event in its wire form, as a client would send it (timestamps as RFC 3339),
    /// for the error store and for re-processing.
    pub fn to_wire(&self) -> Value {
        let mut object = serde_json::Map::new();
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
        let data = serde_json::from_str(self.data.get()).unwrap_or(Value::Null);
        object.insert("data".into(), data);
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
    pub fn parse(raw: &RawValue) -> Result<Self, Refusal> {
        // Checked first: serde would also read a JSON array as a struct, by position.
        if !raw.get().starts_with('{') {
            return Err(Refusal::new(
                "invalid_event",
                "an event must be a JSON object",
                None,
            ));
        }
        let wire: WireEvent<'_> = serde_json::from_str(raw.get()).map_err(shape_error)?;
        let session_id = required_str(wire.session_id, "session_id")?;
        let session_id = SessionId::parse(&session_id).map_err(|m| invalid("session_id", m))?;
        let category = required_str(wire.category, "category")?;
        identifier(&category).map_err(|m| invalid("category", m))?;
        let name = required_str(wire.name, "name")?;
        identifier(&name).map_err(|m| invalid("name", m))?;
        let timestamp = parse_time(&required_str(wire.timestamp, "timestamp")?, "timestamp")?;
        let sent_at = optional_str(wire.sent_at, "sent_at")?
            .map(|s| parse_time(&s, "sent_at"))
            .transpose()?;
        let seq = match wire.seq {
            None => None,
            Some(raw) if starts_number(raw) => Some(
                serde_json::from_str::<i64>(raw.get())
                    .map_err(|_| invalid("seq", "must be an integer between -2^63 and 2^63-1"))?,
            ),
            Some(_) => return Err(wrong_type("seq", "an integer")),
        };
        let client_id = optional_str(wire.id, "id")?;
        if let Some(id) = &client_id {
            identifier(id).map_err(|m| invalid("id", m))?;
        }
        let data = match wire.data {
            None => empty_object(),
            Some(raw) if raw.get().starts_with('{') => raw.to_owned(),
            Some(_) => return Err(wrong_type("data", "a JSON object")),
        };
        Ok(IncomingEvent {
            client_id,
            session_id,
            event_type: EventType { category, name },
            data,
            timestamp: timestamp.as_micros(),
            sent_at: sent_at.map(Timestamp::as_micros),
            seq,
        })
    }
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("{} is JSON")
}

fn starts_number(raw: &RawValue) -> bool {
    raw.get()
        .starts_with(|c: char| c == '-' || c.is_ascii_digit())
}

/// Turns serde's refusal of the element's shape into a refusal naming the field.
fn shape_error(error: serde_json::Error) -> Refusal {
    let message = error.to_string();
    let quoted = message.split('`').nth(1).map(str::to_owned);
    if message.starts_with("unknown field") {
        let field = quoted.unwrap_or_default();
        Refusal::new(
            "unknown_field",
            format!("unknown field `{field}`; the payload belongs in `data`"),
            Some(&field),
        )
    } else if message.starts_with("duplicate field") {
        let field = quoted.unwrap_or_default();
        Refusal::new(
            "duplicate_field",
            format!("field `{field}` appears more than once"),
            Some(&field),
        )
    } else {
        Refusal::new("invalid_event", "an event must be a JSON object", None)
    }
}

fn optional_str(raw: Option<&RawValue>, field: &'static str) -> Result<Option<String>, Refusal> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.get().starts_with('"') => serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| invalid(field, "is not a valid string")),
        Some(_) => Err(wrong_type(field, "a string")),
    }
}

fn required_str(raw: Option<&RawValue>, field: &'static str) -> Result<String, Refusal> {
    optional_str(raw, field)?.ok_or_else(|| {
        Refusal::new(
            "missing_field",
            format!("`{field}` is required"),
            Some(field),
        )
    })
}

fn parse_time(value: &str, field: &'static str) -> Result<Timestamp, Refusal> {
    Timestamp::parse(value).map_err(|e| {
        Refusal::new(
            "invalid_timestamp",
            format!("`{field}` is not a valid timestamp ({})", e.0),
            Some(field),
        )
    })
}

fn wrong_type(field: &'static str, expected: &str) -> Refusal {
    Refusal::new(
        "invalid_type",
        format!("`{field}` must be {expected}"),
        Some(field),
    )
}

fn invalid(field: &'static str, why: &str) -> Refusal {
    Refusal::new("invalid_value", format!("`{field}` {why}"), Some(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(input: &Value) -> Result<IncomingEvent, Refusal> {
        IncomingEvent::parse(&serde_json::value::to_raw_value(input).unwrap())
    }

    fn check(input: Value, expect: Result<(), (&str, Option<&str>)>) {
        let got = parse(&input);
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
        let event = parse(&with("seq", json!(3))).unwrap();
        assert_eq!(event.timestamp, 1_672_564_527_243_860);
        assert_eq!(event.seq, Some(3));
        assert_eq!(event.data.get(), r#"{"host":"h","path":"/"}"#);
    }

    #[test]
    fn the_wire_form_parses_back_to_the_same_event() {
        let mut input = with("seq", json!(3));
        input["id"] = json!("client-1");
        input["sent_at"] = json!("2023-01-01T09:15:28Z");
        let event = parse(&input).unwrap();
        assert_eq!(parse(&event.to_wire()).unwrap(), event);
    }

    #[test]
    fn data_is_optional_and_defaults_to_an_empty_object() {
        assert!(parse(&without("data")).unwrap().data.get() == "{}");
    }

    #[test]
    fn duplicate_top_level_fields_are_refused() {
        let raw = RawValue::from_string(
            r#"{"session_id":"a","session_id":"b","category":"c","name":"n","timestamp":"2023-01-01 00:00:00"}"#
                .to_owned(),
        )
        .unwrap();
        let refusal = IncomingEvent::parse(&raw).unwrap_err();
        assert_eq!(refusal.code, "duplicate_field");
        assert_eq!(refusal.field.as_deref(), Some("session_id"));
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let event = parse(&with("name", json!("say \"hi\" \u{e9}"))).unwrap();
        assert_eq!(event.event_type.name, "say \"hi\" é");
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
        check(json!("event"), Err(("invalid_event", None)));
        check(with("id", json!("abc")), Ok(()));
    }
}
