//! HTTP handlers, one module per resource.

pub mod admin;
pub mod errors;
pub mod event_types;
pub mod events;
pub mod health;
pub mod ingest;
pub mod manage;
pub mod params;
pub mod sdk;
pub mod sessions;
pub mod stats;
