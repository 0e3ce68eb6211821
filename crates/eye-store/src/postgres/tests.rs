//! Tests of what only the PostgreSQL store has: its upgrades
//! from older versions. What both stores share is in `tests/conformance.rs`.

use super::*;
use crate::testing::{event_with_client_id, refused};

/// A client on the test database, or `None` (the test is skipped) when PostgreSQL is
/// not there, except in CI, where that fails the test.
async fn test_database() -> Option<(tokio_postgres::Client, String)> {
    let url = std::env::var("EYE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match tokio_postgres::connect(&url, NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            Some((client, url))
        }
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is required in CI: {error}"
            );
            // Past the test harness's capture: a skip shows in `cargo test`'s output.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: PostgreSQL is not reachable ({error})"
            );
            None
        }
    }
}

/// Client ids' events, stored and refused under the old id rule by a version-5 store,
/// resent after the upgrade: each is kept once. Also the messages queued before the
/// upgrade (old ids) and their resends in one worker batch.
#[tokio::test]
async fn v7_client_ids_resent_across_the_upgrade_are_kept_once() {
    let Some((client, url)) = test_database().await else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let schema = format!("eye_store_upgrade_{nanos:x}");
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let url = in_schema(&url, &schema);
    let new = PgStore::connect(&url).await.expect("a new store");
    assert_eq!(new.legacy_until, None, "a new store has no old-rule ids");
    drop(new);

    let stored_before = Uuid::now_v7().to_string();
    let refused_before = Uuid::now_v7().to_string();
    client
        .batch_execute(&format!(
            "SET search_path = {schema};
             DROP TABLE store_meta;
             DROP TABLE erasures;
             DROP INDEX events_by_app_received;
             DROP INDEX errors_by_session;
             ALTER TABLE apps DROP COLUMN retention;
             DELETE FROM eye_migrations WHERE version >= 6;
             INSERT INTO apps (id, name, created_at) VALUES (1, 'old', 0);
             INSERT INTO events (id, app_id, client_id, session_id, category, name, data, ts, received_at)
                 VALUES ('{}', 1, '{stored_before}', 's', 'page interaction', 'pageview', '{{}}', 0, 0);
             INSERT INTO errors (event_id, app_id, reason, message, raw, received_at, recorded_at)
                 VALUES ('{}', 1, 'schema_violation', 'refused', '{{}}', 0, 0);",
            old_rule_id(&stored_before),
            old_rule_id(&refused_before),
        ))
        .await
        .expect("a version-5 store");
    let store = PgStore::connect(&url).await.expect("upgrade");
    assert!(store.legacy_until.is_some(), "the upgrade opened a window");
    let write = |batch: Vec<Processed>| store.write(Arc::new(batch));

    let resent = write(vec![
        event_with_client_id(1, &stored_before),
        refused(event_with_client_id(1, &refused_before)),
    ])
    .await
    .expect("write");
    assert_eq!(
        (resent.stored, resent.duplicates, resent.refused),
        (0, 1, 0),
        "the resends are the stored event and the recorded error"
    );

    let queued_event = Uuid::now_v7().to_string();
    let queued_error = Uuid::now_v7().to_string();
    let with_old_id = |mut processed: Processed, client_id: &str| {
        match &mut processed {
            Processed::Event { id, .. } | Processed::Refused { id, .. } => {
                *id = old_rule_id(client_id);
            }
        }
        processed
    };
    let both = write(vec![
        with_old_id(event_with_client_id(1, &queued_event), &queued_event),
        with_old_id(
            refused(event_with_client_id(1, &queued_error)),
            &queued_error,
        ),
        event_with_client_id(1, &queued_event),
        refused(event_with_client_id(1, &queued_error)),
    ])
    .await
    .expect("write");
    assert_eq!(
        (both.stored, both.duplicates, both.refused),
        (1, 1, 1),
        "a queued old-rule message and its resend in one batch are kept once"
    );

    let rows = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM {schema}.events), (SELECT count(*) FROM {schema}.errors)"
            ),
            &[],
        )
        .await
        .expect("counts");
    assert_eq!((rows.get::<_, i64>(0), rows.get::<_, i64>(1)), (2, 2));
    drop(store);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop the schema");
}

/// The id a version-5 store gave a UUIDv7 client id of application 1.
fn old_rule_id(client_id: &str) -> Uuid {
    eye_core::ids::legacy_twin(1, client_id)
        .expect("a v7 client id")
        .0
}
