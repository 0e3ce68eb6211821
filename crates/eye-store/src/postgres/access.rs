//! Applications, tokens, admin-UI users and logins, and the audit log, as `Access`.

use super::*;

pub(super) const USER_COLUMNS: &str =
    "SELECT id, email, password_hash, role, created_at, disabled_at FROM users";

pub(super) fn user_from_row(row: &Row) -> User {
    User {
        id: row.get(0),
        email: row.get(1),
        password_hash: row.get(2),
        role: row.get(3),
        created_at: Timestamp::from_micros(row.get(4)),
        disabled_at: row.get::<_, Option<i64>>(5).map(Timestamp::from_micros),
    }
}

#[async_trait::async_trait]
impl Access for PgStore {
    async fn authenticate(&self, hash: TokenHash) -> Result<Option<TokenGrant>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT t.id, t.scope, t.app_id FROM tokens t LEFT JOIN apps a ON a.id = t.app_id
                 WHERE t.hash = $1 AND t.revoked_at IS NULL AND a.revoked_at IS NULL",
                &[&&hash.0[..]],
            )
            .await
            .map_err(database)?;
        row.map(|row| {
            let scope: &str = row.get(1);
            Ok(TokenGrant {
                token_id: row.get(0),
                scope: Scope::parse(scope)
                    .ok_or_else(|| corrupt(format!("unknown token scope {scope:?}")))?,
                app_id: row.get(2),
            })
        })
        .transpose()
    }

    async fn create_app(&self, name: &str) -> Result<App> {
        let now = Timestamp::now().as_micros();
        let row = self
            .client()
            .await?
            .query_opt(
                "INSERT INTO apps (name, created_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &now],
            )
            .await
            .map_err(database)?;
        let row = row.ok_or_else(|| StoreError::Conflict(format!("application {name:?}")))?;
        Ok(App {
            id: row.get(0),
            name: name.to_owned(),
            created_at: Timestamp::from_micros(now),
            revoked_at: None,
            allowed_origins: Vec::new(),
            retention: None,
        })
    }

    async fn set_allowed_origins(&self, name: &str, origins: &[String]) -> Result<()> {
        let found = self
            .client()
            .await?
            .execute(
                "UPDATE apps SET allowed_origins = $2 WHERE name = $1",
                &[&name, &origins.join("\n")],
            )
            .await
            .map_err(database)?;
        if found == 0 {
            return Err(StoreError::NotFound(format!("application {name:?}")));
        }
        Ok(())
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT id, name, created_at, revoked_at, allowed_origins, retention FROM apps ORDER BY name",
                &[],
            )
            .await
            .map_err(database)?
            .iter()
            .map(|row| App {
                id: row.get(0),
                name: row.get(1),
                created_at: Timestamp::from_micros(row.get(2)),
                revoked_at: row.get::<_, Option<i64>>(3).map(Timestamp::from_micros),
                allowed_origins: crate::origins_from_text(row.get(4)),
                retention: crate::access::retention_from_text(row.get(5)),
            })
            .collect())
    }

    async fn revoke_app(&self, name: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let now = Timestamp::now().as_micros();
        let revoked = tx
            .execute(
                "UPDATE apps SET revoked_at = coalesce(revoked_at, $2) WHERE name = $1",
                &[&name, &now],
            )
            .await
            .map_err(database)?;
        if revoked == 0 {
            return Err(StoreError::NotFound(format!("application {name:?}")));
        }
        tx.execute(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, $2)
             WHERE app_id = (SELECT id FROM apps WHERE name = $1)",
            &[&name, &now],
        )
        .await
        .map_err(database)?;
        tx.commit().await.map_err(database)?;
        Ok(())
    }

    async fn create_token(
        &self,
        hash: TokenHash,
        scope: Scope,
        app_id: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64> {
        Ok(self
            .client()
            .await?
            .query_one(
                "INSERT INTO tokens (hash, scope, app_id, label, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &&hash.0[..],
                    &scope.as_str(),
                    &app_id,
                    &label,
                    &Timestamp::now().as_micros(),
                ],
            )
            .await
            .map_err(database)?
            .get(0))
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT t.id, t.scope, a.name, t.label, t.created_at, t.revoked_at
                 FROM tokens t LEFT JOIN apps a ON a.id = t.app_id ORDER BY t.id",
                &[],
            )
            .await
            .map_err(database)?
            .iter()
            .map(|row| TokenInfo {
                id: row.get(0),
                scope: row.get(1),
                app: row.get(2),
                label: row.get(3),
                created_at: Timestamp::from_micros(row.get(4)),
                revoked_at: row.get::<_, Option<i64>>(5).map(Timestamp::from_micros),
            })
            .collect())
    }

    async fn revoke_token(&self, id: i64) -> Result<()> {
        let found = self
            .client()
            .await?
            .execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1",
                &[&id, &Timestamp::now().as_micros()],
            )
            .await
            .map_err(database)?;
        if found == 0 {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        Ok(())
    }

    async fn create_user(&self, email: &str, password_hash: &str, role: &str) -> Result<i64> {
        let row = self
            .client()
            .await?
            .query_opt(
                "INSERT INTO users (email, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (email) DO NOTHING RETURNING id",
                &[&email, &password_hash, &role, &Timestamp::now().as_micros()],
            )
            .await
            .map_err(database)?;
        let row = row.ok_or_else(|| StoreError::Conflict(format!("user {email:?}")))?;
        Ok(row.get(0))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = self
            .client()
            .await?
            .query_opt(&format!("{USER_COLUMNS} WHERE email = $1"), &[&email])
            .await
            .map_err(database)?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self
            .client()
            .await?
            .query(&format!("{USER_COLUMNS} ORDER BY email"), &[])
            .await
            .map_err(database)?
            .iter()
            .map(user_from_row)
            .collect())
    }

    async fn create_login(&self, login: NewLogin) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM logins WHERE expires_at <= $1",
                &[&login.created_at.as_micros()],
            )
            .await
            .map_err(database)?;
        client
            .execute(
                "INSERT INTO logins (hash, user_id, csrf, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &&login.hash.0[..],
                    &login.user_id,
                    &login.csrf,
                    &login.created_at.as_micros(),
                    &login.expires_at.as_micros(),
                ],
            )
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn login(&self, hash: TokenHash, now: Timestamp) -> Result<Option<Login>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT u.id, u.email, u.password_hash, u.role, u.created_at, u.disabled_at,
                        l.csrf, l.expires_at
                 FROM logins l JOIN users u ON u.id = l.user_id
                 WHERE l.hash = $1 AND l.expires_at > $2 AND u.disabled_at IS NULL",
                &[&&hash.0[..], &now.as_micros()],
            )
            .await
            .map_err(database)?;
        Ok(row.map(|row| Login {
            user: user_from_row(&row),
            csrf: row.get(6),
            expires_at: Timestamp::from_micros(row.get(7)),
        }))
    }

    async fn delete_login(&self, hash: TokenHash) -> Result<()> {
        self.client()
            .await?
            .execute("DELETE FROM logins WHERE hash = $1", &[&&hash.0[..]])
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn audit(&self, entry: AuditEntry) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO audit_log (at, actor, action, target, details)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &entry.at.as_micros(),
                    &entry.actor,
                    &entry.action,
                    &entry.target,
                    &entry.details,
                ],
            )
            .await
            .map_err(database)?;
        Ok(())
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT at, actor, action, target, details FROM audit_log
                 ORDER BY at DESC, id DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .await
            .map_err(database)?
            .iter()
            .map(|row| AuditEntry {
                at: Timestamp::from_micros(row.get(0)),
                actor: row.get(1),
                action: row.get(2),
                target: row.get(3),
                details: row.get(4),
            })
            .collect())
    }
}
