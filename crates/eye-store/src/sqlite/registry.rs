//! The schema registry: event types, their schema versions and modes.

use eye_core::EventType;
use eye_core::schema::{ActiveType, SchemaMode};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{raw_json, timestamp};
use crate::{EventTypeInfo, Result, SchemaRecord, StoreError};

fn mode_from(row: &Row<'_>, index: usize) -> rusqlite::Result<SchemaMode> {
    let text: String = row.get(index)?;
    SchemaMode::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown schema mode {text:?}").into(),
        )
    })
}

pub(super) fn active_types(conn: &Connection) -> Result<Vec<ActiveType>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.category, t.name, t.mode, t.schema_version, v.schema
         FROM event_types t
         LEFT JOIN schema_versions v
           ON v.category = t.category AND v.name = t.name AND v.version = t.schema_version",
    )?;
    let types = stmt
        .query_map([], |row| {
            let version: Option<i64> = row.get(3)?;
            let schema: Option<String> = row.get(4)?;
            Ok(ActiveType {
                event_type: EventType {
                    category: row.get(0)?,
                    name: row.get(1)?,
                },
                mode: mode_from(row, 2)?,
                schema: version.zip(schema),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(types)
}

/// Registered types and types with events; one type when `only` is given.
pub(super) fn event_types(
    conn: &Connection,
    only: Option<&EventType>,
) -> Result<Vec<EventTypeInfo>> {
    let mut stmt = conn.prepare_cached(
        "WITH known AS (
             SELECT category, name FROM event_types
             UNION SELECT category, name FROM type_counts
             UNION SELECT category, name FROM indexed_fields
         )
         SELECT k.category, k.name, t.category IS NOT NULL, coalesce(t.mode, 'enforce'),
                t.schema_version, coalesce(c.events, 0),
                (SELECT group_concat(version) FROM (
                     SELECT version FROM schema_versions v
                     WHERE v.category = k.category AND v.name = k.name ORDER BY version))
         FROM known k
         LEFT JOIN event_types t ON t.category = k.category AND t.name = k.name
         LEFT JOIN type_counts c ON c.category = k.category AND c.name = k.name
         WHERE (?1 IS NULL OR k.category = ?1) AND (?2 IS NULL OR k.name = ?2)
         ORDER BY k.category, k.name",
    )?;
    let mut indexed = super::indexes::indexed_by_type(conn)?;
    let types = stmt
        .query_map(
            params![
                only.map(|t| t.category.as_str()),
                only.map(|t| t.name.as_str())
            ],
            |row| {
                let versions: Option<String> = row.get(6)?;
                let (category, name): (String, String) = (row.get(0)?, row.get(1)?);
                let indexed = indexed
                    .remove(&(category.clone(), name.clone()))
                    .unwrap_or_default();
                Ok(EventTypeInfo {
                    category,
                    name,
                    registered: row.get(2)?,
                    mode: mode_from(row, 3)?,
                    schema_version: row.get(4)?,
                    versions: versions
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|v| v.parse().ok())
                        .collect(),
                    event_count: row.get(5)?,
                    indexed,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(types)
}

pub(super) fn schema(
    conn: &Connection,
    event_type: &EventType,
    version: Option<i64>,
) -> Result<Option<SchemaRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.version, coalesce(t.mode, 'enforce'), v.version = t.schema_version, v.schema,
                v.created_at
         FROM schema_versions v
         LEFT JOIN event_types t ON t.category = v.category AND t.name = v.name
         WHERE v.category = ?1 AND v.name = ?2
           AND v.version = coalesce(?3, t.schema_version)",
    )?;
    let record = stmt
        .query_row(
            params![event_type.category, event_type.name, version],
            |row| {
                Ok(SchemaRecord {
                    category: event_type.category.clone(),
                    name: event_type.name.clone(),
                    version: row.get(0)?,
                    mode: mode_from(row, 1)?,
                    current: row.get::<_, Option<bool>>(2)?.unwrap_or(false),
                    schema: raw_json(row, 3)?,
                    created_at: timestamp(row, 4)?,
                })
            },
        )
        .optional()?;
    Ok(record)
}

pub(super) fn put_schema(
    conn: &mut Connection,
    event_type: &EventType,
    text: &str,
    mode: Option<SchemaMode>,
) -> Result<(SchemaRecord, bool)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = eye_core::Timestamp::now().as_micros();
    let (category, name) = (&event_type.category, &event_type.name);
    let current = schema(&tx, event_type, None)?;
    let unchanged = current.as_ref().is_some_and(|c| c.schema.get() == text);
    if !unchanged {
        let version: i64 = tx.query_row(
            "SELECT coalesce(max(version), 0) + 1 FROM schema_versions
             WHERE category = ?1 AND name = ?2",
            params![category, name],
            |row| row.get(0),
        )?;
        tx.execute(
            "INSERT INTO schema_versions (category, name, version, schema, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![category, name, version, text, now],
        )?;
        tx.execute(
            "INSERT INTO event_types (category, name, schema_version, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (category, name) DO UPDATE SET
                 schema_version = excluded.schema_version, updated_at = excluded.updated_at",
            params![category, name, version, now],
        )?;
    }
    if let Some(mode) = mode {
        tx.execute(
            "UPDATE event_types SET mode = ?3, updated_at = ?4 WHERE category = ?1 AND name = ?2",
            params![category, name, mode.as_str(), now],
        )?;
    }
    let record = schema(&tx, event_type, None)?
        .ok_or_else(|| StoreError::Corrupt("a schema just written is missing".into()))?;
    tx.commit()?;
    Ok((record, !unchanged))
}

pub(super) fn delete_schema(conn: &mut Connection, event_type: &EventType) -> Result<()> {
    let changed = conn.execute(
        "UPDATE event_types SET schema_version = NULL, updated_at = ?3
         WHERE category = ?1 AND name = ?2 AND schema_version IS NOT NULL",
        params![
            event_type.category,
            event_type.name,
            eye_core::Timestamp::now().as_micros()
        ],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "a schema for {:?}/{:?}",
            event_type.category, event_type.name
        )));
    }
    Ok(())
}

use super::*;

#[async_trait::async_trait]
impl EventTypes for SqliteStore {
    async fn active_types(&self) -> Result<Vec<ActiveType>> {
        self.read_with(active_types).await
    }

    async fn event_types(&self) -> Result<Vec<EventTypeInfo>> {
        self.read_with(|conn| event_types(conn, None)).await
    }

    async fn event_type(&self, event_type: &EventType) -> Result<Option<EventTypeInfo>> {
        let event_type = event_type.clone();
        self.read_with(move |conn| Ok(event_types(conn, Some(&event_type))?.pop()))
            .await
    }

    async fn schema(
        &self,
        event_type: &EventType,
        version: Option<i64>,
    ) -> Result<Option<SchemaRecord>> {
        let event_type = event_type.clone();
        self.read_with(move |conn| schema(conn, &event_type, version))
            .await
    }

    async fn put_schema(
        &self,
        event_type: &EventType,
        schema: String,
        mode: Option<SchemaMode>,
    ) -> Result<(SchemaRecord, bool)> {
        let event_type = event_type.clone();
        self.write_with(move |conn| put_schema(conn, &event_type, &schema, mode))
            .await
    }

    async fn delete_schema(&self, event_type: &EventType) -> Result<()> {
        let event_type = event_type.clone();
        self.write_with(move |conn| delete_schema(conn, &event_type))
            .await
    }
}
