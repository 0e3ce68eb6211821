//! The PostgreSQL store going away and coming back. The test reaches PostgreSQL through
//! a TCP proxy of its own, which it cuts and restores: the machine's PostgreSQL stays up.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{cli, metric_sample, run_sql, spawn_eye, typed_event, wait_until};

/// Forwards 127.0.0.1:port to PostgreSQL until cut.
struct Proxy {
    port: u16,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(port: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(postgres_address()).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Proxy {
            port,
            task: Some(task),
        }
    }

    /// Closes the listener and every connection through it: PostgreSQL is "down".
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn postgres_address() -> String {
    let url = std::env::var("EYE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432");
    host_port.to_owned()
}

fn postgres_available() -> bool {
    match std::net::TcpStream::connect(postgres_address()) {
        Ok(_) => true,
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is required in CI: {error}"
            );
            crate::helpers::skipped(format_args!("PostgreSQL is not reachable ({error})"));
            false
        }
    }
}

/// `eye app create web` and a read token, on the store at `url`: (ingest, read).
fn web_app_tokens(data: &std::path::Path, url: &str) -> (String, String) {
    let admin = |args: &[&str]| {
        let mut all = vec!["--database-url", url];
        all.extend(args);
        cli(data, &all).trim().to_owned()
    };
    (
        admin(&["app", "create", "web"]),
        admin(&["token", "create", "--scope", "read"]),
    )
}

/// A new, empty PostgreSQL schema named after `prefix` and the time.
fn new_schema(prefix: &str) -> String {
    let schema = format!("{prefix}_{}", crate::helpers::unique_suffix());
    run_sql(format!("CREATE SCHEMA {schema}"));
    schema
}

// Two worker threads: the proxy must keep forwarding while the test blocks on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_delays_storage_loses_nothing_and_shows_in_readyz() {
    if !postgres_available() {
        return;
    }
    let schema = new_schema("eye_outage");
    let mut proxy = Proxy::start(0).await;
    let url = eye_store::postgres::in_schema(
        &format!("postgres://postgres@127.0.0.1:{}/test", proxy.port),
        &schema,
    );
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let (ingest, read) = web_app_tokens(&data, &url);
    let (server, address) = spawn_eye(
        &data,
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
    );
    let _server = crate::nats::Process(server);
    let http = reqwest::Client::new();
    let post = |from: usize| {
        let batch: Vec<Value> = (from..from + 100)
            .map(|i| {
                typed_event(
                    "pg",
                    "page interaction",
                    "pageview",
                    json!({"host": "h", "path": format!("/{i}")}),
                )
            })
            .collect();
        let request = http
            .post(format!("{address}/events"))
            .bearer_auth(&ingest)
            .json(&batch);
        async move { request.send().await.unwrap().status() }
    };
    let stored = || {
        let request = http.get(format!("{address}/stats")).bearer_auth(&read);
        async move {
            let response = request.send().await.ok()?;
            let body: Value = response.json().await.ok()?;
            body["total"].as_i64()
        }
    };
    assert_eq!(post(0).await, StatusCode::ACCEPTED);
    wait_until(Duration::from_secs(30), "the first 100 stored", || async {
        stored().await.filter(|n| *n == 100)
    })
    .await;

    proxy.cut();
    // The embedded queue still takes events: 202 means on disk in the queue.
    assert_eq!(post(100).await, StatusCode::ACCEPTED);
    wait_until(
        Duration::from_secs(30),
        "/readyz to report the store",
        || async {
            let response = http.get(format!("{address}/readyz")).send().await.ok()?;
            if response.status() != StatusCode::SERVICE_UNAVAILABLE {
                return None;
            }
            let body: Value = response.json().await.ok()?;
            (body["error"]["code"] == "store_unavailable").then_some(())
        },
    )
    .await;

    // The worker keeps retrying the batch and acknowledges nothing meanwhile.
    wait_until(
        Duration::from_secs(30),
        "two failed store writes",
        || async {
            let text = crate::helpers::scrape(&http, &address).await?;
            let failures = metric_sample(&text, "eye_store_write_failures_total")?;
            let depth = metric_sample(&text, "eye_queue_depth")?;
            assert!(
                depth >= 1.0,
                "nothing is acknowledged while the store is down"
            );
            let age = metric_sample(&text, "eye_queue_oldest_age_seconds")?;
            assert!(age > 0.0, "the backlog has an age: {age}");
            (failures >= 2.0).then_some(())
        },
    )
    .await;

    let _proxy = Proxy::start(proxy.port).await;
    wait_until(
        Duration::from_secs(60),
        "all 200 stored after the outage",
        || async { stored().await.filter(|n| *n == 200) },
    )
    .await;
    let ready = http.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    run_sql(format!("DROP SCHEMA {schema} CASCADE"));
}

/// A store upgraded to migration 0006 with events in it: a UUIDv7 client id derived a
/// fully hashed event id before, and a time-ordered one now. A retry across the upgrade
/// must find the event stored under the old id and not store it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v7_client_id_resent_across_the_upgrade_is_stored_once() {
    if !postgres_available() {
        return;
    }
    let schema = new_schema("eye_upgrade");
    let url = eye_store::postgres::in_schema(
        &format!("postgres://postgres@{}/test", postgres_address()),
        &schema,
    );
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let (ingest, read) = web_app_tokens(&data, &url);

    // Back to the store as version 5 left it, holding one event sent with a UUIDv7
    // client id and stored under the old rule.
    let sent_before = eye_core::ids::new_event_id().to_string();
    let (old_id, _) = eye_core::ids::legacy_twin(1, &sent_before).expect("a v7 client id");
    run_sql(format!(
        "SET search_path = {schema};
         DO $$ BEGIN
             IF (SELECT id FROM apps WHERE name = 'web') <> 1 THEN RAISE 'app id'; END IF;
         END $$;
         -- Migrations 0010 and 0009 undone, then 0008: the first partition becomes the
         -- table again.
         DROP TABLE indexed_fields;
         DROP TABLE field_indexes;
         DROP INDEX events_by_name;
         ALTER TABLE events DETACH PARTITION events_before_partitioning;
         ALTER SEQUENCE events_pk_seq OWNED BY NONE;
         DROP TABLE events;
         DROP TABLE event_ids;
         DROP TABLE event_partitions;
         ALTER TABLE events_before_partitioning RENAME TO events;
         ALTER TABLE events DROP CONSTRAINT events_before_partitioning_pkey;
         ALTER TABLE events ADD PRIMARY KEY (pk);
         ALTER TABLE events ADD CONSTRAINT events_id_key UNIQUE (id);
         ALTER SEQUENCE events_pk_seq OWNED BY events.pk;
         ALTER INDEX events_before_partitioning_by_session RENAME TO events_by_session;
         ALTER INDEX events_before_partitioning_by_category RENAME TO events_by_category;
         ALTER INDEX events_before_partitioning_by_time RENAME TO events_by_time;
         ALTER INDEX events_before_partitioning_by_type RENAME TO events_by_type;
         ALTER INDEX events_before_partitioning_by_app_received RENAME TO events_by_app_received;
         INSERT INTO events (id, app_id, client_id, session_id, category, name, data, ts, received_at)
             VALUES ('{old_id}', 1, '{sent_before}', 'upgrade', 'page interaction', 'pageview',
                     '{{}}', 0, 0);
         DROP TABLE store_meta;
         DROP TABLE erasures;
         DROP INDEX events_by_app_received;
         DROP INDEX errors_by_session;
         ALTER TABLE apps DROP COLUMN retention;
         DELETE FROM eye_migrations WHERE version >= 6;"
    ));

    let (server, address) = spawn_eye(
        &data,
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
    );
    let _server = crate::nats::Process(server);
    let http = reqwest::Client::new();
    let sent_after = eye_core::ids::new_event_id().to_string();
    let event = |client_id: &str| {
        let mut event = typed_event(
            "upgrade",
            "page interaction",
            "pageview",
            json!({"host": "h", "path": "/"}),
        );
        event["id"] = json!(client_id);
        event
    };
    let response = http
        .post(format!("{address}/events"))
        .bearer_auth(&ingest)
        .json(&json!([event(&sent_before), event(&sent_after)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // The worker writes in queue order: once the second event is stored, the first
    // has been decided too.
    let stored: Vec<Value> =
        wait_until(Duration::from_secs(30), "the new event stored", || async {
            let response = http
                .get(format!("{address}/events?session_id=upgrade"))
                .bearer_auth(&read)
                .send()
                .await
                .ok()?;
            let body: Value = response.json().await.ok()?;
            let events = body["events"].as_array()?.clone();
            events
                .iter()
                .any(|e| e["client_id"] == sent_after.as_str())
                .then_some(events)
        })
        .await;
    let client_ids: Vec<&str> = stored
        .iter()
        .filter_map(|e| e["client_id"].as_str())
        .collect();
    assert_eq!(
        client_ids.len(),
        2,
        "the resend is not stored again: {stored:?}"
    );
    assert!(client_ids.contains(&sent_before.as_str()));
    let resent = stored
        .iter()
        .find(|e| e["client_id"] == sent_before.as_str())
        .unwrap();
    assert_eq!(
        resent["id"],
        old_id.to_string(),
        "the event keeps its old id"
    );
    run_sql(format!("DROP SCHEMA {schema} CASCADE"));
}

/// The fleet's backup procedure (docs/deployment.md): `pg_dump` of a store's schema
/// while it serves, the schema dropped, `pg_restore`, and the same events served again.
#[tokio::test]
async fn a_pg_dump_of_the_store_restores_every_event() {
    if !postgres_available() {
        return;
    }
    let tool = |name: &str| std::process::Command::new(name).arg("--version").output();
    if tool("pg_dump").is_err() || tool("pg_restore").is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pg_dump and pg_restore are needed in CI"
        );
        crate::helpers::skipped(format_args!("pg_dump or pg_restore is not installed"));
        return;
    }
    let database = std::env::var("EYE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = new_schema("eye_dump");
    let url = eye_store::postgres::in_schema(&database, &schema);
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let (ingest, read) = web_app_tokens(&data, &url);
    let (server, address) = spawn_eye(
        &data,
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
    );
    let mut server = crate::nats::Process(server);
    let http = reqwest::Client::new();
    let batch: Vec<Value> = (0..50)
        .map(|i| {
            typed_event(
                &format!("s{}", i % 5),
                "page interaction",
                "pageview",
                json!({"host": "h", "path": format!("/{i}")}),
            )
        })
        .collect();
    let answer = http
        .post(format!("{address}/events"))
        .bearer_auth(&ingest)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let count = |address: String| {
        let (http, read) = (http.clone(), read.clone());
        async move {
            let stats: Value = http
                .get(format!("{address}/stats"))
                .bearer_auth(&read)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            stats["total"].as_i64()
        }
    };
    wait_until(Duration::from_secs(20), "50 events stored", || {
        let count = count(address.clone());
        async move { (count.await == Some(50)).then_some(()) }
    })
    .await;

    // The dump is taken while the server serves.
    let dump = temp.path().join("eye.dump");
    let output = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--schema", &schema, "--file"])
        .arg(&dump)
        .arg(&database)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.0.kill().unwrap();
    let _ = server.0.wait();
    run_sql(format!("DROP SCHEMA {schema} CASCADE"));
    let output = std::process::Command::new("pg_restore")
        .args(["--dbname", &database])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let (restarted, address) = spawn_eye(
        &data,
        &["--database-url", &url, "serve", "--listen", "127.0.0.1:0"],
    );
    let _restarted = crate::nats::Process(restarted);
    assert_eq!(
        count(address.clone()).await,
        Some(50),
        "every event, once, after the restore"
    );
    let session: Value = http
        .get(format!("{address}/sessions/s0"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["event_count"], 10, "{session}");
    run_sql(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}
