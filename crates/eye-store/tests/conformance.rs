//! One suite, two back ends: the store's contract checked against the embedded SQLite
//! store and against PostgreSQL (at `EYE_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, each test in a schema of its own; skipped
//! when PostgreSQL does not answer, a failure with `CI=true`).
//!
//! Each case runs against every back end and names the back end in its failures.

use std::io::Write;
use std::sync::Arc;

use eye_core::auth::{Scope, TokenHash};
use eye_core::{EventType, IncomingEvent, Refusal, Timestamp};
use eye_store::{
    AuditEntry, DataFilter, EventQuery, NewLogin, PgStore, Processed, RefusedFilter, RefusedKey,
    RefusedQuery, RefusedStatus, Resolution, RowEncoder, SessionQuery, SqliteStore, StatsQuery,
    Store, StoreError, WriteOutcome,
};
use serde_json::value::RawValue;
use uuid::Uuid;

struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    /// The PostgreSQL schema to drop afterwards: (database URL, schema).
    schema: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn clean_up(self) {
        drop(self.store);
        if let Some((url, schema)) = self.schema
            && let Ok((client, connection)) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await;
        }
    }
}

/// Says, past the test harness's capture, that a back end was skipped.
fn skip(what: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {what}");
}

fn sqlite() -> Backend {
    sqlite_with(None)
}

/// The embedded store, its reads bounded by `budget` when one is given.
fn sqlite_with(budget: Option<std::time::Duration>) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    if let Some(budget) = budget {
        store.set_query_budget(budget);
    }
    Backend {
        name: "sqlite",
        store: Arc::new(store),
        schema: None,
        _dir: Some(dir),
    }
}

async fn postgres() -> Option<Backend> {
    postgres_with(None).await
}

/// The PostgreSQL store, its reads bounded by `budget` when one is given.
async fn postgres_with(budget: Option<std::time::Duration>) -> Option<Backend> {
    let url = std::env::var("EYE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (client, connection) = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(error) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is required in CI at {url}: {error}"
            );
            skip(&format!(
                "the PostgreSQL store: {url} does not answer ({error})"
            ));
            return None;
        }
    };
    tokio::spawn(connection);
    // A schema of its own for every test: they run at once.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!(
        "eye_store_test_{}_{}_{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let mut store = PgStore::connect(&eye_store::postgres::in_schema(&url, &schema))
        .await
        .unwrap();
    if let Some(budget) = budget {
        store.set_query_budget(budget).unwrap();
    }
    Some(Backend {
        name: "postgres",
        store: Arc::new(store),
        schema: Some((url, schema)),
        _dir: None,
    })
}

async fn backends() -> Vec<Backend> {
    let mut all = vec![sqlite()];
    all.extend(postgres().await);
    all
}

/// 2026-01-01T00:00:00Z plus `seconds`, in microseconds.
fn at(seconds: i64) -> i64 {
    1_767_225_600_000_000 + seconds * 1_000_000
}

fn incoming(session: &str, name: &str, second: i64, data: &str, seq: Option<i64>) -> IncomingEvent {
    let seq = seq.map(|s| format!(r#","seq":{s}"#)).unwrap_or_default();
    let text = format!(
        r#"{{"session_id":"{session}","category":"page interaction","name":"{name}","data":{data},"timestamp":{}{seq}}}"#,
        serde_json::to_string(&Timestamp::from_micros(at(second)).to_string()).unwrap()
    );
    IncomingEvent::parse(&RawValue::from_string(text).unwrap()).unwrap()
}

fn event(app_id: i64, session: &str, name: &str, second: i64) -> Processed {
    stored(
        app_id,
        incoming(session, name, second, r#"{"path":"/"}"#, None),
    )
}

fn stored(app_id: i64, event: IncomingEvent) -> Processed {
    Processed::Event {
        id: Uuid::now_v7(),
        app_id,
        received_at: at(0),
        event,
        schema_version: None,
        warning: None,
    }
}

fn refused(app_id: i64, session: &str) -> Processed {
    let event = incoming(session, "submit", 1, r#"{"form":1}"#, None);
    Processed::Refused {
        id: Uuid::now_v7(),
        app_id,
        received_at: at(0),
        refusal: Refusal::new("schema_violation", "`form` must be an object", Some("data")),
        raw: event.to_wire().to_string(),
        event: Some(event),
    }
}

async fn write(store: &dyn Store, batch: Vec<Processed>) -> WriteOutcome {
    store.write(Arc::new(batch)).await.unwrap()
}

async fn app(store: &dyn Store, name: &str) -> i64 {
    store.create_app(name).await.unwrap().id
}

fn names(page: &[eye_store::StoredEvent]) -> Vec<String> {
    page.iter().map(|e| e.name.clone()).collect()
}

#[tokio::test]
async fn an_event_is_stored_once_and_its_session_counts_only_what_was_inserted() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let mobile = app(store, "mobile").await;
        let batch = vec![
            event(web, "s1", "view", 30),
            event(mobile, "s1", "click", 10),
            event(web, "s2", "view", 20),
        ];
        let outcome = write(store, batch.clone()).await;
        assert_eq!((outcome.stored, outcome.duplicates), (3, 0), "{name}");
        // The same batch again (a redelivery): nothing changes.
        let again = write(store, batch).await;
        assert_eq!((again.stored, again.duplicates), (0, 3), "{name}");

        let session = store.session("s1").await.unwrap().expect("session s1");
        assert_eq!(session.event_count, 2, "{name}");
        assert_eq!(session.first_seen.as_micros(), at(10), "{name}");
        assert_eq!(session.last_seen.as_micros(), at(30), "{name}");
        assert_eq!(session.apps, vec!["mobile", "web"], "{name}");
        assert!(store.session("nobody").await.unwrap().is_none(), "{name}");

        let stats = store.stats(StatsQuery::default()).await.unwrap();
        assert_eq!(
            stats.iter().map(|r| r.count).sum::<i64>(),
            3,
            "{name}: {stats:?}"
        );
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn a_sessions_events_come_in_time_order_ties_by_seq_and_page_by_cursor() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let data = r#"{"path":"/"}"#;
        write(
            store,
            vec![
                stored(web, incoming("s", "third", 5, data, Some(2))),
                stored(web, incoming("s", "first", 1, data, None)),
                stored(web, incoming("s", "second", 5, data, Some(1))),
                stored(web, incoming("other", "elsewhere", 3, data, None)),
            ],
        )
        .await;
        let mut query = EventQuery {
            session_id: Some("s".into()),
            limit: 2,
            ..Default::default()
        };
        let first = store.events(query.clone()).await.unwrap();
        assert_eq!(names(&first.items), ["first", "second"], "{name}");
        query.after = Some(first.next.expect("a second page"));
        let second = store.events(query).await.unwrap();
        assert_eq!(names(&second.items), ["third"], "{name}");
        assert!(second.next.is_none(), "{name}");

        let newest_first = store
            .events(EventQuery {
                session_id: Some("s".into()),
                order: eye_store::Order::Desc,
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            names(&newest_first.items),
            ["third", "second", "first"],
            "{name}"
        );
        let one = store.event(first.items[0].id).await.unwrap().unwrap();
        assert_eq!(one.name, "first", "{name}");
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn filters_by_type_application_time_and_payload_select_the_same_events() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let shop = app(store, "shop").await;
        write(
            store,
            vec![
                stored(
                    web,
                    incoming("a", "view", 1, r#"{"path":"/","n":7,"ok":true}"#, None),
                ),
                stored(shop, incoming("b", "view", 2, r#"{"path":"/cart"}"#, None)),
                stored(
                    web,
                    incoming(
                        "c",
                        "click",
                        3,
                        r#"{"path":"/cart","form":{"x":"y"}}"#,
                        None,
                    ),
                ),
            ],
        )
        .await;
        let select = |query: EventQuery| async move {
            let query = EventQuery {
                limit: 100,
                ..query
            };
            names(&store.events(query).await.unwrap().items)
        };
        let filter = |path: &[&str], value: &str| DataFilter {
            path: path.iter().map(|s| s.to_string()).collect(),
            value: value.into(),
        };
        let by_name = EventQuery {
            name: Some("view".into()),
            ..Default::default()
        };
        assert_eq!(select(by_name).await, ["view", "view"], "{name}");
        let by_app = EventQuery {
            app: Some("shop".into()),
            ..Default::default()
        };
        assert_eq!(select(by_app).await, ["view"], "{name}");
        let by_time = EventQuery {
            from: Some(Timestamp::from_micros(at(2))),
            to: Some(Timestamp::from_micros(at(3))),
            ..Default::default()
        };
        assert_eq!(
            select(by_time).await,
            ["view"],
            "{name}: from inclusive, to exclusive"
        );
        let by_path = EventQuery {
            data: vec![filter(&["path"], "/cart")],
            ..Default::default()
        };
        assert_eq!(select(by_path).await, ["view", "click"], "{name}");
        let nested = EventQuery {
            data: vec![filter(&["form", "x"], "y")],
            ..Default::default()
        };
        assert_eq!(select(nested).await, ["click"], "{name}");
        let number = EventQuery {
            data: vec![filter(&["n"], "7")],
            ..Default::default()
        };
        assert_eq!(
            select(number).await,
            ["view"],
            "{name}: a number matches its text"
        );
        let boolean = EventQuery {
            data: vec![filter(&["ok"], "true")],
            ..Default::default()
        };
        assert_eq!(
            select(boolean).await,
            ["view"],
            "{name}: a boolean matches its text"
        );

        let sessions = store
            .sessions(SessionQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .0;
        let ids: Vec<_> = sessions.iter().map(|s| s.session_id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a"], "{name}: most recently active first");
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn a_read_past_the_query_budget_is_stopped_and_says_so_but_an_export_is_not() {
    let budget = Some(std::time::Duration::from_millis(1));
    let mut all = vec![sqlite_with(budget)];
    all.extend(postgres_with(budget).await);
    for backend in all {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        // Enough events that a payload filter matching none of them scans for well
        // over a millisecond.
        for chunk in 0..10 {
            let batch = (0..5_000)
                .map(|i| {
                    let n = chunk * 5_000 + i;
                    let data = format!(r#"{{"path":"/p{n}","form":{{"name":"x{n}"}}}}"#);
                    stored(
                        web,
                        incoming(&format!("s{}", n % 500), "view", n, &data, None),
                    )
                })
                .collect();
            write(store, batch).await;
        }
        let nothing = EventQuery {
            data: vec![DataFilter {
                path: vec!["path".into()],
                value: "/nomatch".into(),
            }],
            limit: 10,
            ..Default::default()
        };
        let answer = store.events(nothing.clone()).await;
        assert!(
            matches!(answer, Err(StoreError::OverBudget)),
            "{name}: {:?}",
            answer.map(|page| page.items.len())
        );
        // An export is not bounded: it streams every match, however long it takes. (On
        // SQLite it gets the reader the stopped query left, the last one pooled: so
        // that reader no longer carries the stopped query's deadline.)
        let everything = EventQuery {
            limit: 1,
            ..Default::default()
        };
        let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
        let encode: RowEncoder = Box::new(|_, buffer: &mut Vec<u8>| buffer.push(b'.'));
        let export = store.export_events(everything, None, encode, sender);
        let count = async {
            let mut dots = 0;
            while let Some(chunk) = receiver.recv().await {
                dots += chunk.len();
            }
            dots
        };
        let (exported, dots) = tokio::join!(export, count);
        exported.unwrap();
        assert_eq!(dots, 50_000, "{name}");
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn an_export_streams_every_match_in_order() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let batch: Vec<Processed> = (0..50)
            .map(|i| event(web, "s", &format!("e{i:02}"), i))
            .collect();
        write(store, batch).await;
        let (sink, mut chunks) = tokio::sync::mpsc::channel(4);
        let encode: RowEncoder = Box::new(|row, buffer| {
            buffer.extend_from_slice(row.name.as_bytes());
            buffer.push(b'\n');
        });
        let query = EventQuery {
            session_id: Some("s".into()),
            ..Default::default()
        };
        let export = store.export_events(query, Some(40), encode, sink);
        let collect = async {
            let mut text = Vec::new();
            while let Some(chunk) = chunks.recv().await {
                text.extend(chunk);
            }
            String::from_utf8(text).unwrap()
        };
        let (result, text) = tokio::join!(export, collect);
        result.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 40, "{name}: max_events caps the export");
        assert_eq!((lines[0], lines[39]), ("e00", "e39"), "{name}");
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn refused_events_are_recorded_once_counted_dismissed_and_reprocessed_once() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let mut warned = event(web, "s", "view", 1);
        if let Processed::Event { warning, .. } = &mut warned {
            *warning = Some(Refusal::new("schema_violation", "shadow", None));
        }
        let batch = vec![refused(web, "s"), refused(web, "t"), warned];
        let outcome = write(store, batch.clone()).await;
        assert_eq!(
            (outcome.stored, outcome.refused, outcome.warnings),
            (1, 2, 1),
            "{name}"
        );
        let again = write(store, batch).await;
        assert_eq!(
            (again.refused, again.warnings),
            (0, 0),
            "{name}: recorded once"
        );

        let open = RefusedFilter {
            status: Some(RefusedStatus::Open),
            ..Default::default()
        };
        let summary = store.refused_summary(open.clone()).await.unwrap();
        assert_eq!(summary.total, 2, "{name}");
        let listed = store
            .refused_events(RefusedQuery {
                filter: RefusedFilter::default(),
                limit: 10,
                before_id: None,
            })
            .await
            .unwrap()
            .items;
        assert_eq!(listed.len(), 3, "{name}: two refusals and a warning");

        let first = store.open_refusals(open.clone(), 0, 10).await.unwrap();
        assert_eq!(first.len(), 2, "{name}");
        let dismissed = store
            .dismiss_refused(RefusedKey::Number(first[1].id))
            .await
            .unwrap();
        assert_eq!(dismissed.status, RefusedStatus::Dismissed, "{name}");
        let found = store
            .refused_event(RefusedKey::EventId(first[0].event_id))
            .await
            .unwrap();
        assert_eq!(found.map(|r| r.status), Some(RefusedStatus::Open), "{name}");

        // Reprocessing the open one as fixed stores its event with the refused id, once.
        let fixed = |error: &eye_store::OpenRefusal| Resolution::Fixed {
            error_id: error.id,
            event: Box::new(Processed::Event {
                id: error.event_id,
                app_id: error.app_id,
                received_at: error.received_at,
                event: incoming("s", "submit", 1, r#"{"form":{}}"#, None),
                schema_version: None,
                warning: None,
            }),
        };
        let resolutions = vec![fixed(&first[0])];
        let done = store.resolve_refusals(resolutions).await.unwrap();
        assert_eq!(done.reprocessed, 1, "{name}");
        let twice = store
            .resolve_refusals(vec![fixed(&first[0])])
            .await
            .unwrap();
        assert_eq!(
            twice.reprocessed, 0,
            "{name}: only an open record becomes an event"
        );
        let session = store.session("s").await.unwrap().unwrap();
        assert_eq!(
            session.event_count, 2,
            "{name}: the warned event and the fixed one"
        );
        assert!(
            store.open_refusals(open, 0, 10).await.unwrap().is_empty(),
            "{name}"
        );
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn schemas_are_versioned_per_type_and_removed_without_losing_versions() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let signup = EventType {
            category: "form".into(),
            name: "signup".into(),
        };
        let schema = r#"{"type":"object"}"#.to_owned();
        let (first, created) = store
            .put_schema(&signup, schema.clone(), None)
            .await
            .unwrap();
        assert!(created, "{name}");
        let (same, created) = store.put_schema(&signup, schema, None).await.unwrap();
        assert!(
            !created && same.version == first.version,
            "{name}: identical adds nothing"
        );
        let (second, created) = store
            .put_schema(
                &signup,
                r#"{"type":"object","required":["a"]}"#.into(),
                Some(eye_core::schema::SchemaMode::Shadow),
            )
            .await
            .unwrap();
        assert!(created && second.version == first.version + 1, "{name}");
        assert_eq!(second.mode, eye_core::schema::SchemaMode::Shadow, "{name}");
        let active = store.active_types().await.unwrap();
        assert!(active.iter().any(|t| t.event_type == signup), "{name}");

        store.delete_schema(&signup).await.unwrap();
        assert!(
            store.schema(&signup, None).await.unwrap().is_none(),
            "{name}"
        );
        let kept = store.schema(&signup, Some(first.version)).await.unwrap();
        assert!(kept.is_some(), "{name}: old versions are kept");
        let again = store.delete_schema(&signup).await;
        assert!(
            matches!(again, Err(StoreError::NotFound(_))),
            "{name}: {again:?}"
        );
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn applications_tokens_users_and_logins_keep_their_rules() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = store.create_app("web").await.unwrap();
        let taken = store.create_app("web").await;
        assert!(
            matches!(taken, Err(StoreError::Conflict(_))),
            "{name}: {taken:?}"
        );
        let hash = TokenHash::of("eye_i_secret");
        let id = store
            .create_token(hash, Scope::Ingest, Some(web.id), Some("ci"))
            .await
            .unwrap();
        let grant = store.authenticate(hash).await.unwrap().expect("a grant");
        assert_eq!(
            (grant.token_id, grant.scope, grant.app_id),
            (id, Scope::Ingest, Some(web.id)),
            "{name}"
        );
        store.revoke_app("web").await.unwrap();
        assert!(
            store.authenticate(hash).await.unwrap().is_none(),
            "{name}: revoked with its app"
        );
        let missing = store.revoke_token(9_999).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{name}");

        let user = store.create_user("a@b.co", "hash", "admin").await.unwrap();
        let twice = store.create_user("a@b.co", "hash", "admin").await;
        assert!(matches!(twice, Err(StoreError::Conflict(_))), "{name}");
        let login = TokenHash::of("cookie");
        let now = Timestamp::from_micros(at(0));
        store
            .create_login(NewLogin {
                hash: login,
                user_id: user,
                csrf: "csrf".into(),
                created_at: now,
                expires_at: Timestamp::from_micros(at(60)),
            })
            .await
            .unwrap();
        let found = store
            .login(login, now)
            .await
            .unwrap()
            .expect("a live login");
        assert_eq!(found.user.email, "a@b.co", "{name}");
        let later = Timestamp::from_micros(at(61));
        assert!(
            store.login(login, later).await.unwrap().is_none(),
            "{name}: expired"
        );
        store.delete_login(login).await.unwrap();
        assert!(
            store.login(login, now).await.unwrap().is_none(),
            "{name}: logged out"
        );

        for (second, action) in [(1, "first"), (2, "second")] {
            let entry = AuditEntry {
                at: Timestamp::from_micros(at(second)),
                actor: "cli:test".into(),
                action: action.into(),
                target: "app:web".into(),
                details: None,
            };
            store.audit(entry).await.unwrap();
        }
        let log = store.audit_log(1).await.unwrap();
        assert_eq!(log.len(), 1, "{name}");
        assert_eq!(log[0].action, "second", "{name}: newest first");
        backend.clean_up().await;
    }
}

fn received(app_id: i64, session: &str, name: &str, second: i64, received_at: i64) -> Processed {
    let mut processed = event(app_id, session, name, second);
    if let Processed::Event {
        received_at: at, ..
    } = &mut processed
    {
        *at = received_at;
    }
    processed
}

async fn names_of(store: &dyn Store, session: &str) -> Vec<String> {
    let query = EventQuery {
        session_id: Some(session.into()),
        limit: 100,
        ..Default::default()
    };
    names(&store.events(query).await.unwrap().items)
}

async fn total(store: &dyn Store) -> i64 {
    let stats = store.stats(StatsQuery::default()).await.unwrap();
    stats.iter().map(|r| r.count).sum()
}

#[tokio::test]
async fn expiry_deletes_only_what_is_older_than_its_applications_cutoff_and_keeps_counts_true() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let shop = app(store, "shop").await;
        let old = at(-86_400);
        let new = at(0);
        write(
            store,
            vec![
                // Session `mixed`: an old web event at second 1, a new one at 5, an old
                // shop event at 9: web's expiry takes the first, shop's the last.
                received(web, "mixed", "first", 1, old),
                received(web, "mixed", "middle", 5, new),
                received(shop, "mixed", "last", 9, old),
                // Session `gone`: only old web events.
                received(web, "gone", "a", 2, old),
                received(web, "gone", "b", 3, old),
            ],
        )
        .await;
        let cutoffs = eye_store::Cutoffs(vec![(web, at(-3_600)), (shop, at(-3_600))]);
        let mut removed = eye_store::Removed::default();
        loop {
            // Chunks of two: the loop must finish the work across transactions.
            let chunk = store.expire_events(&cutoffs, 2).await.unwrap();
            if chunk.events == 0 {
                break;
            }
            removed += chunk;
        }
        assert_eq!((removed.events, removed.sessions), (4, 1), "{name}");
        assert!(store.session("gone").await.unwrap().is_none(), "{name}");
        let mixed = store
            .session("mixed")
            .await
            .unwrap()
            .expect("mixed survives");
        assert_eq!(mixed.event_count, 1, "{name}");
        assert_eq!(
            (mixed.first_seen.as_micros(), mixed.last_seen.as_micros()),
            (at(5), at(5)),
            "{name}: first and last seen from what is left"
        );
        assert_eq!(
            mixed.apps,
            vec!["web"],
            "{name}: shop has no event left there"
        );
        assert_eq!(names_of(store, "mixed").await, ["middle"], "{name}");
        assert!(names_of(store, "gone").await.is_empty(), "{name}");
        assert_eq!(
            total(store).await,
            1,
            "{name}: the rollup agrees with the events"
        );
        let types = store.event_types().await.unwrap();
        let counted: i64 = types.iter().map(|t| t.event_count).sum();
        assert_eq!(counted, 1, "{name}: per-type counts too");
        let again = store.expire_events(&cutoffs, 100).await.unwrap();
        assert_eq!(
            again,
            eye_store::Removed::default(),
            "{name}: nothing left to expire"
        );
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn refused_records_expire_by_their_reception_time() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let mut old = refused(web, "s");
        if let Processed::Refused { received_at, .. } = &mut old {
            *received_at = at(-86_400);
        }
        write(store, vec![old, refused(web, "t")]).await;
        assert_eq!(
            store.expire_refused(at(-3_600), 10).await.unwrap(),
            1,
            "{name}"
        );
        let left = store
            .refused_events(RefusedQuery {
                filter: RefusedFilter::default(),
                limit: 10,
                before_id: None,
            })
            .await
            .unwrap()
            .items;
        assert_eq!(left.len(), 1, "{name}");
        assert_eq!(left[0].session_id.as_deref(), Some("t"), "{name}");
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn refused_events_are_counted_per_bucket_and_application_by_their_reception() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let shop = app(store, "shop").await;
        let received = |app_id: i64, session: &str, second: i64| {
            let mut record = refused(app_id, session);
            if let Processed::Refused { received_at, .. } = &mut record {
                *received_at = at(second);
            }
            record
        };
        write(
            store,
            vec![
                received(web, "a", 0),
                received(web, "b", 59),
                received(shop, "c", 30),
                received(web, "d", 60),
                received(web, "e", 180), // past `to`
            ],
        )
        .await;
        let counts = store
            .refused_per_bucket(
                Timestamp::from_micros(at(0)),
                Timestamp::from_micros(at(180)),
                eye_store::Bucket::Minute,
            )
            .await
            .unwrap();
        let counts: Vec<(i64, &str, i64)> = counts
            .iter()
            .map(|c| {
                (
                    (c.bucket.as_micros() - at(0)) / 1_000_000,
                    c.app.as_str(),
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            counts,
            [(0, "shop", 1), (0, "web", 2), (60, "web", 1)],
            "{name}"
        );
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn an_erasure_removes_a_session_everywhere_and_drops_what_was_queued_before_it() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let shop = app(store, "shop").await;
        write(
            store,
            vec![
                event(web, "person", "view", 1),
                event(shop, "person", "view", 2),
                event(web, "other", "view", 3),
                refused(web, "person"),
            ],
        )
        .await;
        let filter = eye_store::ErasureFilter {
            session_id: Some("person".into()),
            ..Default::default()
        };
        let until = at(10);
        let erasure = store.create_erasure(filter, until, "test").await.unwrap();
        // An event of the person received before the erasure, still queued then,
        // arrives now: it is dropped, and does not bring the session back.
        let late = write(store, vec![received(web, "person", "late", 4, at(5))]).await;
        assert_eq!((late.stored, late.erased), (0, 1), "{name}");
        loop {
            if store.erase_chunk(erasure.id, 1).await.unwrap() == eye_store::Removed::default() {
                break;
            }
        }
        let done = store.finish_erasure(erasure.id).await.unwrap();
        assert_eq!(done.status, eye_store::ErasureStatus::Done, "{name}");
        assert_eq!(
            (
                done.removed.events,
                done.removed.sessions,
                done.removed.refused
            ),
            (2, 1, 1),
            "{name}"
        );
        assert!(store.session("person").await.unwrap().is_none(), "{name}");
        assert!(names_of(store, "person").await.is_empty(), "{name}");
        let refused_left = store
            .refused_events(RefusedQuery {
                filter: RefusedFilter::default(),
                limit: 10,
                before_id: None,
            })
            .await
            .unwrap()
            .items;
        assert!(refused_left.is_empty(), "{name}: {refused_left:?}");
        assert_eq!(
            names_of(store, "other").await,
            ["view"],
            "{name}: others untouched"
        );
        // An event received after the erasure is stored as any other.
        let after = write(store, vec![received(web, "person", "after", 6, at(11))]).await;
        assert_eq!(after.stored, 1, "{name}");
        assert_eq!(names_of(store, "person").await, ["after"], "{name}");
        assert!(store.running_erasures().await.unwrap().is_empty(), "{name}");
        backend.clean_up().await;
    }
}

#[tokio::test]
async fn an_applications_own_retention_is_kept_and_cleared() {
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        app(store, "web").await;
        let month = "30d".parse().unwrap();
        store.set_app_retention("web", Some(month)).await.unwrap();
        assert_eq!(
            store.list_apps().await.unwrap()[0].retention,
            Some(month),
            "{name}"
        );
        store.set_app_retention("web", None).await.unwrap();
        assert_eq!(
            store.list_apps().await.unwrap()[0].retention,
            None,
            "{name}"
        );
        let missing = store.set_app_retention("nope", None).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{name}");
        backend.clean_up().await;
    }
}

// A type's indexed fields: declared, built over the events already stored, found by
// the same `data.` filters with the same answers, shared between types declaring the
// same path, and dropped when no type declares them.
#[tokio::test]
async fn indexed_fields_are_built_shared_and_answer_as_a_scan_does() {
    use eye_core::FieldPath;
    use eye_store::IndexState;
    for backend in backends().await {
        let (store, name) = (backend.store.as_ref(), backend.name);
        let web = app(store, "web").await;
        let data =
            |path: &str, n: i64| format!(r#"{{"path":"{path}","form":{{"n":{n},"ok":true}}}}"#);
        let batch = (0..30)
            .map(|i| {
                stored(
                    web,
                    incoming(
                        &format!("s{}", i % 3),
                        ["pageview", "click"][i as usize % 2],
                        i,
                        &data(&format!("/p/{}", i % 5), i % 4),
                        None,
                    ),
                )
            })
            .collect();
        write(store, batch).await;
        let query = |path: &[&str], value: &str, name: Option<&str>| EventQuery {
            data: vec![DataFilter {
                path: path.iter().map(|k| k.to_string()).collect(),
                value: value.into(),
            }],
            category: name.map(|_| "page interaction".to_owned()),
            name: name.map(str::to_owned),
            limit: 100,
            ..EventQuery::default()
        };
        let shapes = [
            query(&["path"], "/p/2", None),
            query(&["path"], "/p/2", Some("pageview")),
            query(&["form", "n"], "3", None),
            query(&["form", "ok"], "true", Some("click")),
            query(&["path"], "/nomatch", None),
        ];
        let mut before = Vec::new();
        for shape in &shapes {
            before.push(names(&store.events(shape.clone()).await.unwrap().items));
        }
        assert_eq!(before[0].len(), 6, "{name}");

        let pageview = EventType {
            category: "page interaction".into(),
            name: "pageview".into(),
        };
        let click = EventType {
            category: "page interaction".into(),
            name: "click".into(),
        };
        let path = FieldPath::parse("/path").unwrap();
        let n = FieldPath::parse("/form/n").unwrap();
        let ok = FieldPath::parse("/form/ok").unwrap();
        let fields = store
            .set_indexed_fields(&pageview, &[path.clone(), n.clone()])
            .await
            .unwrap();
        assert_eq!(fields.len(), 2, "{name}");
        assert!(
            fields.iter().all(|f| f.state == IndexState::Building),
            "{name}: {fields:?}"
        );
        store
            .set_indexed_fields(&click, &[path.clone(), ok.clone()])
            .await
            .unwrap();
        let pending = store.pending_field_indexes().await.unwrap();
        assert_eq!(
            pending.len(),
            3,
            "{name}: one index per distinct path: {pending:?}"
        );
        for index in &pending {
            assert!(store.build_field_index(index).await.unwrap(), "{name}");
            assert!(
                !store.build_field_index(index).await.unwrap(),
                "{name}: built once"
            );
        }
        assert!(
            store.pending_field_indexes().await.unwrap().is_empty(),
            "{name}"
        );
        let info = store.event_type(&pageview).await.unwrap().unwrap();
        assert_eq!(
            info.indexed
                .iter()
                .map(|f| (f.path.as_str(), f.state))
                .collect::<Vec<_>>(),
            [("/form/n", IndexState::Ready), ("/path", IndexState::Ready)],
            "{name}"
        );
        assert!(info.indexed.iter().all(|f| f.ready_at.is_some()), "{name}");

        // Events written after the build are in the index too.
        write(
            store,
            vec![stored(
                web,
                incoming("s9", "pageview", 40, &data("/p/2", 3), None),
            )],
        )
        .await;
        for (shape, before) in shapes.iter().zip(&before) {
            let mut expected = before.clone();
            let fresh = store.events(shape.clone()).await.unwrap().items;
            if fresh.iter().any(|e| e.session_id == "s9") {
                expected.push("pageview".into());
            }
            assert_eq!(&names(&fresh), &expected, "{name}: {shape:?}");
        }
        assert_eq!(
            store.events(shapes[0].clone()).await.unwrap().items.len(),
            7,
            "{name}"
        );

        // /path stays while click declares it; /form/n goes with pageview's list.
        store.set_indexed_fields(&pageview, &[]).await.unwrap();
        assert_eq!(
            store.indexed_paths().await.unwrap(),
            [ok.clone(), path.clone()],
            "{name}"
        );
        store.set_indexed_fields(&click, &[]).await.unwrap();
        assert!(store.indexed_paths().await.unwrap().is_empty(), "{name}");
        // Where the drop is the builder's (PostgreSQL), it happens on its next round.
        for index in store.pending_field_indexes().await.unwrap() {
            assert!(index.dropping, "{name}: {index:?}");
            assert!(store.build_field_index(&index).await.unwrap(), "{name}");
        }
        assert!(
            store.pending_field_indexes().await.unwrap().is_empty(),
            "{name}"
        );
        assert_eq!(
            store.events(shapes[0].clone()).await.unwrap().items.len(),
            7,
            "{name}"
        );
        backend.clean_up().await;
    }
}
