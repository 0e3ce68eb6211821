//! Events: the analyst's reads (a page of events, an export, one event, a session,
//! sessions by activity, counts), as `EventReads`.

use super::*;

pub(super) const EXPORT_BUFFER: usize = 256 * 1024;

pub(super) const EXPORT_CHUNK: i64 = 10_000;

/// No stored event is further ahead of its reception than this.
pub(super) const MAX_SKEW_MICROS: i64 = eye_core::limits::MAX_CLOCK_SKEW_MS as i64 * 1_000;

pub(super) const EVENT_COLUMNS: &str =
    "e.pk, e.id, e.session_id, e.category, e.name, e.data::text, e.ts,
     e.seq, a.name, e.client_id, e.received_at, e.sent_at, e.schema_version";

pub(super) fn event_from_row(row: &Row) -> Result<StoredEvent> {
    let event = event_row(row);
    Ok(stored_event(&event, raw_json(event.data.to_owned())?))
}

pub(super) fn event_row(row: &Row) -> EventRow<'_> {
    let (ts, seq): (i64, i64) = (row.get(6), row.get(7));
    EventRow {
        id: row.get(1),
        session_id: row.get(2),
        category: row.get(3),
        name: row.get(4),
        data: row.get(5),
        timestamp: Timestamp::from_micros(ts),
        seq,
        app: row.get(8),
        client_id: row.get(9),
        received_at: Timestamp::from_micros(row.get(10)),
        sent_at: row.get::<_, Option<i64>>(11).map(Timestamp::from_micros),
        schema_version: row.get(12),
        cursor: Cursor {
            ts,
            seq,
            pk: row.get(0),
        },
    }
}

/// A `text[]` literal of payload keys for `#>>`: `'{"form","first_name"}'`, each key
/// quoted and escaped for the array syntax and the string.
pub(super) fn path_literal(keys: &[String]) -> String {
    let elements: Vec<String> = keys
        .iter()
        .map(|key| format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("'{{{}}}'", elements.join(",").replace('\'', "''"))
}

pub(super) fn events_sql(query: &EventQuery, limit: i64) -> Sql {
    let mut sql = Sql::new(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN apps a ON a.id = e.app_id WHERE TRUE"
    ));
    if let Some(session_id) = &query.session_id {
        sql.and("e.session_id = ?", session_id.clone());
    }
    if let Some(category) = &query.category {
        sql.and("e.category = ?", category.clone());
    }
    if let Some(name) = &query.name {
        sql.and("e.name = ?", name.clone());
    }
    if let Some(app) = &query.app {
        sql.and("(a.name = ? OR a.id::text = ?)", app.clone());
    }
    for data in &query.data {
        // `#>>` gives the value as text: strings, numbers and booleans alike. The path
        // is a literal, not a parameter, so that the expression is the one an indexed
        // field's index is on (a generic plan cannot match a parameter to it).
        sql.and(
            &format!("e.data #>> {} = ?", path_literal(&data.path)),
            data.value.clone(),
        );
    }
    if let Some(from) = query.from {
        sql.and("e.ts >= ?", from.as_micros());
        // No event is stored more than the largest clock skew ahead of its reception:
        // this bound skips the partitions received before (the planner cannot derive
        // it from `ts`).
        sql.and(
            "e.received_at >= ?",
            from.as_micros().saturating_sub(MAX_SKEW_MICROS),
        );
    }
    if let Some(to) = query.to {
        sql.and("e.ts < ?", to.as_micros());
    }
    if let Some(until) = query.received_until {
        sql.and("e.received_at <= ?", until);
    }
    let (compare, direction) = match query.order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    if let Some(after) = query.after {
        let (ts, seq, pk) = (sql.bind(after.ts), sql.bind(after.seq), sql.bind(after.pk));
        sql.text.push_str(&format!(
            " AND (e.ts, e.seq, e.pk) {compare} ({ts}, {seq}, {pk})"
        ));
    }
    sql.text.push_str(&format!(
        " ORDER BY e.ts {direction}, e.seq {direction}, e.pk {direction} LIMIT {limit}"
    ));
    sql
}

pub(super) async fn query_events(
    client: &impl GenericClient,
    query: &EventQuery,
) -> Result<Page<StoredEvent>> {
    let rows = events_sql(query, i64::from(query.limit) + 1)
        .query(client)
        .await?;
    let mut items = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = cut_to_limit(&mut items, query.limit, |e| e.cursor);
    Ok(Page { items, next })
}

/// A session and its applications' names, over `sessions s`: what `session_from_row`
/// reads.
pub(super) const SESSION_COLUMNS: &str = "s.session_id, s.first_seen, s.last_seen, s.event_count,
     coalesce((SELECT array_agg(a.name ORDER BY a.name) FROM session_apps sa
               JOIN apps a ON a.id = sa.app_id
               WHERE sa.session_id = s.session_id), '{}')";

pub(super) fn session_from_row(row: &Row) -> SessionSummary {
    SessionSummary {
        session_id: row.get(0),
        first_seen: Timestamp::from_micros(row.get(1)),
        last_seen: Timestamp::from_micros(row.get(2)),
        event_count: row.get(3),
        apps: row.get(4),
    }
}

#[async_trait::async_trait]
impl EventReads for PgStore {
    async fn events(&self, query: EventQuery) -> Result<Page<StoredEvent>> {
        query_events(&self.reader().await?, &query).await
    }

    async fn export_events(
        &self,
        mut query: EventQuery,
        max_events: Option<u64>,
        mut encode: RowEncoder,
        sink: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<()> {
        let client = self.client().await?;
        let mut remaining = max_events.unwrap_or(u64::MAX);
        let mut buffer = Vec::with_capacity(EXPORT_BUFFER + 4096);
        while remaining > 0 {
            let chunk = (EXPORT_CHUNK as u64).min(remaining);
            let rows = events_sql(&query, chunk as i64).query(&client).await?;
            let mut last = None;
            for row in &rows {
                let event = event_row(row);
                last = Some(event.cursor);
                encode(&event, &mut buffer);
                if buffer.len() >= EXPORT_BUFFER {
                    let full =
                        std::mem::replace(&mut buffer, Vec::with_capacity(EXPORT_BUFFER + 4096));
                    if sink.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
            remaining -= rows.len() as u64;
            match last {
                Some(cursor) if rows.len() as u64 == chunk => query.after = Some(cursor),
                _ => break,
            }
        }
        if !buffer.is_empty() {
            let _ = sink.send(buffer).await;
        }
        Ok(())
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionSummary>> {
        let client = self.reader().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.session_id = $1"),
                &[&session_id],
            )
            .await
            .map_err(database)?;
        Ok(row.as_ref().map(session_from_row))
    }

    async fn sessions(
        &self,
        query: SessionQuery,
    ) -> Result<(Vec<SessionSummary>, Option<SessionCursor>)> {
        analytics::sessions(self, query).await
    }

    async fn stats(&self, query: StatsQuery) -> Result<Vec<StatsRow>> {
        analytics::stats(self, query).await
    }

    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    // The id's home gives the partition (and the application's
                    // index in it) to look in.
                    "SELECT {EVENT_COLUMNS} FROM event_ids i
                     JOIN events e ON e.app_id = i.app_id AND e.received_at = i.received_at
                                  AND e.id = i.id
                     JOIN apps a ON a.id = e.app_id
                     WHERE i.id = $1"
                ),
                &[&id],
            )
            .await
            .map_err(database)?;
        row.as_ref().map(event_from_row).transpose()
    }
}
