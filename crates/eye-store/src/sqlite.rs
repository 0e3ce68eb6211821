//! The embedded store: SQLite in WAL mode in `eye.db` inside the data directory.
//!
//! One writer connection (the worker's batches and the management commands) and a
//! small pool of reader connections, so that queries never wait for a write: WAL lets
//! readers and the writer proceed at once. Every call runs on tokio's blocking pool.
//! The CLI opens the same file while a server runs; SQLite's locking and a busy timeout
//! make that safe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eye_core::auth::{Scope, TokenHash};
use eye_core::{Timestamp, ids};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::value::RawValue;
use uuid::Uuid;

use eye_core::EventType;
use eye_core::schema::{ActiveType, SchemaMode};

use crate::{
    App, AuditEntry, Cursor, EventQuery, EventRow, EventTypeInfo, Login, NewLogin, OpenRefusal,
    Order, Page, Processed, RefusedEvent, RefusedFilter, RefusedKey, RefusedQuery, RefusedStatus,
    RefusedSummary, ReprocessOutcome, Resolution, Result, RowEncoder, SchemaRecord, SessionCursor,
    SessionQuery, SessionSummary, StatsQuery, StatsRow, Store, StoreError, StoredEvent, TokenGrant,
    TokenInfo, User, WriteOutcome,
};

mod analytics;
mod errors;
mod registry;

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_schemas.sql"),
    include_str!("../migrations/0003_queries.sql"),
    include_str!("../migrations/0004_security.sql"),
    include_str!("../migrations/0005_users.sql"),
    include_str!("../migrations/0006_logins.sql"),
    include_str!("../migrations/0007_events_by_type.sql"),
    include_str!("../migrations/0008_session_index.sql"),
    include_str!("../migrations/0009_store_meta.sql"),
];

/// Entries `session_index_fresh` may hold before they are merged into `session_index`.
/// Small enough that the fresh tree stays in the page cache (~10 MB), large enough that a
/// merge touches each of the main tree's pages for many entries at once.
const FRESH_SESSION_ENTRIES: i64 = 250_000;

use crate::aggregate::MINUTE_MICROS;
use crate::rows::{cut_to_limit, stored_event, violations_text};

/// Readers kept open between queries; more may be opened under load and are closed after.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    // 16 KiB pages make index maintenance cheaper: fewer page splits and fewer pages
    // rewritten per transaction (~+20% events/s in `eye-bench store`). It applies when
    // the file is created and is ignored afterwards.
    conn.pragma_update(None, "page_size", 16_384)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Checkpoint every ~40 MiB of WAL rather than every 4 MiB: the hot index pages are
    // copied back once per several transactions instead of once per transaction.
    conn.pragma_update(None, "wal_autocheckpoint", 2_500)?;
    // FULL: a commit is on disk before the worker acknowledges the queue messages in it.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -16_384)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    // IMMEDIATE takes the write lock first, so two processes starting at once (a server
    // and a CLI command) cannot both apply the same migration.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {version}, newer than this binary knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tracing::info!(version = index + 1, "applied store migration");
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/eye.db` and applies pending migrations.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("eye.db");
        let mut writer = connect(&path)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            path,
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    async fn write_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .map_err(|_| StoreError::Task("writer lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn read_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => connect(&path)?,
            };
            let result = f(&conn);
            if let Ok(mut idle) = readers.lock()
                && idle.len() < IDLE_READERS
            {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn write_batch(conn: &mut Connection, batch: &[Processed]) -> Result<WriteOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcome = write_in(&tx, batch.iter())?;
    tx.commit()?;
    Ok(outcome)
}

/// Writes processed events and errors inside the caller's transaction: events, their
/// sessions' counters and application links, their types' counts, and error records.
fn write_in<'a>(
    tx: &rusqlite::Transaction<'_>,
    batch: impl Iterator<Item = &'a Processed>,
) -> Result<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (id, app_id, client_id, session_id, category, name, data, ts, seq,
                             received_at, sent_at, schema_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (id) DO NOTHING",
    )?;
    let mut upsert_session = tx.prepare_cached(
        "INSERT INTO sessions (session_id, first_seen, last_seen, event_count)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (session_id) DO UPDATE SET
             first_seen = min(first_seen, excluded.first_seen),
             last_seen = max(last_seen, excluded.last_seen),
             event_count = event_count + excluded.event_count",
    )?;
    let mut index_session = tx.prepare_cached(
        "INSERT INTO session_index_fresh (session_id, ts, seq, pk) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut link_app = tx.prepare_cached(
        "INSERT INTO session_apps (session_id, app_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    let mut count_minute = tx.prepare_cached(
        "INSERT INTO event_counts (minute, category, name, app_id, events) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (minute, category, name, app_id) DO UPDATE SET events = events + excluded.events",
    )?;
    let mut count_type = tx.prepare_cached(
        "INSERT INTO type_counts (category, name, events) VALUES (?1, ?2, ?3)
         ON CONFLICT (category, name) DO UPDATE SET events = events + excluded.events",
    )?;
    let mut insert_error = tx.prepare_cached(
        "INSERT INTO errors (event_id, app_id, reason, message, field, raw, session_id, category,
                             name, received_at, recorded_at, violations, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (event_id) DO NOTHING",
    )?;
    let mut stored_id = tx.prepare_cached("SELECT 1 FROM events WHERE id = ?1")?;
    let mut recorded_id = tx.prepare_cached("SELECT 1 FROM errors WHERE event_id = ?1")?;
    let legacy_until: Option<i64> = tx
        .query_row(
            "SELECT value FROM store_meta WHERE key = 'legacy_v7_client_ids_until_ms'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    // The id an event had under the old rule (migration 0009), when a resend of it may
    // be in the store under that id: a UUIDv7 client id made before the window closed.
    let old_rule_twin = |app_id: i64, event: Option<&eye_core::IncomingEvent>| {
        let until = legacy_until?;
        let (twin, made) = ids::legacy_twin(app_id, event?.client_id.as_deref()?)?;
        (made < until).then_some(twin)
    };
    let now = Timestamp::now().as_micros();
    let mut record_error = |id: &Uuid,
                            app_id: i64,
                            received_at: i64,
                            refusal: &eye_core::Refusal,
                            raw: &str,
                            event: Option<&eye_core::IncomingEvent>,
                            status: RefusedStatus|
     -> Result<u64> {
        let violations = violations_text(refusal)?;
        Ok(insert_error.execute(params![
            id.as_bytes(),
            app_id,
            refusal.code,
            refusal.message,
            refusal.field,
            raw,
            event.map(|e| e.session_id.as_str()),
            event.map(|e| e.event_type.category.as_str()),
            event.map(|e| e.event_type.name.as_str()),
            received_at,
            now,
            violations,
            status.as_str(),
        ])? as u64)
    };
    // Session and type counters are summed over the batch first: one upsert per
    // session per transaction instead of one per event (the upsert was a fifth of the
    // cost), and in key order, so each B-tree is walked once, not hit at random.
    let mut sessions: BTreeMap<&str, SessionDelta> = BTreeMap::new();
    let mut types: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut minutes: BTreeMap<(i64, &str, &str, i64), i64> = BTreeMap::new();
    for processed in batch {
        match processed {
            Processed::Event {
                id,
                app_id,
                received_at,
                event,
                schema_version,
                warning,
            } => {
                // A resend of an event stored under the old id rule (migration 0009).
                if let Some(twin) = old_rule_twin(*app_id, Some(event))
                    && stored_id.exists([twin.as_bytes()])?
                {
                    outcome.duplicates += 1;
                    continue;
                }
                let inserted = insert_event.execute(params![
                    id.as_bytes(),
                    app_id,
                    event.client_id,
                    event.session_id.as_str(),
                    event.event_type.category,
                    event.event_type.name,
                    event.data.get(),
                    event.timestamp,
                    event.seq.unwrap_or(0),
                    received_at,
                    event.sent_at,
                    schema_version,
                ])?;
                if inserted == 0 {
                    outcome.duplicates += 1;
                    continue;
                }
                index_session.execute(params![
                    event.session_id.as_str(),
                    event.timestamp,
                    event.seq.unwrap_or(0),
                    tx.last_insert_rowid(),
                ])?;
                let delta = sessions
                    .entry(event.session_id.as_str())
                    .or_insert(SessionDelta {
                        first_seen: event.timestamp,
                        last_seen: event.timestamp,
                        count: 0,
                        apps: Vec::new(),
                    });
                delta.first_seen = delta.first_seen.min(event.timestamp);
                delta.last_seen = delta.last_seen.max(event.timestamp);
                delta.count += 1;
                if !delta.apps.contains(app_id) {
                    delta.apps.push(*app_id);
                }
                *types
                    .entry((&event.event_type.category, &event.event_type.name))
                    .or_default() += 1;
                *minutes
                    .entry((
                        event.timestamp.div_euclid(MINUTE_MICROS) * MINUTE_MICROS,
                        &event.event_type.category,
                        &event.event_type.name,
                        *app_id,
                    ))
                    .or_default() += 1;
                outcome.stored += 1;
                if let Some(warning) = warning {
                    let raw = event.to_wire().to_string();
                    outcome.warnings += record_error(
                        id,
                        *app_id,
                        *received_at,
                        warning,
                        &raw,
                        Some(event),
                        RefusedStatus::Warning,
                    )?;
                }
            }
            Processed::Refused {
                id,
                app_id,
                received_at,
                refusal,
                raw,
                event,
            } => {
                // A resend of an event refused and recorded under the old id rule: as
                // with any other resend of a refused event, its record is kept once.
                if let Some(twin) = old_rule_twin(*app_id, event.as_ref())
                    && recorded_id.exists([twin.as_bytes()])?
                {
                    continue;
                }
                outcome.refused += record_error(
                    id,
                    *app_id,
                    *received_at,
                    refusal,
                    raw,
                    event.as_ref(),
                    RefusedStatus::Open,
                )?;
            }
        }
    }
    for (session_id, delta) in &sessions {
        upsert_session.execute(params![
            session_id,
            delta.first_seen,
            delta.last_seen,
            delta.count
        ])?;
        for app_id in &delta.apps {
            link_app.execute(params![session_id, app_id])?;
        }
    }
    for ((category, name), count) in &types {
        count_type.execute(params![category, name, count])?;
    }
    for ((minute, category, name, app_id), count) in &minutes {
        count_minute.execute(params![minute, category, name, app_id, count])?;
    }
    merge_fresh_sessions(tx, FRESH_SESSION_ENTRIES)?;
    Ok(outcome)
}

/// Moves the fresh session entries into the main tree once there are at least
/// `at_least` of them, inside the caller's transaction. Reading the fresh tree in key
/// order makes the insert one ordered pass over the main tree. Counting is cheap: SQLite
/// counts a tree's cells from its page headers.
fn merge_fresh_sessions(tx: &rusqlite::Transaction<'_>, at_least: i64) -> Result<()> {
    let fresh: i64 = tx.query_row("SELECT count(*) FROM session_index_fresh", [], |r| r.get(0))?;
    if fresh > 0 && fresh >= at_least {
        let started = std::time::Instant::now();
        tx.execute_batch(
            "INSERT INTO session_index (session_id, ts, seq, pk)
                 SELECT session_id, ts, seq, pk FROM session_index_fresh;
             DELETE FROM session_index_fresh;",
        )?;
        tracing::debug!(entries = fresh, took = ?started.elapsed(), "merged the fresh session index");
    }
    Ok(())
}

/// What one batch adds to one session.
struct SessionDelta {
    first_seen: i64,
    last_seen: i64,
    count: i64,
    apps: Vec<i64>,
}

fn uuid_from(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(index)?;
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn raw_json(row: &Row<'_>, index: usize) -> rusqlite::Result<Box<RawValue>> {
    let text: String = row.get(index)?;
    RawValue::from_string(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn timestamp(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_micros(row.get(index)?))
}

const EVENT_COLUMNS: &str =
    "e.pk, e.id, e.session_id, e.category, e.name, e.data, e.ts, e.seq, a.name,
     e.client_id, e.received_at, e.sent_at, e.schema_version";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(stored_event(&event_row(row)?, raw_json(row, 5)?))
}

fn query_events(conn: &Connection, query: &EventQuery) -> Result<Page<StoredEvent>> {
    let (sql, args) = events_sql(query, u64::from(query.limit) + 1);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut items = stmt
        .query_map(rusqlite::params_from_iter(args), event_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = cut_to_limit(&mut items, query.limit, |e| e.cursor);
    Ok(Page { items, next })
}

/// The SQL and arguments selecting `query`'s events (`EVENT_COLUMNS`), at most `limit`.
///
/// A query for one session walks the two session trees (`session_index` and its fresh
/// part, see migration 0008) in order, each branch stopping after `limit` matches, and
/// merges the two; any other query is one statement over `events`.
fn events_sql(query: &EventQuery, limit: u64) -> (String, Vec<SqlValue>) {
    // The table whose (ts, seq, pk) the query walks: the session tree when there is one,
    // so that its primary key bounds the walk (`e.pk = s.pk` makes them the event's own).
    let walked = if query.session_id.is_some() { "s" } else { "e" };
    let mut conditions = String::new();
    let mut args: Vec<SqlValue> = Vec::new();
    let mut filter = |clause: &str, value: SqlValue| {
        conditions.push_str(" AND ");
        conditions.push_str(&clause.replace('?', &format!("?{}", args.len() + 1)));
        args.push(value);
    };
    if let Some(session_id) = &query.session_id {
        filter("s.session_id = ?", SqlValue::Text(session_id.clone()));
    }
    if let Some(category) = &query.category {
        filter("e.category = ?", SqlValue::Text(category.clone()));
    }
    if let Some(name) = &query.name {
        filter("e.name = ?", SqlValue::Text(name.clone()));
    }
    if let Some(app) = &query.app {
        filter(
            "(a.name = ? OR CAST(a.id AS TEXT) = ?)",
            SqlValue::Text(app.clone()),
        );
    }
    for data in &query.data {
        // The path and the typed value are literals built here (keys are quoted and
        // escaped); only the client's text value is a parameter.
        let path = json_path(&data.path).replace('\'', "''");
        let clause = match typed_literal(&data.value) {
            Some(typed) => format!("json_extract(e.data, '{path}') IN (?, {typed})"),
            None => format!("json_extract(e.data, '{path}') = ?"),
        };
        filter(&clause, SqlValue::Text(data.value.clone()));
    }
    if let Some(from) = query.from {
        filter(
            &format!("{walked}.ts >= ?"),
            SqlValue::Integer(from.as_micros()),
        );
    }
    if let Some(to) = query.to {
        filter(
            &format!("{walked}.ts < ?"),
            SqlValue::Integer(to.as_micros()),
        );
    }
    let (compare, direction) = match query.order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    if let Some(after) = query.after {
        let n = args.len();
        conditions.push_str(&format!(
            " AND ({walked}.ts, {walked}.seq, {walked}.pk) {compare} (?{}, ?{}, ?{})",
            n + 1,
            n + 2,
            n + 3
        ));
        args.extend([after.ts, after.seq, after.pk].map(SqlValue::Integer));
    }
    let order_by = format!(
        "ORDER BY {walked}.ts {direction}, {walked}.seq {direction}, {walked}.pk {direction} LIMIT {limit}"
    );
    if query.session_id.is_none() {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN apps a ON a.id = e.app_id WHERE 1=1{conditions} {order_by}"
        );
        return (sql, args);
    }
    // CROSS JOIN keeps the session tree as the outer loop, so each branch walks it in
    // order and stops at `limit`, whatever other filters there are. The same numbered
    // parameters serve both branches. Columns 7, 8 and 1 are ts, seq and pk.
    let branch = |tree: &str| {
        format!(
            "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM {tree} s CROSS JOIN events e CROSS JOIN apps a \
             WHERE e.pk = s.pk AND a.id = e.app_id{conditions} {order_by})"
        )
    };
    let sql = format!(
        "{} UNION ALL {} ORDER BY 7 {direction}, 8 {direction}, 1 {direction} LIMIT {limit}",
        branch("session_index"),
        branch("session_index_fresh"),
    );
    (sql, args)
}

/// A JSON path for SQLite's `json_extract`, every key quoted: `$."form"."first_name"`.
fn json_path(keys: &[String]) -> String {
    let mut path = String::from("$");
    for key in keys {
        path.push_str(".\"");
        path.push_str(key);
        path.push('"');
    }
    path
}

/// The number or boolean a filter value spells, as an SQL literal equal to what
/// `json_extract` returns for it (booleans are 1 and 0).
fn typed_literal(value: &str) -> Option<String> {
    match value {
        "true" => Some("1".into()),
        "false" => Some("0".into()),
        _ => value
            .parse::<i64>()
            .map(|n| n.to_string())
            .ok()
            .or_else(|| {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| format!("{f:?}"))
            }),
    }
}

/// Bytes an export hands to its sink at a time.
const EXPORT_BUFFER: usize = 256 * 1024;
/// Rows read per statement: each chunk is a fresh keyset query, so an export never
/// holds one read snapshot (and the WAL it pins) for its whole duration.
const EXPORT_CHUNK: u64 = 10_000;

fn export_events(
    conn: &Connection,
    mut query: EventQuery,
    mut max_events: u64,
    encode: &mut RowEncoder,
    sink: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<()> {
    let mut buffer = Vec::with_capacity(EXPORT_BUFFER + 4096);
    while max_events > 0 {
        let chunk = EXPORT_CHUNK.min(max_events);
        let (sql, args) = events_sql(&query, chunk);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut read = 0u64;
        let mut last = None;
        while let Some(row) = rows.next()? {
            let event = event_row(row)?;
            last = Some(event.cursor);
            encode(&event, &mut buffer);
            read += 1;
            if buffer.len() >= EXPORT_BUFFER {
                let full = std::mem::replace(&mut buffer, Vec::with_capacity(EXPORT_BUFFER + 4096));
                if sink.blocking_send(full).is_err() {
                    return Ok(()); // the client went away
                }
            }
        }
        max_events -= read;
        match last {
            Some(cursor) if read == chunk => query.after = Some(cursor),
            _ => break,
        }
    }
    if !buffer.is_empty() {
        let _ = sink.blocking_send(buffer);
    }
    Ok(())
}

/// A row of `EVENT_COLUMNS`, borrowed: nothing is copied or re-validated.
fn event_row<'r>(row: &'r Row<'_>) -> rusqlite::Result<EventRow<'r>> {
    let text = |index: usize| -> rusqlite::Result<&'r str> { Ok(row.get_ref(index)?.as_str()?) };
    let optional_text = |index: usize| -> rusqlite::Result<Option<&'r str>> {
        Ok(row.get_ref(index)?.as_str_or_null()?)
    };
    let ts: i64 = row.get(6)?;
    let seq: i64 = row.get(7)?;
    Ok(EventRow {
        id: uuid_from(row, 1)?,
        session_id: text(2)?,
        category: text(3)?,
        name: text(4)?,
        data: text(5)?,
        timestamp: Timestamp::from_micros(ts),
        seq,
        app: text(8)?,
        client_id: optional_text(9)?,
        received_at: Timestamp::from_micros(row.get(10)?),
        sent_at: row.get::<_, Option<i64>>(11)?.map(Timestamp::from_micros),
        schema_version: row.get(12)?,
        cursor: Cursor {
            ts,
            seq,
            pk: row.get(0)?,
        },
    })
}

fn query_session(conn: &Connection, session_id: &str) -> Result<Option<SessionSummary>> {
    let summary = conn
        .query_row(
            "SELECT session_id, first_seen, last_seen, event_count FROM sessions WHERE session_id = ?1",
            [session_id],
            |row| {
                Ok(SessionSummary {
                    session_id: row.get(0)?,
                    first_seen: timestamp(row, 1)?,
                    last_seen: timestamp(row, 2)?,
                    event_count: row.get(3)?,
                    apps: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut summary) = summary else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT a.name FROM session_apps s JOIN apps a ON a.id = s.app_id
         WHERE s.session_id = ?1 ORDER BY a.name",
    )?;
    summary.apps = stmt
        .query_map([session_id], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Some(summary))
}

const USER_COLUMNS: &str =
    "SELECT id, email, password_hash, role, created_at, disabled_at FROM users";

/// A login with its user's columns first, in [`USER_COLUMNS`]' order.
const LOGIN_QUERY: &str =
    "SELECT u.id, u.email, u.password_hash, u.role, u.created_at, u.disabled_at,
            l.csrf, l.expires_at
     FROM logins l JOIN users u ON u.id = l.user_id
     WHERE l.hash = ?1 AND l.expires_at > ?2 AND u.disabled_at IS NULL";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        role: row.get(3)?,
        created_at: timestamp(row, 4)?,
        disabled_at: row.get::<_, Option<i64>>(5)?.map(Timestamp::from_micros),
    })
}

fn app_from_row(row: &Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: timestamp(row, 2)?,
        revoked_at: row.get::<_, Option<i64>>(3)?.map(Timestamp::from_micros),
        allowed_origins: crate::origins_from_text(&row.get::<_, String>(4)?),
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn write(&self, batch: Arc<Vec<Processed>>) -> Result<WriteOutcome> {
        self.write_with(move |conn| write_batch(conn, &batch)).await
    }

    async fn events(&self, query: EventQuery) -> Result<Page<StoredEvent>> {
        self.read_with(move |conn| query_events(conn, &query)).await
    }

    async fn export_events(
        &self,
        query: EventQuery,
        max_events: Option<u64>,
        mut encode: RowEncoder,
        sink: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<()> {
        let max_events = max_events.unwrap_or(u64::MAX);
        self.read_with(move |conn| export_events(conn, query, max_events, &mut encode, &sink))
            .await
    }

    async fn sessions(
        &self,
        query: SessionQuery,
    ) -> Result<(Vec<SessionSummary>, Option<SessionCursor>)> {
        self.read_with(move |conn| analytics::sessions(conn, &query))
            .await
    }

    async fn stats(&self, query: StatsQuery) -> Result<Vec<StatsRow>> {
        self.read_with(move |conn| analytics::stats(conn, &query))
            .await
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionSummary>> {
        let session_id = session_id.to_owned();
        self.read_with(move |conn| query_session(conn, &session_id))
            .await
    }

    async fn refused_events(&self, query: RefusedQuery) -> Result<Page<RefusedEvent>> {
        self.read_with(move |conn| errors::list(conn, &query)).await
    }

    async fn refused_event(&self, key: RefusedKey) -> Result<Option<RefusedEvent>> {
        self.read_with(move |conn| errors::get(conn, key)).await
    }

    async fn refused_summary(&self, filter: RefusedFilter) -> Result<RefusedSummary> {
        self.read_with(move |conn| errors::summary(conn, &filter))
            .await
    }

    async fn dismiss_refused(&self, key: RefusedKey) -> Result<RefusedEvent> {
        self.write_with(move |conn| errors::dismiss(conn, key))
            .await
    }

    async fn open_refusals(
        &self,
        filter: RefusedFilter,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OpenRefusal>> {
        self.read_with(move |conn| errors::open(conn, &filter, after_id, limit))
            .await
    }

    async fn resolve_refusals(&self, resolutions: Vec<Resolution>) -> Result<ReprocessOutcome> {
        self.write_with(move |conn| errors::resolve(conn, resolutions))
            .await
    }

    async fn active_types(&self) -> Result<Vec<ActiveType>> {
        self.read_with(registry::active_types).await
    }

    async fn event_types(&self) -> Result<Vec<EventTypeInfo>> {
        self.read_with(|conn| registry::event_types(conn, None))
            .await
    }

    async fn event_type(&self, event_type: &EventType) -> Result<Option<EventTypeInfo>> {
        let event_type = event_type.clone();
        self.read_with(move |conn| Ok(registry::event_types(conn, Some(&event_type))?.pop()))
            .await
    }

    async fn schema(
        &self,
        event_type: &EventType,
        version: Option<i64>,
    ) -> Result<Option<SchemaRecord>> {
        let event_type = event_type.clone();
        self.read_with(move |conn| registry::schema(conn, &event_type, version))
            .await
    }

    async fn put_schema(
        &self,
        event_type: &EventType,
        schema: String,
        mode: Option<SchemaMode>,
    ) -> Result<(SchemaRecord, bool)> {
        let event_type = event_type.clone();
        self.write_with(move |conn| registry::put_schema(conn, &event_type, &schema, mode))
            .await
    }

    async fn delete_schema(&self, event_type: &EventType) -> Result<()> {
        let event_type = event_type.clone();
        self.write_with(move |conn| registry::delete_schema(conn, &event_type))
            .await
    }

    async fn authenticate(&self, hash: TokenHash) -> Result<Option<TokenGrant>> {
        self.read_with(move |conn| {
            let grant = conn
                .prepare_cached(
                    "SELECT t.id, t.scope, t.app_id FROM tokens t LEFT JOIN apps a ON a.id = t.app_id
                     WHERE t.hash = ?1 AND t.revoked_at IS NULL AND a.revoked_at IS NULL",
                )?
                .query_row([&hash.0[..]], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<i64>>(2)?))
                })
                .optional()?;
            grant
                .map(|(token_id, scope, app_id)| {
                    let scope = Scope::parse(&scope)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown token scope {scope:?}")))?;
                    Ok(TokenGrant { token_id, scope, app_id })
                })
                .transpose()
        })
        .await
    }

    async fn create_app(&self, name: &str) -> Result<App> {
        let name = name.to_owned();
        self.write_with(move |conn| {
            let now = Timestamp::now().as_micros();
            let inserted = conn.execute(
                "INSERT INTO apps (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, now],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("application {name:?}")));
            }
            Ok(App {
                id: conn.last_insert_rowid(),
                name,
                created_at: Timestamp::from_micros(now),
                revoked_at: None,
                allowed_origins: Vec::new(),
            })
        })
        .await
    }

    async fn set_allowed_origins(&self, name: &str, origins: &[String]) -> Result<()> {
        let (name, text) = (name.to_owned(), origins.join("\n"));
        self.write_with(move |conn| {
            let found = conn.execute(
                "UPDATE apps SET allowed_origins = ?2 WHERE name = ?1",
                params![name, text],
            )?;
            if found == 0 {
                return Err(StoreError::NotFound(format!("application {name:?}")));
            }
            Ok(())
        })
        .await
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, created_at, revoked_at, allowed_origins FROM apps ORDER BY name",
            )?;
            Ok(stmt
                .query_map([], app_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_app(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write_with(move |conn| {
            let now = Timestamp::now().as_micros();
            let tx = conn.transaction()?;
            let revoked = tx.execute(
                "UPDATE apps SET revoked_at = coalesce(revoked_at, ?2) WHERE name = ?1",
                params![name, now],
            )?;
            if revoked == 0 {
                return Err(StoreError::NotFound(format!("application {name:?}")));
            }
            tx.execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2)
                 WHERE app_id = (SELECT id FROM apps WHERE name = ?1)",
                params![name, now],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_token(
        &self,
        hash: TokenHash,
        scope: Scope,
        app_id: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64> {
        let label = label.map(str::to_owned);
        self.write_with(move |conn| {
            conn.execute(
                "INSERT INTO tokens (hash, scope, app_id, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![&hash.0[..], scope.as_str(), app_id, label, Timestamp::now().as_micros()],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT t.id, t.scope, a.name, t.label, t.created_at, t.revoked_at
                 FROM tokens t LEFT JOIN apps a ON a.id = t.app_id ORDER BY t.id",
            )?;
            Ok(stmt
                .query_map([], |row| {
                    Ok(TokenInfo {
                        id: row.get(0)?,
                        scope: row.get(1)?,
                        app: row.get(2)?,
                        label: row.get(3)?,
                        created_at: Timestamp::from_micros(row.get(4)?),
                        revoked_at: row.get::<_, Option<i64>>(5)?.map(Timestamp::from_micros),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_token(&self, id: i64) -> Result<()> {
        self.write_with(move |conn| {
            let found = conn.execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, Timestamp::now().as_micros()],
            )?;
            if found == 0 {
                return Err(StoreError::NotFound(format!("token {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn create_user(&self, email: &str, password_hash: &str, role: &str) -> Result<i64> {
        let (email, hash, role) = (email.to_owned(), password_hash.to_owned(), role.to_owned());
        self.write_with(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO users (email, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (email) DO NOTHING",
                params![email, hash, role, Timestamp::now().as_micros()],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("user {email:?}")));
            }
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("{USER_COLUMNS} WHERE email = ?1"))?;
            Ok(stmt.query_row(params![email], user_from_row).optional()?)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare_cached(&format!("{USER_COLUMNS} ORDER BY email"))?;
            Ok(stmt
                .query_map([], user_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn create_login(&self, login: NewLogin) -> Result<()> {
        self.write_with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM logins WHERE expires_at <= ?1",
                params![login.created_at.as_micros()],
            )?;
            tx.execute(
                "INSERT INTO logins (hash, user_id, csrf, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &login.hash.0[..],
                    login.user_id,
                    login.csrf,
                    login.created_at.as_micros(),
                    login.expires_at.as_micros()
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn login(&self, hash: TokenHash, now: Timestamp) -> Result<Option<Login>> {
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(LOGIN_QUERY)?;
            Ok(stmt
                .query_row(params![&hash.0[..], now.as_micros()], |row| {
                    Ok(Login {
                        user: user_from_row(row)?,
                        csrf: row.get(6)?,
                        expires_at: timestamp(row, 7)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn delete_login(&self, hash: TokenHash) -> Result<()> {
        self.write_with(move |conn| {
            conn.execute("DELETE FROM logins WHERE hash = ?1", [&hash.0[..]])?;
            Ok(())
        })
        .await
    }

    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>> {
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN apps a ON a.id = e.app_id WHERE e.id = ?1"
            ))?;
            Ok(stmt.query_row([&id.as_bytes()[..]], event_from_row).optional()?)
        })
        .await
    }

    async fn audit(&self, entry: AuditEntry) -> Result<()> {
        self.write_with(move |conn| {
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, details) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![entry.at.as_micros(), entry.actor, entry.action, entry.target, entry.details],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at, actor, action, target, details FROM audit_log
                 ORDER BY at DESC, id DESC LIMIT ?1",
            )?;
            Ok(stmt
                .query_map(params![limit as i64], |row| {
                    Ok(AuditEntry {
                        at: Timestamp::from_micros(row.get(0)?),
                        actor: row.get(1)?,
                        action: row.get(2)?,
                        target: row.get(3)?,
                        details: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event_with_client_id, refused};
    use eye_core::IncomingEvent;

    fn event(app_id: i64, session: &str, name: &str, second: u32) -> Processed {
        let raw = format!(
            r#"{{"session_id":"{session}","category":"page interaction","name":"{name}","data":{{"host":"h","path":"/"}},"timestamp":"2026-01-01T00:00:{second:02}Z"}}"#
        );
        let raw = RawValue::from_string(raw).expect("valid JSON");
        Processed::Event {
            id: eye_core::ids::new_event_id(),
            app_id,
            received_at: 0,
            event: IncomingEvent::parse(&raw).expect("valid event"),
            schema_version: None,
            warning: None,
        }
    }

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
}
