//! The worker's batches: one transaction each, through `batch::Rows`; and the merge of
//! the fresh session tree into the main one.

use super::*;
use std::collections::HashSet;

use crate::batch::{Counters, Rows, Written, earliest_received};

/// Entries `session_index_fresh` may hold before they are merged into `session_index`.
/// Small enough that the fresh tree stays in the page cache (~10 MB), large enough that a
/// merge touches each of the main tree's pages for many entries at once.
pub(super) const FRESH_SESSION_ENTRIES: i64 = 250_000;

pub(super) fn write_batch(conn: &mut Connection, batch: &[Processed]) -> Result<WriteOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcome = write_in(&tx, batch.iter())?;
    tx.commit()?;
    Ok(outcome)
}

/// Writes processed events and refusals inside the caller's transaction: events and
/// their session-tree entries row by row (SQLite answers each insert at once), then
/// what `batch::Rows` derives from the ones inserted: counters and refused-event records.
pub(super) fn write_in<'a>(
    tx: &rusqlite::Transaction<'_>,
    batch: impl Iterator<Item = &'a Processed> + Clone,
) -> Result<WriteOutcome> {
    let legacy_until: Option<i64> = tx
        .query_row(
            "SELECT value FROM store_meta WHERE key = 'legacy_v7_client_ids_until_ms'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let mut stored_id = tx.prepare_cached("SELECT 1 FROM events WHERE id = ?1")?;
    let mut recorded_id = tx.prepare_cached("SELECT 1 FROM errors WHERE event_id = ?1")?;
    // A resend of something stored or recorded under the old id rule (migration 0009):
    // a UUIDv7 client id made before the window closed, whose old-rule id is in the
    // store or earlier in this batch (a message queued before the upgrade).
    let (mut earlier_events, mut earlier_refused) = (HashSet::new(), HashSet::new());
    let resent = |processed: &Processed| -> Result<bool> {
        let Some(until) = legacy_until else {
            return Ok(false);
        };
        let (id, app_id, event, is_event) = match processed {
            Processed::Event {
                id, app_id, event, ..
            } => (*id, *app_id, Some(event), true),
            Processed::Refused {
                id, app_id, event, ..
            } => (*id, *app_id, event.as_ref(), false),
        };
        let (earlier, lookup) = if is_event {
            (&mut earlier_events, &mut stored_id)
        } else {
            (&mut earlier_refused, &mut recorded_id)
        };
        earlier.insert(id);
        let twin = event
            .and_then(|e| e.client_id.as_deref())
            .and_then(|client_id| ids::legacy_twin(app_id, client_id))
            .filter(|(twin, made)| *made < until && *twin != id);
        let Some((twin, _)) = twin else {
            return Ok(false);
        };
        Ok(earlier.contains(&twin) || lookup.exists([twin.as_bytes()])?)
    };
    let tombstones = super::lifecycle::tombstones(tx, earliest_received(batch.clone()))?;
    let rows = Rows::of(batch, resent, &tombstones)?;

    let mut insert_event = tx.prepare_cached(
        "INSERT INTO events (id, app_id, client_id, session_id, category, name, data, ts, seq,
                             received_at, sent_at, schema_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (id) DO NOTHING",
    )?;
    let mut index_session = tx.prepare_cached(
        "INSERT INTO session_index_fresh (session_id, ts, seq, pk) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut inserted = Vec::with_capacity(rows.events.len());
    for new in &rows.events {
        let event = new.event;
        let added = insert_event.execute(params![
            new.id.as_bytes(),
            new.app_id,
            event.client_id,
            event.session_id.as_str(),
            event.event_type.category,
            event.event_type.name,
            event.data.get(),
            event.timestamp,
            event.seq.unwrap_or(0),
            new.received_at,
            event.sent_at,
            new.schema_version,
        ])? == 1;
        if added {
            index_session.execute(params![
                event.session_id.as_str(),
                event.timestamp,
                event.seq.unwrap_or(0),
                tx.last_insert_rowid(),
            ])?;
        }
        inserted.push(added);
    }
    let Written {
        mut outcome,
        counters,
        records,
    } = rows.written(&inserted);
    write_counters(tx, &counters)?;
    let mut insert_refusal = tx.prepare_cached(
        "INSERT INTO errors (event_id, app_id, reason, message, field, raw, session_id, category,
                             name, received_at, recorded_at, violations, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (event_id) DO NOTHING",
    )?;
    let now = Timestamp::now().as_micros();
    for record in &records {
        let added = insert_refusal.execute(params![
            record.id.as_bytes(),
            record.app_id,
            record.refusal.code,
            record.refusal.message,
            record.refusal.field,
            record.raw,
            record.identity.session_id,
            record.identity.category,
            record.identity.name,
            record.received_at,
            now,
            violations_text(record.refusal)?,
            record.status.as_str(),
        ])? as u64;
        match record.status {
            RefusedStatus::Warning => outcome.warnings += added,
            _ => outcome.refused += added,
        }
    }
    merge_fresh_sessions(tx, FRESH_SESSION_ENTRIES)?;
    Ok(outcome)
}

/// One upsert per session, link, type and minute, in key order.
fn write_counters(tx: &rusqlite::Transaction<'_>, counters: &Counters<'_>) -> Result<()> {
    let mut upsert_session = tx.prepare_cached(
        "INSERT INTO sessions (session_id, first_seen, last_seen, event_count)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (session_id) DO UPDATE SET
             first_seen = min(first_seen, excluded.first_seen),
             last_seen = max(last_seen, excluded.last_seen),
             event_count = event_count + excluded.event_count",
    )?;
    for (session_id, delta) in &counters.sessions {
        upsert_session.execute(params![
            session_id,
            delta.first_seen,
            delta.last_seen,
            delta.count
        ])?;
    }
    let mut link_app = tx.prepare_cached(
        "INSERT INTO session_apps (session_id, app_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for (session_id, app_id) in &counters.links {
        link_app.execute(params![session_id, app_id])?;
    }
    let mut count_type = tx.prepare_cached(
        "INSERT INTO type_counts (category, name, events) VALUES (?1, ?2, ?3)
         ON CONFLICT (category, name) DO UPDATE SET events = events + excluded.events",
    )?;
    for ((category, name), count) in &counters.types {
        count_type.execute(params![category, name, count])?;
    }
    let mut count_minute = tx.prepare_cached(
        "INSERT INTO event_counts (minute, category, name, app_id, events) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (minute, category, name, app_id) DO UPDATE SET events = events + excluded.events",
    )?;
    for ((minute, category, name, app_id), count) in &counters.minutes {
        count_minute.execute(params![minute, category, name, app_id, count])?;
    }
    Ok(())
}

/// Moves the fresh session entries into the main tree once there are at least
/// `at_least` of them, inside the caller's transaction. Reading the fresh tree in key
/// order makes the insert one ordered pass over the main tree. Counting is cheap: SQLite
/// counts a tree's cells from its page headers.
pub(super) fn merge_fresh_sessions(tx: &rusqlite::Transaction<'_>, at_least: i64) -> Result<()> {
    let fresh: i64 = tx.query_row("SELECT count(*) FROM session_index_fresh", [], |r| r.get(0))?;
    if fresh > 0 && fresh >= at_least {
        let started = std::time::Instant::now();
        tx.execute_batch(
            "INSERT INTO session_index (session_id, ts, seq, pk)
                 SELECT session_id, ts, seq, pk FROM session_index_fresh;
             DELETE FROM session_index_fresh;",
        )?;
        tracing::debug!(entries = fresh, took = ?started.elapsed(), "merged the fresh session index");
    }
    Ok(())
}

#[async_trait::async_trait]
impl EventWrites for SqliteStore {
    async fn write(&self, batch: Arc<Vec<Processed>>) -> Result<WriteOutcome> {
        self.write_with(move |conn| write_batch(conn, &batch)).await
    }
}
