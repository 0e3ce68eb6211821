//! `eye-client` against the real server: answers lost on the way back, rate limits,
//! a bad token. Every tracked event is stored exactly once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eye_client::{Client, Config, Event};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn pageview(session: &str, i: usize) -> Event {
    Event::new(
        session,
        "page interaction",
        "pageview",
        json!({"host": "shop.example.com", "path": format!("/item/{i}")}),
    )
}

/// A TCP proxy to `upstream` whose first `lose` connections carry the request to the
/// server but lose its answer: the server has the events, the client does not know.
async fn lossy_proxy(upstream: String, lose: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                if n < lose {
                    let (mut client_read, _client_write) = client.split();
                    let (mut server_read, mut server_write) = server.split();
                    let forward = tokio::io::copy(&mut client_read, &mut server_write);
                    let mut first = [0u8; 1];
                    // Once the answer starts, drop both ends: the answer is lost.
                    tokio::select! {
                        _ = forward => {}
                        _ = server_read.read(&mut first) => {}
                    }
                } else {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (address, connections)
}

async fn client_ids(app: &TestApp, session: &str) -> Vec<String> {
    app.all_events(&format!("session_id={session}"))
        .await
        .into_iter()
        .map(|e| e["client_id"].as_str().unwrap().to_owned())
        .collect()
}

fn quick_config(endpoint: &str, token: &str) -> Config {
    let mut config = Config::new(endpoint, token);
    config.batch_size = 50;
    config.flush_interval = Duration::from_millis(50);
    config.initial_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(500);
    config.shutdown_timeout = Duration::from_secs(30);
    config
}

#[tokio::test]
async fn events_are_stored_exactly_once_when_answers_are_lost() {
    let app = spawn_app().await;
    let upstream = app.address.trim_start_matches("http://").to_owned();
    let (proxy, connections) = lossy_proxy(upstream, 3).await;
    let client = Client::new(quick_config(&proxy, &app.ingest_token)).unwrap();
    let session = "rust-client-lossy";
    let mut sent_ids = HashSet::new();
    for i in 0..300 {
        let mut event = pageview(session, i);
        event.id = Some(format!("rust-{i}"));
        sent_ids.insert(event.id.clone().unwrap());
        client.track(event).unwrap();
    }
    client.flush().await;
    let stats = client.shutdown().await;
    assert!(
        connections.load(Ordering::SeqCst) > 3,
        "the proxy lost three answers"
    );
    assert_eq!(stats.sent, 300, "{stats:?}");
    assert!(stats.retries >= 3, "{stats:?}");
    assert_eq!(
        (stats.dropped, stats.failed, stats.rejected),
        (0, 0, 0),
        "{stats:?}"
    );
    app.wait_for_session_count(session, 300, Duration::from_secs(20))
        .await;
    let stored = client_ids(&app, session).await;
    assert_eq!(stored.len(), 300, "each event stored once");
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), sent_ids);
}

#[tokio::test]
async fn rate_limited_batches_wait_for_retry_after_and_arrive_once() {
    let app = spawn_app_with(&[
        "--rate-limit-events-per-second",
        "1000",
        "--rate-limit-burst",
        "1000",
    ])
    .await;
    let mut config = quick_config(&app.address, &app.ingest_token);
    config.batch_size = 500;
    let client = Client::new(config).unwrap();
    let session = "rust-client-429";
    for i in 0..2500 {
        client.track(pageview(session, i)).unwrap();
    }
    let stats = client.shutdown().await;
    assert_eq!(stats.sent, 2500, "{stats:?}");
    assert!(
        stats.retries >= 1,
        "the server answered 429 at least once: {stats:?}"
    );
    app.wait_for_session_count(session, 2500, Duration::from_secs(20))
        .await;
    let stored = client_ids(&app, session).await;
    assert_eq!(stored.iter().collect::<HashSet<_>>().len(), 2500);
}

#[tokio::test]
async fn a_refused_token_is_not_retried() {
    let app = spawn_app().await;
    let client = Client::new(quick_config(&app.address, "eye_i_not_a_token")).unwrap();
    for i in 0..10 {
        client.track(pageview("rust-client-401", i)).unwrap();
    }
    let started = std::time::Instant::now();
    let stats = client.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5), "no retry loop");
    assert_eq!(
        (stats.failed, stats.retries, stats.sent),
        (10, 0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn events_tracked_while_the_server_is_down_arrive_after_it_returns() {
    let mut app = spawn_app().await;
    let upstream = app.address.trim_start_matches("http://").to_owned();
    // A proxy that loses nothing: it keeps the client's address while the server
    // behind it stops and comes back on a new port.
    let target = Arc::new(std::sync::Mutex::new(upstream));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let routed = target.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = routed.lock().unwrap().clone();
            tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    let client = Client::new(quick_config(&proxy, &app.ingest_token)).unwrap();
    let session = "rust-client-restart";
    for i in 0..100 {
        client.track(pageview(session, i)).unwrap();
    }
    client.flush().await;
    app.kill();
    for i in 100..200 {
        client.track(pageview(session, i)).unwrap();
    }
    // Let a few attempts fail against the stopped server before it returns.
    crate::helpers::wait_until(Duration::from_secs(10), "failed attempts", || async {
        (client.stats().retries >= 2).then_some(())
    })
    .await;
    app.start();
    *target.lock().unwrap() = app.address.trim_start_matches("http://").to_owned();
    let stats = client.shutdown().await;
    assert_eq!(stats.sent, 200, "{stats:?}");
    app.wait_for_session_count(session, 200, Duration::from_secs(20))
        .await;
    assert_eq!(
        client_ids(&app, session)
            .await
            .into_iter()
            .collect::<HashSet<_>>()
            .len(),
        200
    );
}
