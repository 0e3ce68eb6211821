//! Acceptance, on the API's side: each element of a request becomes an `Envelope`
//! (an event with its id, or a refusal carrying the raw element for the error store),
//! and a request's envelopes become queue messages.

use eye_core::limits::PayloadLimits;
use eye_core::{Envelope, Refusal};
use eye_queue::Message;
use serde_json::value::RawValue;

use crate::checks;

/// The envelopes of a request's elements, in order, all received at `received_at`.
pub fn envelopes(
    elements: Vec<&RawValue>,
    app_id: i64,
    received_at: i64,
    limits: &PayloadLimits,
) -> Vec<Envelope> {
    elements
        .into_iter()
        .map(|raw| checks::accept(raw, app_id, received_at, limits))
        .collect()
}

/// An element refused before it could be read as an event (a Segment message that
/// maps onto none): kept whole for the error store, with a fresh id.
pub fn refused(raw: Box<RawValue>, app_id: i64, received_at: i64, refusal: Refusal) -> Envelope {
    Envelope {
        id: eye_core::ids::new_event_id(),
        app_id,
        received_at,
        body: eye_core::Body::Refused { refusal, raw },
    }
}

/// The queue messages that carry `envelopes`: one per event for a queue that
/// de-duplicates by message id (the event id is that id, so a resent event is dropped
/// by the queue itself), else one for the whole request (a batch costs one row,
/// whatever its size).
pub fn messages(envelopes: &[Envelope], one_per_event: bool) -> Vec<Message> {
    if one_per_event {
        envelopes
            .iter()
            .map(|envelope| Message {
                payload: Envelope::encode_all(std::slice::from_ref(envelope)),
                events: 1,
                id: Some(envelope.id.to_string()),
            })
            .collect()
    } else {
        vec![Message {
            payload: Envelope::encode_all(envelopes),
            events: envelopes.len() as u32,
            id: None,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_core::Body;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn good_and_refused_elements_both_become_envelopes_and_pack_into_messages() {
        let good = raw(
            r#"{"session_id":"s","category":"c","name":"n","timestamp":"2023-01-01T00:00:00Z","id":"k"}"#,
        );
        let bad = raw(r#"{"session_id":"s"}"#);
        let envelopes = envelopes(vec![&good, &bad], 7, 1, &PayloadLimits::default());
        assert!(matches!(envelopes[0].body, Body::Event(_)));
        assert!(matches!(envelopes[1].body, Body::Refused { .. }));
        assert_eq!(
            envelopes[0].id,
            eye_core::ids::event_id(7, Some("k")),
            "a client id gives the same event id on every resend"
        );

        let one = messages(&envelopes, false);
        assert_eq!(
            (one.len(), one[0].events, one[0].id.is_none()),
            (1, 2, true)
        );
        let each = messages(&envelopes, true);
        assert_eq!(each.len(), 2);
        assert_eq!(each[1].id, Some(envelopes[1].id.to_string()));
        let decoded = Envelope::decode_all(&each[0].payload).unwrap();
        assert_eq!(decoded[0].id, envelopes[0].id);
    }
}
