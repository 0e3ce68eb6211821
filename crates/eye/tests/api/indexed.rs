//! Indexed payload fields over HTTP and the CLI: declared per type, built in the
//! background, the same answers from `data.` filters; and what bad declarations get.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{WAIT, cli, spawn_app, typed_event, wait_until};

const PAGE: &str = "page interaction";
const INDEXED: &str = "/event-types/page%20interaction/pageview/indexed";

#[tokio::test]
async fn a_declared_field_is_indexed_in_the_background_and_filters_answer_the_same() {
    let app = spawn_app().await;
    let events: Vec<Value> = (0..40)
        .map(|i| {
            let name = if i % 2 == 0 { "pageview" } else { "cta click" };
            let mut data = json!({"host": "h", "path": format!("/p/{}", i % 4)});
            if name == "cta click" {
                data["element"] = json!("button");
            }
            typed_event(&format!("s{}", i % 5), PAGE, name, data)
        })
        .collect();
    let results = app.post_batch(&events).await;
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
    wait_until(WAIT, "40 events stored", || async {
        (app.all_events("order=asc").await.len() == 40).then_some(())
    })
    .await;
    let filters = [
        "data.path=/p/1",
        "data.path=/p/1&category=page+interaction&name=pageview",
        "data.path=/p/1&category=page+interaction&name=cta+click",
        "data.path=/nomatch",
    ];
    let mut before = Vec::new();
    for filter in filters {
        before.push(app.all_events(filter).await);
    }
    assert_eq!(before[0].len(), 10);
    assert_eq!(before[1].len(), 0, "/p/1 is only on odd events, cta clicks");

    let none = app.get_json(INDEXED).await;
    assert_eq!(none["indexed"], json!([]), "{none}");
    let declared = app
        .send_as(
            Method::PUT,
            INDEXED,
            &app.admin_token,
            Some(&json!({"indexed": ["/path"]})),
        )
        .await;
    let status = declared.status();
    let body: Value = declared.json().await.expect("JSON");
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::OK,
        "{status} {body}"
    );
    assert_eq!(body["indexed"][0]["path"], "/path", "{body}");
    let ready = wait_until(WAIT, "the index built", || async {
        let fields = app.get_json(INDEXED).await;
        (fields["indexed"][0]["state"] == "ready").then_some(fields)
    })
    .await;
    assert!(ready["indexed"][0]["ready_at"].is_string(), "{ready}");
    let listed = app
        .get_json("/event-types/page%20interaction/pageview")
        .await;
    assert_eq!(listed["indexed"][0]["path"], "/path", "{listed}");

    for (filter, before) in filters.iter().zip(&before) {
        assert_eq!(&app.all_events(filter).await, before, "{filter}");
    }

    // The CLI declares and lists the same way.
    let out = cli(
        &app.data_dir,
        &["schema", "index", PAGE, "cta click", "/element", "/path"],
    );
    assert!(out.contains("/element\tbuilding"), "{out}");
    let listed = wait_until(WAIT, "the CLI's index built by the server", || async {
        let fields = app
            .get_json("/event-types/page%20interaction/cta%20click/indexed")
            .await;
        (fields["indexed"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["state"] == "ready")))
        .then_some(fields)
    })
    .await;
    assert_eq!(listed["indexed"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(app.all_events("data.element=button").await.len(), 20);
    let out = cli(
        &app.data_dir,
        &["schema", "index", PAGE, "cta click", "--clear"],
    );
    assert!(out.trim().is_empty(), "{out}");
    let audit = app
        .send_as(Method::GET, "/audit", &app.admin_token, None)
        .await;
    let audit: Value = audit.json().await.expect("JSON");
    assert!(audit.to_string().contains("type.indexed"), "{audit}");
}

#[tokio::test]
async fn bad_declarations_get_precise_errors_and_change_nothing() {
    let app = spawn_app().await;
    let closed = json!({
        "type": "object",
        "properties": {"host": {"type": "string"}, "form": {"type": "object"}},
        "additionalProperties": false
    });
    let put = app.put_schema("signup", "completed", closed, None).await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let cases = [
        (
            INDEXED,
            json!({"indexed": ["path"]}),
            StatusCode::BAD_REQUEST,
            "invalid_field_path",
        ),
        (
            INDEXED,
            json!({"indexed": ["/a//b"]}),
            StatusCode::BAD_REQUEST,
            "invalid_field_path",
        ),
        (
            INDEXED,
            json!({"indexed": ["/a.b"]}),
            StatusCode::BAD_REQUEST,
            "invalid_field_path",
        ),
        (
            INDEXED,
            json!({"indexed": ["/p", "/p"]}),
            StatusCode::BAD_REQUEST,
            "invalid_field_path",
        ),
        (
            INDEXED,
            json!({"indexed": (0..9).map(|i| format!("/f{i}")).collect::<Vec<_>>()}),
            StatusCode::BAD_REQUEST,
            "invalid_field_path",
        ),
        (
            INDEXED,
            json!({"indexed": "/path"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            INDEXED,
            json!({"paths": ["/path"]}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "/event-types/signup/completed/indexed",
            json!({"indexed": ["/nope"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "field_forbidden_by_schema",
        ),
        (
            "/event-types/signup/completed/indexed",
            json!({"indexed": ["/form"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "field_forbidden_by_schema",
        ),
    ];
    for (path, body, status, code) in cases {
        let answer = app
            .send_as(Method::PUT, path, &app.admin_token, Some(&body))
            .await;
        assert_eq!(answer.status(), status, "{body}");
        let error: Value = answer.json().await.expect("JSON error");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    // A field the closed schema has is fine.
    let host = app
        .send_as(
            Method::PUT,
            "/event-types/signup/completed/indexed",
            &app.admin_token,
            Some(&json!({"indexed": ["/host"]})),
        )
        .await;
    assert!(host.status().is_success(), "{}", host.status());
    // A read token may look, not declare.
    let forbidden = app
        .send_as(
            Method::PUT,
            INDEXED,
            &app.read_token,
            Some(&json!({"indexed": ["/path"]})),
        )
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get_json(INDEXED).await["indexed"], json!([]));
}
