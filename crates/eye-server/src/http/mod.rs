//! The HTTP machinery every route shares and no route owns: the accept loop (`serve`),
//! the one middleware around the router (`middleware`: request id, panics, request
//! metrics), the JSON error shape (`error`), bearer-token lookup with its cache
//! (`tokens`), browser origins (`cors`), per-application rate limits (`rate_limit`)
//! the metrics registry (`telemetry`), and the query parameters both
//! the JSON API and the admin UI take (`query`). Nothing here knows the application state or
//! a route's handler.

pub mod cors;
pub mod error;
pub mod middleware;
pub mod query;
pub mod rate_limit;
pub mod request_id;
pub mod serve;
pub mod telemetry;
pub mod tokens;
