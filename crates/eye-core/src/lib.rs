//! The Eye's domain model: events and their parsing, payload limits, timestamps, event
//! ids, tokens and reason codes. This crate does no IO, so that the API, the worker
//! and every back end agree on one definition of an event.

pub mod auth;
pub mod body;
pub mod event;
pub mod field_path;
pub mod ids;
pub mod limits;
pub mod message;
pub mod reason;
pub mod retention;
pub mod schema;
pub mod segment;
pub mod timestamp;

pub use event::{EventType, IncomingEvent, SessionId};
pub use field_path::FieldPath;
pub use message::{Body, Envelope};
pub use reason::{Refusal, Violation};
pub use timestamp::Timestamp;
