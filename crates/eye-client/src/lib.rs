//! A client for The Eye: `track` an event and go on; the client batches events by
//! count and time, sends them gzipped in the background, and retries until they are
//! answered, so that every event is stored exactly once.
//!
//! ```no_run
//! use eye_client::{Client, Config, Event};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), eye_client::Error> {
//! let client = Client::new(Config::new("http://127.0.0.1:8000", "eye_i_…"))?;
//! client.track(Event::new(
//!     "e2085be5-9137-4e4e-80b5-f1ffddc25423",
//!     "page interaction",
//!     "pageview",
//!     json!({"host": "www.example.com", "path": "/"}),
//! ))?;
//! // Before the program ends: send what is buffered (waits at most `shutdown_timeout`).
//! let stats = client.shutdown().await;
//! println!("{} sent, {} dropped", stats.sent, stats.dropped);
//! # Ok(()) }
//! ```
//!
//! # The rules
//!
//! - **Ids.** `track` gives every event a client `id` (a UUID) unless it has one, and a
//!   `timestamp` (now) unless it has one. The server stores an id once per application,
//!   so a batch sent twice (a retry after a lost answer) is stored once.
//! - **Batches.** A batch leaves when `batch_size` events wait or `flush_interval` has
//!   passed since the oldest one was tracked, gzip-compressed.
//! - **Retries.** Network errors, timeouts, `408`, `429` and `5xx` are retried with the
//!   same batch (same ids): exponential backoff from `initial_backoff`, doubling up to
//!   `max_backoff`, with full jitter; a `Retry-After` longer than that wins. Other `4xx`
//!   answers (a bad token, a body the server refuses) are not retried: the batch is
//!   counted in `failed` and logged. Events the server rejects one by one (a schema
//!   violation) are final: they are in the server's error store, counted in `rejected`.
//! - **Size.** A batch also stays under `max_batch_bytes` of JSON (1,000,000; the
//!   server's limit is 1 MiB); an event too large to send alone is refused by `track`
//!   ([`TrackError::TooLarge`], counted in `failed`).
//! - **Overflow.** At most `max_buffer` events wait (besides the batch being sent).
//!   When the buffer is full, `track`
//!   does not wait: it refuses the new event with [`TrackError::BufferFull`] and counts
//!   it in `dropped`. Nothing already buffered is thrown away to make room.
//! - **Shutdown.** [`Client::shutdown`] sends everything buffered, retrying until
//!   `shutdown_timeout`; what is still unanswered then is counted in `dropped`.
//!   [`Client::flush`] sends everything tracked so far and waits for the answers.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// How the client talks to the server. [`Config::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server's base URL, e.g. `http://127.0.0.1:8000`.
    pub endpoint: String,
    /// An ingest token (`eye app create NAME` prints one).
    pub token: String,
    /// Most events in one request (the server takes up to 1,000 by default).
    pub batch_size: usize,
    /// Most bytes of JSON in one request, before gzip (the server takes up to 1 MiB by
    /// default, measured after decompression). An event larger than this alone is
    /// counted in `failed` when tracked.
    pub max_batch_bytes: usize,
    /// How long an event may wait for its batch to fill.
    pub flush_interval: Duration,
    /// Most events waiting to be sent; beyond it `track` refuses new ones.
    pub max_buffer: usize,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// How long `shutdown` keeps retrying.
    pub shutdown_timeout: Duration,
}

impl Config {
    pub fn new(endpoint: impl Into<String>, token: impl Into<String>) -> Config {
        Config {
            endpoint: endpoint.into(),
            token: token.into(),
            batch_size: 100,
            max_batch_bytes: 1_000_000,
            flush_interval: Duration::from_secs(1),
            max_buffer: 10_000,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// One event, as the server's ingest endpoint takes it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub session_id: String,
    pub category: String,
    pub name: String,
    pub data: Value,
    /// RFC 3339; `track` sets it to now when it is `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The idempotency key; `track` sets a UUID when it is `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Event {
    pub fn new(
        session_id: impl Into<String>,
        category: impl Into<String>,
        name: impl Into<String>,
        data: Value,
    ) -> Event {
        Event {
            session_id: session_id.into(),
            category: category.into(),
            name: name.into(),
            data,
            timestamp: None,
            id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the endpoint {0:?} is not an http:// or https:// URL")]
    InvalidEndpoint(String),
    #[error(
        "batch_size must be 1 to 1000, max_buffer at least batch_size, max_batch_bytes at least 1024"
    )]
    InvalidLimits,
    #[error("building the HTTP client failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Track(#[from] TrackError),
}

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// The buffer holds `max_buffer` events; the event was not taken.
    #[error("the client's buffer is full; the event was dropped")]
    BufferFull(Box<Event>),
    /// Encoded, the event alone is larger than `max_batch_bytes`.
    #[error("the event is larger than max_batch_bytes; it was dropped")]
    TooLarge(Box<Event>),
    /// `shutdown` has begun.
    #[error("the client is shutting down; the event was dropped")]
    Closed(Box<Event>),
}

/// What became of the tracked events so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Accepted by the server.
    pub sent: u64,
    /// Refused by the server one by one (now in its error store).
    pub rejected: u64,
    /// Never answered: refused by a full buffer, or still unsent when shutdown gave up.
    pub dropped: u64,
    /// In batches the server refused whole (a bad token, a refused body).
    pub failed: u64,
    /// Requests sent again.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

struct Shared {
    config: Config,
    buffer: Mutex<Buffer>,
    wake: Notify,
    closing: AtomicBool,
    counters: Counters,
    /// How many tracked events have been answered (or given up), in tracking order.
    answered: watch::Sender<u64>,
}

/// An event as it will be sent: encoded when tracked, so its size is known and later
/// changes to the caller's data cannot reach it.
type Encoded = Box<serde_json::value::RawValue>;

#[derive(Default)]
struct Buffer {
    events: VecDeque<Encoded>,
    /// Events ever taken by `track`.
    tracked: u64,
    /// When the oldest waiting event was tracked.
    oldest: Option<Instant>,
    /// A `flush` asked for everything now.
    flush_now: bool,
}

/// The handle applications keep. Cheap to share behind an `Arc`; `track` never waits.
pub struct Client {
    shared: Arc<Shared>,
    worker: JoinHandle<()>,
}

impl Client {
    /// Starts the background sender on the current Tokio runtime.
    pub fn new(config: Config) -> Result<Client, Error> {
        if !(config.endpoint.starts_with("http://") || config.endpoint.starts_with("https://")) {
            return Err(Error::InvalidEndpoint(config.endpoint));
        }
        if config.batch_size == 0
            || config.batch_size > 1000
            || config.max_buffer < config.batch_size
        {
            return Err(Error::InvalidLimits);
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()?;
        let (answered, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            config,
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            counters: Counters::default(),
            answered,
        });
        let worker = tokio::spawn(send_until_closed(shared.clone(), http));
        Ok(Client { shared, worker })
    }

    /// Buffers `event` for sending; returns at once.
    pub fn track(&self, mut event: Event) -> Result<(), TrackError> {
        if self.shared.closing.load(Ordering::Acquire) {
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(TrackError::Closed(Box::new(event)));
        }
        event
            .id
            .get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
        event
            .timestamp
            .get_or_insert_with(|| humantime::format_rfc3339_micros(SystemTime::now()).to_string());
        let encoded = match serde_json::value::to_raw_value(&event) {
            Ok(encoded) if encoded.get().len() < self.shared.config.max_batch_bytes => encoded,
            _ => {
                self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                return Err(TrackError::TooLarge(Box::new(event)));
            }
        };
        let full_batch = {
            let mut buffer = self.shared.lock();
            if buffer.events.len() >= self.shared.config.max_buffer {
                drop(buffer);
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(TrackError::BufferFull(Box::new(event)));
            }
            buffer.events.push_back(encoded);
            buffer.tracked += 1;
            buffer.oldest.get_or_insert_with(Instant::now);
            buffer.events.len() >= self.shared.config.batch_size
        };
        if full_batch {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Sends everything tracked so far and waits until it is answered (or given up).
    pub async fn flush(&self) {
        let target = {
            let mut buffer = self.shared.lock();
            buffer.flush_now = true;
            buffer.tracked
        };
        self.shared.wake.notify_one();
        let mut answered = self.shared.answered.subscribe();
        let _ = answered.wait_for(|n| *n >= target).await;
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Sends what is buffered (retrying until `shutdown_timeout`), stops the sender, and
    /// returns the final figures.
    pub async fn shutdown(self) -> Stats {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let _ = self.worker.await;
        self.shared.stats()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            sent: c.sent.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    fn mark_answered(&self, count: usize) {
        self.answered.send_modify(|n| *n += count as u64);
    }
}

/// The background sender: takes batches in tracking order and sends each until it is
/// answered, so `answered` only grows and `flush` can wait on it.
async fn send_until_closed(shared: Arc<Shared>, http: reqwest::Client) {
    let url = format!("{}/events", shared.config.endpoint.trim_end_matches('/'));
    let mut deadline: Option<Instant> = None;
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        if closing && deadline.is_none() {
            deadline = Some(Instant::now() + shared.config.shutdown_timeout);
        }
        let batch = {
            let mut buffer = shared.lock();
            let due = buffer
                .oldest
                .is_some_and(|t| t.elapsed() >= shared.config.flush_interval);
            let ready = buffer.events.len() >= shared.config.batch_size
                || (!buffer.events.is_empty() && (due || buffer.flush_now || closing));
            if ready {
                // As many as fit in `batch_size` events and `max_batch_bytes` ("[", "]"
                // and a comma each); the first always fits (`track` checked it).
                let mut take = 0;
                let mut bytes = 2;
                for event in buffer.events.iter().take(shared.config.batch_size) {
                    bytes += event.get().len() + 1;
                    if take > 0 && bytes > shared.config.max_batch_bytes {
                        break;
                    }
                    take += 1;
                }
                let batch: Vec<Encoded> = buffer.events.drain(..take).collect();
                buffer.oldest = if buffer.events.is_empty() {
                    None
                } else {
                    Some(Instant::now())
                };
                Some(batch)
            } else {
                buffer.flush_now = false;
                None
            }
        };
        match batch {
            Some(batch) => {
                let count = batch.len();
                send_batch(&shared, &http, &url, batch, deadline).await;
                shared.mark_answered(count);
            }
            None if closing => return,
            None => {
                // Sleep until a full batch, a flush or shutdown wakes us, or the
                // oldest event's interval runs out.
                let wait = shared
                    .lock()
                    .oldest
                    .map_or(shared.config.flush_interval, |t| {
                        shared.config.flush_interval.saturating_sub(t.elapsed())
                    });
                let _ = tokio::time::timeout(wait, shared.wake.notified()).await;
            }
        }
    }
}

/// What to do after one attempt.
enum Attempt {
    Done,
    Retry(Option<Duration>),
}

async fn send_batch(
    shared: &Shared,
    http: &reqwest::Client,
    url: &str,
    batch: Vec<Encoded>,
    mut deadline: Option<Instant>,
) {
    let count = batch.len() as u64;
    let body = match gzip_json(&batch) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "encoding a batch failed; dropped");
            shared.counters.failed.fetch_add(count, Ordering::Relaxed);
            return;
        }
    };
    let mut backoff = shared.config.initial_backoff;
    loop {
        match attempt(shared, http, url, body.clone(), count).await {
            Attempt::Done => return,
            Attempt::Retry(retry_after) => {
                if deadline.is_none() && shared.closing.load(Ordering::Acquire) {
                    deadline = Some(Instant::now() + shared.config.shutdown_timeout);
                }
                let mut wait = jitter(backoff).max(retry_after.unwrap_or_default());
                if let Some(deadline) = deadline {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        tracing::warn!(events = count, "shutting down: unanswered batch dropped");
                        shared.counters.dropped.fetch_add(count, Ordering::Relaxed);
                        return;
                    }
                    wait = wait.min(left);
                }
                shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(shared.config.max_backoff);
            }
        }
    }
}

async fn attempt(
    shared: &Shared,
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    count: u64,
) -> Attempt {
    let response = http
        .post(url)
        .bearer_auth(&shared.config.token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "sending a batch failed; will retry");
            return Attempt::Retry(None);
        }
    };
    let status = response.status();
    if status.as_u16() == 202 {
        let answer: Value = response.json().await.unwrap_or_default();
        let accepted = answer["accepted"].as_u64().unwrap_or(count);
        let rejected = answer["rejected"].as_u64().unwrap_or(0);
        shared.counters.sent.fetch_add(accepted, Ordering::Relaxed);
        shared
            .counters
            .rejected
            .fetch_add(rejected, Ordering::Relaxed);
        if rejected > 0 {
            tracing::warn!(
                rejected,
                "the server refused events of a batch (see its error store)"
            );
        }
        return Attempt::Done;
    }
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Attempt::Retry(retry_after);
    }
    let text = response.text().await.unwrap_or_default();
    tracing::error!(%status, answer = %text, events = count, "the server refused a batch; not retried");
    shared.counters.failed.fetch_add(count, Ordering::Relaxed);
    Attempt::Done
}

fn gzip_json(batch: &[Encoded]) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(batch)?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&json)?;
    encoder.finish()
}

/// A random wait between zero and `backoff` ("full jitter"): clients that failed
/// together do not retry together.
fn jitter(backoff: Duration) -> Duration {
    let random = getrandom::u64().unwrap_or(u64::MAX / 2);
    backoff.mul_f64(random as f64 / u64::MAX as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_the_backoff() {
        for _ in 0..1000 {
            assert!(jitter(Duration::from_millis(100)) <= Duration::from_millis(100));
        }
    }

    #[test]
    fn a_batch_is_gzipped_json_with_ids_and_times_when_tracked() {
        let event = Event::new("s", "c", "n", serde_json::json!({"a": 1}));
        let body = gzip_json(&[serde_json::value::to_raw_value(&event).unwrap()]).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert_eq!(
            text,
            r#"[{"session_id":"s","category":"c","name":"n","data":{"a":1}}]"#
        );
    }

    #[tokio::test]
    async fn a_full_buffer_refuses_new_events_and_counts_them() {
        let mut config = Config::new("http://127.0.0.1:9", "token");
        config.batch_size = 10;
        config.max_buffer = 10;
        config.flush_interval = Duration::from_secs(3600);
        config.shutdown_timeout = Duration::from_millis(200);
        let client = Client::new(config).unwrap();
        let mut refused = 0;
        for i in 0..15 {
            match client.track(Event::new(format!("s{i}"), "c", "n", Value::Null)) {
                Ok(()) => {}
                Err(TrackError::BufferFull(_)) => refused += 1,
                Err(other) => panic!("{other}"),
            }
        }
        // `track` never yields, so on this single-threaded runtime the sender has not
        // taken anything yet: the buffer held ten and refused five.
        assert_eq!(refused, 5);
        assert_eq!(client.stats().dropped, 5);
        let stats = client.shutdown().await;
        assert_eq!(
            stats.dropped, 15,
            "5 refused + 10 never answered: {stats:?}"
        );
        assert_eq!(stats.sent, 0);
    }

    #[tokio::test]
    async fn batches_stay_under_the_byte_limit_and_oversized_events_are_refused() {
        let mut config = Config::new("http://127.0.0.1:9", "token");
        config.max_batch_bytes = 4096;
        config.flush_interval = Duration::from_secs(3600);
        let client = Client::new(config).unwrap();
        let big = Value::String("x".repeat(5000));
        assert!(matches!(
            client.track(Event::new("s", "c", "n", big)),
            Err(TrackError::TooLarge(_))
        ));
        assert_eq!(client.stats().failed, 1);
        for _ in 0..10 {
            let data = Value::String("y".repeat(1000));
            client.track(Event::new("s", "c", "n", data)).unwrap();
        }
        let buffer = client.shared.lock();
        let sizes: usize = buffer
            .events
            .iter()
            .take(3)
            .map(|e| e.get().len() + 1)
            .sum();
        assert!(sizes + 2 <= 4096 && sizes + buffer.events[3].get().len() + 3 > 4096);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(matches!(
            Client::new(Config::new("127.0.0.1:8000", "t")),
            Err(Error::InvalidEndpoint(_))
        ));
        let mut config = Config::new("http://127.0.0.1:8000", "t");
        config.batch_size = 5000;
        assert!(matches!(Client::new(config), Err(Error::InvalidLimits)));
    }
}
