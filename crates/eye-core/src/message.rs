//! The message that travels through the queue from the API to the worker.
//!
//! The API parses and checks an event's shape, gives it its id and the time it was
//! received, and enqueues it. An element the API refused travels too, as a
//! [`Body::Rejected`], so that the worker records it in the error store: nothing a
//! client sent is silently dropped. The encoding is JSON, which any queue can carry.

use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::IncomingEvent;
use crate::reason::Rejection;

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
    Rejected {
        rejection: Rejection,
        raw: Box<RawValue>,
    },
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
