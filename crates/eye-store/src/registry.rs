//! Event types and their schema versions.

use eye_core::schema::{ActiveType, SchemaMode};
use eye_core::{EventType, Timestamp};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::*;

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
    /// The payload fields declared indexed, with their indexes' states.
    pub indexed: Vec<crate::IndexedField>,
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

/// The schema registry: event types, their schema versions and modes.
#[async_trait::async_trait]
pub trait EventTypes: Send + Sync {
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
}
