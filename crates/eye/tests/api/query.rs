use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{WAIT, event, spawn_app};

#[tokio::test]
async fn filters_combine_and_cursors_walk_every_event_once() {
    let app = spawn_app().await;
    let mut batch = Vec::new();
    for i in 0..250 {
        let mut e = event(
            &format!("s{}", i % 5),
            &format!("2023-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
        );
        if i % 2 == 1 {
            e["category"] = json!("form interaction");
            e["name"] = json!("submit");
            e["data"]["form"] = json!({"field": i});
        }
        batch.push(e);
    }
    assert_eq!(
        app.post_events(&Value::Array(batch)).await.status(),
        StatusCode::ACCEPTED
    );
    for s in 0..5 {
        app.wait_for_session_count(&format!("s{s}"), 50, WAIT).await;
    }

    // Pages of 7, newest first, cover all 250 once and in order.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app.get_json(&format!("/events?limit=7{cursor}")).await;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 7);
        seen.extend(
            events
                .iter()
                .map(|e| e["timestamp"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");

    let submits = app
        .all_events("category=form+interaction&name=submit")
        .await;
    assert_eq!(submits.len(), 125);
    let window = app
        .all_events("category=page+interaction&from=2023-01-01T00:01:00Z&to=2023-01-01T00:02:00Z")
        .await;
    assert_eq!(window.len(), 30, "from is inclusive, to exclusive");
    let one_session_window = app
        .all_events("session_id=s0&from=2023-01-01T00:00:00Z&to=2023-01-01T00:01:00Z")
        .await;
    // s0 holds i = 0, 5, 10, ..., 55 in the first minute.
    assert_eq!(one_session_window.len(), 12);
    assert!(one_session_window.iter().all(|e| e["session_id"] == "s0"));
    assert_eq!(
        one_session_window[0]["timestamp"], "2023-01-01T00:00:00.000000Z",
        "session order is ascending"
    );
}
