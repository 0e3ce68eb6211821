//! Bearer-token authentication with a short-lived cache.
//!
//! Tokens are looked up by their SHA-256 in the store. A grant is cached for one second,
//! so ingest pays one hash and a map lookup per request while a token created or
//! revoked by the CLI (another process) takes effect within a second. Unknown tokens
//! are not cached: a token created a moment ago is accepted at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use eye_core::auth::{Scope, TokenHash};
use eye_store::{Store, TokenGrant};

use crate::http::error::ApiError;

const GRANT_TTL: Duration = Duration::from_secs(1);
/// Bounds the cache; past it, it is cleared (tokens are few in practice).
const MAX_CACHED: usize = 10_000;

pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<TokenHash, (TokenGrant, Instant)>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Authenticator {
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Forgets every cached grant: a revocation made through this process bites on its
    /// very next request (other processes notice within [`GRANT_TTL`]).
    pub fn forget_all(&self) {
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Checks the request's bearer token and that its scope allows `needed`.
    pub async fn require(
        &self,
        headers: &HeaderMap,
        needed: Scope,
    ) -> Result<TokenGrant, ApiError> {
        self.require_token(bearer(headers)?, needed).await
    }

    /// Checks `token` (from wherever the request carried it) and its scope.
    pub async fn require_token(&self, token: &str, needed: Scope) -> Result<TokenGrant, ApiError> {
        let hash = TokenHash::of(token);
        let cached = self
            .cache
            .read()
            .ok()
            .and_then(|cache| cache.get(&hash).copied())
            .filter(|(_, at)| at.elapsed() < GRANT_TTL)
            .map(|(grant, _)| grant);
        let grant = match cached {
            Some(grant) => grant,
            None => {
                let found = self.store.authenticate(hash).await?;
                let mut cache = self
                    .cache
                    .write()
                    .map_err(|_| ApiError::internal("token cache poisoned"))?;
                match found {
                    Some(grant) => {
                        if cache.len() >= MAX_CACHED {
                            cache.clear();
                        }
                        cache.insert(hash, (grant, Instant::now()));
                        grant
                    }
                    None => {
                        cache.remove(&hash);
                        return Err(unauthorized("the token is unknown or revoked"));
                    }
                }
            }
        };
        if !grant.scope.allows(needed) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this {} token cannot do this; it needs the {} scope",
                    grant.scope.as_str(),
                    needed.as_str()
                ),
            ));
        }
        Ok(grant)
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let value = value
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?
        .trim();
    if token.is_empty() {
        return Err(unauthorized("the bearer token is empty"));
    }
    Ok(token)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}
