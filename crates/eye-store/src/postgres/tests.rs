//! Tests of what only the PostgreSQL store has: its upgrades
//! from older versions. What both stores share is in `tests/conformance.rs`.

use super::partitions::load;
use super::*;
use crate::lifecycle::{Cutoffs, Lifecycle, Removed};
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
    let schema = schema_name("eye_store_upgrade");
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let url = in_schema(&url, &schema);
    let new = PgStore::connect(&url).await.expect("a new store");
    assert_eq!(new.legacy_until, None, "a new store has no old-rule ids");
    drop(new);
    client
        .batch_execute(&format!(
            "DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .expect("an empty schema");
    at_version(&client, &schema, 5).await;

    let stored_before = Uuid::now_v7().to_string();
    let refused_before = Uuid::now_v7().to_string();
    client
        .batch_execute(&format!(
            "SET search_path = {schema};
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

/// Makes `schema` a store at schema version `version`, as a binary of that time left it.
async fn at_version(client: &tokio_postgres::Client, schema: &str, version: usize) {
    client
        .batch_execute(&format!(
            "SET search_path = {schema};
             CREATE TABLE eye_migrations (version INT PRIMARY KEY);"
        ))
        .await
        .expect("the migrations table");
    for (index, sql) in MIGRATIONS[..version].iter().enumerate() {
        client.batch_execute(sql).await.expect("an old migration");
        client
            .execute(
                "INSERT INTO eye_migrations (version) VALUES ($1)",
                &[&((index + 1) as i32)],
            )
            .await
            .expect("its record");
    }
    client
        .batch_execute("SET search_path = public")
        .await
        .expect("back to the default schema");
}

/// A fresh schema name for one test.
fn schema_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{prefix}_{nanos:x}")
}

/// A version-7 store with events (unpartitioned) upgrades: its events become the first
/// partition (no row copied), their ids keep deduplicating, new events go to new
/// partitions made ahead, and retention drops the first partition whole once all of it
/// is expired, taking exactly what it held from the counters.
#[tokio::test]
async fn an_unpartitioned_store_with_events_upgrades_and_its_partitions_expire_whole() {
    let Some((client, url)) = test_database().await else {
        return;
    };
    let schema = schema_name("eye_store_partitions");
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    at_version(&client, &schema, 7).await;
    let old_time = Timestamp::now().as_micros() - 3 * 86_400_000_000;
    let old_ids: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    client
        .execute(
            &format!("INSERT INTO {schema}.apps (id, name, created_at) VALUES (1, 'old', 0)"),
            &[],
        )
        .await
        .expect("an application");
    for (i, id) in old_ids.iter().enumerate() {
        client
            .execute(
                &format!(
                    "INSERT INTO {schema}.events (id, app_id, session_id, category, name, data, ts, received_at)
                     VALUES ($1, 1, $2, 'page interaction', 'pageview', '{{}}', $3, $3)"
                ),
                &[id, &format!("old-{}", i % 5), &(old_time + i as i64)],
            )
            .await
            .expect("an old event");
    }
    let url = in_schema(&url, &schema);
    let store = PgStore::connect(&url).await.expect("the upgrade");
    // The old store's counters, as its worker kept them: written through the store
    // after the upgrade would count twice, so they are set by hand.
    client
        .batch_execute(&format!(
            "SET search_path = {schema};
             INSERT INTO sessions (session_id, first_seen, last_seen, event_count)
                 SELECT session_id, min(ts), max(ts), count(*) FROM events GROUP BY session_id;
             INSERT INTO session_apps (session_id, app_id) SELECT DISTINCT session_id, app_id FROM events;
             INSERT INTO type_counts (category, name, events) SELECT category, name, count(*) FROM events GROUP BY 1, 2;
             INSERT INTO event_counts (minute, category, name, app_id, events)
                 SELECT ts - ts % 60000000, category, name, app_id, count(*) FROM events GROUP BY 1, 2, 3, 4;
             SET search_path = public;"
        ))
        .await
        .expect("the old counters");

    let received = |mut processed: Processed, at: i64, id: Option<Uuid>| {
        if let Processed::Event {
            received_at,
            id: own,
            ..
        } = &mut processed
        {
            *received_at = at;
            if let Some(id) = id {
                *own = id;
            }
        }
        processed
    };
    let partitions = load(&store.client().await.expect("client"))
        .await
        .expect("partitions");
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    assert_eq!(partitions[0].name, "events_before_partitioning");
    let upgraded_at = partitions[0].hi;

    // An old event resent, received now: its id is still known.
    let event = crate::testing::event(1, "old-0", "pageview", 0);
    let resend = received(event, upgraded_at + 1, Some(old_ids[0]));
    let outcome = store.write(Arc::new(vec![resend])).await.expect("write");
    assert_eq!((outcome.stored, outcome.duplicates), (0, 1));
    // New events: stored in a partition made for them, and the next one made ahead.
    let new = (0..10)
        .map(|i| {
            let event = crate::testing::event(1, &format!("new-{}", i % 2), "pageview", i);
            received(event, upgraded_at + 10_000_000, None)
        })
        .collect();
    let outcome = store.write(Arc::new(new)).await.expect("write");
    assert_eq!(outcome.stored, 10);
    let partitions = load(&store.client().await.expect("client"))
        .await
        .expect("partitions");
    assert_eq!(
        partitions.len(),
        3,
        "the first, today's, tomorrow's: {partitions:?}"
    );
    assert_eq!(partitions[1].lo, upgraded_at);

    // A query from a time skips the partitions received more than a day before it.
    let query = EventQuery {
        from: Some(Timestamp::from_micros(upgraded_at + 2 * 86_400_000_000)),
        ..EventQuery::default()
    };
    let sql = events::events_sql(&query, 10);
    let explain = Sql {
        text: format!("EXPLAIN {}", sql.text),
        params: sql.params,
    };
    let plan: Vec<String> = explain
        .query(&store.client().await.expect("client"))
        .await
        .expect("explain")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(
        !plan.contains("events_before_partitioning"),
        "the old partition is pruned: {plan}"
    );

    // Everything received before the upgrade expired: the first partition is dropped
    // whole; the rest is kept.
    let cutoff = upgraded_at;
    let removed = store
        .expire_events(&Cutoffs(vec![(1, cutoff)]), 1_000)
        .await
        .expect("expire");
    assert_eq!((removed.events, removed.sessions), (50, 5));
    client
        .batch_execute(&format!("SET search_path = {schema}"))
        .await
        .expect("path");
    let count = |sql: &str| {
        let sql = format!("SELECT ({sql})::bigint");
        let client = &client;
        async move {
            let n: i64 = client.query_one(&sql, &[]).await.expect(&sql).get(0);
            n
        }
    };
    assert_eq!(count("SELECT count(*) FROM event_partitions").await, 2);
    assert_eq!(
        count("SELECT count(*) FROM pg_class WHERE relname = 'events_before_partitioning' AND relnamespace = current_schema()::regnamespace").await,
        0,
        "the partition is dropped"
    );
    assert_eq!(count("SELECT count(*) FROM event_ids").await, 10);
    assert_eq!(count("SELECT count(*) FROM events").await, 10);
    assert_eq!(count("SELECT count(*) FROM sessions").await, 2);
    assert_eq!(
        count("SELECT coalesce(sum(events), 0) FROM type_counts").await,
        10
    );
    assert_eq!(
        count("SELECT coalesce(sum(events), 0) FROM event_counts").await,
        10
    );
    assert_eq!(count("SELECT count(*) FROM session_apps").await, 2);
    // Nothing more is expired; the old event's id is free again.
    let again = store
        .expire_events(&Cutoffs(vec![(1, cutoff)]), 1_000)
        .await
        .expect("expire");
    assert_eq!(again, Removed::default());

    // A late event received in the dropped range gets a partition again.
    let late = received(
        crate::testing::event(1, "late", "pageview", 0),
        old_time,
        None,
    );
    let outcome = store.write(Arc::new(vec![late])).await.expect("write");
    assert_eq!(outcome.stored, 1);
    drop(store);
    client
        .batch_execute(&format!(
            "SET search_path = public; DROP SCHEMA {schema} CASCADE"
        ))
        .await
        .expect("drop the schema");
}

/// The id a version-5 store gave a UUIDv7 client id of application 1.
fn old_rule_id(client_id: &str) -> Uuid {
    eye_core::ids::legacy_twin(1, client_id)
        .expect("a v7 client id")
        .0
}

// A `data.` filter on an indexed field walks its index on every partition, alone or
// with a type; the index is built on the partitions that exist and made on new ones.
#[tokio::test]
async fn a_filter_on_an_indexed_field_uses_its_index_on_every_partition() {
    let Some((client, url)) = test_database().await else {
        return;
    };
    let schema = schema_name("eye_store_indexed");
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let store = PgStore::connect(&in_schema(&url, &schema))
        .await
        .expect("store");
    let app = store.create_app("web").await.expect("app").id;
    store
        .write(Arc::new(vec![crate::testing::event(
            app, "s", "pageview", 1,
        )]))
        .await
        .expect("write");
    let event_type = EventType {
        category: "page interaction".into(),
        name: "pageview".into(),
    };
    let path = eye_core::FieldPath::parse("/form/first_name").expect("path");
    store
        .set_indexed_fields(&event_type, &[path])
        .await
        .expect("declare");
    for index in store.pending_field_indexes().await.expect("pending") {
        assert!(store.build_field_index(&index).await.expect("build"));
    }
    let query = |category: Option<&str>| EventQuery {
        data: vec![DataFilter {
            path: vec!["form".into(), "first_name".into()],
            value: "Ada".into(),
        }],
        category: category.map(str::to_owned),
        order: Order::Desc,
        ..EventQuery::default()
    };
    let reader = store.client().await.expect("client");
    // Planned as it would be with many rows: the table is tiny here.
    reader
        .batch_execute("SET enable_seqscan = off")
        .await
        .expect("set");
    for query in [query(None), query(Some("page interaction"))] {
        let sql = events::events_sql(&query, 10);
        let explain = Sql {
            text: format!("EXPLAIN {}", sql.text),
            params: sql.params,
        };
        let plan: Vec<String> = explain
            .query(&reader)
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("events_field_"), "{query:?}: {plan}");
        assert!(!plan.contains("Seq Scan on events"), "{plan}");
    }
    // The partitioned index is valid: every partition has its part.
    let valid: bool = client
        .query_one(
            &format!(
                "SELECT bool_and(x.indisvalid) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid \
                 WHERE c.relname LIKE 'events_field_%' AND c.relnamespace = '{schema}'::regnamespace"
            ),
            &[],
        )
        .await
        .expect("valid")
        .get(0);
    assert!(valid);
    drop(reader);
    drop(store);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop");
}
