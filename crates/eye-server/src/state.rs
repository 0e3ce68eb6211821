//! What every handler can reach: the store, the queue, the pipeline's checks, the
//! caches and limits of the HTTP layer, the metrics. Built once by `startup`; it holds
//! handles, never handlers.

use std::sync::Arc;

use eye_pipeline::Checker;
use eye_queue::Queue;
use eye_store::Store;

use crate::config::Settings;
use crate::http::cors::OriginPolicy;
use crate::http::rate_limit::RateLimiter;
use crate::http::telemetry::Metrics;
use crate::http::tokens::Authenticator;

/// What every handler can reach. One `Arc` around it all, so that handing the state to
/// a request costs one atomic increment rather than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub auth: Arc<Authenticator>,
    pub metrics: Arc<Metrics>,
    /// The checks and the schema registry, shared with the worker.
    pub checker: Arc<Checker>,
    /// Browser origins allowed per application (CORS).
    pub origins: OriginPolicy,
    /// Per-application ingest limits; `None` when no rate is configured.
    pub rate_limiter: Option<RateLimiter>,
    /// Wakes this process's builder of indexed fields' indexes (when it runs one).
    pub index_builder: Arc<tokio::sync::Notify>,
}
