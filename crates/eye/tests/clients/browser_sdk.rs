//! `/sdk/eye.js` in headless Chromium, on a page served by the test from another
//! origin: a page view, a click, a history navigation, a form submit and a beacon when
//! the page goes away all arrive, once each, with one session id.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;

use crate::chrome::browser;
use crate::helpers::{spawn_app, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// The shop's page. On `/thanks` nothing is sent by timer: only the beacon when the
/// page is hidden can carry its events.
fn page(eye: &str, token: &str, path: &str) -> String {
    let interval = if path.starts_with("/thanks") {
        600_000
    } else {
        300
    };
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<script src="{eye}/sdk/eye.js"></script>
<script>eye.init({{endpoint: "{eye}", token: "{token}", flushInterval: {interval}}});</script>
</head><body><h1 id="path">{path}</h1>
<button id="signup" data-eye="signup button">Sign up</button>
<button id="next" onclick="history.pushState({{}}, '', '/step-2')">Next</button>
<form id="newsletter" data-eye-form="newsletter" action="/thanks" method="post">
<input name="email" data-eye-send><input name="password" type="password">
<button type="submit" id="subscribe">Subscribe</button></form></body></html>"#
    )
}

/// Serves the page for every path.
async fn serve_pages(listener: TcpListener, eye: String, token: String) {
    crate::pages::serve(listener, move |path| {
        (
            "text/html; charset=utf-8",
            page(&eye, &token, path).into_bytes(),
        )
    })
    .await;
}

#[tokio::test]
async fn the_snippet_sends_views_clicks_forms_and_a_last_beacon_in_one_session() {
    let Some(browser) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    let pages = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", pages.local_addr().unwrap());
    let token = app.create_app("shop", &[&origin]).await;
    tokio::spawn(serve_pages(pages, app.address.clone(), token));

    browser.goto(&format!("{origin}/")).await.unwrap();
    browser.wait_for_text("#path", "/", WAIT).await;
    browser.click("#signup").await;
    browser.click("#next").await;
    browser.fill("input[name=email]", "ada@example.com").await;
    browser
        .fill("input[name=password]", "not for the eye")
        .await;
    browser.click("#subscribe").await;
    browser.wait_for_text("#path", "/thanks", WAIT).await;
    browser
        .execute(
            r#"eye.track("page interaction", "cta click", {element: "last words"}); return eye.session();"#,
            vec![],
        )
        .await
        .unwrap();
    // Leaving the page hides it: only the beacon can carry its events now.
    browser.goto("about:blank").await.unwrap();

    let events = wait_until(WAIT, "six events from the page", || async {
        let events = app.all_events("app=shop").await;
        (events.len() >= 6).then_some(events)
    })
    .await;
    browser.close().await;
    let mut seen: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let detail = match e["name"].as_str().unwrap() {
                "pageview" => e["data"]["path"].as_str().unwrap().to_owned(),
                "cta click" => e["data"]["element"].as_str().unwrap().to_owned(),
                _ => e["data"]["form"].to_string(),
            };
            (
                e["category"].as_str().unwrap().to_owned(),
                e["name"].as_str().unwrap().to_owned(),
                detail,
            )
        })
        .collect();
    seen.sort();
    let form = json!({"id": "newsletter", "fields": ["email", "password"], "values": {"email": "ada@example.com"}});
    let mut expected = vec![
        ("page interaction".into(), "pageview".into(), "/".into()),
        (
            "page interaction".into(),
            "cta click".into(),
            "signup button".into(),
        ),
        (
            "page interaction".into(),
            "pageview".into(),
            "/step-2".into(),
        ),
        ("form interaction".into(), "submit".into(), form.to_string()),
        (
            "page interaction".into(),
            "pageview".into(),
            "/thanks".into(),
        ),
        (
            "page interaction".into(),
            "cta click".into(),
            "last words".into(),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected, "each once, no password");
    let sessions: HashSet<&str> = events
        .iter()
        .map(|e| e["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(sessions.len(), 1, "one session id: {sessions:?}");
    assert!(
        events
            .iter()
            .all(|e| e["data"]["host"] == origin.trim_start_matches("http://"))
    );
    // The snippet's ids are UUIDv7 made during the test, and the stored event id keeps
    // their time prefix (so the store's id index grows at its right edge).
    let now_millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for e in &events {
        let client_id = e["client_id"].as_str().expect("a client id");
        assert_eq!(&client_id[14..15], "7", "a UUIDv7: {client_id}");
        let millis = u64::from_str_radix(&client_id[..13].replace('-', ""), 16).unwrap();
        assert!(
            now_millis - 600_000 < millis && millis <= now_millis,
            "made during the test: {client_id}"
        );
        let id = e["id"].as_str().unwrap();
        assert_eq!(
            id[..13],
            client_id[..13],
            "the event id keeps the time prefix"
        );
    }
}

#[tokio::test]
async fn the_snippet_is_small_and_served_by_the_binary() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/sdk/eye.js")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let source = response.bytes().await.unwrap();
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gzipped, &source).unwrap();
    let size = gzipped.finish().unwrap().len();
    assert!(
        size < 5 * 1024,
        "eye.js is {size} bytes gzipped (unminified); the budget is 5 KiB"
    );
}

#[tokio::test]
async fn the_session_id_is_kept_while_active_and_renewed_after_30_idle_minutes() {
    let Some(browser) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    let pages = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", pages.local_addr().unwrap());
    tokio::spawn(serve_pages(
        pages,
        app.address.clone(),
        app.ingest_token.clone(),
    ));
    browser.goto(&format!("{origin}/")).await.unwrap();
    browser.wait_for_text("#path", "/", WAIT).await;
    // Age the stored session by `minutes`, then ask for the session id.
    let session_after_idle = |minutes: u64| {
        let script = format!(
            r#"var s = JSON.parse(sessionStorage.getItem("eye_session"));
               s.t = Date.now() - {minutes} * 60000;
               sessionStorage.setItem("eye_session", JSON.stringify(s));
               return [s.id, eye.session()];"#
        );
        let browser = &browser;
        async move {
            let ids = browser.execute(&script, vec![]).await.unwrap();
            (
                ids[0].as_str().unwrap().to_owned(),
                ids[1].as_str().unwrap().to_owned(),
            )
        }
    };
    let (before, after) = session_after_idle(29).await;
    assert_eq!(before, after, "29 idle minutes keep the session");
    let (before, after) = session_after_idle(31).await;
    assert_ne!(before, after, "31 idle minutes start a new one");
    browser.goto(&format!("{origin}/again")).await.unwrap();
    browser.wait_for_text("#path", "/again", WAIT).await;
    let kept = browser
        .execute("return eye.session();", vec![])
        .await
        .unwrap();
    assert_eq!(
        kept.as_str().unwrap(),
        after,
        "the id survives a page load in the tab"
    );
    browser.close().await;
}
