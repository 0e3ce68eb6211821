//! The event store: the [`Store`] trait that the worker writes through and the API
//! reads through, the types that cross it, and the SQLite implementation
//! ([`sqlite::SqliteStore`]), which is the embedded default.
//!
//! Invariants every implementation keeps: an event id is stored at most once (so a
//! redelivered message or a resent client id changes nothing); an event, its session's
//! counters and its session-application link are written in the same transaction; an
//! error record is keyed by the id of the message that produced it.

use eye_core::auth::{Scope, TokenHash};
use eye_core::reason::Violation;
use eye_core::schema::{ActiveType, SchemaMode};
use eye_core::{EventType, IncomingEvent, Refusal, Timestamp};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

mod aggregate;
pub mod cursor;
pub mod postgres;
mod rows;
pub mod sqlite;
#[cfg(test)]
mod testing;

pub use cursor::{Cursor, SessionCursor};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The request is valid but not in the record's present state.
    #[error("{0}")]
    InvalidState(String),
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
        /// The schema version the payload was checked against; `None` when its type
        /// has no schema.
        schema_version: Option<i64>,
        /// Violations found in shadow mode: the event is stored, and this is recorded
        /// as an error with status `warning`.
        warning: Option<Refusal>,
    },
    /// Refused: recorded in the store of refused events (the "error store").
    Refused {
        id: Uuid,
        app_id: i64,
        received_at: i64,
        refusal: Refusal,
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
    /// Refused events recorded.
    pub refused: u64,
    /// Shadow-mode warnings recorded for stored events.
    pub warnings: u64,
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
    /// An application's name, or its numeric id.
    pub app: Option<String>,
    /// Equality on payload fields: every one must match.
    pub data: Vec<DataFilter>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub order: Order,
    pub limit: u32,
    pub after: Option<Cursor>,
}

/// A stored event borrowed from the store's row, for exports: writing it out copies
/// nothing and re-validates nothing. The same fields as [`StoredEvent`].
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    pub id: Uuid,
    pub session_id: &'a str,
    pub category: &'a str,
    pub name: &'a str,
    /// The payload's JSON text, as stored.
    pub data: &'a str,
    pub timestamp: Timestamp,
    pub seq: i64,
    pub app: &'a str,
    pub client_id: Option<&'a str>,
    pub received_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub schema_version: Option<i64>,
    pub cursor: Cursor,
}

/// Writes one exported event into the buffer (an NDJSON line, a CSV row).
pub type RowEncoder = Box<dyn FnMut(&EventRow<'_>, &mut Vec<u8>) + Send>;

/// `data.form.first_name=John`: the value at `path` inside `data` equals `value`, as
/// a string, or as the number or boolean it spells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFilter {
    /// Object keys from the top of `data`, at least one.
    pub path: Vec<String>,
    pub value: String,
}

/// Sessions that overlap a time range, most recently active first.
#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub app: Option<String>,
    /// Sessions active at or after `from` (their last event).
    pub from: Option<Timestamp>,
    /// Sessions active before `to` (their first event).
    pub to: Option<Timestamp>,
    pub limit: u32,
    pub after: Option<SessionCursor>,
}

/// What `/stats` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupBy {
    Category,
    Name,
    App,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    pub fn micros(self) -> i64 {
        match self {
            Bucket::Minute => 60_000_000,
            Bucket::Hour => 3_600_000_000,
            Bucket::Day => 86_400_000_000,
        }
    }
}

/// Event counts over `[from, to)`, grouped by the `group_by` keys and, optionally,
/// by time bucket (UTC).
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    pub group_by: Vec<GroupBy>,
    pub bucket: Option<Bucket>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// One group's count; the fields not grouped by are absent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct StatsRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    pub timestamp: Timestamp,
    pub seq: i64,
    pub app: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub received_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    /// The schema version the payload was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    #[serde(skip)]
    #[schema(ignore)]
    pub cursor: Cursor,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items may follow.
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionSummary {
    pub session_id: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub event_count: i64,
    pub apps: Vec<String>,
}

/// Which errors: every given field must match. Times are inclusive at `from`,
/// exclusive at `to`, and apply to when the event was received.
#[derive(Debug, Clone, Default)]
pub struct RefusedFilter {
    pub reason: Option<String>,
    pub category: Option<String>,
    pub name: Option<String>,
    /// An application's name, or its numeric id.
    pub app: Option<String>,
    pub status: Option<RefusedStatus>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
pub struct RefusedQuery {
    pub filter: RefusedFilter,
    pub limit: u32,
    /// Errors are listed newest first; this is the id of the last one seen.
    pub before_id: Option<i64>,
}

/// Where an error record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ErrorStatus)]
#[serde(rename_all = "snake_case")]
pub enum RefusedStatus {
    /// Refused, waiting for a fix and a reprocess (or a dismissal).
    Open,
    /// Became an event after a reprocess.
    Reprocessed,
    /// An operator decided it needs nothing more.
    Dismissed,
    /// A shadow-mode violation of an event that was stored anyway.
    Warning,
}

impl RefusedStatus {
    pub const ALL: [RefusedStatus; 4] = [
        RefusedStatus::Open,
        RefusedStatus::Reprocessed,
        RefusedStatus::Dismissed,
        RefusedStatus::Warning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusedStatus::Open => "open",
            RefusedStatus::Reprocessed => "reprocessed",
            RefusedStatus::Dismissed => "dismissed",
            RefusedStatus::Warning => "warning",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// How an error is named in a request: the `error_id` the ingest answer gave (a
/// UUID, the id the event would have had), or the record's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedKey {
    EventId(Uuid),
    Number(i64),
}

impl RefusedKey {
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(id) = Uuid::parse_str(text) {
            return Some(RefusedKey::EventId(id));
        }
        text.parse().ok().map(RefusedKey::Number)
    }
}

/// Error counts over a time range, by reason and event type, overall and per hour.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ErrorSummary)]
pub struct RefusedSummary {
    pub total: i64,
    pub by_reason_and_type: Vec<RefusedCount>,
    pub hourly: Vec<HourlyRefusedCount>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ErrorCount)]
pub struct RefusedCount {
    pub reason: String,
    pub category: Option<String>,
    pub name: Option<String>,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = HourlyErrorCount)]
pub struct HourlyRefusedCount {
    /// The start of the hour.
    pub hour: Timestamp,
    pub reason: String,
    pub category: Option<String>,
    pub name: Option<String>,
    pub count: i64,
}

/// An open error as a reprocess reads it.
#[derive(Debug, Clone)]
pub struct OpenRefusal {
    pub id: i64,
    pub event_id: Uuid,
    pub app_id: i64,
    pub received_at: i64,
    pub raw: String,
}

/// What a reprocess decided about one open error.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// It is valid now: store `event` (a [`Processed::Event`] with the error's event
    /// id) and mark the error `reprocessed`, in one transaction.
    Fixed {
        error_id: i64,
        event: Box<Processed>,
    },
    /// Still invalid: it stays open with this (possibly new) reason.
    StillInvalid { error_id: i64, refusal: Refusal },
}

/// What applying resolutions did. An error that was no longer open (dismissed or
/// reprocessed by someone else meanwhile) is counted in neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReprocessOutcome {
    pub reprocessed: u64,
    pub still_invalid: u64,
}

/// A registered or seen event type, with its schema versions and its stored events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventTypeInfo {
    pub category: String,
    pub name: String,
    /// False for a type that has events but no registry entry.
    pub registered: bool,
    pub mode: SchemaMode,
    /// The current schema version; `None` without a schema.
    pub schema_version: Option<i64>,
    /// Every version ever set, oldest first.
    pub versions: Vec<i64>,
    pub event_count: i64,
}

/// One version of a type's schema.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchemaRecord {
    pub category: String,
    pub name: String,
    pub version: i64,
    pub mode: SchemaMode,
    /// Whether this is the version new events are checked against.
    pub current: bool,
    /// A JSON Schema: an object or a boolean.
    #[schema(value_type = Value)]
    pub schema: Box<RawValue>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ErrorRecord)]
pub struct RefusedEvent {
    pub id: i64,
    pub event_id: Uuid,
    pub app: String,
    pub reason: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
    /// The event as the client sent it (or as the API parsed it).
    #[schema(value_type = Object)]
    pub raw: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub received_at: Timestamp,
    pub recorded_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    pub status: RefusedStatus,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// Browser origins (`https://shop.example`, or `*`) allowed to send its events.
    pub allowed_origins: Vec<String>,
}

/// Origins as the store keeps them: one per line.
pub(crate) fn origins_from_text(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A token as an operator sees it: never its secret, which the store does not have.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    /// `ingest`, `read` or `admin`.
    pub scope: String,
    /// The application of an ingest token, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

/// One management action: who did it (`cli:<os user>` or `token:<id>`), what, to what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// Someone who may log in to the admin UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    /// An Argon2id PHC string; never the password.
    pub password_hash: String,
    /// `admin` or `analyst`.
    pub role: String,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

/// A login about to be recorded: the hash of the cookie's secret, never the secret.
#[derive(Debug, Clone)]
pub struct NewLogin {
    pub hash: TokenHash,
    pub user_id: i64,
    /// The login's CSRF secret, which its pages put in their forms.
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A current login and who it belongs to.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: User,
    pub csrf: String,
    pub expires_at: Timestamp,
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
    /// Streams every event matching `query` (its `limit` is ignored; `max_events`
    /// caps the export) through `encode` into byte buffers sent to `sink`, walking
    /// keyset pages; stops early when the receiver goes away. Memory stays bounded by
    /// the buffer size and the channel's capacity.
    async fn export_events(
        &self,
        query: EventQuery,
        max_events: Option<u64>,
        encode: RowEncoder,
        sink: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<()>;
    async fn session(&self, session_id: &str) -> Result<Option<SessionSummary>>;
    async fn sessions(
        &self,
        query: SessionQuery,
    ) -> Result<(Vec<SessionSummary>, Option<SessionCursor>)>;
    async fn stats(&self, query: StatsQuery) -> Result<Vec<StatsRow>>;
    async fn refused_events(&self, query: RefusedQuery) -> Result<Page<RefusedEvent>>;
    async fn refused_event(&self, key: RefusedKey) -> Result<Option<RefusedEvent>>;
    async fn refused_summary(&self, filter: RefusedFilter) -> Result<RefusedSummary>;
    /// Sets an error's status to `dismissed`; `NotFound` when there is no such error.
    async fn dismiss_refused(&self, key: RefusedKey) -> Result<RefusedEvent>;
    /// Up to `limit` open errors matching `filter` with a number above `after_id`,
    /// oldest first.
    async fn open_refusals(
        &self,
        filter: RefusedFilter,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OpenRefusal>>;
    /// Applies reprocess decisions in one transaction; each applies only to an error
    /// that is still open, so running a reprocess twice stores nothing twice.
    async fn resolve_refusals(&self, resolutions: Vec<Resolution>) -> Result<ReprocessOutcome>;

    /// The registry as workers need it: every registered type with its current schema.
    async fn active_types(&self) -> Result<Vec<ActiveType>>;
    /// Registered types and types that have events, by category and name.
    async fn event_types(&self) -> Result<Vec<EventTypeInfo>>;
    async fn event_type(&self, event_type: &EventType) -> Result<Option<EventTypeInfo>>;
    /// One version of a type's schema, the current one when `version` is `None`.
    async fn schema(
        &self,
        event_type: &EventType,
        version: Option<i64>,
    ) -> Result<Option<SchemaRecord>>;
    /// Makes `schema` (JSON text, already checked to compile) the type's current schema,
    /// registering the type if needed. A schema identical to the current one adds no
    /// version; `mode` (when given) applies either way. Returns the current record and
    /// whether a version was added.
    async fn put_schema(
        &self,
        event_type: &EventType,
        schema: String,
        mode: Option<SchemaMode>,
    ) -> Result<(SchemaRecord, bool)>;
    /// Removes the type's current schema (its versions are kept): its events are no
    /// longer checked. `NotFound` when it has none.
    async fn delete_schema(&self, event_type: &EventType) -> Result<()>;

    /// Looks a token up by its hash; `None` when unknown or revoked.
    async fn authenticate(&self, hash: TokenHash) -> Result<Option<TokenGrant>>;
    async fn create_app(&self, name: &str) -> Result<App>;
    async fn list_apps(&self) -> Result<Vec<App>>;
    /// Revokes an application and every token of it.
    async fn revoke_app(&self, name: &str) -> Result<()>;
    /// Replaces an application's allowed browser origins. `NotFound` when unknown.
    async fn set_allowed_origins(&self, name: &str, origins: &[String]) -> Result<()>;
    async fn create_token(
        &self,
        hash: TokenHash,
        scope: Scope,
        app_id: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64>;
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Revokes one token; revoking a revoked one changes nothing. `NotFound` when unknown.
    async fn revoke_token(&self, id: i64) -> Result<()>;

    /// `Conflict` when the email is taken.
    async fn create_user(&self, email: &str, password_hash: &str, role: &str) -> Result<i64>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;

    /// Records an admin-UI login; expired ones are removed on the way.
    async fn create_login(&self, login: NewLogin) -> Result<()>;
    /// The login whose secret hashes to `hash`, if it has not expired by `now` and its
    /// user is not disabled.
    async fn login(&self, hash: TokenHash, now: Timestamp) -> Result<Option<Login>>;
    /// Ends a login (logging out); ending an unknown one changes nothing.
    async fn delete_login(&self, hash: TokenHash) -> Result<()>;

    /// One stored event by its id.
    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>>;

    /// Appends to the audit log.
    async fn audit(&self, entry: AuditEntry) -> Result<()>;
    /// The newest `limit` entries, newest first.
    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>>;
}
