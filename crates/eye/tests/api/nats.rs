//! The distributed queue against the real NATS JetStream: `eye api` and `eye worker`
//! as separate processes, a worker killed mid-stream, and NATS going away and back.
//!
//! NATS is found at `EYE_TEST_NATS_URL` (default `nats://127.0.0.1:4222`); when it
//! does not answer, these tests say so and pass, except with `CI=true`, where a
//! missing NATS is a failure. The outage test starts its own `nats-server`.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{cli, run_sql, spawn_eye, typed_event, use_postgres_store, wait_until};

fn eye_queue_servers(urls: &str) -> Vec<String> {
    urls.split(',').map(str::to_owned).collect()
}

fn nats_url() -> String {
    std::env::var("EYE_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// True when NATS answers; otherwise skips (outside CI) or fails (in CI).
fn nats_available(url: &str) -> bool {
    let address = url.trim_start_matches("nats://");
    match TcpStream::connect(address) {
        Ok(_) => true,
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "NATS is required in CI at {url}: {error}"
            );
            crate::helpers::skipped(format_args!("NATS is not reachable at {url} ({error})"));
            false
        }
    }
}

/// A stream name of its own for each test run, so tests never share messages.
fn fresh_stream() -> String {
    format!("EYE_TEST_{}", crate::helpers::unique_suffix())
}

pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn delete_stream(url: &str, stream: &str) {
    if let Ok(client) = async_nats::connect(url).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(stream)
            .await;
    }
}

async fn total_stored(client: &reqwest::Client, address: &str, token: &str) -> Option<i64> {
    let response = client
        .get(format!("{address}/stats"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    body["total"].as_i64()
}

#[tokio::test]
async fn a_worker_killed_mid_stream_loses_and_duplicates_nothing() {
    // The heaviest test: the NATS fault tests do not share the two cores with it.
    let _one_at_a_time = OWN_SERVERS.lock().await;
    let url = nats_url();
    if !nats_available(&url) {
        return;
    }
    let stream = fresh_stream();
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    // With EYE_TEST_STORE=postgres: NATS and PostgreSQL, the fleet's engines.
    let schema = use_postgres_store(&data);
    let ingest = cli(&data, &["app", "create", "web"]).trim().to_owned();
    let read = cli(&data, &["token", "create", "--scope", "read"])
        .trim()
        .to_owned();
    let queue = [
        "--queue-url",
        url.as_str(),
        "--nats-stream",
        stream.as_str(),
    ];
    let role = |role: &'static str| {
        let mut args = vec![
            role,
            "--listen",
            "127.0.0.1:0",
            "--worker-batch-size",
            "2000",
        ];
        args.extend(queue);
        args
    };
    let (api, address) = spawn_eye(&data, &role("api"));
    let _api = Process(api);
    let mut doomed = Some(Process(spawn_eye(&data, &role("worker")).0));
    let _survivor = Process(spawn_eye(&data, &role("worker")).0);

    let client = reqwest::Client::new();
    const REQUESTS: usize = 100;
    const PER_REQUEST: usize = 1_000;
    for request in 0..REQUESTS {
        let batch: Vec<Value> = (0..PER_REQUEST)
            .map(|i| {
                let mut e = typed_event(
                    &format!("k{}", (request * PER_REQUEST + i) % 5_000),
                    "page interaction",
                    "pageview",
                    json!({"host": "h", "path": format!("/{request}/{i}")}),
                );
                e["timestamp"] = json!("2024-05-01T00:00:00Z");
                e
            })
            .collect();
        let response = client
            .post(format!("{address}/events"))
            .bearer_auth(&ingest)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "request {request}");
        // Once some events are stored, SIGKILL one worker in the middle of its work.
        if request == REQUESTS / 3 {
            wait_until(
                Duration::from_secs(60),
                "the first events stored",
                || async {
                    total_stored(&client, &address, &read)
                        .await
                        .filter(|n| *n > 0)
                },
            )
            .await;
            drop(doomed.take());
        }
    }
    let expected = (REQUESTS * PER_REQUEST) as i64;
    wait_until(
        Duration::from_secs(180),
        &format!("{expected} events stored"),
        || async {
            total_stored(&client, &address, &read)
                .await
                .filter(|n| *n >= expected)
        },
    )
    .await;
    // Redeliveries of what the killed worker held must not add a single event.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(total_stored(&client, &address, &read).await, Some(expected));
    let errors: Value = client
        .get(format!("{address}/errors"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(errors["errors"], json!([]));
    delete_stream(&url, &stream).await;
    if let Some(schema) = schema {
        run_sql(format!("DROP SCHEMA {schema} CASCADE"));
    }
}

/// A free port below Linux's ephemeral range (32768 and up), so that no server of a
/// concurrent test, all of which bind port 0, can take it between this check and the
/// `nats-server` start; the tests that start `nats-server` also run one at a time.
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    loop {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(step.wrapping_mul(7919)) % 10_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Held by each NATS fault test: they run one at a time, so that a cluster's elections
/// are not starved of CPU by another test's load on this 2-core machine.
static OWN_SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn start_nats(port: u16, store: &std::path::Path) -> Option<Process> {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(child) => {
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "nats-server did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            Some(Process(child))
        }
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nats-server is required in CI: {error}"
            );
            crate::helpers::skipped(format_args!("nats-server cannot be started ({error})"));
            None
        }
    }
}

#[tokio::test]
async fn ingest_answers_503_while_nats_is_down_and_recovers_by_itself() {
    let _one_at_a_time = OWN_SERVERS.lock().await;
    let temp = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = temp.path().join("nats");
    let Some(nats) = start_nats(port, &store) else {
        return;
    };
    let url = format!("nats://127.0.0.1:{port}");
    let data = temp.path().join("data");
    let ingest = cli(&data, &["app", "create", "web"]).trim().to_owned();
    let read = cli(&data, &["token", "create", "--scope", "read"])
        .trim()
        .to_owned();
    let (server, address) = spawn_eye(
        &data,
        &["serve", "--listen", "127.0.0.1:0", "--queue-url", &url],
    );
    let _server = Process(server);
    let client = reqwest::Client::new();
    let post = |n: usize| {
        let client = &client;
        let (address, ingest) = (&address, &ingest);
        async move {
            let event = typed_event(
                "outage",
                "page interaction",
                "pageview",
                json!({"host": "h", "path": format!("/{n}")}),
            );
            client
                .post(format!("{address}/events"))
                .bearer_auth(ingest)
                .json(&event)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let mut accepted = 0;
    assert_eq!(post(0).await, StatusCode::ACCEPTED);
    accepted += 1;
    // Stored before NATS goes: a single NATS 2.9 node killed with SIGKILL may lose what
    // it acknowledged but had not yet written (see docs/deployment.md: durability rests
    // on replication, which the cluster test covers). This test is about ingest.
    wait_until(
        Duration::from_secs(30),
        "the first event stored",
        || async {
            total_stored(&client, &address, &read)
                .await
                .filter(|total| *total == accepted)
        },
    )
    .await;

    drop(nats); // SIGKILL
    for n in 1..=5 {
        let status = post(n).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "with NATS down, attempt {n}"
        );
    }
    let ready = client
        .get(format!("{address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_unavailable");

    let _nats = start_nats(port, &store).expect("nats-server restarts");
    let mut n = 100;
    wait_until(Duration::from_secs(30), "ingest to recover", || {
        n += 1;
        let attempt = post(n);
        async move { (attempt.await == StatusCode::ACCEPTED).then_some(()) }
    })
    .await;
    accepted += 1;
    // Every refused attempt may still be stored: a publish made before the client
    // noticed the outage waits in its buffer, times out into a 503, and is delivered
    // on reconnect. (Clients retry with their event's id, which NATS de-duplicates.)
    // So the store holds every accepted event, and at most the refused ones besides.
    let refused = 5 + (n - 101) as i64;
    let total = wait_until(
        Duration::from_secs(30),
        "every accepted event stored",
        || async {
            total_stored(&client, &address, &read)
                .await
                .filter(|total| *total >= accepted)
        },
    )
    .await;
    assert!(
        total <= accepted + refused,
        "{total} stored for {accepted} accepted and {refused} refused"
    );
}

/// A 3-node JetStream cluster on local ports: (client port, store dir, process) each.
struct Cluster {
    nodes: Vec<(String, u16, std::path::PathBuf, Option<Process>)>,
    routes: String,
    cluster_ports: Vec<u16>,
}

impl Cluster {
    /// Starts the cluster and waits until it takes a three-replica stream named
    /// `stream` (the configuration `eye` asks for), on fresh ports again when it does
    /// not: a port `free_port` found free can be taken by a test running beside this one
    /// before nats-server binds it, and then a node never joins. Returns the cluster and
    /// a client connected to it.
    async fn start(dir: &std::path::Path, stream: &str) -> Option<(Cluster, async_nats::Client)> {
        for attempt in 1..=3 {
            let cluster = Cluster::start_once(&dir.join(format!("attempt{attempt}")))?;
            if !cluster.up_within(Duration::from_secs(10)) {
                eprintln!("a nats-server of the cluster did not start (attempt {attempt})");
            } else if let Some(client) = cluster.takes_stream(stream, Duration::from_secs(45)).await
            {
                return Some((cluster, client));
            } else {
                eprintln!("the cluster did not take a stream within 45 s (attempt {attempt})");
            }
            cluster.print_logs();
        }
        panic!("the JetStream cluster did not form in three attempts");
    }

    /// A client once the cluster has elected its JetStream leaders and created the
    /// three-replica stream; None when it has not within `within`.
    async fn takes_stream(&self, stream: &str, within: Duration) -> Option<async_nats::Client> {
        let deadline = Instant::now() + within;
        let urls = self.urls();
        while Instant::now() < deadline {
            let attempt = async {
                let client = async_nats::connect(eye_queue_servers(&urls)).await.ok()?;
                let jetstream = async_nats::jetstream::new(client.clone());
                jetstream
                    .get_or_create_stream(async_nats::jetstream::stream::Config {
                        name: stream.to_owned(),
                        subjects: vec![format!("{stream}.events")],
                        storage: async_nats::jetstream::stream::StorageType::File,
                        num_replicas: 3,
                        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
                        duplicate_window: Duration::from_secs(120),
                        ..Default::default()
                    })
                    .await
                    .ok()?;
                Some(client)
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(Some(client)) = tokio::time::timeout(left, attempt).await {
                return Some(client);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// The end of each node's log, for a cluster that did not form.
    fn print_logs(&self) {
        for (name, _, store, _) in &self.nodes {
            let log = std::fs::read_to_string(store.with_extension("log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- {name}'s log, last lines:");
            for line in &lines[lines.len().saturating_sub(15)..] {
                eprintln!("{line}");
            }
        }
    }

    fn up_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        for (_, port, _, _) in &self.nodes {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        true
    }

    fn start_once(dir: &std::path::Path) -> Option<Cluster> {
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            routes,
            cluster_ports,
        };
        for (i, port) in client_ports.into_iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.join(&name);
            cluster.nodes.push((name, port, store, None));
        }
        for i in 0..3 {
            if !cluster.run(i) {
                return None;
            }
        }
        Some(cluster)
    }

    fn run(&mut self, i: usize) -> bool {
        let (name, port, store, process) = &mut self.nodes[i];
        // nats-server logs to stderr; kept beside the node's store for `print_logs`.
        let log = std::fs::create_dir_all(store.parent().expect("a parent"))
            .and_then(|()| std::fs::File::create(store.with_extension("log")))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["--server_name", name, "--cluster_name", "eye-test"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", self.cluster_ports[i]),
            ])
            .args(["--routes", &self.routes, "-sd"])
            .arg(&*store)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        match child {
            Ok(child) => {
                *process = Some(Process(child));
                true
            }
            Err(error) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "nats-server is required in CI: {error}"
                );
                crate::helpers::skipped(format_args!("nats-server cannot be started ({error})"));
                false
            }
        }
    }

    fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|(_, port, _, _)| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn kill(&mut self, name: &str) {
        let node = self.nodes.iter_mut().find(|n| n.0 == name).expect("a node");
        node.3 = None;
    }
}

#[tokio::test]
async fn a_cluster_node_killed_during_ingest_loses_no_accepted_event() {
    let _one_at_a_time = OWN_SERVERS.lock().await;
    let temp = tempfile::tempdir().unwrap();
    let stream = "EYE_CLUSTER_TEST";
    let Some((mut cluster, client)) = Cluster::start(temp.path(), stream).await else {
        return;
    };
    let urls = cluster.urls();

    let data = temp.path().join("data");
    let ingest = cli(&data, &["app", "create", "web"]).trim().to_owned();
    let read = cli(&data, &["token", "create", "--scope", "read"])
        .trim()
        .to_owned();
    let (server, address) = spawn_eye(
        &data,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--queue-url",
            &urls,
            "--nats-stream",
            stream,
            "--nats-replicas",
            "3",
        ],
    );
    let _server = Process(server);
    let http = reqwest::Client::new();
    let mut accepted: Vec<String> = Vec::new();
    let mut refused = 0;
    let mut accepted_after_kill = 0;
    let mut killed_at: Option<Instant> = None;
    let mut request = 0;
    // 50 requests, then the kill, then until 100 more are accepted (a minute at most).
    while accepted_after_kill < 100 {
        request += 1;
        if let Some(at) = killed_at {
            assert!(
                at.elapsed() < Duration::from_secs(60),
                "ingest did not recover within a minute of losing a node"
            );
        }
        if request == 50 {
            killed_at = Some(Instant::now());
            // Kill the stream's leader: the hardest node to lose.
            let jetstream = async_nats::jetstream::new(client.clone());
            let mut handle = jetstream.get_stream(stream).await.unwrap();
            let leader = handle
                .info()
                .await
                .unwrap()
                .cluster
                .as_ref()
                .and_then(|c| c.leader.clone())
                .expect("a stream leader");
            cluster.kill(&leader);
        }
        let batch: Vec<Value> = (0..20)
            .map(|i| {
                typed_event(
                    &format!("c{}", i % 7),
                    "page interaction",
                    "pageview",
                    json!({"host": "h", "path": format!("/{request}/{i}")}),
                )
            })
            .collect();
        let response = http
            .post(format!("{address}/events"))
            .bearer_auth(&ingest)
            .json(&batch)
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::ACCEPTED => {
                let body: Value = response.json().await.unwrap();
                for result in body["results"].as_array().unwrap() {
                    accepted.push(result["id"].as_str().unwrap().to_owned());
                }
                if killed_at.is_some() {
                    accepted_after_kill += 1;
                }
            }
            // While the client reconnects and the stream elects a new leader, ingest
            // refuses (and the client retries); it must never lose what it accepted.
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    eprintln!(
        "{} events accepted, {refused} requests refused while the cluster recovered",
        accepted.len()
    );
    let stored: std::collections::HashSet<String> = wait_until(
        Duration::from_secs(120),
        "every accepted event stored",
        || async {
            let ids: std::collections::HashSet<String> =
                crate::helpers::event_ids(&http, &address, &read, "order=asc")
                    .await?
                    .into_iter()
                    .collect();
            accepted.iter().all(|id| ids.contains(id)).then_some(ids)
        },
    )
    .await;
    assert!(stored.len() >= accepted.len());
}
