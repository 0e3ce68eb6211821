//! Deleting events, the same for every back end: given the rows a `DELETE ...
//! RETURNING` removed, what the counters lose. Only rows actually deleted count, so two
//! processes expiring the same rows at once cannot subtract twice.
//!
//! Per session the count drops by what was removed; a session left empty goes, with
//! its links; a surviving one has its first and last seen recomputed from its
//! remaining events, and a link to an application is re-checked only when one of that
//! application's events went.

use std::collections::{BTreeMap, BTreeSet};

use crate::aggregate::MINUTE_MICROS;

/// One deleted event, as the deletion returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemovedRow {
    pub pk: i64,
    pub session_id: String,
    pub app_id: i64,
    pub category: String,
    pub name: String,
    pub ts: i64,
    pub seq: i64,
}

/// What the deleted rows take from the counters, each map in key order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decrements {
    /// Events removed per session.
    pub sessions: BTreeMap<String, i64>,
    /// (session, application) pairs that lost an event: their link is kept only if
    /// the session still has an event of that application.
    pub links: BTreeSet<(String, i64)>,
    pub types: BTreeMap<(String, String), i64>,
    /// (minute of the event's time, category, name, application).
    pub minutes: BTreeMap<(i64, String, String, i64), i64>,
}

impl Decrements {
    pub fn of(rows: &[RemovedRow]) -> Decrements {
        let mut decrements = Decrements::default();
        for row in rows {
            *decrements
                .sessions
                .entry(row.session_id.clone())
                .or_default() += 1;
            decrements
                .links
                .insert((row.session_id.clone(), row.app_id));
            *decrements
                .types
                .entry((row.category.clone(), row.name.clone()))
                .or_default() += 1;
            let minute = row.ts.div_euclid(MINUTE_MICROS) * MINUTE_MICROS;
            *decrements
                .minutes
                .entry((minute, row.category.clone(), row.name.clone(), row.app_id))
                .or_default() += 1;
        }
        decrements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pk: i64, session: &str, app_id: i64, name: &str, ts: i64) -> RemovedRow {
        RemovedRow {
            pk,
            session_id: session.into(),
            app_id,
            category: "page".into(),
            name: name.into(),
            ts,
            seq: 0,
        }
    }

    #[test]
    fn each_deleted_row_is_taken_from_its_session_link_type_and_minute() {
        let minute = MINUTE_MICROS;
        let rows = [
            row(1, "s", 1, "view", 0),
            row(2, "s", 1, "view", 10),
            row(3, "s", 2, "click", minute + 5),
            row(4, "t", 1, "view", -1),
        ];
        let d = Decrements::of(&rows);
        assert_eq!(d.sessions["s"], 3);
        assert_eq!(d.sessions["t"], 1);
        let links: Vec<_> = d.links.iter().cloned().collect();
        assert_eq!(
            links,
            vec![
                ("s".to_owned(), 1),
                ("s".to_owned(), 2),
                ("t".to_owned(), 1)
            ]
        );
        assert_eq!(d.types[&("page".into(), "view".into())], 3);
        assert_eq!(d.minutes[&(0, "page".into(), "view".into(), 1)], 2);
        assert_eq!(d.minutes[&(minute, "page".into(), "click".into(), 2)], 1);
        assert_eq!(
            d.minutes[&(-minute, "page".into(), "view".into(), 1)],
            1,
            "an event before 1970 belongs to the minute that holds it"
        );
    }
}
