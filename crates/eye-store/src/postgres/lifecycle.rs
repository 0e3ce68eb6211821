//! Retention and erasure, as `Lifecycle`: events deleted in chunks with `DELETE ...
//! RETURNING`, and what they counted taken back (`removal::Decrements`) in the same
//! transaction, a few array statements each, rows locked in key order.
//!
//! An erasure is made under an exclusive advisory lock that every worker batch takes
//! shared (`write_in`): a batch either commits before the erasure's record (and its
//! rows are then deleted) or sees the record and drops what it covers.

use eye_core::retention::Retention;

use super::*;
use crate::lifecycle::{
    Cutoffs, Erasure, ErasureFilter, ErasureStatus, Lifecycle, Removed, Tombstone,
};
use crate::removal::{Decrements, RemovedRow};

/// Taken shared by every worker batch, exclusively while an erasure is recorded.
pub(super) const ERASURE_LOCK: i64 = 0x0e7e_0002;

const REMOVED_COLUMNS: &str = "pk, session_id, app_id, category, name, ts, seq, id";

/// Deletes the events whose `(pk, received_at)` the statement in `select` yields (the
/// reception time finds the partition), their ids, and everything that counts them.
async fn delete_events(tx: &Transaction<'_>, select: Sql) -> Result<Removed> {
    let statement = format!(
        "DELETE FROM events WHERE (pk, received_at) IN ({}) RETURNING {REMOVED_COLUMNS}",
        select.text
    );
    let deleted = tx
        .query(&statement, &select.params())
        .await
        .map_err(database)?;
    let ids: Vec<Uuid> = deleted.iter().map(|row| row.get(7)).collect();
    let rows: Vec<RemovedRow> = deleted
        .iter()
        .map(|row| RemovedRow {
            pk: row.get(0),
            session_id: row.get(1),
            app_id: row.get(2),
            category: row.get(3),
            name: row.get(4),
            ts: row.get(5),
            seq: row.get(6),
        })
        .collect();
    tx.execute("DELETE FROM event_ids WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(database)?;
    let sessions = take_back(tx, &Decrements::of(&rows)).await?;
    Ok(Removed {
        events: rows.len() as u64,
        sessions,
        refused: 0,
    })
}

/// Takes deleted events out of the counters; returns how many sessions were left
/// empty and removed.
pub(super) async fn take_back(tx: &Transaction<'_>, decrements: &Decrements) -> Result<u64> {
    if decrements.sessions.is_empty() {
        return Ok(0);
    }
    let categories: Vec<&str> = decrements.types.keys().map(|k| k.0.as_str()).collect();
    let names: Vec<&str> = decrements.types.keys().map(|k| k.1.as_str()).collect();
    let counts: Vec<i64> = decrements.types.values().copied().collect();
    tx.execute(
        "WITH taken AS (
             UPDATE type_counts t SET events = t.events - u.n
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(category, name, n)
             WHERE t.category = u.category AND t.name = u.name
             RETURNING t.category, t.name, t.events)
         DELETE FROM type_counts t USING taken
         WHERE t.category = taken.category AND t.name = taken.name AND taken.events <= 0",
        &[&categories, &names, &counts],
    )
    .await
    .map_err(database)?;
    let minutes = &decrements.minutes;
    let minute: Vec<i64> = minutes.keys().map(|k| k.0).collect();
    let categories: Vec<&str> = minutes.keys().map(|k| k.1.as_str()).collect();
    let names: Vec<&str> = minutes.keys().map(|k| k.2.as_str()).collect();
    let apps: Vec<i64> = minutes.keys().map(|k| k.3).collect();
    let counts: Vec<i64> = minutes.values().copied().collect();
    tx.execute(
        "WITH taken AS (
             UPDATE event_counts c SET events = c.events - u.n
             FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[])
                  AS u(minute, category, name, app_id, n)
             WHERE c.minute = u.minute AND c.category = u.category AND c.name = u.name
               AND c.app_id = u.app_id
             RETURNING c.minute, c.category, c.name, c.app_id, c.events)
         DELETE FROM event_counts c USING taken
         WHERE c.minute = taken.minute AND c.category = taken.category
           AND c.name = taken.name AND c.app_id = taken.app_id AND taken.events <= 0",
        &[&minute, &categories, &names, &apps, &counts],
    )
    .await
    .map_err(database)?;

    let sessions: Vec<&str> = decrements.sessions.keys().map(String::as_str).collect();
    let removed: Vec<i64> = decrements.sessions.values().copied().collect();
    // Row locks in key order, as the worker's upserts take them.
    tx.execute(
        "SELECT 1 FROM sessions WHERE session_id = ANY($1) ORDER BY session_id FOR UPDATE",
        &[&sessions],
    )
    .await
    .map_err(database)?;
    let emptied: Vec<String> = tx
        .query(
            "UPDATE sessions s SET event_count = s.event_count - u.n
             FROM UNNEST($1::text[], $2::int8[]) AS u(session_id, n)
             WHERE s.session_id = u.session_id AND s.event_count - u.n <= 0
             RETURNING s.session_id",
            &[&sessions, &removed],
        )
        .await
        .map_err(database)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    tx.execute(
        "DELETE FROM sessions WHERE session_id = ANY($1)",
        &[&emptied],
    )
    .await
    .map_err(database)?;
    tx.execute(
        "DELETE FROM session_apps WHERE session_id = ANY($1)",
        &[&emptied],
    )
    .await
    .map_err(database)?;
    let surviving: Vec<&str> = sessions
        .iter()
        .zip(&removed)
        .filter(|(session, _)| !emptied.iter().any(|e| e == *session))
        .map(|(session, _)| *session)
        .collect();
    let surviving_removed: Vec<i64> = sessions
        .iter()
        .zip(&removed)
        .filter(|(session, _)| !emptied.iter().any(|e| e == *session))
        .map(|(_, n)| *n)
        .collect();
    tx.execute(
        "UPDATE sessions s
         SET event_count = s.event_count - u.n, first_seen = b.first, last_seen = b.last
         FROM UNNEST($1::text[], $2::int8[]) AS u(session_id, n),
              LATERAL (SELECT min(ts) AS first, max(ts) AS last FROM events e
                       WHERE e.session_id = u.session_id) AS b
         WHERE s.session_id = u.session_id",
        &[&surviving, &surviving_removed],
    )
    .await
    .map_err(database)?;
    let (link_sessions, link_apps): (Vec<&str>, Vec<i64>) = decrements
        .links
        .iter()
        .filter(|(session, _)| surviving.contains(&session.as_str()))
        .map(|(session, app)| (session.as_str(), *app))
        .unzip();
    tx.execute(
        "DELETE FROM session_apps sa
         USING UNNEST($1::text[], $2::int8[]) AS u(session_id, app_id)
         WHERE sa.session_id = u.session_id AND sa.app_id = u.app_id
           AND NOT EXISTS (SELECT 1 FROM events e
                           WHERE e.session_id = u.session_id AND e.app_id = u.app_id)",
        &[&link_sessions, &link_apps],
    )
    .await
    .map_err(database)?;
    Ok(emptied.len() as u64)
}

/// The refused-event records an erasure covers, as a statement selecting their ids.
fn refused_ids(filter: &ErasureFilter, until: i64, limit: i64) -> Sql {
    let mut sql = Sql::new("SELECT r.id FROM errors r WHERE TRUE");
    sql.and("r.received_at <= ?", until);
    if let Some(session_id) = &filter.session_id {
        sql.and("r.session_id = ?", session_id.clone());
    }
    if let Some(app_id) = filter.app_id {
        sql.and("r.app_id = ?", app_id);
    }
    if let Some(category) = &filter.category {
        sql.and("r.category = ?", category.clone());
    }
    if let Some(name) = &filter.name {
        sql.and("r.name = ?", name.clone());
    }
    // A refused event's own timestamp may be what was wrong with it: the time filters
    // apply to when it was received.
    if let Some(from) = filter.from {
        sql.and("r.received_at >= ?", from.as_micros());
    }
    if let Some(to) = filter.to {
        sql.and("r.received_at < ?", to.as_micros());
    }
    for (path, value) in &filter.data {
        let mut keys = vec!["data".to_owned()];
        keys.extend(path.iter().cloned());
        let path = sql.bind(keys);
        sql.and(
            &format!("r.raw::jsonb #>> {path}::text[] = ?"),
            value.clone(),
        );
    }
    sql.text.push_str(&format!(" LIMIT {limit}"));
    sql
}

const ERASURE_COLUMNS: &str =
    "id, filter, until, actor, created_at, finished_at, events, sessions, refused";

fn erasure_from_row(row: &Row) -> Result<Erasure> {
    let filter: String = row.get(1);
    let filter = serde_json::from_str(&filter).map_err(corrupt)?;
    let finished_at: Option<i64> = row.get(5);
    Ok(Erasure {
        id: row.get(0),
        filter,
        until: Timestamp::from_micros(row.get(2)),
        actor: row.get(3),
        created_at: Timestamp::from_micros(row.get(4)),
        status: if finished_at.is_some() {
            ErasureStatus::Done
        } else {
            ErasureStatus::Running
        },
        finished_at: finished_at.map(Timestamp::from_micros),
        removed: Removed {
            events: row.get::<_, i64>(6) as u64,
            sessions: row.get::<_, i64>(7) as u64,
            refused: row.get::<_, i64>(8) as u64,
        },
    })
}

async fn get_erasure(client: &impl GenericClient, id: i64) -> Result<Option<Erasure>> {
    client
        .query_opt(
            &format!("SELECT {ERASURE_COLUMNS} FROM erasures WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(database)?
        .as_ref()
        .map(erasure_from_row)
        .transpose()
}

/// The erasures that may cover events received at or after `since`; the caller's
/// transaction holds `ERASURE_LOCK` shared, so none is being recorded meanwhile.
pub(super) async fn tombstones(tx: &Transaction<'_>, since: i64) -> Result<Vec<Tombstone>> {
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&ERASURE_LOCK])
        .await
        .map_err(database)?;
    tx.query(
        "SELECT filter, until FROM erasures WHERE until >= $1",
        &[&since],
    )
    .await
    .map_err(database)?
    .iter()
    .map(|row| {
        let filter: String = row.get(0);
        Ok(Tombstone {
            filter: serde_json::from_str(&filter).map_err(corrupt)?,
            until: row.get(1),
        })
    })
    .collect()
}

#[async_trait::async_trait]
impl Lifecycle for PgStore {
    async fn expire_events(&self, cutoffs: &Cutoffs, limit: u32) -> Result<Removed> {
        // Whole partitions first, then what is left, in chunks.
        let mut removed = self.drop_expired(cutoffs).await?;
        if removed.events > 0 {
            return Ok(removed);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        for &(app_id, cutoff) in &cutoffs.0 {
            let left = u64::from(limit).saturating_sub(removed.events) as i64;
            if left == 0 {
                break;
            }
            let mut select = Sql::new("SELECT pk, received_at FROM events WHERE TRUE");
            select.and("app_id = ?", app_id);
            select.and("received_at < ?", cutoff);
            select.text.push_str(&format!(" LIMIT {left}"));
            removed += delete_events(&tx, select).await?;
        }
        tx.commit().await.map_err(database)?;
        Ok(removed)
    }

    async fn expire_refused(&self, cutoff: i64, limit: u32) -> Result<u64> {
        let limit = i64::from(limit);
        self.client()
            .await?
            .execute(
                "DELETE FROM errors WHERE id IN (
                     SELECT id FROM errors WHERE received_at < $1 LIMIT $2)",
                &[&cutoff, &limit],
            )
            .await
            .map_err(database)
    }

    async fn set_app_retention(&self, name: &str, retention: Option<Retention>) -> Result<()> {
        let text = retention.map(|r| r.to_string());
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE apps SET retention = $2 WHERE name = $1",
                &[&name, &text],
            )
            .await
            .map_err(database)?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("application {name:?}")));
        }
        Ok(())
    }

    async fn create_erasure(
        &self,
        filter: ErasureFilter,
        until: i64,
        actor: &str,
    ) -> Result<Erasure> {
        let text = serde_json::to_string(&filter).map_err(corrupt)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        // Waits for the worker batches in flight: they commit before the erasure.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ERASURE_LOCK])
            .await
            .map_err(database)?;
        let now = Timestamp::now().as_micros();
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO erasures (filter, until, actor, created_at)
                     VALUES ($1, $2, $3, $4) RETURNING {ERASURE_COLUMNS}"
                ),
                &[&text, &until, &actor, &now],
            )
            .await
            .map_err(database)?;
        let erasure = erasure_from_row(&row)?;
        tx.commit().await.map_err(database)?;
        Ok(erasure)
    }

    async fn erase_chunk(&self, id: i64, limit: u32) -> Result<Removed> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let erasure = get_erasure(&tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("erasure {id}")))?;
        let until = erasure.until.as_micros();
        let mut query = erasure.filter.query();
        query.received_until = Some(until);
        let events = events::events_sql(&query, i64::from(limit));
        let select = Sql {
            text: format!("SELECT pk, received_at FROM ({}) AS matching", events.text),
            params: events.params,
        };
        let mut removed = delete_events(&tx, select).await?;
        if removed.events == 0 {
            let ids = refused_ids(&erasure.filter, until, i64::from(limit));
            removed.refused = tx
                .execute(
                    &format!("DELETE FROM errors WHERE id IN ({})", ids.text),
                    &ids.params(),
                )
                .await
                .map_err(database)?;
        }
        let (events, sessions, refused) = (
            removed.events as i64,
            removed.sessions as i64,
            removed.refused as i64,
        );
        tx.execute(
            "UPDATE erasures SET events = events + $2, sessions = sessions + $3,
                                 refused = refused + $4
             WHERE id = $1",
            &[&id, &events, &sessions, &refused],
        )
        .await
        .map_err(database)?;
        tx.commit().await.map_err(database)?;
        Ok(removed)
    }

    async fn finish_erasure(&self, id: i64) -> Result<Erasure> {
        let client = self.client().await?;
        let now = Timestamp::now().as_micros();
        client
            .execute(
                "UPDATE erasures SET finished_at = $2 WHERE id = $1 AND finished_at IS NULL",
                &[&id, &now],
            )
            .await
            .map_err(database)?;
        get_erasure(&client, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("erasure {id}")))
    }

    async fn erasure(&self, id: i64) -> Result<Option<Erasure>> {
        get_erasure(&self.client().await?, id).await
    }

    async fn running_erasures(&self) -> Result<Vec<Erasure>> {
        self.client()
            .await?
            .query(
                &format!(
                    "SELECT {ERASURE_COLUMNS} FROM erasures WHERE finished_at IS NULL ORDER BY id"
                ),
                &[],
            )
            .await
            .map_err(database)?
            .iter()
            .map(erasure_from_row)
            .collect()
    }
}
