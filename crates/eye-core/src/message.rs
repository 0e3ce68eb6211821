//! The message that travels through the queue from the API to the worker.
//!
//! The API parses and checks an event's shape, gives it its id and the time it was
//! received, and enqueues it. An element the API refused travels too, as a
//! [`Body::Refused`], so that the worker records it in the error store: nothing a
//! client sent is silently dropped. The encoding is JSON, which any queue can carry;
//! the embedded queue carries all the envelopes of one request as one message.

use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::IncomingEvent;
use crate::reason::Refusal;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    /// The event id; also the message id that makes redelivery harmless.
    pub id: Uuid,
    pub app_id: i64,
    /// When the API received the request, in microseconds since the epoch.
    pub received_at: i64,
    pub body: Body,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    Event(IncomingEvent),
    // The wire names predate the word "refused": messages already queued by an older
    // version must still decode.
    #[serde(rename = "rejected")]
    Refused {
        #[serde(rename = "rejection")]
        refusal: Refusal,
        raw: Box<RawValue>,
    },
}

impl Envelope {
    /// Encodes the envelopes of one request as one queue message (a JSON array).
    pub fn encode_all(envelopes: &[Envelope]) -> Vec<u8> {
        serde_json::to_vec(envelopes).expect("envelopes always serialize")
    }

    pub fn decode_all(bytes: &[u8]) -> Result<Vec<Self>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Refusal;

    #[test]
    fn envelopes_round_trip_with_their_payload_text_intact() {
        let raw = RawValue::from_string(
            r#"{"session_id":"s","category":"c","name":"n","data":{"a": [1, 2]},"timestamp":"2023-01-01 00:00:00"}"#
                .to_owned(),
        )
        .unwrap();
        let event = IncomingEvent::parse(&raw).unwrap();
        let envelopes = vec![
            Envelope {
                id: Uuid::now_v7(),
                app_id: 1,
                received_at: 5,
                body: Body::Event(event.clone()),
            },
            Envelope {
                id: Uuid::now_v7(),
                app_id: 1,
                received_at: 5,
                body: Body::Refused {
                    refusal: Refusal::new("invalid_event", "no", None),
                    raw: raw.clone(),
                },
            },
        ];
        let decoded = Envelope::decode_all(&Envelope::encode_all(&envelopes)).unwrap();
        assert_eq!(decoded.len(), 2);
        match &decoded[0].body {
            Body::Event(e) => {
                assert_eq!(*e, event);
                assert_eq!(e.data.get(), r#"{"a": [1, 2]}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&decoded[1].body, Body::Refused { raw: r, .. } if r.get() == raw.get()));
    }

    /// The queue's JSON for an event, byte for byte: messages queued by an earlier
    /// version (or another process of the fleet) must decode, and new ones read the same.
    #[test]
    fn an_event_envelope_keeps_its_json_form() {
        let queued = concat!(
            r#"[{"id":"0190b5a3-7a2e-7cc2-9a3b-2f1c0e6d4a51","app_id":3,"received_at":5,"#,
            r#""body":{"event":{"client_id":"c-1","session_id":"s","category":"page interaction","#,
            r#""name":"cta click","data":{"a": [1, 2]},"timestamp":1700000000000000,"seq":2}}},"#,
            r#"{"id":"0190b5a3-7a2e-7cc2-9a3b-2f1c0e6d4a52","app_id":3,"received_at":6,"#,
            r#""body":{"event":{"session_id":"t","category":"c","name":"n","data":{},"#,
            r#""timestamp":-1,"sent_at":7}}}]"#
        );
        let decoded = Envelope::decode_all(queued.as_bytes()).unwrap();
        let Body::Event(event) = &decoded[0].body else {
            panic!("{:?}", decoded[0].body)
        };
        assert_eq!(event.client_id.as_deref(), Some("c-1"));
        assert_eq!(event.session_id.as_str(), "s");
        assert_eq!(event.event_type.category, "page interaction");
        assert_eq!(event.event_type.name, "cta click");
        assert_eq!(event.data.get(), r#"{"a": [1, 2]}"#);
        assert_eq!(
            (event.timestamp, event.sent_at, event.seq),
            (1_700_000_000_000_000, None, Some(2))
        );
        let Body::Event(event) = &decoded[1].body else {
            panic!("{:?}", decoded[1].body)
        };
        assert_eq!(
            (event.client_id.as_deref(), event.sent_at, event.seq),
            (None, Some(7), None)
        );
        assert_eq!(
            String::from_utf8(Envelope::encode_all(&decoded)).unwrap(),
            queued
        );
    }
}
