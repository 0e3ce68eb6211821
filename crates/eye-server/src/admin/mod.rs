//! The admin web UI at `/admin`: server-rendered HTML (maud), every asset inside the
//! binary, the same store queries as the JSON API.
//!
//! Who may do what: anyone logged in reads; admins also manage (applications, tokens,
//! schemas, errors, users). A page needs a login (`login`); a form needs its login's
//! CSRF secret; an admin action by an analyst is 403.

mod apps;
mod dashboard;
mod events;
mod form;
mod layout;
mod login;
mod refused;
mod types;
mod users;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard::show))
        .route("/admin/", get(dashboard::show))
        .route("/admin/dashboard.json", get(dashboard::figures))
        .route("/admin/login", get(login::show).post(login::submit))
        .route("/admin/logout", post(login::logout))
        .route("/admin/events", get(events::list))
        .route("/admin/events/{id}", get(events::show))
        .route("/admin/sessions", get(events::sessions))
        .route("/admin/sessions/{id}", get(events::session))
        .route("/admin/sessions/{id}/erase", post(events::erase))
        .route("/admin/errors", get(refused::list))
        .route("/admin/errors/reprocess", post(refused::reprocess))
        .route("/admin/errors/{id}", get(refused::show))
        .route("/admin/errors/{id}/dismiss", post(refused::dismiss))
        .route("/admin/apps", get(apps::list).post(apps::create))
        .route("/admin/apps/{name}/revoke", post(apps::revoke))
        .route("/admin/apps/{name}/origins", post(apps::set_origins))
        .route("/admin/apps/{name}/retention", post(apps::set_retention))
        .route("/admin/tokens", post(apps::create_token))
        .route("/admin/tokens/{id}/revoke", post(apps::revoke_token))
        .route("/admin/event-types", get(types::list))
        .route("/admin/event-types/new", get(types::new_type))
        .route(
            "/admin/event-types/{category}/{name}",
            get(types::edit).post(types::save),
        )
        .route(
            "/admin/event-types/{category}/{name}/indexed",
            post(types::save_indexed),
        )
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/assets/{file}", get(asset))
        .route("/admin/{*rest}", get(unknown_page))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Pages run only the binary's own scripts and styles, cannot be framed, and are not
/// cached (they show data a logged-out browser must not keep).
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/admin/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A mistyped admin address gets a page, not the API's JSON.
async fn unknown_page() -> Response {
    layout::error_page(StatusCode::NOT_FOUND, "There is no such page.")
}

/// The files the pages load, compiled into the binary.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/admin.css"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/admin.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/vendor/uPlot.min.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // Links carry the version (`?v=`), so a new binary's files are fetched anew.
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => layout::error_page(StatusCode::NOT_FOUND, "No such file.").into_response(),
    }
}
