//! The Segment tracking API spoken over plain HTTP: keys, bodies, answers, the mapping
//! onto events, idempotency and what bad input gets. The official SDKs are driven
//! against it in `tests/clients`.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{WAIT, spawn_app, spawn_app_with, wait_until};

/// `POST path` with `body`, the write key as the Basic user name when `basic`.
async fn send(
    app: &crate::helpers::TestApp,
    path: &str,
    key: Option<&str>,
    body: Vec<u8>,
    gzip: bool,
) -> (StatusCode, Option<String>, Value) {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.basic_auth(key, Some(""));
    }
    if gzip {
        request = request.header("content-encoding", "gzip");
    }
    let response = request.send().await.expect("POST");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

fn gzipped(body: &Value) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body.to_string().as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn segment_messages_are_stored_once_as_events_by_session_and_type() {
    let app = spawn_app().await;
    let key = app.ingest_token.clone();
    let track = json!({
        "type": "track", "event": "Order Completed", "messageId": "msg-track-1",
        "anonymousId": "anon-1", "userId": "user-1",
        "properties": {"total": 30, "plan": "pro"},
        "context": {"library": {"name": "test", "version": "1"}},
        "timestamp": "2026-01-01T10:00:00Z", "sentAt": "2026-01-01T10:00:01Z"
    });
    let batch = json!({"batch": [
        track.clone(),
        {"type": "page", "name": "Home", "messageId": "msg-page-1", "anonymousId": "anon-1",
         "properties": {"path": "/"}, "timestamp": "2026-01-01T10:00:00Z"},
        {"type": "identify", "messageId": "msg-identify-1", "anonymousId": "anon-1",
         "userId": "user-1", "traits": {"email": "a@example.com"}},
        {"type": "track", "messageId": "msg-no-event", "anonymousId": "anon-1"},
    ]});
    // Basic auth, gzip.
    let (status, _, body) = send(&app, "/v1/batch", Some(&key), gzipped(&batch), true).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"success": true})));
    // A retry of the same batch (`writeKey` in the body this time) stores nothing new.
    let mut again = batch.clone();
    again["writeKey"] = json!(key);
    let (status, _, _) = send(
        &app,
        "/v1/import",
        None,
        again.to_string().into_bytes(),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // One message on its own path, short and long.
    let group = json!({"groupId": "g-1", "messageId": "msg-group-1", "userId": "user-1",
                       "traits": {"name": "Acme"}});
    let (status, _, _) = send(
        &app,
        "/v1/g",
        Some(&key),
        group.to_string().into_bytes(),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let alias = json!({"previousId": "anon-1", "userId": "user-1", "messageId": "msg-alias-1",
                       "writeKey": key});
    let (status, _, _) = send(
        &app,
        "/v1/alias",
        None,
        alias.to_string().into_bytes(),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let events = wait_until(WAIT, "3 events of anon-1 stored", || async {
        let events = app.all_events("session_id=anon-1&order=asc").await;
        (events.len() == 3).then_some(events)
    })
    .await;
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["category"].as_str().unwrap().into(),
                e["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("track", "Order Completed"),
        ("page", "Home"),
        ("identify", "identify"),
    ] {
        assert!(
            kinds.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {kinds:?}"
        );
    }
    let order = events.iter().find(|e| e["category"] == "track").unwrap();
    assert_eq!(order["data"]["properties"]["plan"], "pro", "{order}");
    assert_eq!(order["data"]["userId"], "user-1");
    assert_eq!(order["data"]["context"]["library"]["name"], "test");
    assert_eq!(order["client_id"], "msg-track-1", "{order}");
    // Queryable by type and by the kept ids.
    let by_type = app.all_events("category=track&name=Order+Completed").await;
    assert_eq!(by_type.len(), 1);
    assert_eq!(
        app.all_events("data.userId=user-1&category=identify")
            .await
            .len(),
        1
    );
    // The batch's own `sentAt` (as the SDKs send it) corrects a skewed clock: this
    // client is a day behind, its message a second old when sent.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let iso = |seconds: i64| {
        let output = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{seconds}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let skewed = json!({"sentAt": iso(now - 86_400), "batch": [
        {"type": "track", "event": "Skewed", "anonymousId": "skew", "messageId": "skew-1",
         "timestamp": iso(now - 86_401)}
    ]});
    let (status, _, _) = send(
        &app,
        "/v1/batch",
        Some(&key),
        skewed.to_string().into_bytes(),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let skewed = wait_until(WAIT, "the skewed message stored", || async {
        app.all_events("session_id=skew").await.pop()
    })
    .await;
    let stored = skewed["timestamp"].as_str().unwrap();
    assert!(
        stored.starts_with(&iso(now - 1)[..16]) || stored.starts_with(&iso(now)[..16]),
        "corrected to about now, not a day ago: {stored} ({skewed})"
    );
    assert_eq!(skewed["data"]["originalTimestamp"], iso(now - 86_401));

    // Without an anonymous id, the user id is the session.
    let user = wait_until(WAIT, "the group and the alias stored", || async {
        let events = app.all_events("session_id=user-1").await;
        (events.len() == 2).then_some(events)
    })
    .await;
    assert!(
        user.iter()
            .any(|e| e["category"] == "alias" && e["data"]["previousId"] == "anon-1"),
        "{user:?}"
    );
    let group = app.all_events("category=group").await;
    assert_eq!(group.len(), 1);
    assert_eq!(group[0]["session_id"], "user-1");
    assert_eq!(group[0]["data"]["groupId"], "g-1");

    // The track without `event` is in the error store (twice received, once recorded
    // per delivery: refused messages have no idempotency key to match).
    let errors = app.wait_for_errors(1, WAIT).await;
    assert!(
        errors.iter().any(|e| e["reason"] == "missing_field"
            && e["message"].as_str().unwrap().contains("`event`")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn bad_keys_bodies_and_sizes_get_the_answers_segment_clients_expect() {
    let app = spawn_app().await;
    let key = app.ingest_token.clone();
    let page = json!({"anonymousId": "a", "name": "Home"});
    // (path, write key, body, status, error code)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("/v1/page", None, page.to_string().into_bytes(), StatusCode::UNAUTHORIZED, "unauthorized"),
        ("/v1/page", Some("eye_i_nope"), page.to_string().into_bytes(), StatusCode::UNAUTHORIZED, "unauthorized"),
        ("/v1/page", Some(&app.read_token), page.to_string().into_bytes(), StatusCode::FORBIDDEN, "forbidden"),
        ("/v1/batch", Some(&key), b"{not json".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("/v1/batch", Some(&key), b"[]".to_vec(), StatusCode::BAD_REQUEST, "invalid_body"),
        ("/v1/batch", Some(&key), br#"{"batch": {}}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_body"),
        (
            "/v1/track",
            Some(&key),
            json!({"anonymousId": "a", "event": "big", "properties": {"x": "y".repeat(40_000)}}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "body_too_large",
        ),
        (
            "/v1/batch",
            Some(&key),
            json!({"batch": [{"type": "track", "anonymousId": "a", "event": "big", "properties": {"x": "y".repeat(40_000)}}]}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "message_too_large",
        ),
        (
            "/v1/batch",
            Some(&key),
            json!({"batch": (0..30).map(|_| json!({"type": "track", "anonymousId": "a", "event": "e", "properties": {"x": "y".repeat(20_000)}})).collect::<Vec<_>>()}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "body_too_large",
        ),
        ("/v1/track", Some(&key), json!({"anonymousId": "a"}).to_string().into_bytes(), StatusCode::BAD_REQUEST, "invalid_event"),
    ];
    for (path, key, body, status, code) in cases {
        let (got, _, answer) = send(&app, path, key, body, false).await;
        assert_eq!(got, status, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{path}: {answer}");
    }
    // From a browser: only the application's own origins.
    let shop = app.create_app("shop", &["http://shop.example"]).await;
    for (origin, status) in [
        ("http://shop.example", StatusCode::OK),
        ("http://evil.example", StatusCode::FORBIDDEN),
    ] {
        let answer = app
            .client
            .post(app.url("/v1/t"))
            .header("content-type", "text/plain")
            .header("origin", origin)
            .basic_auth(&shop, Some(""))
            .body(json!({"anonymousId": "b", "event": "e"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{origin}");
        if status == StatusCode::OK {
            assert_eq!(answer.headers()["access-control-allow-origin"], origin);
        }
    }
    // Bad gzip is a 400 too.
    let (status, _, answer) = send(&app, "/v1/batch", Some(&key), b"not gzip".to_vec(), true).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_gzip"))
    );
}

#[tokio::test]
async fn a_full_queue_is_a_503_with_retry_after_so_that_sdks_back_off() {
    let app = spawn_app_with(&["--queue-max-depth", "1", "--queue-full-wait-ms", "0"]).await;
    let batch = json!({"batch": [
        {"type": "track", "event": "a", "anonymousId": "x"},
        {"type": "track", "event": "b", "anonymousId": "x"},
    ]});
    let (status, retry_after, answer) = send(
        &app,
        "/v1/batch",
        Some(&app.ingest_token),
        batch.to_string().into_bytes(),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(retry_after.as_deref(), Some("1"));
}

// A message that is well-formed but fails its type's schema is accepted (200) and goes
// to the error store with the schema's reason, like a native event.
#[tokio::test]
async fn per_type_schemas_apply_to_segment_messages() {
    let app = spawn_app().await;
    let schema = json!({
        "type": "object",
        "required": ["properties"],
        "properties": {"properties": {"type": "object", "required": ["plan"]}}
    });
    let put = app.put_schema("track", "Signed Up", schema, None).await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let batch = json!({"batch": [
        {"type": "track", "event": "Signed Up", "anonymousId": "s", "messageId": "ok",
         "properties": {"plan": "pro"}},
        {"type": "track", "event": "Signed Up", "anonymousId": "s", "messageId": "bad",
         "properties": {}},
    ]});
    let (status, _, _) = send(
        &app,
        "/v1/batch",
        Some(&app.ingest_token),
        batch.to_string().into_bytes(),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let errors = app.wait_for_errors(1, WAIT).await;
    assert_eq!(errors[0]["reason"], "schema_violation", "{errors:?}");
    assert_eq!(
        errors[0]["violations"][0]["pointer"], "/properties",
        "{errors:?}"
    );
    let stored = wait_until(WAIT, "the valid message stored", || async {
        let events = app.all_events("session_id=s").await;
        (events.len() == 1).then_some(events)
    })
    .await;
    assert_eq!(stored[0]["client_id"], "ok");
}
