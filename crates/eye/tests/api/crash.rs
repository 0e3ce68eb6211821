use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, event, spawn_app};

/// Sends single events with client ids from `connections` tasks until the server dies,
/// returning the ids of the events answered 202.
async fn load_until_killed(
    app: &mut TestApp,
    round: usize,
    kill_after: Duration,
) -> HashSet<String> {
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let url = app.url("/events");
    let token = app.ingest_token.clone();
    let mut tasks = Vec::new();
    for connection in 0..4 {
        let (accepted, url, token) = (Arc::clone(&accepted), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0.. {
                let mut body = event(&format!("crash-{connection}"), "2023-01-01T00:00:00Z");
                body["id"] = json!(format!("r{round}-c{connection}-{i}"));
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
                let id = answer["results"][0]["id"].as_str().unwrap().to_owned();
                accepted.lock().unwrap().insert(id);
            }
        }));
    }
    tokio::time::sleep(kill_after).await;
    app.kill();
    for task in tasks {
        task.await.unwrap();
    }
    accepted.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_ingest_loses_and_duplicates_nothing() {
    let mut app = spawn_app().await;
    let mut accepted = HashSet::new();
    for (round, millis) in [700u64, 350, 900].into_iter().enumerate() {
        let ids = load_until_killed(&mut app, round, Duration::from_millis(millis)).await;
        assert!(
            !ids.is_empty(),
            "round {round}: the server accepted nothing before the kill"
        );
        accepted.extend(ids);
        app.start();
    }

    // After the last restart the worker drains what the kills left in the queue.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for connection in 0..4 {
            for e in app
                .all_events(&format!("session_id=crash-{connection}"))
                .await
            {
                *counts
                    .entry(e["id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        if accepted.iter().all(|id| counts.contains_key(id)) {
            break counts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "accepted events missing after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "stored twice: {duplicates:?}");
    let stored: usize = counts.values().sum();
    eprintln!(
        "crash: {} events answered 202 over 3 kill -9 rounds, {stored} stored, 0 lost, 0 duplicated",
        accepted.len()
    );
    // The sessions' counters agree with the events, so the upserts were atomic with them.
    let mut counted = 0;
    for connection in 0..4 {
        let session = app
            .get_json(&format!("/sessions/crash-{connection}?limit=1"))
            .await;
        counted += session["event_count"].as_u64().unwrap() as usize;
    }
    assert_eq!(counted, stored);
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
