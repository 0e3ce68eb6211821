//! The admin UI in a real headless Chromium: an operator's day, end to end, with a
//! screenshot of every page under `target/screenshots/`.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::chrome::browser;
use crate::helpers::{create_user, spawn_app, wait_until};

const PASSWORD: &str = "a long enough secret";
const WAIT: Duration = Duration::from_secs(20);

fn page_event(session: &str, name: &str, data: Value, timestamp: &str) -> Value {
    json!({
        "session_id": session,
        "category": "page interaction",
        "name": name,
        "data": data,
        "timestamp": timestamp,
    })
}

#[tokio::test]
async fn an_operator_logs_in_creates_an_app_finds_its_events_fixes_errors_and_logs_out() {
    let Some(browser) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    create_user(&app.data_dir, "ops@example.com", "admin", PASSWORD);
    // A type whose schema will turn out too strict.
    let response = app
        .put_schema(
            "signup",
            "completed",
            json!({"type": "object", "required": ["plan"], "properties": {"plan": {"type": "string"}}}),
            None,
        )
        .await;
    assert!(response.status().is_success());

    // Log in: a wrong password first.
    browser.goto(&app.url("/admin")).await.unwrap();
    browser.wait_for("#login", WAIT).await;
    browser.screenshot("login").await;
    browser.fill("input[name=email]", "ops@example.com").await;
    browser
        .fill("input[name=password]", "not the password")
        .await;
    browser.click("#login button[type=submit]").await;
    browser
        .wait_for_text(".flash.error", "not right", WAIT)
        .await;
    browser.fill("input[name=password]", PASSWORD).await;
    browser.click("#login button[type=submit]").await;
    browser.wait_for_text("main h1", "Dashboard", WAIT).await;

    // Create an application and read its token from the page.
    browser.goto(&app.url("/admin/apps")).await.unwrap();
    browser.fill("#create-app input[name=name]", "shop").await;
    browser.click("#create-app button[type=submit]").await;
    let token_field = browser.wait_for("#token-value", WAIT).await;
    let token = token_field.attr("value").await.unwrap().expect("a token");
    assert!(token.starts_with("eye_"), "{token}");
    browser.screenshot("apps").await;

    // Send events with it over HTTP, as an application would.
    let session = "ui-session-1";
    let events = json!([
        page_event(session, "pageview", json!({"host": "shop.example.com", "path": "/"}), "2026-11-28T09:00:00Z"),
        page_event(session, "cta click", json!({"host": "shop.example.com", "path": "/", "element": "signup"}), "2026-11-28T09:00:03.250Z"),
        page_event("ui-session-2", "pageview", json!({"host": "shop.example.com", "path": "/later"}), "2099-01-01T00:00:00Z"),
        {"session_id": "ui-session-3", "category": "signup", "name": "completed", "data": {"plan": 3}, "timestamp": "2026-11-28T09:01:00Z"},
    ]);
    let answer: Value = app
        .client
        .post(app.url("/events"))
        .bearer_auth(&token)
        .json(&events)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["accepted"], 4, "{answer}");
    let signup_id = answer["results"][3]["id"].as_str().unwrap().to_owned();
    app.wait_for_session_count(session, 2, WAIT).await;
    let errors = app.wait_for_errors(2, WAIT).await;
    assert!(errors.iter().any(|e| e["reason"] == "future_timestamp"));

    // Find them on the events page, then the session page.
    browser
        .goto(&app.url(&format!("/admin/events?session_id={session}")))
        .await
        .unwrap();
    browser
        .wait_for_text("table.events", "cta click", WAIT)
        .await;
    browser.screenshot("events").await;
    browser.click("table.events tbody tr:last-child a").await;
    browser
        .wait_for_text("#event-data", "shop.example.com", WAIT)
        .await;
    browser.screenshot("event").await;
    browser.click("dl.facts a[href^='/admin/sessions/']").await;
    browser.wait_for_text("#session-count", "2", WAIT).await;
    browser.wait_for_text("#session-apps", "shop", WAIT).await;
    browser.wait_for_text("table.events", "+3.2 s", WAIT).await;
    browser.screenshot("session").await;

    // See the future-timestamp error and dismiss it.
    browser
        .goto(&app.url("/admin/errors?status=open"))
        .await
        .unwrap();
    browser
        .wait_for_text("#error-groups", "future_timestamp", WAIT)
        .await;
    browser.screenshot("errors").await;
    browser
        .wait_for_text("#error-list", "future_timestamp", WAIT)
        .await;
    let future = errors
        .iter()
        .find(|e| e["reason"] == "future_timestamp")
        .unwrap();
    browser
        .goto(&app.url(&format!("/admin/errors/{}", future["id"])))
        .await
        .unwrap();
    browser.wait_for_text("#raw-event", "2099", WAIT).await;
    browser.screenshot("error").await;
    browser.click("#dismiss button").await;
    browser
        .wait_for_text("#error-status", "dismissed", WAIT)
        .await;

    // Edit the schema, check a sample, save, and reprocess the type's errors.
    browser.goto(&app.url("/admin/event-types")).await.unwrap();
    browser
        .wait_for_text("#event-types", "signup / completed", WAIT)
        .await;
    browser.screenshot("event-types").await;
    browser
        .goto(&app.url("/admin/event-types/signup/completed"))
        .await
        .unwrap();
    browser.wait_for("#schema-editor", WAIT).await;
    browser
        .fill(
            "textarea[name=schema]",
            r#"{"type": "object", "required": ["plan"], "properties": {"plan": {"type": ["string", "integer"]}}}"#,
        )
        .await;
    browser
        .fill("textarea[name=sample]", r#"{"plan": 3}"#)
        .await;
    browser.click("#check-sample").await;
    browser
        .wait_for_text("#check-result", "matches", WAIT)
        .await;
    browser.click("#save-schema").await;
    browser
        .wait_for_text(".flash.ok", "Saved as version 2", WAIT)
        .await;
    browser.screenshot("schema").await;
    browser.click("#reprocess-type button").await;
    browser
        .wait_for_text(".flash.ok", "Reprocessed: 1 became events", WAIT)
        .await;
    let stored = app.wait_for_event("ui-session-3", &signup_id, WAIT).await;
    assert_eq!(stored["data"]["plan"], 3);

    // The users page and the dashboard, whose chart fills in as samples arrive.
    browser.goto(&app.url("/admin/users")).await.unwrap();
    browser
        .wait_for_text("#users", "ops@example.com", WAIT)
        .await;
    browser.screenshot("users").await;
    browser.goto(&app.url("/admin")).await.unwrap();
    wait_until(Duration::from_secs(30), "the dashboard chart", || async {
        browser
            .find(Locator::Css("#rates-chart canvas"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    browser.wait_for_text("#tile-queue", "0", WAIT).await;
    browser.screenshot("dashboard").await;

    // On a phone.
    browser.set_window_size(390, 844).await.unwrap();
    browser
        .goto(&app.url(&format!("/admin/events?session_id={session}")))
        .await
        .unwrap();
    browser
        .wait_for_text("table.events", "cta click", WAIT)
        .await;
    browser.screenshot("events-phone").await;
    browser.set_window_size(1280, 900).await.unwrap();

    // Log out: the pages are closed again.
    browser.goto(&app.url("/admin")).await.unwrap();
    browser.click("#logout").await;
    browser.wait_for("#login", WAIT).await;
    browser.goto(&app.url("/admin/events")).await.unwrap();
    browser.wait_for("#login", WAIT).await;
    let url = browser.current_url().await.unwrap();
    assert!(url.path().starts_with("/admin/login"), "{url}");
    browser.close().await;
}
