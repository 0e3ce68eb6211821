//! The PostgreSQL store: the same data model and semantics as the embedded one (see
//! `migrations/postgres/`), for fleets of API and worker processes.
//!
//! A `deadpool` pool of `tokio-postgres` connections. A worker batch is one
//! transaction of a few array-parameter statements (`INSERT ... SELECT FROM UNNEST`),
//! whatever its size: event ids first (`event_ids`, `ON CONFLICT (id) DO NOTHING
//! RETURNING id`: the idempotency key, apart from the events, which are partitioned by
//! reception time, see `partitions.rs`), then those events, then,
//! for the events actually inserted, the session, type and per-minute counters summed
//! in Rust and upserted in key order, so that concurrent workers take row locks in the
//! same order and cannot deadlock. Payloads are `jsonb`.

use std::collections::{HashMap, HashSet};
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

use crate::aggregate::{Tally, group, split_range};
use crate::rows::{
    cut_to_limit, error_cursor, needs_dismissing, session_cursor, stored_event, violations_text,
};
use crate::*;

mod access;
mod analytics;
mod events;
mod indexes;
mod lifecycle;
pub mod partitions;
mod refused;
mod registry;
#[cfg(test)]
mod tests;
mod write;

// What the files of this back end share with each other.
use events::{SESSION_COLUMNS, session_from_row};
use write::write_in;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_security.sql"),
    include_str!("../../migrations/postgres/0003_users.sql"),
    include_str!("../../migrations/postgres/0004_logins.sql"),
    include_str!("../../migrations/postgres/0005_events_by_type.sql"),
    include_str!("../../migrations/postgres/0006_store_meta.sql"),
    include_str!("../../migrations/postgres/0007_lifecycle.sql"),
    include_str!("../../migrations/postgres/0008_partitioned_events.sql"),
    include_str!("../../migrations/postgres/0009_events_by_name.sql"),
    include_str!("../../migrations/postgres/0010_indexed_fields.sql"),
];

/// Serializes migrations between processes starting at once.
const MIGRATION_LOCK: i64 = 0x0e7e_0001;

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

    /// Runs the statement, prepared once per connection (parsed and analysed once;
    /// planned with its values at each run, see `connect_with_password`).
    async fn query(&self, client: &impl GenericClient) -> Result<Vec<Row>> {
        let statement = client.prepare_cached(&self.text).await.map_err(database)?;
        client
            .query(&statement, &self.params())
            .await
            .map_err(database)
    }
}

fn database(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        // `statement_timeout` of the read pool (`set_query_budget`).
        Some(db) if db.code() == &tokio_postgres::error::SqlState::QUERY_CANCELED => {
            StoreError::OverBudget
        }
        Some(db) => StoreError::Database(format!("{} ({})", db.message(), db.code().code())),
        None => StoreError::Database(error.to_string()),
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn pool(config: tokio_postgres::Config) -> Result<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(16)
        .build()
        .map_err(|e| StoreError::Database(e.to_string()))
}

/// `database_url` with its connections' `search_path` set to `schema`: a store of its
/// own in a shared database (benchmarks, tests).
pub fn in_schema(database_url: &str, schema: &str) -> String {
    let separator = if database_url.contains('?') { '&' } else { '?' };
    format!("{database_url}{separator}options=-csearch_path%3D{schema}")
}

/// Connections for analysts' queries (`set_query_budget`): more queries wait, so heavy
/// ones cannot take every connection (and the database's cores) from the workers.
pub const QUERY_CONNECTIONS: usize = 4;

pub struct PgStore {
    pool: Pool,
    /// Connections for analysts' reads, each statement bounded by the query budget
    /// (`statement_timeout`); without a budget, reads use `pool`.
    reads: Option<Pool>,
    /// The connection settings, for `reads`.
    config: tokio_postgres::Config,
    /// `store_meta`'s `legacy_v7_client_ids_until_ms`, read once at connect: only the
    /// migration that upgrades a store writes it, and `connect` migrates first.
    legacy_until: Option<i64>,
    partitions: partitions::Partitions,
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
            .map_err(|e| StoreError::Database(format!("the database URL is invalid: {e}")))?;
        if let Some(password) = password {
            config.password(password);
        }
        // Statements are prepared once per connection (`Sql::query`) and planned with
        // their values each time they run: a generic plan cannot tell a rare value
        // from a common one (`name` no event has: 0.8 ms with its value, 3.9 s without,
        // on 10M events).
        let options = format!(
            "{} -c plan_cache_mode=force_custom_plan",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        let pool = pool(config.clone())?;
        let mut store = PgStore {
            pool,
            reads: None,
            config,
            legacy_until: None,
            partitions: partitions::Partitions::new(86_400),
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

    /// The span of the events partitions made from now on (a day unless set), in
    /// seconds, from `partitions::MIN_INTERVAL_SECONDS` to `MAX_INTERVAL_SECONDS`.
    pub fn set_partition_interval(&mut self, seconds: u64) {
        let seconds = seconds.clamp(
            partitions::MIN_INTERVAL_SECONDS,
            partitions::MAX_INTERVAL_SECONDS,
        );
        self.partitions = partitions::Partitions::new(seconds);
    }

    /// Bounds each statement of the analysts' reads (pages, sessions, counts, refused
    /// events) to `budget`: one that runs longer is cancelled by PostgreSQL and
    /// answers [`StoreError::OverBudget`]. Exports and writes are not bounded.
    pub fn set_query_budget(&mut self, budget: std::time::Duration) -> Result<()> {
        let mut config = self.config.clone();
        let options = format!(
            "{} -c statement_timeout={}",
            config.get_options().unwrap_or_default(),
            budget.as_millis().max(1)
        );
        config.options(options.trim());
        // At most this many analysts' queries at once; more wait for a connection.
        let reads = pool(config)?;
        reads.resize(QUERY_CONNECTIONS);
        self.reads = Some(reads);
        Ok(())
    }

    /// A connection for an analyst's read: within the query budget when there is one.
    async fn reader(&self) -> Result<deadpool_postgres::Object> {
        match &self.reads {
            Some(reads) => reads
                .get()
                .await
                .map_err(|e| StoreError::Database(format!("no database connection: {e}"))),
            None => self.client().await,
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Database(format!("no database connection: {e}")))
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

fn raw_json(text: String) -> Result<Box<RawValue>> {
    RawValue::from_string(text).map_err(corrupt)
}
