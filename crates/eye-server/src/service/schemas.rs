//! Event types' schemas: set (compiled first; a new version only when it differs from
//! the current one) and removed (the versions are kept), each audited.

use eye_core::EventType;
use eye_core::schema::SchemaMode;
use eye_schema::Registry;
use eye_store::{SchemaRecord, Store, StoreError};
use serde_json::Value;

use super::{Actor, audit};

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the schema is not a valid JSON Schema (draft 2020-12): {0}")]
    InvalidSchema(String),
    #[error("{:?}/{:?} has no current schema", .0.category, .0.name)]
    NoSchema(EventType),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes `schema` the type's current schema (a new version unless it is the current
/// one), with `mode` when given. Returns the current record and whether it is new.
/// `registry` is this process's, reloaded at once; other processes reload theirs
/// within a second.
pub async fn set(
    store: &dyn Store,
    registry: Option<&Registry>,
    actor: &Actor,
    event_type: &EventType,
    schema: &Value,
    mode: Option<SchemaMode>,
) -> Result<(SchemaRecord, bool), SchemaError> {
    eye_schema::compile(schema).map_err(|e| SchemaError::InvalidSchema(e.to_string()))?;
    let (record, created) = store
        .put_schema(event_type, schema.to_string(), mode)
        .await?;
    if let Some(registry) = registry {
        registry.invalidate();
    }
    if created {
        let details = format!("version {}, {}", record.version, record.mode.as_str());
        audit(
            store,
            actor,
            "schema.set",
            &target(event_type),
            Some(details),
        )
        .await;
    }
    Ok((record, created))
}

/// Stops checking the type's events; its versions are kept.
pub async fn delete(
    store: &dyn Store,
    registry: Option<&Registry>,
    actor: &Actor,
    event_type: &EventType,
) -> Result<(), SchemaError> {
    store
        .delete_schema(event_type)
        .await
        .map_err(|error| match error {
            StoreError::NotFound(_) => SchemaError::NoSchema(event_type.clone()),
            other => other.into(),
        })?;
    if let Some(registry) = registry {
        registry.invalidate();
    }
    audit(store, actor, "schema.delete", &target(event_type), None).await;
    Ok(())
}

fn target(event_type: &EventType) -> String {
    format!("type:{}/{}", event_type.category, event_type.name)
}
