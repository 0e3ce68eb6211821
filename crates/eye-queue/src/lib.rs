//! The durable queue between the API and the workers.
//!
//! [`Queue`] is the interface: `enqueue` returns only once the messages are durable,
//! `fetch` hands them to a worker in order, `ack` tells the queue a worker has committed
//! them. Delivery is at least once: a message fetched and not acknowledged before a
//! crash is delivered again, so consumers must be idempotent (the store keys events by
//! their id). Two back ends fill it: [`embedded`] (SQLite in the data directory, for
//! `eye serve`) and [`nats`] (NATS JetStream, for a fleet); `tests/conformance.rs`
//! holds both to the same contract.

use std::time::Duration;

pub mod embedded;
pub mod nats;

pub use embedded::EmbeddedQueue;
pub use nats::{NatsOptions, NatsQueue};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue storage failed: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("the queue cannot write: {0}")]
    Unavailable(String),
    #[error("the queue is shutting down")]
    Closed,
    #[error("queue IO failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, QueueError>;

/// One message to enqueue: an opaque payload holding `events` events.
#[derive(Debug, Clone)]
pub struct Message {
    pub payload: Vec<u8>,
    /// How many events the payload carries; depth and fetch sizes count events.
    pub events: u32,
    /// A queue that de-duplicates by message id drops a second message with this id
    /// (the event id, when the message holds one event).
    pub id: Option<String>,
}

/// One message handed to a worker.
#[derive(Clone)]
pub struct Delivery {
    /// Position in the queue.
    pub seq: u64,
    pub payload: Vec<u8>,
    pub events: u32,
    /// What acknowledging this message needs, by implementation.
    pub(crate) handle: Handle,
}

#[derive(Clone)]
pub(crate) enum Handle {
    Embedded,
    Nats(std::sync::Arc<async_nats::jetstream::Message>),
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("seq", &self.seq)
            .field("bytes", &self.payload.len())
            .field("events", &self.events)
            .finish()
    }
}

#[async_trait::async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Appends `messages` and returns once they are durable.
    async fn enqueue(&self, messages: Vec<Message>) -> Result<()>;

    /// Returns the messages after the last fetched one, stopping once they hold
    /// `max_events` events (always at least one message), waiting up to `wait` for the
    /// first to arrive. An empty vector means nothing arrived in time.
    async fn fetch(&self, max_events: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Acknowledges `deliveries` once their effects are committed.
    async fn ack(&self, deliveries: &[Delivery]) -> Result<()>;

    /// Events enqueued and not yet acknowledged.
    fn depth(&self) -> u64;

    /// True when the queue de-duplicates by message id: the API then sends one
    /// message per event, with the event id as the message id. False when many events
    /// per message are cheaper (the embedded queue writes one row per request).
    fn one_message_per_event(&self) -> bool {
        false
    }

    /// The payload of the oldest message not yet acknowledged, if any: the metrics read
    /// its events' reception time to report how old the backlog is.
    async fn oldest_payload(&self) -> Result<Option<Vec<u8>>>;

    /// Whether the queue can take and hand out messages now (for `/readyz`).
    fn check(&self) -> Result<()> {
        Ok(())
    }
}
