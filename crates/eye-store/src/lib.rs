//! The event store: the [`Store`] trait that the worker writes through and the API
//! reads through, the types that cross it, and the SQLite implementation
//! ([`sqlite::SqliteStore`]), which is the embedded default.
//!
//! Invariants every implementation keeps: an event id is stored at most once (so a
//! redelivered message or a resent client id changes nothing); an event, its session's
//! counters and its session-application link are written in the same transaction; an
//! error record is keyed by the id of the message that produced it.

use eye_core::auth::{Scope, TokenHash};
use eye_core::{IncomingEvent, Rejection, Timestamp};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

pub mod cursor;
pub mod sqlite;

pub use cursor::Cursor;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("store task failed: {0}")]
    Task(String),
    #[error("store IO failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// What the worker decided about one queued message.
#[derive(Debug, Clone)]
pub enum Processed {
    Event {
        id: Uuid,
        app_id: i64,
        received_at: i64,
        event: IncomingEvent,
    },
    Error {
        id: Uuid,
        app_id: i64,
        received_at: i64,
        rejection: Rejection,
        /// The event as the client sent it (or as the API parsed it), as JSON text.
        raw: String,
        event: Option<IncomingEvent>,
    },
}

/// What one write did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    pub stored: u64,
    /// Events whose id was already stored: redeliveries and resent client ids.
    pub duplicates: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// A query over stored events. Times are inclusive at `from`, exclusive at `to`.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub session_id: Option<String>,
    pub category: Option<String>,
    pub name: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub order: Order,
    pub limit: u32,
    pub after: Option<Cursor>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    pub data: Box<RawValue>,
    pub timestamp: Timestamp,
    pub seq: i64,
    pub app: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub received_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    #[serde(skip)]
    pub cursor: Cursor,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items may follow.
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub session_id: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub event_count: i64,
    pub apps: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ErrorQuery {
    pub reason: Option<String>,
    pub limit: u32,
    /// Errors are listed newest first; this is the id of the last one seen.
    pub before_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorRecord {
    pub id: i64,
    pub event_id: Uuid,
    pub app: String,
    pub reason: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub raw: Box<RawValue>,
    pub received_at: Timestamp,
    pub recorded_at: Timestamp,
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

/// A valid, unrevoked token as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGrant {
    pub token_id: i64,
    pub scope: Scope,
    /// The application an ingest token sends for.
    pub app_id: Option<i64>,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes one worker batch in one transaction. The batch is shared, not moved, so
    /// that a caller retrying after a failure does not copy it.
    async fn write(&self, batch: std::sync::Arc<Vec<Processed>>) -> Result<WriteOutcome>;

    async fn events(&self, query: EventQuery) -> Result<Page<StoredEvent>>;
    async fn session(&self, session_id: &str) -> Result<Option<SessionSummary>>;
    async fn errors(&self, query: ErrorQuery) -> Result<Page<ErrorRecord>>;

    /// Looks a token up by its hash; `None` when unknown or revoked.
    async fn authenticate(&self, hash: TokenHash) -> Result<Option<TokenGrant>>;
    async fn create_app(&self, name: &str) -> Result<App>;
    async fn list_apps(&self) -> Result<Vec<App>>;
    /// Revokes an application and every token of it.
    async fn revoke_app(&self, name: &str) -> Result<()>;
    async fn create_token(
        &self,
        hash: TokenHash,
        scope: Scope,
        app_id: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64>;
}
