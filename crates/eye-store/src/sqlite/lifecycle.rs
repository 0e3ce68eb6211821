//! Retention and erasure, as `Lifecycle`: events deleted in chunks with `DELETE ...
//! RETURNING`, and what they counted taken back (`removal::Decrements`) in the same
//! transaction, session trees included.

use eye_core::retention::Retention;

use super::*;
use crate::lifecycle::{Cutoffs, Erasure, ErasureFilter, ErasureStatus, Lifecycle, Removed};
use crate::removal::{Decrements, RemovedRow};

const REMOVED_COLUMNS: &str = "pk, session_id, app_id, category, name, ts, seq";

/// Deletes the events whose `pk` the statement `select` (with `args`) yields, and
/// everything that counts them.
fn delete_events(
    tx: &rusqlite::Transaction<'_>,
    select: &str,
    args: Vec<SqlValue>,
) -> Result<Removed> {
    let mut statement = tx.prepare(&format!(
        "DELETE FROM events WHERE pk IN ({select}) RETURNING {REMOVED_COLUMNS}"
    ))?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(args), |row| {
            Ok(RemovedRow {
                pk: row.get(0)?,
                session_id: row.get(1)?,
                app_id: row.get(2)?,
                category: row.get(3)?,
                name: row.get(4)?,
                ts: row.get(5)?,
                seq: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let sessions = take_back(tx, &rows)?;
    Ok(Removed {
        events: rows.len() as u64,
        sessions,
        refused: 0,
    })
}

/// Takes the deleted `rows` out of the session trees and the counters; returns how
/// many sessions were left empty and removed.
fn take_back(tx: &rusqlite::Transaction<'_>, rows: &[RemovedRow]) -> Result<u64> {
    for tree in ["session_index", "session_index_fresh"] {
        let mut delete = tx.prepare_cached(&format!(
            "DELETE FROM {tree} WHERE session_id = ?1 AND ts = ?2 AND seq = ?3 AND pk = ?4"
        ))?;
        for row in rows {
            delete.execute(params![row.session_id, row.ts, row.seq, row.pk])?;
        }
    }
    let decrements = Decrements::of(rows);
    let mut count_type = tx.prepare_cached(
        "UPDATE type_counts SET events = events - ?3 WHERE category = ?1 AND name = ?2",
    )?;
    let mut drop_type = tx.prepare_cached(
        "DELETE FROM type_counts WHERE category = ?1 AND name = ?2 AND events <= 0",
    )?;
    for ((category, name), count) in &decrements.types {
        count_type.execute(params![category, name, count])?;
        drop_type.execute(params![category, name])?;
    }
    let mut count_minute = tx.prepare_cached(
        "UPDATE event_counts SET events = events - ?5
         WHERE minute = ?1 AND category = ?2 AND name = ?3 AND app_id = ?4",
    )?;
    let mut drop_minute = tx.prepare_cached(
        "DELETE FROM event_counts
         WHERE minute = ?1 AND category = ?2 AND name = ?3 AND app_id = ?4 AND events <= 0",
    )?;
    for ((minute, category, name, app_id), count) in &decrements.minutes {
        count_minute.execute(params![minute, category, name, app_id, count])?;
        drop_minute.execute(params![minute, category, name, app_id])?;
    }
    let mut emptied = 0;
    let mut count_session = tx.prepare_cached(
        "UPDATE sessions SET event_count = event_count - ?2 WHERE session_id = ?1
         RETURNING event_count",
    )?;
    let mut remove_session = tx.prepare_cached("DELETE FROM sessions WHERE session_id = ?1")?;
    let mut remove_links = tx.prepare_cached("DELETE FROM session_apps WHERE session_id = ?1")?;
    // Each tree's first and last entry of a session are one index seek each (SQLite's
    // min/max optimisation): a long session costs no more than a short one.
    let mut bounds = Vec::new();
    for tree in ["session_index", "session_index_fresh"] {
        bounds.push(tx.prepare_cached(&format!(
            "SELECT (SELECT min(ts) FROM {tree} WHERE session_id = ?1),
                    (SELECT max(ts) FROM {tree} WHERE session_id = ?1)"
        ))?);
    }
    let mut set_bounds = tx.prepare_cached(
        "UPDATE sessions SET first_seen = ?2, last_seen = ?3 WHERE session_id = ?1",
    )?;
    let mut surviving = std::collections::HashSet::new();
    for (session_id, count) in &decrements.sessions {
        let left: Option<i64> = count_session
            .query_row(params![session_id, count], |row| row.get(0))
            .optional()?;
        match left {
            Some(left) if left > 0 => {
                let (mut first, mut last) = (i64::MAX, i64::MIN);
                for statement in &mut bounds {
                    let (low, high): (Option<i64>, Option<i64>) =
                        statement.query_row([session_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                    first = first.min(low.unwrap_or(i64::MAX));
                    last = last.max(high.unwrap_or(i64::MIN));
                }
                set_bounds.execute(params![session_id, first, last])?;
                surviving.insert(session_id.as_str());
            }
            Some(_) => {
                remove_session.execute([session_id])?;
                remove_links.execute([session_id])?;
                emptied += 1;
            }
            None => {}
        }
    }
    // A surviving session keeps its link to an application only while it has an
    // event of that application. A session linked to one application only has nothing
    // to check: its remaining events are that application's.
    let mut linked =
        tx.prepare_cached("SELECT count(*) FROM session_apps WHERE session_id = ?1")?;
    let mut unlink = tx.prepare_cached(
        "DELETE FROM session_apps WHERE session_id = ?1 AND app_id = ?2 AND NOT EXISTS (
             SELECT 1 FROM events e WHERE e.app_id = ?2 AND e.pk IN (
                 SELECT pk FROM session_index WHERE session_id = ?1
                 UNION ALL SELECT pk FROM session_index_fresh WHERE session_id = ?1))",
    )?;
    for (session_id, app_id) in &decrements.links {
        if !surviving.contains(session_id.as_str()) {
            continue;
        }
        let apps: i64 = linked.query_row([session_id], |row| row.get(0))?;
        if apps > 1 {
            unlink.execute(params![session_id, app_id])?;
        }
    }
    Ok(emptied)
}

/// The refused-event records an erasure covers, as an SQL condition on `errors r` and
/// its arguments.
fn refused_condition(filter: &ErasureFilter, until: i64) -> (String, Vec<SqlValue>) {
    let mut conditions = String::from("r.received_at <= ?1");
    let mut args = vec![SqlValue::Integer(until)];
    let mut add = |clause: &str, value: SqlValue| {
        args.push(value);
        conditions.push_str(&format!(
            " AND {}",
            clause.replace('?', &format!("?{}", args.len()))
        ));
    };
    if let Some(session_id) = &filter.session_id {
        add("r.session_id = ?", SqlValue::Text(session_id.clone()));
    }
    if let Some(app_id) = filter.app_id {
        add("r.app_id = ?", SqlValue::Integer(app_id));
    }
    if let Some(category) = &filter.category {
        add("r.category = ?", SqlValue::Text(category.clone()));
    }
    if let Some(name) = &filter.name {
        add("r.name = ?", SqlValue::Text(name.clone()));
    }
    // A refused event's own timestamp may be what was wrong with it: the time filters
    // apply to when it was received.
    if let Some(from) = filter.from {
        add("r.received_at >= ?", SqlValue::Integer(from.as_micros()));
    }
    if let Some(to) = filter.to {
        add("r.received_at < ?", SqlValue::Integer(to.as_micros()));
    }
    for (path, value) in &filter.data {
        let mut keys = vec!["data".to_owned()];
        keys.extend(path.iter().cloned());
        let path = events::json_path(&keys).replace('\'', "''");
        let clause = match events::typed_literal(value) {
            Some(typed) => format!("json_extract(r.raw, '{path}') IN (?, {typed})"),
            None => format!("json_extract(r.raw, '{path}') = ?"),
        };
        add(&clause, SqlValue::Text(value.clone()));
    }
    (conditions, args)
}

fn erasure_from_row(row: &Row<'_>) -> rusqlite::Result<Erasure> {
    let filter: String = row.get(1)?;
    let filter = serde_json::from_str(&filter).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let finished_at: Option<i64> = row.get(5)?;
    Ok(Erasure {
        id: row.get(0)?,
        filter,
        until: timestamp(row, 2)?,
        actor: row.get(3)?,
        created_at: timestamp(row, 4)?,
        status: if finished_at.is_some() {
            ErasureStatus::Done
        } else {
            ErasureStatus::Running
        },
        finished_at: finished_at.map(Timestamp::from_micros),
        removed: Removed {
            events: row.get::<_, i64>(6)? as u64,
            sessions: row.get::<_, i64>(7)? as u64,
            refused: row.get::<_, i64>(8)? as u64,
        },
    })
}

const ERASURE_COLUMNS: &str =
    "id, filter, until, actor, created_at, finished_at, events, sessions, refused";

fn get_erasure(conn: &Connection, id: i64) -> Result<Option<Erasure>> {
    Ok(conn
        .query_row(
            &format!("SELECT {ERASURE_COLUMNS} FROM erasures WHERE id = ?1"),
            [id],
            erasure_from_row,
        )
        .optional()?)
}

/// The erasures that may cover events received at or after `since`: those a worker
/// batch of such events must respect.
pub(super) fn tombstones(
    tx: &rusqlite::Transaction<'_>,
    since: i64,
) -> Result<Vec<crate::lifecycle::Tombstone>> {
    let mut statement =
        tx.prepare_cached("SELECT filter, until FROM erasures WHERE until >= ?1")?;
    let rows = statement
        .query_map([since], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(filter, until)| {
            let filter = serde_json::from_str(&filter)
                .map_err(|e| StoreError::Corrupt(format!("an erasure's filter: {e}")))?;
            Ok(crate::lifecycle::Tombstone { filter, until })
        })
        .collect()
}

#[async_trait::async_trait]
impl Lifecycle for SqliteStore {
    async fn expire_events(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Removed> {
        let cutoffs = cutoffs.clone();
        self.write_with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut removed = Removed::default();
            for (app_id, cutoff) in cutoffs.0 {
                let left = u64::from(limit).saturating_sub(removed.events);
                if left == 0 {
                    break;
                }
                removed += delete_events(
                    &tx,
                    "SELECT pk FROM events WHERE app_id = ?1 AND received_at < ?2 LIMIT ?3",
                    vec![
                        SqlValue::Integer(app_id),
                        SqlValue::Integer(cutoff),
                        SqlValue::Integer(left as i64),
                    ],
                )?;
            }
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    async fn expire_refused(&self, cutoff: i64, limit: u32) -> Result<u64> {
        self.write_with(move |conn| {
            Ok(conn.execute(
                "DELETE FROM errors WHERE id IN (
                     SELECT id FROM errors WHERE received_at < ?1 LIMIT ?2)",
                params![cutoff, limit],
            )? as u64)
        })
        .await
    }

    async fn set_app_retention(&self, name: &str, retention: Option<Retention>) -> Result<()> {
        let name = name.to_owned();
        self.write_with(move |conn| {
            let changed = conn.execute(
                "UPDATE apps SET retention = ?2 WHERE name = ?1",
                params![name, retention.map(|r| r.to_string())],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("application {name:?}")));
            }
            Ok(())
        })
        .await
    }

    async fn create_erasure(
        &self,
        filter: ErasureFilter,
        until: i64,
        actor: &str,
    ) -> Result<Erasure> {
        let actor = actor.to_owned();
        let text = serde_json::to_string(&filter)
            .map_err(|e| StoreError::Corrupt(format!("an erasure's filter: {e}")))?;
        self.write_with(move |conn| {
            let id: i64 = conn.query_row(
                "INSERT INTO erasures (filter, until, actor, created_at) VALUES (?1, ?2, ?3, ?4)
                 RETURNING id",
                params![text, until, actor, Timestamp::now().as_micros()],
                |row| row.get(0),
            )?;
            get_erasure(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("erasure {id}")))
        })
        .await
    }

    async fn erase_chunk(&self, id: i64, limit: u32) -> Result<Removed> {
        self.write_with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let erasure = get_erasure(&tx, id)?
                .ok_or_else(|| StoreError::NotFound(format!("erasure {id}")))?;
            let until = erasure.until.as_micros();
            let mut query = erasure.filter.query();
            query.received_until = Some(until);
            let indexed = events::has_indexed_field(&tx, &query)?;
            let (select, args) = events::events_sql(&query, u64::from(limit), indexed);
            let mut removed = delete_events(&tx, &format!("SELECT pk FROM ({select})"), args)?;
            if removed.events == 0 {
                let (condition, mut args) = refused_condition(&erasure.filter, until);
                args.push(SqlValue::Integer(i64::from(limit)));
                let n = args.len();
                removed.refused = tx.execute(
                    &format!(
                        "DELETE FROM errors WHERE id IN (
                             SELECT r.id FROM errors r WHERE {condition} LIMIT ?{n})"
                    ),
                    rusqlite::params_from_iter(args),
                )? as u64;
            }
            tx.execute(
                "UPDATE erasures SET events = events + ?2, sessions = sessions + ?3,
                                     refused = refused + ?4
                 WHERE id = ?1",
                params![
                    id,
                    removed.events as i64,
                    removed.sessions as i64,
                    removed.refused as i64
                ],
            )?;
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    async fn finish_erasure(&self, id: i64) -> Result<Erasure> {
        self.write_with(move |conn| {
            conn.execute(
                "UPDATE erasures SET finished_at = ?2 WHERE id = ?1 AND finished_at IS NULL",
                params![id, Timestamp::now().as_micros()],
            )?;
            get_erasure(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("erasure {id}")))
        })
        .await
    }

    async fn erasure(&self, id: i64) -> Result<Option<Erasure>> {
        self.read_with(move |conn| get_erasure(conn, id)).await
    }

    async fn running_erasures(&self) -> Result<Vec<Erasure>> {
        self.read_with(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT {ERASURE_COLUMNS} FROM erasures WHERE finished_at IS NULL ORDER BY id"
            ))?;
            Ok(statement
                .query_map([], erasure_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
