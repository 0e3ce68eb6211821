use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, WAIT, event, metric_sample, scrape, spawn_app, spawn_app_with};

async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

async fn post(app: &TestApp, body: &str, content_type: &str) -> reqwest::Response {
    app.post_raw(
        body.as_bytes().to_vec(),
        content_type,
        Some(&app.ingest_token),
    )
    .await
}

#[tokio::test]
async fn malformed_bodies_get_400_415_and_413() {
    let app = spawn_app_with(&["--max-body-bytes", "2048", "--max-batch-events", "3"]).await;
    expect_error(
        post(&app, "{not json", "application/json").await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    expect_error(
        post(&app, "42", "application/json").await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    expect_error(
        post(&app, "[]", "application/json").await,
        StatusCode::BAD_REQUEST,
        "empty_batch",
    )
    .await;
    let body = event("s", "2023-01-01T00:00:00Z").to_string();
    expect_error(
        post(&app, &body, "application/xml").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        post(&app, &body, "").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let big = json!({"session_id": "s", "category": "c", "name": "n", "timestamp": "2023-01-01T00:00:00Z",
                     "data": {"blob": "x".repeat(4096)}});
    let error = expect_error(
        post(&app, &big.to_string(), "application/json").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await;
    assert!(
        error["error"]["message"].as_str().unwrap().contains("2048"),
        "the message states the limit"
    );

    let four = json!([
        event("s", "2023-01-01T00:00:00Z"),
        event("s", "2023-01-01T00:00:00Z"),
        event("s", "2023-01-01T00:00:00Z"),
        event("s", "2023-01-01T00:00:00Z")
    ]);
    let error = expect_error(
        post(&app, &four.to_string(), "application/json").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_events",
    )
    .await;
    assert!(error["error"]["message"].as_str().unwrap().contains('3'));

    let bad_line = format!("{}\nnope\n", event("s", "2023-01-01T00:00:00Z"));
    let error = expect_error(
        post(&app, &bad_line, "application/x-ndjson").await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    assert_eq!(error["error"]["details"]["line"], 2);
}

#[tokio::test]
async fn tokens_are_required_and_scoped() {
    let app = spawn_app().await;
    let body = event("s", "2023-01-01T00:00:00Z").to_string().into_bytes();
    let missing = app.post_raw(body.clone(), "application/json", None).await;
    expect_error(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let unknown = app
        .post_raw(body.clone(), "application/json", Some("eye_i_0000"))
        .await;
    expect_error(unknown, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let read_token_ingesting = app
        .post_raw(body, "application/json", Some(&app.read_token))
        .await;
    expect_error(read_token_ingesting, StatusCode::FORBIDDEN, "forbidden").await;

    let ingest_token_reading = app.get_as("/events", &app.ingest_token).await;
    expect_error(ingest_token_reading, StatusCode::FORBIDDEN, "forbidden").await;
    let no_token = app.client.get(app.url("/errors")).send().await.unwrap();
    expect_error(no_token, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn an_invalid_single_event_gets_400_naming_the_field_and_is_recorded() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (without("session_id"), "missing_field", "session_id"),
        (without("category"), "missing_field", "category"),
        (without("name"), "missing_field", "name"),
        (without("timestamp"), "missing_field", "timestamp"),
        (with("session_id", json!(12)), "invalid_type", "session_id"),
        (
            with("timestamp", json!("2023-02-30 00:00:00")),
            "invalid_timestamp",
            "timestamp",
        ),
        (with("data", json!([1, 2])), "invalid_type", "data"),
        (with("data", json!("text")), "invalid_type", "data"),
    ];
    for (body, reason, field) in &cases {
        let response = app.post_events(body).await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "invalid_event").await;
        assert_eq!(error["error"]["details"]["reason"], *reason, "{body}");
        assert_eq!(error["error"]["details"]["field"], *field, "{body}");
        assert!(error["error"]["message"].as_str().unwrap().contains(field));
    }
    let errors = app.wait_for_errors(cases.len(), WAIT).await;
    assert_eq!(
        errors.len(),
        cases.len(),
        "each refused event is in the error store once"
    );
    assert!(app.all_events("category=page+interaction").await.is_empty());
}

fn with(field: &str, value: Value) -> Value {
    let mut e = event("bad", "2023-01-01T00:00:00Z");
    e[field] = value;
    e
}

fn without(field: &str) -> Value {
    let mut e = event("bad", "2023-01-01T00:00:00Z");
    e.as_object_mut().unwrap().remove(field);
    e
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let app = spawn_app_with(&["--queue-max-depth", "3"]).await;
    let four = json!([
        event("q", "2023-01-01T00:00:00Z"),
        event("q", "2023-01-01T00:00:01Z"),
        event("q", "2023-01-01T00:00:02Z"),
        event("q", "2023-01-01T00:00:03Z")
    ]);
    let response = app.post_events(&four).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    // Within the limit, the same events go through.
    let three = json!([
        event("q", "2023-01-01T00:00:00Z"),
        event("q", "2023-01-01T00:00:01Z"),
        event("q", "2023-01-01T00:00:02Z")
    ]);
    assert_eq!(app.post_events(&three).await.status(), StatusCode::ACCEPTED);
    app.wait_for_session_count("q", 3, WAIT).await;
}

/// Three events fill a queue of three; the worker, lingering for more, holds them (and
/// the queue's depth) for `linger_ms` before it stores them.
async fn full_queue(linger_ms: &str, wait_ms: &str, session: &str) -> TestApp {
    let app = spawn_app_with(&[
        "--queue-max-depth",
        "3",
        "--worker-batch-size",
        "100",
        "--worker-linger-ms",
        linger_ms,
        "--queue-full-wait-ms",
        wait_ms,
    ])
    .await;
    let three = json!([
        event(session, "2023-01-01T00:00:00Z"),
        event(session, "2023-01-01T00:00:01Z"),
        event(session, "2023-01-01T00:00:02Z")
    ]);
    assert_eq!(app.post_events(&three).await.status(), StatusCode::ACCEPTED);
    app
}

#[tokio::test]
async fn a_full_queue_holds_requests_until_the_worker_makes_room() {
    let app = full_queue("1500", "20000", "held").await;
    let sent = std::time::Instant::now();
    let two = json!([
        event("held", "2023-01-01T00:00:03Z"),
        event("held", "2023-01-01T00:00:04Z")
    ]);
    let response = app.post_events(&two).await;
    let waited = sent.elapsed();
    // Accepted, not refused: it waited for the worker's commit (the linger) to make room.
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(
        waited >= std::time::Duration::from_millis(500),
        "answered after {waited:?}: it cannot have waited for the worker"
    );
    let metrics = scrape(&app.client, &app.address).await.expect("metrics");
    assert!(
        metric_sample(&metrics, "eye_ingest_queue_full_waits_total").is_some_and(|n| n >= 1.0),
        "the wait is counted"
    );
    app.wait_for_session_count("held", 5, WAIT).await;
}

#[tokio::test]
async fn a_full_queue_that_stays_full_answers_503_after_the_wait() {
    let app = full_queue("6000", "300", "stuck").await;
    let sent = std::time::Instant::now();
    let response = app
        .post_events(&event("stuck", "2023-01-01T00:00:03Z"))
        .await;
    let waited = sent.elapsed();
    assert_eq!(response.headers()["retry-after"], "1");
    expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "queue_full").await;
    assert!(
        waited >= std::time::Duration::from_millis(300)
            && waited < std::time::Duration::from_secs(5),
        "refused after {waited:?}: the wait is 300 ms and the worker holds the queue for 6 s"
    );
    // The three that filled the queue are stored all the same.
    app.wait_for_session_count("stuck", 3, WAIT).await;
}

#[tokio::test]
async fn bad_query_parameters_get_400_naming_them() {
    let app = spawn_app().await;
    for (query, parameter) in [
        ("/events?categry=x", "categry"),
        ("/events?limit=0", "limit"),
        ("/events?limit=1001", "limit"),
        ("/events?limit=ten", "limit"),
        ("/events?from=yesterday", "from"),
        (
            "/events?from=2023-01-02T00:00:00Z&to=2023-01-01T00:00:00Z",
            "from",
        ),
        ("/events?cursor=abc", "cursor"),
        ("/events?order=up", "order"),
        ("/errors?since=1", "since"),
    ] {
        let error = expect_error(
            app.get(query).await,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        )
        .await;
        assert_eq!(error["error"]["details"]["parameter"], parameter, "{query}");
    }
    expect_error(
        app.get("/sessions/nobody").await,
        StatusCode::NOT_FOUND,
        "session_not_found",
    )
    .await;
    expect_error(
        app.get("/nowhere").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let delete = app
        .client
        .delete(app.url("/events"))
        .bearer_auth(&app.read_token)
        .send()
        .await
        .unwrap();
    expect_error(delete, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

/// A page cursor continues only the query it came from: given to another query, or
/// changed by hand, it is a 400 that says so.
#[tokio::test]
async fn a_cursor_from_another_query_or_changed_by_hand_is_refused() {
    let app = spawn_app().await;
    let batch: Vec<Value> = (0..3)
        .map(|i| event("cursor-s", &format!("2023-01-01T00:00:0{i}Z")))
        .collect();
    let verdicts = app.post_batch(&batch).await;
    app.wait_for_event("cursor-s", &crate::helpers::verdict_id(&verdicts[2]), WAIT)
        .await;
    let first = app.get_json("/events?session_id=cursor-s&limit=1").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    // The same filters continue (a different page size is the same query).
    let next = app
        .get_json(&format!(
            "/events?session_id=cursor-s&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["events"].as_array().unwrap().len(), 2, "{next}");
    // Another query.
    let other = expect_error(
        app.get(&format!(
            "/events?category=page+interaction&cursor={cursor}"
        ))
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
    assert_eq!(other["error"]["details"]["parameter"], "cursor");
    assert!(
        other["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another query"),
        "{other}"
    );
    // Changed by hand: one hex digit of the position.
    let mut changed = cursor.clone();
    let digit = if &cursor[10..11] == "0" { "1" } else { "0" };
    changed.replace_range(10..11, digit);
    expect_error(
        app.get(&format!("/events?session_id=cursor-s&cursor={changed}"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
}
