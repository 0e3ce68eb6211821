//! Segment's official SDKs, installed unmodified from their registries, against the
//! real server: Python (`segment-analytics-python`, PyPI), Node
//! (`@segment/analytics-node`, npm) and the browser (`@segment/analytics-next`, npm,
//! bundled with esbuild and loaded in headless Chromium, its settings given by the page:
//! no CDN). Each sends a track, a page, an identify and a batch, through a proxy
//! (`segment/proxy.py`) that loses The Eye's first answer (a 503 after the messages
//! were stored): the SDK retries, and every message is stored once, readable by session
//! and type. A bad write key is a 401 the SDK gives up on after one request.
//!
//! `segment/package.json` pins the npm packages (`npm ci --prefix
//! crates/eye/tests/clients/segment`); `.ci/run` installs them and the Python one.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::{TestApp, spawn_app, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/segment")
}

/// Whether `what` is installed; outside CI a missing one skips the test (saying so),
/// in CI it fails it.
fn installed(what: &str, check: &mut Command, install: &str) -> bool {
    if check.output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    let message = format!("{what} is needed: {install}");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    crate::helpers::skipped(format_args!("{message}"));
    false
}

fn node_sdks() -> bool {
    installed(
        "the npm packages of tests/clients/segment",
        Command::new("node")
            .args([
                "-e",
                "require('@segment/analytics-node'); require('esbuild')",
            ])
            .current_dir(harness()),
        "npm ci --prefix crates/eye/tests/clients/segment",
    )
}

fn python_sdk() -> bool {
    installed(
        "segment-analytics-python",
        Command::new("python3").args(["-c", "import segment.analytics"]),
        "python3 -m pip install segment-analytics-python==2.4.0",
    )
}

/// `proxy.py` in front of `app`, losing the answers to its first `lose` POSTs.
struct Proxy {
    child: Child,
    url: String,
}

impl Proxy {
    fn start(app: &TestApp, lose: u32) -> Proxy {
        let mut child = Command::new("python3")
            .arg(harness().join("proxy.py"))
            .args([&app.address, "--lose-first", &lose.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the proxy's port");
        let port = line.trim().strip_prefix("listening on ").expect("port");
        Proxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The POSTs it saw: (path, Content-Encoding, The Eye's status, the status sent).
    async fn posts(&self) -> Vec<Value> {
        let log: Vec<Value> = reqwest::get(format!("{}/__log", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log.into_iter().filter(|r| r["method"] == "POST").collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one of the SDK scripts and returns the errors it reported.
fn run_sdk(program: &str, script: &str, args: &[&str]) -> Vec<String> {
    let output = Command::new(program)
        .arg(harness().join(script))
        .args(args)
        .current_dir(harness())
        .output()
        .unwrap_or_else(|e| panic!("{program} {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script}'s report: {e}: {stdout}"));
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

/// Waits for `expected` events in `session` and checks each was stored once.
async fn stored_once(app: &TestApp, session: &str, expected: &[(&str, &str)]) -> Vec<Value> {
    wait_until(WAIT, "the SDK's messages stored", || async {
        let events = app
            .all_events(&format!("session_id={session}&order=asc"))
            .await;
        (events.len() >= expected.len()).then_some(())
    })
    .await;
    // Late duplicates would come with the retry: give them the time to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = app
        .all_events(&format!("session_id={session}&order=asc"))
        .await;
    let mut seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["category"].as_str().unwrap().to_owned(),
                e["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut wanted: Vec<(String, String)> = expected
        .iter()
        .map(|(c, n)| (c.to_string(), n.to_string()))
        .collect();
    wanted.sort();
    assert_eq!(seen, wanted, "{events:#?}");
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["client_id"].as_str().expect("the messageId"))
        .collect();
    assert_eq!(ids.len(), events.len(), "one event per messageId");
    events
}

const SERVER_SIDE: [(&str, &str); 5] = [
    ("track", "Order Completed"),
    ("page", "Home"),
    ("identify", "identify"),
    ("track", "Item Viewed"),
    ("track", "Item Viewed"),
];

/// The parts every server-side SDK's test shares: a lost answer retried and stored
/// once, readable by type; then a bad key, given up on after one request.
async fn server_side_sdk(program: &str, script: &str, extra: &[&str]) -> Vec<Value> {
    let app = spawn_app().await;
    let proxy = Proxy::start(&app, 1);
    let run = format!("{script}-{}", crate::helpers::unique_suffix()).replace('.', "-");
    let mut args = vec![proxy.url.as_str(), app.ingest_token.as_str(), run.as_str()];
    args.extend(extra);
    let errors = run_sdk(program, script, &args);
    assert!(errors.is_empty(), "{errors:?}");
    let events = stored_once(&app, &run, &SERVER_SIDE).await;
    let order = events
        .iter()
        .find(|e| e["name"] == "Order Completed")
        .unwrap();
    assert_eq!(order["data"]["properties"]["total"], 30, "{order}");
    assert_eq!(order["data"]["userId"], format!("user-{run}"));
    assert!(
        order["data"]["context"]["library"]["name"].is_string(),
        "{order}"
    );
    let by_type = app.all_events("category=track&name=Order+Completed").await;
    assert_eq!(by_type.len(), 1);
    let sent = proxy.posts().await;
    assert_eq!(sent[0]["answered"], 503, "{sent:?}");
    assert_eq!(
        sent[0]["key"],
        app.ingest_token.as_str(),
        "the key as Basic user"
    );
    assert!(
        sent.len() >= 2 && sent.iter().all(|p| p["path"] == "/v1/batch"),
        "the SDK retried its batch: {sent:?}"
    );

    // A bad write key: 401, once, and the SDK reports it.
    let refused = Proxy::start(&app, 0);
    let errors = run_sdk(
        program,
        script,
        &[&refused.url, "eye_i_not-a-key", "nobody"],
    );
    assert!(
        errors.iter().any(|e| e.contains("401")),
        "the SDK reports the 401: {errors:?}"
    );
    let posts = refused.posts().await;
    assert_eq!(posts.len(), 1, "no retry after a 401: {posts:?}");
    assert_eq!(posts[0]["upstream"], 401);
    sent
}

#[tokio::test]
async fn segments_python_sdk_is_stored_once_through_a_lost_answer_and_gives_up_on_401() {
    if !python_sdk() {
        return;
    }
    // gzip on: the Python SDK compresses when told to.
    let posts = server_side_sdk("python3", "send.py", &["--gzip"]).await;
    assert_eq!(posts[0]["encoding"], "gzip", "{posts:?}");
}

#[tokio::test]
async fn segments_node_sdk_is_stored_once_through_a_lost_answer_and_gives_up_on_401() {
    if !node_sdks() {
        return;
    }
    let posts = server_side_sdk("node", "send.js", &[]).await;
    assert_eq!(
        posts[0]["encoding"],
        Value::Null,
        "it does not compress: {posts:?}"
    );
}

/// Serves `page.html` at `/` and the bundle at `/analytics-next.js`.
async fn serve_page(listener: TcpListener, bundle: Vec<u8>) {
    let page = std::fs::read(harness().join("page.html")).unwrap();
    crate::pages::serve(listener, move |path| match path {
        "/analytics-next.js" => ("text/javascript", bundle.clone()),
        "/" => ("text/html; charset=utf-8", page.clone()),
        _ => ("text/plain", b"not found".to_vec()),
    })
    .await;
}

#[tokio::test]
async fn segments_browser_sdk_from_npm_sends_without_a_cdn_and_is_stored_once() {
    if !node_sdks() {
        return;
    }
    let Some(browser) = crate::chrome::browser().await else {
        return;
    };
    let bundle_dir = tempfile::tempdir().unwrap();
    let bundle_path = bundle_dir.path().join("analytics-next.js");
    let built = Command::new(harness().join("node_modules/.bin/esbuild"))
        .args([
            "entry.js",
            "--bundle",
            "--format=iife",
            "--platform=browser",
            "--target=es2019",
            "--define:process.env.NODE_ENV=\"production\"",
        ])
        .arg(format!("--outfile={}", bundle_path.display()))
        .current_dir(harness())
        .output()
        .expect("esbuild");
    assert!(built.status.success(), "{built:?}");
    let bundle = std::fs::read(&bundle_path).unwrap();

    let app = spawn_app().await;
    let pages = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", pages.local_addr().unwrap());
    let key = app.create_app("shop", &[&origin]).await;
    tokio::spawn(serve_page(pages, bundle));
    let proxy = Proxy::start(&app, 1);
    let api_host = format!("{}/v1", proxy.url.trim_start_matches("http://"));
    let send = |strategy: &str, key: &str| {
        format!(
            "const done = arguments[arguments.length - 1];
             window.send({{writeKey: {key:?}, apiHost: {api_host:?}, strategy: {strategy:?}}})
               .then(done, (e) => done({{error: String(e)}}));"
        )
    };
    // One request per call (/v1/t, /v1/p, /v1/i), the first answer lost. Each send
    // loads the page afresh; the visitor's anonymous id stays in its storage.
    browser.goto(&format!("{origin}/")).await.unwrap();
    let standard = browser
        .execute_async(&send("standard", &key), vec![])
        .await
        .unwrap();
    assert_eq!(standard["failed"], json!([null, null, null]), "{standard}");
    assert_eq!(
        standard["foreign"],
        json!([]),
        "no CDN, nothing but this machine"
    );
    let anonymous = standard["anonymousId"]
        .as_str()
        .expect("an anonymous id")
        .to_owned();
    // The same calls as one batch (/v1/b).
    browser.goto(&format!("{origin}/")).await.unwrap();
    let batched = browser
        .execute_async(&send("batching", &key), vec![])
        .await
        .unwrap();
    assert_eq!(batched["failed"], json!([null, null, null]), "{batched}");
    assert_eq!(
        batched["foreign"],
        json!([]),
        "no CDN, nothing but this machine"
    );
    assert_eq!(batched["anonymousId"], anonymous.as_str(), "one visitor");

    let events = stored_once(
        &app,
        &anonymous,
        &[
            ("track", "Order Completed"),
            ("page", "Home"),
            ("identify", "identify"),
            ("track", "Order Completed"),
            ("page", "Home"),
            ("identify", "identify"),
        ],
    )
    .await;
    assert!(
        events
            .iter()
            .any(|e| e["data"]["properties"]["strategy"] == "batching"),
        "{events:?}"
    );
    assert_eq!(app.all_events("category=page&name=Home").await.len(), 2);
    let posts = proxy.posts().await;
    let paths: std::collections::HashSet<&str> =
        posts.iter().map(|p| p["path"].as_str().unwrap()).collect();
    for path in ["/v1/t", "/v1/p", "/v1/i", "/v1/b"] {
        assert!(paths.contains(path), "{path} in {paths:?}");
    }
    assert_eq!(posts[0]["answered"], 503, "{posts:?}");

    // A bad write key: the SDK reports the 401 and does not retry it.
    browser.goto(&format!("{origin}/")).await.unwrap();
    let refused = browser
        .execute_async(&send("standard", "eye_i_not-a-key"), vec![])
        .await
        .unwrap();
    let failed = refused["failed"].as_array().unwrap();
    assert!(
        failed
            .iter()
            .all(|f| f.as_str().is_some_and(|f| f.contains("401"))),
        "{refused}"
    );
    let bad: Vec<Value> = proxy
        .posts()
        .await
        .into_iter()
        .filter(|p| p["key"] == "eye_i_not-a-key")
        .collect();
    assert_eq!(bad.len(), 3, "one request per call, none retried: {bad:?}");
    assert!(bad.iter().all(|p| p["upstream"] == 401), "{bad:?}");
    browser.close().await;
}
