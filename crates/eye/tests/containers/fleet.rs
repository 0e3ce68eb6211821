//! `deploy/compose.fleet.yaml`: NATS, PostgreSQL, two API and two worker containers
//! started by one `up`; 1,000 events through both APIs while a worker container is
//! killed; exactly 1,000 in PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::docker::{Compose, build_images, docker_available, free_port, one_at_a_time};

const EVENTS: usize = 1_000;
const PER_REQUEST: usize = 10;

/// `SELECT count(*), count(DISTINCT id) FROM events`, by psql in the PostgreSQL container.
fn stored(compose: &Compose) -> Option<(usize, usize)> {
    let output = compose.run(&[
        "exec",
        "-T",
        "postgres",
        "psql",
        "-U",
        "eye",
        "-d",
        "eye",
        "-tA",
        "-F",
        " ",
        "-c",
        "SELECT count(*), count(DISTINCT id) FROM events",
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    let (all, distinct) = text.trim().split_once(' ')?;
    Some((all.parse().ok()?, distinct.parse().ok()?))
}

/// Posts one batch until an API answers 202 (a 503 or a refused connection is "not
/// taken": the same client ids are sent again, as the clients do).
async fn send(client: &reqwest::Client, addresses: &[String], token: &str, batch: &[Value]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        let address = &addresses[attempt % addresses.len()];
        let answer = client
            .post(format!("{address}/events"))
            .bearer_auth(token)
            .json(batch)
            .send()
            .await;
        match answer {
            Ok(response) if response.status() == 202 => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["accepted"], PER_REQUEST, "{body}");
                return;
            }
            other => {
                let status = other
                    .map(|r| r.status().to_string())
                    .unwrap_or_else(|e| e.to_string());
                assert!(
                    Instant::now() < deadline,
                    "no API took a batch within 60 s: {status}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_stores_every_event_once_through_two_apis_with_a_worker_killed() {
    if !docker_available() {
        return;
    }
    let _serial = one_at_a_time().await;
    build_images();
    let ports = [free_port(), free_port()];
    let compose = Compose::new(
        "deploy/compose.fleet.yaml",
        "fleet",
        &[
            ("EYE_API_1_PORT", ports[0].to_string()),
            ("EYE_API_2_PORT", ports[1].to_string()),
        ],
    );
    // One `up`: the health checks and `depends_on` order everything.
    compose.ok(&["up", "-d"]);
    for service in ["api-1", "api-2", "worker-1", "worker-2"] {
        compose.wait_healthy(service, Duration::from_secs(120));
    }
    assert_eq!(
        compose.inspect("migrate", "{{.State.ExitCode}}"),
        "0",
        "the one-off migration succeeded"
    );
    let addresses: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let token = compose.eye("api-1", &["app", "create", "web"]);
    let read = compose.eye("api-2", &["token", "create", "--scope", "read"]);

    let client = reqwest::Client::new();
    let mut killed = false;
    for request in 0..EVENTS / PER_REQUEST {
        let batch: Vec<Value> = (0..PER_REQUEST)
            .map(|n| {
                let n = request * PER_REQUEST + n;
                json!({
                    "id": format!("fleet-{n}"), "session_id": format!("fleet-session-{}", n % 50),
                    "category": "page interaction", "name": "pageview",
                    "data": {"host": "example.com", "path": format!("/{n}")},
                    "timestamp": "2026-01-01T00:00:00Z",
                })
            })
            .collect();
        // Alternate the API containers, the first choice first.
        let order = if request % 2 == 0 {
            addresses.clone()
        } else {
            addresses.iter().rev().cloned().collect()
        };
        send(&client, &order, &token, &batch).await;
        if request == 30 && !killed {
            let worker = compose.container("worker-1");
            crate::docker::ok("docker", &["kill", &worker], &[]);
            let state = compose.inspect("worker-1", "{{.State.Status}} exit {{.State.ExitCode}}");
            eprintln!(
                "fleet: worker-1 killed after {} events: {state}",
                (request + 1) * PER_REQUEST
            );
            killed = true;
        }
    }

    // A batch the killed worker had fetched is delivered again after JetStream's
    // acknowledgement wait (60 s), to the other worker.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = None;
    while Instant::now() < deadline {
        last = stored(&compose);
        if last.is_some_and(|(all, _)| all >= EVENTS) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("fleet: {last:?} events stored (all, distinct) after a worker was killed");
    assert_eq!(
        last,
        Some((EVENTS, EVENTS)),
        "exactly {EVENTS} events, each once"
    );
    // And the API reads the same from PostgreSQL.
    let stats: Value = client
        .get(format!("{}/stats", addresses[1]))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total"], EVENTS, "{stats}");
}
