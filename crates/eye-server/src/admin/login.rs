//! Logging in and out, and who is looking at a page.
//!
//! A login is a random 256-bit secret in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when a TLS-terminating proxy says the request came over HTTPS); the store
//! keeps only its SHA-256, with the user, an expiry and the login's CSRF secret, so a
//! login survives restarts and works across API processes. Every form carries the CSRF
//! secret; a form without it, or with another, is 403. The login form, which has no
//! login yet, checks its secret against a cookie of its own (double submit).

use std::time::Duration;

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use eye_core::Timestamp;
use eye_core::auth::TokenHash;
use eye_store::{NewLogin, User};
use maud::html;

use super::form::FormData;
use super::layout::{PageError, Shown, bare_page, flash};
use crate::service::Actor;
use crate::service::users::{Role, verify_password};
use crate::state::AppState;

const SESSION_COOKIE: &str = "eye_session";
const LOGIN_CSRF_COOKIE: &str = "eye_login_csrf";
/// How long a wrong password waits before its answer: guessing stays slow.
const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);
/// The same message whichever of email or password was wrong.
const WRONG_CREDENTIALS: &str = "The email or the password is not right.";
/// A valid Argon2id hash of nothing anyone knows: an unknown email costs the same
/// verification as a known one, so timing does not tell which emails exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$mLK9YEz+7wDUnBXGNCm7WsBB5z7I1Z/5hp4ovAjrqaE";

/// The logged-in user looking at a page.
pub struct Viewer {
    pub user: User,
    pub role: Role,
    pub csrf: String,
}

impl Shown for Viewer {
    fn email(&self) -> &str {
        &self.user.email
    }
    fn role(&self) -> &str {
        self.role.as_str()
    }
    fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn actor(&self) -> Actor {
        Actor::User(self.user.email.clone())
    }

    /// Admin actions: 403 for analysts.
    pub fn require_admin(&self) -> Result<(), PageError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Only admins can do this; your role is analyst.",
            ))
        }
    }

    /// An admin action's form: its CSRF secret checked, then the role (403 for either).
    pub fn admin_form(&self, body: &[u8]) -> Result<FormData, PageError> {
        let form = FormData::parse(body);
        self.check_csrf(&form)?;
        self.require_admin()?;
        Ok(form)
    }

    /// A state-changing form: 403 unless it carries this login's CSRF secret.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), PageError> {
        match form.get("csrf") {
            Some(sent) if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            Some(_) => Err(csrf_refused(
                "The form's security token does not match your login.",
            )),
            None => Err(csrf_refused("The form has no security token.")),
        }
    }
}

fn csrf_refused(why: &str) -> PageError {
    PageError::new(
        StatusCode::FORBIDDEN,
        format!("{why} Reload the page and try again."),
    )
}

/// Pages ask for a `Viewer`; without a current login, a page view goes to the login
/// form (and comes back after it), anything else is 401.
impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let login = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(secret) => state
                .store
                .login(TokenHash::of(secret), Timestamp::now())
                .await
                .map_err(|e| PageError::from(e).into_response())?,
            None => None,
        };
        let Some(login) = login else {
            if parts.method == Method::GET {
                let next = parts.uri.path_and_query().map_or("/admin", |p| p.as_str());
                let target = format!("/admin/login?next={}", super::layout::segment(next));
                return Err(Redirect::to(&target).into_response());
            }
            return Err(PageError::new(
                StatusCode::UNAUTHORIZED,
                "Your login has expired or you have logged out. Log in again.",
            )
            .into_response());
        };
        let role = Role::parse(&login.user.role).ok_or_else(|| {
            PageError::new(StatusCode::FORBIDDEN, "Your account has an unknown role.")
                .into_response()
        })?;
        Ok(Viewer {
            user: login.user,
            role,
            csrf: login.csrf,
        })
    }
}

/// `GET /admin/login`
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = state
            .store
            .login(TokenHash::of(secret), Timestamp::now())
            .await
    {
        return Redirect::to("/admin").into_response();
    }
    let next = next_from_query(query.as_deref());
    login_form(&headers, StatusCode::OK, "", &next, None)
}

/// The form, with a fresh double-submit secret unless the browser has one already.
fn login_form(
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    next: &str,
    problem: Option<&str>,
) -> Response {
    let csrf = match cookie(headers, LOGIN_CSRF_COOKIE).filter(|c| c.len() == 64) {
        Some(csrf) => csrf.to_owned(),
        None => match random_hex() {
            Ok(csrf) => csrf,
            Err(error) => return error.into_response(),
        },
    };
    let mut response = bare_page(
        status,
        "Log in",
        html! {
            section.card {
                h1 { "Log in" }
                @if let Some(problem) = problem { (flash("error", problem)) }
                form method="post" action="/admin/login" #login {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label { "Email"
                        input type="email" name="email" value=(email) autocomplete="username" required autofocus;
                    }
                    label { "Password"
                        input type="password" name="password" autocomplete="current-password" required;
                    }
                    button.primary type="submit" { "Log in" }
                }
                p.hint { "Accounts are created with " code { "eye user create" } "." }
            }
        },
    );
    let secure = is_https(headers);
    set_cookie(
        &mut response,
        &format!(
            "{LOGIN_CSRF_COOKIE}={csrf}; Path=/admin/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            if secure { "; Secure" } else { "" }
        ),
    );
    response
}

/// `POST /admin/login`
pub async fn submit(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = FormData::parse(&body);
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    match form.get("csrf") {
        Some(sent)
            if !expected.is_empty() && constant_time_eq(sent.as_bytes(), expected.as_bytes()) => {}
        _ => {
            return csrf_refused("The login form's security token is missing or stale.")
                .into_response();
        }
    }
    let email = form.text("email").to_lowercase();
    let password = form.get("password").unwrap_or_default().to_owned();
    let next = safe_next(&form.text("next"));
    let user = match state.store.user_by_email(&email).await {
        Ok(user) => user.filter(|u| u.disabled_at.is_none()),
        Err(error) => return PageError::from(error).into_response(),
    };
    // Argon2 takes tens of milliseconds of CPU: off the async workers.
    let hash = user
        .as_ref()
        .map_or(DUMMY_HASH.to_owned(), |u| u.password_hash.clone());
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        tracing::warn!(email = %email, "admin login refused");
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        return login_form(
            &headers,
            StatusCode::UNAUTHORIZED,
            &email,
            &next,
            Some(WRONG_CREDENTIALS),
        );
    };
    let (secret, csrf) = match (random_hex(), random_hex()) {
        (Ok(secret), Ok(csrf)) => (secret, csrf),
        (Err(error), _) | (_, Err(error)) => return error.into_response(),
    };
    let now = Timestamp::now();
    let minutes =
        i64::try_from(state.settings.admin_session_minutes).unwrap_or(i64::MAX / 60_000_000);
    let login = NewLogin {
        hash: TokenHash::of(&secret),
        user_id: user.id,
        csrf,
        created_at: now,
        expires_at: now.saturating_add_micros(minutes.saturating_mul(60_000_000)),
    };
    if let Err(error) = state.store.create_login(login).await {
        return PageError::from(error).into_response();
    }
    crate::service::audit(
        state.store.as_ref(),
        &Actor::User(user.email.clone()),
        "user.login",
        &format!("user:{}", user.email),
        None,
    )
    .await;
    let secure = if is_https(&headers) { "; Secure" } else { "" };
    let mut response = Redirect::to(&next).into_response();
    set_cookie(
        &mut response,
        &format!(
            "{SESSION_COOKIE}={secret}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            minutes.saturating_mul(60)
        ),
    );
    set_cookie(
        &mut response,
        &format!(
            "{LOGIN_CSRF_COOKIE}=; Path=/admin/login; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        ),
    );
    response
}

/// `POST /admin/logout`
pub async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    viewer.check_csrf(&FormData::parse(&body))?;
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        state.store.delete_login(TokenHash::of(secret)).await?;
    }
    let secure = if is_https(&headers) { "; Secure" } else { "" };
    let mut response = Redirect::to("/admin/login").into_response();
    set_cookie(
        &mut response,
        &format!("{SESSION_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    );
    Ok(response)
}

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The server speaks plain HTTP; behind a TLS-terminating proxy, the proxy says so.
fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn next_from_query(query: Option<&str>) -> String {
    let next = query
        .map(|q| FormData::parse(q.as_bytes()).text("next"))
        .unwrap_or_default();
    safe_next(&next)
}

/// Only a path of this UI: never another site (`//evil`, `https://…`).
fn safe_next(next: &str) -> String {
    if next.starts_with("/admin") && !next.starts_with("//") && !next.contains('\\') {
        next.to_owned()
    } else {
        "/admin".to_owned()
    }
}

/// 256 random bits as 64 hex digits; never a predictable secret if the OS cannot
/// give random bytes.
fn random_hex() -> Result<String, PageError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| PageError::from(crate::http::error::ApiError::internal(e)))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_admin_ui() {
        assert_eq!(
            safe_next("/admin/events?category=x"),
            "/admin/events?category=x"
        );
        for hostile in [
            "https://evil.example",
            "//evil.example",
            "/admin\\@evil",
            "",
            "/events",
        ] {
            assert_eq!(safe_next(hostile), "/admin", "{hostile}");
        }
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; eye_session_x=2; eye_session=abc"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn the_dummy_hash_is_a_valid_argon2id_hash() {
        // If it did not parse, an unknown email would be answered faster than a known one.
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password("", DUMMY_HASH));
    }

    #[test]
    fn secrets_are_random_and_hex() {
        let (a, b) = (random_hex().unwrap(), random_hex().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
