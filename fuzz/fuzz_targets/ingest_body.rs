//! The ingest body decoder, as the API runs it: split the body (JSON or NDJSON, chosen
//! by the first byte), parse and limit-check each element, build the queue message,
//! and read it back as the worker does. Nothing may panic, and what the API queues
//! the worker must be able to read.
#![no_main]

use eye_core::body::{BodyFormat, split};
use eye_core::limits::PayloadLimits;
use eye_core::{Body, Envelope, IncomingEvent, ids};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else {
        return;
    };
    let format = if selector & 1 == 0 {
        BodyFormat::Json
    } else {
        BodyFormat::Ndjson
    };
    let Ok((elements, _single)) = split(bytes, format) else {
        return;
    };
    let limits = PayloadLimits::default();
    let envelopes: Vec<Envelope> = elements
        .iter()
        .map(|raw| {
            let parsed = IncomingEvent::parse(raw).and_then(|e| limits.check(&e.data).map(|()| e));
            let body = match parsed {
                Ok(event) => Body::Event(event),
                Err(refusal) => Body::Refused {
                    refusal,
                    raw: (*raw).to_owned(),
                },
            };
            Envelope {
                id: ids::new_event_id(),
                app_id: 1,
                received_at: 0,
                body,
            }
        })
        .collect();
    let encoded = Envelope::encode_all(&envelopes);
    let decoded = Envelope::decode_all(&encoded).expect("a queued message decodes");
    assert_eq!(decoded.len(), envelopes.len());
});
