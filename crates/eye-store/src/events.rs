//! Events: what the worker writes (`Processed`, `WriteOutcome`) and what the analyst
//! reads (queries, pages, sessions, counts), and the two traits for them.

use eye_core::{IncomingEvent, Refusal, Timestamp};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::*;

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
    /// Events dropped because an erasure made after they were received covers them.
    pub erased: u64,
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
    /// Only events received at or before this (microseconds): an erasure's moment.
    pub received_until: Option<i64>,
    pub order: Order,
    pub limit: u32,
    pub after: Option<Cursor>,
}

impl EventQuery {
    /// A hash of the filters (not the page size or the position): what an API cursor
    /// is bound to, so that it continues only the query it came from.
    pub fn scope(&self) -> u64 {
        let text = |value: &Option<String>| value.as_deref().unwrap_or("\0").as_bytes().to_vec();
        let time =
            |value: Option<Timestamp>| value.map_or(i64::MIN, |t| t.as_micros()).to_be_bytes();
        let mut parts: Vec<Vec<u8>> = vec![
            text(&self.session_id),
            text(&self.category),
            text(&self.name),
            text(&self.app),
            time(self.from).to_vec(),
            time(self.to).to_vec(),
            vec![matches!(self.order, Order::Asc) as u8],
        ];
        for filter in &self.data {
            parts.push(filter.path.join("\0").into_bytes());
            parts.push(filter.value.clone().into_bytes());
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        crate::cursor::fnv1a(&parts)
    }
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

/// The worker's side: one batch in one transaction.
#[async_trait::async_trait]
pub trait EventWrites: Send + Sync {
    /// Writes one worker batch in one transaction. The batch is shared, not moved, so
    /// that a caller retrying after a failure does not copy it.
    async fn write(&self, batch: std::sync::Arc<Vec<Processed>>) -> Result<WriteOutcome>;
}

/// The analyst's side: events, sessions and counts.
#[async_trait::async_trait]
pub trait EventReads: Send + Sync {
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
    /// One stored event by its id.
    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>>;
}
