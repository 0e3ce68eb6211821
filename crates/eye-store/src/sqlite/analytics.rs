//! The analyst's reads beyond single events: sessions listed by activity, and counts
//! from the per-minute rollup.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

use super::timestamp;
use crate::aggregate::{Tally, group, split_range};
use crate::rows::{cut_to_limit, session_cursor};
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
    let next = cut_to_limit(&mut items, query.limit, session_cursor);
    Ok((items, next))
}

/// Counts from the per-minute rollup for the whole minutes of the range, and from the
/// events themselves for the partial minutes at its edges, so any range is exact.
pub(super) fn stats(conn: &Connection, query: &StatsQuery) -> Result<Vec<StatsRow>> {
    let (from, first_whole, end_whole, to) = split_range(query);
    let mut rows: Vec<Tally> = Vec::new();
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
    Ok(group(query, &rows, &app_names(conn, query)?))
}

/// Counts the events themselves in `[from, to)` (a partial minute), by event time.
fn edge_counts(conn: &Connection, from: i64, to: i64, rows: &mut Vec<Tally>) -> Result<()> {
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
