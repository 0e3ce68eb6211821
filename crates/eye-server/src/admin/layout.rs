//! The frame every page shares (head, navigation, the logout form), the error page,
//! and small formatting helpers.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use eye_core::Timestamp;
use maud::{DOCTYPE, Markup, html};

use crate::http::error::ApiError;

/// Asset links carry the version so that a new binary's files replace cached ones.
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Events,
    Sessions,
    Errors,
    Apps,
    Types,
    Users,
}

const NAV: [(Nav, &str, &str); 7] = [
    (Nav::Dashboard, "/admin", "Dashboard"),
    (Nav::Events, "/admin/events", "Events"),
    (Nav::Sessions, "/admin/sessions", "Sessions"),
    (Nav::Errors, "/admin/errors", "Errors"),
    (Nav::Types, "/admin/event-types", "Event types"),
    (Nav::Apps, "/admin/apps", "Apps & tokens"),
    (Nav::Users, "/admin/users", "Users"),
];

/// A page's failure, shown as a page: the status and a plain message.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError::new(error.status, error.message)
    }
}

/// A page's failures get the status and words the JSON API gives the same failure.
macro_rules! page_error_from {
    ($($error:ty),*) => {$(
        impl From<$error> for PageError {
            fn from(error: $error) -> Self {
                ApiError::from(error).into()
            }
        }
    )*};
}

page_error_from!(
    eye_store::StoreError,
    crate::service::schemas::SchemaError,
    crate::service::refused::ReprocessError,
    crate::service::lifecycle::LifecycleError
);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.status, &self.message)
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " · The Eye" }
            link rel="icon" href={ "/admin/assets/favicon.svg?v=" (VERSION) };
            link rel="stylesheet" href={ "/admin/assets/admin.css?v=" (VERSION) };
        }
    }
}

/// Who a page is shown to, as far as the frame shows them (`login::Viewer`).
pub trait Shown {
    fn email(&self) -> &str;
    fn role(&self) -> &str;
    fn is_admin(&self) -> bool;
    /// The login's CSRF secret, which every form of the page carries.
    fn csrf(&self) -> &str;
}

/// A page for a logged-in viewer: navigation, title, body.
pub fn page(viewer: &impl Shown, nav: Nav, title: &str, body: Markup) -> Response {
    page_with_status(StatusCode::OK, viewer, nav, title, body)
}

pub fn page_with_status(
    status: StatusCode,
    viewer: &impl Shown,
    nav: Nav,
    title: &str,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/admin" { span.logo { "◉" } " The Eye" }
                    input #nav-toggle type="checkbox" hidden;
                    label.nav-toggle for="nav-toggle" aria-label="Menu" { "☰" }
                    nav {
                        @for (item, href, label) in NAV {
                            @if item != Nav::Users || viewer.is_admin() {
                                a href=(href) class=[(item == nav).then_some("active")] { (label) }
                            }
                        }
                    }
                    div.who {
                        span title=(viewer.email()) { (viewer.email()) }
                        span.role { (viewer.role()) }
                        form method="post" action="/admin/logout" {
                            (csrf_field(viewer))
                            button.link type="submit" #logout { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                @if nav == Nav::Dashboard {
                    link rel="stylesheet" href={ "/admin/assets/uPlot.min.css?v=" (VERSION) };
                    script src={ "/admin/assets/uPlot.iife.min.js?v=" (VERSION) } {}
                }
                script src={ "/admin/assets/admin.js?v=" (VERSION) } {}
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// A page with no navigation (login), or for a failure.
pub fn bare_page(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main.narrow {
                    a.brand href="/admin" { span.logo { "◉" } " The Eye" }
                    (body)
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    bare_page(
        status,
        title,
        html! {
            section.card {
                h1 { (status.as_u16()) " " (title) }
                p.error-message { (message) }
                p { a href="/admin" { "Back to the dashboard" } }
            }
        },
    )
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(viewer: &impl Shown) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf()); }
}

/// A time as people read it (UTC, milliseconds), with the exact value for machines.
pub fn time(ts: Timestamp) -> Markup {
    let exact = ts.to_string();
    html! { time datetime=(exact) title=(exact) { (short_time(&exact)) } }
}

/// `2026-11-29T03:40:55.123456Z` → `2026-11-29 03:40:55.123`.
fn short_time(rfc3339: &str) -> String {
    let trimmed = rfc3339.trim_end_matches('Z');
    let cut = trimmed
        .find('.')
        .map_or(trimmed.len(), |dot| (dot + 4).min(trimmed.len()));
    trimmed[..cut].replacen('T', " ", 1)
}

/// Time between two events, in the largest unit that reads well.
pub fn gap(micros: i64) -> String {
    let abs = micros.unsigned_abs();
    let sign = if micros < 0 { "−" } else { "+" };
    match abs {
        0..1_000 => format!("{sign}{abs} µs"),
        1_000..1_000_000 => format!("{sign}{} ms", abs / 1_000),
        1_000_000..60_000_000 => format!("{sign}{:.1} s", abs as f64 / 1e6),
        60_000_000..3_600_000_000 => format!("{sign}{:.1} min", abs as f64 / 6e7),
        _ => format!("{sign}{:.1} h", abs as f64 / 3.6e9),
    }
}

/// JSON text indented for reading; the text as it was if it does not parse.
pub fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| text.to_owned())
}

/// A notice above a page's content.
pub fn flash(kind: &str, message: &str) -> Markup {
    html! { div class={ "flash " (kind) } role="status" { (message) } }
}

/// Percent-encodes one path segment (event types and application names have spaces).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shortened_to_milliseconds() {
        assert_eq!(
            short_time("2026-11-29T03:40:55.123456Z"),
            "2026-11-29 03:40:55.123"
        );
        assert_eq!(short_time("2026-11-29T03:40:55Z"), "2026-11-29 03:40:55");
    }

    #[test]
    fn gaps_read_in_a_fitting_unit() {
        assert_eq!(gap(250), "+250 µs");
        assert_eq!(gap(1_500), "+1 ms");
        assert_eq!(gap(2_500_000), "+2.5 s");
        assert_eq!(gap(90_000_000), "+1.5 min");
        assert_eq!(gap(-7_200_000_000), "−2.0 h");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("page interaction"), "page%20interaction");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }
}
