//! Who may do what: applications, tokens, admin-UI users and logins, the audit log.

use eye_core::Timestamp;
use eye_core::auth::{Scope, TokenHash};
use eye_core::retention::Retention;
use serde::Serialize;

use crate::*;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// Browser origins (`https://shop.example`, or `*`) allowed to send its events.
    pub allowed_origins: Vec<String>,
    /// Its own retention (`30d`, `forever`); `null`: the global one.
    #[schema(value_type = Option<String>)]
    pub retention: Option<Retention>,
}

/// An application's retention as the store keeps it: its text, or NULL.
pub(crate) fn retention_from_text(text: Option<String>) -> Option<Retention> {
    // Only `Retention`'s own `Display` writes this column.
    text.and_then(|text| text.parse().ok())
}

/// Origins as the store keeps them: one per line.
pub(crate) fn origins_from_text(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A token as an operator sees it: never its secret, which the store does not have.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    /// `ingest`, `read` or `admin`.
    pub scope: String,
    /// The application of an ingest token, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

/// One management action: who did it (`cli:<os user>` or `token:<id>`), what, to what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// Someone who may log in to the admin UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    /// An Argon2id PHC string; never the password.
    pub password_hash: String,
    /// `admin` or `analyst`.
    pub role: String,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

/// A login about to be recorded: the hash of the cookie's secret, never the secret.
#[derive(Debug, Clone)]
pub struct NewLogin {
    pub hash: TokenHash,
    pub user_id: i64,
    /// The login's CSRF secret, which its pages put in their forms.
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A current login and who it belongs to.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: User,
    pub csrf: String,
    pub expires_at: Timestamp,
}

/// A valid, unrevoked token as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGrant {
    pub token_id: i64,
    pub scope: Scope,
    /// The application an ingest token sends for.
    pub app_id: Option<i64>,
}

/// Applications, tokens, admin-UI users and their logins, and the audit log.
#[async_trait::async_trait]
pub trait Access: Send + Sync {
    /// Looks a token up by its hash; `None` when unknown or revoked.
    async fn authenticate(&self, hash: TokenHash) -> Result<Option<TokenGrant>>;
    async fn create_app(&self, name: &str) -> Result<App>;
    async fn list_apps(&self) -> Result<Vec<App>>;
    /// Revokes an application and every token of it.
    async fn revoke_app(&self, name: &str) -> Result<()>;
    /// Replaces an application's allowed browser origins. `NotFound` when unknown.
    async fn set_allowed_origins(&self, name: &str, origins: &[String]) -> Result<()>;
    async fn create_token(
        &self,
        hash: TokenHash,
        scope: Scope,
        app_id: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64>;
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Revokes one token; revoking a revoked one changes nothing. `NotFound` when unknown.
    async fn revoke_token(&self, id: i64) -> Result<()>;

    /// `Conflict` when the email is taken.
    async fn create_user(&self, email: &str, password_hash: &str, role: &str) -> Result<i64>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;

    /// Records an admin-UI login; expired ones are removed on the way.
    async fn create_login(&self, login: NewLogin) -> Result<()>;
    /// The login whose secret hashes to `hash`, if it has not expired by `now` and its
    /// user is not disabled.
    async fn login(&self, hash: TokenHash, now: Timestamp) -> Result<Option<Login>>;
    /// Ends a login (logging out); ending an unknown one changes nothing.
    async fn delete_login(&self, hash: TokenHash) -> Result<()>;

    /// Appends to the audit log.
    async fn audit(&self, entry: AuditEntry) -> Result<()>;
    /// The newest `limit` entries, newest first.
    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>>;
}
