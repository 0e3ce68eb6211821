//! Indexed payload fields: the paths each event type declares indexed, and the one
//! index per distinct path that serves `data.<path>=<value>` filters.
//!
//! A declaration belongs to a type (it is part of the type's definition), but the
//! index is on the path over all events that have it: a filter on the path uses it
//! with or without `category` and `name`. The index is built in the background
//! ([`FieldIndexes::build_field_index`]): until it is `ready` the filter scans.

use eye_core::{EventType, FieldPath, Timestamp};
use serde::Serialize;

use crate::Result;

/// Where one path's index stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IndexState {
    /// Declared; being built (or waiting for a builder). Filters on it scan meanwhile.
    Building,
    /// Built: filters on the path use it, and every new event is indexed as written.
    Ready,
}

impl IndexState {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexState::Building => "building",
            IndexState::Ready => "ready",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "building" => Some(IndexState::Building),
            "ready" => Some(IndexState::Ready),
            _ => None,
        }
    }
}

/// One indexed field of a type, with its index's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IndexedField {
    /// A JSON Pointer into `data`, e.g. `/form/first_name`.
    pub path: String,
    pub state: IndexState,
    /// When the index was ready; `None` while it builds.
    pub ready_at: Option<Timestamp>,
    /// The last build's error, if it failed (the builder tries again).
    pub error: Option<String>,
}

/// An index to build, or to drop (no type declares its path any more): its number
/// (which names it) and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIndex {
    pub id: i64,
    pub path: FieldPath,
    pub dropping: bool,
}

#[async_trait::async_trait]
pub trait FieldIndexes: Send + Sync {
    /// Makes `paths` the type's indexed fields (replacing its earlier list; empty
    /// clears it). A path no type declared before gets an index in state `building`;
    /// one no type declares any more loses its index (at once, or by the builder where
    /// dropping it here could deadlock with a build). Returns the type's fields.
    async fn set_indexed_fields(
        &self,
        event_type: &EventType,
        paths: &[FieldPath],
    ) -> Result<Vec<IndexedField>>;
    /// The type's indexed fields, by path.
    async fn indexed_fields(&self, event_type: &EventType) -> Result<Vec<IndexedField>>;
    /// Every distinct indexed path (its index built or not).
    async fn indexed_paths(&self) -> Result<Vec<FieldPath>>;
    /// Indexes declared and not yet built, and indexes to drop.
    async fn pending_field_indexes(&self) -> Result<Vec<PendingIndex>>;
    /// Builds `index` over the events already stored, without stopping ingest for
    /// longer than the store must, and marks it ready; or drops it. Returns false when
    /// another process is at it or there is nothing left to do. An error is recorded
    /// on the index and returned; the next call tries again.
    async fn build_field_index(&self, index: &PendingIndex) -> Result<bool>;
}

/// The index's name in both back ends' catalogues.
pub(crate) fn index_name(id: i64) -> String {
    format!("events_field_{id}")
}
