//! Indexed payload fields on SQLite: one partial expression index per path,
//! `events_field_<id> ON events (json_extract(data, '$."k"'), ts, seq, pk) WHERE
//! json_extract(...) IS NOT NULL`. Its key is the expression `events_sql` writes for a
//! `data.` filter, so SQLite picks it for `= ?` and `IN (?, n)` alike; the partial
//! clause keeps events without the field out of it, and (ts, seq, pk) after the value
//! let a page walk it in order and stop at its limit.

use std::collections::HashMap;

use eye_core::{EventType, FieldPath};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::SqliteStore;
use super::events::json_path;
use crate::indexes::index_name;
use crate::{FieldIndexes, IndexState, IndexedField, PendingIndex, Result, StoreError};

fn field_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<IndexedField> {
    let state: String = row.get(1)?;
    Ok(IndexedField {
        path: row.get(0)?,
        state: IndexState::parse(&state).unwrap_or(IndexState::Building),
        ready_at: row
            .get::<_, Option<i64>>(2)?
            .map(eye_core::Timestamp::from_micros),
        error: row.get(3)?,
    })
}

/// Every type's indexed fields, by type.
pub(super) fn indexed_by_type(
    conn: &Connection,
) -> Result<HashMap<(String, String), Vec<IndexedField>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.path, i.state, i.ready_at, i.error, f.category, f.name
         FROM indexed_fields f JOIN field_indexes i ON i.path = f.path
         ORDER BY f.category, f.name, f.path",
    )?;
    let mut by_type: HashMap<(String, String), Vec<IndexedField>> = HashMap::new();
    let rows = stmt.query_map([], |row| Ok(((row.get(4)?, row.get(5)?), field_from(row)?)))?;
    for row in rows {
        let (key, field) = row?;
        by_type.entry(key).or_default().push(field);
    }
    Ok(by_type)
}

fn type_fields(conn: &Connection, event_type: &EventType) -> Result<Vec<IndexedField>> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.path, i.state, i.ready_at, i.error
         FROM indexed_fields f JOIN field_indexes i ON i.path = f.path
         WHERE f.category = ?1 AND f.name = ?2 ORDER BY f.path",
    )?;
    let fields = stmt
        .query_map(params![event_type.category, event_type.name], field_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(fields)
}

/// The expression the index is on and the filter compares, quoted for SQL.
fn extract(path: &FieldPath) -> String {
    format!(
        "json_extract(data, '{}')",
        json_path(path.keys()).replace('\'', "''")
    )
}

fn set_fields(
    conn: &mut Connection,
    event_type: &EventType,
    paths: &[FieldPath],
) -> Result<Vec<IndexedField>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = eye_core::Timestamp::now().as_micros();
    tx.execute(
        "DELETE FROM indexed_fields WHERE category = ?1 AND name = ?2",
        params![event_type.category, event_type.name],
    )?;
    for path in paths {
        let pointer = path.to_string();
        tx.execute(
            "INSERT INTO field_indexes (path, state, created_at) VALUES (?1, 'building', ?2)
             ON CONFLICT (path) DO NOTHING",
            params![pointer, now],
        )?;
        tx.execute(
            "INSERT INTO indexed_fields (category, name, path) VALUES (?1, ?2, ?3)",
            params![event_type.category, event_type.name, pointer],
        )?;
    }
    // Indexes no type declares any more.
    let orphans = {
        let mut stmt = tx.prepare(
            "SELECT id FROM field_indexes i
             WHERE NOT EXISTS (SELECT 1 FROM indexed_fields f WHERE f.path = i.path)",
        )?;
        stmt.query_map([], |row| row.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    for id in orphans {
        tx.execute_batch(&format!("DROP INDEX IF EXISTS {}", index_name(id)))?;
        tx.execute("DELETE FROM field_indexes WHERE id = ?1", [id])?;
    }
    let fields = type_fields(&tx, event_type)?;
    tx.commit()?;
    Ok(fields)
}

/// Builds the index under the writer connection: SQLite builds an index in one
/// statement, during which the worker's batches wait (they stay queued, durably).
/// Readers go on (WAL).
fn build(conn: &mut Connection, index: &PendingIndex) -> Result<bool> {
    let pointer = index.path.to_string();
    let declared: Option<String> = conn
        .query_row(
            "SELECT state FROM field_indexes WHERE id = ?1 AND path = ?2",
            params![index.id, pointer],
            |row| row.get(0),
        )
        .optional()?;
    if declared.as_deref() != Some("building") {
        return Ok(false);
    }
    let expression = extract(&index.path);
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS {} ON events ({expression}, ts, seq, pk) WHERE {expression} IS NOT NULL",
        index_name(index.id)
    );
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let built = tx.execute_batch(&sql).and_then(|()| {
        tx.execute(
            "UPDATE field_indexes SET state = 'ready', ready_at = ?2, error = NULL WHERE id = ?1",
            params![index.id, eye_core::Timestamp::now().as_micros()],
        )
    });
    match built {
        Ok(_) => {
            tx.commit()?;
            Ok(true)
        }
        Err(error) => {
            drop(tx);
            conn.execute(
                "UPDATE field_indexes SET error = ?2 WHERE id = ?1",
                params![index.id, error.to_string()],
            )?;
            Err(error.into())
        }
    }
}

#[async_trait::async_trait]
impl FieldIndexes for SqliteStore {
    async fn set_indexed_fields(
        &self,
        event_type: &EventType,
        paths: &[FieldPath],
    ) -> Result<Vec<IndexedField>> {
        let (event_type, paths) = (event_type.clone(), paths.to_vec());
        self.write_with(move |conn| set_fields(conn, &event_type, &paths))
            .await
    }

    async fn indexed_fields(&self, event_type: &EventType) -> Result<Vec<IndexedField>> {
        let event_type = event_type.clone();
        self.read_with(move |conn| type_fields(conn, &event_type))
            .await
    }

    async fn indexed_paths(&self) -> Result<Vec<FieldPath>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare_cached("SELECT path FROM field_indexes ORDER BY path")?;
            let paths = stmt
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            paths
                .iter()
                .map(|p| FieldPath::parse(p).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect()
        })
        .await
    }

    async fn pending_field_indexes(&self) -> Result<Vec<PendingIndex>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, path FROM field_indexes WHERE state = 'building' ORDER BY id",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(id, path)| {
                    let path =
                        FieldPath::parse(&path).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok(PendingIndex {
                        id,
                        path,
                        dropping: false,
                    })
                })
                .collect()
        })
        .await
    }

    async fn build_field_index(&self, index: &PendingIndex) -> Result<bool> {
        let index = index.clone();
        self.write_with(move |conn| build(conn, &index)).await
    }
}
