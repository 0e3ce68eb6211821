//! The embedded store: SQLite in WAL mode in `eye.db` inside the data directory.
//!
//! One writer connection (the worker's batches and the management commands) and a
//! small pool of reader connections, so that queries never wait for a write: WAL lets
//! readers and the writer proceed at once. Every call runs on tokio's blocking pool.
//! The CLI opens the same file while a server runs; SQLite's locking and a busy timeout
//! make that safe.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eye_core::auth::{Scope, TokenHash};
use eye_core::{Timestamp, ids};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::*;

use crate::rows::{cut_to_limit, stored_event, violations_text};

mod access;
mod analytics;
mod events;
mod indexes;
mod lifecycle;
mod refused;
mod registry;
#[cfg(test)]
mod tests;
mod write;

// What the files of this back end share with each other.
#[cfg(test)]
use write::merge_fresh_sessions;
use write::write_in;

/// The store's schema version: how many migrations this binary knows.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_schemas.sql"),
    include_str!("../../migrations/sqlite/0003_queries.sql"),
    include_str!("../../migrations/sqlite/0004_security.sql"),
    include_str!("../../migrations/sqlite/0005_users.sql"),
    include_str!("../../migrations/sqlite/0006_logins.sql"),
    include_str!("../../migrations/sqlite/0007_events_by_type.sql"),
    include_str!("../../migrations/sqlite/0008_session_index.sql"),
    include_str!("../../migrations/sqlite/0009_store_meta.sql"),
    include_str!("../../migrations/sqlite/0010_lifecycle.sql"),
    include_str!("../../migrations/sqlite/0011_events_by_name.sql"),
    include_str!("../../migrations/sqlite/0012_indexed_fields.sql"),
];

/// Readers kept open between queries; more may be opened under load and are closed after.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// How long one query may run before SQLite is told to stop it (none: unbounded).
    budget: Option<Duration>,
    /// Analysts' queries running at once (`query_with`).
    query_slots: Arc<tokio::sync::Semaphore>,
}

/// Analysts' queries that run at once on the embedded store; more wait. Two: on the
/// two cores this is measured on, the worker and the API keep a core between them.
pub const QUERY_SLOTS: usize = 2;

/// SQLite virtual-machine steps between two looks at a read's deadline: a few
/// microseconds of work, so a read stops within a millisecond of its budget.
const BUDGET_CHECK_STEPS: i32 = 10_000;

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
            budget: None,
            query_slots: Arc::new(tokio::sync::Semaphore::new(QUERY_SLOTS)),
        })
    }

    /// Bounds every analyst's query (a page, a session, counts, refused events) to
    /// `budget`: one that runs longer is stopped and answers [`StoreError::OverBudget`].
    /// Exports and the store's own lookups are not bounded.
    pub fn set_query_budget(&mut self, budget: Duration) {
        self.budget = Some(budget);
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

    /// Runs `f` on a reader connection: the store's own lookups (tokens, types,
    /// applications), never bounded, never queued behind analysts' queries.
    async fn read_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.read_within(None, f).await
    }

    /// Runs an analyst's query (a page, a session, counts, refused events): within the
    /// query budget, and at most [`QUERY_SLOTS`] at once, so that heavy queries cannot
    /// take every core from ingest; the others wait for a slot.
    async fn query_with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let slot = self.query_slots.acquire();
        // The wait for a slot counts against the budget: a query answers within it,
        // queued or not.
        let _slot = match self.budget {
            Some(budget) => tokio::time::timeout(budget, slot)
                .await
                .map_err(|_| StoreError::OverBudget)?,
            None => slot.await,
        }
        .map_err(|e| StoreError::Task(e.to_string()))?;
        let left = self
            .budget
            .map(|budget| budget.saturating_sub(started.elapsed()));
        self.read_within(left, f).await
    }

    /// Runs `f` on a reader connection, stopped after `budget` if one is given.
    async fn read_within<T, F>(&self, budget: Option<Duration>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut r| r.pop());
            let mut conn = match pooled {
                Some(conn) => conn,
                None => connect(&path)?,
            };
            let result = match budget {
                None => f(&conn),
                Some(budget) => {
                    let deadline = std::time::Instant::now() + budget;
                    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let flag = Arc::clone(&stopped);
                    conn.progress_handler(
                        BUDGET_CHECK_STEPS,
                        Some(move || {
                            let over = std::time::Instant::now() >= deadline;
                            if over {
                                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                            over
                        }),
                    )?;
                    let result = f(&conn);
                    // The connection goes back to the pool: it must not keep this deadline.
                    conn.progress_handler(BUDGET_CHECK_STEPS, None::<fn() -> bool>)?;
                    if stopped.load(std::sync::atomic::Ordering::Relaxed) && result.is_err() {
                        Err(StoreError::OverBudget)
                    } else {
                        result
                    }
                }
            };
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

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Database(error.to_string())
    }
}
