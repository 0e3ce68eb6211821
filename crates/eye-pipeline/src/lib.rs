//! The path of an event once the HTTP layer has its bytes, to the store:
//!
//! ```text
//! API:    body elements --accept--> envelopes --accept::messages--> queue
//! worker: queue --Worker--> checks (Checker) --> Store::write --> ack
//! ```
//!
//! `checks` is the one place that lists every check an event goes through, in order:
//! at acceptance its shape (`IncomingEvent::parse`) and its payload's limits, then in
//! the worker the future-timestamp rule (`future`) and its type's schema. Reprocessing
//! a refused event reruns all of them (`Checker::recheck`). The crate knows nothing of
//! HTTP; the server wires it to its routes and its metrics registry.

pub mod accept;
pub mod checks;
pub mod future;
pub mod metrics;
pub mod worker;

pub use checks::Checker;
pub use metrics::PipelineMetrics;
pub use worker::{ExecutionOutcome, Worker};
