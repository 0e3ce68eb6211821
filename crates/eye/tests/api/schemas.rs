//! The schema registry: default schemas, updates over HTTP and the CLI, modes, the
//! unknown-type policy and payload limits.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    WAIT, cli, encode_segment, schema_path, spawn_app, spawn_app_with, typed_event, verdict_id,
};

const PAGE: &str = "page interaction";
const FORM: &str = "form interaction";

#[tokio::test]
async fn known_types_are_checked_against_their_default_schemas() {
    let app = spawn_app().await;
    let page = json!({"host": "www.example.com", "path": "/"});
    let events = [
        typed_event("k", PAGE, "pageview", page.clone()),
        typed_event(
            "k",
            PAGE,
            "pageview",
            json!({"host": "www.example.com", "path": 7}),
        ),
        typed_event(
            "k",
            PAGE,
            "cta click",
            json!({"host": "h", "path": "/", "element": "chat bubble"}),
        ),
        typed_event("k", PAGE, "cta click", page.clone()),
        typed_event(
            "k",
            FORM,
            "submit",
            json!({"host": "h", "path": "/", "form": {"first_name": "John"}}),
        ),
        typed_event(
            "k",
            FORM,
            "submit",
            json!({"host": "h", "path": "/", "form": "John"}),
        ),
    ];
    let results = app.post_batch(&events).await;
    // Schemas are the worker's business: every element is accepted by the API.
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
    let ids: Vec<String> = results.iter().map(verdict_id).collect();

    for valid in [0, 2, 4] {
        let stored = app.wait_for_event("k", &ids[valid], WAIT).await;
        assert_eq!(stored["schema_version"], 1, "{stored}");
    }
    let expectations = [
        (1, "/path", "type"),
        (3, "", "required"),
        (5, "/form", "type"),
    ];
    for (index, pointer, rule) in expectations {
        let error = app.wait_for_error(&ids[index], WAIT).await;
        assert_eq!(error["reason"], "schema_violation", "{error}");
        assert_eq!(error["status"], "open");
        assert_eq!(error["category"], events[index]["category"]);
        let violations = error["violations"].as_array().expect("violations");
        assert_eq!(violations.len(), 1, "{error}");
        assert_eq!(violations[0]["pointer"], pointer, "{error}");
        assert_eq!(violations[0]["rule"], rule, "{error}");
        assert!(
            !violations[0]["message"].as_str().unwrap().is_empty(),
            "{error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains("version 1"),
            "{error}"
        );
    }
    let missing = app.wait_for_error(&ids[3], WAIT).await;
    assert!(
        missing["violations"][0]["message"]
            .as_str()
            .unwrap()
            .contains("element"),
        "{missing}"
    );
    assert_eq!(app.all_events("session_id=k").await.len(), 3);
}

#[tokio::test]
async fn a_schema_update_applies_to_the_next_event_and_keeps_old_versions() {
    let app = spawn_app().await;
    let titled = json!({"type": "object", "required": ["host", "path", "title"],
                        "properties": {"title": {"type": "string", "minLength": 1}}});
    let response = app.put_schema(PAGE, "pageview", titled.clone(), None).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let record: Value = response.json().await.unwrap();
    assert_eq!(record["version"], 2);
    assert_eq!(record["current"], true);
    assert_eq!(record["mode"], "enforce");

    // The very next event is checked against version 2.
    let untitled = typed_event("u", PAGE, "pageview", json!({"host": "h", "path": "/"}));
    let with_title = typed_event(
        "u",
        PAGE,
        "pageview",
        json!({"host": "h", "path": "/", "title": "Home"}),
    );
    let results = app.post_batch(&[untitled.clone(), with_title]).await;
    let error = app.wait_for_error(&verdict_id(&results[0]), WAIT).await;
    assert_eq!(error["reason"], "schema_violation");
    assert!(
        error["message"].as_str().unwrap().contains("version 2"),
        "{error}"
    );
    let stored = app
        .wait_for_event("u", &verdict_id(&results[1]), WAIT)
        .await;
    assert_eq!(stored["schema_version"], 2);

    // The same schema again adds no version; the old version is still there.
    let again = app.put_schema(PAGE, "pageview", titled, None).await;
    assert_eq!(again.status(), StatusCode::OK);
    let old = app
        .get_json(&format!("{}?version=1", schema_path(PAGE, "pageview")))
        .await;
    assert_eq!(old["version"], 1);
    assert_eq!(old["current"], false);
    assert_eq!(old["schema"]["required"], json!(["host", "path"]));
    let types = app.get_json("/event-types").await;
    let pageview = types["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "pageview")
        .cloned()
        .expect("pageview listed");
    assert_eq!(pageview["versions"], json!([1, 2]));
    assert_eq!(pageview["schema_version"], 2);
    assert_eq!(pageview["event_count"], 1);

    // Deleting the schema: events of the type are no longer checked.
    let deleted = app
        .send_as(
            Method::DELETE,
            &schema_path(PAGE, "pageview"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let results = app.post_batch(&[untitled]).await;
    let stored = app
        .wait_for_event("u", &verdict_id(&results[0]), WAIT)
        .await;
    assert_eq!(stored["schema_version"], Value::Null);
    let gone = app.get(&schema_path(PAGE, "pageview")).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_management_api_refuses_bad_input_precisely() {
    let app = spawn_app().await;
    let invalid = app
        .put_schema(PAGE, "pageview", json!({"type": "strin"}), None)
        .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = invalid.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_schema");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("/type"),
        "{body}"
    );

    let bad_body = app
        .send_as(
            Method::PUT,
            &schema_path(PAGE, "pageview"),
            &app.admin_token,
            Some(&json!({"schema": {}, "mode": "loud"})),
        )
        .await;
    assert_eq!(bad_body.status(), StatusCode::BAD_REQUEST);

    let as_reader = app
        .send_as(
            Method::PUT,
            &schema_path(PAGE, "pageview"),
            &app.read_token,
            Some(&json!({"schema": {}})),
        )
        .await;
    assert_eq!(as_reader.status(), StatusCode::FORBIDDEN);

    let unknown = app
        .get(&format!(
            "/event-types/{}/{}",
            encode_segment("no such"),
            "type"
        ))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "event_type_not_found");
    let no_version = app
        .get(&format!("{}?version=9", schema_path(PAGE, "pageview")))
        .await;
    assert_eq!(no_version.status(), StatusCode::NOT_FOUND);
    let bad_version = app
        .get(&format!("{}?version=x", schema_path(PAGE, "pageview")))
        .await;
    assert_eq!(bad_version.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad_version.json().await.unwrap();
    assert_eq!(body["error"]["details"]["parameter"], "version");
    let delete_none = app
        .send_as(
            Method::DELETE,
            &schema_path("x", "y"),
            &app.admin_token,
            None,
        )
        .await;
    assert_eq!(delete_none.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shadow_mode_stores_the_event_and_records_a_warning() {
    let app = spawn_app().await;
    let strict = json!({"type": "object", "required": ["title"]});
    let response = app
        .put_schema(PAGE, "pageview", strict, Some("shadow"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let results = app
        .post_batch(&[typed_event(
            "sh",
            PAGE,
            "pageview",
            json!({"host": "h", "path": "/"}),
        )])
        .await;
    let id = verdict_id(&results[0]);
    let stored = app.wait_for_event("sh", &id, WAIT).await;
    assert_eq!(stored["schema_version"], 2);
    let warning = app.wait_for_error(&id, WAIT).await;
    assert_eq!(warning["status"], "warning");
    assert_eq!(warning["reason"], "schema_violation");
    assert_eq!(warning["violations"][0]["rule"], "required");
    let warnings = app.get_json("/errors?status=warning").await;
    assert_eq!(warnings["errors"].as_array().unwrap().len(), 1);
    let open = app.get_json("/errors?status=open").await;
    assert!(open["errors"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_schema_set_by_the_cli_applies_within_a_second() {
    let app = spawn_app().await;
    let file = app.data_dir.join("strict.json");
    std::fs::write(&file, r#"{"type": "object", "required": ["title"]}"#).unwrap();
    cli(
        &app.data_dir,
        &["schema", "set", PAGE, "pageview", file.to_str().unwrap()],
    );
    let set_at = Instant::now();
    // Post one event every 50 ms for 1.5 s, then see which were checked against the
    // new version: all of those posted more than a second after the change must be.
    let mut sent = Vec::new();
    while set_at.elapsed() < Duration::from_millis(1500) {
        let event = typed_event("cli", PAGE, "pageview", json!({"host": "h", "path": "/"}));
        let results = app.post_batch(&[event]).await;
        sent.push((set_at.elapsed(), verdict_id(&results[0])));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (after, id) in &sent {
        if *after < Duration::from_secs(1) {
            continue;
        }
        let error = app.wait_for_error(id, WAIT).await;
        assert_eq!(
            error["reason"], "schema_violation",
            "posted {after:?} after the change"
        );
    }
    let listed = cli(&app.data_dir, &["schema", "list"]);
    assert!(
        listed.contains("page interaction\tpageview\tenforce\t2\t1,2\t"),
        "{listed}"
    );
    let shown = cli(
        &app.data_dir,
        &["schema", "show", PAGE, "pageview", "--version", "1"],
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["required"], json!(["host", "path"]));
}

#[tokio::test]
async fn unknown_types_are_accepted_by_default_and_refused_on_request() {
    let accepting = spawn_app().await;
    let results = accepting
        .post_batch(&[typed_event("t", "video", "play", json!({"at": 3}))])
        .await;
    let stored = accepting
        .wait_for_event("t", &verdict_id(&results[0]), WAIT)
        .await;
    assert_eq!(stored["schema_version"], Value::Null);
    let info = accepting.get_json("/event-types/video/play").await;
    assert_eq!(info["registered"], false);
    assert_eq!(info["event_count"], 1);

    let refusing = spawn_app_with(&["--unknown-event-types", "reject"]).await;
    let results = refusing
        .post_batch(&[
            typed_event("t", "video", "play", json!({"at": 3})),
            typed_event("t", PAGE, "pageview", json!({"host": "h", "path": "/"})),
        ])
        .await;
    let error = refusing
        .wait_for_error(&verdict_id(&results[0]), WAIT)
        .await;
    assert_eq!(error["reason"], "unknown_event_type");
    refusing
        .wait_for_event("t", &verdict_id(&results[1]), WAIT)
        .await;
}

#[tokio::test]
async fn payload_limits_come_before_the_schema_with_their_own_reasons() {
    let app = spawn_app_with(&["--max-payload-bytes", "200", "--max-payload-depth", "4"]).await;
    let large = typed_event(
        "l",
        PAGE,
        "pageview",
        json!({"host": "h", "path": "/", "blob": "x".repeat(300)}),
    );
    let deep = typed_event(
        "l",
        PAGE,
        "pageview",
        json!({"host": "h", "path": "/", "a": {"b": {"c": {"d": {}}}}}),
    );
    let fine = typed_event(
        "l",
        PAGE,
        "pageview",
        json!({"host": "h", "path": "/", "a": {"b": {"c": {"d": 1}}}}),
    );
    let results = app.post_batch(&[large, deep, fine]).await;
    assert_eq!(results[0]["status"], "rejected");
    assert_eq!(results[0]["error"]["code"], "payload_too_large");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["error"]["code"], "payload_too_deep");
    assert_eq!(results[2]["status"], "accepted");
    let error = app.wait_for_error(&verdict_id(&results[1]), WAIT).await;
    assert_eq!(error["reason"], "payload_too_deep");
    app.wait_for_event("l", &verdict_id(&results[2]), WAIT)
        .await;
}
