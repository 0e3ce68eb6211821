//! Events for the stores' tests.

use eye_core::{IncomingEvent, ids};
use serde_json::value::RawValue;

use crate::Processed;

/// An event of type `page interaction`/`name` in `session`, at `second` past
/// 2026-01-01T00:00:00Z, with a fresh id.
pub fn event(app_id: i64, session: &str, name: &str, second: u32) -> Processed {
    let raw = format!(
        r#"{{"session_id":"{session}","category":"page interaction","name":"{name}","data":{{"host":"h","path":"/"}},"timestamp":"2026-01-01T00:00:{second:02}Z"}}"#
    );
    let raw = RawValue::from_string(raw).expect("valid JSON");
    Processed::Event {
        id: ids::new_event_id(),
        app_id,
        received_at: 0,
        event: IncomingEvent::parse(&raw).expect("valid event"),
        schema_version: None,
        warning: None,
    }
}

/// An event with a client `id`, under today's id rule.
pub fn event_with_client_id(app_id: i64, client_id: &str) -> Processed {
    let raw = format!(
        r#"{{"id":"{client_id}","session_id":"s","category":"page interaction","name":"pageview","data":{{"host":"h","path":"/"}},"timestamp":"2026-01-01T00:00:00Z"}}"#
    );
    let raw = RawValue::from_string(raw).expect("valid JSON");
    Processed::Event {
        id: ids::event_id(app_id, Some(client_id)),
        app_id,
        received_at: 0,
        event: IncomingEvent::parse(&raw).expect("valid event"),
        schema_version: None,
        warning: None,
    }
}

/// The same event, refused by the worker (as a schema violation would be).
pub fn refused(processed: Processed) -> Processed {
    let Processed::Event {
        id,
        app_id,
        received_at,
        event,
        ..
    } = processed
    else {
        unreachable!("an event")
    };
    Processed::Refused {
        id,
        app_id,
        received_at,
        refusal: eye_core::Refusal::new("schema_violation", "refused", None),
        raw: event.to_wire().to_string(),
        event: Some(event),
    }
}
