//! The worker: takes messages from the queue in batches, validates them, writes each
//! batch to the store in one transaction, and only then acknowledges it.
//!
//! Acknowledging after the commit makes delivery at-least-once; the store's unique
//! event id makes storage exactly-once. A store failure is retried with backoff and the
//! batch is kept, so nothing is acknowledged that is not stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eye_core::{Body, Envelope};
use eye_queue::{Delivery, Queue};
use eye_store::{Processed, Store, WriteOutcome};
use tokio::sync::watch;

use crate::checks::Checker;
use crate::metrics::{FailureLabels, PipelineMetrics};

pub struct Worker {
    metrics: PipelineMetrics,
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
    batch_size: usize,
    /// The shortest wait of a batch smaller than `batch_size` for more events (see
    /// [`Worker::current_linger`]). A store commit has a large fixed cost (an fsync,
    /// index pages rewritten), so a worker that keeps up should still commit thousands
    /// of events at a time: lingering 100 ms doubles the store's throughput for 100 ms
    /// of lag.
    linger: Duration,
    /// The future-timestamp rule and the schemas.
    checker: Arc<Checker>,
    /// How long the last store write took, in microseconds.
    last_write_micros: AtomicU64,
}

/// Under load a small batch waits this many times as long as the last write took...
const LINGER_PER_WRITE: u32 = 4;
/// ...but never more than this many times the configured linger.
const MAX_LINGER_FACTOR: u32 = 10;
/// How often a lingering worker looks whether a full batch is waiting.
const LINGER_POLL: Duration = Duration::from_millis(10);

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum ExecutionOutcome {
    EmptyQueue,
    Processed(WriteOutcome),
}

/// The linger after a store write that took `last_write`, for a configured `linger`.
fn linger_after(last_write: Duration, linger: Duration) -> Duration {
    last_write
        .saturating_mul(LINGER_PER_WRITE)
        .clamp(linger, linger.saturating_mul(MAX_LINGER_FACTOR))
}

impl Worker {
    pub fn new(
        queue: Arc<dyn Queue>,
        store: Arc<dyn Store>,
        checker: Arc<Checker>,
        metrics: PipelineMetrics,
        batch_size: usize,
        linger: Duration,
    ) -> Worker {
        Worker {
            metrics,
            queue,
            store,
            batch_size,
            linger,
            checker,
            last_write_micros: AtomicU64::new(0),
        }
    }

    /// Processes batches until `stop` turns true, then drains what is already queued.
    pub async fn run_until_stopped(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            // Only the wait for messages is interrupted by a stop: a batch once fetched
            // is always stored and acknowledged, never abandoned half way.
            let fetched = tokio::select! {
                _ = stop.changed() => break,
                fetched = self.queue.fetch(self.batch_size, Duration::from_millis(500)) => fetched,
            };
            let step = match fetched {
                Ok(deliveries) => {
                    let deliveries = self.linger_for_more(deliveries, &mut stop).await;
                    self.execute(deliveries).await
                }
                Err(error) => Err(error.into()),
            };
            if let Err(error) = step {
                tracing::error!(%error, "worker step failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Drain: events accepted before the stop are stored before the process exits.
        while let Ok(ExecutionOutcome::Processed(_)) = self.try_execute_task(Duration::ZERO).await {
        }
    }

    /// How long a batch smaller than `batch_size` waits for more: the configured linger
    /// while the store is quick, and as the store's writes grow slower (under load),
    /// `LINGER_PER_WRITE` times the last write, up to `MAX_LINGER_FACTOR` times the
    /// configured linger. Each event then costs the store less (one transaction's index
    /// pages are shared by more events) exactly when the cores are scarce; an idle
    /// server still stores an event within the configured linger.
    pub fn current_linger(&self) -> Duration {
        let last_write = Duration::from_micros(self.last_write_micros.load(Ordering::Relaxed));
        linger_after(last_write, self.linger)
    }

    /// Tops up a batch smaller than `batch_size` with what arrives within
    /// [`Worker::current_linger`]. The wait ends early once a full batch is waiting
    /// (lingering longer would only hold back a full queue), or on a stop; past the
    /// configured linger, also once no event came in the last `LINGER_POLL`, so that
    /// the end of a load is stored at once. A failure to fetch more keeps what was fetched.
    async fn linger_for_more(
        &self,
        mut deliveries: Vec<Delivery>,
        stop: &mut watch::Receiver<bool>,
    ) -> Vec<Delivery> {
        let events: usize = deliveries.iter().map(|d| d.events as usize).sum();
        if deliveries.is_empty() {
            return deliveries;
        }
        if events >= self.batch_size || self.linger.is_zero() {
            self.metrics.worker_linger_seconds.set(0.0);
            return deliveries;
        }
        let started = tokio::time::Instant::now();
        let (configured, deadline) = (started + self.linger, started + self.current_linger());
        // The queue's depth counts the events just fetched: they are not acknowledged.
        // (NATS's depth is read twice a second, so there the stretch beyond the
        // configured linger nearly always ends at its first look: the old fixed linger.)
        let mut depth = self.queue.depth();
        while depth < self.batch_size as u64 {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep((deadline - now).min(LINGER_POLL)) => {}
            }
            let before = std::mem::replace(&mut depth, self.queue.depth());
            if depth <= before && tokio::time::Instant::now() >= configured {
                break;
            }
        }
        self.metrics
            .worker_linger_seconds
            .set(started.elapsed().as_secs_f64());
        match self
            .queue
            .fetch(self.batch_size - events, Duration::ZERO)
            .await
        {
            Ok(more) => deliveries.extend(more),
            Err(error) => tracing::warn!(%error, "fetching more for a lingering batch"),
        }
        deliveries
    }

    /// Fetches one batch (waiting up to `wait`), stores it and acknowledges it.
    pub async fn try_execute_task(&self, wait: Duration) -> anyhow::Result<ExecutionOutcome> {
        let deliveries = self.queue.fetch(self.batch_size, wait).await?;
        self.execute(deliveries).await
    }

    async fn execute(&self, mut deliveries: Vec<Delivery>) -> anyhow::Result<ExecutionOutcome> {
        if deliveries.is_empty() {
            return Ok(ExecutionOutcome::EmptyQueue);
        }
        // A batch once fetched is never given up (the queue would not deliver it again
        // before a restart): a registry that cannot be loaded is retried like a store
        // that cannot be written.
        let mut backoff = Duration::from_millis(50);
        while let Err(error) = self.checker.refresh_if_stale().await {
            tracing::error!(
                error = format!("{error:#}"),
                "schema registry unavailable; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        let batch = Arc::new(self.process(&deliveries));
        // Only the positions are needed to acknowledge: the raw messages go now rather
        // than after the transaction (a tenth of a full batch's memory).
        for delivery in &mut deliveries {
            delivery.payload = Vec::new();
        }
        let mut backoff = Duration::from_millis(50);
        let outcome = loop {
            let started = std::time::Instant::now();
            match self.store.write(Arc::clone(&batch)).await {
                Ok(outcome) => {
                    let took = started.elapsed();
                    self.last_write_micros
                        .store(took.as_micros() as u64, Ordering::Relaxed);
                    self.record(&batch, outcome, took);
                    break outcome;
                }
                Err(error) => {
                    self.metrics.store_write_failures.inc();
                    tracing::error!(%error, events = batch.len(), "store write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        self.queue.ack(&deliveries).await?;
        tracing::debug!(?outcome, "batch stored");
        Ok(ExecutionOutcome::Processed(outcome))
    }

    fn record(&self, batch: &[Processed], outcome: WriteOutcome, took: Duration) {
        let metrics = &self.metrics;
        metrics.events_stored.inc_by(outcome.stored);
        metrics.events_duplicate.inc_by(outcome.duplicates);
        metrics.events_erased.inc_by(outcome.erased);
        metrics.refusals_recorded.inc_by(outcome.refused);
        metrics.warnings_recorded.inc_by(outcome.warnings);
        metrics.worker_batch_events.observe(batch.len() as f64);
        metrics.store_write_seconds.observe(took.as_secs_f64());
        let now = eye_core::Timestamp::now().as_micros();
        for processed in batch {
            match processed {
                Processed::Event {
                    received_at,
                    warning,
                    event,
                    ..
                } => {
                    metrics
                        .event_lag_seconds
                        .observe((now - received_at).max(0) as f64 / 1e6);
                    if let Some(warning) = warning {
                        self.count_failure(&warning.code, Some(event));
                    }
                }
                Processed::Refused { refusal, event, .. } => {
                    self.count_failure(&refusal.code, event.as_ref())
                }
            }
        }
    }

    fn count_failure(&self, reason: &str, event: Option<&eye_core::IncomingEvent>) {
        let r#type = match event {
            Some(event) if self.checker.registry.is_registered(&event.event_type) => {
                format!("{}/{}", event.event_type.category, event.event_type.name)
            }
            _ => "other".to_owned(),
        };
        self.metrics
            .validation_failures
            .get_or_create(&FailureLabels {
                reason: reason.to_owned(),
                r#type,
            })
            .inc();
    }

    fn process(&self, deliveries: &[Delivery]) -> Vec<Processed> {
        let mut batch = Vec::with_capacity(deliveries.iter().map(|d| d.events as usize).sum());
        for delivery in deliveries {
            let envelopes = match Envelope::decode_all(&delivery.payload) {
                Ok(envelopes) => envelopes,
                Err(error) => {
                    // Only a bug or a foreign writer can put this here; it has no app to
                    // attribute it to, so it is logged loudly rather than stored.
                    tracing::error!(%error, seq = delivery.seq, "undecodable queue message skipped");
                    continue;
                }
            };
            batch.extend(
                envelopes
                    .into_iter()
                    .map(|envelope| self.validate(envelope)),
            );
        }
        batch
    }

    fn validate(&self, envelope: Envelope) -> Processed {
        let Envelope {
            id,
            app_id,
            received_at,
            body,
        } = envelope;
        match body {
            Body::Event(event) => self.checker.check(id, app_id, received_at, event),
            Body::Refused { refusal, raw } => Processed::Refused {
                id,
                app_id,
                received_at,
                refusal,
                raw: raw.get().to_owned(),
                event: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_queue::{EmbeddedQueue, Message};
    use eye_schema::{Registry, UnknownTypePolicy};
    use eye_store::sqlite::SqliteStore;

    /// A worker over a real embedded queue and store, taking batches of 3.
    fn worker(dir: &std::path::Path, linger: Duration) -> (Worker, Arc<EmbeddedQueue>) {
        let queue = Arc::new(EmbeddedQueue::open(&dir.join("queue")).unwrap());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("store")).unwrap());
        let checker = Arc::new(Checker {
            registry: Arc::new(Registry::new(UnknownTypePolicy::Accept)),
            store: store.clone(),
            limits: eye_core::limits::PayloadLimits::default(),
            clock_skew_micros: 0,
        });
        let worker = Worker::new(
            queue.clone(),
            store,
            checker,
            PipelineMetrics::default(),
            3,
            linger,
        );
        (worker, queue)
    }

    fn events(n: u32) -> Message {
        Message {
            payload: Vec::new(),
            events: n,
            id: None,
        }
    }

    #[tokio::test]
    async fn a_lingering_batch_is_topped_up_at_once_when_a_full_batch_is_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (worker, queue) = worker(dir.path(), Duration::from_secs(30));
        queue.enqueue(vec![events(1)]).await.unwrap();
        let first = queue.fetch(3, Duration::ZERO).await.unwrap();
        queue.enqueue(vec![events(2)]).await.unwrap();
        let (_stop, mut stopped) = watch::channel(false);
        let batch = tokio::time::timeout(
            Duration::from_secs(10),
            worker.linger_for_more(first, &mut stopped),
        )
        .await
        .expect("the linger ends once a full batch waits, not after its 30 s");
        assert_eq!(batch.iter().map(|d| d.events).sum::<u32>(), 3);
    }

    #[tokio::test]
    async fn a_linger_stretched_by_slow_writes_ends_when_events_stop_coming() {
        let dir = tempfile::tempdir().unwrap();
        let (worker, queue) = worker(dir.path(), Duration::from_millis(200));
        // A slow last write: the linger is stretched to its most, 2 s.
        worker.last_write_micros.store(5_000_000, Ordering::Relaxed);
        assert_eq!(worker.current_linger(), Duration::from_secs(2));
        queue.enqueue(vec![events(1)]).await.unwrap();
        let first = queue.fetch(3, Duration::ZERO).await.unwrap();
        let (_stop, mut stopped) = watch::channel(false);
        let started = std::time::Instant::now();
        let batch = worker.linger_for_more(first, &mut stopped).await;
        let waited = started.elapsed();
        // Nothing more came: the configured 200 ms, not the stretched 2 s.
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_millis(1500),
            "{waited:?}"
        );
        assert_eq!(batch.iter().map(|d| d.events).sum::<u32>(), 1);
    }

    #[tokio::test]
    async fn a_small_batch_lingers_its_time_when_nothing_more_comes() {
        let dir = tempfile::tempdir().unwrap();
        let linger = Duration::from_millis(300);
        let (worker, queue) = worker(dir.path(), linger);
        queue.enqueue(vec![events(1)]).await.unwrap();
        let first = queue.fetch(3, Duration::ZERO).await.unwrap();
        let (_stop, mut stopped) = watch::channel(false);
        let started = std::time::Instant::now();
        let batch = worker.linger_for_more(first, &mut stopped).await;
        assert!(started.elapsed() >= linger, "{:?}", started.elapsed());
        assert_eq!(batch.iter().map(|d| d.events).sum::<u32>(), 1);
    }

    #[test]
    fn the_linger_grows_with_the_stores_writes_within_ten_times_the_configured_one() {
        let ms = Duration::from_millis;
        // A quick store: the configured linger.
        assert_eq!(linger_after(ms(0), ms(100)), ms(100));
        assert_eq!(linger_after(ms(20), ms(100)), ms(100));
        // A slower one: four times its last write.
        assert_eq!(linger_after(ms(60), ms(100)), ms(240));
        assert_eq!(linger_after(ms(200), ms(100)), ms(800));
        // Never past ten times the configured linger.
        assert_eq!(linger_after(ms(400), ms(100)), ms(1000));
        assert_eq!(linger_after(Duration::MAX, ms(100)), ms(1000));
        // No linger configured stays none.
        assert_eq!(linger_after(ms(500), ms(0)), ms(0));
    }
}
