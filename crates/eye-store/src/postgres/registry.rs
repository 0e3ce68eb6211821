//! The schema registry: event types, their schema versions and modes, as `EventTypes`.

use super::*;

pub(super) fn mode_from(text: &str) -> Result<SchemaMode> {
    SchemaMode::parse(text).ok_or_else(|| corrupt(format!("unknown schema mode {text:?}")))
}

pub(super) async fn schema_record(
    client: &impl GenericClient,
    event_type: &EventType,
    version: Option<i64>,
) -> Result<Option<SchemaRecord>> {
    let row = client
        .query_opt(
            "SELECT v.version, coalesce(t.mode, 'enforce'), v.version = t.schema_version,
                    v.schema, v.created_at
             FROM schema_versions v
             LEFT JOIN event_types t ON t.category = v.category AND t.name = v.name
             WHERE v.category = $1 AND v.name = $2
               AND v.version = coalesce($3, t.schema_version)",
            &[&event_type.category, &event_type.name, &version],
        )
        .await
        .map_err(database)?;
    row.map(|row| {
        Ok(SchemaRecord {
            category: event_type.category.clone(),
            name: event_type.name.clone(),
            version: row.get(0),
            mode: mode_from(row.get(1))?,
            current: row.get::<_, Option<bool>>(2).unwrap_or(false),
            schema: raw_json(row.get(3))?,
            created_at: Timestamp::from_micros(row.get(4)),
        })
    })
    .transpose()
}

pub(super) async fn event_types(
    client: &impl GenericClient,
    only: Option<&EventType>,
) -> Result<Vec<EventTypeInfo>> {
    let rows = client
        .query(
            "WITH known AS (
                 SELECT category, name FROM event_types
                 UNION SELECT category, name FROM type_counts
                 UNION SELECT category, name FROM indexed_fields
             )
             SELECT k.category, k.name, t.category IS NOT NULL, coalesce(t.mode, 'enforce'),
                    t.schema_version, coalesce(c.events, 0),
                    coalesce((SELECT array_agg(v.version ORDER BY v.version) FROM schema_versions v
                              WHERE v.category = k.category AND v.name = k.name), '{}')
             FROM known k
             LEFT JOIN event_types t ON t.category = k.category AND t.name = k.name
             LEFT JOIN type_counts c ON c.category = k.category AND c.name = k.name
             WHERE ($1::text IS NULL OR k.category = $1) AND ($2::text IS NULL OR k.name = $2)
             ORDER BY k.category, k.name",
            &[&only.map(|t| &t.category), &only.map(|t| &t.name)],
        )
        .await
        .map_err(database)?;
    let mut indexed = super::indexes::indexed_by_type(client).await?;
    rows.iter()
        .map(|row| {
            let (category, name): (String, String) = (row.get(0), row.get(1));
            let indexed = indexed
                .remove(&(category.clone(), name.clone()))
                .unwrap_or_default();
            Ok(EventTypeInfo {
                category,
                name,
                registered: row.get(2),
                mode: mode_from(row.get(3))?,
                schema_version: row.get(4),
                versions: row.get(6),
                event_count: row.get(5),
                indexed,
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl EventTypes for PgStore {
    async fn active_types(&self) -> Result<Vec<ActiveType>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT t.category, t.name, t.mode, t.schema_version, v.schema
                 FROM event_types t
                 LEFT JOIN schema_versions v
                   ON v.category = t.category AND v.name = t.name AND v.version = t.schema_version",
                &[],
            )
            .await
            .map_err(database)?;
        rows.iter()
            .map(|row| {
                let version: Option<i64> = row.get(3);
                let schema: Option<String> = row.get(4);
                Ok(ActiveType {
                    event_type: EventType {
                        category: row.get(0),
                        name: row.get(1),
                    },
                    mode: mode_from(row.get(2))?,
                    schema: version.zip(schema),
                })
            })
            .collect()
    }

    async fn event_types(&self) -> Result<Vec<EventTypeInfo>> {
        event_types(&self.client().await?, None).await
    }

    async fn event_type(&self, event_type: &EventType) -> Result<Option<EventTypeInfo>> {
        Ok(event_types(&self.client().await?, Some(event_type))
            .await?
            .pop())
    }

    async fn schema(
        &self,
        event_type: &EventType,
        version: Option<i64>,
    ) -> Result<Option<SchemaRecord>> {
        schema_record(&self.client().await?, event_type, version).await
    }

    async fn put_schema(
        &self,
        event_type: &EventType,
        schema: String,
        mode: Option<SchemaMode>,
    ) -> Result<(SchemaRecord, bool)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let (category, name) = (&event_type.category, &event_type.name);
        // Serializes writers of one type's versions.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1 || chr(31) || $2))",
            &[category, name],
        )
        .await
        .map_err(database)?;
        let now = Timestamp::now().as_micros();
        let current = schema_record(&tx, event_type, None).await?;
        let unchanged = current.as_ref().is_some_and(|c| c.schema.get() == schema);
        if !unchanged {
            let version: i64 = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) + 1 FROM schema_versions
                     WHERE category = $1 AND name = $2",
                    &[category, name],
                )
                .await
                .map_err(database)?
                .get(0);
            tx.execute(
                "INSERT INTO schema_versions (category, name, version, schema, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[category, name, &version, &schema, &now],
            )
            .await
            .map_err(database)?;
            tx.execute(
                "INSERT INTO event_types (category, name, schema_version, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (category, name) DO UPDATE SET
                     schema_version = EXCLUDED.schema_version, updated_at = EXCLUDED.updated_at",
                &[category, name, &version, &now],
            )
            .await
            .map_err(database)?;
        }
        if let Some(mode) = mode {
            tx.execute(
                "UPDATE event_types SET mode = $3, updated_at = $4 WHERE category = $1 AND name = $2",
                &[category, name, &mode.as_str(), &now],
            )
            .await
            .map_err(database)?;
        }
        let record = schema_record(&tx, event_type, None)
            .await?
            .ok_or_else(|| corrupt("a schema just written is missing"))?;
        tx.commit().await.map_err(database)?;
        Ok((record, !unchanged))
    }

    async fn delete_schema(&self, event_type: &EventType) -> Result<()> {
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE event_types SET schema_version = NULL, updated_at = $3
                 WHERE category = $1 AND name = $2 AND schema_version IS NOT NULL",
                &[
                    &event_type.category,
                    &event_type.name,
                    &Timestamp::now().as_micros(),
                ],
            )
            .await
            .map_err(database)?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!(
                "a schema for {:?}/{:?}",
                event_type.category, event_type.name
            )));
        }
        Ok(())
    }
}
