//! The worker's batches: one transaction of a few array statements each, through
//! `batch::Rows`; and the lookup of resends under the old id rule.

use super::*;
use crate::batch::{Counters, NewEvent, NewRefusal, Rows, Written, earliest_received};

/// What in a batch resends, under today's id rule, something the store holds under the
/// old rule for UUIDv7 client ids (migration 0006): accepted events whose old-rule id
/// is stored, and refused ones whose old-rule id is recorded. Both also count the
/// old-rule id earlier in this batch (queued before the upgrade).
#[derive(Default)]
pub(super) struct Resent {
    events: HashSet<Uuid>,
    refused: HashSet<Uuid>,
}

/// Finds [`Resent`] in one statement, and only for client ids made before `until`
/// (`store_meta`; none on a store created by this version): a new store, or new client
/// ids on an upgraded one, cost no statement.
pub(super) async fn resent_under_old_rule(
    tx: &Transaction<'_>,
    batch: &[&Processed],
    until: Option<i64>,
) -> Result<Resent> {
    let Some(until) = until else {
        return Ok(Resent::default());
    };
    let mut ids = Vec::new();
    let mut twins = Vec::new();
    let mut accepted = Vec::new();
    let mut event_ids = Vec::new();
    let mut error_ids = Vec::new();
    for processed in batch {
        let (id, app_id, event, is_event) = match processed {
            Processed::Event {
                id, app_id, event, ..
            } => (id, app_id, Some(event), true),
            Processed::Refused {
                id, app_id, event, ..
            } => (id, app_id, event.as_ref(), false),
        };
        if is_event {
            event_ids.push(*id);
        } else {
            error_ids.push(*id);
        }
        if let Some(client_id) = event.and_then(|e| e.client_id.as_deref())
            && let Some((twin, millis)) = eye_core::ids::legacy_twin(*app_id, client_id)
            && millis < until
            // A message queued before the upgrade has the old id itself.
            && twin != *id
        {
            ids.push(*id);
            twins.push(twin);
            accepted.push(is_event);
        }
    }
    if twins.is_empty() {
        return Ok(Resent::default());
    }
    let rows = tx
        .query(
            "SELECT u.id, u.accepted
             FROM UNNEST($1::uuid[], $2::uuid[], $3::bool[]) AS u(id, twin, accepted)
             WHERE CASE WHEN u.accepted
                        THEN EXISTS (SELECT 1 FROM event_ids e WHERE e.id = u.twin)
                             OR u.twin = ANY($4::uuid[])
                        ELSE EXISTS (SELECT 1 FROM errors r WHERE r.event_id = u.twin)
                             OR u.twin = ANY($5::uuid[])
                   END",
            &[&ids, &twins, &accepted, &event_ids, &error_ids],
        )
        .await
        .map_err(database)?;
    let mut resent = Resent::default();
    for row in rows {
        let id: Uuid = row.get(0);
        if row.get::<_, bool>(1) {
            resent.events.insert(id);
        } else {
            resent.refused.insert(id);
        }
    }
    Ok(resent)
}

/// Writes processed events and refusals inside the caller's transaction: the events
/// in one statement (`RETURNING` says which were inserted), then what `batch::Rows`
/// derives from those: counters and refused-event records, a statement each.
pub(super) async fn write_in(
    tx: &Transaction<'_>,
    batch: &[&Processed],
    legacy_until: Option<i64>,
) -> Result<WriteOutcome> {
    let resent = resent_under_old_rule(tx, batch, legacy_until).await?;
    let tombstones =
        super::lifecycle::tombstones(tx, earliest_received(batch.iter().copied())).await?;
    let rows = Rows::of(
        batch.iter().copied(),
        |processed| {
            Ok(match processed {
                Processed::Event { id, .. } => resent.events.contains(id),
                Processed::Refused { id, .. } => resent.refused.contains(id),
            })
        },
        &tombstones,
    )?;
    let inserted = insert_events(tx, &rows.events).await?;
    let Written {
        mut outcome,
        counters,
        records,
    } = rows.written(&inserted);
    write_counters(tx, &counters).await?;
    if !records.is_empty() {
        let mut columns = ErrorColumns::default();
        for record in &records {
            columns.push(record)?;
        }
        let now = Timestamp::now().as_micros();
        let recorded = tx
            .query(
                "INSERT INTO errors (event_id, app_id, reason, message, field, raw, session_id,
                                     category, name, received_at, recorded_at, violations, status)
                 SELECT event_id, app_id, reason, message, field, raw, session_id, category, name,
                        received_at, $11::int8, violations, status
                 FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[],
                             $12::text[], $13::text[])
                      AS u(event_id, app_id, reason, message, field, raw, session_id, category,
                           name, received_at, violations, status)
                 ON CONFLICT (event_id) DO NOTHING
                 RETURNING status",
                &[
                    &columns.event_id,
                    &columns.app_id,
                    &columns.reason,
                    &columns.message,
                    &columns.field,
                    &columns.raw,
                    &columns.session_id,
                    &columns.category,
                    &columns.name,
                    &columns.received_at,
                    &now,
                    &columns.violations,
                    &columns.status,
                ],
            )
            .await
            .map_err(database)?;
        for row in recorded {
            match row.get::<_, &str>(0) {
                "warning" => outcome.warnings += 1,
                _ => outcome.refused += 1,
            }
        }
    }
    Ok(outcome)
}

/// Inserts `events` in one statement; whether each was inserted, in order (an id the
/// batch holds twice is inserted once, for its first occurrence).
async fn insert_events(tx: &Transaction<'_>, events: &[NewEvent<'_>]) -> Result<Vec<bool>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = EventColumns::default();
    for new in events {
        let event = new.event;
        columns.id.push(new.id);
        columns.app_id.push(new.app_id);
        columns.client_id.push(event.client_id.clone());
        columns
            .session_id
            .push(event.session_id.as_str().to_owned());
        columns.category.push(event.event_type.category.clone());
        columns.name.push(event.event_type.name.clone());
        columns.data.push(event.data.get().to_owned());
        columns.ts.push(event.timestamp);
        columns.seq.push(event.seq.unwrap_or(0));
        columns.received_at.push(new.received_at);
        columns.sent_at.push(event.sent_at);
        columns.schema_version.push(new.schema_version);
    }
    // The ids first: they are the idempotency key (a partitioned table can hold no
    // unique key without its partition key); the events whose id was new follow.
    let rows = tx
        .query(
            "WITH new_ids AS (
                 INSERT INTO event_ids (id, app_id, received_at)
                 SELECT id, app_id, received_at
                 FROM UNNEST($1::uuid[], $2::int8[], $10::int8[]) AS u(id, app_id, received_at)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id)
             INSERT INTO events (id, app_id, client_id, session_id, category, name, data, ts,
                                 seq, received_at, sent_at, schema_version)
             SELECT DISTINCT ON (u.id)
                    u.id, app_id, client_id, session_id, category, name, data::jsonb, ts, seq,
                    received_at, sent_at, schema_version
             FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[],
                         $11::int8[], $12::int8[])
                  WITH ORDINALITY
                  AS u(id, app_id, client_id, session_id, category, name, data, ts, seq,
                       received_at, sent_at, schema_version, position)
             JOIN new_ids n ON n.id = u.id
             ORDER BY u.id, u.position
             RETURNING id",
            &[
                &columns.id,
                &columns.app_id,
                &columns.client_id,
                &columns.session_id,
                &columns.category,
                &columns.name,
                &columns.data,
                &columns.ts,
                &columns.seq,
                &columns.received_at,
                &columns.sent_at,
                &columns.schema_version,
            ],
        )
        .await
        .map_err(database)?;
    let mut returned: HashSet<Uuid> = rows.iter().map(|r| r.get::<_, Uuid>(0)).collect();
    Ok(events.iter().map(|new| returned.remove(&new.id)).collect())
}

/// One statement each for the sessions, their application links, the type counts and
/// the per-minute rollup, rows in key order (so concurrent workers lock in one order).
async fn write_counters(tx: &Transaction<'_>, counters: &Counters<'_>) -> Result<()> {
    if counters.sessions.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = counters.sessions.keys().copied().collect();
    let first: Vec<i64> = counters.sessions.values().map(|d| d.first_seen).collect();
    let last: Vec<i64> = counters.sessions.values().map(|d| d.last_seen).collect();
    let count: Vec<i64> = counters.sessions.values().map(|d| d.count).collect();
    tx.execute(
        "INSERT INTO sessions (session_id, first_seen, last_seen, event_count)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[]) ORDER BY 1
         ON CONFLICT (session_id) DO UPDATE SET
             first_seen = LEAST(sessions.first_seen, EXCLUDED.first_seen),
             last_seen = GREATEST(sessions.last_seen, EXCLUDED.last_seen),
             event_count = sessions.event_count + EXCLUDED.event_count",
        &[&ids, &first, &last, &count],
    )
    .await
    .map_err(database)?;
    let (sessions, apps): (Vec<&str>, Vec<i64>) = counters.links.iter().copied().unzip();
    tx.execute(
        "INSERT INTO session_apps (session_id, app_id)
         SELECT * FROM UNNEST($1::text[], $2::int8[]) ORDER BY 1, 2
         ON CONFLICT DO NOTHING",
        &[&sessions, &apps],
    )
    .await
    .map_err(database)?;
    let categories: Vec<&str> = counters.types.keys().map(|k| k.0).collect();
    let names: Vec<&str> = counters.types.keys().map(|k| k.1).collect();
    let counts: Vec<i64> = counters.types.values().copied().collect();
    tx.execute(
        "INSERT INTO type_counts (category, name, events)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) ORDER BY 1, 2
         ON CONFLICT (category, name) DO UPDATE SET events = type_counts.events + EXCLUDED.events",
        &[&categories, &names, &counts],
    )
    .await
    .map_err(database)?;
    let minutes = &counters.minutes;
    let minute: Vec<i64> = minutes.keys().map(|k| k.0).collect();
    let categories: Vec<&str> = minutes.keys().map(|k| k.1).collect();
    let names: Vec<&str> = minutes.keys().map(|k| k.2).collect();
    let apps: Vec<i64> = minutes.keys().map(|k| k.3).collect();
    let counts: Vec<i64> = minutes.values().copied().collect();
    tx.execute(
        "INSERT INTO event_counts (minute, category, name, app_id, events)
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[])
         ORDER BY 1, 2, 3, 4
         ON CONFLICT (minute, category, name, app_id)
         DO UPDATE SET events = event_counts.events + EXCLUDED.events",
        &[&minute, &categories, &names, &apps, &counts],
    )
    .await
    .map_err(database)?;
    Ok(())
}

#[derive(Default)]
pub(super) struct EventColumns {
    id: Vec<Uuid>,
    app_id: Vec<i64>,
    client_id: Vec<Option<String>>,
    session_id: Vec<String>,
    category: Vec<String>,
    name: Vec<String>,
    data: Vec<String>,
    ts: Vec<i64>,
    seq: Vec<i64>,
    received_at: Vec<i64>,
    sent_at: Vec<Option<i64>>,
    schema_version: Vec<Option<i64>>,
}

#[derive(Default)]
pub(super) struct ErrorColumns {
    event_id: Vec<Uuid>,
    app_id: Vec<i64>,
    reason: Vec<String>,
    message: Vec<String>,
    field: Vec<Option<String>>,
    raw: Vec<String>,
    session_id: Vec<Option<String>>,
    category: Vec<Option<String>>,
    name: Vec<Option<String>>,
    received_at: Vec<i64>,
    violations: Vec<Option<String>>,
    status: Vec<String>,
}

impl ErrorColumns {
    fn push(&mut self, record: &NewRefusal<'_>) -> Result<()> {
        let refusal = record.refusal;
        self.event_id.push(record.id);
        self.app_id.push(record.app_id);
        self.reason.push(refusal.code.clone());
        self.message.push(refusal.message.clone());
        self.field.push(refusal.field.clone());
        self.raw.push(record.raw.clone().into_owned());
        self.session_id.push(record.identity.session_id.clone());
        self.category.push(record.identity.category.clone());
        self.name.push(record.identity.name.clone());
        self.received_at.push(record.received_at);
        self.violations.push(violations_text(refusal)?);
        self.status.push(record.status.as_str().to_owned());
        Ok(())
    }
}

#[async_trait::async_trait]
impl EventWrites for PgStore {
    async fn write(&self, batch: Arc<Vec<Processed>>) -> Result<WriteOutcome> {
        let received = || {
            batch.iter().filter_map(|processed| match processed {
                Processed::Event { received_at, .. } => Some(*received_at),
                Processed::Refused { .. } => None,
            })
        };
        self.ensure_partitions(received()).await?;
        match self.write_once(&batch).await {
            // "No partition of relation events found for row": another process dropped
            // one this process still knew (retention, under a late event).
            Err(StoreError::Database(message)) if message.contains("(23514)") => {
                self.partitions.forget();
                self.ensure_partitions(received()).await?;
                self.write_once(&batch).await
            }
            other => other,
        }
    }
}

impl PgStore {
    async fn write_once(&self, batch: &[Processed]) -> Result<WriteOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let items: Vec<&Processed> = batch.iter().collect();
        let outcome = write_in(&tx, &items, self.legacy_until).await?;
        tx.commit().await.map_err(database)?;
        Ok(outcome)
    }
}
