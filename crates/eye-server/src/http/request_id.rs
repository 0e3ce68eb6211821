//! A request id for every request: the client's `X-Request-Id` when it sends a sane
//! one, otherwise a new one. It names the request's log span (so every log line the
//! request causes carries it) and comes back in the response's `X-Request-Id`
//! (`edges` does both).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;

pub const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 128;

/// Process prefix plus a counter: unique across the fleet's processes in practice, and
/// far cheaper per request than a random UUID.
fn new_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        nanos ^ std::process::id().rotate_left(16)
    });
    format!("{prefix:08x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A client's id is kept only when it is short printable ASCII, so it cannot forge log
/// lines or bloat them.
fn client_id(request: &Request) -> Option<&str> {
    let value = request.headers().get(HEADER)?.to_str().ok()?;
    let sane =
        !value.is_empty() && value.len() <= MAX_LEN && value.bytes().all(|b| b.is_ascii_graphic());
    sane.then_some(value)
}

/// The request's id: the client's when sane, otherwise a new one.
pub fn of(request: &Request) -> String {
    client_id(request).map_or_else(new_id, str::to_owned)
}

/// The request's log span, which every log line it causes is inside.
pub fn span(id: &str, request: &Request) -> tracing::Span {
    tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = request.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_differ() {
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn only_sane_client_ids_are_kept() {
        let with = |value: &str| {
            Request::builder()
                .header(HEADER, value)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(client_id(&with("abc-123")), Some("abc-123"));
        assert_eq!(client_id(&with("has space")), None);
        assert_eq!(client_id(&with(&"x".repeat(MAX_LEN + 1))), None);
        assert_eq!(client_id(&with("")), None);
    }
}
