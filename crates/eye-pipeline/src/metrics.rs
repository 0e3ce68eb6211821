//! The pipeline's metrics: what the worker stored, refused and how long it took. The
//! server registers them beside its own (`register`), so `/metrics` shows one set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub reason: String,
    /// `category/name` for registered types; `other` for the rest, whose names come
    /// from clients and would make the label set unbounded.
    pub r#type: String,
}

/// Handles to the pipeline's metrics; clones share the same values.
#[derive(Clone)]
pub struct PipelineMetrics {
    pub events_stored: Counter,
    pub events_duplicate: Counter,
    /// Events dropped because an erasure made after they were received covers them.
    pub events_erased: Counter,
    /// Events deleted by retention.
    pub events_expired: Counter,
    /// Refused-event records deleted by retention.
    pub refusals_expired: Counter,
    /// Records written to the store of refused events (the error store).
    pub refusals_recorded: Counter,
    pub warnings_recorded: Counter,
    /// Refused events that a reprocess turned into events.
    pub refusals_reprocessed: Counter,
    pub store_write_failures: Counter,
    pub validation_failures: Family<FailureLabels, Counter>,
    pub worker_batch_events: Histogram,
    /// How long the worker's last batch waited for more events.
    pub worker_linger_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub store_write_seconds: Histogram,
    pub event_lag_seconds: Histogram,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        PipelineMetrics {
            events_stored: Counter::default(),
            events_duplicate: Counter::default(),
            events_erased: Counter::default(),
            events_expired: Counter::default(),
            refusals_expired: Counter::default(),
            refusals_recorded: Counter::default(),
            warnings_recorded: Counter::default(),
            refusals_reprocessed: Counter::default(),
            store_write_failures: Counter::default(),
            validation_failures: Family::default(),
            worker_batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            worker_linger_seconds: Gauge::default(),
            store_write_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 18)),
            event_lag_seconds: Histogram::new(exponential_buckets(0.000_5, 1.5, 32)),
        }
    }
}

impl PipelineMetrics {
    /// Adds the pipeline's metrics to `registry` under their public names.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "eye_events_stored",
            "Events written to the store",
            self.events_stored.clone(),
        );
        registry.register(
            "eye_events_duplicate",
            "Events not stored again because their id was already stored",
            self.events_duplicate.clone(),
        );
        registry.register(
            "eye_events_erased",
            "Queued events dropped because an erasure made after they were received covers them",
            self.events_erased.clone(),
        );
        registry.register(
            "eye_events_expired",
            "Events deleted because they were past their retention",
            self.events_expired.clone(),
        );
        registry.register(
            "eye_errors_expired",
            "Error records deleted because they were past their retention",
            self.refusals_expired.clone(),
        );
        registry.register(
            "eye_errors_recorded",
            "Records written to the error store",
            self.refusals_recorded.clone(),
        );
        registry.register(
            "eye_warnings_recorded",
            "Shadow-mode schema violations recorded for events that were stored",
            self.warnings_recorded.clone(),
        );
        registry.register(
            "eye_errors_reprocessed",
            "Errors that became events after a reprocess",
            self.refusals_reprocessed.clone(),
        );
        registry.register(
            "eye_store_write_failures",
            "Worker batch writes that failed and were retried (store unreachable or refusing)",
            self.store_write_failures.clone(),
        );
        registry.register(
            "eye_validation_failures",
            "Events recorded as errors or shadow-mode warnings, by reason and event type",
            self.validation_failures.clone(),
        );
        registry.register(
            "eye_worker_batch_events",
            "Messages per worker batch",
            self.worker_batch_events.clone(),
        );
        registry.register(
            "eye_worker_linger_seconds",
            "How long the worker's last batch waited for more events (longer under load; 0 when it was full at once)",
            self.worker_linger_seconds.clone(),
        );
        registry.register(
            "eye_store_write_duration_seconds",
            "Duration of one worker batch's store transaction",
            self.store_write_seconds.clone(),
        );
        registry.register(
            "eye_event_lag_seconds",
            "Time from an event's reception to its storage",
            self.event_lag_seconds.clone(),
        );
    }
}
