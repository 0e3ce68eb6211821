//! The error workflow: filtering and counting errors, dismissing one, and reprocessing
//! open errors after a schema fix.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{WAIT, cli, spawn_app, typed_event, verdict_id};

const PAGE: &str = "page interaction";

#[tokio::test]
async fn reprocessing_turns_fixed_errors_into_events_exactly_once() {
    let app = spawn_app().await;
    let titled = json!({"type": "object", "required": ["title"]});
    assert_eq!(
        app.put_schema(PAGE, "pageview", titled, None)
            .await
            .status(),
        StatusCode::CREATED
    );
    let mut batch: Vec<Value> = (0..5)
        .map(|i| {
            typed_event(
                "rp",
                PAGE,
                "pageview",
                json!({"host": "h", "path": format!("/{i}")}),
            )
        })
        .collect();
    // One that no schema fix can save: its timestamp is far in the future.
    let mut future = typed_event("rp", PAGE, "pageview", json!({"title": "t"}));
    future["timestamp"] = json!("2999-01-01T00:00:00Z");
    batch.push(future);
    let results = app.post_batch(&batch).await;
    let ids: Vec<String> = results.iter().map(verdict_id).collect();
    let mut received = Vec::new();
    for id in &ids {
        let error = app.wait_for_error(id, WAIT).await;
        assert_eq!(error["status"], "open");
        received.push(error["received_at"].clone());
    }

    let forbidden = app
        .send_as(Method::POST, "/errors/reprocess", &app.read_token, None)
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // Nothing fixed yet: reprocessing changes nothing.
    let outcome = reprocess(&app, "").await;
    assert_eq!(outcome, json!({"reprocessed": 0, "still_invalid": 6}));

    // The fix: a schema that no longer needs a title.
    let relaxed = json!({"type": "object", "required": ["host", "path"]});
    assert_eq!(
        app.put_schema(PAGE, "pageview", relaxed, None)
            .await
            .status(),
        StatusCode::CREATED
    );
    // Run twice: the first run fixes five; the second finds nothing more to fix, and
    // the stored events are the same.
    for expected in [5, 0] {
        let outcome = reprocess(&app, "?category=page+interaction").await;
        assert_eq!(
            outcome,
            json!({"reprocessed": expected, "still_invalid": 1})
        );
        let stored = app.all_events("session_id=rp").await;
        assert_eq!(stored.len(), 5, "each fixed error stored exactly once");
        for (index, id) in ids.iter().take(5).enumerate() {
            let event = stored.iter().find(|e| e["id"] == *id).expect("same id");
            assert_eq!(
                event["received_at"], received[index],
                "original reception time"
            );
            assert_eq!(event["schema_version"], 3);
            let error = app.get_json(&format!("/errors/{id}")).await;
            assert_eq!(error["status"], "reprocessed");
        }
        let still = app.get_json(&format!("/errors/{}", ids[5])).await;
        assert_eq!(still["status"], "open");
        assert_eq!(still["reason"], "future_timestamp");
    }
    let session = app.get_json("/sessions/rp").await;
    assert_eq!(session["event_count"], 5);
    let types = app
        .get_json("/event-types/page%20interaction/pageview")
        .await;
    assert_eq!(types["event_count"], 5);
}

async fn reprocess(app: &crate::helpers::TestApp, query: &str) -> Value {
    let response = app
        .send_as(
            Method::POST,
            &format!("/errors/reprocess{query}"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn errors_filter_count_and_dismiss() {
    let app = spawn_app().await;
    let other_token = cli(&app.data_dir, &["app", "create", "mobile"])
        .trim()
        .to_owned();
    let web = app
        .post_batch(&[
            typed_event("f", PAGE, "pageview", json!({"host": "h"})),
            typed_event("f", PAGE, "cta click", json!({"host": "h", "path": "/"})),
            json!({"session_id": "f", "category": PAGE, "data": {}, "timestamp": "2023-01-01T00:00:00Z"}),
        ])
        .await;
    let response = app
        .post_raw(
            typed_event("f", PAGE, "pageview", json!({}))
                .to_string()
                .into_bytes(),
            "application/json",
            Some(&other_token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mobile: Value = response.json().await.unwrap();
    let mobile_id = verdict_id(&mobile["results"][0]);
    for id in web.iter().map(verdict_id).chain([mobile_id.clone()]) {
        app.wait_for_error(&id, WAIT).await;
    }

    let count = |query: &'static str| {
        let app = &app;
        async move {
            app.get_json(&format!("/errors?{query}")).await["errors"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(count("reason=schema_violation").await, 3);
    assert_eq!(count("reason=missing_field").await, 1);
    assert_eq!(count("category=page+interaction&name=pageview").await, 2);
    assert_eq!(count("app=mobile").await, 1);
    assert_eq!(count("app=web&reason=schema_violation").await, 2);
    assert_eq!(count("status=open").await, 4);
    assert_eq!(
        count("from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z").await,
        0
    );
    assert_eq!(count("from=2000-01-01T00:00:00Z").await, 4);
    // Pagination walks every error once.
    let first = app.get_json("/errors?limit=3").await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = app
        .get_json(&format!("/errors?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(second["errors"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);

    for (query, parameter) in [
        ("reason=nope", "reason"),
        ("status=closed", "status"),
        ("from=yesterday", "from"),
        ("from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z", "to"),
        ("colour=red", "colour"),
    ] {
        let response = app.get(&format!("/errors?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["parameter"], parameter, "{query}");
    }

    let summary = app.get_json("/errors/summary").await;
    assert_eq!(summary["total"], 4);
    let by_type = summary["by_reason_and_type"].as_array().unwrap();
    let pageview_violations = by_type
        .iter()
        .find(|c| c["reason"] == "schema_violation" && c["name"] == "pageview")
        .expect("pageview violations counted");
    assert_eq!(pageview_violations["count"], 2);
    let hourly = summary["hourly"].as_array().unwrap();
    assert_eq!(
        hourly
            .iter()
            .map(|h| h["count"].as_i64().unwrap())
            .sum::<i64>(),
        4
    );
    let filtered = app.get_json("/errors/summary?app=mobile").await;
    assert_eq!(filtered["total"], 1);

    // Dismissing: admin only, by the ingest answer's error_id, idempotent.
    let path = format!("/errors/{mobile_id}/dismiss");
    let as_reader = app
        .send_as(Method::POST, &path, &app.read_token, None)
        .await;
    assert_eq!(as_reader.status(), StatusCode::FORBIDDEN);
    for _ in 0..2 {
        let dismissed = app
            .send_as(Method::POST, &path, &app.admin_token, None)
            .await;
        assert_eq!(dismissed.status(), StatusCode::OK);
        let body: Value = dismissed.json().await.unwrap();
        assert_eq!(body["status"], "dismissed");
    }
    assert_eq!(count("status=dismissed").await, 1);
    let missing = app
        .send_as(
            Method::POST,
            "/errors/00000000-0000-0000-0000-000000000000/dismiss",
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let malformed = app.get("/errors/not-an-id").await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    // A dismissed error is not reprocessed.
    let outcome = app
        .send_as(
            Method::POST,
            "/errors/reprocess?app=mobile",
            &app.admin_token,
            None,
        )
        .await;
    let outcome: Value = outcome.json().await.unwrap();
    assert_eq!(outcome, json!({"reprocessed": 0, "still_invalid": 0}));
    let error = app.get_json(&format!("/errors/{mobile_id}")).await;
    assert_eq!(error["status"], "dismissed");
}
