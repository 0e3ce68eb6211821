//! A headless Chromium behind its own chromedriver, with the few waits and actions the
//! UI tests need. Every wait has a deadline and says what the page showed when it ran out.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    client: Client,
    driver: Child,
    /// chromedriver's port and the session's id, to end the session from `Drop`.
    port: u16,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl std::ops::Deref for Browser {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Killing chromedriver leaves Chromium running (it is re-parented to init), so the
/// session is ended first, with a plain blocking request: `Drop` runs on a panic too.
impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            end_session(self.port, session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn end_session(port: u16, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

/// Starts chromedriver and a headless Chromium; `None` (after saying why) when they are
/// not installed, unless `CI=true`.
pub async fn browser() -> Option<Browser> {
    let chromium = std::env::var("EYE_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    let chromedriver =
        std::env::var("EYE_TEST_CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
    if !PathBuf::from(&chromium).exists() || !PathBuf::from(&chromedriver).exists() {
        let message = format!(
            "chromium or chromedriver is missing ({chromium}, {chromedriver}): \
             apt-get install -y chromium chromium-driver"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        crate::helpers::skipped(format_args!("{message}"));
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let driver = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut browser_args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--window-size=1280,900".into(),
    ];
    browser_args.push(format!("--user-data-dir={}", profile.path().display()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": browser_args }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    // chromedriver takes a moment to listen: retry the session until a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => break client,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no WebDriver session within 30 s: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let session = client.session_id().await.ok().flatten();
    Some(Browser {
        client,
        driver,
        port,
        session,
        _profile: profile,
    })
}

/// Where screenshots go: `target/screenshots/` in the checkout (CI keeps them as
/// artifacts), whatever `CARGO_TARGET_DIR` says; `EYE_SCREENSHOT_DIR` overrides.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("EYE_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
        })
}

impl Browser {
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("writing a screenshot");
    }

    /// What the page shows, for failure messages.
    async fn describe(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map_or("?".into(), |u| u.to_string());
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let text: String = text.chars().take(1500).collect();
        format!("at {url}:\n{text}")
    }

    pub async fn wait_for(&self, css: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            if Instant::now() >= deadline {
                panic!("no `{css}` within {within:?} {}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the first element matching `css` holds `text`.
    pub async fn wait_for_text(&self, css: &str, text: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && element.text().await.is_ok_and(|t| t.contains(text))
            {
                return element;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no `{css}` holding {text:?} within {within:?} {}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let element = self.wait_for(css, Duration::from_secs(10)).await;
        element.clear().await.expect("clearing a field");
        element.send_keys(value).await.expect("typing");
    }

    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css, Duration::from_secs(10)).await;
        element.click().await.expect("clicking");
    }

    /// Ends the WebDriver session (and Chromium); dropping stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.session = None;
    }
}
