//! End-to-end tests: the real `eye` binary, a temporary data directory, HTTP.

mod admin;
mod analytics;
mod backup;
mod bad_input;
mod concurrency;
mod crash;
mod disk_full;
mod error_workflow;
mod helpers;
mod hostile;
mod idempotency;
mod indexed;
mod ingest;
mod lifecycle;
mod management;
mod metrics;
mod nats;
mod postgres;
mod query;
mod schemas;
mod segment;
mod tokens;
