//! The Eye's server: everything that speaks HTTP, and the wiring of the process.
//!
//! - `state`: what every handler can reach (`AppState`);
//! - `service`: the business actions (applications and tokens, users, schemas, the
//!   refused-event workflow), called by the JSON API, the admin UI and the CLI alike;
//! - `api`: the JSON API and its OpenAPI document;
//! - `admin`: the admin web UI;
//! - `http`: the HTTP machinery shared by both (serve loop, middleware, errors, tokens,
//!   CORS, rate limits, metrics);
//! - `startup`: opens the store and the queue, starts the pipeline's worker, builds the
//!   router and runs it until shutdown; `config`: the settings.
//!
//! Imports go one way: `startup` → `api`, `admin` → `service`, `state` → `http`,
//! the pipeline, the store and the queue.

pub mod admin;
pub mod api;
pub mod config;
pub mod http;
pub mod service;
pub mod startup;
pub mod state;

pub use config::Settings;
pub use startup::{Application, router};
pub use state::AppState;
