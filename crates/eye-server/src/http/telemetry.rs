//! Metrics in the Prometheus (OpenMetrics) text format, rendered by `GET /metrics`.
//!
//! Counters are plain atomics behind `prometheus-client`; the queue depth and the
//! process memory are read when scraped, so they cost nothing between scrapes.

use std::sync::Arc;

use eye_pipeline::PipelineMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use eye_queue::Queue;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

/// The routes as labels. Static strings keep the per-request bookkeeping free of
/// allocations, and a fixed set keeps the label cardinality bounded.
const ROUTES: [&str; 27] = [
    "/events",
    "/events/",
    "/sessions",
    "/sessions/{id}",
    "/stats",
    "/errors",
    "/errors/summary",
    "/errors/reprocess",
    "/errors/{id}",
    "/errors/{id}/dismiss",
    "/event-types",
    "/event-types/{category}/{name}",
    "/event-types/{category}/{name}/schema",
    "/apps",
    "/apps/{name}/revoke",
    "/apps/{name}/origins",
    "/apps/{name}/retention",
    "/retention/run",
    "/erasures",
    "/erasures/{id}",
    "/tokens",
    "/tokens/{id}/revoke",
    "/audit",
    "/healthz",
    "/readyz",
    "/metrics",
    "other",
];

/// The route template a path matches, as the router would match it: by segments,
/// `{x}` matching any non-empty one, static routes listed before the templates that
/// would also match them.
pub fn route_label(path: &str) -> &'static str {
    ROUTES
        .iter()
        .copied()
        .find(|route| matches(route, path))
        .unwrap_or("other")
}

fn matches(route: &str, path: &str) -> bool {
    let (mut route, mut path) = (route.split('/'), path.split('/'));
    loop {
        match (route.next(), path.next()) {
            (None, None) => return true,
            (Some(r), Some(p)) if r.starts_with('{') && !p.is_empty() => {}
            (Some(r), Some(p)) if r == p => {}
            _ => return false,
        }
    }
}

pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

pub struct Metrics {
    registry: Registry,
    /// The worker's metrics, registered here.
    pub pipeline: PipelineMetrics,
    pub events_accepted: Counter,
    pub events_refused: Counter,
    /// Ingest requests that found the queue full and waited for room.
    pub ingest_waits: Counter,
    pub queue_depth: Gauge,
    pub queue_oldest_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub resident_memory: Gauge,
    pub requests: Family<RequestLabels, Histogram>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let events_accepted = Counter::default();
        let events_refused = Counter::default();
        let ingest_waits = Counter::default();
        let queue_depth = Gauge::default();
        let queue_oldest_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let resident_memory = Gauge::default();
        // 50 µs to ~13 s: covers a cached 202 and a stalled disk alike.
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
        });
        registry.register(
            "eye_events_accepted",
            "Events accepted by ingest (answered 202)",
            events_accepted.clone(),
        );
        registry.register(
            "eye_events_rejected",
            "Events refused by ingest (malformed)",
            events_refused.clone(),
        );
        registry.register(
            "eye_ingest_queue_full_waits",
            "Ingest requests that found the queue full and waited for room (backpressure)",
            ingest_waits.clone(),
        );
        registry.register(
            "eye_queue_depth",
            "Messages queued and not yet acknowledged",
            queue_depth.clone(),
        );
        registry.register(
            "eye_queue_oldest_age_seconds",
            "How long ago the oldest event still in the queue was received (0 when empty)",
            queue_oldest_age.clone(),
        );
        registry.register(
            "eye_process_resident_memory_bytes",
            "Resident memory of the process",
            resident_memory.clone(),
        );
        registry.register(
            "eye_http_request_duration_seconds",
            "HTTP request duration by method, route and status",
            requests.clone(),
        );
        let pipeline = PipelineMetrics::default();
        pipeline.register(&mut registry);
        Arc::new(Metrics {
            registry,
            pipeline,
            events_accepted,
            events_refused,
            ingest_waits,
            queue_depth,
            queue_oldest_age,
            resident_memory,
            requests,
        })
    }

    /// Records one request's duration under its method, route and status.
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &'static str,
        status: axum::http::StatusCode,
        took: std::time::Duration,
    ) {
        let labels = RequestLabels {
            method,
            route,
            status: status.as_u16(),
        };
        self.requests
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Resident set size from `/proc/self/statm` (Linux); 0 where unavailable.
fn resident_memory_bytes() -> i64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The age of the backlog: now minus the reception time of the oldest queued event.
/// A queue that cannot be read reports what it last could not: `NaN`.
pub async fn oldest_age_seconds(queue: &dyn Queue) -> f64 {
    match queue.oldest_payload().await {
        Ok(None) => 0.0,
        Ok(Some(payload)) => eye_core::Envelope::decode_all(&payload)
            .ok()
            .and_then(|envelopes| envelopes.iter().map(|e| e.received_at).min())
            .map_or(f64::NAN, |received_at| {
                let now = eye_core::Timestamp::now().as_micros();
                (now - received_at).max(0) as f64 / 1e6
            }),
        Err(error) => {
            tracing::warn!(%error, "reading the queue's oldest message failed");
            f64::NAN
        }
    }
}

impl Metrics {
    /// The exposition, after reading the gauges that cost nothing between scrapes:
    /// the queue's depth and the age of its backlog, the process's memory.
    pub async fn scrape(&self, queue: &dyn Queue) -> String {
        self.queue_depth
            .set(i64::try_from(queue.depth()).unwrap_or(i64::MAX));
        self.resident_memory.set(resident_memory_bytes());
        self.queue_oldest_age.set(oldest_age_seconds(queue).await);
        self.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_the_route_the_router_would_match() {
        for (path, route) in [
            ("/events", "/events"),
            ("/events/", "/events/"),
            ("/sessions/abc", "/sessions/{id}"),
            ("/errors/summary", "/errors/summary"),
            ("/errors/reprocess", "/errors/reprocess"),
            ("/errors/0191-ab", "/errors/{id}"),
            ("/errors/0191-ab/dismiss", "/errors/{id}/dismiss"),
            (
                "/event-types/page/view/schema",
                "/event-types/{category}/{name}/schema",
            ),
            ("/healthz", "/healthz"),
            // Not routes: an empty parameter, an extra or a missing segment, the admin UI.
            ("/sessions/", "other"),
            ("/sessions/a/b", "other"),
            ("/errors", "/errors"),
            ("/event-types/page", "other"),
            ("/admin/events", "other"),
            ("/", "other"),
            ("", "other"),
        ] {
            assert_eq!(route_label(path), route, "{path}");
        }
    }
}
