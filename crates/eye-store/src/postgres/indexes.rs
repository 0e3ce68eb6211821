//! Indexed payload fields on PostgreSQL: one partial expression B-tree per path,
//! `events_field_<id> ON events ((data #>> '{k}'), ts, seq, pk) WHERE (data #>> '{k}')
//! IS NOT NULL`, the expression `events_sql` writes for a `data.` filter.
//!
//! Why a B-tree per path and not one GIN index (`jsonb_path_ops`) over `data`: measured
//! (BENCHMARKS.md), the GIN index finds the matching rows but not in time order, so a
//! newest-first page of a common value sorts every match, and it costs more on every
//! write; the B-tree walks the value's events in order and stops at the page.
//!
//! The index is built without blocking writes: an invalid index `ON ONLY` the
//! partitioned table first (from then on, new partitions get theirs at creation), then
//! each existing partition's `CONCURRENTLY`, attached as it is built; the parent is
//! valid once all are attached. One process builds an index at a time (an advisory
//! lock per index).

use std::collections::HashMap;

use eye_core::FieldPath;

use super::events::path_literal;
use super::*;
use crate::indexes::index_name;
use crate::{IndexState, IndexedField, PendingIndex};

/// Advisory locks: `INDEX_LOCK` serializes declarations, `INDEX_LOCK + id` one
/// index's builders, between processes.
const INDEX_LOCK: i64 = 0x0e7e_1000_0000;

fn field_from(row: &Row) -> IndexedField {
    let state: String = row.get(1);
    IndexedField {
        path: row.get(0),
        state: IndexState::parse(&state).unwrap_or(IndexState::Building),
        ready_at: row.get::<_, Option<i64>>(2).map(Timestamp::from_micros),
        error: row.get(3),
    }
}

/// Every type's indexed fields, by type.
pub(super) async fn indexed_by_type(
    client: &impl GenericClient,
) -> Result<HashMap<(String, String), Vec<IndexedField>>> {
    let rows = client
        .query(
            "SELECT f.path, i.state, i.ready_at, i.error, f.category, f.name
             FROM indexed_fields f JOIN field_indexes i ON i.path = f.path
             ORDER BY f.category, f.name, f.path",
            &[],
        )
        .await
        .map_err(database)?;
    let mut by_type: HashMap<(String, String), Vec<IndexedField>> = HashMap::new();
    for row in &rows {
        by_type
            .entry((row.get(4), row.get(5)))
            .or_default()
            .push(field_from(row));
    }
    Ok(by_type)
}

async fn type_fields(
    client: &impl GenericClient,
    event_type: &EventType,
) -> Result<Vec<IndexedField>> {
    let rows = client
        .query(
            "SELECT f.path, i.state, i.ready_at, i.error
             FROM indexed_fields f JOIN field_indexes i ON i.path = f.path
             WHERE f.category = $1 AND f.name = $2 ORDER BY f.path",
            &[&event_type.category, &event_type.name],
        )
        .await
        .map_err(database)?;
    Ok(rows.iter().map(field_from).collect())
}

fn parse_path(text: &str) -> Result<FieldPath> {
    FieldPath::parse(text).map_err(corrupt)
}

#[async_trait::async_trait]
impl FieldIndexes for PgStore {
    async fn set_indexed_fields(
        &self,
        event_type: &EventType,
        paths: &[FieldPath],
    ) -> Result<Vec<IndexedField>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        // One declaration at a time: another's orphan cleanup could otherwise delete the
        // index row this one's declaration is about to reference.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INDEX_LOCK])
            .await
            .map_err(database)?;
        let now = Timestamp::now().as_micros();
        tx.execute(
            "DELETE FROM indexed_fields WHERE category = $1 AND name = $2",
            &[&event_type.category, &event_type.name],
        )
        .await
        .map_err(database)?;
        for path in paths {
            let pointer = path.to_string();
            // A path being dropped is declared again: build (or keep) its index.
            tx.execute(
                "INSERT INTO field_indexes (path, state, created_at) VALUES ($1, 'building', $2)
                 ON CONFLICT (path) DO UPDATE SET state = 'building', error = NULL
                 WHERE field_indexes.state = 'dropping'",
                &[&pointer, &now],
            )
            .await
            .map_err(database)?;
            tx.execute(
                "INSERT INTO indexed_fields (category, name, path) VALUES ($1, $2, $3)",
                &[&event_type.category, &event_type.name, &pointer],
            )
            .await
            .map_err(database)?;
        }
        // Dropped by the builder, under the index's own lock: a DROP INDEX here would
        // wait for a build's CONCURRENTLY, which waits for this transaction.
        tx.execute(
            "UPDATE field_indexes i SET state = 'dropping'
             WHERE NOT EXISTS (SELECT 1 FROM indexed_fields f WHERE f.path = i.path)",
            &[],
        )
        .await
        .map_err(database)?;
        let fields = type_fields(&tx, event_type).await?;
        tx.commit().await.map_err(database)?;
        Ok(fields)
    }

    async fn indexed_fields(&self, event_type: &EventType) -> Result<Vec<IndexedField>> {
        type_fields(&self.client().await?, event_type).await
    }

    async fn indexed_paths(&self) -> Result<Vec<FieldPath>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT path FROM field_indexes WHERE state <> 'dropping' ORDER BY path",
                &[],
            )
            .await
            .map_err(database)?;
        rows.iter().map(|row| parse_path(row.get(0))).collect()
    }

    async fn pending_field_indexes(&self) -> Result<Vec<PendingIndex>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, path, state = 'dropping' FROM field_indexes
                 WHERE state IN ('building', 'dropping') ORDER BY id",
                &[],
            )
            .await
            .map_err(database)?;
        rows.iter()
            .map(|row| {
                Ok(PendingIndex {
                    id: row.get(0),
                    path: parse_path(row.get(1))?,
                    dropping: row.get(2),
                })
            })
            .collect()
    }

    async fn build_field_index(&self, index: &PendingIndex) -> Result<bool> {
        let client = self.client().await?;
        let lock = INDEX_LOCK + index.id;
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&lock])
            .await
            .map_err(database)?
            .get(0);
        if !locked {
            return Ok(false);
        }
        let built = build(&client, index).await;
        if let Err(error) = &built {
            // Recorded for the operator; the next round tries again.
            let _ = client
                .execute(
                    "UPDATE field_indexes SET error = $2 WHERE id = $1",
                    &[&index.id, &error.to_string()],
                )
                .await;
        }
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&lock])
            .await
            .map_err(database)?;
        built
    }
}

async fn build(client: &deadpool_postgres::Object, index: &PendingIndex) -> Result<bool> {
    let pointer = index.path.to_string();
    let state: Option<String> = client
        .query_opt(
            "SELECT state FROM field_indexes WHERE id = $1 AND path = $2",
            &[&index.id, &pointer],
        )
        .await
        .map_err(database)?
        .map(|row| row.get(0));
    let name = index_name(index.id);
    match state.as_deref() {
        Some("building") => {}
        Some("dropping") => {
            // Dropping the partitioned index drops every partition's; a part a build
            // left unattached goes too.
            let parts = client
                .query(
                    "SELECT c.relname::text FROM pg_class c
                     WHERE c.relkind = 'i' AND c.relnamespace = current_schema()::regnamespace
                       AND c.relname LIKE $1",
                    &[&format!("{name}\\_%")],
                )
                .await
                .map_err(database)?;
            client
                .batch_execute(&format!("DROP INDEX IF EXISTS {name}"))
                .await
                .map_err(database)?;
            for part in &parts {
                let part: String = part.get(0);
                client
                    .batch_execute(&format!("DROP INDEX IF EXISTS {part}"))
                    .await
                    .map_err(database)?;
            }
            client
                .execute(
                    "DELETE FROM field_indexes WHERE id = $1 AND state = 'dropping'",
                    &[&index.id],
                )
                .await
                .map_err(database)?;
            return Ok(true);
        }
        _ => return Ok(false),
    }
    let expression = format!("(data #>> {})", path_literal(index.path.keys()));
    let columns = format!("({expression}, ts, seq, pk) WHERE {expression} IS NOT NULL");
    client
        .batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON ONLY events {columns}"
        ))
        .await
        .map_err(database)?;
    // Partitions without an index attached to the parent one (those made after it
    // have theirs already).
    let partitions = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'events'::regclass
               AND NOT EXISTS (
                   SELECT 1 FROM pg_inherits ii JOIN pg_index x ON x.indexrelid = ii.inhrelid
                   WHERE ii.inhparent = to_regclass($1) AND x.indrelid = c.oid)
             ORDER BY c.relname",
            &[&name],
        )
        .await
        .map_err(database)?;
    for row in &partitions {
        let partition: String = row.get(0);
        let own = format!("{name}_{}", partition.trim_start_matches("events_"));
        // A build a crash interrupted leaves an invalid index under this name.
        client
            .batch_execute(&format!("DROP INDEX IF EXISTS {own}"))
            .await
            .map_err(database)?;
        let made = client
            .batch_execute(&format!(
                "CREATE INDEX CONCURRENTLY {own} ON {partition} {columns}"
            ))
            .await;
        match made {
            Ok(()) => {}
            // Retention dropped the partition meanwhile: nothing to index.
            Err(error)
                if error.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) =>
            {
                continue;
            }
            Err(error) => return Err(database(error)),
        }
        client
            .batch_execute(&format!("ALTER INDEX {name} ATTACH PARTITION {own}"))
            .await
            .map_err(database)?;
    }
    // The planner weighs an expression index by the expression's statistics, which only
    // ANALYZE gathers: without them a filter with a type took the type's index (470 ms
    // against 2.8 ms on 10M events). It samples each partition: seconds, not a scan.
    client
        .batch_execute("ANALYZE events")
        .await
        .map_err(database)?;
    client
        .execute(
            "UPDATE field_indexes SET state = 'ready', ready_at = $2, error = NULL WHERE id = $1",
            &[&index.id, &Timestamp::now().as_micros()],
        )
        .await
        .map_err(database)?;
    Ok(true)
}
