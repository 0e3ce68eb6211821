//! The analyst's reads beyond single events: sessions listed by activity, and counts
//! from the per-minute rollup.

use super::events::MAX_SKEW_MICROS;
use super::*;

pub(super) async fn sessions(
    store: &PgStore,
    query: SessionQuery,
) -> Result<(Vec<SessionSummary>, Option<SessionCursor>)> {
    let client = store.reader().await?;
    let mut sql = Sql::new(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions s WHERE TRUE"
    ));
    if let Some(from) = query.from {
        sql.and("s.last_seen >= ?", from.as_micros());
    }
    if let Some(to) = query.to {
        sql.and("s.first_seen < ?", to.as_micros());
    }
    if let Some(app) = &query.app {
        sql.and(
            "EXISTS (SELECT 1 FROM session_apps sa JOIN apps a ON a.id = sa.app_id
                     WHERE sa.session_id = s.session_id AND (a.name = ? OR a.id::text = ?))",
            app.clone(),
        );
    }
    if let Some(after) = &query.after {
        let (seen, id) = (
            sql.bind(after.last_seen),
            sql.bind(after.session_id.clone()),
        );
        sql.text.push_str(&format!(
            " AND (s.last_seen, s.session_id) < ({seen}, {id})"
        ));
    }
    sql.text.push_str(&format!(
        " ORDER BY s.last_seen DESC, s.session_id DESC LIMIT {}",
        i64::from(query.limit) + 1
    ));
    let rows = sql.query(&client).await?;
    let mut items: Vec<SessionSummary> = rows.iter().map(session_from_row).collect();
    let next = cut_to_limit(&mut items, query.limit, session_cursor);
    Ok((items, next))
}

pub(super) async fn stats(store: &PgStore, query: StatsQuery) -> Result<Vec<StatsRow>> {
    let client = store.reader().await?;
    let (from, first_whole, end_whole, to) = split_range(&query);
    let mut tallies: Vec<Tally> = Vec::new();
    let edges = if first_whole < end_whole {
        let rows = client
            .query(
                "SELECT minute, category, name, app_id, events FROM event_counts
                 WHERE minute >= $1 AND minute < $2",
                &[&first_whole, &end_whole],
            )
            .await
            .map_err(database)?;
        tallies.extend(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))),
        );
        vec![(from, first_whole), (end_whole, to)]
    } else {
        vec![(from, to)]
    };
    for (from, to) in edges {
        if from >= to {
            continue;
        }
        let rows = client
            .query(
                // The received_at bound skips older partitions (see `events_sql`).
                "SELECT ts, category, name, app_id FROM events
                 WHERE ts >= $1 AND ts < $2 AND received_at >= $3",
                &[&from, &to, &from.saturating_sub(MAX_SKEW_MICROS)],
            )
            .await
            .map_err(database)?;
        tallies.extend(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), 1)),
        );
    }
    let app_names: HashMap<i64, String> = if query.group_by.contains(&GroupBy::App) {
        client
            .query("SELECT id, name FROM apps", &[])
            .await
            .map_err(database)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(group(&query, &tallies, &app_names))
}
