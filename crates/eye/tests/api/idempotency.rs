use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{WAIT, cli, event, spawn_app};

#[tokio::test]
async fn the_same_client_id_from_the_same_application_is_stored_once() {
    let app = spawn_app().await;
    let mut first = event("idem", "2023-01-01T00:00:01Z");
    first["id"] = json!("client-event-1");
    let mut other = event("idem", "2023-01-01T00:00:02Z");
    other["id"] = json!("client-event-2");

    let mut ids = Vec::new();
    for body in [&first, &first, &json!([first.clone(), other.clone()])] {
        let response = app.post_events(body).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        ids.push(body["results"][0]["id"].as_str().unwrap().to_owned());
    }
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "a resend gets the same event id: {ids:?}"
    );

    // Another application may use the same client id for its own event.
    let mobile_token = cli(&app.data_dir, &["app", "create", "mobile"])
        .trim()
        .to_owned();
    let response = app
        .post_raw(
            first.to_string().into_bytes(),
            "application/json",
            Some(&mobile_token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let session = app.wait_for_session_count("idem", 3, WAIT).await;
    assert_eq!(session["apps"], json!(["mobile", "web"]));
    let events = app.all_events("session_id=idem").await;
    assert_eq!(events.len(), 3);
    let client_ids: Vec<_> = events
        .iter()
        .map(|e| e["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        client_ids,
        ["client-event-1", "client-event-1", "client-event-2"]
    );
}
