//! Hostile input: slow clients, a gzip bomb, bytes that are not UTF-8, payloads JSON
//! readers disagree on, and more events than an application is allowed to send.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, event, spawn_app, spawn_app_with};

async fn expect_error(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connecting")
}

/// Reads until the server closes the connection (or `within` passes: a failure).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open past {within:?}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let app = spawn_app_with(&["--header-read-timeout-ms", "500"]).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    stream
        .write_all(b"POST /events HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header line every 200 ms: each arrives in time, the whole never does.
    let trickle = async {
        for i in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if stream
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    };
    trickle.await;
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "cut off after {took:?}, well past the 500 ms header timeout"
    );
    assert!(!answer.contains("202"), "{answer}");
    // The server still serves everyone else.
    let ok = app.post_events(&event("s", "2023-01-01T00:00:00Z")).await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408() {
    let app = spawn_app_with(&["--body-read-timeout-ms", "500"]).await;
    let mut stream = connect(&app).await;
    let body = event("slow", "2023-01-01T00:00:00Z").to_string();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.ingest_token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    // The rest never comes; the answer must, within the body timeout.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer within the body timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
}

#[tokio::test]
async fn a_gzip_bomb_gets_413_without_being_inflated() {
    let app = spawn_app_with(&["--max-body-bytes", "65536"]).await;
    // 64 MiB of spaces inside a valid event compress to ~64 KiB of gzip... and more:
    // the limit applies to the inflated size, which is refused at 64 KiB + 1.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(b"{\"session_id\":\"bomb\",\"data\":\"")
        .unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&spaces).unwrap();
    }
    encoder.write_all(b"\"}").unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(
        bomb.len() < 65536,
        "the compressed bomb fits the body limit"
    );
    let response = app
        .client
        .post(app.url("/events"))
        .bearer_auth(&app.ingest_token)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let body = expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("65536"));
}

#[tokio::test]
async fn bytes_that_are_not_utf8_get_400() {
    let app = spawn_app().await;
    let mut body = br#"{"session_id":"s","category":"c","name":"n","timestamp":"2023-01-01T00:00:00Z","data":{"a":""#.to_vec();
    body.extend([0xff, 0xfe]);
    body.extend(br#""}}"#);
    let response = app
        .post_raw(body, "application/json", Some(&app.ingest_token))
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_json").await;
}

#[tokio::test]
async fn payloads_readers_disagree_on_are_refused_precisely() {
    let app = spawn_app().await;
    let cases = [
        // A key twice inside `data`: SQLite would keep both, jsonb only the last.
        (
            r#"{"session_id":"s","category":"c","name":"n","timestamp":"2023-01-01T00:00:00Z","data":{"a":1,"a":2}}"#,
            "duplicate_field",
        ),
        // A top-level field twice.
        (
            r#"{"session_id":"s","session_id":"t","category":"c","name":"n","timestamp":"2023-01-01T00:00:00Z","data":{}}"#,
            "duplicate_field",
        ),
        // U+0000: valid JSON, but PostgreSQL cannot store it; refused, never a poison event.
        (
            r#"{"session_id":"s\u0000","category":"c","name":"n","timestamp":"2023-01-01T00:00:00Z","data":{}}"#,
            "invalid_value",
        ),
        (
            r#"{"session_id":"s","category":"c","name":"n","timestamp":"2023-01-01T00:00:00Z","data":{"a":"x\u0000"}}"#,
            "invalid_value",
        ),
        // A number no double can hold.
        (
            r#"{"session_id":"s","category":"c","name":"n","timestamp":"2023-01-01T00:00:00Z","data":{"n":1e999}}"#,
            "invalid_value",
        ),
    ];
    for (body, code) in cases {
        let response = app
            .post_raw(
                body.as_bytes().to_vec(),
                "application/json",
                Some(&app.ingest_token),
            )
            .await;
        let answer = expect_error(response, StatusCode::BAD_REQUEST, "invalid_event").await;
        assert_eq!(answer["error"]["details"]["reason"], code, "{answer}");
    }
    // Identifiers longer than 256 characters are refused too.
    let mut long = event(&"s".repeat(257), "2023-01-01T00:00:00Z");
    let response = app.post_events(&long).await;
    let answer = expect_error(response, StatusCode::BAD_REQUEST, "invalid_event").await;
    assert_eq!(answer["error"]["details"]["field"], "session_id");
    // NUL in a query parameter or a path is refused or unknown, never a 500.
    let query = app.get("/events?session_id=a%00b").await;
    expect_error(query, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    let path = app.get("/sessions/a%00b").await;
    assert_eq!(path.status(), StatusCode::NOT_FOUND);
    long["session_id"] = json!("s");
    long["category"] = json!("c".repeat(300));
    let response = app.post_events(&long).await;
    let answer = expect_error(response, StatusCode::BAD_REQUEST, "invalid_event").await;
    assert_eq!(answer["error"]["details"]["field"], "category");
}

#[tokio::test]
async fn an_application_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(&[
        "--rate-limit-events-per-second",
        "5",
        "--rate-limit-burst",
        "1000",
        "--max-batch-events",
        "1000",
    ])
    .await;
    let batch = |n: usize| {
        Value::Array(
            (0..n)
                .map(|_| event("rate", "2023-01-01T00:00:00Z"))
                .collect(),
        )
    };
    // The burst passes whole; the next event does not.
    assert_eq!(
        app.post_events(&batch(1000)).await.status(),
        StatusCode::ACCEPTED
    );
    let refused = app.post_events(&batch(10)).await;
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .expect("Retry-After on 429")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&retry_after), "Retry-After {retry_after}");
    expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // After the advised wait, the events pass.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        app.post_events(&batch(10)).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app().await;
    let ours = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(ours.headers()["x-request-id"], "trace-42");
    let first = app.client.get(app.url("/healthz")).send().await.unwrap();
    let second = app.client.get(app.url("/nowhere")).send().await.unwrap();
    let (a, b) = (
        first.headers()["x-request-id"].clone(),
        second.headers()["x-request-id"].clone(),
    );
    assert!(!a.is_empty());
    assert_ne!(a, b, "each request gets its own id");
}
