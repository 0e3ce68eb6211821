//! Applications, tokens, admin-UI users and logins, and the audit log, as `Access`.

use super::*;

pub(super) const USER_COLUMNS: &str =
    "SELECT id, email, password_hash, role, created_at, disabled_at FROM users";

/// A login with its user's columns first, in [`USER_COLUMNS`]' order.
pub(super) const LOGIN_QUERY: &str =
    "SELECT u.id, u.email, u.password_hash, u.role, u.created_at, u.disabled_at,
            l.csrf, l.expires_at
     FROM logins l JOIN users u ON u.id = l.user_id
     WHERE l.hash = ?1 AND l.expires_at > ?2 AND u.disabled_at IS NULL";

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        role: row.get(3)?,
        created_at: timestamp(row, 4)?,
        disabled_at: row.get::<_, Option<i64>>(5)?.map(Timestamp::from_micros),
    })
}

pub(super) fn app_from_row(row: &Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: timestamp(row, 2)?,
        revoked_at: row.get::<_, Option<i64>>(3)?.map(Timestamp::from_micros),
        allowed_origins: crate::origins_from_text(&row.get::<_, String>(4)?),
        retention: crate::access::retention_from_text(row.get(5)?),
    })
}

#[async_trait::async_trait]
impl Access for SqliteStore {
    async fn authenticate(&self, hash: TokenHash) -> Result<Option<TokenGrant>> {
        self.read_with(move |conn| {
            let grant = conn
                .prepare_cached(
                    "SELECT t.id, t.scope, t.app_id FROM tokens t LEFT JOIN apps a ON a.id = t.app_id
                     WHERE t.hash = ?1 AND t.revoked_at IS NULL AND a.revoked_at IS NULL",
                )?
                .query_row([&hash.0[..]], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<i64>>(2)?))
                })
                .optional()?;
            grant
                .map(|(token_id, scope, app_id)| {
                    let scope = Scope::parse(&scope)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown token scope {scope:?}")))?;
                    Ok(TokenGrant { token_id, scope, app_id })
                })
                .transpose()
        })
        .await
    }

    async fn create_app(&self, name: &str) -> Result<App> {
        let name = name.to_owned();
        self.write_with(move |conn| {
            let now = Timestamp::now().as_micros();
            let inserted = conn.execute(
                "INSERT INTO apps (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, now],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("application {name:?}")));
            }
            Ok(App {
                id: conn.last_insert_rowid(),
                name,
                created_at: Timestamp::from_micros(now),
                revoked_at: None,
                allowed_origins: Vec::new(),
                retention: None,
            })
        })
        .await
    }

    async fn set_allowed_origins(&self, name: &str, origins: &[String]) -> Result<()> {
        let (name, text) = (name.to_owned(), origins.join("\n"));
        self.write_with(move |conn| {
            let found = conn.execute(
                "UPDATE apps SET allowed_origins = ?2 WHERE name = ?1",
                params![name, text],
            )?;
            if found == 0 {
                return Err(StoreError::NotFound(format!("application {name:?}")));
            }
            Ok(())
        })
        .await
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, created_at, revoked_at, allowed_origins, retention FROM apps ORDER BY name",
            )?;
            Ok(stmt
                .query_map([], app_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_app(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write_with(move |conn| {
            let now = Timestamp::now().as_micros();
            let tx = conn.transaction()?;
            let revoked = tx.execute(
                "UPDATE apps SET revoked_at = coalesce(revoked_at, ?2) WHERE name = ?1",
                params![name, now],
            )?;
            if revoked == 0 {
                return Err(StoreError::NotFound(format!("application {name:?}")));
            }
            tx.execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2)
                 WHERE app_id = (SELECT id FROM apps WHERE name = ?1)",
                params![name, now],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_token(
        &self,
        hash: TokenHash,
        scope: Scope,
        app_id: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64> {
        let label = label.map(str::to_owned);
        self.write_with(move |conn| {
            conn.execute(
                "INSERT INTO tokens (hash, scope, app_id, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![&hash.0[..], scope.as_str(), app_id, label, Timestamp::now().as_micros()],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT t.id, t.scope, a.name, t.label, t.created_at, t.revoked_at
                 FROM tokens t LEFT JOIN apps a ON a.id = t.app_id ORDER BY t.id",
            )?;
            Ok(stmt
                .query_map([], |row| {
                    Ok(TokenInfo {
                        id: row.get(0)?,
                        scope: row.get(1)?,
                        app: row.get(2)?,
                        label: row.get(3)?,
                        created_at: Timestamp::from_micros(row.get(4)?),
                        revoked_at: row.get::<_, Option<i64>>(5)?.map(Timestamp::from_micros),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn revoke_token(&self, id: i64) -> Result<()> {
        self.write_with(move |conn| {
            let found = conn.execute(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, Timestamp::now().as_micros()],
            )?;
            if found == 0 {
                return Err(StoreError::NotFound(format!("token {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn create_user(&self, email: &str, password_hash: &str, role: &str) -> Result<i64> {
        let (email, hash, role) = (email.to_owned(), password_hash.to_owned(), role.to_owned());
        self.write_with(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO users (email, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (email) DO NOTHING",
                params![email, hash, role, Timestamp::now().as_micros()],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("user {email:?}")));
            }
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("{USER_COLUMNS} WHERE email = ?1"))?;
            Ok(stmt.query_row(params![email], user_from_row).optional()?)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.read_with(|conn| {
            let mut stmt = conn.prepare_cached(&format!("{USER_COLUMNS} ORDER BY email"))?;
            Ok(stmt
                .query_map([], user_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn create_login(&self, login: NewLogin) -> Result<()> {
        self.write_with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM logins WHERE expires_at <= ?1",
                params![login.created_at.as_micros()],
            )?;
            tx.execute(
                "INSERT INTO logins (hash, user_id, csrf, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &login.hash.0[..],
                    login.user_id,
                    login.csrf,
                    login.created_at.as_micros(),
                    login.expires_at.as_micros()
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn login(&self, hash: TokenHash, now: Timestamp) -> Result<Option<Login>> {
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(LOGIN_QUERY)?;
            Ok(stmt
                .query_row(params![&hash.0[..], now.as_micros()], |row| {
                    Ok(Login {
                        user: user_from_row(row)?,
                        csrf: row.get(6)?,
                        expires_at: timestamp(row, 7)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn delete_login(&self, hash: TokenHash) -> Result<()> {
        self.write_with(move |conn| {
            conn.execute("DELETE FROM logins WHERE hash = ?1", [&hash.0[..]])?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, entry: AuditEntry) -> Result<()> {
        self.write_with(move |conn| {
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, details) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![entry.at.as_micros(), entry.actor, entry.action, entry.target, entry.details],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read_with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at, actor, action, target, details FROM audit_log
                 ORDER BY at DESC, id DESC LIMIT ?1",
            )?;
            Ok(stmt
                .query_map(params![limit as i64], |row| {
                    Ok(AuditEntry {
                        at: Timestamp::from_micros(row.get(0)?),
                        actor: row.get(1)?,
                        action: row.get(2)?,
                        target: row.get(3)?,
                        details: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
