//! `eye-bench validate`: the cost of checking one event against its type's schema,
//! for the three default schemas, without HTTP, the queue or the store. It uses the
//! schemas a new store ships with, loaded the way the worker loads them.

use std::time::Instant;

use eye_core::limits::PayloadLimits;
use eye_core::{EventType, IncomingEvent};
use eye_schema::{Check, Registry, UnknownTypePolicy};
use eye_store::EventTypes;
use eye_store::SqliteStore;
use serde_json::value::RawValue;

const CASES: [(&str, &str, &str); 4] = [
    (
        "page interaction",
        "pageview",
        r#"{"host":"www.consumeraffairs.com","path":"/reviews/page/3"}"#,
    ),
    (
        "page interaction",
        "cta click",
        r#"{"host":"www.consumeraffairs.com","path":"/","element":"chat bubble"}"#,
    ),
    (
        "form interaction",
        "submit",
        r#"{"host":"www.consumeraffairs.com","path":"/contact","form":{"first_name":"John","last_name":"Doe","email":"john@example.com"}}"#,
    ),
    // An invalid one: the cost of collecting violations.
    (
        "page interaction",
        "cta click",
        r#"{"host":"www.consumeraffairs.com","path":7}"#,
    ),
];

pub async fn run(iterations: usize) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("eye-bench-validate-")
        .tempdir()?;
    let store = SqliteStore::open(dir.path())?;
    let registry = Registry::new(UnknownTypePolicy::Accept);
    registry.load(store.active_types().await?);
    let limits = PayloadLimits::default();
    println!("validation per event, {iterations} iterations each (one core)");
    println!("| type | payload | schema check | parse + limits + check | checks/s |");
    println!("|---|---|---|---|---|");
    for (category, name, data) in CASES {
        let event_type = EventType {
            category: category.into(),
            name: name.into(),
        };
        let payload = RawValue::from_string(data.to_owned())?;
        let wire = format!(
            r#"{{"session_id":"s","category":"{category}","name":"{name}","data":{data},"timestamp":"2026-01-01T00:00:00Z"}}"#
        );
        let wire = RawValue::from_string(wire)?;
        let outcome = registry.check(&event_type, &payload);
        let label = match outcome {
            Check::Valid { .. } => "valid",
            Check::Warn { .. } => "warning",
            Check::Invalid(_) => "invalid",
        };

        let started = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(registry.check(&event_type, std::hint::black_box(&payload)));
        }
        let check_ns = started.elapsed().as_nanos() as f64 / iterations as f64;

        let started = Instant::now();
        for _ in 0..iterations {
            let event = IncomingEvent::parse(std::hint::black_box(&wire))
                .map_err(|r| anyhow::anyhow!(r.message))?;
            limits
                .check(&event.data)
                .map_err(|r| anyhow::anyhow!(r.message))?;
            std::hint::black_box(registry.check(&event.event_type, &event.data));
        }
        let full_ns = started.elapsed().as_nanos() as f64 / iterations as f64;
        println!(
            "| {category}/{name} | {label} | {:.2} µs | {:.2} µs | {:.0}k |",
            check_ns / 1e3,
            full_ns / 1e3,
            1e6 / check_ns
        );
    }
    Ok(())
}
