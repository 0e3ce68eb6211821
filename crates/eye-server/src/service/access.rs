//! Applications, tokens and the audit log: the rules shared by the CLI and the
//! management API, so both refuse the same things with the same words, and every
//! change is written to the audit log with who made it.

use eye_core::auth::{Scope, TokenHash, generate_token};
use eye_store::{App, Store, StoreError};

use super::{Actor, audit};

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(
        "an application name must be 1 to 128 characters long, not blank, without control characters"
    )]
    InvalidName,
    #[error("a token label must be at most 256 characters long, without control characters")]
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
    !name.trim().is_empty()
        && name.chars().count() <= MAX_APP_NAME_LEN
        && !name.chars().any(char::is_control)
}

/// The longest application name, in characters.
pub const MAX_APP_NAME_LEN: usize = 128;
/// The longest token label, in characters.
pub const MAX_LABEL_LEN: usize = 256;

fn unknown_app(name: &str, error: StoreError) -> ManageError {
    match error {
        StoreError::NotFound(_) => ManageError::UnknownApp(name.to_owned()),
        other => other.into(),
    }
}

fn normalize_origins(origins: &[String]) -> Result<Vec<String>, ManageError> {
    let mut normalized = Vec::with_capacity(origins.len());
    for origin in origins {
        let origin = normalize(origin).map_err(ManageError::InvalidOrigin)?;
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
    if label.is_some_and(|l| l.chars().count() > MAX_LABEL_LEN || l.chars().any(char::is_control)) {
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

/// Checks an origin as an operator writes it and returns it as browsers send it:
/// `scheme://host[:port]`, lower case, no path.
fn normalize(origin: &str) -> Result<String, String> {
    if origin == "*" {
        return Ok(origin.to_owned());
    }
    let lower = origin.trim_end_matches('/').to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin:?} must start with http:// or https://"))?;
    let valid = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Err(format!(
            "{origin:?} must be scheme://host[:port], with no path, query or user"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_or_refused() {
        assert_eq!(
            normalize("https://Shop.Example/").unwrap(),
            "https://shop.example"
        );
        assert_eq!(
            normalize("http://localhost:8080").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(normalize("*").unwrap(), "*");
        for bad in [
            "shop.example",
            "https://",
            "https://a/b",
            "ftp://a",
            "https://u@a",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
