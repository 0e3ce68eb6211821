//! One suite, two back ends: the `Queue` contract checked against the embedded queue
//! and against NATS JetStream (at `EYE_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`; skipped when NATS does not answer, a failure with `CI=true`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eye_queue::{EmbeddedQueue, Message, NatsOptions, NatsQueue, Queue};

/// Opens the back end's queue again, as a restarted process would.
type Reopen = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Queue>>>>>;

struct Backend {
    name: &'static str,
    reopen: Reopen,
    /// How long an unacknowledged message takes to come back to a new instance.
    redelivery: Duration,
    /// The NATS stream to delete afterwards: (server URL, stream name).
    stream: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn clean_up(self) {
        if let Some((url, stream)) = self.stream
            && let Ok(client) = async_nats::connect(url).await
        {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(stream)
                .await;
        }
    }
}

fn embedded() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    Backend {
        name: "embedded",
        reopen: Box::new(move || {
            let path = path.clone();
            Box::pin(async move { Arc::new(EmbeddedQueue::open(&path).unwrap()) as Arc<dyn Queue> })
        }),
        redelivery: Duration::ZERO,
        stream: None,
        _dir: Some(dir),
    }
}

fn nats() -> Option<Backend> {
    let url = std::env::var("EYE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    if let Err(error) = std::net::TcpStream::connect(url.trim_start_matches("nats://")) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "NATS is required in CI at {url}: {error}"
        );
        // Past the test harness's capture: a skip shows in `cargo test`'s output.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the NATS back end: {url} does not answer ({error})"
        );
        return None;
    }
    // A stream of its own for every test: the tests of this file run at once, and a
    // clock reading alone once gave two of them the same stream (one test then fetched
    // the other's messages). The counter separates the tests, the process id and the
    // time separate runs.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let stream = format!(
        "EYE_QUEUE_TEST_{}_{}_{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut options = NatsOptions::new(url.clone(), stream.clone());
    options.ack_wait = Duration::from_secs(1);
    Some(Backend {
        stream: Some((url, stream)),
        name: "nats",
        reopen: Box::new(move || {
            let options = options.clone();
            Box::pin(async move {
                Arc::new(NatsQueue::connect(&options).await.unwrap()) as Arc<dyn Queue>
            })
        }),
        redelivery: Duration::from_secs(1),
        _dir: None,
    })
}

fn backends() -> Vec<Backend> {
    let mut all = vec![embedded()];
    all.extend(nats());
    all
}

fn messages(range: std::ops::Range<u32>) -> Vec<Message> {
    range
        .map(|i| Message {
            payload: format!("m{i}").into_bytes(),
            events: 1,
            id: Some(format!("id-{i}")),
        })
        .collect()
}

fn payloads(deliveries: &[eye_queue::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8(d.payload.clone()).unwrap())
        .collect()
}

async fn wait_for_depth(queue: &dyn Queue, depth: u64, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while queue.depth() != depth {
        assert!(
            Instant::now() < deadline,
            "{name}: depth stayed {} instead of {depth}",
            queue.depth()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the oldest unacknowledged message is `expected` (acknowledgements reach
/// NATS asynchronously).
async fn wait_for_oldest(queue: &dyn Queue, expected: Option<&str>, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let oldest = queue.oldest_payload().await.unwrap();
        let oldest = oldest.map(|p| String::from_utf8(p).unwrap());
        if oldest.as_deref() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: the oldest message stayed {oldest:?} instead of {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fetches until `count` messages came back or `within` passed.
async fn fetch_all(queue: &dyn Queue, count: usize, within: Duration) -> Vec<eye_queue::Delivery> {
    let deadline = Instant::now() + within;
    let mut all = Vec::new();
    while all.len() < count && Instant::now() < deadline {
        all.extend(
            queue
                .fetch(count - all.len(), Duration::from_millis(300))
                .await
                .unwrap(),
        );
    }
    all
}

#[tokio::test]
async fn messages_come_back_in_order_and_acknowledged_ones_are_gone() {
    for backend in backends() {
        let queue = (backend.reopen)().await;
        queue.enqueue(messages(0..10)).await.unwrap();
        wait_for_depth(queue.as_ref(), 10, backend.name).await;
        wait_for_oldest(queue.as_ref(), Some("m0"), backend.name).await;
        let first = queue.fetch(4, Duration::from_secs(2)).await.unwrap();
        assert_eq!(
            payloads(&first),
            ["m0", "m1", "m2", "m3"],
            "{}",
            backend.name
        );
        queue.ack(&first).await.unwrap();
        wait_for_oldest(queue.as_ref(), Some("m4"), backend.name).await;
        let rest = fetch_all(queue.as_ref(), 6, Duration::from_secs(5)).await;
        assert_eq!(
            payloads(&rest),
            ["m4", "m5", "m6", "m7", "m8", "m9"],
            "{}",
            backend.name
        );
        queue.ack(&rest).await.unwrap();
        wait_for_depth(queue.as_ref(), 0, backend.name).await;
        wait_for_oldest(queue.as_ref(), None, backend.name).await;
        let none = queue.fetch(10, Duration::from_millis(300)).await.unwrap();
        assert!(none.is_empty(), "{}: {:?}", backend.name, payloads(&none));
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn what_was_not_acknowledged_is_delivered_again_to_a_new_instance() {
    for backend in backends() {
        let queue = (backend.reopen)().await;
        queue.enqueue(messages(0..5)).await.unwrap();
        let taken = fetch_all(queue.as_ref(), 5, Duration::from_secs(5)).await;
        assert_eq!(taken.len(), 5, "{}", backend.name);
        queue.ack(&taken[..2]).await.unwrap();
        drop(taken);
        drop(queue); // a crash: the last three were never acknowledged
        tokio::time::sleep(backend.redelivery).await;
        let again = (backend.reopen)().await;
        let back = fetch_all(again.as_ref(), 3, Duration::from_secs(10)).await;
        assert_eq!(payloads(&back), ["m2", "m3", "m4"], "{}", backend.name);
        again.ack(&back).await.unwrap();
        wait_for_depth(again.as_ref(), 0, backend.name).await;
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn a_queue_that_deduplicates_drops_a_resent_id() {
    for backend in backends() {
        let queue = (backend.reopen)().await;
        if !queue.one_message_per_event() {
            continue; // the embedded queue leaves duplicates to the store's unique ids
        }
        queue.enqueue(messages(0..3)).await.unwrap();
        queue.enqueue(messages(1..4)).await.unwrap(); // m1 and m2 again, and m3
        let all = fetch_all(queue.as_ref(), 4, Duration::from_secs(5)).await;
        assert_eq!(payloads(&all), ["m0", "m1", "m2", "m3"], "{}", backend.name);
        let more = queue.fetch(10, Duration::from_millis(300)).await.unwrap();
        assert!(more.is_empty(), "{}: {:?}", backend.name, payloads(&more));
        queue.ack(&all).await.unwrap();
        assert!(queue.check().is_ok());
        backend.clean_up().await;
    }
}
