//! The distributed queue: a NATS JetStream stream with file storage, and one durable
//! pull consumer that every worker shares.
//!
//! `enqueue` returns once JetStream has acknowledged every publish (what that means on
//! disk depends on the server: see `docs/deployment.md`). Each message carries the
//! event id as its `Nats-Msg-Id`, so a resend within the stream's duplicate window is
//! dropped by the server. A worker acknowledges a message only after its batch is
//! committed; one it never acknowledges is delivered again after `ack_wait`, possibly
//! to another worker, and the store's unique event id makes that harmless.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;

use crate::{Delivery, Handle, Message, Queue, QueueError, Result};

/// The durable consumer's name: all workers of a deployment share it.
const CONSUMER: &str = "eye-workers";

#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// `nats://host:port`, or several separated by commas (a cluster).
    pub url: String,
    /// The stream's name; its subject is `<stream>.events`.
    pub stream: String,
    pub replicas: usize,
    /// How long a publish may wait for its acknowledgement before ingest gives up.
    pub publish_timeout: Duration,
    /// How long a fetched message may stay unacknowledged before redelivery.
    pub ack_wait: Duration,
}

impl NatsOptions {
    pub fn new(url: impl Into<String>, stream: impl Into<String>) -> Self {
        NatsOptions {
            url: url.into(),
            stream: stream.into(),
            replicas: 1,
            publish_timeout: Duration::from_secs(5),
            ack_wait: Duration::from_secs(60),
        }
    }
}

pub struct NatsQueue {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    subject: String,
    stream: String,
    consumer: consumer::PullConsumer,
    depth: Arc<AtomicU64>,
    depth_task: tokio::task::JoinHandle<()>,
}

fn unavailable(error: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(error.to_string())
}

/// `nats://a:4222,nats://b:4222` as the list of servers the client tries.
pub fn servers(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl NatsQueue {
    /// Connects, and creates the stream and the consumer unless they exist.
    pub async fn connect(options: &NatsOptions) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .name("the-eye")
            .connection_timeout(Duration::from_secs(5))
            .connect(servers(&options.url))
            .await
            .map_err(|e| unavailable(format!("connecting to NATS at {}: {e}", options.url)))?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(options.publish_timeout);
        let subject = format!("{}.events", options.stream);
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: options.stream.clone(),
                subjects: vec![subject.clone()],
                storage: stream::StorageType::File,
                num_replicas: options.replicas,
                // Messages leave the stream once acknowledged: the backlog is the stream.
                retention: stream::RetentionPolicy::WorkQueue,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(format!("creating stream {}: {e}", options.stream)))?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: options.ack_wait,
                    max_ack_pending: 1_000_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| unavailable(format!("creating consumer {CONSUMER}: {e}")))?;
        let depth = Arc::new(AtomicU64::new(0));
        let depth_task = tokio::spawn(track_depth(consumer.clone(), Arc::clone(&depth)));
        Ok(NatsQueue {
            client,
            jetstream,
            subject,
            stream: options.stream.clone(),
            consumer,
            depth,
            depth_task,
        })
    }

    /// True while connected to a NATS server.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// How long past its expiry a pull may go unanswered before the worker stops waiting.
const PULL_MARGIN: Duration = Duration::from_secs(2);

impl NatsQueue {
    /// One pull: up to `max` messages, waiting up to `wait` for them, or only what is
    /// there now when `wait` is `None`.
    async fn pull(&self, max: usize, wait: Option<Duration>) -> Result<Vec<Delivery>> {
        let mut messages = match wait {
            None => self.consumer.fetch().max_messages(max).messages().await,
            Some(wait) => {
                self.consumer
                    .batch()
                    .max_messages(max)
                    .expires(wait)
                    .messages()
                    .await
            }
        }
        .map_err(unavailable)?;
        // The server ends a pull with a status message. A server that restarts forgets
        // the pull, and nothing would ever end it: the client-side bound keeps a worker
        // from waiting forever on a request its server no longer knows.
        let give_up = tokio::time::Instant::now() + wait.unwrap_or_default() + PULL_MARGIN;
        let mut deliveries = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout_at(give_up, messages.next()).await {
            let message = message.map_err(unavailable)?;
            let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            deliveries.push(Delivery {
                seq,
                payload: message.payload.to_vec(),
                events: 1,
                handle: Handle::Nats(Arc::new(message)),
            });
        }
        Ok(deliveries)
    }
}

impl Drop for NatsQueue {
    fn drop(&mut self) {
        self.depth_task.abort();
    }
}

/// Keeps `depth` at the consumer's pending plus unacknowledged messages (each holds
/// one event), read twice a second: the API reads it on every request.
async fn track_depth(mut consumer: consumer::PullConsumer, depth: Arc<AtomicU64>) {
    loop {
        if let Ok(info) = consumer.info().await {
            depth.store(
                info.num_pending + info.num_ack_pending as u64,
                Ordering::Relaxed,
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[async_trait::async_trait]
impl Queue for NatsQueue {
    async fn enqueue(&self, messages: Vec<Message>) -> Result<()> {
        // While disconnected the client would buffer publishes until its timeout; an
        // API should rather say "503, retry" at once.
        if !self.is_connected() {
            return Err(unavailable("not connected to NATS"));
        }
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let mut headers = async_nats::HeaderMap::new();
            if let Some(id) = &message.id {
                headers.insert("Nats-Msg-Id", id.as_str());
            }
            let ack = self
                .jetstream
                .publish_with_headers(self.subject.clone(), headers, message.payload.into())
                .await
                .map_err(unavailable)?;
            pending.push(ack);
        }
        // Every publish is in flight at once; 202 waits for all their acknowledgements.
        for ack in pending {
            ack.await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn fetch(&self, max_events: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let max = max_events.max(1);
        // What is there now, without waiting; only when nothing is, wait for the first
        // message (a pull for `max` would wait until `max` arrived or `wait` passed,
        // adding its whole expiry to the lag of a steady trickle).
        let mut deliveries = self.pull(max, None).await?;
        if deliveries.is_empty() && !wait.is_zero() {
            deliveries = self.pull(1, Some(wait)).await?;
            if !deliveries.is_empty() && max > 1 {
                deliveries.extend(self.pull(max - 1, None).await?);
            }
        }
        Ok(deliveries)
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<()> {
        for delivery in deliveries {
            if let Handle::Nats(message) = &delivery.handle {
                message.ack().await.map_err(unavailable)?;
            }
        }
        // Acknowledgements are plain publishes: flush so that they leave now.
        self.client.flush().await.map_err(unavailable)?;
        Ok(())
    }

    fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    fn one_message_per_event(&self) -> bool {
        true
    }

    async fn oldest_payload(&self) -> Result<Option<Vec<u8>>> {
        if self.depth() == 0 {
            return Ok(None);
        }
        // A work-queue stream keeps only what is not yet acknowledged: its first
        // message is the oldest of the backlog.
        let stream = self
            .jetstream
            .get_stream_no_info(&self.stream)
            .await
            .map_err(unavailable)?;
        match stream
            .get_first_raw_message_by_subject(&self.subject, 0)
            .await
        {
            Ok(message) => Ok(Some(message.payload.to_vec())),
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok(None)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    fn check(&self) -> Result<()> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(unavailable("not connected to NATS"))
        }
    }
}
