use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{event, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_events_over_eight_connections_into_one_session() {
    const CONNECTIONS: usize = 8;
    const PER_CONNECTION: usize = 1_250;
    let app = Arc::new(spawn_app().await);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            // One client with one pooled connection per task: eight keep-alive connections.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut ids = Vec::with_capacity(PER_CONNECTION);
            for i in 0..PER_CONNECTION {
                let micros = connection * PER_CONNECTION + i;
                let body = event("crowd", &format!("2023-01-01T00:00:00.{micros:06}Z"));
                let response = client
                    .post(app.url("/events"))
                    .bearer_auth(&app.ingest_token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::ACCEPTED);
                let body: Value = response.json().await.unwrap();
                ids.push(body["results"][0]["id"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut accepted = HashSet::new();
    for task in tasks {
        accepted.extend(task.await.unwrap());
    }
    let ingest_time = started.elapsed();
    assert_eq!(accepted.len(), CONNECTIONS * PER_CONNECTION);

    let session = app
        .wait_for_session_count("crowd", 10_000, Duration::from_secs(60))
        .await;
    let stored_time = started.elapsed();
    let events = app.all_events("session_id=crowd").await;
    let stored: HashSet<_> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.len(), 10_000);
    assert_eq!(stored, accepted);
    assert_eq!(session["event_count"], 10_000);
    let timestamps: Vec<_> = events
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(
        timestamps.windows(2).all(|w| w[0] < w[1]),
        "the timeline is in time order"
    );
    eprintln!(
        "concurrency: 10000 events over {CONNECTIONS} connections accepted in {ingest_time:?} \
         ({:.0} req/s), all stored after {stored_time:?}",
        10_000.0 / ingest_time.as_secs_f64()
    );
}
