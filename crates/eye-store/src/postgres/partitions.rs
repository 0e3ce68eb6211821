//! The events table's partitions, by the time events were received (migration 0008).
//!
//! Each partition covers `[lo, hi)` microseconds; `event_partitions` lists them. New
//! ones are aligned to the interval (a day by default), clipped to their neighbours so
//! that they never overlap (the first partition ends wherever the migration ran, and the
//! interval may change between runs). A worker makes sure, before each batch, that a
//! partition holds every reception time in it and the time one interval from now: so
//! the next partition exists a whole interval before it is needed, and one that
//! retention dropped under a late event is made again. Creation is serialized between
//! processes by an advisory lock.
//!
//! Retention drops a partition whole once every event in it is expired
//! (`drop_expired`): the counters lose what it held, summed by the database, in the
//! same transaction.

use std::sync::Mutex;

use super::*;
use crate::lifecycle::{Cutoffs, Removed};
use crate::removal::Decrements;

/// Serializes partition creation between processes.
const PARTITION_LOCK: i64 = 0x0e7e_0003;

/// The shortest and the longest partition interval.
pub const MIN_INTERVAL_SECONDS: u64 = 3_600;
pub const MAX_INTERVAL_SECONDS: u64 = 366 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Partition {
    pub name: String,
    pub lo: i64,
    pub hi: i64,
}

impl Partition {
    fn holds(&self, time: i64) -> bool {
        self.lo <= time && time < self.hi
    }
}

/// What a process knows of the partitions: a cache of `event_partitions`, refreshed
/// whenever it creates one or an insert finds none.
pub(super) struct Partitions {
    /// Microseconds.
    interval: i64,
    known: Mutex<Vec<Partition>>,
}

impl Partitions {
    pub fn new(interval_seconds: u64) -> Self {
        Partitions {
            interval: interval_seconds as i64 * 1_000_000,
            known: Mutex::new(Vec::new()),
        }
    }

    /// Of `times`, one per interval that no known partition holds.
    fn missing(&self, times: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let known = self.known.lock().expect("partition cache");
        let mut missing: Vec<i64> = Vec::new();
        for time in times {
            let bucket = time.div_euclid(self.interval);
            if !known.iter().any(|p| p.holds(time))
                && !missing
                    .iter()
                    .any(|t| t.div_euclid(self.interval) == bucket)
            {
                missing.push(time);
            }
        }
        missing
    }

    pub fn forget(&self) {
        self.known.lock().expect("partition cache").clear();
    }
}

/// The partition for `time`: its interval, clipped to the partitions around it.
fn bounds(existing: &[Partition], time: i64, interval: i64) -> (i64, i64) {
    let mut lo = time.div_euclid(interval).saturating_mul(interval);
    let mut hi = lo.saturating_add(interval);
    for partition in existing {
        if partition.hi <= time {
            lo = lo.max(partition.hi);
        }
        if partition.lo > time {
            hi = hi.min(partition.lo);
        }
    }
    (lo, hi)
}

/// `events_p20261204000000` for a partition from 2026-12-04T00:00:00Z.
fn name_of(lo: i64) -> String {
    let digits: String = Timestamp::from_micros(lo)
        .to_string()
        .chars()
        .take(19)
        .filter(char::is_ascii_digit)
        .collect();
    format!("events_p{digits}")
}

pub(super) async fn load(client: &impl GenericClient) -> Result<Vec<Partition>> {
    Ok(client
        .query("SELECT name, lo, hi FROM event_partitions ORDER BY lo", &[])
        .await
        .map_err(database)?
        .iter()
        .map(|row| Partition {
            name: row.get(0),
            lo: row.get(1),
            hi: row.get(2),
        })
        .collect())
}

impl PgStore {
    /// Makes sure partitions hold every reception time in `times`, and the time one
    /// interval from now.
    pub(super) async fn ensure_partitions(
        &self,
        times: impl IntoIterator<Item = i64>,
    ) -> Result<()> {
        let ahead = Timestamp::now().as_micros() + self.partitions.interval;
        let missing = self
            .partitions
            .missing(times.into_iter().chain(std::iter::once(ahead)));
        for time in missing {
            self.create_partition(time).await?;
        }
        Ok(())
    }

    async fn create_partition(&self, time: i64) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await
            .map_err(database)?;
        let mut all = load(&tx).await?;
        if !all.iter().any(|p| p.holds(time)) {
            let (lo, hi) = bounds(&all, time, self.partitions.interval);
            let name = name_of(lo);
            tx.batch_execute(&format!(
                "CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})"
            ))
            .await
            .map_err(database)?;
            tx.execute(
                "INSERT INTO event_partitions (name, lo, hi) VALUES ($1, $2, $3)",
                &[&name, &lo, &hi],
            )
            .await
            .map_err(database)?;
            tracing::info!(partition = %name, lo, hi, "created an events partition");
            all.push(Partition { name, lo, hi });
        }
        tx.commit().await.map_err(database)?;
        *self.partitions.known.lock().expect("partition cache") = all;
        Ok(())
    }

    /// Drops the partitions whose every event is expired under `cutoffs`; what they
    /// held is taken from the counters in the same transaction.
    pub(super) async fn drop_expired(&self, cutoffs: &Cutoffs) -> Result<Removed> {
        let latest = cutoffs.0.iter().map(|&(_, cutoff)| cutoff).max();
        let Some(latest) = latest else {
            return Ok(Removed::default());
        };
        let candidates: Vec<Partition> = load(&self.client().await?)
            .await?
            .into_iter()
            .filter(|p| p.hi <= latest)
            .collect();
        let mut removed = Removed::default();
        let mut dropped = false;
        for partition in candidates {
            // Applications whose cutoff is past the partition's end: all of theirs in it
            // is expired. Any other application's event keeps the partition.
            let covered: Vec<i64> = cutoffs
                .0
                .iter()
                .filter(|&&(_, cutoff)| cutoff >= partition.hi)
                .map(|&(app, _)| app)
                .collect();
            if let Some(gone) = self.drop_partition(&partition, &covered).await? {
                removed += gone;
                dropped = true;
            }
        }
        if dropped {
            self.partitions.forget();
        }
        Ok(removed)
    }

    /// Drops `partition` unless it holds an event of an application not in `covered`
    /// (`None`: kept).
    async fn drop_partition(
        &self,
        partition: &Partition,
        covered: &[i64],
    ) -> Result<Option<Removed>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let name = &partition.name;
        // No insert reaches it from here on (one would wait, then find no partition
        // and make one again).
        tx.batch_execute(&format!("LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"))
            .await
            .map_err(database)?;
        let kept = tx
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {name} WHERE app_id <> ALL($1))"),
                &[&covered],
            )
            .await
            .map_err(database)?
            .get::<_, bool>(0);
        if kept {
            return Ok(None);
        }
        let decrements = decrements_of(&tx, name).await?;
        let events: i64 = decrements.sessions.values().sum();
        tx.execute(
            "DELETE FROM event_ids WHERE received_at >= $1 AND received_at < $2",
            &[&partition.lo, &partition.hi],
        )
        .await
        .map_err(database)?;
        tx.batch_execute(&format!("DROP TABLE {name}"))
            .await
            .map_err(database)?;
        tx.execute("DELETE FROM event_partitions WHERE name = $1", &[name])
            .await
            .map_err(database)?;
        let sessions = super::lifecycle::take_back(&tx, &decrements).await?;
        tx.commit().await.map_err(database)?;
        tracing::info!(partition = %name, events, "dropped an expired events partition");
        Ok(Some(Removed {
            events: events as u64,
            sessions,
            refused: 0,
        }))
    }
}

/// What the events of partition `name` count for, summed by the database.
async fn decrements_of(tx: &Transaction<'_>, name: &str) -> Result<Decrements> {
    let query = |sql: String| async move { tx.query(&sql, &[]).await.map_err(database) };
    let mut decrements = Decrements::default();
    for row in query(format!(
        "SELECT session_id, count(*) FROM {name} GROUP BY session_id"
    ))
    .await?
    {
        decrements.sessions.insert(row.get(0), row.get(1));
    }
    for row in query(format!("SELECT DISTINCT session_id, app_id FROM {name}")).await? {
        decrements.links.insert((row.get(0), row.get(1)));
    }
    for row in query(format!(
        "SELECT category, name, count(*) FROM {name} GROUP BY category, name"
    ))
    .await?
    {
        decrements
            .types
            .insert((row.get(0), row.get(1)), row.get(2));
    }
    let minute = crate::aggregate::MINUTE_MICROS;
    for row in query(format!(
        "SELECT ts - ((ts % {minute}) + {minute}) % {minute} AS minute, category, name,
                app_id, count(*)
         FROM {name} GROUP BY 1, category, name, app_id"
    ))
    .await?
    {
        decrements
            .minutes
            .insert((row.get(0), row.get(1), row.get(2), row.get(3)), row.get(4));
    }
    Ok(decrements)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn partition(lo: i64, hi: i64) -> Partition {
        Partition {
            name: name_of(lo),
            lo,
            hi,
        }
    }

    #[test]
    fn a_new_partition_is_its_interval_clipped_to_its_neighbours() {
        assert_eq!(bounds(&[], 5 * DAY + 7, DAY), (5 * DAY, 6 * DAY));
        let first = partition(i64::MIN, 5 * DAY + 100);
        assert_eq!(
            bounds(std::slice::from_ref(&first), 5 * DAY + 200, DAY),
            (5 * DAY + 100, 6 * DAY),
            "the first partition ends mid-interval"
        );
        let later = partition(5 * DAY + DAY / 2, 7 * DAY);
        assert_eq!(
            bounds(&[first, later], 5 * DAY + 200, DAY),
            (5 * DAY + 100, 5 * DAY + DAY / 2),
            "an interval changed since: the new one stops where the next begins"
        );
        assert_eq!(bounds(&[], -1, DAY), (-DAY, 0), "before 1970");
    }

    #[test]
    fn partitions_are_named_after_their_start() {
        let lo = Timestamp::parse("2026-12-04T00:00:00Z")
            .expect("a time")
            .as_micros();
        assert_eq!(name_of(lo), "events_p20261204000000");
    }

    #[test]
    fn one_missing_time_per_interval() {
        let partitions = Partitions::new(86_400);
        *partitions.known.lock().expect("cache") = vec![partition(0, DAY)];
        assert_eq!(
            partitions.missing([5, DAY + 1, DAY + 2, 3 * DAY]),
            vec![DAY + 1, 3 * DAY]
        );
    }
}
