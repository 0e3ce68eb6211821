//! Starts the real `eye` binary on a random port with a temporary data directory and
//! talks HTTP to it, as a client would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const BINARY: &str = env!("CARGO_BIN_EXE_eye");

/// With `EYE_TEST_STORE=postgres` every test app keeps its store in a PostgreSQL schema
/// of its own (at `EYE_TEST_DATABASE_URL`, default the local `test` database) instead
/// of the embedded store: the same suite, the other back end.
pub fn postgres_mode() -> bool {
    std::env::var("EYE_TEST_STORE").as_deref() == Ok("postgres")
}

fn test_database_url() -> String {
    std::env::var("EYE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The PostgreSQL store URL of each data directory in use (PostgreSQL mode only).
static DATABASES: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());

fn database_url_for(data_dir: &Path) -> Option<String> {
    let databases = DATABASES.lock().unwrap();
    databases
        .iter()
        .find(|(dir, _)| dir == data_dir)
        .map(|(_, url)| url.clone())
}

/// Runs `sql` on the test database (PostgreSQL mode only).
pub fn run_sql(sql: String) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (client, connection) =
                tokio_postgres::connect(&test_database_url(), tokio_postgres::NoTls)
                    .await
                    .expect("PostgreSQL at EYE_TEST_DATABASE_URL");
            tokio::spawn(connection);
            // A killed server's backend may still be building an index CONCURRENTLY
            // (indexed fields), which waits for every transaction, ours too: PostgreSQL
            // breaks the deadlock by failing one side, and ours is tried again.
            let mut tries = 0;
            loop {
                match client.batch_execute(&sql).await {
                    Ok(()) => break,
                    Err(error)
                        if tries < 10
                            && error.code()
                                == Some(
                                    &tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED,
                                ) =>
                    {
                        tries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    Err(error) => panic!("running SQL: {error}"),
                }
            }
        });
    })
    .join()
    .expect("the SQL thread");
}

/// Gives `data_dir` a fresh PostgreSQL schema as its store (PostgreSQL mode only),
/// which every later `cli`, `eye_command` and `spawn_eye` for it uses; returns the
/// schema, to be dropped when the test is done.
pub fn use_postgres_store(data_dir: &Path) -> Option<String> {
    if !postgres_mode() {
        return None;
    }
    let schema = format!("eye_test_{}", unique_suffix());
    run_sql(format!("CREATE SCHEMA {schema}"));
    let base = test_database_url();
    let url = eye_store::postgres::in_schema(&base, &schema);
    DATABASES
        .lock()
        .unwrap()
        .push((data_dir.to_path_buf(), url));
    Some(schema)
}

/// `eye --data-dir DIR` (and `--database-url` in PostgreSQL mode).
pub fn eye_command(data_dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command.arg("--data-dir").arg(data_dir);
    if let Some(url) = database_url_for(data_dir) {
        command.arg("--database-url").arg(url);
    }
    command
}

/// Runs an `eye` command against `data_dir` and returns its stdout; fails on error.
pub fn cli(data_dir: &Path, args: &[&str]) -> String {
    let output = eye_command(data_dir)
        .args(args)
        .output()
        .expect("running eye");
    assert!(
        output.status.success(),
        "eye {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// Starts `eye --data-dir DIR ARGS...` (a command that serves HTTP) and waits until it
/// reports its address.
pub fn spawn_eye(data_dir: &Path, args: &[&str]) -> (Child, String) {
    let level = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into());
    let (child, address, _log) = spawn_eye_logged(data_dir, args, &[("EYE_LOG", &level)]);
    (child, address)
}

/// Every line the server writes, as it comes: its logs (stdout) and its address
/// (stderr).
pub type Log = Arc<Mutex<Vec<String>>>;

/// Starts `eye` with extra environment variables and keeps its output lines.
pub fn spawn_eye_logged(
    data_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, Log) {
    let mut command = eye_command(data_dir);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("starting eye");
    let log: Log = Arc::default();
    let (tx, rx) = mpsc::channel();
    keep_lines(child.stdout.take().expect("piped stdout"), &log, None);
    keep_lines(child.stderr.take().expect("piped stderr"), &log, Some(tx));
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("eye {args:?} did not report its address within 30 s"));
    (child, address, log)
}

/// Reads `output` line by line into `log` on a thread of its own; the address line is
/// sent to `address` when one is given.
fn keep_lines(
    output: impl std::io::Read + Send + 'static,
    log: &Log,
    mut address: Option<mpsc::Sender<String>>,
) {
    let lines = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if let Some(listening) = line.strip_prefix("eye: listening on ")
                && let Some(tx) = address.take()
            {
                let _ = tx.send(listening.to_owned());
            }
            if std::env::var_os("TEST_LOG").is_some() {
                eprintln!("[eye] {line}");
            }
            lines.lock().unwrap().push(line);
        }
    });
}

pub struct TestApp {
    pub address: String,
    pub data_dir: PathBuf,
    pub ingest_token: String,
    pub read_token: String,
    pub admin_token: String,
    pub client: reqwest::Client,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// The PostgreSQL schema holding this app's store (PostgreSQL mode).
    schema: Option<String>,
    _temp: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts a server with extra `serve` flags, an application `web` and a read token.
pub async fn spawn_app_with(extra_args: &[&str]) -> TestApp {
    let temp = tempfile::tempdir().expect("temporary directory");
    let data_dir = temp.path().join("data");
    let schema = use_postgres_store(&data_dir);
    let ingest_token = cli(&data_dir, &["app", "create", "web"]).trim().to_owned();
    let read_token = cli(&data_dir, &["token", "create", "--scope", "read"])
        .trim()
        .to_owned();
    let admin_token = cli(&data_dir, &["token", "create", "--scope", "admin"])
        .trim()
        .to_owned();
    let mut app = TestApp {
        address: String::new(),
        data_dir,
        ingest_token,
        read_token,
        admin_token,
        client: reqwest::Client::new(),
        child: None,
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        schema,
        _temp: temp,
    };
    app.start();
    app
}

impl TestApp {
    /// Starts (or restarts) the server process and waits until it listens.
    pub fn start(&mut self) {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend(self.extra_args.iter().map(String::as_str));
        let (child, address) = spawn_eye(&self.data_dir, &args);
        self.address = address;
        self.child = Some(child);
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reaping the server");
        }
    }

    /// SIGTERM, then waits for the exit; returns whether it exited by itself in time.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_events(&self, body: &Value) -> Response {
        self.post_raw(
            body.to_string().into_bytes(),
            "application/json",
            Some(&self.ingest_token),
        )
        .await
    }

    pub async fn post_raw(
        &self,
        body: Vec<u8>,
        content_type: &str,
        token: Option<&str>,
    ) -> Response {
        let mut request = self
            .client
            .post(self.url("/events"))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST /events")
    }

    pub async fn get(&self, path_and_query: &str) -> Response {
        self.get_as(path_and_query, &self.read_token).await
    }

    pub async fn get_as(&self, path_and_query: &str, token: &str) -> Response {
        self.client
            .get(self.url(path_and_query))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let response = self.get(path_and_query).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path_and_query}");
        response.json().await.expect("JSON body")
    }

    /// Every stored event matching `query` (e.g. `session_id=s`), following cursors.
    pub async fn all_events(&self, query: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/events?{query}&limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get_json(&path).await;
            events.extend(
                page["events"]
                    .as_array()
                    .expect("events array")
                    .iter()
                    .cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return events,
            }
        }
    }

    /// Creates the application `name` allowing the browser origins `origins`
    /// (`POST /apps`) and returns its ingest token.
    pub async fn create_app(&self, name: &str, origins: &[&str]) -> String {
        let created: Value = self
            .send_as(
                reqwest::Method::POST,
                "/apps",
                &self.admin_token,
                Some(&json!({"name": name, "allowed_origins": origins})),
            )
            .await
            .json()
            .await
            .expect("JSON");
        created["token"]
            .as_str()
            .unwrap_or_else(|| panic!("an ingest token: {created}"))
            .to_owned()
    }

    /// Sends `method path` with `token` and an optional JSON body.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("HTTP request")
    }

    /// `PUT /event-types/{category}/{name}/schema` with the admin token.
    pub async fn put_schema(
        &self,
        category: &str,
        name: &str,
        schema: Value,
        mode: Option<&str>,
    ) -> Response {
        let mut body = json!({ "schema": schema });
        if let Some(mode) = mode {
            body["mode"] = json!(mode);
        }
        self.send_as(
            reqwest::Method::PUT,
            &schema_path(category, name),
            &self.admin_token,
            Some(&body),
        )
        .await
    }

    /// Posts `events` (an array) and returns the answer's `results`, checking the 202.
    pub async fn post_batch(&self, events: &[Value]) -> Vec<Value> {
        let response = self.post_events(&Value::Array(events.to_vec())).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.expect("JSON answer");
        body["results"].as_array().expect("results").clone()
    }

    /// Waits until the error with this `error_id` (or event id) is recorded.
    pub async fn wait_for_error(&self, id: &str, within: Duration) -> Value {
        wait_until(within, &format!("error {id}"), || async {
            let response = self.get(&format!("/errors/{id}")).await;
            if response.status() != StatusCode::OK {
                return None;
            }
            response.json().await.ok()
        })
        .await
    }

    /// Waits until the event with this id is stored.
    pub async fn wait_for_event(&self, session_id: &str, id: &str, within: Duration) -> Value {
        wait_until(within, &format!("event {id}"), || async {
            self.all_events(&format!("session_id={session_id}"))
                .await
                .into_iter()
                .find(|e| e["id"] == id)
        })
        .await
    }

    /// Every error record, newest first.
    pub async fn all_errors(&self) -> Vec<Value> {
        let page = self.get_json("/errors?limit=1000").await;
        page["errors"].as_array().expect("errors array").clone()
    }

    /// Waits until the session holds `count` events, failing after `within`.
    pub async fn wait_for_session_count(
        &self,
        session_id: &str,
        count: i64,
        within: Duration,
    ) -> Value {
        let path = format!("/sessions/{session_id}?limit=1");
        wait_until(
            within,
            &format!("session {session_id} to hold {count} events"),
            || async {
                let response = self.get(&path).await;
                if response.status() != StatusCode::OK {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                (body["event_count"].as_i64() == Some(count)).then_some(body)
            },
        )
        .await
    }

    /// Waits until the error store holds at least `count` errors.
    pub async fn wait_for_errors(&self, count: usize, within: Duration) -> Vec<Value> {
        wait_until(within, &format!("{count} errors"), || async {
            let errors = self.all_errors().await;
            (errors.len() >= count).then_some(errors)
        })
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
        if let Some(schema) = self.schema.take() {
            run_sql(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

/// Polls `check` until it returns `Some`, panicking with `what` after `within`.
/// `GET {address}/metrics` as text; `None` when the server does not answer.
pub async fn scrape(client: &reqwest::Client, address: &str) -> Option<String> {
    let response = client.get(format!("{address}/metrics")).send().await.ok()?;
    response.text().await.ok()
}

/// Every event id `GET /events?{query}` pages through, in order; `None` on any
/// failure (the caller retries).
pub async fn event_ids(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    query: &str,
) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{address}/events?{query}&limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let response = client.get(url).bearer_auth(token).send().await.ok()?;
        let page: Value = response.json().await.ok()?;
        for event in page["events"].as_array()? {
            ids.push(event["id"].as_str()?.to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Some(ids),
        }
    }
}

/// The value of one unlabelled sample in a Prometheus text exposition.
pub fn metric_sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (metric, value) = line.rsplit_once(' ')?;
        (metric == name).then(|| value.parse().ok()).flatten()
    })
}

pub async fn wait_until<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        // A check that hangs (a request to a stalled server) must fail the test at the
        // deadline, not hold it forever.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        if let Ok(Some(value)) = tokio::time::timeout(left, check()).await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn event(session_id: &str, timestamp: &str) -> Value {
    json!({
        "session_id": session_id,
        "category": "page interaction",
        "name": "pageview",
        "data": {"host": "www.example.com", "path": "/"},
        "timestamp": timestamp,
    })
}

pub const WAIT: Duration = Duration::from_secs(10);

/// The path of a type's schema, with category and name percent-encoded.
pub fn schema_path(category: &str, name: &str) -> String {
    format!(
        "/event-types/{}/{}/schema",
        encode_segment(category),
        encode_segment(name)
    )
}

pub fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An event of any type, at a fixed past time.
pub fn typed_event(session_id: &str, category: &str, name: &str, data: Value) -> Value {
    json!({
        "session_id": session_id,
        "category": category,
        "name": name,
        "data": data,
        "timestamp": "2023-01-01T00:00:00Z",
    })
}

/// The id an ingest verdict gave an element: its event id, or its error id.
pub fn verdict_id(result: &Value) -> String {
    result["id"]
        .as_str()
        .or_else(|| result["error_id"].as_str())
        .expect("an id or an error_id")
        .to_owned()
}

/// The PostgreSQL schema holding `app`'s store (PostgreSQL mode only).
pub fn schema_of(app: &TestApp) -> String {
    app.schema.clone().expect("PostgreSQL mode")
}

/// `eye user create --email EMAIL --role ROLE` with the password on stdin: whether it
/// succeeded, and its stderr (which never holds the password).
pub fn try_create_user(data_dir: &Path, email: &str, role: &str, password: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = eye_command(data_dir)
        .args(["user", "create", "--email", email, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running eye user create");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("writing the password");
    let output = child.wait_with_output().expect("eye user create");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains(password),
        "the password is never echoed: {stderr}"
    );
    (output.status.success(), stderr)
}

/// Creates a user; fails the test if that fails.
pub fn create_user(data_dir: &Path, email: &str, role: &str, password: &str) {
    let (ok, stderr) = try_create_user(data_dir, email, role, password);
    assert!(ok, "eye user create failed: {stderr}");
}

/// A part of a name (schema, stream) that no other test of this run and no other run
/// has: the tests run at once, and a clock reading alone can repeat (the queue's
/// conformance tests once got the same NATS stream twice).
pub fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:x}_{}_{next}", std::process::id())
}

/// Says that a test skipped what it could not run here, past the test harness's
/// capture, so that `cargo test` shows it even when the test passes.
pub fn skipped(what: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}");
}
