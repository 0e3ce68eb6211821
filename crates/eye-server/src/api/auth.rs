//! Scoped bearer tokens as extractors: a handler that takes `Auth<Read>` runs only
//! for a valid token whose scope allows reading, and its signature says so. The
//! lookup and its cache are `http::tokens::Authenticator`.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use eye_core::auth::Scope;
use eye_store::TokenGrant;

use crate::http::error::ApiError;
use crate::service::Actor;
use crate::state::AppState;

/// A scope a route needs, as a type.
pub trait Needs: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// Reading events, sessions, counts and refused events.
pub struct Read;
/// Managing: applications, tokens, schemas, the refused-event workflow.
pub struct Admin;

impl Needs for Read {
    const SCOPE: Scope = Scope::Read;
}

impl Needs for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// The request's token, checked to allow `S`.
pub struct Auth<S: Needs> {
    pub grant: TokenGrant,
    scope: PhantomData<S>,
}

impl<S: Needs> Auth<S> {
    /// Who acts, for the audit log: the token, by its id.
    pub fn actor(&self) -> Actor {
        Actor::Token(self.grant.token_id)
    }
}

impl<S: Needs> FromRequestParts<AppState> for Auth<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let grant = state.auth.require(&parts.headers, S::SCOPE).await?;
        Ok(Auth {
            grant,
            scope: PhantomData,
        })
    }
}
