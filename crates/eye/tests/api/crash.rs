//! The real binary killed under load: every event answered 202 is stored exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::helpers::{
    TestApp, event, metric_sample, scrape, spawn_app, spawn_app_with, wait_until,
};

/// Connections that each send single events, plus one that sends batches.
const SINGLE_CONNECTIONS: usize = 4;
const BATCH_SIZE: usize = 20;

/// Load on a running server: every id answered 202 lands in `accepted`.
struct Load {
    accepted: Arc<Mutex<HashSet<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the connections; each stops at its first failure (the server went away).
    fn start(app: &TestApp, round: usize) -> Load {
        let accepted = Arc::new(Mutex::new(HashSet::new()));
        let url = app.url("/events");
        let token = app.ingest_token.clone();
        let mut tasks = Vec::new();
        for connection in 0..=SINGLE_CONNECTIONS {
            let (accepted, url, token) = (Arc::clone(&accepted), url.clone(), token.clone());
            let batch = connection == SINGLE_CONNECTIONS;
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                for i in 0.. {
                    let one = |k: usize| {
                        let mut body =
                            event(&format!("crash-{connection}"), "2023-01-01T00:00:00Z");
                        body["id"] = json!(format!("r{round}-c{connection}-{i}-{k}"));
                        body
                    };
                    let body = if batch {
                        Value::Array((0..BATCH_SIZE).map(one).collect())
                    } else {
                        one(0)
                    };
                    let Ok(response) = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() != 202 {
                        return;
                    }
                    let Ok(answer) = response.json::<Value>().await else {
                        return;
                    };
                    let mut accepted = accepted.lock().unwrap();
                    for result in answer["results"].as_array().unwrap() {
                        accepted.insert(result["id"].as_str().unwrap().to_owned());
                    }
                }
            }));
        }
        Load { accepted, tasks }
    }

    /// Waits for every connection to stop and returns the accepted ids.
    async fn finish(self) -> HashSet<String> {
        for task in self.tasks {
            task.await.unwrap();
        }
        self.accepted.lock().unwrap().clone()
    }
}

/// The number of times each accepted id is stored, once every one of them is and the
/// queue is empty. The queue also drains events whose answer the kill cut off: read
/// while it still holds some, the rows and the session counters (read after) could be
/// taken on either side of one more commit. The depth falls only after a commit, so it
/// is read first.
async fn stored_counts(app: &TestApp, accepted: &HashSet<String>) -> HashMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    loop {
        let drained = scrape(&http, &app.address)
            .await
            .and_then(|text| metric_sample(&text, "eye_queue_depth"))
            == Some(0.0);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for connection in 0..=SINGLE_CONNECTIONS {
            for e in app
                .all_events(&format!("session_id=crash-{connection}"))
                .await
            {
                *counts
                    .entry(e["id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        let missing = accepted
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .count();
        if missing == 0 && drained {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} accepted events missing after restart (queue drained: {drained})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// No id stored twice, and the sessions' counters agree with the stored rows (the
/// session upserts were atomic with the events). Returns the number of stored events.
async fn assert_exactly_once(app: &TestApp, counts: &HashMap<String, usize>) -> usize {
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "stored twice: {duplicates:?}");
    let stored: usize = counts.values().sum();
    let mut counted = 0;
    for connection in 0..=SINGLE_CONNECTIONS {
        let session = app
            .get_json(&format!("/sessions/crash-{connection}?limit=1"))
            .await;
        counted += session["event_count"].as_u64().unwrap_or(0) as usize;
    }
    assert_eq!(counted, stored, "session counters match the stored events");
    stored
}

/// A small generator (SplitMix64) for the kill moments; the seed is printed so that a
/// failing sequence can be replayed with `EYE_CRASH_SEED`.
fn kill_moments(rounds: usize) -> (u64, Vec<Duration>) {
    let seed = std::env::var("EYE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut state = seed;
    let moments = (0..rounds)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Duration::from_millis(150 + (z ^ (z >> 31)) % 1_000)
        })
        .collect();
    (seed, moments)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let mut app = spawn_app().await;
    let (seed, moments) = kill_moments(10);
    let mut accepted = HashSet::new();
    for (round, after) in moments.iter().enumerate() {
        let load = Load::start(&app, round);
        tokio::time::sleep(*after).await;
        // A round must kill a server that took events. On a slow machine the first
        // answer after a restart can take longer than the kill moment: wait for it then.
        wait_until(
            Duration::from_secs(30),
            &format!("round {round} (seed {seed}): a first 202"),
            || async { (!load.accepted.lock().unwrap().is_empty()).then_some(()) },
        )
        .await;
        app.kill();
        let ids = load.finish().await;
        assert!(!ids.is_empty());
        accepted.extend(ids);
        app.start();
    }
    // After the last restart the worker drains what the kills left in the queue.
    let counts = stored_counts(&app, &accepted).await;
    let stored = assert_exactly_once(&app, &counts).await;
    eprintln!(
        "crash (seed {seed}): {} events answered 202 over 10 kill -9 rounds, {stored} stored \
         (the rest were queued before their answer was lost), 0 lost, 0 duplicated",
        accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_finishes_in_flight_requests_and_exits_in_time() {
    let mut app = spawn_app_with(&["--shutdown-timeout-ms", "5000"]).await;
    let load = Load::start(&app, 0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let asked = Instant::now();
    // `terminate` blocks this worker thread; the load runs on the others.
    assert!(
        app.terminate(Duration::from_secs(6)),
        "eye serve did not exit cleanly within its 5 s shutdown deadline"
    );
    let took = asked.elapsed();
    let accepted = load.finish().await;
    assert!(!accepted.is_empty(), "the server accepted nothing");
    app.start();
    let counts = stored_counts(&app, &accepted).await;
    let stored = assert_exactly_once(&app, &counts).await;
    eprintln!(
        "sigterm: exited {took:?} after the signal; {} events answered 202, {stored} stored",
        accepted.len()
    );
}

#[tokio::test]
async fn sigterm_drains_accepted_events_and_exits_in_time() {
    if crate::helpers::postgres_mode() {
        return; // it reads the embedded store's files; the HTTP checks run in the other mode
    }
    let mut app = spawn_app().await;
    let batch: Vec<Value> = (0..500)
        .map(|i| event("term", &format!("2023-01-01T00:00:00.{i:06}Z")))
        .collect();
    for _ in 0..4 {
        assert_eq!(
            app.post_events(&Value::Array(batch.clone())).await.status(),
            202
        );
    }
    assert!(
        app.terminate(Duration::from_secs(10)),
        "eye serve did not exit cleanly within 10 s of SIGTERM"
    );
    // Before any restart, straight from the files: the queue is empty and the store full.
    let store = rusqlite::Connection::open(app.data_dir.join("eye.db")).unwrap();
    let stored: i64 = store
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 2000);
    let queue = rusqlite::Connection::open(app.data_dir.join("queue.db")).unwrap();
    let queued: i64 = queue
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, 0, "a clean stop applies the last acknowledgement");
    drop((store, queue));
    app.start();
    let session = app.get_json("/sessions/term?limit=1").await;
    assert_eq!(session["event_count"], 2000);
}
