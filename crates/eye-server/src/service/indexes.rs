//! Indexed payload fields: a type declares which of its fields `data.` filters find
//! through an index (`set`, audited), and a background loop builds the indexes
//! (`run_until_stopped`, in every process that runs the worker).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use eye_core::field_path::{self, FieldPathError};
use eye_core::{EventType, FieldPath};
use eye_store::{IndexedField, Store, StoreError};
use tokio::sync::{Notify, watch};

use super::{Actor, audit};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    BadPath(#[from] FieldPathError),
    #[error("{0:?} is listed twice")]
    Repeated(String),
    #[error("a type declares at most {max} indexed fields; {0} were given", max = field_path::MAX_PER_TYPE)]
    TooManyForType(usize),
    #[error("{path:?} cannot be indexed: {reason}")]
    ForbiddenBySchema { path: String, reason: String },
    #[error(
        "the store would have {0} indexed paths, more than {max}: every index slows every write; remove one that no query uses",
        max = field_path::MAX_PATHS
    )]
    TooManyInStore(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses the pointers a caller gave, in order, refusing repeats and long lists.
pub fn parse(pointers: &[String]) -> Result<Vec<FieldPath>, IndexError> {
    if pointers.len() > field_path::MAX_PER_TYPE {
        return Err(IndexError::TooManyForType(pointers.len()));
    }
    let mut seen = BTreeSet::new();
    pointers
        .iter()
        .map(|pointer| {
            let path = FieldPath::parse(pointer)?;
            if !seen.insert(path.clone()) {
                return Err(IndexError::Repeated(pointer.clone()));
            }
            Ok(path)
        })
        .collect()
}

/// Makes `paths` the type's indexed fields, checked against its current schema and the
/// store's bound on indexes; new indexes are built in the background (`builder` is
/// woken when this process runs one). Returns the type's fields with their states.
pub async fn set(
    store: &dyn Store,
    builder: Option<&Notify>,
    actor: &Actor,
    event_type: &EventType,
    paths: &[FieldPath],
) -> Result<Vec<IndexedField>, IndexError> {
    if let Some(record) = store.schema(event_type, None).await? {
        let schema: serde_json::Value = serde_json::from_str(record.schema.get())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        for path in paths {
            if let Some(reason) = eye_schema::forbidden_field(&schema, path) {
                return Err(IndexError::ForbiddenBySchema {
                    path: path.to_string(),
                    reason,
                });
            }
        }
    }
    // The paths every other type declares, plus these.
    let mut all: BTreeSet<String> = store
        .event_types()
        .await?
        .into_iter()
        .filter(|t| t.category != event_type.category || t.name != event_type.name)
        .flat_map(|t| t.indexed.into_iter().map(|f| f.path))
        .collect();
    all.extend(paths.iter().map(ToString::to_string));
    if all.len() > field_path::MAX_PATHS {
        return Err(IndexError::TooManyInStore(all.len()));
    }
    let fields = store.set_indexed_fields(event_type, paths).await?;
    if let Some(builder) = builder {
        builder.notify_one();
    }
    let listed: Vec<String> = paths.iter().map(ToString::to_string).collect();
    audit(
        store,
        actor,
        "type.indexed",
        &format!("type:{}/{}", event_type.category, event_type.name),
        Some(if listed.is_empty() {
            "none".to_owned()
        } else {
            listed.join(" ")
        }),
    )
    .await;
    Ok(fields)
}

/// Builds declared indexes, one at a time: at once when `wake` is notified, and every
/// `every` (another process's declaration, a build that failed), until `stop`.
pub async fn run_until_stopped(
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match store.pending_field_indexes().await {
            Ok(pending) => {
                for index in pending {
                    let started = std::time::Instant::now();
                    match store.build_field_index(&index).await {
                        Ok(true) => tracing::info!(
                            path = %index.path,
                            took_ms = started.elapsed().as_millis() as u64,
                            "{} the index of an indexed field",
                            if index.dropping { "dropped" } else { "built" }
                        ),
                        Ok(false) => {}
                        Err(error) => tracing::error!(
                            %error, path = %index.path,
                            "building an indexed field's index failed; retrying later"
                        ),
                    }
                    if *stop.borrow() {
                        return;
                    }
                }
            }
            Err(error) => tracing::error!(%error, "listing indexes to build failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
