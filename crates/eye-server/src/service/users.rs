//! People who log in to the admin UI: passwords hashed with Argon2id (the crate's
//! default parameters: 19 MiB, 2 passes), roles `admin` and `analyst`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use eye_store::{Store, StoreError};

use crate::service::{Actor, audit};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Analyst,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("an email must look like name@domain, at most 254 bytes")]
    InvalidEmail,
    #[error("a password must be at least {MIN_PASSWORD_LEN} characters long")]
    WeakPassword,
    #[error("a user with email {0:?} already exists")]
    Exists(String),
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An Argon2id PHC string for `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| UserError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Whether `password` matches the stored hash (compared in constant time by argon2).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

fn plausible_email(email: &str) -> bool {
    let Some((name, domain)) = email.split_once('@') else {
        return false;
    };
    !name.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Creates a user; the email is kept in lower case.
pub async fn create_user(
    store: &dyn Store,
    actor: &Actor,
    email: &str,
    password: &str,
    role: Role,
) -> Result<i64, UserError> {
    let email = email.trim().to_lowercase();
    if !plausible_email(&email) {
        return Err(UserError::InvalidEmail);
    }
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(UserError::WeakPassword);
    }
    // Argon2 takes tens of milliseconds of CPU: off the async workers (the admin UI
    // creates users from a request).
    let owned = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(|e| UserError::Hash(e.to_string()))??;
    let id = match store.create_user(&email, &hash, role.as_str()).await {
        Err(StoreError::Conflict(_)) => return Err(UserError::Exists(email)),
        other => other?,
    };
    audit(
        store,
        actor,
        "user.create",
        &format!("user:{email}"),
        Some(format!("role {}", role.as_str())),
    )
    .await;
    Ok(id)
}

/// Creates the admin user `email` unless a user has that email already (whatever its
/// role or password: a bootstrap setting left in place never overrides what was changed
/// since). True when it was created.
pub async fn ensure_admin(
    store: &dyn Store,
    email: &str,
    password: &str,
) -> Result<bool, UserError> {
    let actor = Actor::Cli("bootstrap".to_owned());
    match create_user(store, &actor, email, password, Role::Admin).await {
        Ok(_) => Ok(true),
        Err(UserError::Exists(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let first = hash_password("correct horse battery").unwrap();
        let second = hash_password("correct horse battery").unwrap();
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &first));
        assert!(!verify_password("correct horse battery!", &first));
        assert!(!verify_password("correct horse battery", "not a hash"));
    }

    #[test]
    fn emails_are_checked_for_shape() {
        for good in ["a@b.co", "ops.team@example.com"] {
            assert!(plausible_email(good), "{good}");
        }
        for bad in ["", "a", "@b.co", "a@b", "a@.b", "a b@c.d", "a@b.co."] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }
}
