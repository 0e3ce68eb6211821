//! Tests of what only the SQLite store has: its two session trees and its upgrades
//! from older versions. What both stores share is in `tests/conformance.rs`.

use super::*;
use crate::testing::{event, event_with_client_id, refused};

async fn count(store: &SqliteStore, table: &'static str) -> i64 {
    store
        .read_with(move |conn| {
            Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
        })
        .await
        .expect("count")
}

/// Every page of `query`, followed through its cursors: (second, name) per event.
async fn walk(store: &SqliteStore, mut query: EventQuery) -> Vec<(i64, String)> {
    let mut seen = Vec::new();
    loop {
        let page = store.events(query.clone()).await.expect("query");
        assert!(page.items.len() <= query.limit as usize);
        seen.extend(
            page.items
                .iter()
                .map(|e| ((e.timestamp.as_micros() / 1_000_000) % 60, e.name.clone())),
        );
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => return seen,
        }
    }
}

// A session's events live partly in the main session tree (merged) and partly in
// the fresh one; its queries must merge both in time order, ties by arrival, in
// both directions, through every page, with other filters applied.
#[tokio::test]
async fn session_queries_read_the_fresh_and_the_merged_session_trees() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let app = store.create_app("test").await.expect("app").id;

    let first = vec![
        event(app, "s1", "pageview", 10),
        event(app, "s2", "pageview", 15),
        event(app, "s1", "cta click", 30),
        event(app, "s1", "pageview", 50),
    ];
    let resent = first[0].clone();
    store.write(Arc::new(first)).await.expect("write");
    store
        .write_with(|conn| {
            let tx = conn.transaction()?;
            merge_fresh_sessions(&tx, 0)?;
            tx.commit()?;
            Ok(())
        })
        .await
        .expect("merge");
    assert_eq!(count(&store, "session_index").await, 4);
    assert_eq!(count(&store, "session_index_fresh").await, 0);

    // Later arrivals, one tied with a merged event (second 30): it comes after it.
    let later = vec![
        event(app, "s1", "pageview", 20),
        event(app, "s1", "pageview", 30),
        event(app, "s2", "cta click", 35),
        event(app, "s1", "cta click", 40),
        resent,
    ];
    let outcome = store.write(Arc::new(later)).await.expect("write");
    assert_eq!((outcome.stored, outcome.duplicates), (4, 1));
    assert_eq!(count(&store, "session_index_fresh").await, 4);

    let s1 = |limit: u32, order: Order| EventQuery {
        session_id: Some("s1".into()),
        limit,
        order,
        ..EventQuery::default()
    };
    let ascending: Vec<(i64, String)> = [
        (10, "pageview"),
        (20, "pageview"),
        (30, "cta click"),
        (30, "pageview"),
        (40, "cta click"),
        (50, "pageview"),
    ]
    .into_iter()
    .map(|(s, n)| (s, n.to_owned()))
    .collect();
    for limit in [1, 2, 4, 100] {
        assert_eq!(
            walk(&store, s1(limit, Order::Asc)).await,
            ascending,
            "limit {limit}"
        );
        let mut descending = ascending.clone();
        descending.reverse();
        assert_eq!(
            walk(&store, s1(limit, Order::Desc)).await,
            descending,
            "limit {limit}"
        );
    }

    let clicks = EventQuery {
        name: Some("cta click".into()),
        ..s1(1, Order::Asc)
    };
    assert_eq!(
        walk(&store, clicks).await,
        vec![(30, "cta click".to_owned()), (40, "cta click".to_owned())]
    );
    let window = EventQuery {
        from: Some(Timestamp::from_micros(ascending_micros(20))),
        to: Some(Timestamp::from_micros(ascending_micros(40))),
        ..s1(2, Order::Desc)
    };
    assert_eq!(
        walk(&store, window).await,
        vec![
            (30, "pageview".to_owned()),
            (30, "cta click".to_owned()),
            (20, "pageview".to_owned())
        ]
    );
    // The other session is untouched by all of this.
    let s2 = EventQuery {
        session_id: Some("s2".into()),
        limit: 10,
        ..EventQuery::default()
    };
    assert_eq!(
        walk(&store, s2).await,
        vec![(15, "pageview".to_owned()), (35, "cta click".to_owned())]
    );
}

// A store written before the session trees existed keeps its sessions: the
// migration copies `events_by_session` into the main tree before dropping it.
#[tokio::test]
async fn upgrading_a_store_keeps_its_sessions_queryable() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut conn = connect(&dir.path().join("eye.db")).expect("connect");
        let tx = old_store(&mut conn, 7);
        for (pk, second) in [(1, 30), (2, 10), (3, 20)] {
            tx.execute(
                "INSERT INTO events (pk, id, app_id, session_id, category, name, data, ts, seq, received_at)
                 VALUES (?1, randomblob(16), 1, 'old-session', 'page interaction', 'pageview', '{}', ?2, 0, 0)",
                params![pk, ascending_micros(second)],
            )
            .expect("event");
        }
        tx.commit().expect("commit");
    }
    let store = SqliteStore::open(dir.path()).expect("open and migrate");
    assert_eq!(count(&store, "session_index").await, 3);
    let query = EventQuery {
        session_id: Some("old-session".into()),
        limit: 2,
        ..EventQuery::default()
    };
    let seconds: Vec<i64> = walk(&store, query)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seconds, vec![10, 20, 30]);
    let indexes: i64 = store
        .read_with(|conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'events_by_session'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .expect("schema");
    assert_eq!(indexes, 0, "the old index is dropped");
}

/// A store as schema `version` left it, with one application (id 1), in an open
/// transaction for the test to add what that version held.
fn old_store(conn: &mut Connection, version: usize) -> rusqlite::Transaction<'_> {
    let tx = conn.transaction().expect("tx");
    for sql in &MIGRATIONS[..version] {
        tx.execute_batch(sql).expect("old migration");
    }
    tx.pragma_update(None, "user_version", version as i64)
        .expect("version");
    tx.execute("INSERT INTO apps (name, created_at) VALUES ('old', 0)", [])
        .expect("app");
    tx
}

#[tokio::test]
async fn a_v7_client_id_resent_across_the_upgrade_is_stored_once() {
    let made_before = Uuid::now_v7().to_string();
    // A UUIDv7 from about the year 2500: made after the upgrade's window closes.
    let made_after = "0f3a0000-0000-7000-8000-000000000001";
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut conn = connect(&dir.path().join("eye.db")).expect("connect");
        let tx = old_store(&mut conn, 8);
        // Both stored by the old rule: the event id is the client id's hash.
        for client_id in [made_before.as_str(), made_after] {
            let (old_id, _) = ids::legacy_twin(1, client_id).expect("a v7 client id");
            tx.execute(
                "INSERT INTO events (id, app_id, client_id, session_id, category, name, data, ts, seq, received_at)
                 VALUES (?1, 1, ?2, 's', 'page interaction', 'pageview', '{}', 0, 0, 0)",
                params![old_id.as_bytes(), client_id],
            )
            .expect("event");
        }
        tx.commit().expect("commit");
    }
    let store = SqliteStore::open(dir.path()).expect("open and migrate");

    let resent = store
        .write(Arc::new(vec![event_with_client_id(1, &made_before)]))
        .await
        .expect("write");
    assert_eq!(
        (resent.stored, resent.duplicates),
        (0, 1),
        "the resend is the stored event"
    );

    let new_id = Uuid::now_v7().to_string();
    let first = store
        .write(Arc::new(vec![event_with_client_id(1, &new_id)]))
        .await
        .expect("write");
    let again = store
        .write(Arc::new(vec![event_with_client_id(1, &new_id)]))
        .await
        .expect("write");
    assert_eq!((first.stored, again.stored, again.duplicates), (1, 0, 1));

    // Queued under the old id before the upgrade, resent after it, in one batch.
    let queued_id = Uuid::now_v7().to_string();
    let mut queued = event_with_client_id(1, &queued_id);
    if let Processed::Event { id, .. } = &mut queued {
        *id = ids::legacy_twin(1, &queued_id).expect("a v7 client id").0;
    }
    let both = store
        .write(Arc::new(vec![queued, event_with_client_id(1, &queued_id)]))
        .await
        .expect("write");
    assert_eq!((both.stored, both.duplicates), (1, 1));

    // The old-rule check is bounded in time: an id made after the window is not
    // looked up (and no client made one before the upgrade).
    let late = store
        .write(Arc::new(vec![event_with_client_id(1, made_after)]))
        .await
        .expect("write");
    assert_eq!(late.stored, 1);
    assert_eq!(count(&store, "events").await, 5);
}

#[tokio::test]
async fn a_refused_v7_event_resent_across_the_upgrade_is_recorded_once() {
    let made_before = Uuid::now_v7().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut conn = connect(&dir.path().join("eye.db")).expect("connect");
        let tx = old_store(&mut conn, 8);
        // An event to make the upgrade record its window, and a refused one,
        // recorded under the old rule's id.
        tx.execute(
            "INSERT INTO events (id, app_id, session_id, category, name, data, ts, seq, received_at)
             VALUES (?1, 1, 's', 'page interaction', 'pageview', '{}', 0, 0, 0)",
            [Uuid::now_v7().as_bytes()],
        )
        .expect("event");
        let (old_id, _) = ids::legacy_twin(1, &made_before).expect("a v7 client id");
        tx.execute(
            "INSERT INTO errors (event_id, app_id, reason, message, raw, received_at, recorded_at)
             VALUES (?1, 1, 'schema_violation', 'refused', '{}', 0, 0)",
            [old_id.as_bytes()],
        )
        .expect("error");
        tx.commit().expect("commit");
    }
    let store = SqliteStore::open(dir.path()).expect("open and migrate");

    let resent = store
        .write(Arc::new(vec![refused(event_with_client_id(
            1,
            &made_before,
        ))]))
        .await
        .expect("write");
    assert_eq!(resent.refused, 0, "the resend is the recorded error");

    // Queued under the old id before the upgrade, resent after it, in one batch.
    let queued_id = Uuid::now_v7().to_string();
    let mut queued = refused(event_with_client_id(1, &queued_id));
    if let Processed::Refused { id, .. } = &mut queued {
        *id = ids::legacy_twin(1, &queued_id).expect("a v7 client id").0;
    }
    let both = store
        .write(Arc::new(vec![
            queued,
            refused(event_with_client_id(1, &queued_id)),
        ]))
        .await
        .expect("write");
    assert_eq!(both.refused, 1);

    // A refused event that never had an old-rule record is recorded once.
    let new_id = Uuid::now_v7().to_string();
    let first = store
        .write(Arc::new(vec![refused(event_with_client_id(1, &new_id))]))
        .await
        .expect("write");
    let again = store
        .write(Arc::new(vec![refused(event_with_client_id(1, &new_id))]))
        .await
        .expect("write");
    assert_eq!((first.refused, again.refused), (1, 0));
    assert_eq!(count(&store, "errors").await, 3);
}

#[tokio::test]
async fn a_new_store_has_no_old_rule_ids_to_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open");
    assert_eq!(count(&store, "store_meta").await, 0);
}

fn ascending_micros(second: i64) -> i64 {
    Timestamp::parse("2026-01-01T00:00:00Z")
        .expect("time")
        .as_micros()
        + second * 1_000_000
}

/// The query plan of `query`'s first page, as SQLite's `EXPLAIN QUERY PLAN` gives it.
async fn plan(store: &SqliteStore, query: EventQuery) -> String {
    store
        .read_with(move |conn| {
            let indexed = events::has_indexed_field(conn, &query)?;
            let (sql, params) = events::events_sql(&query, 100, indexed);
            // A statement run reloads a schema another connection changed (a new
            // index); EXPLAIN alone plans with the one this connection last read.
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
                row.get::<_, String>(3)
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.join("\n"))
        })
        .await
        .expect("plan")
}

// `name` alone walked every event newest first until it had a page (1.64 s on 10M
// events for a name no event has): it has an index of its own.
#[tokio::test]
async fn a_name_without_a_category_is_found_through_its_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let by_name = EventQuery {
        name: Some("pageview".into()),
        ..Default::default()
    };
    let plan = plan(&store, by_name).await;
    assert!(plan.contains("events_by_name"), "{plan}");
}

// Analysts' queries run at most `QUERY_SLOTS` at once; the wait for a slot counts
// against the budget, so a query that finds every slot busy answers `OverBudget` in
// time instead of queueing without end. The store's own lookups take no slot.
#[tokio::test]
async fn a_query_waits_for_a_slot_within_its_budget_and_lookups_never_wait() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = SqliteStore::open(dir.path()).expect("open");
    store.set_query_budget(Duration::from_millis(100));
    store.create_app("web").await.expect("app");
    let busy = Arc::clone(&store.query_slots)
        .try_acquire_many_owned(QUERY_SLOTS as u32)
        .expect("every slot");
    let started = std::time::Instant::now();
    let answer = store.events(EventQuery::default()).await;
    assert!(matches!(answer, Err(StoreError::OverBudget)), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A lookup on the ingest path answers while every slot is taken.
    let apps = store.list_apps().await.expect("lookup");
    assert_eq!(apps.len(), 1);
    drop(busy);
    assert!(store.events(EventQuery::default()).await.is_ok());
}

// A `data.` filter on an indexed field walks its index (`events_field_<id>`), alone or
// with a type; before the index is built it scans.
#[tokio::test]
async fn a_filter_on_an_indexed_field_uses_its_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let by_path = |category: Option<&str>, value: &str| EventQuery {
        data: vec![DataFilter {
            path: vec!["form".into(), "first_name".into()],
            value: value.into(),
        }],
        category: category.map(str::to_owned),
        name: category.map(|_| "pageview".to_owned()),
        order: Order::Desc,
        ..Default::default()
    };
    let before = plan(&store, by_path(None, "Ada")).await;
    assert!(!before.contains("events_field_"), "{before}");
    let event_type = eye_core::EventType {
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
    for query in [
        by_path(None, "Ada"),
        by_path(Some("page interaction"), "Ada"),
        by_path(None, "42"),
    ] {
        let plan = plan(&store, query.clone()).await;
        assert!(plan.contains("events_field_"), "{query:?}: {plan}");
    }
}
