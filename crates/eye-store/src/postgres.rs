//! The PostgreSQL store: the same data model and semantics as the embedded one (see
//! `migrations/postgres/`), for fleets of API and worker processes.
//!
//! A `deadpool` pool of `tokio-postgres` connections. A worker batch is one
//! transaction of a few array-parameter statements (`INSERT ... SELECT FROM UNNEST`),
//! whatever its size: events first (`ON CONFLICT (id) DO NOTHING RETURNING id`), then,
//! for the events actually inserted, the session, type and per-minute counters summed
//! in Rust and upserted in key order, so that concurrent workers take row locks in the
//! same order and cannot deadlock. Payloads are `jsonb`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use eye_core::auth::{Scope, TokenHash};
use eye_core::schema::{ActiveType, SchemaMode};
use eye_core::{EventType, Timestamp};
use serde_json::value::RawValue;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use crate::aggregate::{MINUTE_MICROS, Tally, group, split_range};
use crate::rows::{
    cut_to_limit, error_cursor, needs_dismissing, session_cursor, stored_event, violations_text,
};
use crate::{
    App, AuditEntry, Cursor, EventQuery, EventRow, EventTypeInfo, GroupBy, HourlyRefusedCount,
    Login, NewLogin, OpenRefusal, Order, Page, Processed, RefusedCount, RefusedEvent,
    RefusedFilter, RefusedKey, RefusedQuery, RefusedStatus, RefusedSummary, ReprocessOutcome,
    Resolution, Result, RowEncoder, SchemaRecord, SessionCursor, SessionQuery, SessionSummary,
    StatsQuery, StatsRow, Store, StoreError, StoredEvent, TokenGrant, TokenInfo, User,
    WriteOutcome,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_security.sql"),
    include_str!("../migrations/postgres/0003_users.sql"),
    include_str!("../migrations/postgres/0004_logins.sql"),
    include_str!("../migrations/postgres/0005_events_by_type.sql"),
    include_str!("../migrations/postgres/0006_store_meta.sql"),
];
/// Serializes migrations between processes starting at once.
const MIGRATION_LOCK: i64 = 0x0e7e_0001;
const HOUR_MICROS: i64 = 3_600_000_000;
const EXPORT_BUFFER: usize = 256 * 1024;
const EXPORT_CHUNK: i64 = 10_000;

type Param = Box<dyn ToSql + Sync + Send>;

/// SQL text with its numbered parameters.
#[derive(Default)]
struct Sql {
    text: String,
    params: Vec<Param>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    /// Appends `clause`, its `?` replaced by this parameter's number.
    fn and(&mut self, clause: &str, value: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(value));
        self.text.push_str(" AND ");
        self.text
            .push_str(&clause.replace('?', &format!("${}", self.params.len())));
    }

    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    async fn query(&self, client: &impl GenericClient) -> Result<Vec<Row>> {
        client
            .query(&self.text, &self.params())
            .await
            .map_err(database)
    }
}

const USER_COLUMNS: &str =
    "SELECT id, email, password_hash, role, created_at, disabled_at FROM users";

fn user_from_row(row: &Row) -> User {
    User {
        id: row.get(0),
        email: row.get(1),
        password_hash: row.get(2),
        role: row.get(3),
        created_at: Timestamp::from_micros(row.get(4)),
        disabled_at: row.get::<_, Option<i64>>(5).map(Timestamp::from_micros),
    }
}

fn database(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) => StoreError::Postgres(format!("{} ({})", db.message(), db.code().code())),
        None => StoreError::Postgres(error.to_string()),
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// `database_url` with its connections' `search_path` set to `schema`: a store of its
/// own in a shared database (benchmarks, tests).
pub fn in_schema(database_url: &str, schema: &str) -> String {
    let separator = if database_url.contains('?') { '&' } else { '?' };
    format!("{database_url}{separator}options=-csearch_path%3D{schema}")
}

pub struct PgStore {
    pool: Pool,
    /// `store_meta`'s `legacy_v7_client_ids_until_ms`, read once at connect: only the
    /// migration that upgrades a store writes it, and `connect` migrates first.
    legacy_until: Option<i64>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), and applies pending
    /// migrations under an advisory lock.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_password(url, None).await
    }

    /// Like `connect`, with the password given apart from the URL (from a secret file,
    /// say); it replaces one the URL may hold.
    pub async fn connect_with_password(url: &str, password: Option<&str>) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Postgres(format!("the database URL is invalid: {e}")))?;
        if let Some(password) = password {
            config.password(password);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| StoreError::Postgres(e.to_string()))?;
        let mut store = PgStore {
            pool,
            legacy_until: None,
        };
        store.migrate().await?;
        store.legacy_until = store
            .client()
            .await?
            .query_opt(
                "SELECT value FROM store_meta WHERE key = 'legacy_v7_client_ids_until_ms'",
                &[],
            )
            .await
            .map_err(database)?
            .map(|row| row.get(0));
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Postgres(format!("no database connection: {e}")))
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(database)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS eye_migrations (version INT PRIMARY KEY)")
            .await
            .map_err(database)?;
        let version: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM eye_migrations", &[])
            .await
            .map_err(database)?
            .get(0);
        let version = version as usize;
        if version > MIGRATIONS.len() {
            return Err(corrupt(format!(
                "the database is at schema version {version}, newer than this binary knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch_execute(sql).await.map_err(database)?;
            tx.execute(
                "INSERT INTO eye_migrations (version) VALUES ($1)",
                &[&((index + 1) as i32)],
            )
            .await
            .map_err(database)?;
            tracing::info!(version = index + 1, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(database)?;
        Ok(())
    }
}

/// What in a batch resends, under today's id rule, something the store holds under the
/// old rule for UUIDv7 client ids (migration 0006): accepted events whose old-rule id
/// is stored, and refused ones whose old-rule id is recorded. Both also count the
/// old-rule id earlier in this batch (queued before the upgrade).
#[derive(Default)]
struct Resent {
    events: HashSet<Uuid>,
    refused: HashSet<Uuid>,
}

/// Finds [`Resent`] in one statement, and only for client ids made before `until`
/// (`store_meta`; none on a store created by this version): a new store, or new client
/// ids on an upgraded one, cost no statement.
async fn resent_under_old_rule(
    tx: &Transaction<'_>,
    batch: &[&Processed],
    until: Option<i64>,
) -> Result<Resent> {
    let Some(until) = until else {
        return Ok(Resent::default());
    };
    let mut ids = Vec::new();
    let mut twins = Vec::new();
    let mut accepted = Vec::new();
    let mut event_ids = Vec::new();
    let mut error_ids = Vec::new();
    for processed in batch {
        let (id, app_id, event, is_event) = match processed {
            Processed::Event {
                id, app_id, event, ..
            } => (id, app_id, Some(event), true),
            Processed::Refused {
                id, app_id, event, ..
            } => (id, app_id, event.as_ref(), false),
        };
        if is_event {
            event_ids.push(*id);
        } else {
            error_ids.push(*id);
        }
        if let Some(client_id) = event.and_then(|e| e.client_id.as_deref())
            && let Some((twin, millis)) = eye_core::ids::legacy_twin(*app_id, client_id)
            && millis < until
            // A message queued before the upgrade has the old id itself.
            && twin != *id
        {
            ids.push(*id);
            twins.push(twin);
            accepted.push(is_event);
        }
    }
    if twins.is_empty() {
        return Ok(Resent::default());
    }
    let rows = tx
        .query(
            "SELECT u.id, u.accepted
             FROM UNNEST($1::uuid[], $2::uuid[], $3::bool[]) AS u(id, twin, accepted)
             WHERE CASE WHEN u.accepted
                        THEN EXISTS (SELECT 1 FROM events e WHERE e.id = u.twin)
                             OR u.twin = ANY($4::uuid[])
                        ELSE EXISTS (SELECT 1 FROM errors r WHERE r.event_id = u.twin)
                             OR u.twin = ANY($5::uuid[])
                   END",
            &[&ids, &twins, &accepted, &event_ids, &error_ids],
        )
        .await
        .map_err(database)?;
    let mut resent = Resent::default();
    for row in rows {
        let id: Uuid = row.get(0);
        if row.get::<_, bool>(1) {
            resent.events.insert(id);
        } else {
            resent.refused.insert(id);
        }
    }
    Ok(resent)
}

/// Writes processed events and errors inside the caller's transaction.
async fn write_in(
    tx: &Transaction<'_>,
    batch: &[&Processed],
    legacy_until: Option<i64>,
) -> Result<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    let now = Timestamp::now().as_micros();
    let events: Vec<&Processed> = batch
        .iter()
        .copied()
        .filter(|p| matches!(p, Processed::Event { .. }))
        .collect();
    let mut inserted: HashSet<Uuid> = HashSet::new();
    let resent = resent_under_old_rule(tx, batch, legacy_until).await?;
    if !events.is_empty() {
        let mut columns = EventColumns::default();
        for processed in &events {
            if let Processed::Event {
                id,
                app_id,
                received_at,
                event,
                schema_version,
                ..
            } = processed
            {
                if resent.events.contains(id) {
                    continue;
                }
                columns.id.push(*id);
                columns.app_id.push(*app_id);
                columns.client_id.push(event.client_id.clone());
                columns
                    .session_id
                    .push(event.session_id.as_str().to_owned());
                columns.category.push(event.event_type.category.clone());
                columns.name.push(event.event_type.name.clone());
                columns.data.push(event.data.get().to_owned());
                columns.ts.push(event.timestamp);
                columns.seq.push(event.seq.unwrap_or(0));
                columns.received_at.push(*received_at);
                columns.sent_at.push(event.sent_at);
                columns.schema_version.push(*schema_version);
            }
        }
        let rows = tx
            .query(
                "INSERT INTO events (id, app_id, client_id, session_id, category, name, data, ts,
                                     seq, received_at, sent_at, schema_version)
                 SELECT id, app_id, client_id, session_id, category, name, data::jsonb, ts, seq,
                        received_at, sent_at, schema_version
                 FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[],
                             $11::int8[], $12::int8[])
                   AS u(id, app_id, client_id, session_id, category, name, data, ts, seq,
                        received_at, sent_at, schema_version)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id",
                &[
                    &columns.id,
                    &columns.app_id,
                    &columns.client_id,
                    &columns.session_id,
                    &columns.category,
                    &columns.name,
                    &columns.data,
                    &columns.ts,
                    &columns.seq,
                    &columns.received_at,
                    &columns.sent_at,
                    &columns.schema_version,
                ],
            )
            .await
            .map_err(database)?;
        inserted = rows.iter().map(|r| r.get::<_, Uuid>(0)).collect();
    }

    let mut sessions: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    let mut links: BTreeMap<(&str, i64), ()> = BTreeMap::new();
    let mut types: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    let mut minutes: BTreeMap<(i64, &str, &str, i64), i64> = BTreeMap::new();
    let mut errors = ErrorColumns::default();
    let mut seen: HashSet<Uuid> = HashSet::new();
    for processed in batch {
        match processed {
            Processed::Event {
                id,
                app_id,
                received_at,
                event,
                warning,
                ..
            } => {
                // An id inserted once counts once, even if the batch holds it twice.
                if !inserted.contains(id) || !seen.insert(*id) {
                    outcome.duplicates += 1;
                    continue;
                }
                outcome.stored += 1;
                let ts = event.timestamp;
                let entry = sessions
                    .entry(event.session_id.as_str())
                    .or_insert((ts, ts, 0));
                entry.0 = entry.0.min(ts);
                entry.1 = entry.1.max(ts);
                entry.2 += 1;
                links.insert((event.session_id.as_str(), *app_id), ());
                *types
                    .entry((&event.event_type.category, &event.event_type.name))
                    .or_default() += 1;
                *minutes
                    .entry((
                        ts.div_euclid(MINUTE_MICROS) * MINUTE_MICROS,
                        &event.event_type.category,
                        &event.event_type.name,
                        *app_id,
                    ))
                    .or_default() += 1;
                if let Some(warning) = warning {
                    errors.push(
                        *id,
                        *app_id,
                        warning,
                        event.to_wire().to_string(),
                        Some(event),
                        *received_at,
                        RefusedStatus::Warning,
                    )?;
                }
            }
            // A resend of a refused event recorded under the old id rule: kept once,
            // as any other resend of a refused event is.
            Processed::Refused { id, .. } if resent.refused.contains(id) => {}
            Processed::Refused {
                id,
                app_id,
                received_at,
                refusal,
                raw,
                event,
            } => errors.push(
                *id,
                *app_id,
                refusal,
                raw.clone(),
                event.as_ref(),
                *received_at,
                RefusedStatus::Open,
            )?,
        }
    }

    if !sessions.is_empty() {
        let (ids, rest): (Vec<&str>, Vec<&(i64, i64, i64)>) = sessions.iter().unzip();
        let first: Vec<i64> = rest.iter().map(|d| d.0).collect();
        let last: Vec<i64> = rest.iter().map(|d| d.1).collect();
        let count: Vec<i64> = rest.iter().map(|d| d.2).collect();
        tx.execute(
            "INSERT INTO sessions (session_id, first_seen, last_seen, event_count)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[]) ORDER BY 1
             ON CONFLICT (session_id) DO UPDATE SET
                 first_seen = LEAST(sessions.first_seen, EXCLUDED.first_seen),
                 last_seen = GREATEST(sessions.last_seen, EXCLUDED.last_seen),
                 event_count = sessions.event_count + EXCLUDED.event_count",
            &[&ids, &first, &last, &count],
        )
        .await
        .map_err(database)?;
        let (sessions, apps): (Vec<&str>, Vec<i64>) = links.keys().copied().unzip();
        tx.execute(
            "INSERT INTO session_apps (session_id, app_id)
             SELECT * FROM UNNEST($1::text[], $2::int8[]) ORDER BY 1, 2
             ON CONFLICT DO NOTHING",
            &[&sessions, &apps],
        )
        .await
        .map_err(database)?;
        let (keys, counts): (Vec<&(&str, &str)>, Vec<i64>) = types.iter().unzip();
        let categories: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let names: Vec<&str> = keys.iter().map(|k| k.1).collect();
        tx.execute(
            "INSERT INTO type_counts (category, name, events)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) ORDER BY 1, 2
             ON CONFLICT (category, name) DO UPDATE SET events = type_counts.events + EXCLUDED.events",
            &[&categories, &names, &counts],
        )
        .await
        .map_err(database)?;
        let minute: Vec<i64> = minutes.keys().map(|k| k.0).collect();
        let categories: Vec<&str> = minutes.keys().map(|k| k.1).collect();
        let names: Vec<&str> = minutes.keys().map(|k| k.2).collect();
        let apps: Vec<i64> = minutes.keys().map(|k| k.3).collect();
        let counts: Vec<i64> = minutes.values().copied().collect();
        tx.execute(
            "INSERT INTO event_counts (minute, category, name, app_id, events)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[])
             ORDER BY 1, 2, 3, 4
             ON CONFLICT (minute, category, name, app_id)
             DO UPDATE SET events = event_counts.events + EXCLUDED.events",
            &[&minute, &categories, &names, &apps, &counts],
        )
        .await
        .map_err(database)?;
    }

    if !errors.event_id.is_empty() {
        let recorded = tx
            .query(
                "INSERT INTO errors (event_id, app_id, reason, message, field, raw, session_id,
                                     category, name, received_at, recorded_at, violations, status)
                 SELECT event_id, app_id, reason, message, field, raw, session_id, category, name,
                        received_at, $11::int8, violations, status
                 FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[],
                             $12::text[], $13::text[])
                      AS u(event_id, app_id, reason, message, field, raw, session_id, category,
                           name, received_at, violations, status)
                 ON CONFLICT (event_id) DO NOTHING
                 RETURNING status",
                &[
                    &errors.event_id,
                    &errors.app_id,
                    &errors.reason,
                    &errors.message,
                    &errors.field,
                    &errors.raw,
                    &errors.session_id,
                    &errors.category,
                    &errors.name,
                    &errors.received_at,
                    &now,
                    &errors.violations,
                    &errors.status,
                ],
            )
            .await
            .map_err(database)?;
        for row in recorded {
            match row.get::<_, &str>(0) {
                "warning" => outcome.warnings += 1,
                _ => outcome.refused += 1,
            }
        }
    }
    Ok(outcome)
}

#[derive(Default)]
struct EventColumns {
    id: Vec<Uuid>,
    app_id: Vec<i64>,
    client_id: Vec<Option<String>>,
    session_id: Vec<String>,
    category: Vec<String>,
    name: Vec<String>,
    data: Vec<String>,
    ts: Vec<i64>,
    seq: Vec<i64>,
    received_at: Vec<i64>,
    sent_at: Vec<Option<i64>>,
    schema_version: Vec<Option<i64>>,
}

#[derive(Default)]
struct ErrorColumns {
    event_id: Vec<Uuid>,
    app_id: Vec<i64>,
    reason: Vec<String>,
    message: Vec<String>,
    field: Vec<Option<String>>,
    raw: Vec<String>,
    session_id: Vec<Option<String>>,
    category: Vec<Option<String>>,
    name: Vec<Option<String>>,
    received_at: Vec<i64>,
    violations: Vec<Option<String>>,
    status: Vec<String>,
}

impl ErrorColumns {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        id: Uuid,
        app_id: i64,
        refusal: &eye_core::Refusal,
        raw: String,
        event: Option<&eye_core::IncomingEvent>,
        received_at: i64,
        status: RefusedStatus,
    ) -> Result<()> {
        self.event_id.push(id);
        self.app_id.push(app_id);
        self.reason.push(refusal.code.clone());
        self.message.push(refusal.message.clone());
        self.field.push(refusal.field.clone());
        self.raw.push(raw);
        self.session_id
            .push(event.map(|e| e.session_id.as_str().to_owned()));
        self.category
            .push(event.map(|e| e.event_type.category.clone()));
        self.name.push(event.map(|e| e.event_type.name.clone()));
        self.received_at.push(received_at);
        self.violations.push(violations_text(refusal)?);
        self.status.push(status.as_str().to_owned());
        Ok(())
    }
}

const EVENT_COLUMNS: &str = "e.pk, e.id, e.session_id, e.category, e.name, e.data::text, e.ts,
     e.seq, a.name, e.client_id, e.received_at, e.sent_at, e.schema_version";

fn raw_json(text: String) -> Result<Box<RawValue>> {
    RawValue::from_string(text).map_err(corrupt)
}

fn event_from_row(row: &Row) -> Result<StoredEvent> {
    let event = event_row(row);
    Ok(stored_event(&event, raw_json(event.data.to_owned())?))
}

fn event_row(row: &Row) -> EventRow<'_> {
    let (ts, seq): (i64, i64) = (row.get(6), row.get(7));
    EventRow {
        id: row.get(1),
        session_id: row.get(2),
        category: row.get(3),
        name: row.get(4),
        data: row.get(5),
        timestamp: Timestamp::from_micros(ts),
        seq,
        app: row.get(8),
        client_id: row.get(9),
        received_at: Timestamp::from_micros(row.get(10)),
        sent_at: row.get::<_, Option<i64>>(11).map(Timestamp::from_micros),
        schema_version: row.get(12),
        cursor: Cursor {
            ts,
            seq,
            pk: row.get(0),
        },
    }
}

fn events_sql(query: &EventQuery, limit: i64) -> Sql {
    let mut sql = Sql::new(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN apps a ON a.id = e.app_id WHERE TRUE"
    ));
    if let Some(session_id) = &query.session_id {
        sql.and("e.session_id = ?", session_id.clone());
    }
    if let Some(category) = &query.category {
        sql.and("e.category = ?", category.clone());
    }
    if let Some(name) = &query.name {
        sql.and("e.name = ?", name.clone());
    }
    if let Some(app) = &query.app {
        sql.and("(a.name = ? OR a.id::text = ?)", app.clone());
    }
    for data in &query.data {
        // `#>>` gives the value as text: strings, numbers and booleans alike.
        let path = sql.bind(data.path.clone());
        sql.and(
            &format!("e.data #>> {path}::text[] = ?"),
            data.value.clone(),
        );
    }
    if let Some(from) = query.from {
        sql.and("e.ts >= ?", from.as_micros());
    }
    if let Some(to) = query.to {
        sql.and("e.ts < ?", to.as_micros());
    }
    let (compare, direction) = match query.order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    if let Some(after) = query.after {
        let (ts, seq, pk) = (sql.bind(after.ts), sql.bind(after.seq), sql.bind(after.pk));
        sql.text.push_str(&format!(
            " AND (e.ts, e.seq, e.pk) {compare} ({ts}, {seq}, {pk})"
        ));
    }
    sql.text.push_str(&format!(
        " ORDER BY e.ts {direction}, e.seq {direction}, e.pk {direction} LIMIT {limit}"
    ));
    sql
}

async fn query_events(
    client: &impl GenericClient,
    query: &EventQuery,
) -> Result<Page<StoredEvent>> {
    let rows = events_sql(query, i64::from(query.limit) + 1)
        .query(client)
        .await?;
    let mut items = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = cut_to_limit(&mut items, query.limit, |e| e.cursor);
    Ok(Page { items, next })
}

const ERROR_COLUMNS: &str = "r.id, r.event_id, a.name, r.reason, r.message, r.field, r.violations,
     r.raw, r.session_id, r.category, r.name, r.received_at, r.recorded_at, r.updated_at, r.status";

fn error_from_row(row: &Row) -> Result<RefusedEvent> {
    let violations: Option<String> = row.get(6);
    let status: String = row.get(14);
    Ok(RefusedEvent {
        id: row.get(0),
        event_id: row.get(1),
        app: row.get(2),
        reason: row.get(3),
        message: row.get(4),
        field: row.get(5),
        violations: match violations {
            Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
            None => Vec::new(),
        },
        raw: raw_json(row.get(7))?,
        session_id: row.get(8),
        category: row.get(9),
        name: row.get(10),
        received_at: Timestamp::from_micros(row.get(11)),
        recorded_at: Timestamp::from_micros(row.get(12)),
        updated_at: row.get::<_, Option<i64>>(13).map(Timestamp::from_micros),
        status: RefusedStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown error status {status:?}")))?,
    })
}

fn error_filter(sql: &mut Sql, filter: &RefusedFilter) {
    if let Some(reason) = &filter.reason {
        sql.and("r.reason = ?", reason.clone());
    }
    if let Some(category) = &filter.category {
        sql.and("r.category = ?", category.clone());
    }
    if let Some(name) = &filter.name {
        sql.and("r.name = ?", name.clone());
    }
    if let Some(app) = &filter.app {
        sql.and("(a.name = ? OR a.id::text = ?)", app.clone());
    }
    if let Some(status) = filter.status {
        sql.and("r.status = ?", status.as_str().to_owned());
    }
    if let Some(from) = filter.from {
        sql.and("r.received_at >= ?", from.as_micros());
    }
    if let Some(to) = filter.to {
        sql.and("r.received_at < ?", to.as_micros());
    }
}

fn key_clause(sql: &mut Sql, key: RefusedKey) {
    match key {
        RefusedKey::EventId(id) => sql.and("r.event_id = ?", id),
        RefusedKey::Number(n) => sql.and("r.id = ?", n),
    }
}

async fn get_error(client: &impl GenericClient, key: RefusedKey) -> Result<Option<RefusedEvent>> {
    let mut sql = Sql::new(&format!(
        "SELECT {ERROR_COLUMNS} FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE"
    ));
    key_clause(&mut sql, key);
    let row = client
        .query_opt(&sql.text, &sql.params())
        .await
        .map_err(database)?;
    row.as_ref().map(error_from_row).transpose()
}

fn mode_from(text: &str) -> Result<SchemaMode> {
    SchemaMode::parse(text).ok_or_else(|| corrupt(format!("unknown schema mode {text:?}")))
}

async fn schema_record(
    client: &impl GenericClient,
    event_type: &EventType,
    version: Option<i64>,
) -> Result<Option<SchemaRecord>> {
    let row = client
        .query_opt(
            "SELECT v.version, coalesce(t.mode, 'enforce'), v.version = t.schema_version,
                    v.schema, v.created_at
             FROM schema_versions v
             LEFT JOIN event_types t ON t.category = v.category AND t.name = v.name
             WHERE v.category = $1 AND v.name = $2
               AND v.version = coalesce($3, t.schema_version)",
            &[&event_type.category, &event_type.name, &version],
        )
        .await
        .map_err(database)?;
    row.map(|row| {
        Ok(SchemaRecord {
            category: event_type.category.clone(),
            name: event_type.name.clone(),
            version: row.get(0),
            mode: mode_from(row.get(1))?,
            current: row.get::<_, Option<bool>>(2).unwrap_or(false),
            schema: raw_json(row.get(3))?,
            created_at: Timestamp::from_micros(row.get(4)),
        })
    })
    .transpose()
}

async fn event_types(
    client: &impl GenericClient,
    only: Option<&EventType>,
) -> Result<Vec<EventTypeInfo>> {
    let rows = client
        .query(
            "WITH known AS (
                 SELECT category, name FROM event_types
                 UNION SELECT category, name FROM type_counts
             )
             SELECT k.category, k.name, t.category IS NOT NULL, coalesce(t.mode, 'enforce'),
                    t.schema_version, coalesce(c.events, 0),
                    coalesce((SELECT array_agg(v.version ORDER BY v.version) FROM schema_versions v
                              WHERE v.category = k.category AND v.name = k.name), '{}')
             FROM known k
             LEFT JOIN event_types t ON t.category = k.category AND t.name = k.name
             LEFT JOIN type_counts c ON c.category = k.category AND c.name = k.name
             WHERE ($1::text IS NULL OR k.category = $1) AND ($2::text IS NULL OR k.name = $2)
             ORDER BY k.category, k.name",
            &[&only.map(|t| &t.category), &only.map(|t| &t.name)],
        )
        .await
        .map_err(database)?;
    rows.iter()
        .map(|row| {
            Ok(EventTypeInfo {
                category: row.get(0),
                name: row.get(1),
                registered: row.get(2),
                mode: mode_from(row.get(3))?,
                schema_version: row.get(4),
                versions: row.get(6),
                event_count: row.get(5),
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn write(&self, batch: Arc<Vec<Processed>>) -> Result<WriteOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let items: Vec<&Processed> = batch.iter().collect();
        let outcome = write_in(&tx, &items, self.legacy_until).await?;
        tx.commit().await.map_err(database)?;
        Ok(outcome)
    }

    async fn events(&self, query: EventQuery) -> Result<Page<StoredEvent>> {
        query_events(&self.client().await?, &query).await
    }

    async fn export_events(
        &self,
        mut query: EventQuery,
        max_events: Option<u64>,
        mut encode: RowEncoder,
        sink: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<()> {
        let client = self.client().await?;
        let mut remaining = max_events.unwrap_or(u64::MAX);
        let mut buffer = Vec::with_capacity(EXPORT_BUFFER + 4096);
        while remaining > 0 {
            let chunk = (EXPORT_CHUNK as u64).min(remaining);
            let rows = events_sql(&query, chunk as i64).query(&client).await?;
            let mut last = None;
            for row in &rows {
                let event = event_row(row);
                last = Some(event.cursor);
                encode(&event, &mut buffer);
                if buffer.len() >= EXPORT_BUFFER {
                    let full =
                        std::mem::replace(&mut buffer, Vec::with_capacity(EXPORT_BUFFER + 4096));
                    if sink.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
            remaining -= rows.len() as u64;
            match last {
                Some(cursor) if rows.len() as u64 == chunk => query.after = Some(cursor),
                _ => break,
            }
        }
        if !buffer.is_empty() {
            let _ = sink.send(buffer).await;
        }
        Ok(())
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionSummary>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.session_id = $1"),
                &[&session_id],
            )
            .await
            .map_err(database)?;
        Ok(row.as_ref().map(session_from_row))
    }

    async fn sessions(
        &self,
        query: SessionQuery,
    ) -> Result<(Vec<SessionSummary>, Option<SessionCursor>)> {
        let client = self.client().await?;
        let mut sql = Sql::new(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE TRUE"
        ));
        if let Some(from) = query.from {
            sql.and("s.last_seen >= ?", from.as_micros());
        }
        if let Some(to) = query.to {
            sql.and("s.first_seen < ?", to.as_micros());
        }
        if let Some(app) = &query.app {
            sql.and(
                "EXISTS (SELECT 1 FROM session_apps sa JOIN apps a ON a.id = sa.app_id
                         WHERE sa.session_id = s.session_id AND (a.name = ? OR a.id::text = ?))",
                app.clone(),
            );
        }
        if let Some(after) = &query.after {
            let (seen, id) = (
                sql.bind(after.last_seen),
                sql.bind(after.session_id.clone()),
            );
            sql.text.push_str(&format!(
                " AND (s.last_seen, s.session_id) < ({seen}, {id})"
            ));
        }
        sql.text.push_str(&format!(
            " ORDER BY s.last_seen DESC, s.session_id DESC LIMIT {}",
            i64::from(query.limit) + 1
        ));
        let rows = sql.query(&client).await?;
        let mut items: Vec<SessionSummary> = rows.iter().map(session_from_row).collect();
        let next = cut_to_limit(&mut items, query.limit, session_cursor);
        Ok((items, next))
    }

    async fn stats(&self, query: StatsQuery) -> Result<Vec<StatsRow>> {
        let client = self.client().await?;
        let (from, first_whole, end_whole, to) = split_range(&query);
        let mut tallies: Vec<Tally> = Vec::new();
        let edges = if first_whole < end_whole {
            let rows = client
                .query(
                    "SELECT minute, category, name, app_id, events FROM event_counts
                     WHERE minute >= $1 AND minute < $2",
                    &[&first_whole, &end_whole],
                )
                .await
                .map_err(database)?;
            tallies.extend(
                rows.iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))),
            );
            vec![(from, first_whole), (end_whole, to)]
        } else {
            vec![(from, to)]
        };
        for (from, to) in edges {
            if from >= to {
                continue;
            }
            let rows = client
                .query(
                    "SELECT ts, category, name, app_id FROM events WHERE ts >= $1 AND ts < $2",
                    &[&from, &to],
                )
                .await
                .map_err(database)?;
            tallies.extend(
                rows.iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), 1)),
            );
        }
        let app_names: HashMap<i64, String> = if query.group_by.contains(&GroupBy::App) {
            client
                .query("SELECT id, name FROM apps", &[])
                .await
                .map_err(database)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(group(&query, &tallies, &app_names))
    }

    async fn refused_events(&self, query: RefusedQuery) -> Result<Page<RefusedEvent>> {
        let client = self.client().await?;
        let mut sql = Sql::new(&format!(
            "SELECT {ERROR_COLUMNS} FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE"
        ));
        error_filter(&mut sql, &query.filter);
        if let Some(before) = query.before_id {
            sql.and("r.id < ?", before);
        }
        sql.text.push_str(&format!(
            " ORDER BY r.id DESC LIMIT {}",
            i64::from(query.limit) + 1
        ));
        let rows = sql.query(&client).await?;
        let mut items = rows
            .iter()
            .map(error_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next = cut_to_limit(&mut items, query.limit, error_cursor);
        Ok(Page { items, next })
    }

    async fn refused_event(&self, key: RefusedKey) -> Result<Option<RefusedEvent>> {
        get_error(&self.client().await?, key).await
    }

    async fn refused_summary(&self, filter: RefusedFilter) -> Result<RefusedSummary> {
        let client = self.client().await?;
        let mut sql = Sql::new(
            "SELECT r.reason, r.category, r.name, count(*)::int8
             FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE",
        );
        error_filter(&mut sql, &filter);
        sql.text.push_str(
            " GROUP BY r.reason, r.category, r.name
              ORDER BY count(*) DESC, r.reason, r.category, r.name",
        );
        let by_reason_and_type: Vec<RefusedCount> = sql
            .query(&client)
            .await?
            .iter()
            .map(|row| RefusedCount {
                reason: row.get(0),
                category: row.get(1),
                name: row.get(2),
                count: row.get(3),
            })
            .collect();
        let mut sql = Sql::new(&format!(
            "SELECT floor(r.received_at::numeric / {HOUR_MICROS})::int8 * {HOUR_MICROS}, r.reason,
                    r.category, r.name, count(*)::int8
             FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE"
        ));
        error_filter(&mut sql, &filter);
        sql.text.push_str(
            " GROUP BY 1, r.reason, r.category, r.name
              ORDER BY 1, count(*) DESC, r.reason, r.category, r.name",
        );
        let hourly: Vec<HourlyRefusedCount> = sql
            .query(&client)
            .await?
            .iter()
            .map(|row| HourlyRefusedCount {
                hour: Timestamp::from_micros(row.get(0)),
                reason: row.get(1),
                category: row.get(2),
                name: row.get(3),
                count: row.get(4),
            })
            .collect();
        Ok(RefusedSummary {
            total: by_reason_and_type.iter().map(|c| c.count).sum(),
            by_reason_and_type,
            hourly,
        })
    }

    async fn dismiss_refused(&self, key: RefusedKey) -> Result<RefusedEvent> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let record = get_error(&tx, key)
            .await?
            .ok_or_else(|| StoreError::NotFound("error".into()))?;
        if !needs_dismissing(&record)? {
            return Ok(record);
        }
        tx.execute(
            "UPDATE errors SET status = 'dismissed', updated_at = $2 WHERE id = $1",
            &[&record.id, &Timestamp::now().as_micros()],
        )
        .await
        .map_err(database)?;
        let record = get_error(&tx, RefusedKey::Number(record.id))
            .await?
            .ok_or_else(|| StoreError::NotFound("error".into()))?;
        tx.commit().await.map_err(database)?;
        Ok(record)
    }

    async fn open_refusals(
        &self,
        filter: RefusedFilter,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OpenRefusal>> {
        let client = self.client().await?;
        let mut filter = filter;
        filter.status = Some(RefusedStatus::Open);
        let mut sql = Sql::new(
            "SELECT r.id, r.event_id, r.app_id, r.received_at, r.raw
             FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE",
        );
        error_filter(&mut sql, &filter);
        sql.and("r.id > ?", after_id);
        sql.text
            .push_str(&format!(" ORDER BY r.id LIMIT {}", i64::from(limit)));
        Ok(sql
            .query(&client)
            .await?
            .iter()
            .map(|row| OpenRefusal {
                id: row.get(0),
                event_id: row.get(1),
                app_id: row.get(2),
                received_at: row.get(3),
                raw: row.get(4),
            })
            .collect())
    }

    async fn resolve_refusals(&self, resolutions: Vec<Resolution>) -> Result<ReprocessOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let now = Timestamp::now().as_micros();
        let mut outcome = ReprocessOutcome::default();
        let mut fixed: Vec<&Processed> = Vec::new();
        for resolution in &resolutions {
            match resolution {
                Resolution::Fixed { error_id, event } => {
                    // Only an error this transaction moves out of `open` becomes an event.
                    let changed = tx
                        .execute(
                            "UPDATE errors SET status = 'reprocessed', updated_at = $2
                             WHERE id = $1 AND status = 'open'",
                            &[error_id, &now],
                        )
                        .await
                        .map_err(database)?;
                    if changed == 1 {
                        fixed.push(event);
                        outcome.reprocessed += 1;
                    }
                }
                Resolution::StillInvalid { error_id, refusal } => {
                    outcome.still_invalid += tx
                        .execute(
                            "UPDATE errors SET reason = $2, message = $3, field = $4,
                                 violations = $5, updated_at = $6
                             WHERE id = $1 AND status = 'open'",
                            &[
                                error_id,
                                &refusal.code,
                                &refusal.message,
                                &refusal.field,
                                &violations_text(refusal)?,
                                &now,
                            ],
                        )
                        .await
                        .map_err(database)?;
                }
            }
        }
        write_in(&tx, &fixed, self.legacy_until).await?;
        tx.commit().await.map_err(database)?;
        Ok(outcome)
    }

    async fn active_types(&self) -> Result<Vec<ActiveType>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT t.category, t.name, t.mode, t.schema_version, v.schema
                 FROM event_types t
                 LEFT JOIN schema_versions v
                   ON v.category = t.category AND v.name = t.name AND v.version = t.schema_version",
                &[],
            )
            .await
            .map_err(database)?;
        rows.iter()
            .map(|row| {
                let version: Option<i64> = row.get(3);
                let schema: Option<String> = row.get(4);
                Ok(ActiveType {
                    event_type: EventType {
                        category: row.get(0),
                        name: row.get(1),
                    },
                    mode: mode_from(row.get(2))?,
                    schema: version.zip(schema),
                })
            })
            .collect()
    }

    async fn event_types(&self) -> Result<Vec<EventTypeInfo>> {
        event_types(&self.client().await?, None).await
    }

    async fn event_type(&self, event_type: &EventType) -> Result<Option<EventTypeInfo>> {
        Ok(event_types(&self.client().await?, Some(event_type))
            .await?
            .pop())
    }

    async fn schema(
        &self,
        event_type: &EventType,
        version: Option<i64>,
    ) -> Result<Option<SchemaRecord>> {
        schema_record(&self.client().await?, event_type, version).await
    }

    async fn put_schema(
        &self,
        event_type: &EventType,
        schema: String,
        mode: Option<SchemaMode>,
    ) -> Result<(SchemaRecord, bool)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let (category, name) = (&event_type.category, &event_type.name);
        // Serializes writers of one type's versions.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1 || chr(31) || $2))",
            &[category, name],
        )
        .await
        .map_err(database)?;
        let now = Timestamp::now().as_micros();
        let current = schema_record(&tx, event_type, None).await?;
        let unchanged = current.as_ref().is_some_and(|c| c.schema.get() == schema);
        if !unchanged {
            let version: i64 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) + 1 FROM schema_versions
                     WHERE category = $1 AND name = $2",
                    &[category, name],
                )
                .await
                .map_err(database)?
                .get(0);
            tx.execute(
                "INSERT INTO schema_versions (category, name, version, schema, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[category, name, &version, &schema, &now],
            )
            .await
            .map_err(database)?;
            tx.execute(
                "INSERT INTO event_types (category, name, schema_version, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (category, name) DO UPDATE SET
                     schema_version = EXCLUDED.schema_version, updated_at = EXCLUDED.updated_at",
                &[category, name, &version, &now],
            )
            .await
            .map_err(database)?;
        }
        if let Some(mode) = mode {
            tx.execute(
                "UPDATE event_types SET mode = $3, updated_at = $4 WHERE category = $1 AND name = $2",
                &[category, name, &mode.as_str(), &now],
            )
            .await
            .map_err(database)?;
        }
        let record = schema_record(&tx, event_type, None)
            .await?
            .ok_or_else(|| corrupt("a schema just written is missing"))?;
        tx.commit().await.map_err(database)?;
        Ok((record, !unchanged))
    }

    async fn delete_schema(&self, event_type: &EventType) -> Result<()> {
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE event_types SET schema_version = NULL, updated_at = $3
                 WHERE category = $1 AND name = $2 AND schema_version IS NOT NULL",
                &[
                    &event_type.category,
                    &event_type.name,
                    &Timestamp::now().as_micros(),
                ],
            )
            .await
            .map_err(database)?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!(
                "a schema for {:?}/{:?}",
                event_type.category, event_type.name
            )));
        }
        Ok(())
    }

    async fn authenticate(&self, hash: TokenHash) -> Result<Option<TokenGrant>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT t.id, t.scope, t.app_id FROM tokens t LEFT JOIN apps a ON a.id = t.app_id
                 WHERE t.hash = $1 AND t.revoked_at IS NULL AND a.revoked_at IS NULL",
                &[&&hash.0[..]],
            )
            .await
            .map_err(database)?;
        row.map(|row| {
            let scope: &str = row.get(1);
            Ok(TokenGrant {
                token_id: row.get(0),
                scope: Scope::parse(scope)
                    .ok_or_else(|| corrupt(format!("unknown token scope {scope:?}")))?,
                app_id: row.get(2),
            })
        })
        .transpose()
    }

    async fn create_app(&self, name: &str) -> Result<App> {
        let now = Timestamp::now().as_micros();
        let row = self
            .client()
            .await?
            .query_opt(
                "INSERT INTO apps (name, created_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &now],
            )
            .await
            .map_err(database)?;
        let row = row.ok_or_else(|| StoreError::Conflict(format!("application {name:?}")))?;
        Ok(App {
            id: row.get(0),
            name: name.to_owned(),
            created_at: Timestamp::from_micros(now),
            revoked_at: None,
            allowed_origins: Vec::new(),
        })
    }

    async fn set_allowed_origins(&self, name: &str, origins: &[String]) -> Result<()> {
        let found = self
            .client()
            .await?
            .execute(
                "UPDATE apps SET allowed_origins = $2 WHERE name = $1",
                &[&name, &origins.join("\n")],
            )
            .await
            .map_err(database)?;
        if found == 0 {
            return Err(StoreError::NotFound(format!("application {name:?}")));
        }
        Ok(())
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT id, name, created_at, revoked_at, allowed_origins FROM apps ORDER BY name",
                &[],
            )
            .await
            .map_err(database)?
            .iter()
            .map(|row| App {
                id: row.get(0),
                name: row.get(1),
                created_at: Timestamp::from_micros(row.get(2)),
                revoked_at: row.get::<_, Option<i64>>(3).map(Timestamp::from_micros),
                allowed_origins: crate::origins_from_text(row.get(4)),
            })
            .collect())
    }

    async fn revoke_app(&self, name: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let now = Timestamp::now().as_micros();
        let revoked = tx
            .execute(
                "UPDATE apps SET revoked_at = coalesce(revoked_at, $2) WHERE name = $1",
                &[&name, &now],
            )
            .await
            .map_err(database)?;
        if revoked == 0 {
            return Err(StoreError::NotFound(format!("application {name:?}")));
        }
        tx.execute(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, $2)
             WHERE app_id = (SELECT id FROM apps WHERE name = $1)",
            &[&name, &now],
        )
        .await
        .map_err(database)?;
        tx.commit().await.map_err(database)?;
        Ok(())
    }

    async fn create_token(
        &self,
        hash: TokenHash,
        scope: Scope,
        app_id: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64> {
        Ok(self
            .client()
            .await?
            .query_one(
                "INSERT INTO tokens (hash, scope, app_id, label, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &&hash.0[..],
                    &scope.as_str(),
                    &app_id,
                    &label,
                    &Timestamp::now().as_micros(),
                ],
            )
            .await
            .map_err(database)?
            .get(0))
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT t.id, t.scope, a.name, t.label, t.created_at, t.revoked_at
                 FROM tokens t LEFT JOIN apps a ON a.id = t.app_id ORDER BY t.id",
                &[],
            )
            .await
            .map_err(database)?
            .iter()
            .map(|row| TokenInfo {
                id: row.get(0),
                scope: row.get(1),
                app: row.get(2),
                label: row.get(3),
                created_at: Timestamp::from_micros(row.get(4)),
                revoked_at: row.get::<_, Option<i64>>(5).map(Timestamp::from_micros),
            })
            .collect())
    }

    async fn revoke_token(&self, id: i64) -> Result<()> {
        let found = self
            .client()
            .await?
            .execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                &[&id, &Timestamp::now().as_micros()],
            )
            .await
            .map_err(database)?;
        if found == 0 {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        Ok(())
    }

    async fn create_user(&self, email: &str, password_hash: &str, role: &str) -> Result<i64> {
        let row = self
            .client()
            .await?
            .query_opt(
                "INSERT INTO users (email, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (email) DO NOTHING RETURNING id",
                &[&email, &password_hash, &role, &Timestamp::now().as_micros()],
            )
            .await
            .map_err(database)?;
        let row = row.ok_or_else(|| StoreError::Conflict(format!("user {email:?}")))?;
        Ok(row.get(0))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = self
            .client()
            .await?
            .query_opt(&format!("{USER_COLUMNS} WHERE email = $1"), &[&email])
            .await
            .map_err(database)?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self
            .client()
            .await?
            .query(&format!("{USER_COLUMNS} ORDER BY email"), &[])
            .await
            .map_err(database)?
            .iter()
            .map(user_from_row)
            .collect())
    }

    async fn create_login(&self, login: NewLogin) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM logins WHERE expires_at <= $1",
                &[&login.created_at.as_micros()],
            )
            .await
            .map_err(database)?;
        client
            .execute(
                "INSERT INTO logins (hash, user_id, csrf, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &&login.hash.0[..],
                    &login.user_id,
                    &login.csrf,
                    &login.created_at.as_micros(),
                    &login.expires_at.as_micros(),
                ],
            )
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn login(&self, hash: TokenHash, now: Timestamp) -> Result<Option<Login>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT u.id, u.email, u.password_hash, u.role, u.created_at, u.disabled_at,
                        l.csrf, l.expires_at
                 FROM logins l JOIN users u ON u.id = l.user_id
                 WHERE l.hash = $1 AND l.expires_at > $2 AND u.disabled_at IS NULL",
                &[&&hash.0[..], &now.as_micros()],
            )
            .await
            .map_err(database)?;
        Ok(row.map(|row| Login {
            user: user_from_row(&row),
            csrf: row.get(6),
            expires_at: Timestamp::from_micros(row.get(7)),
        }))
    }

    async fn delete_login(&self, hash: TokenHash) -> Result<()> {
        self.client()
            .await?
            .execute("DELETE FROM logins WHERE hash = $1", &[&&hash.0[..]])
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events e JOIN apps a ON a.id = e.app_id WHERE e.id = $1"
                ),
                &[&id],
            )
            .await
            .map_err(database)?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn audit(&self, entry: AuditEntry) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO audit_log (at, actor, action, target, details)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &entry.at.as_micros(),
                    &entry.actor,
                    &entry.action,
                    &entry.target,
                    &entry.details,
                ],
            )
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT at, actor, action, target, details FROM audit_log
                 ORDER BY at DESC, id DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .await
            .map_err(database)?
            .iter()
            .map(|row| AuditEntry {
                at: Timestamp::from_micros(row.get(0)),
                actor: row.get(1),
                action: row.get(2),
                target: row.get(3),
                details: row.get(4),
            })
            .collect())
    }
}

/// A session and its applications' names, over `sessions s`: what `session_from_row`
/// reads.
const SESSION_COLUMNS: &str = "s.session_id, s.first_seen, s.last_seen, s.event_count,
     coalesce((SELECT array_agg(a.name ORDER BY a.name) FROM session_apps sa
               JOIN apps a ON a.id = sa.app_id
               WHERE sa.session_id = s.session_id), '{}')";

fn session_from_row(row: &Row) -> SessionSummary {
    SessionSummary {
        session_id: row.get(0),
        first_seen: Timestamp::from_micros(row.get(1)),
        last_seen: Timestamp::from_micros(row.get(2)),
        event_count: row.get(3),
        apps: row.get(4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
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
                eprintln!("skipping: PostgreSQL is not reachable ({error})");
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
                 DELETE FROM eye_migrations WHERE version = 6;
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
}
