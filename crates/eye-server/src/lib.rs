//! The Eye's server: HTTP API (`routes`), authentication (`auth`), configuration
//! (`config`) and metrics (`telemetry`), the HTTP/1 server loop (`serve`) and the
//! wiring of all of it with the pipeline's worker (`startup`). Only this crate knows
//! HTTP.

pub mod auth;
pub mod config;
pub mod cors;
pub mod edges;
pub mod error;
pub mod management;
pub mod openapi;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod serve;
pub mod startup;
pub mod telemetry;
pub mod users;

pub use config::Settings;
pub use startup::{AppState, Application, router};
