//! `GET /sdk/eye.js`: the browser snippet (`clients/browser/eye.js`), compiled in.

use axum::http::header;
use axum::response::IntoResponse;

pub const EYE_JS: &str = include_str!("../../../../clients/browser/eye.js");

pub async fn eye_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Pages on any site load it with a <script> tag.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        EYE_JS,
    )
}
