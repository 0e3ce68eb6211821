use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{WAIT, event, spawn_app};

#[tokio::test]
async fn the_three_example_events_are_stored_and_read_back_exactly() {
    let app = spawn_app().await;
    let session = "e2085be5-9137-4e4e-80b5-f1ffddc25423";
    let examples = [
        json!({"session_id": session, "category": "page interaction", "name": "pageview",
               "data": {"host": "www.consumeraffairs.com", "path": "/"},
               "timestamp": "2023-01-01 09:15:27.243860"}),
        json!({"session_id": session, "category": "page interaction", "name": "cta click",
               "data": {"host": "www.consumeraffairs.com", "path": "/", "element": "chat bubble"},
               "timestamp": "2023-01-01 09:15:28.243860Z"}),
        json!({"session_id": session, "category": "form interaction", "name": "submit",
               "data": {"host": "www.consumeraffairs.com", "path": "/",
                        "form": {"first_name": "John", "last_name": "Doe"}},
               "timestamp": "2023-01-01T09:15:29.243860+00:00"}),
    ];
    let mut ids = Vec::new();
    for example in &examples {
        let response = app.post_events(example).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["accepted"], 1);
        assert_eq!(body["results"][0]["status"], "accepted");
        ids.push(body["results"][0]["id"].as_str().unwrap().to_owned());
    }

    let session_body = app.wait_for_session_count(session, 3, WAIT).await;
    assert_eq!(session_body["apps"], json!(["web"]));
    assert_eq!(session_body["first_seen"], "2023-01-01T09:15:27.243860Z");
    assert_eq!(session_body["last_seen"], "2023-01-01T09:15:29.243860Z");

    let events = app.all_events(&format!("session_id={session}")).await;
    assert_eq!(events.len(), 3);
    for ((stored, sent), id) in events.iter().zip(&examples).zip(&ids) {
        assert_eq!(stored["id"], *id);
        assert_eq!(stored["category"], sent["category"]);
        assert_eq!(stored["name"], sent["name"]);
        assert_eq!(stored["data"], sent["data"]);
        assert_eq!(stored["app"], "web");
    }
    assert_eq!(
        events[0]["timestamp"], "2023-01-01T09:15:27.243860Z",
        "microseconds are kept"
    );

    let by_category = app.all_events("category=form+interaction").await;
    assert_eq!(by_category.len(), 1);
    assert_eq!(by_category[0]["data"]["form"]["first_name"], "John");
    assert!(app.all_errors().await.is_empty());
}

#[tokio::test]
async fn events_arriving_out_of_order_come_back_in_time_order() {
    let app = spawn_app().await;
    // Sent newest first, with a tie at :02 broken by `seq`, and one broken by arrival.
    let sent = [
        ("2023-01-01T00:00:05Z", None, "e"),
        ("2023-01-01T00:00:02Z", Some(2), "c"),
        ("2023-01-01T00:00:01Z", None, "a"),
        ("2023-01-01T00:00:02Z", Some(1), "b"),
        ("2023-01-01T00:00:04Z", None, "d1"),
        ("2023-01-01T00:00:04Z", None, "d2"),
    ];
    for (timestamp, seq, label) in sent {
        let mut e = event("ooo", timestamp);
        e["data"]["label"] = json!(label);
        if let Some(seq) = seq {
            e["seq"] = json!(seq);
        }
        assert_eq!(app.post_events(&e).await.status(), StatusCode::ACCEPTED);
    }
    app.wait_for_session_count("ooo", 6, WAIT).await;
    let labels = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["data"]["label"].as_str().unwrap().to_owned())
            .collect()
    };
    let timeline = app.get_json("/sessions/ooo").await;
    assert_eq!(
        labels(timeline["events"].as_array().unwrap()),
        ["a", "b", "c", "d1", "d2", "e"]
    );
    let newest_first = app.all_events("session_id=ooo&order=desc").await;
    assert_eq!(labels(&newest_first), ["e", "d2", "d1", "c", "b", "a"]);
}

#[tokio::test]
async fn a_batch_accepts_the_good_events_and_lists_the_rejected_indexes() {
    let app = spawn_app().await;
    let mut missing_name = event("batch", "2023-01-01T00:00:00Z");
    missing_name.as_object_mut().unwrap().remove("name");
    let batch = json!([
        event("batch", "2023-01-01T00:00:01Z"),
        missing_name,
        event("batch", "2023-01-01T00:00:02Z"),
        {"session_id": "batch", "category": "c", "name": "n", "timestamp": "not a time"},
    ]);
    let response = app.post_events(&batch).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 2);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["index"], 1);
    assert_eq!(results[1]["error"]["code"], "missing_field");
    assert_eq!(results[1]["error"]["field"], "name");
    assert_eq!(results[3]["error"]["code"], "invalid_timestamp");

    app.wait_for_session_count("batch", 2, WAIT).await;
    let errors = app.wait_for_errors(2, WAIT).await;
    let reasons: Vec<_> = errors
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"missing_field") && reasons.contains(&"invalid_timestamp"),
        "{reasons:?}"
    );
    let recorded = errors
        .iter()
        .find(|e| e["reason"] == "invalid_timestamp")
        .unwrap();
    assert_eq!(
        recorded["raw"]["timestamp"], "not a time",
        "the raw event is kept"
    );
    assert_eq!(recorded["event_id"], results[3]["error_id"]);
}

#[tokio::test]
async fn ndjson_and_gzip_bodies_are_accepted() {
    use std::io::Write;
    let app = spawn_app().await;
    let ndjson = format!(
        "{}\n\n{}\n",
        event("nd", "2023-01-01T00:00:01Z"),
        event("nd", "2023-01-01T00:00:02Z")
    );
    let response = app
        .post_raw(
            ndjson.into_bytes(),
            "application/x-ndjson",
            Some(&app.ingest_token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let mut encoder = flate2_encoder();
    encoder
        .write_all(
            json!([event("nd", "2023-01-01T00:00:03Z")])
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let response = app
        .client
        .post(app.url("/events/"))
        .bearer_auth(&app.ingest_token)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.wait_for_session_count("nd", 3, WAIT).await;
}

fn flate2_encoder() -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default())
}

#[tokio::test]
async fn future_timestamps_go_to_the_error_store_unless_sent_at_explains_them() {
    let app = spawn_app().await;
    let now = eye_core::Timestamp::now().as_micros();
    let rfc3339 = |seconds_from_now: i64| {
        eye_core::Timestamp::from_micros(now + seconds_from_now * 1_000_000).to_string()
    };
    let future = event("future", &rfc3339(3600));
    let near = event("future", &rfc3339(1));
    // A client whose clock is an hour ahead: its timestamp is before its own sent_at.
    let mut skewed = event("future", &rfc3339(3590));
    skewed["sent_at"] = json!(rfc3339(3600));
    for e in [&future, &near, &skewed] {
        assert_eq!(app.post_events(e).await.status(), StatusCode::ACCEPTED);
    }
    app.wait_for_session_count("future", 2, WAIT).await;
    let errors = app.wait_for_errors(1, WAIT).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["reason"], "future_timestamp");
    assert_eq!(errors[0]["raw"]["session_id"], "future");
    assert_eq!(errors[0]["status"], "open");
}

#[tokio::test]
async fn health_answers() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// `navigator.sendBeacon` sets no headers: its ingest token comes as `?token=` and its
/// body as `text/plain`. Only an ingest token may travel that way.
#[tokio::test]
async fn a_beacon_carries_its_ingest_token_in_the_url() {
    let app = spawn_app().await;
    let body = json!([event("beacon-1", "2026-01-01T00:00:00Z")]).to_string();
    let beacon = |token: &str| {
        app.client
            .post(app.url(&format!("/events?token={token}")))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body.clone())
    };
    let response = beacon(&app.ingest_token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 1);
    for token in [
        app.admin_token.as_str(),
        app.read_token.as_str(),
        "eye_i_unknown",
    ] {
        let response = beacon(token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unauthorized");
    }
    let response = beacon(&app.ingest_token)
        .header("origin", "https://not-allowed.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    app.wait_for_session_count("beacon-1", 1, WAIT).await;
}
