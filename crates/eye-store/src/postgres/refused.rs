//! Refused events: listing, counting, dismissing and reprocessing their records, as
//! `RefusedEvents`.

use super::*;

pub(super) const HOUR_MICROS: i64 = 3_600_000_000;

pub(super) const ERROR_COLUMNS: &str =
    "r.id, r.event_id, a.name, r.reason, r.message, r.field, r.violations,
     r.raw, r.session_id, r.category, r.name, r.received_at, r.recorded_at, r.updated_at, r.status";

pub(super) fn error_from_row(row: &Row) -> Result<RefusedEvent> {
    let violations: Option<String> = row.get(6);
    let status: String = row.get(14);
    Ok(RefusedEvent {
        id: row.get(0),
        event_id: row.get(1),
        app: row.get(2),
        reason: row.get(3),
        message: row.get(4),
        field: row.get(5),
        violations: match violations {
            Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
            None => Vec::new(),
        },
        raw: raw_json(row.get(7))?,
        session_id: row.get(8),
        category: row.get(9),
        name: row.get(10),
        received_at: Timestamp::from_micros(row.get(11)),
        recorded_at: Timestamp::from_micros(row.get(12)),
        updated_at: row.get::<_, Option<i64>>(13).map(Timestamp::from_micros),
        status: RefusedStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown error status {status:?}")))?,
    })
}

pub(super) fn error_filter(sql: &mut Sql, filter: &RefusedFilter) {
    if let Some(reason) = &filter.reason {
        sql.and("r.reason = ?", reason.clone());
    }
    if let Some(category) = &filter.category {
        sql.and("r.category = ?", category.clone());
    }
    if let Some(name) = &filter.name {
        sql.and("r.name = ?", name.clone());
    }
    if let Some(app) = &filter.app {
        sql.and("(a.name = ? OR a.id::text = ?)", app.clone());
    }
    if let Some(status) = filter.status {
        sql.and("r.status = ?", status.as_str().to_owned());
    }
    if let Some(from) = filter.from {
        sql.and("r.received_at >= ?", from.as_micros());
    }
    if let Some(to) = filter.to {
        sql.and("r.received_at < ?", to.as_micros());
    }
}

pub(super) fn key_clause(sql: &mut Sql, key: RefusedKey) {
    match key {
        RefusedKey::EventId(id) => sql.and("r.event_id = ?", id),
        RefusedKey::Number(n) => sql.and("r.id = ?", n),
    }
}

pub(super) async fn get_error(
    client: &impl GenericClient,
    key: RefusedKey,
) -> Result<Option<RefusedEvent>> {
    let mut sql = Sql::new(&format!(
        "SELECT {ERROR_COLUMNS} FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE"
    ));
    key_clause(&mut sql, key);
    let row = client
        .query_opt(&sql.text, &sql.params())
        .await
        .map_err(database)?;
    row.as_ref().map(error_from_row).transpose()
}

#[async_trait::async_trait]
impl RefusedEvents for PgStore {
    async fn refused_events(&self, query: RefusedQuery) -> Result<Page<RefusedEvent>> {
        let client = self.reader().await?;
        let mut sql = Sql::new(&format!(
            "SELECT {ERROR_COLUMNS} FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE"
        ));
        error_filter(&mut sql, &query.filter);
        if let Some(before) = query.before_id {
            sql.and("r.id < ?", before);
        }
        sql.text.push_str(&format!(
            " ORDER BY r.id DESC LIMIT {}",
            i64::from(query.limit) + 1
        ));
        let rows = sql.query(&client).await?;
        let mut items = rows
            .iter()
            .map(error_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next = cut_to_limit(&mut items, query.limit, error_cursor);
        Ok(Page { items, next })
    }

    async fn refused_event(&self, key: RefusedKey) -> Result<Option<RefusedEvent>> {
        get_error(&self.client().await?, key).await
    }

    async fn refused_per_bucket(
        &self,
        from: Timestamp,
        to: Timestamp,
        bucket: Bucket,
    ) -> Result<Vec<RefusedInBucket>> {
        let client = self.reader().await?;
        let rows = client
            .query(
                crate::refused::REFUSED_PER_BUCKET_SQL,
                &[&from.as_micros(), &to.as_micros(), &bucket.micros()],
            )
            .await
            .map_err(database)?;
        Ok(rows
            .iter()
            .map(|row| RefusedInBucket {
                bucket: Timestamp::from_micros(row.get(0)),
                app: row.get(1),
                count: row.get(2),
            })
            .collect())
    }

    async fn refused_summary(&self, filter: RefusedFilter) -> Result<RefusedSummary> {
        let client = self.reader().await?;
        let mut sql = Sql::new(
            "SELECT r.reason, r.category, r.name, count(*)::int8
             FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE",
        );
        error_filter(&mut sql, &filter);
        sql.text.push_str(
            " GROUP BY r.reason, r.category, r.name
              ORDER BY count(*) DESC, r.reason, r.category, r.name",
        );
        let by_reason_and_type: Vec<RefusedCount> = sql
            .query(&client)
            .await?
            .iter()
            .map(|row| RefusedCount {
                reason: row.get(0),
                category: row.get(1),
                name: row.get(2),
                count: row.get(3),
            })
            .collect();
        let mut sql = Sql::new(&format!(
            "SELECT floor(r.received_at::numeric / {HOUR_MICROS})::int8 * {HOUR_MICROS}, r.reason,
                    r.category, r.name, count(*)::int8
             FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE"
        ));
        error_filter(&mut sql, &filter);
        sql.text.push_str(
            " GROUP BY 1, r.reason, r.category, r.name
              ORDER BY 1, count(*) DESC, r.reason, r.category, r.name",
        );
        let hourly: Vec<HourlyRefusedCount> = sql
            .query(&client)
            .await?
            .iter()
            .map(|row| HourlyRefusedCount {
                hour: Timestamp::from_micros(row.get(0)),
                reason: row.get(1),
                category: row.get(2),
                name: row.get(3),
                count: row.get(4),
            })
            .collect();
        Ok(RefusedSummary {
            total: by_reason_and_type.iter().map(|c| c.count).sum(),
            by_reason_and_type,
            hourly,
        })
    }

    async fn dismiss_refused(&self, key: RefusedKey) -> Result<RefusedEvent> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let record = get_error(&tx, key)
            .await?
            .ok_or_else(|| StoreError::NotFound("error".into()))?;
        if !needs_dismissing(&record)? {
            return Ok(record);
        }
        tx.execute(
            "UPDATE errors SET status = 'dismissed', updated_at = $2 WHERE id = $1",
            &[&record.id, &Timestamp::now().as_micros()],
        )
        .await
        .map_err(database)?;
        let record = get_error(&tx, RefusedKey::Number(record.id))
            .await?
            .ok_or_else(|| StoreError::NotFound("error".into()))?;
        tx.commit().await.map_err(database)?;
        Ok(record)
    }

    async fn open_refusals(
        &self,
        filter: RefusedFilter,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OpenRefusal>> {
        let client = self.client().await?;
        let mut filter = filter;
        filter.status = Some(RefusedStatus::Open);
        let mut sql = Sql::new(
            "SELECT r.id, r.event_id, r.app_id, r.received_at, r.raw
             FROM errors r JOIN apps a ON a.id = r.app_id WHERE TRUE",
        );
        error_filter(&mut sql, &filter);
        sql.and("r.id > ?", after_id);
        sql.text
            .push_str(&format!(" ORDER BY r.id LIMIT {}", i64::from(limit)));
        Ok(sql
            .query(&client)
            .await?
            .iter()
            .map(|row| OpenRefusal {
                id: row.get(0),
                event_id: row.get(1),
                app_id: row.get(2),
                received_at: row.get(3),
                raw: row.get(4),
            })
            .collect())
    }

    async fn resolve_refusals(&self, resolutions: Vec<Resolution>) -> Result<ReprocessOutcome> {
        self.ensure_partitions(
            resolutions
                .iter()
                .filter_map(|resolution| match resolution {
                    Resolution::Fixed { event, .. } => match event.as_ref() {
                        Processed::Event { received_at, .. } => Some(*received_at),
                        Processed::Refused { .. } => None,
                    },
                    Resolution::StillInvalid { .. } => None,
                }),
        )
        .await?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let now = Timestamp::now().as_micros();
        let mut outcome = ReprocessOutcome::default();
        let mut fixed: Vec<&Processed> = Vec::new();
        for resolution in &resolutions {
            match resolution {
                Resolution::Fixed { error_id, event } => {
                    // Only an error this transaction moves out of `open` becomes an event.
                    let changed = tx
                        .execute(
                            "UPDATE errors SET status = 'reprocessed', updated_at = $2
                             WHERE id = $1 AND status = 'open'",
                            &[error_id, &now],
                        )
                        .await
                        .map_err(database)?;
                    if changed == 1 {
                        fixed.push(event);
                        outcome.reprocessed += 1;
                    }
                }
                Resolution::StillInvalid { error_id, refusal } => {
                    outcome.still_invalid += tx
                        .execute(
                            "UPDATE errors SET reason = $2, message = $3, field = $4,
                                 violations = $5, updated_at = $6
                             WHERE id = $1 AND status = 'open'",
                            &[
                                error_id,
                                &refusal.code,
                                &refusal.message,
                                &refusal.field,
                                &violations_text(refusal)?,
                                &now,
                            ],
                        )
                        .await
                        .map_err(database)?;
                }
            }
        }
        write_in(&tx, &fixed, self.legacy_until).await?;
        tx.commit().await.map_err(database)?;
        Ok(outcome)
    }
}
