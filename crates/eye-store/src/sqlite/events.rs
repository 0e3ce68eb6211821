//! Events: the analyst's reads (a page of events, an export, one event, a session,
//! sessions by activity, counts), as `EventReads`.

use super::*;

pub(super) const EVENT_COLUMNS: &str =
    "e.pk, e.id, e.session_id, e.category, e.name, e.data, e.ts, e.seq, a.name,
     e.client_id, e.received_at, e.sent_at, e.schema_version";

pub(super) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(stored_event(&event_row(row)?, raw_json(row, 5)?))
}

pub(super) fn query_events(conn: &Connection, query: &EventQuery) -> Result<Page<StoredEvent>> {
    let indexed = has_indexed_field(conn, query)?;
    let (sql, args) = events_sql(query, u64::from(query.limit) + 1, indexed);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut items = stmt
        .query_map(rusqlite::params_from_iter(args), event_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = cut_to_limit(&mut items, query.limit, |e| e.cursor);
    Ok(Page { items, next })
}

/// The SQL and arguments selecting `query`'s events (`EVENT_COLUMNS`), at most `limit`;
/// `indexed_field` when one of its `data.` filters has a ready index
/// ([`has_indexed_field`]).
///
/// A query for one session walks the two session trees (`session_index` and its fresh
/// part, see migration 0008) in order, each branch stopping after `limit` matches, and
/// merges the two; any other query is one statement over `events`.
pub(super) fn events_sql(
    query: &EventQuery,
    limit: u64,
    indexed_field: bool,
) -> (String, Vec<SqlValue>) {
    // The table whose (ts, seq, pk) the query walks: the session tree when there is one,
    // so that its primary key bounds the walk (`e.pk = s.pk` makes them the event's own).
    let walked = if query.session_id.is_some() { "s" } else { "e" };
    let mut conditions = String::new();
    let mut args: Vec<SqlValue> = Vec::new();
    let mut filter = |clause: &str, value: SqlValue| {
        conditions.push_str(" AND ");
        conditions.push_str(&clause.replace('?', &format!("?{}", args.len() + 1)));
        args.push(value);
    };
    if let Some(session_id) = &query.session_id {
        filter("s.session_id = ?", SqlValue::Text(session_id.clone()));
    }
    // With an indexed payload field, `+` keeps SQLite (which has no statistics) from
    // walking the type's or the name's index instead of the field's: a value's events
    // in time order, filtered by type, beat a type's events filtered by value.
    let unary = if indexed_field { "+" } else { "" };
    if let Some(category) = &query.category {
        filter(
            &format!("{unary}e.category = ?"),
            SqlValue::Text(category.clone()),
        );
    }
    if let Some(name) = &query.name {
        filter(&format!("{unary}e.name = ?"), SqlValue::Text(name.clone()));
    }
    if let Some(app) = &query.app {
        filter(
            "(a.name = ? OR CAST(a.id AS TEXT) = ?)",
            SqlValue::Text(app.clone()),
        );
    }
    for data in &query.data {
        // The path and the typed value are literals built here (keys are quoted and
        // escaped); only the client's text value is a parameter.
        let path = json_path(&data.path).replace('\'', "''");
        let clause = match typed_literal(&data.value) {
            Some(typed) => format!("json_extract(e.data, '{path}') IN (?, {typed})"),
            None => format!("json_extract(e.data, '{path}') = ?"),
        };
        filter(&clause, SqlValue::Text(data.value.clone()));
    }
    if let Some(from) = query.from {
        filter(
            &format!("{walked}.ts >= ?"),
            SqlValue::Integer(from.as_micros()),
        );
    }
    if let Some(to) = query.to {
        filter(
            &format!("{walked}.ts < ?"),
            SqlValue::Integer(to.as_micros()),
        );
    }
    if let Some(until) = query.received_until {
        filter("e.received_at <= ?", SqlValue::Integer(until));
    }
    let (compare, direction) = match query.order {
        Order::Asc => (">", "ASC"),
        Order::Desc => ("<", "DESC"),
    };
    if let Some(after) = query.after {
        let n = args.len();
        conditions.push_str(&format!(
            " AND ({walked}.ts, {walked}.seq, {walked}.pk) {compare} (?{}, ?{}, ?{})",
            n + 1,
            n + 2,
            n + 3
        ));
        args.extend([after.ts, after.seq, after.pk].map(SqlValue::Integer));
    }
    let order_by = format!(
        "ORDER BY {walked}.ts {direction}, {walked}.seq {direction}, {walked}.pk {direction} LIMIT {limit}"
    );
    if query.session_id.is_none() {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN apps a ON a.id = e.app_id WHERE 1=1{conditions} {order_by}"
        );
        return (sql, args);
    }
    // CROSS JOIN keeps the session tree as the outer loop, so each branch walks it in
    // order and stops at `limit`, whatever other filters there are. The same numbered
    // parameters serve both branches. Columns 7, 8 and 1 are ts, seq and pk.
    let branch = |tree: &str| {
        format!(
            "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM {tree} s CROSS JOIN events e CROSS JOIN apps a \
             WHERE e.pk = s.pk AND a.id = e.app_id{conditions} {order_by})"
        )
    };
    let sql = format!(
        "{} UNION ALL {} ORDER BY 7 {direction}, 8 {direction}, 1 {direction} LIMIT {limit}",
        branch("session_index"),
        branch("session_index_fresh"),
    );
    (sql, args)
}

/// Whether one of `query`'s `data.` filters is on a field whose index is ready (a
/// lookup in a table of at most a few dozen rows; a session's query never needs it).
pub(super) fn has_indexed_field(conn: &Connection, query: &EventQuery) -> Result<bool> {
    if query.session_id.is_some() {
        return Ok(false);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM field_indexes WHERE path = ?1 AND state = 'ready')",
    )?;
    for data in &query.data {
        if let Some(path) = eye_core::FieldPath::from_keys(&data.path)
            && stmt.query_row([path.to_string()], |row| row.get::<_, bool>(0))?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A JSON path for SQLite's `json_extract`, every key quoted: `$."form"."first_name"`.
pub(super) fn json_path(keys: &[String]) -> String {
    let mut path = String::from("$");
    for key in keys {
        path.push_str(".\"");
        path.push_str(key);
        path.push('"');
    }
    path
}

/// The number or boolean a filter value spells, as an SQL literal equal to what
/// `json_extract` returns for it (booleans are 1 and 0).
pub(super) fn typed_literal(value: &str) -> Option<String> {
    match value {
        "true" => Some("1".into()),
        "false" => Some("0".into()),
        _ => value
            .parse::<i64>()
            .map(|n| n.to_string())
            .ok()
            .or_else(|| {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| format!("{f:?}"))
            }),
    }
}

/// Bytes an export hands to its sink at a time.
pub(super) const EXPORT_BUFFER: usize = 256 * 1024;

/// Rows read per statement: each chunk is a fresh keyset query, so an export never
/// holds one read snapshot (and the WAL it pins) for its whole duration.
pub(super) const EXPORT_CHUNK: u64 = 10_000;

pub(super) fn export_events(
    conn: &Connection,
    mut query: EventQuery,
    mut max_events: u64,
    encode: &mut RowEncoder,
    sink: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<()> {
    let mut buffer = Vec::with_capacity(EXPORT_BUFFER + 4096);
    let indexed = has_indexed_field(conn, &query)?;
    while max_events > 0 {
        let chunk = EXPORT_CHUNK.min(max_events);
        let (sql, args) = events_sql(&query, chunk, indexed);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut read = 0u64;
        let mut last = None;
        while let Some(row) = rows.next()? {
            let event = event_row(row)?;
            last = Some(event.cursor);
            encode(&event, &mut buffer);
            read += 1;
            if buffer.len() >= EXPORT_BUFFER {
                let full = std::mem::replace(&mut buffer, Vec::with_capacity(EXPORT_BUFFER + 4096));
                if sink.blocking_send(full).is_err() {
                    return Ok(()); // the client went away
                }
            }
        }
        max_events -= read;
        match last {
            Some(cursor) if read == chunk => query.after = Some(cursor),
            _ => break,
        }
    }
    if !buffer.is_empty() {
        let _ = sink.blocking_send(buffer);
    }
    Ok(())
}

/// A row of `EVENT_COLUMNS`, borrowed: nothing is copied or re-validated.
pub(super) fn event_row<'r>(row: &'r Row<'_>) -> rusqlite::Result<EventRow<'r>> {
    let text = |index: usize| -> rusqlite::Result<&'r str> { Ok(row.get_ref(index)?.as_str()?) };
    let optional_text = |index: usize| -> rusqlite::Result<Option<&'r str>> {
        Ok(row.get_ref(index)?.as_str_or_null()?)
    };
    let ts: i64 = row.get(6)?;
    let seq: i64 = row.get(7)?;
    Ok(EventRow {
        id: uuid_from(row, 1)?,
        session_id: text(2)?,
        category: text(3)?,
        name: text(4)?,
        data: text(5)?,
        timestamp: Timestamp::from_micros(ts),
        seq,
        app: text(8)?,
        client_id: optional_text(9)?,
        received_at: Timestamp::from_micros(row.get(10)?),
        sent_at: row.get::<_, Option<i64>>(11)?.map(Timestamp::from_micros),
        schema_version: row.get(12)?,
        cursor: Cursor {
            ts,
            seq,
            pk: row.get(0)?,
        },
    })
}

pub(super) fn query_session(conn: &Connection, session_id: &str) -> Result<Option<SessionSummary>> {
    let summary = conn
        .query_row(
            "SELECT session_id, first_seen, last_seen, event_count FROM sessions WHERE session_id = ?1",
            [session_id],
            |row| {
                Ok(SessionSummary {
                    session_id: row.get(0)?,
                    first_seen: timestamp(row, 1)?,
                    last_seen: timestamp(row, 2)?,
                    event_count: row.get(3)?,
                    apps: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut summary) = summary else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT a.name FROM session_apps s JOIN apps a ON a.id = s.app_id
         WHERE s.session_id = ?1 ORDER BY a.name",
    )?;
    summary.apps = stmt
        .query_map([session_id], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Some(summary))
}

#[async_trait::async_trait]
impl EventReads for SqliteStore {
    async fn events(&self, query: EventQuery) -> Result<Page<StoredEvent>> {
        self.query_with(move |conn| query_events(conn, &query))
            .await
    }

    async fn export_events(
        &self,
        query: EventQuery,
        max_events: Option<u64>,
        mut encode: RowEncoder,
        sink: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> Result<()> {
        let max_events = max_events.unwrap_or(u64::MAX);
        // An export streams for as long as it has events to send: not bounded by the
        // query budget, which is for answers that come whole.
        self.read_with(move |conn| export_events(conn, query, max_events, &mut encode, &sink))
            .await
    }

    async fn sessions(
        &self,
        query: SessionQuery,
    ) -> Result<(Vec<SessionSummary>, Option<SessionCursor>)> {
        self.query_with(move |conn| analytics::sessions(conn, &query))
            .await
    }

    async fn stats(&self, query: StatsQuery) -> Result<Vec<StatsRow>> {
        self.query_with(move |conn| analytics::stats(conn, &query))
            .await
    }

    async fn session(&self, session_id: &str) -> Result<Option<SessionSummary>> {
        let session_id = session_id.to_owned();
        self.query_with(move |conn| query_session(conn, &session_id))
            .await
    }

    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>> {
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN apps a ON a.id = e.app_id WHERE e.id = ?1"
            ))?;
            Ok(stmt.query_row([&id.as_bytes()[..]], event_from_row).optional()?)
        })
        .await
    }
}
