use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{WAIT, event, metric_sample as sample, spawn_app, wait_until};

#[tokio::test]
async fn metrics_count_accepted_rejected_stored_and_recorded_events() {
    let app = spawn_app().await;
    let batch = json!([
        event("m", "2023-01-01T00:00:01Z"),
        event("m", "2023-01-01T00:00:02Z"),
        {"session_id": "m"},
        {"session_id": "m", "category": "page interaction", "name": "pageview",
         "timestamp": "2023-01-01T00:00:03Z", "data": {"path": "/"}},
    ]);
    assert_eq!(app.post_events(&batch).await.status(), StatusCode::ACCEPTED);
    // The worker counts a batch as stored when its transaction commits and only then
    // acknowledges it, so the queue's depth reaches zero a moment later: wait for both.
    let text = wait_until(WAIT, "stored and recorded counts, empty queue", || async {
        let text = crate::helpers::scrape(&app.client, &app.address).await?;
        let stored = sample(&text, "eye_events_stored_total")?;
        let recorded = sample(&text, "eye_errors_recorded_total")?;
        let depth = sample(&text, "eye_queue_depth")?;
        (stored == 2.0 && recorded == 2.0 && depth == 0.0).then_some(text)
    })
    .await;
    // The API accepts the schema-violating event; the worker records it as an error.
    assert_eq!(sample(&text, "eye_events_accepted_total"), Some(3.0));
    assert_eq!(sample(&text, "eye_events_rejected_total"), Some(1.0));
    assert_eq!(sample(&text, "eye_queue_depth"), Some(0.0));
    assert_eq!(sample(&text, "eye_queue_oldest_age_seconds"), Some(0.0));
    assert!(sample(&text, "eye_process_resident_memory_bytes").unwrap() > 1e6);
    assert!(
        text.lines().any(
            |l| l.starts_with("eye_http_request_duration_seconds_count{")
                && l.contains("route=\"/events\"")
                && l.contains("status=\"202\"")
        ),
        "request histogram by route and status:\n{text}"
    );
    assert!(sample(&text, "eye_event_lag_seconds_count").unwrap() >= 2.0);
    // The batch of four waited the configured 100 ms for more, and no longer: nothing
    // more came, and the store is quick.
    let linger = sample(&text, "eye_worker_linger_seconds").expect("the worker's linger");
    assert!((0.1..1.0).contains(&linger), "lingered {linger} s");
    // Failures by reason and type: registered types by name, the rest as `other`.
    for (reason, r#type) in [
        ("missing_field", "other"),
        ("schema_violation", "page interaction/pageview"),
    ] {
        let series = format!(
            "eye_validation_failures_total{{reason=\"{reason}\",type=\"{}\"}} 1",
            r#type
        );
        assert!(text.lines().any(|l| l == series), "{series} in:\n{text}");
    }
}
