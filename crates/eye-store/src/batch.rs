//! A worker batch as rows, the same for every back end: the events to insert, then,
//! once the back end knows which of them it inserted, what they add to the counters
//! (sessions, session-application links, per-type counts, the per-minute rollup) and
//! the refused-event records to write (refusals, and shadow-mode warnings of inserted
//! events), in batch order.
//!
//! Counters are summed over the batch and kept in key order: one upsert per session,
//! type or minute per transaction instead of one per event, and each B-tree walked in
//! order (concurrent PostgreSQL workers also take their row locks in the same order,
//! so they cannot deadlock). Only inserted events count: a redelivered message or a
//! resent client id changes nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use eye_core::{IncomingEvent, Refusal};
use uuid::Uuid;

use crate::aggregate::MINUTE_MICROS;
use crate::lifecycle::Tombstone;
use crate::{Processed, RefusedStatus, Result, WriteOutcome};

/// An accepted event to insert.
pub(crate) struct NewEvent<'a> {
    pub id: Uuid,
    pub app_id: i64,
    pub received_at: i64,
    pub event: &'a IncomingEvent,
    pub schema_version: Option<i64>,
    warning: Option<&'a Refusal>,
}

/// A record for the store of refused events.
pub(crate) struct NewRefusal<'a> {
    /// The id of the event (or refused element) it is about.
    pub id: Uuid,
    pub app_id: i64,
    pub received_at: i64,
    pub refusal: &'a Refusal,
    /// The event as the client sent it (or as the API parsed it), as JSON text.
    pub raw: Cow<'a, str>,
    /// Its session, category and name: the parsed event's, or, for an element that
    /// could not be parsed, what its raw JSON says, so that an erasure finds it too.
    pub identity: Identity,
    pub status: RefusedStatus,
}

/// What a refused-event record is filed under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    pub session_id: Option<String>,
    pub category: Option<String>,
    pub name: Option<String>,
}

impl Identity {
    fn of(event: &IncomingEvent) -> Identity {
        Identity {
            session_id: Some(event.session_id.as_str().to_owned()),
            category: Some(event.event_type.category.clone()),
            name: Some(event.event_type.name.clone()),
        }
    }

    /// The string fields `session_id`, `category` and `name` of an element that could
    /// not be parsed as an event, where it has them (at most 256 characters each, as ingest
    /// would take them).
    pub fn from_raw(raw: &str) -> Identity {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(raw) else {
            return Identity::default();
        };
        let field = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty() && v.len() <= eye_core::event::MAX_IDENTIFIER_LEN)
                .map(str::to_owned)
        };
        Identity {
            session_id: field("session_id"),
            category: field("category"),
            name: field("name"),
        }
    }
}

/// What one session gains from a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SessionDelta {
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
}

/// The counter changes of the events a batch inserted, each map in key order.
#[derive(Default)]
pub(crate) struct Counters<'a> {
    pub sessions: BTreeMap<&'a str, SessionDelta>,
    /// (session, application) pairs.
    pub links: BTreeSet<(&'a str, i64)>,
    /// (category, name) to events.
    pub types: BTreeMap<(&'a str, &'a str), i64>,
    /// (minute, category, name, application) to events.
    pub minutes: BTreeMap<(i64, &'a str, &'a str, i64), i64>,
}

impl<'a> Counters<'a> {
    fn add(&mut self, app_id: i64, event: &'a IncomingEvent) {
        let ts = event.timestamp;
        let session = event.session_id.as_str();
        let delta = self.sessions.entry(session).or_insert(SessionDelta {
            first_seen: ts,
            last_seen: ts,
            count: 0,
        });
        delta.first_seen = delta.first_seen.min(ts);
        delta.last_seen = delta.last_seen.max(ts);
        delta.count += 1;
        self.links.insert((session, app_id));
        let (category, name) = (
            event.event_type.category.as_str(),
            event.event_type.name.as_str(),
        );
        *self.types.entry((category, name)).or_default() += 1;
        let minute = ts.div_euclid(MINUTE_MICROS) * MINUTE_MICROS;
        *self
            .minutes
            .entry((minute, category, name, app_id))
            .or_default() += 1;
    }
}

/// One element of the batch, in order.
enum Item<'a> {
    /// An index into `Rows::events`.
    Event(usize),
    /// A resend, under the old id rule, of an event already stored: a duplicate.
    ResentEvent,
    /// Covered by an erasure made after it was received: dropped.
    Erased,
    Refused(NewRefusal<'a>),
}

/// A batch split into the rows to insert, keeping its order.
pub(crate) struct Rows<'a> {
    pub events: Vec<NewEvent<'a>>,
    items: Vec<Item<'a>>,
}

/// What a batch wrote once its events were inserted: the outcome so far (stored and
/// duplicates; refused and warnings are counted by the back end as it records them),
/// the counters, and the refused-event records to write.
pub(crate) struct Written<'a> {
    pub outcome: WriteOutcome,
    pub counters: Counters<'a>,
    pub records: Vec<NewRefusal<'a>>,
}

impl<'a> Rows<'a> {
    /// Splits `batch`. `resent` says whether an element is a resend, under the old id
    /// rule, of something already in the store (each back end looks that up its own
    /// way): a resent event is a duplicate, a resent refusal is recorded once already.
    /// What one of `tombstones` covers is dropped: an erasure answered after the event
    /// was received removes it even from the queue.
    pub fn of(
        batch: impl IntoIterator<Item = &'a Processed>,
        mut resent: impl FnMut(&Processed) -> Result<bool>,
        tombstones: &[Tombstone],
    ) -> Result<Rows<'a>> {
        let mut rows = Rows {
            events: Vec::new(),
            items: Vec::new(),
        };
        for processed in batch {
            if erased(processed, tombstones) {
                rows.items.push(Item::Erased);
                continue;
            }
            let was_resent = resent(processed)?;
            let item = match processed {
                Processed::Event { .. } if was_resent => Item::ResentEvent,
                Processed::Event {
                    id,
                    app_id,
                    received_at,
                    event,
                    schema_version,
                    warning,
                } => {
                    rows.events.push(NewEvent {
                        id: *id,
                        app_id: *app_id,
                        received_at: *received_at,
                        event,
                        schema_version: *schema_version,
                        warning: warning.as_ref(),
                    });
                    Item::Event(rows.events.len() - 1)
                }
                Processed::Refused { .. } if was_resent => continue,
                Processed::Refused {
                    id,
                    app_id,
                    received_at,
                    refusal,
                    raw,
                    event,
                } => Item::Refused(NewRefusal {
                    id: *id,
                    app_id: *app_id,
                    received_at: *received_at,
                    refusal,
                    raw: Cow::Borrowed(raw),
                    identity: event
                        .as_ref()
                        .map_or_else(|| Identity::from_raw(raw), Identity::of),
                    status: RefusedStatus::Open,
                }),
            };
            rows.items.push(item);
        }
        Ok(rows)
    }

    /// Given which of `events` were inserted (`inserted[i]` for `events[i]`; an id
    /// inserted twice in one batch counts once), the counters and the records to write.
    pub fn written(self, inserted: &[bool]) -> Written<'a> {
        assert_eq!(inserted.len(), self.events.len(), "one flag per event");
        let mut written = Written {
            outcome: WriteOutcome::default(),
            counters: Counters::default(),
            records: Vec::new(),
        };
        for item in self.items {
            match item {
                Item::Erased => written.outcome.erased += 1,
                Item::ResentEvent => written.outcome.duplicates += 1,
                Item::Event(index) if !inserted[index] => written.outcome.duplicates += 1,
                Item::Event(index) => {
                    let new = &self.events[index];
                    written.outcome.stored += 1;
                    written.counters.add(new.app_id, new.event);
                    if let Some(warning) = new.warning {
                        written.records.push(NewRefusal {
                            id: new.id,
                            app_id: new.app_id,
                            received_at: new.received_at,
                            refusal: warning,
                            raw: Cow::Owned(new.event.to_wire().to_string()),
                            identity: Identity::of(new.event),
                            status: RefusedStatus::Warning,
                        });
                    }
                }
                Item::Refused(record) => written.records.push(record),
            }
        }
        written
    }
}

/// Whether an erasure covers `processed`. A refused element that could not be parsed
/// is matched on what its raw JSON says of its session, category and name.
fn erased(processed: &Processed, tombstones: &[Tombstone]) -> bool {
    if tombstones.is_empty() {
        return false;
    }
    match processed {
        Processed::Event {
            app_id,
            received_at,
            event,
            ..
        }
        | Processed::Refused {
            app_id,
            received_at,
            event: Some(event),
            ..
        } => tombstones
            .iter()
            .any(|tombstone| tombstone.covers(*app_id, *received_at, event)),
        Processed::Refused {
            app_id,
            received_at,
            raw,
            event: None,
            ..
        } => {
            let identity = Identity::from_raw(raw);
            tombstones.iter().any(|tombstone| {
                *received_at <= tombstone.until
                    && tombstone.filter.matches_identity(
                        *app_id,
                        identity.session_id.as_deref(),
                        identity.category.as_deref(),
                        identity.name.as_deref(),
                    )
            })
        }
    }
}

/// The earliest reception time in `batch`: erasures made before it cover nothing here.
pub(crate) fn earliest_received<'a>(batch: impl IntoIterator<Item = &'a Processed>) -> i64 {
    batch
        .into_iter()
        .map(|processed| match processed {
            Processed::Event { received_at, .. } | Processed::Refused { received_at, .. } => {
                *received_at
            }
        })
        .min()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{event, refused};

    #[test]
    fn only_inserted_events_count_and_records_keep_the_batch_order() {
        let mut warned = event(1, "s1", "view", 10);
        if let Processed::Event { warning, .. } = &mut warned {
            *warning = Some(Refusal::new("schema_violation", "shadow", None));
        }
        let batch = vec![
            event(1, "s2", "view", 30),
            refused(event(1, "s3", "submit", 20)),
            warned,
            event(2, "s1", "click", 5),
            event(1, "s1", "view", 50),
        ];
        let rows = Rows::of(&batch, |_| Ok(false), &[]).unwrap();
        assert_eq!(rows.events.len(), 4);
        // The last event was a duplicate (already stored).
        let written = rows.written(&[true, true, true, false]);
        assert_eq!((written.outcome.stored, written.outcome.duplicates), (3, 1));
        let counters = &written.counters;
        let second = |s: i64| 1_767_225_600_000_000 + s * 1_000_000; // 2026-01-01 + s
        assert_eq!(
            counters.sessions["s1"],
            SessionDelta {
                first_seen: second(5),
                last_seen: second(10),
                count: 2
            }
        );
        assert_eq!(counters.sessions["s2"].count, 1);
        let links: Vec<_> = counters.links.iter().copied().collect();
        assert_eq!(links, vec![("s1", 1), ("s1", 2), ("s2", 1)]);
        assert_eq!(counters.types[&("page interaction", "view")], 2);
        assert_eq!(counters.types[&("page interaction", "click")], 1);
        assert_eq!(counters.minutes.values().sum::<i64>(), 3);
        let statuses: Vec<_> = written.records.iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![RefusedStatus::Open, RefusedStatus::Warning]);
    }

    #[test]
    fn resent_elements_are_duplicates_or_skipped() {
        let batch = vec![event(1, "s", "view", 1), refused(event(1, "s", "view", 2))];
        let rows = Rows::of(&batch, |_| Ok(true), &[]).unwrap();
        assert!(rows.events.is_empty());
        let written = rows.written(&[]);
        assert_eq!(written.outcome.duplicates, 1);
        assert!(written.records.is_empty());
        assert!(written.counters.sessions.is_empty());
    }

    #[test]
    fn what_an_erasure_covers_is_dropped_and_counted() {
        let batch = vec![event(1, "gone", "view", 1), event(1, "kept", "view", 2)];
        let tombstone = Tombstone {
            filter: crate::ErasureFilter {
                session_id: Some("gone".into()),
                ..Default::default()
            },
            until: 0,
        };
        let rows = Rows::of(&batch, |_| Ok(false), &[tombstone]).unwrap();
        assert_eq!(rows.events.len(), 1);
        let written = rows.written(&[true]);
        assert_eq!((written.outcome.stored, written.outcome.erased), (1, 1));
        assert!(written.counters.sessions.contains_key("kept"));
        assert!(!written.counters.sessions.contains_key("gone"));
    }
}
