//! Event types in the registry, and how a type's schema applies to its events.

use crate::event::EventType;

/// `enforce`: a payload that violates the schema makes the event an error.
/// `shadow`: the event is stored anyway and the violations are recorded as a warning,
/// so a new schema can be tried on live traffic without losing events.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SchemaMode {
    #[default]
    Enforce,
    Shadow,
}

impl SchemaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaMode::Enforce => "enforce",
            SchemaMode::Shadow => "shadow",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "enforce" => Some(SchemaMode::Enforce),
            "shadow" => Some(SchemaMode::Shadow),
            _ => None,
        }
    }
}

/// A registered event type as the store has it now: what the workers check against.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveType {
    pub event_type: EventType,
    pub mode: SchemaMode,
    /// The current schema version and its JSON text; `None` when the type is
    /// registered without one.
    pub schema: Option<(i64, String)>,
}
