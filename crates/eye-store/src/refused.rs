//! Refused events: the records of events that failed a check, their filters and
//! counts, and the reprocess workflow's types.

use eye_core::reason::Violation;
use eye_core::{Refusal, Timestamp};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::*;

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

/// The query of `refused_per_bucket`, the same text for both back ends (`$1` from,
/// `$2` to, `$3` the bucket, in microseconds): bucket, application, count.
pub(crate) const REFUSED_PER_BUCKET_SQL: &str = "
    WITH span AS (SELECT CAST($1 AS BIGINT) AS lo, CAST($2 AS BIGINT) AS hi,
                         CAST($3 AS BIGINT) AS step)
    SELECT (r.received_at / span.step) * span.step AS b, a.name, count(*)
    FROM span, errors r JOIN apps a ON a.id = r.app_id
    WHERE r.received_at >= span.lo AND r.received_at < span.hi AND r.status <> 'warning'
    GROUP BY b, a.name ORDER BY b, a.name";

/// One bucket's refused events of one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedInBucket {
    pub bucket: Timestamp,
    pub app: String,
    pub count: i64,
}

/// The store of refused events (the "error store"): listed, counted, dismissed, reprocessed.
#[async_trait::async_trait]
pub trait RefusedEvents: Send + Sync {
    async fn refused_events(&self, query: RefusedQuery) -> Result<Page<RefusedEvent>>;
    async fn refused_event(&self, key: RefusedKey) -> Result<Option<RefusedEvent>>;
    async fn refused_summary(&self, filter: RefusedFilter) -> Result<RefusedSummary>;
    /// Events refused (shadow-mode warnings aside: those were stored) with their
    /// reception in `[from, to)`, per `bucket` (UTC) and application, oldest first;
    /// buckets with none are absent. The dashboard's chart, from the store, so that it
    /// survives restarts and agrees across a fleet.
    async fn refused_per_bucket(
        &self,
        from: Timestamp,
        to: Timestamp,
        bucket: crate::Bucket,
    ) -> Result<Vec<RefusedInBucket>>;
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
}
