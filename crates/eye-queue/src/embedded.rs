//! The embedded queue: a SQLite table in its own file (`queue.db`), in WAL mode with
//! `synchronous=FULL`, written by one thread that commits everything waiting at once.
//!
//! Group commit is what makes "202 means fsynced" cheap: requests that arrive while a
//! commit is in flight are written together by the next one, so there is one fsync per
//! group, never one per event, and no timer adds latency when the queue is idle. The
//! writer also deletes acknowledged messages, inside its next commit, so acknowledging
//! costs no extra fsync. The queue lives apart from the store so that ingest never
//! waits on the worker's write lock. A message is one ingest request (all its events),
//! so a batch of a hundred events costs one row, not a hundred.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{Delivery, Message, Queue, QueueError, Result};

/// Most messages written by one commit; bounds the writer's memory and latency.
const MAX_GROUP: usize = 20_000;

/// Messages waiting for the next commit, with the channel that reports them durable.
type Pending = (Vec<Message>, oneshot::Sender<Result<()>>);

enum Request {
    Enqueue {
        messages: Vec<Message>,
        done: oneshot::Sender<Result<()>>,
    },
    Ack(u64),
    Shutdown,
}

pub struct EmbeddedQueue {
    requests: mpsc::Sender<Request>,
    /// The seq of the newest durable message.
    committed: watch::Receiver<u64>,
    /// Events durable and not yet acknowledged.
    depth: Arc<AtomicU64>,
    reader: Arc<Mutex<Connection>>,
    /// The seq of the newest message handed out by `fetch`.
    fetched: Mutex<u64>,
    /// The seq of the newest acknowledged message (rows up to it are deleted lazily).
    acked: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl EmbeddedQueue {
    /// Opens (or creates) the queue in `dir/queue.db` and starts its writer thread.
    /// Messages left unacknowledged by a previous run are delivered again.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("queue.db");
        let conn = open(&path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS messages (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 payload BLOB NOT NULL,
                 events INTEGER NOT NULL
             );",
        )?;
        let last: u64 = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0) as u64;
        let (oldest, events): (Option<i64>, i64) = conn.query_row(
            "SELECT min(seq), coalesce(sum(events), 0) FROM messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let acked_at_start = oldest.map_or(last, |o| o as u64 - 1);
        let reader = open(&path)?;

        let (requests, inbox) = mpsc::channel(1024);
        let (committed_tx, committed) = watch::channel(last);
        let depth = Arc::new(AtomicU64::new(events as u64));
        let writer_depth = Arc::clone(&depth);
        let writer = std::thread::Builder::new()
            .name("eye-queue-writer".into())
            .spawn(move || write_until_closed(conn, inbox, committed_tx, writer_depth))?;
        Ok(EmbeddedQueue {
            requests,
            committed,
            depth,
            reader: Arc::new(Mutex::new(reader)),
            fetched: Mutex::new(acked_at_start),
            acked: AtomicU64::new(acked_at_start),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Stops the writer after it has written everything submitted before this call,
    /// and waits for it. Later `enqueue` calls fail with [`QueueError::Closed`].
    pub async fn close(&self) {
        let _ = self.requests.send(Request::Shutdown).await;
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn write_until_closed(
    mut conn: Connection,
    mut inbox: mpsc::Receiver<Request>,
    committed: watch::Sender<u64>,
    depth: Arc<AtomicU64>,
) {
    let mut deleted_up_to = 0u64;
    let mut ack_to = 0u64;
    let mut group: Vec<Pending> = Vec::new();
    let mut shutting_down = false;
    while !shutting_down {
        let Some(first) = inbox.blocking_recv() else {
            break;
        };
        let mut count = 0;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Enqueue { messages, done } => {
                    count += messages.len();
                    group.push((messages, done));
                }
                Request::Ack(seq) => ack_to = ack_to.max(seq),
                Request::Shutdown => {
                    shutting_down = true;
                    break;
                }
            }
            if count < MAX_GROUP {
                next = inbox.try_recv().ok();
            }
        }
        let delete_up_to = (ack_to > deleted_up_to).then_some(ack_to);
        match commit_group(&mut conn, &group, delete_up_to) {
            Ok(last) => {
                deleted_up_to = deleted_up_to.max(ack_to);
                let events: u64 = group
                    .iter()
                    .flat_map(|(messages, _)| messages)
                    .map(|m| u64::from(m.events))
                    .sum();
                depth.fetch_add(events, Ordering::Relaxed);
                if let Some(last) = last {
                    committed.send_replace(last);
                }
                for (_, done) in group.drain(..) {
                    let _ = done.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, "queue commit failed");
                let message = error.to_string();
                for (_, done) in group.drain(..) {
                    let _ = done.send(Err(QueueError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// Writes one group in one transaction (one fsync) and returns the newest seq.
fn commit_group(
    conn: &mut Connection,
    group: &[Pending],
    delete_up_to: Option<u64>,
) -> rusqlite::Result<Option<u64>> {
    let tx = conn.transaction()?;
    if let Some(seq) = delete_up_to {
        tx.execute("DELETE FROM messages WHERE seq <= ?1", params![seq as i64])?;
    }
    let mut last = None;
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO messages (payload, events) VALUES (?1, ?2)")?;
        for (messages, _) in group {
            for message in messages {
                insert.execute(params![message.payload, message.events])?;
                last = Some(tx.last_insert_rowid() as u64);
            }
        }
    }
    tx.commit()?;
    Ok(last)
}

#[async_trait::async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(&self, messages: Vec<Message>) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let (done, reply) = oneshot::channel();
        self.requests
            .send(Request::Enqueue { messages, done })
            .await
            .map_err(|_| QueueError::Closed)?;
        reply.await.map_err(|_| QueueError::Closed)?
    }

    async fn fetch(&self, max_events: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let after = *self.fetched.lock().expect("fetch cursor lock");
        let mut committed = self.committed.clone();
        let arrived = tokio::time::timeout(wait, async {
            committed.wait_for(|last| *last > after).await.map(|_| ())
        })
        .await;
        match arrived {
            Err(_) => return Ok(Vec::new()),
            Ok(Err(_)) => return Err(QueueError::Closed),
            Ok(Ok(_)) => {}
        }
        let reader = Arc::clone(&self.reader);
        let deliveries = tokio::task::spawn_blocking(move || -> Result<Vec<Delivery>> {
            let conn = reader.lock().expect("queue reader lock");
            let mut stmt = conn.prepare_cached(
                "SELECT seq, payload, events FROM messages WHERE seq > ?1 ORDER BY seq",
            )?;
            let mut rows = stmt.query(params![after as i64])?;
            let mut deliveries = Vec::new();
            let mut events = 0usize;
            // Stop reading once the batch is full; the rest waits for the next fetch.
            while events < max_events.max(1) {
                let Some(row) = rows.next()? else { break };
                let delivery = Delivery {
                    handle: crate::Handle::Embedded,
                    seq: row.get::<_, i64>(0)? as u64,
                    payload: row.get(1)?,
                    events: row.get(2)?,
                };
                events += delivery.events as usize;
                deliveries.push(delivery);
            }
            Ok(deliveries)
        })
        .await
        .map_err(|e| QueueError::Io(std::io::Error::other(e)))??;
        if let Some(last) = deliveries.last() {
            *self.fetched.lock().expect("fetch cursor lock") = last.seq;
        }
        Ok(deliveries)
    }

    async fn ack(&self, deliveries: &[Delivery]) -> Result<()> {
        let Some(last) = deliveries.iter().map(|d| d.seq).max() else {
            return Ok(());
        };
        let events: u64 = deliveries.iter().map(|d| u64::from(d.events)).sum();
        self.depth.fetch_sub(events, Ordering::Relaxed);
        self.acked.fetch_max(last, Ordering::Relaxed);
        self.requests
            .send(Request::Ack(last))
            .await
            .map_err(|_| QueueError::Closed)
    }

    fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    async fn oldest_payload(&self) -> Result<Option<Vec<u8>>> {
        let after = self.acked.load(Ordering::Relaxed);
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>> {
            let conn = reader.lock().expect("queue reader lock");
            let mut stmt = conn.prepare_cached(
                "SELECT payload FROM messages WHERE seq > ?1 ORDER BY seq LIMIT 1",
            )?;
            let mut rows = stmt.query(params![after as i64])?;
            Ok(match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            })
        })
        .await
        .map_err(|e| QueueError::Io(std::io::Error::other(e)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(range: std::ops::Range<u32>) -> Vec<Message> {
        range
            .map(|i| Message {
                payload: i.to_string().into_bytes(),
                events: 1,
                id: None,
            })
            .collect()
    }

    #[tokio::test]
    async fn delivers_in_order_and_redelivers_what_was_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let queue = EmbeddedQueue::open(dir.path()).unwrap();
            queue.enqueue(payloads(0..10)).await.unwrap();
            assert_eq!(queue.depth(), 10);
            let first = queue.fetch(4, Duration::from_secs(1)).await.unwrap();
            assert_eq!(first.len(), 4);
            assert_eq!(first[0].payload, b"0");
            queue.ack(&first).await.unwrap();
            let second = queue.fetch(100, Duration::from_secs(1)).await.unwrap();
            assert_eq!(second.len(), 6);
            assert_eq!(second[0].payload, b"4");
            assert_eq!(queue.depth(), 6);
            // The second batch is never acknowledged: it must come back after a restart.
            queue.close().await;
            assert!(matches!(
                queue.enqueue(payloads(0..1)).await,
                Err(QueueError::Closed)
            ));
        }
        let queue = EmbeddedQueue::open(dir.path()).unwrap();
        assert_eq!(queue.depth(), 6);
        let again = queue.fetch(100, Duration::from_secs(1)).await.unwrap();
        let seen: Vec<_> = again
            .iter()
            .map(|d| String::from_utf8(d.payload.clone()).unwrap())
            .collect();
        assert_eq!(seen, ["4", "5", "6", "7", "8", "9"]);
        queue.ack(&again).await.unwrap();
        queue.enqueue(payloads(10..11)).await.unwrap();
        let next = queue.fetch(100, Duration::from_secs(1)).await.unwrap();
        assert_eq!(next[0].payload, b"10");
        assert!(
            next[0].seq > again.last().unwrap().seq,
            "seqs never go back"
        );
    }

    #[tokio::test]
    async fn depth_and_fetch_sizes_count_events_not_messages() {
        let dir = tempfile::tempdir().unwrap();
        let queue = EmbeddedQueue::open(dir.path()).unwrap();
        let message = |events| Message {
            payload: vec![0],
            events,
            id: None,
        };
        queue
            .enqueue(vec![message(100), message(100), message(100)])
            .await
            .unwrap();
        assert_eq!(queue.depth(), 300);
        let first = queue.fetch(150, Duration::from_secs(1)).await.unwrap();
        assert_eq!(first.len(), 2, "stops once 150 events are reached");
        queue.ack(&first).await.unwrap();
        assert_eq!(queue.depth(), 100);
        let big = queue.fetch(10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            big.len(),
            1,
            "a message larger than the limit still comes alone"
        );
        queue.close().await;
        assert_eq!(EmbeddedQueue::open(dir.path()).unwrap().depth(), 100);
    }

    #[tokio::test]
    async fn fetch_waits_for_a_message_and_times_out_when_none_comes() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(EmbeddedQueue::open(dir.path()).unwrap());
        assert!(
            queue
                .fetch(10, Duration::from_millis(50))
                .await
                .unwrap()
                .is_empty()
        );
        let producer = Arc::clone(&queue);
        let waiter = tokio::spawn(async move { producer.fetch(10, Duration::from_secs(10)).await });
        queue.enqueue(payloads(0..3)).await.unwrap();
        assert_eq!(waiter.await.unwrap().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn concurrent_enqueues_are_all_durable() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(EmbeddedQueue::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for t in 0..16u32 {
            let queue = Arc::clone(&queue);
            tasks.push(tokio::spawn(async move {
                for i in 0..50u32 {
                    queue
                        .enqueue(payloads(t * 1000 + i..t * 1000 + i + 1))
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        queue.close().await;
        let reopened = EmbeddedQueue::open(dir.path()).unwrap();
        assert_eq!(reopened.depth(), 800);
    }
}
