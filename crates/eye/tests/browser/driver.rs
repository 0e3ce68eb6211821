//! A headless Chromium behind a chromedriver of its own, driven over WebDriver with
//! `fantoccini`, plus the few waits and actions browser tests need.
//!
//! Every wait polls a condition against a deadline and, when the deadline passes, panics
//! with what the page showed (its URL and the start of its text): no blind sleeps.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`; `EYE_TEST_CHROMIUM` and `EYE_TEST_CHROMEDRIVER` point
//! elsewhere). Without them [`browser`] says so and returns `None`, except with
//! `CI=true`, where a missing browser is a failure.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long chromedriver gets to answer `GET /status` with `ready: true`.
const DRIVER_READY_WITHIN: Duration = Duration::from_secs(10);
/// How long `fill` and `click` wait for their element.
const ACTION_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// A WebDriver session in a headless Chromium. Derefs to [`fantoccini::Client`].
///
/// Dropping it ends the session (which quits Chromium) and kills chromedriver, so a
/// failing test leaves no browser behind; [`Browser::close`] does the same politely.
pub struct Browser {
    client: Client,
    driver: Child,
    port: u16,
    /// The WebDriver session id, until the session is closed.
    session: Option<String>,
    /// Chromium's profile (`--user-data-dir`) and chromedriver's log.
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Browser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver alone would orphan Chromium: end the session first, in
        // a plain blocking request (the async client cannot be awaited here).
        if let Some(session) = self.session.take() {
            delete_session(self.port, &session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` over a bare socket, with short timeouts; errors are ignored.
fn delete_session(port: u16, session: &str) {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
    else {
        return;
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // chromedriver answers once Chromium has quit; read to the end to wait for it.
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

fn missing(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "browser tests need {what} (CI=true, so not skipping): \
         apt-get install -y chromium chromium-driver"
    );
    eprintln!(
        "skipping: chromium/chromedriver not installed (apt-get install -y chromium chromium-driver)"
    );
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn read_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let start = log.len().saturating_sub(4000);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(0);
    log[start..].to_owned()
}

/// Starts chromedriver on `port` and waits until its `/status` says it is ready;
/// `Err` (with its log) when it exits or does not get ready in time.
async fn start_driver(chromedriver: &str, port: u16, log: &Path) -> Result<Child, String> {
    let log_file = File::create(log).expect("chromedriver's log file");
    let mut driver = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("chromedriver's log file"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|error| panic!("starting {chromedriver}: {error}"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("an HTTP client");
    let status_url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + DRIVER_READY_WITHIN;
    loop {
        if let Ok(Some(exit)) = driver.try_wait() {
            return Err(format!(
                "chromedriver exited ({exit}) before it was ready:\n{}",
                read_log(log)
            ));
        }
        if let Ok(response) = http.get(&status_url).send().await
            && let Ok(status) = response.json::<Value>().await
            && status["value"]["ready"] == json!(true)
        {
            return Ok(driver);
        }
        if Instant::now() >= deadline {
            let _ = driver.kill();
            let _ = driver.wait();
            return Err(format!(
                "chromedriver not ready within {DRIVER_READY_WITHIN:?}:\n{}",
                read_log(log)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Starts chromedriver on a free port and a fresh headless Chromium session in it.
///
/// `None` (after printing `skipping: ...`) when chromium or chromedriver is not
/// installed; with `CI=true` that panics instead.
pub async fn browser() -> Option<Browser> {
    let chromium = std::env::var("EYE_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    let chromedriver =
        std::env::var("EYE_TEST_CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
    for path in [&chromium, &chromedriver] {
        if !Path::new(path).is_file() {
            missing(path);
            return None;
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory for the browser");
    let log = dir.path().join("chromedriver.log");
    // The free port can be taken between our check and chromedriver's bind: retry.
    let mut attempts = 0;
    let (driver, port) = loop {
        attempts += 1;
        let port = free_port();
        match start_driver(&chromedriver, port, &log).await {
            Ok(driver) => break (driver, port),
            Err(error) if attempts >= 3 => panic!("{error}"),
            Err(error) => eprintln!("retrying chromedriver on another port: {error}"),
        }
    };
    let profile = dir.path().join("profile");
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1280,900".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = match ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
    {
        Ok(client) => client,
        Err(error) => {
            let mut driver = driver;
            let _ = driver.kill();
            let _ = driver.wait();
            panic!(
                "no WebDriver session from chromedriver on port {port}: {error}\n{}",
                read_log(&log)
            );
        }
    };
    let mut browser = Browser {
        client,
        driver,
        port,
        session: None,
        _dir: dir,
    };
    browser.session = browser
        .client
        .session_id()
        .await
        .expect("the WebDriver session id");
    Some(browser)
}

/// `<workspace target dir>/screenshots`: `CARGO_TARGET_DIR` if set (relative to the
/// workspace root when relative), else the workspace's `target/`.
fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    };
    target.join("screenshots")
}

impl Browser {
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the WebDriver session (Chromium quits); dropping then stops chromedriver.
    pub async fn close(mut self) {
        if self.session.take().is_some() {
            let _ = self.client.clone().close().await;
        }
    }

    /// Saves a PNG of the viewport as `<target dir>/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(error) => panic!("screenshot {name:?}: {error} {}", self.describe().await),
        };
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("creating {}: {error}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    }

    /// What the page shows, for failure messages: its URL and the start of its text.
    pub async fn describe(&self) -> String {
        let url = match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(error) => format!("? ({error})"),
        };
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let mut excerpt: String = text.chars().take(1500).collect();
        if excerpt.len() < text.len() {
            excerpt.push_str(" [...]");
        }
        format!("(page at {url}, showing:\n{excerpt}\n)")
    }

    /// Waits until an element matches `css`, and returns the first one.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if Instant::now() >= deadline {
                panic!("no `{css}` within {within:?} {}", self.describe().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matching `css` has `text` in its text, and returns it.
    pub async fn wait_for_text(&self, css: &str, text: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            for element in self
                .client
                .find_all(Locator::Css(css))
                .await
                .unwrap_or_default()
            {
                if element.text().await.is_ok_and(|shown| shown.contains(text)) {
                    return element;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "no `{css}` showing {text:?} within {within:?} {}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clears the field matching `css`, then types `value` into it.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.wait_for(css, ACTION_WAIT).await;
        if let Err(error) = field.clear().await {
            panic!("clearing `{css}`: {error} {}", self.describe().await);
        }
        if let Err(error) = field.send_keys(value).await {
            panic!("typing into `{css}`: {error} {}", self.describe().await);
        }
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css, ACTION_WAIT).await;
        if let Err(error) = element.click().await {
            panic!("clicking `{css}`: {error} {}", self.describe().await);
        }
    }
}
