//! Retention and erasure through the real binary: events expire on time and only
//! they, an application keeps its own retention, a session is erased everywhere, even
//! its events still queued, and erasure jobs run, report and resume after a restart.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, WAIT, cli, event, postgres_mode, run_sql, schema_of, spawn_app_with, verdict_id,
    wait_until,
};

async fn admin(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let response = app.send_as(method, path, &app.admin_token, body).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn stored_ids(app: &TestApp, session: &str) -> Vec<String> {
    app.all_events(&format!("session_id={session}"))
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_expire_on_time_and_only_they_with_each_applications_own_retention() {
    let app = spawn_app_with(&["--retention", "2s", "--retention-check-seconds", "86400"]).await;
    let keep_token = cli(&app.data_dir, &["app", "create", "keep"])
        .trim()
        .to_owned();
    cli(&app.data_dir, &["app", "retention", "keep", "forever"]);
    let old = verdict_id(
        &app.post_batch(&[event("old", "2026-01-01T00:00:00Z")])
            .await[0],
    );
    let kept = app
        .client
        .post(app.url("/events"))
        .bearer_auth(&keep_token)
        .json(&event("kept", "2026-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), StatusCode::ACCEPTED);
    app.wait_for_event("old", &old, WAIT).await;
    app.wait_for_session_count("kept", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let new = verdict_id(
        &app.post_batch(&[event("new", "2026-01-01T00:00:00Z")])
            .await[0],
    );
    app.wait_for_event("new", &new, WAIT).await;

    let (status, expired) = admin(&app, Method::POST, "/retention/run", None).await;
    assert_eq!(status, StatusCode::OK, "{expired}");
    assert_eq!(expired["events"], 1, "{expired}");
    assert_eq!(expired["sessions"], 1, "{expired}");
    assert!(
        stored_ids(&app, "old").await.is_empty(),
        "2.5 s old: expired"
    );
    assert_eq!(
        app.get("/sessions/old").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stored_ids(&app, "new").await,
        vec![new],
        "younger than 2 s: kept"
    );
    app.wait_for_session_count("kept", 1, WAIT).await;
    let stats = app.get_json("/stats").await;
    assert_eq!(stats["total"], 2, "the counts agree: {stats}");
    let audit = cli(&app.data_dir, &["audit", "--limit", "5"]);
    assert!(audit.contains("retention.run"), "{audit}");
}

#[tokio::test]
async fn the_background_run_expires_events_and_refused_records() {
    let app = spawn_app_with(&[
        "--retention",
        "1s",
        "--error-retention",
        "1s",
        "--retention-check-seconds",
        "1",
    ])
    .await;
    let id = verdict_id(
        &app.post_batch(&[event("brief", "2026-01-01T00:00:00Z")])
            .await[0],
    );
    let refused = app.post_batch(&[json!({"session_id": "brief"})]).await;
    assert_eq!(refused[0]["status"], "rejected");
    wait_until(
        Duration::from_secs(20),
        "the event and the refused record to expire",
        || async {
            let events = stored_ids(&app, "brief").await;
            let errors = app.all_errors().await;
            (events.is_empty() && errors.is_empty()).then_some(())
        },
    )
    .await;
    // It was stored before it expired (or the run beat the worker: then it never was).
    let _ = id;
}

#[tokio::test]
async fn an_applications_retention_is_set_checked_and_cleared() {
    let app = spawn_app_with(&[]).await;
    for (body, code) in [
        (json!({"retention": "30d"}), StatusCode::OK),
        (json!({"retention": "forever"}), StatusCode::OK),
        (json!({"retention": null}), StatusCode::OK),
        (json!({"retention": "90y"}), StatusCode::BAD_REQUEST),
        (json!({"retention": "-1d"}), StatusCode::BAD_REQUEST),
        (json!({"retention": "0s"}), StatusCode::BAD_REQUEST),
        (json!({"retention": "36501d"}), StatusCode::BAD_REQUEST),
        (json!({"keep": "30d"}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = admin(&app, Method::PUT, "/apps/web/retention", Some(&body)).await;
        assert_eq!(status, code, "{body}: {answer}");
        if code == StatusCode::BAD_REQUEST {
            assert_eq!(answer["error"]["code"], "invalid_body", "{answer}");
        }
    }
    let (status, _) = admin(
        &app,
        Method::PUT,
        "/apps/nope/retention",
        Some(&json!({"retention": "1d"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    admin(
        &app,
        Method::PUT,
        "/apps/web/retention",
        Some(&json!({"retention": "12h"})),
    )
    .await;
    let (_, apps) = admin(&app, Method::GET, "/apps", None).await;
    assert_eq!(apps["apps"][0]["retention"], "12h", "{apps}");
    let status = app
        .send_as(
            Method::PUT,
            "/apps/web/retention",
            &app.read_token,
            Some(&json!({"retention": null})),
        )
        .await
        .status();
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read token cannot change retention"
    );
}

#[tokio::test]
async fn erasing_a_session_removes_it_everywhere_and_again_removes_nothing() {
    let app = spawn_app_with(&[]).await;
    let shop_token = cli(&app.data_dir, &["app", "create", "shop"])
        .trim()
        .to_owned();
    let web = verdict_id(
        &app.post_batch(&[event("person", "2026-01-01T00:00:00Z")])
            .await[0],
    );
    let shop = app
        .client
        .post(app.url("/events"))
        .bearer_auth(&shop_token)
        .json(&json!([
            event("person", "2026-01-01T00:00:01Z"),
            event("other", "2026-01-01T00:00:02Z")
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(shop.status(), StatusCode::ACCEPTED);
    app.post_batch(&[json!({"session_id": "person", "category": "page interaction"})])
        .await;
    app.wait_for_event("person", &web, WAIT).await;
    app.wait_for_session_count("person", 2, WAIT).await;
    app.wait_for_session_count("other", 1, WAIT).await;
    app.wait_for_errors(1, WAIT).await;

    // Only the shop's events of the session, first.
    let (status, erased) = admin(&app, Method::DELETE, "/sessions/person?app=shop", None).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["removed"]["events"], 1, "{erased}");
    assert_eq!(stored_ids(&app, "person").await, vec![web.clone()]);

    let (status, erased) = admin(&app, Method::DELETE, "/sessions/person", None).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["status"], "done");
    assert_eq!(
        erased["removed"],
        json!({"events": 1, "sessions": 1, "refused": 1})
    );
    assert_eq!(
        app.get("/sessions/person").await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        app.all_errors().await.is_empty(),
        "its refused event is gone too"
    );
    app.wait_for_session_count("other", 1, WAIT).await;

    let (status, again) = admin(&app, Method::DELETE, "/sessions/person", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again["removed"],
        json!({"events": 0, "sessions": 0, "refused": 0})
    );
    let (status, missing) = admin(&app, Method::DELETE, "/sessions/person?app=nope", None).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("app_not_found"))
    );
    let status = app
        .send_as(Method::DELETE, "/sessions/other", &app.read_token, None)
        .await
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);

    let audit = cli(&app.data_dir, &["audit", "--limit", "20"]);
    assert!(
        audit.contains("erasure.start") && audit.contains("erasure.done"),
        "{audit}"
    );
    assert!(
        !audit.contains("www.example.com"),
        "the audit log never holds payloads: {audit}"
    );
}

#[tokio::test]
async fn an_event_accepted_before_the_erasure_but_still_queued_never_appears() {
    // A long linger keeps accepted events in the worker's hands for seconds.
    let app = spawn_app_with(&[
        "--worker-linger-ms",
        "3000",
        "--worker-batch-size",
        "100000",
    ])
    .await;
    let first = verdict_id(
        &app.post_batch(&[event("warmup", "2026-01-01T00:00:00Z")])
            .await[0],
    );
    app.wait_for_event("warmup", &first, Duration::from_secs(20))
        .await;
    let queued = app
        .post_batch(&[event("person", "2026-01-01T00:00:00Z")])
        .await;
    assert_eq!(queued[0]["status"], "accepted");
    let (status, erased) = admin(&app, Method::DELETE, "/sessions/person", None).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    // An event accepted after the erasure's answer is stored normally.
    let after = verdict_id(
        &app.post_batch(&[event("person", "2026-01-01T00:00:05Z")])
            .await[0],
    );
    app.wait_for_event("person", &after, Duration::from_secs(20))
        .await;
    assert_eq!(
        stored_ids(&app, "person").await,
        vec![after],
        "the queued one was dropped"
    );
    let session = app.get_json("/sessions/person").await;
    assert_eq!(session["event_count"], 1, "{session}");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "eye_events_erased_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn erasure_jobs_take_any_filter_report_progress_and_refuse_no_filter() {
    let app = spawn_app_with(&[]).await;
    let ids: Vec<String> = app
        .post_batch(&[
            crate::helpers::typed_event(
                "a",
                "form interaction",
                "submit",
                json!({"host": "h", "path": "/", "form": {"email": "x@y.z"}}),
            ),
            crate::helpers::typed_event(
                "b",
                "form interaction",
                "submit",
                json!({"host": "h", "path": "/", "form": {"email": "keep@y.z"}}),
            ),
        ])
        .await
        .iter()
        .map(verdict_id)
        .collect();
    app.wait_for_event("a", &ids[0], WAIT).await;
    app.wait_for_event("b", &ids[1], WAIT).await;

    for (query, code, error) in [
        ("", StatusCode::BAD_REQUEST, "no_filter"),
        ("?app=nope", StatusCode::NOT_FOUND, "app_not_found"),
        ("?limit=5", StatusCode::BAD_REQUEST, "invalid_parameter"),
        (
            "?from=yesterday",
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
    ] {
        let (status, answer) = admin(&app, Method::POST, &format!("/erasures{query}"), None).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (code, Some(error)),
            "{query}: {answer}"
        );
    }
    let response = app
        .send_as(
            Method::POST,
            "/erasures?data.form.email=x@y.z",
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let started: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/erasures/{}", started["id"]));
    let done = wait_until(WAIT, "the erasure to finish", || async {
        let (_, job) = admin(&app, Method::GET, &location, None).await;
        (job["status"] == "done").then_some(job)
    })
    .await;
    assert_eq!(done["removed"]["events"], 1, "{done}");
    assert!(stored_ids(&app, "a").await.is_empty());
    assert_eq!(stored_ids(&app, "b").await, vec![ids[1].clone()]);
    let (status, _) = admin(&app, Method::GET, "/erasures/999999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin(&app, Method::GET, "/erasures/x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Records an erasure of `session` as a process would before it died: not finished.
fn record_unfinished_erasure(app: &TestApp, session: &str) {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let insert = format!(
        "INSERT INTO erasures (filter, until, actor, created_at)
         VALUES ('{{\"session_id\":\"{session}\"}}', {until}, 'test', {until})"
    );
    if postgres_mode() {
        run_sql(format!("SET search_path = {}; {insert}", schema_of(app)));
    } else {
        let store = rusqlite::Connection::open(app.data_dir.join("eye.db")).unwrap();
        store.execute_batch(&insert).unwrap();
    }
}

#[tokio::test]
async fn an_unfinished_erasure_resumes_after_a_restart_and_the_cli_erases_too() {
    let mut app = spawn_app_with(&["--retention-check-seconds", "1"]).await;
    let ids: Vec<String> = app
        .post_batch(&[
            event("person", "2026-01-01T00:00:00Z"),
            event("cli", "2026-01-01T00:00:00Z"),
        ])
        .await
        .iter()
        .map(verdict_id)
        .collect();
    app.wait_for_event("person", &ids[0], WAIT).await;
    app.wait_for_event("cli", &ids[1], WAIT).await;
    app.kill();
    // The CLI erases a session at once, as the API would.
    let printed = cli(&app.data_dir, &["erase", "--session-id", "cli"]);
    assert_eq!(printed.trim(), "1 events\t1 sessions\t0 refused");
    let again = cli(&app.data_dir, &["erase", "--session-id", "cli"]);
    assert_eq!(again.trim(), "0 events\t0 sessions\t0 refused");
    let refused = cli_failure(&app, &["erase"]);
    assert!(refused.contains("at least one filter"), "{refused}");

    record_unfinished_erasure(&app, "person");
    app.start();
    wait_until(
        Duration::from_secs(20),
        "the erasure to resume and finish",
        || async {
            let gone = app.get("/sessions/person").await.status() == StatusCode::NOT_FOUND;
            gone.then_some(())
        },
    )
    .await;
    let jobs = wait_until(WAIT, "the resumed erasure marked done", || async {
        let (_, jobs) = admin(&app, Method::GET, "/erasures/3", None).await;
        (jobs["status"] == "done").then_some(jobs)
    })
    .await;
    assert_eq!(jobs["removed"]["events"], 1, "{jobs}");
}

fn cli_failure(app: &TestApp, args: &[&str]) -> String {
    let output = crate::helpers::eye_command(&app.data_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(!output.status.success(), "eye {args:?} should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
