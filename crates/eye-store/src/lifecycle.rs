//! Keeping data only as long as allowed: retention (events, and refused-event records,
//! older than their retention) and erasure (a person's or an application's data, on
//! request), and the types that cross the `Lifecycle` trait.
//!
//! An erasure is a record first (`erasures`): from its commit on, every worker batch
//! drops the events it covers that were received at or before its `until` (see
//! `batch::Rows`), so an event accepted before the erasure but still queued never
//! appears after it, in both stores. Then its rows are deleted in chunks.

use eye_core::retention::Retention;
use eye_core::{IncomingEvent, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{DataFilter, EventQuery, Result};

/// What a deletion removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    pub events: u64,
    /// Sessions left without events, and so removed.
    pub sessions: u64,
    /// Refused-event records.
    pub refused: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, other: Removed) {
        self.events += other.events;
        self.sessions += other.sessions;
        self.refused += other.refused;
    }
}

/// Which data an erasure covers: the filters of `GET /events` (every given one must
/// match), for data received at or before `until`. At least one filter is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErasureFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The application, by id (the service resolves a name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Event time, inclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    /// Event time, exclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    /// Payload fields: `[path, value]`, as `data.<path>=<value>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Vec<String>>)]
    pub data: Vec<(Vec<String>, String)>,
}

impl ErasureFilter {
    /// True when no filter is given: an erasure of everything, which is refused.
    pub fn is_empty(&self) -> bool {
        *self == ErasureFilter::default()
    }

    /// The events it covers, as a query (its `limit` and order are the caller's).
    pub fn query(&self) -> EventQuery {
        EventQuery {
            session_id: self.session_id.clone(),
            category: self.category.clone(),
            name: self.name.clone(),
            app: self.app_id.map(|id| id.to_string()),
            data: self
                .data
                .iter()
                .map(|(path, value)| DataFilter {
                    path: path.clone(),
                    value: value.clone(),
                })
                .collect(),
            from: self.from,
            to: self.to,
            ..EventQuery::default()
        }
    }

    /// Whether an event of application `app_id` is covered (its reception time is the
    /// caller's to compare with `until`).
    pub fn matches(&self, app_id: i64, event: &IncomingEvent) -> bool {
        let ts = event.timestamp;
        self.session_id
            .as_deref()
            .is_none_or(|s| s == event.session_id.as_str())
            && self.app_id.is_none_or(|id| id == app_id)
            && self
                .category
                .as_deref()
                .is_none_or(|c| c == event.event_type.category)
            && self
                .name
                .as_deref()
                .is_none_or(|n| n == event.event_type.name)
            && self.from.is_none_or(|from| ts >= from.as_micros())
            && self.to.is_none_or(|to| ts < to.as_micros())
            && (self.data.is_empty() || self.data_matches(event))
    }

    /// Whether a refused element that could not be parsed is covered, from what its raw
    /// JSON says: only by session, application, category and name (it has no time or
    /// payload to match), and never by a filter that asks for those.
    pub fn matches_identity(
        &self,
        app_id: i64,
        session_id: Option<&str>,
        category: Option<&str>,
        name: Option<&str>,
    ) -> bool {
        let same = |wanted: &Option<String>, found: Option<&str>| {
            wanted.as_deref().is_none_or(|w| found == Some(w))
        };
        self.from.is_none()
            && self.to.is_none()
            && self.data.is_empty()
            && self.app_id.is_none_or(|id| id == app_id)
            && same(&self.session_id, session_id)
            && same(&self.category, category)
            && same(&self.name, name)
    }

    fn data_matches(&self, event: &IncomingEvent) -> bool {
        let Ok(data) = serde_json::from_str::<serde_json::Value>(event.data.get()) else {
            return false;
        };
        self.data.iter().all(|(path, wanted)| {
            let found = path.iter().try_fold(&data, |value, key| value.get(key));
            match found {
                Some(serde_json::Value::String(text)) => text == wanted,
                Some(serde_json::Value::Bool(flag)) => {
                    wanted == if *flag { "true" } else { "false" }
                }
                Some(serde_json::Value::Number(number)) => {
                    number.to_string() == *wanted
                        || wanted
                            .parse::<f64>()
                            .is_ok_and(|w| number.as_f64() == Some(w))
                }
                _ => false,
            }
        })
    }
}

/// An erasure as it reaches a worker batch: its filter and its moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Tombstone {
    pub filter: ErasureFilter,
    /// Data received at or before this (microseconds) is erased.
    pub until: i64,
}

impl Tombstone {
    pub fn covers(&self, app_id: i64, received_at: i64, event: &IncomingEvent) -> bool {
        received_at <= self.until && self.filter.matches(app_id, event)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErasureStatus {
    /// Recorded; its rows are being deleted.
    Running,
    Done,
}

/// An erasure job, as `GET /erasures/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Erasure {
    pub id: i64,
    pub status: ErasureStatus,
    pub filter: ErasureFilter,
    /// Data received at or before this is erased: the moment the erasure was answered.
    pub until: Timestamp,
    /// Who asked, as the audit log names them.
    pub actor: String,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// What it has removed so far.
    pub removed: Removed,
}

/// What `Lifecycle::expire_events` may delete: per application, data received before
/// the cutoff (microseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cutoffs(pub Vec<(i64, i64)>);

#[async_trait::async_trait]
pub trait Lifecycle: Send + Sync {
    /// Deletes up to `limit` events received before their application's cutoff, with
    /// everything that counts them (sessions, links, per-type and per-minute counts,
    /// session trees), in one transaction. Zero when nothing is left to expire.
    async fn expire_events(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Removed>;
    /// Deletes up to `limit` refused-event records received before `cutoff`.
    async fn expire_refused(&self, cutoff: i64, limit: u32) -> Result<u64>;
    /// Sets (or with `None`, clears) an application's own retention. `NotFound` when
    /// there is no such application.
    async fn set_app_retention(&self, name: &str, retention: Option<Retention>) -> Result<()>;

    /// Records an erasure covering data received at or before `until`; from its commit,
    /// worker batches drop what it covers.
    async fn create_erasure(
        &self,
        filter: ErasureFilter,
        until: i64,
        actor: &str,
    ) -> Result<Erasure>;
    /// Deletes up to `limit` events the erasure covers (then refused-event records),
    /// and adds what it removed to the erasure's progress; zero when nothing is left.
    async fn erase_chunk(&self, id: i64, limit: u32) -> Result<Removed>;
    /// Marks the erasure done.
    async fn finish_erasure(&self, id: i64) -> Result<Erasure>;
    async fn erasure(&self, id: i64) -> Result<Option<Erasure>>;
    /// Erasures not finished yet (after a restart, to resume them), oldest first.
    async fn running_erasures(&self) -> Result<Vec<Erasure>>;
}

/// The retention of an application: its own, or the global one.
pub fn effective(own: Option<Retention>, global: Retention) -> Retention {
    own.unwrap_or(global)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn event(session: &str, data: &str) -> IncomingEvent {
        let text = format!(
            r#"{{"session_id":"{session}","category":"page","name":"view","data":{data},"timestamp":"2026-01-01T00:00:00Z"}}"#
        );
        IncomingEvent::parse(&RawValue::from_string(text).unwrap()).unwrap()
    }

    #[test]
    fn a_filter_matches_on_every_field_it_gives() {
        let by_session = ErasureFilter {
            session_id: Some("s".into()),
            ..Default::default()
        };
        assert!(by_session.matches(1, &event("s", "{}")));
        assert!(!by_session.matches(1, &event("t", "{}")));
        let by_app_and_data = ErasureFilter {
            app_id: Some(2),
            data: vec![(vec!["form".into(), "email".into()], "a@b.co".into())],
            ..Default::default()
        };
        let with_email = event("s", r#"{"form":{"email":"a@b.co"}}"#);
        assert!(by_app_and_data.matches(2, &with_email));
        assert!(
            !by_app_and_data.matches(1, &with_email),
            "another application"
        );
        assert!(!by_app_and_data.matches(2, &event("s", r#"{"form":{"email":"x"}}"#)));
        let by_number = ErasureFilter {
            data: vec![(vec!["n".into()], "7".into())],
            ..Default::default()
        };
        assert!(by_number.matches(1, &event("s", r#"{"n":7}"#)));
        assert!(by_number.matches(1, &event("s", r#"{"n":7.0}"#)));
        assert!(!by_number.matches(1, &event("s", r#"{"n":"8"}"#)));
        assert!(ErasureFilter::default().is_empty());
    }

    #[test]
    fn a_tombstone_covers_only_what_was_received_by_its_moment() {
        let tombstone = Tombstone {
            filter: ErasureFilter {
                session_id: Some("s".into()),
                ..Default::default()
            },
            until: 100,
        };
        assert!(tombstone.covers(1, 100, &event("s", "{}")));
        assert!(
            !tombstone.covers(1, 101, &event("s", "{}")),
            "received after"
        );
    }
}
