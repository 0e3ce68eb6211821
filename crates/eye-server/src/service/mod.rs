//! The business actions, each with its rules and its audit log entry: applications
//! and tokens (`access`), admin-UI users (`users`), schemas (`schemas`), the
//! refused-event workflow (`refused`), and retention and erasure (`lifecycle`). The JSON API, the admin UI and the CLI call
//! these and never each other, so all three refuse the same things with the same
//! words. The service knows nothing of HTTP: errors are its own, and each caller turns
//! them into a status code, a page or a message.

pub mod access;
pub mod indexes;
pub mod lifecycle;
pub mod refused;
pub mod schemas;
pub mod users;

use eye_core::Timestamp;
use eye_store::{AuditEntry, Store};

/// Who made a change, as the audit log records it.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The command line, with the operating-system user that ran it.
    Cli(String),
    /// A management API call, by the admin token's id (never its secret).
    Token(i64),
    /// An admin-UI user, by email.
    User(String),
    /// The process itself, finishing work someone else started (an erasure's deletes).
    Background,
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
            Actor::Background => "eye".to_owned(),
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
