//! Applications, tokens and the audit log: the rules shared by the CLI and the
//! management API, so both refuse the same things with the same words, and every
//! change is written to the audit log with who made it.

use eye_core::Timestamp;
use eye_core::auth::{Scope, TokenHash, generate_token};
use eye_store::{App, AuditEntry, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(
        "an application name must be 1 to 128 bytes long, not blank, without control characters"
    )]
    InvalidName,
    #[error("a token label must be at most 256 bytes long, without control characters")]
    InvalidLabel,
    #[error("an application named {0:?} already exists")]
    AppExists(String),
    #[error("no application named {0:?}")]
    UnknownApp(String),
    #[error("application {0:?} is revoked")]
    AppRevoked(String),
    #[error("an ingest token needs an application")]
    IngestNeedsApp,
    #[error("only ingest tokens belong to an application")]
    AppNotAllowed,
    #[error("no token {0}")]
    UnknownToken(i64),
    #[error("an allowed origin {0}")]
    InvalidOrigin(String),
    #[error("no random source for a token: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who made a change, as the audit log records it.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The command line, with the operating-system user that ran it.
    Cli(String),
    /// A management API call, by the admin token's id (never its secret).
    Token(i64),
    /// An admin-UI user, by email.
    User(String),
}

impl Actor {
    pub fn cli() -> Actor {
        Actor::Cli(std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()))
    }

    fn label(&self) -> String {
        match self {
            Actor::Cli(user) => format!("cli:{user}"),
            Actor::Token(id) => format!("token:{id}"),
            Actor::User(email) => format!("user:{email}"),
        }
    }
}

/// Appends to the audit log. A change is never undone because its audit entry could not
/// be written; the failure is logged loudly instead.
pub async fn audit(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    target: &str,
    details: Option<String>,
) {
    let entry = AuditEntry {
        at: Timestamp::now(),
        actor: actor.label(),
        action: action.to_owned(),
        target: target.to_owned(),
        details,
    };
    if let Err(error) = store.audit(entry).await {
        tracing::error!(%error, action, target, "writing the audit log failed");
    }
}

/// Registers an application with its first ingest token; returns the token's secret,
/// which exists nowhere else.
pub async fn create_app(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    origins: &[String],
) -> Result<(App, String), ManageError> {
    if !is_app_name(name) {
        return Err(ManageError::InvalidName);
    }
    let origins = normalize_origins(origins)?;
    let mut app = match store.create_app(name).await {
        Err(StoreError::Conflict(_)) => return Err(ManageError::AppExists(name.to_owned())),
        other => other?,
    };
    if !origins.is_empty() {
        store.set_allowed_origins(name, &origins).await?;
        app.allowed_origins = origins;
    }
    let token = generate_token(Scope::Ingest).map_err(|e| ManageError::Random(e.to_string()))?;
    let token_id = store
        .create_token(
            TokenHash::of(&token),
            Scope::Ingest,
            Some(app.id),
            Some(name),
        )
        .await?;
    audit(
        store,
        actor,
        "app.create",
        &format!("app:{name}"),
        Some(format!("ingest token {token_id}")),
    )
    .await;
    Ok((app, token))
}

/// A name `create_app` accepts; no other name can belong to an application, so a
/// lookup by any other (a NUL, which PostgreSQL would refuse) is answered without one.
fn is_app_name(name: &str) -> bool {
    !name.trim().is_empty() && name.len() <= 128 && !name.chars().any(char::is_control)
}

fn unknown_app(name: &str, error: StoreError) -> ManageError {
    match error {
        StoreError::NotFound(_) => ManageError::UnknownApp(name.to_owned()),
        other => other.into(),
    }
}

fn normalize_origins(origins: &[String]) -> Result<Vec<String>, ManageError> {
    let mut normalized = Vec::with_capacity(origins.len());
    for origin in origins {
        let origin = crate::cors::normalize(origin).map_err(ManageError::InvalidOrigin)?;
        if !normalized.contains(&origin) {
            normalized.push(origin);
        }
    }
    Ok(normalized)
}

/// Replaces the browser origins an application accepts events from (none: no browser).
pub async fn set_origins(
    store: &dyn Store,
    actor: &Actor,
    name: &str,
    origins: &[String],
) -> Result<Vec<String>, ManageError> {
    if !is_app_name(name) {
        return Err(ManageError::UnknownApp(name.to_owned()));
    }
    let origins = normalize_origins(origins)?;
    store
        .set_allowed_origins(name, &origins)
        .await
        .map_err(|e| unknown_app(name, e))?;
    audit(
        store,
        actor,
        "app.origins",
        &format!("app:{name}"),
        Some(origins.join(" ")),
    )
    .await;
    Ok(origins)
}

pub async fn revoke_app(store: &dyn Store, actor: &Actor, name: &str) -> Result<(), ManageError> {
    if !is_app_name(name) {
        return Err(ManageError::UnknownApp(name.to_owned()));
    }
    store
        .revoke_app(name)
        .await
        .map_err(|e| unknown_app(name, e))?;
    audit(store, actor, "app.revoke", &format!("app:{name}"), None).await;
    Ok(())
}

/// Creates a token; returns its id and its secret.
pub async fn create_token(
    store: &dyn Store,
    actor: &Actor,
    scope: Scope,
    app: Option<&str>,
    label: Option<&str>,
) -> Result<(i64, String), ManageError> {
    if label.is_some_and(|l| l.len() > 256 || l.chars().any(char::is_control)) {
        return Err(ManageError::InvalidLabel);
    }
    let app_id = match (scope, app) {
        (Scope::Ingest, None) => return Err(ManageError::IngestNeedsApp),
        (Scope::Ingest, Some(name)) => {
            let apps = store.list_apps().await?;
            let app = apps
                .into_iter()
                .find(|a| a.name == name)
                .ok_or_else(|| ManageError::UnknownApp(name.to_owned()))?;
            if app.revoked_at.is_some() {
                return Err(ManageError::AppRevoked(name.to_owned()));
            }
            Some(app.id)
        }
        (_, Some(_)) => return Err(ManageError::AppNotAllowed),
        (_, None) => None,
    };
    let token = generate_token(scope).map_err(|e| ManageError::Random(e.to_string()))?;
    let id = store
        .create_token(TokenHash::of(&token), scope, app_id, label)
        .await?;
    let details = match app {
        Some(app) => format!("scope {}, app {app}", scope.as_str()),
        None => format!("scope {}", scope.as_str()),
    };
    audit(
        store,
        actor,
        "token.create",
        &format!("token:{id}"),
        Some(details),
    )
    .await;
    Ok((id, token))
}

pub async fn revoke_token(store: &dyn Store, actor: &Actor, id: i64) -> Result<(), ManageError> {
    store.revoke_token(id).await.map_err(|e| match e {
        StoreError::NotFound(_) => ManageError::UnknownToken(id),
        other => other.into(),
    })?;
    audit(store, actor, "token.revoke", &format!("token:{id}"), None).await;
    Ok(())
}
