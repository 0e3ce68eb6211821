//! The analyst's reads beyond single events: sessions listed by activity, and counts
//! from the per-minute rollup.

use std::collections::{BTreeMap, HashMap};

use eye_core::Timestamp;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

use super::{MINUTE_MICROS, timestamp};
use crate::{GroupBy, Result, SessionCursor, SessionQuery, SessionSummary, StatsQuery, StatsRow};

pub(super) fn sessions(
    conn: &Connection,
    query: &SessionQuery,
) -> Result<(Vec<SessionSummary>, Option<SessionCursor>)> {
    let mut sql = String::from(
        "SELECT s.session_id, s.first_seen, s.last_seen, s.event_count,
                (SELECT group_concat(name, char(10)) FROM (
                     SELECT a.name FROM session_apps sa JOIN apps a ON a.id = sa.app_id
                     WHERE sa.session_id = s.session_id ORDER BY a.name))
         FROM sessions s WHERE 1=1",
    );
    let mut args: Vec<SqlValue> = Vec::new();
    let mut clause = |text: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(" AND ");
        sql.push_str(&text.replace('?', &format!("?{}", args.len())));
    };
    if let Some(from) = query.from {
        clause("s.last_seen >= ?", SqlValue::Integer(from.as_micros()));
    }
    if let Some(to) = query.to {
        clause("s.first_seen < ?", SqlValue::Integer(to.as_micros()));
    }
    if let Some(app) = &query.app {
        clause(
            "EXISTS (SELECT 1 FROM session_apps sa JOIN apps a ON a.id = sa.app_id
                     WHERE sa.session_id = s.session_id
                       AND (a.name = ? OR CAST(a.id AS TEXT) = ?))",
            SqlValue::Text(app.clone()),
        );
    }
    if let Some(after) = &query.after {
        args.push(SqlValue::Integer(after.last_seen));
        args.push(SqlValue::Text(after.session_id.clone()));
        sql.push_str(&format!(
            " AND (s.last_seen, s.session_id) < (?{}, ?{})",
            args.len() - 1,
            args.len()
        ));
    }
    sql.push_str(&format!(
        " ORDER BY s.last_seen DESC, s.session_id DESC LIMIT {}",
        u64::from(query.limit) + 1
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut items = stmt
        .query_map(params_from_iter(args), |row| {
            let apps: Option<String> = row.get(4)?;
            Ok(SessionSummary {
                session_id: row.get(0)?,
                first_seen: timestamp(row, 1)?,
                last_seen: timestamp(row, 2)?,
                event_count: row.get(3)?,
                apps: apps
                    .map(|a| a.split('\n').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = if items.len() > query.limit as usize {
        items.truncate(query.limit as usize);
        items.last().map(|s| SessionCursor {
            last_seen: s.last_seen.as_micros(),
            session_id: s.session_id.clone(),
        })
    } else {
        None
    };
    Ok((items, next))
}

/// One count before grouping: minute (or event time), type and application.
struct Tally<'a> {
    at: i64,
    category: &'a str,
    name: &'a str,
    app_id: i64,
    count: i64,
}

/// Counts from the per-minute rollup for the whole minutes of the range, and from the
/// events themselves for the partial minutes at its edges, so any range is exact.
pub(super) fn stats(conn: &Connection, query: &StatsQuery) -> Result<Vec<StatsRow>> {
    let from = query.from.map(Timestamp::as_micros).unwrap_or(i64::MIN);
    let to = query.to.map(Timestamp::as_micros).unwrap_or(i64::MAX);
    let first_whole = ceil_minute(from);
    let end_whole = floor_minute(to);

    let mut rows: Vec<(i64, String, String, i64, i64)> = Vec::new();
    if first_whole < end_whole {
        let mut stmt = conn.prepare_cached(
            "SELECT minute, category, name, app_id, events FROM event_counts
             WHERE minute >= ?1 AND minute < ?2",
        )?;
        let found = stmt.query_map([first_whole, end_whole], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?;
        for row in found {
            rows.push(row?);
        }
        edge_counts(conn, from, first_whole, &mut rows)?;
        edge_counts(conn, end_whole, to, &mut rows)?;
    } else {
        edge_counts(conn, from, to, &mut rows)?;
    }

    let app_names = app_names(conn, query)?;
    let bucket = query.bucket.map(|b| b.micros());
    let mut groups: BTreeMap<StatsKey, i64> = BTreeMap::new();
    for (at, category, name, app_id, count) in &rows {
        let tally = Tally {
            at: *at,
            category,
            name,
            app_id: *app_id,
            count: *count,
        };
        let key = StatsKey {
            bucket: bucket.map(|b| tally.at.div_euclid(b) * b),
            category: query
                .group_by
                .contains(&GroupBy::Category)
                .then(|| tally.category.to_owned()),
            name: query
                .group_by
                .contains(&GroupBy::Name)
                .then(|| tally.name.to_owned()),
            app: query.group_by.contains(&GroupBy::App).then(|| {
                app_names
                    .get(&tally.app_id)
                    .cloned()
                    .unwrap_or_else(|| tally.app_id.to_string())
            }),
        };
        *groups.entry(key).or_default() += tally.count;
    }
    Ok(groups
        .into_iter()
        .map(|(key, count)| StatsRow {
            bucket: key.bucket.map(Timestamp::from_micros),
            category: key.category,
            name: key.name,
            app: key.app,
            count,
        })
        .collect())
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct StatsKey {
    bucket: Option<i64>,
    category: Option<String>,
    name: Option<String>,
    app: Option<String>,
}

/// Counts the events themselves in `[from, to)` (a partial minute), by event time.
fn edge_counts(
    conn: &Connection,
    from: i64,
    to: i64,
    rows: &mut Vec<(i64, String, String, i64, i64)>,
) -> Result<()> {
    if from >= to {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT ts, category, name, app_id FROM events WHERE ts >= ?1 AND ts < ?2",
    )?;
    let found = stmt.query_map([from, to], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, 1))
    })?;
    for row in found {
        rows.push(row?);
    }
    Ok(())
}

fn app_names(conn: &Connection, query: &StatsQuery) -> Result<HashMap<i64, String>> {
    if !query.group_by.contains(&GroupBy::App) {
        return Ok(HashMap::new());
    }
    let mut stmt = conn.prepare_cached("SELECT id, name FROM apps")?;
    let names = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<HashMap<i64, String>>>()?;
    Ok(names)
}

fn floor_minute(micros: i64) -> i64 {
    if micros == i64::MAX || micros == i64::MIN {
        return micros;
    }
    micros.div_euclid(MINUTE_MICROS) * MINUTE_MICROS
}

fn ceil_minute(micros: i64) -> i64 {
    let floor = floor_minute(micros);
    if floor == micros {
        micros
    } else {
        floor.saturating_add(MINUTE_MICROS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_toward_the_right_side_including_before_1970() {
        assert_eq!(floor_minute(61_000_000), 60_000_000);
        assert_eq!(ceil_minute(61_000_000), 120_000_000);
        assert_eq!(ceil_minute(60_000_000), 60_000_000);
        assert_eq!(floor_minute(-1), -60_000_000);
        assert_eq!(ceil_minute(-1), 0);
        assert_eq!(floor_minute(i64::MAX), i64::MAX);
        assert_eq!(ceil_minute(i64::MIN), i64::MIN);
    }
}
