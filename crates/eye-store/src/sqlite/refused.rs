//! Refused events: listing, counting, dismissing and reprocessing their records, as
//! `RefusedEvents`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{raw_json, timestamp, uuid_from, write_in};
use crate::rows::{cut_to_limit, error_cursor, needs_dismissing, violations_text};
use crate::{
    HourlyRefusedCount, OpenRefusal, Page, Processed, RefusedCount, RefusedEvent, RefusedFilter,
    RefusedKey, RefusedQuery, RefusedStatus, RefusedSummary, ReprocessOutcome, Resolution, Result,
    StoreError,
};

const ERROR_COLUMNS: &str = "r.id, r.event_id, a.name, r.reason, r.message, r.field, r.violations,
     r.raw, r.session_id, r.category, r.name, r.received_at, r.recorded_at, r.updated_at, r.status";

const HOUR_MICROS: i64 = 3_600_000_000;

fn error_from_row(row: &Row<'_>) -> rusqlite::Result<RefusedEvent> {
    let violations: Option<String> = row.get(6)?;
    let violations = match violations {
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e))
        })?,
        None => Vec::new(),
    };
    let status: String = row.get(14)?;
    Ok(RefusedEvent {
        id: row.get(0)?,
        event_id: uuid_from(row, 1)?,
        app: row.get(2)?,
        reason: row.get(3)?,
        message: row.get(4)?,
        field: row.get(5)?,
        violations,
        raw: raw_json(row, 7)?,
        session_id: row.get(8)?,
        category: row.get(9)?,
        name: row.get(10)?,
        received_at: timestamp(row, 11)?,
        recorded_at: timestamp(row, 12)?,
        updated_at: row
            .get::<_, Option<i64>>(13)?
            .map(eye_core::Timestamp::from_micros),
        status: RefusedStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                14,
                rusqlite::types::Type::Text,
                format!("unknown error status {status:?}").into(),
            )
        })?,
    })
}

/// Appends `AND ...` for every field of `filter` to `sql` (over `errors r JOIN apps a`).
fn push_filter(sql: &mut String, args: &mut Vec<SqlValue>, filter: &RefusedFilter) {
    let mut clause = |text: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(" AND ");
        sql.push_str(&text.replace('?', &format!("?{}", args.len())));
    };
    if let Some(reason) = &filter.reason {
        clause("r.reason = ?", SqlValue::Text(reason.clone()));
    }
    if let Some(category) = &filter.category {
        clause("r.category = ?", SqlValue::Text(category.clone()));
    }
    if let Some(name) = &filter.name {
        clause("r.name = ?", SqlValue::Text(name.clone()));
    }
    if let Some(app) = &filter.app {
        clause(
            "(a.name = ? OR CAST(a.id AS TEXT) = ?)",
            SqlValue::Text(app.clone()),
        );
    }
    if let Some(status) = filter.status {
        clause("r.status = ?", SqlValue::Text(status.as_str().into()));
    }
    if let Some(from) = filter.from {
        clause("r.received_at >= ?", SqlValue::Integer(from.as_micros()));
    }
    if let Some(to) = filter.to {
        clause("r.received_at < ?", SqlValue::Integer(to.as_micros()));
    }
}

pub(super) fn list(conn: &Connection, query: &RefusedQuery) -> Result<Page<RefusedEvent>> {
    let mut sql =
        format!("SELECT {ERROR_COLUMNS} FROM errors r JOIN apps a ON a.id = r.app_id WHERE 1=1");
    let mut args = Vec::new();
    push_filter(&mut sql, &mut args, &query.filter);
    if let Some(before) = query.before_id {
        args.push(SqlValue::Integer(before));
        sql.push_str(&format!(" AND r.id < ?{}", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY r.id DESC LIMIT {}",
        u64::from(query.limit) + 1
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut items = stmt
        .query_map(rusqlite::params_from_iter(args), error_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = cut_to_limit(&mut items, query.limit, error_cursor);
    Ok(Page { items, next })
}

fn key_clause(key: RefusedKey) -> (&'static str, SqlValue) {
    match key {
        RefusedKey::EventId(id) => ("r.event_id = ?1", SqlValue::Blob(id.as_bytes().to_vec())),
        RefusedKey::Number(n) => ("r.id = ?1", SqlValue::Integer(n)),
    }
}

pub(super) fn get(conn: &Connection, key: RefusedKey) -> Result<Option<RefusedEvent>> {
    let (clause, value) = key_clause(key);
    let sql = format!(
        "SELECT {ERROR_COLUMNS} FROM errors r JOIN apps a ON a.id = r.app_id WHERE {clause}"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([value], error_from_row)
        .optional()?)
}

pub(super) fn summary(conn: &Connection, filter: &RefusedFilter) -> Result<RefusedSummary> {
    let mut args = Vec::new();
    let mut conditions = String::new();
    push_filter(&mut conditions, &mut args, filter);
    let from = format!("FROM errors r JOIN apps a ON a.id = r.app_id WHERE 1=1{conditions}");

    let sql = format!(
        "SELECT r.reason, r.category, r.name, count(*) {from}
         GROUP BY r.reason, r.category, r.name ORDER BY count(*) DESC, r.reason, r.category, r.name"
    );
    let by_reason_and_type = conn
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(args.iter()), |row| {
            Ok(RefusedCount {
                reason: row.get(0)?,
                category: row.get(1)?,
                name: row.get(2)?,
                count: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let sql = format!(
        "SELECT (r.received_at / {HOUR_MICROS}) * {HOUR_MICROS} AS hour, r.reason, r.category,
                r.name, count(*) {from}
         GROUP BY hour, r.reason, r.category, r.name
         ORDER BY hour, count(*) DESC, r.reason, r.category, r.name"
    );
    let hourly = conn
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(args.iter()), |row| {
            Ok(HourlyRefusedCount {
                hour: timestamp(row, 0)?,
                reason: row.get(1)?,
                category: row.get(2)?,
                name: row.get(3)?,
                count: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(RefusedSummary {
        total: by_reason_and_type.iter().map(|c| c.count).sum(),
        by_reason_and_type,
        hourly,
    })
}

/// Dismisses an open error or a warning; dismissing twice is harmless, and a
/// reprocessed error (already an event) cannot be dismissed.
pub(super) fn dismiss(conn: &mut Connection, key: RefusedKey) -> Result<RefusedEvent> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let record = get(&tx, key)?.ok_or_else(|| StoreError::NotFound("error".into()))?;
    if !needs_dismissing(&record)? {
        return Ok(record);
    }
    tx.execute(
        "UPDATE errors SET status = 'dismissed', updated_at = ?2 WHERE id = ?1",
        params![record.id, eye_core::Timestamp::now().as_micros()],
    )?;
    let record = get(&tx, RefusedKey::Number(record.id))?
        .ok_or_else(|| StoreError::NotFound("error".into()))?;
    tx.commit()?;
    Ok(record)
}

pub(super) fn open(
    conn: &Connection,
    filter: &RefusedFilter,
    after_id: i64,
    limit: u32,
) -> Result<Vec<OpenRefusal>> {
    let mut filter = filter.clone();
    filter.status = Some(RefusedStatus::Open);
    let mut sql = String::from(
        "SELECT r.id, r.event_id, r.app_id, r.received_at, r.raw
         FROM errors r JOIN apps a ON a.id = r.app_id WHERE 1=1",
    );
    let mut args = Vec::new();
    push_filter(&mut sql, &mut args, &filter);
    args.push(SqlValue::Integer(after_id));
    sql.push_str(&format!(
        " AND r.id > ?{} ORDER BY r.id LIMIT {limit}",
        args.len()
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |row| {
            Ok(OpenRefusal {
                id: row.get(0)?,
                event_id: uuid_from(row, 1)?,
                app_id: row.get(2)?,
                received_at: row.get(3)?,
                raw: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn resolve(
    conn: &mut Connection,
    resolutions: Vec<Resolution>,
) -> Result<ReprocessOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = eye_core::Timestamp::now().as_micros();
    let mut outcome = ReprocessOutcome::default();
    let mut fixed: Vec<&Processed> = Vec::new();
    {
        let mut mark_fixed = tx.prepare_cached(
            "UPDATE errors SET status = 'reprocessed', updated_at = ?2
             WHERE id = ?1 AND status = 'open'",
        )?;
        let mut still_invalid = tx.prepare_cached(
            "UPDATE errors SET reason = ?2, message = ?3, field = ?4, violations = ?5, updated_at = ?6
             WHERE id = ?1 AND status = 'open'",
        )?;
        for resolution in &resolutions {
            match resolution {
                Resolution::Fixed { error_id, event } => {
                    // Only an error this transaction moves out of `open` becomes an
                    // event: a concurrent reprocess or dismissal wins otherwise.
                    if mark_fixed.execute(params![error_id, now])? == 1 {
                        fixed.push(&**event);
                        outcome.reprocessed += 1;
                    }
                }
                Resolution::StillInvalid { error_id, refusal } => {
                    outcome.still_invalid += still_invalid.execute(params![
                        error_id,
                        refusal.code,
                        refusal.message,
                        refusal.field,
                        violations_text(refusal)?,
                        now
                    ])? as u64;
                }
            }
        }
    }
    write_in(&tx, fixed.into_iter())?;
    tx.commit()?;
    Ok(outcome)
}

use super::*;

#[async_trait::async_trait]
impl RefusedEvents for SqliteStore {
    async fn refused_events(&self, query: RefusedQuery) -> Result<Page<RefusedEvent>> {
        self.query_with(move |conn| list(conn, &query)).await
    }

    async fn refused_event(&self, key: RefusedKey) -> Result<Option<RefusedEvent>> {
        self.read_with(move |conn| get(conn, key)).await
    }

    async fn refused_summary(&self, filter: RefusedFilter) -> Result<RefusedSummary> {
        self.query_with(move |conn| summary(conn, &filter)).await
    }

    async fn refused_per_bucket(
        &self,
        from: Timestamp,
        to: Timestamp,
        bucket: Bucket,
    ) -> Result<Vec<RefusedInBucket>> {
        self.query_with(move |conn| {
            let mut stmt = conn.prepare_cached(crate::refused::REFUSED_PER_BUCKET_SQL)?;
            let rows = stmt.query_map(
                params![from.as_micros(), to.as_micros(), bucket.micros()],
                |row| {
                    Ok(RefusedInBucket {
                        bucket: Timestamp::from_micros(row.get(0)?),
                        app: row.get(1)?,
                        count: row.get(2)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn dismiss_refused(&self, key: RefusedKey) -> Result<RefusedEvent> {
        self.write_with(move |conn| dismiss(conn, key)).await
    }

    async fn open_refusals(
        &self,
        filter: RefusedFilter,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OpenRefusal>> {
        self.read_with(move |conn| open(conn, &filter, after_id, limit))
            .await
    }

    async fn resolve_refusals(&self, resolutions: Vec<Resolution>) -> Result<ReprocessOutcome> {
        self.write_with(move |conn| resolve(conn, resolutions))
            .await
    }
}
