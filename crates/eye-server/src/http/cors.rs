//! CORS for browser ingestion, per application. Each application lists the origins
//! its pages are served from (`https://shop.example`, or `*` for any). A preflight
//! carries no token, so it is answered for an origin that any active application
//! allows; the `POST` itself is then held to its own application's list. Requests
//! without an `Origin` header (servers) are not concerned.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eye_store::Store;

use crate::http::error::ApiError;

/// Origin lists change rarely; every process sees a change within this.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Allowed {
    /// Origins allowed by at least one active application (`*` included).
    any_app: HashSet<String>,
    by_app: HashMap<i64, Vec<String>>,
}

impl Allowed {
    fn for_any_app(&self, origin: &str) -> bool {
        self.any_app.contains("*") || self.any_app.contains(origin)
    }

    fn for_app(&self, app_id: i64, origin: &str) -> bool {
        self.by_app
            .get(&app_id)
            .is_some_and(|list| list.iter().any(|o| o == "*" || o == origin))
    }
}

pub struct OriginPolicy {
    store: Arc<dyn Store>,
    current: RwLock<(Option<Instant>, Arc<Allowed>)>,
}

impl OriginPolicy {
    pub fn new(store: Arc<dyn Store>) -> Self {
        OriginPolicy {
            store,
            current: RwLock::new((None, Arc::default())),
        }
    }

    async fn allowed(&self) -> Result<Arc<Allowed>, ApiError> {
        {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            if current.0.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
                return Ok(Arc::clone(&current.1));
            }
        }
        let mut allowed = Allowed::default();
        for app in self.store.list_apps().await? {
            if app.revoked_at.is_none() {
                allowed.any_app.extend(app.allowed_origins.iter().cloned());
                allowed.by_app.insert(app.id, app.allowed_origins);
            }
        }
        let allowed = Arc::new(allowed);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            (Some(Instant::now()), Arc::clone(&allowed));
        Ok(allowed)
    }

    /// Makes the next request reload the lists (after a change made by this process).
    pub fn forget(&self) {
        self.current.write().unwrap_or_else(|e| e.into_inner()).0 = None;
    }

    /// For an ingest request from a browser: its application must allow the origin.
    pub async fn check_app(&self, app_id: i64, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(origin) = origin(headers) else {
            return Ok(());
        };
        if self.allowed().await?.for_app(app_id, origin) {
            Ok(())
        } else {
            Err(not_allowed(origin))
        }
    }
}

pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

fn not_allowed(origin: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "origin_not_allowed",
        format!(
            "the origin {origin:?} is not allowed for this application \
             (eye app origins NAME --allowed-origin URL)"
        ),
    )
}

/// The answer to `OPTIONS` on the ingest routes: a browser's preflight (with an `Origin`), answered
/// for an origin any active application allows; otherwise what the route allows.
pub async fn preflight(policy: &OriginPolicy, headers: &HeaderMap) -> Response {
    let Some(origin) = origin(headers) else {
        let mut response = StatusCode::NO_CONTENT.into_response();
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        return response;
    };
    let origin = origin.to_owned();
    for_browser(policy, &origin, async {
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        let headers = preflight.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, content-encoding"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        preflight
    })
    .await
}

/// The answer to an ingest request: `answer` as it is for a request without an
/// `Origin` (a server), and for a browser's only when some active application allows
/// its origin (a `403` without CORS headers otherwise), with the CORS headers added so
/// the page can read it, errors included. The request's own application is held to its
/// own list by the handler (`OriginPolicy::check_app`).
///
/// Called by the two ingest handlers rather than being a layer on their routes: a
/// `from_fn` layer clones the route's boxed services on every request (~1,200
/// instructions per request, counted with `crates/eye-bench/instructions.sh`).
pub async fn answer_ingest(
    policy: &OriginPolicy,
    origin: Option<&str>,
    answer: impl Future<Output = Response>,
) -> Response {
    match origin {
        None => answer.await,
        Some(origin) => for_browser(policy, origin, answer).await,
    }
}

async fn for_browser(
    policy: &OriginPolicy,
    origin: &str,
    answer: impl Future<Output = Response>,
) -> Response {
    let allowed = match policy.allowed().await {
        Ok(allowed) => allowed.for_any_app(origin),
        Err(error) => return error.into_response(),
    };
    if !allowed {
        return not_allowed(origin).into_response();
    }
    let mut response = answer.await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, x-request-id"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_allows_its_own_origins_or_any_with_a_star() {
        let mut allowed = Allowed::default();
        allowed.by_app.insert(1, vec!["https://a".into()]);
        allowed.by_app.insert(2, vec!["*".into()]);
        allowed.any_app.insert("https://a".into());
        assert!(allowed.for_app(1, "https://a"));
        assert!(!allowed.for_app(1, "https://b"));
        assert!(allowed.for_app(2, "https://b"));
        assert!(!allowed.for_app(3, "https://a"));
        assert!(allowed.for_any_app("https://a"));
        assert!(!allowed.for_any_app("https://b"));
    }
}
