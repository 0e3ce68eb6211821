//! The admin UI over plain HTTP: logins, cookies, CSRF, roles, refused forms. (The
//! browser suite, `tests/browser`, clicks through the same pages in Chromium.)

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::{TestApp, cli, create_user, eye_command, spawn_app, spawn_eye_logged};

const PASSWORD: &str = "a long enough secret";

/// A browser without JavaScript: no redirects followed, cookies kept by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser::at(&app.address)
    }

    fn at(base: &str) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        self.keep_cookies(&headers);
        (status, headers, response.text().await.unwrap())
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        self.post_with(path, form, &[]).await
    }

    async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        self.keep_cookies(&headers);
        (status, headers, response.text().await.unwrap())
    }

    /// The CSRF secret the page's forms carry.
    async fn csrf(&mut self, path: &str) -> String {
        let (status, _, html) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        hidden_value(&html, "csrf").unwrap_or_else(|| panic!("no csrf field on {path}"))
    }

    async fn log_in(&mut self, email: &str, password: &str) -> (StatusCode, HeaderMap, String) {
        let csrf = self.csrf("/admin/login").await;
        self.post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
                ("next", "/admin/events"),
            ],
        )
        .await
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set: {headers:?}"))
}

#[tokio::test]
async fn logging_in_sets_a_strict_http_only_cookie_and_wrong_passwords_learn_nothing() {
    let app = spawn_app().await;
    create_user(&app.data_dir, "ops@example.com", "admin", PASSWORD);
    let mut browser = Browser::new(&app);

    // Not logged in: pages send you to the login form and back.
    let (status, headers, _) = browser.get("/admin/events?category=x").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[LOCATION],
        "/admin/login?next=%2Fadmin%2Fevents%3Fcategory%3Dx"
    );

    // The login form needs its own CSRF secret.
    let (status, _, html) = browser
        .post(
            "/admin/login",
            &[("email", "ops@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");

    // A wrong password and an unknown email get the same answer, after a delay.
    let mut answers = Vec::new();
    for (email, password) in [
        ("ops@example.com", "not the password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let started = Instant::now();
        let (status, headers, html) = browser.log_in(email, password).await;
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "failures are slowed down"
        );
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            headers
                .get_all(SET_COOKIE)
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("eye_session="))
        );
        assert!(
            html.contains("The email or the password is not right."),
            "{html}"
        );
        assert!(
            html.contains(&format!("value=\"{email}\"")),
            "the email is kept in the form"
        );
        answers.push(html.replace(email, "EMAIL"));
    }
    assert_eq!(answers[0], answers[1], "nothing tells which emails exist");

    // The right password: a session cookie, HttpOnly, SameSite=Strict, not Secure over
    // plain HTTP, and back to the page asked for.
    let (status, headers, _) = browser.log_in("OPS@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[LOCATION], "/admin/events");
    let cookie = set_cookie(&headers, "eye_session");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    let (status, headers, html) = browser.get("/admin/events").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("ops@example.com"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers["cache-control"], "no-store");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut proxied = Browser::new(&app);
    let csrf = proxied.csrf("/admin/login").await;
    let (status, headers, _) = proxied
        .post_with(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("email", "ops@example.com"),
                ("password", PASSWORD),
            ],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&headers, "eye_session").contains("; Secure"));

    // Only the cookie's hash is stored.
    let secret = browser
        .cookies
        .iter()
        .find(|(n, _)| n == "eye_session")
        .map(|(_, v)| v.clone())
        .unwrap();
    if !crate::helpers::postgres_mode() {
        let store = rusqlite::Connection::open(app.data_dir.join("eye.db")).unwrap();
        let hashes: Vec<Vec<u8>> = store
            .prepare("SELECT hash FROM logins")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(hashes.len(), 2);
        assert!(
            hashes
                .iter()
                .all(|h| h.len() == 32 && *h != secret.as_bytes())
        );
    }

    // Logging out needs the CSRF secret, and ends the login for good.
    let (status, _, _) = browser.post("/admin/logout", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = browser.csrf("/admin").await;
    let (status, headers, _) = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&headers, "eye_session").contains("Max-Age=0"));
    let mut replay = Browser::new(&app);
    replay.cookies.push(("eye_session".into(), secret));
    let (status, headers, _) = replay.get("/admin").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the old cookie no longer works"
    );
    assert!(
        headers[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/admin/login")
    );
}

#[tokio::test]
async fn forms_need_the_csrf_secret_and_analysts_only_read() {
    let app = spawn_app().await;
    create_user(&app.data_dir, "ops@example.com", "admin", PASSWORD);
    create_user(&app.data_dir, "ana@example.com", "analyst", PASSWORD);
    let mut admin = Browser::new(&app);
    assert_eq!(
        admin.log_in("ops@example.com", PASSWORD).await.0,
        StatusCode::SEE_OTHER
    );
    let mut analyst = Browser::new(&app);
    assert_eq!(
        analyst.log_in("ana@example.com", PASSWORD).await.0,
        StatusCode::SEE_OTHER
    );

    // Without the secret, or with another login's, a form is refused.
    let (status, _, html) = admin.post("/admin/apps", &[("name", "shop")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    let analyst_csrf = analyst.csrf("/admin/apps").await;
    let (status, _, _) = admin
        .post("/admin/apps", &[("csrf", &analyst_csrf), ("name", "shop")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Analysts read every page but users, and cannot change anything.
    for page in [
        "/admin",
        "/admin/events",
        "/admin/sessions",
        "/admin/errors",
        "/admin/apps",
        "/admin/event-types",
    ] {
        let (status, _, html) = analyst.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {html}");
        assert!(
            !html.contains("action=\"/admin/apps\""),
            "no admin forms for analysts on {page}"
        );
    }
    assert_eq!(analyst.get("/admin/users").await.0, StatusCode::FORBIDDEN);
    for (path, form) in [
        ("/admin/apps", vec![("name", "shop")]),
        ("/admin/tokens", vec![("scope", "read")]),
        ("/admin/apps/web/revoke", vec![]),
        (
            "/admin/users",
            vec![
                ("email", "x@example.com"),
                ("role", "admin"),
                ("password", PASSWORD),
            ],
        ),
        ("/admin/errors/reprocess", vec![]),
        (
            "/admin/event-types/page%20interaction/pageview",
            vec![("action", "save"), ("mode", "enforce"), ("schema", "{}")],
        ),
    ] {
        let mut fields = vec![("csrf", analyst_csrf.as_str())];
        fields.extend(form);
        let (status, _, html) = analyst.post(path, &fields).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {html}");
    }
    assert!(
        app.client
            .get(app.url("/apps"))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("\"web\""),
        "the application is still there"
    );

    // The admin creates an application; its token is shown once and works.
    let csrf = admin.csrf("/admin/apps").await;
    let (status, _, html) = admin
        .post(
            "/admin/apps",
            &[
                ("csrf", &csrf),
                ("name", "shop"),
                ("origins", "https://shop.example.com"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    let token = html
        .split("id=\"token-value\" readonly value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the new token on the page")
        .to_owned();
    let response = app
        .client
        .post(app.url("/events"))
        .bearer_auth(&token)
        .json(&crate::helpers::event("admin-ui-1", "2026-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let (_, _, listing) = admin.get("/admin/apps").await;
    assert!(!listing.contains(&token), "the token is never shown again");
    let audit = crate::helpers::cli(&app.data_dir, &["audit"]);
    assert!(
        audit.contains("user:ops@example.com") && audit.contains("app.create"),
        "{audit}"
    );
}

#[tokio::test]
async fn refused_forms_come_back_with_their_values_and_the_reason() {
    let app = spawn_app().await;
    create_user(&app.data_dir, "ops@example.com", "admin", PASSWORD);
    let mut admin = Browser::new(&app);
    admin.log_in("ops@example.com", PASSWORD).await;
    let csrf = admin.csrf("/admin/apps").await;

    let (status, _, html) = admin
        .post("/admin/apps", &[("csrf", &csrf), ("name", "web")])
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{html}");
    assert!(html.contains("already exists"), "{html}");
    let (status, _, html) = admin
        .post(
            "/admin/apps",
            &[("csrf", &csrf), ("name", "shop"), ("origins", "not a url")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("value=\"shop\""), "the name is kept: {html}");

    let (status, _, html) = admin
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("email", "new@example.com"),
                ("role", "analyst"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("at least 12") && html.contains("value=\"new@example.com\""),
        "{html}"
    );

    // The schema editor checks the sample, and will not save over a failing one.
    let editor = "/admin/event-types/signup/completed";
    let schema = r#"{"type":"object","required":["plan"],"properties":{"plan":{"type":"string"}}}"#;
    let (status, _, html) = admin
        .post(
            editor,
            &[
                ("csrf", &csrf),
                ("action", "check"),
                ("mode", "enforce"),
                ("schema", schema),
                ("sample", r#"{"plan": 3}"#),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("does not match") && html.contains("data/plan"),
        "{html}"
    );
    let (status, _, html) = admin
        .post(
            editor,
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("mode", "enforce"),
                ("schema", schema),
                ("sample", r#"{"plan": 3}"#),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Not saved"), "{html}");
    let (status, _, html) = admin
        .post(
            editor,
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("mode", "enforce"),
                ("schema", "{\"type\": 5}"),
                ("sample", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("not a valid JSON Schema"), "{html}");
    let (status, headers, _) = admin
        .post(
            editor,
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("mode", "shadow"),
                ("schema", schema),
                ("sample", r#"{"plan": "pro"}"#),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[LOCATION],
        "/admin/event-types/signup/completed?saved=1"
    );
    let stored: serde_json::Value = app
        .client
        .get(app.url("/event-types/signup/completed/schema"))
        .bearer_auth(&app.read_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["mode"], "shadow");
    assert_eq!(stored["schema"]["required"], json!(["plan"]));

    // Indexed fields from the type's page: a bad pointer is refused on the page, a
    // good list is saved and shown with its index's state.
    let indexed = "/admin/event-types/signup/completed/indexed";
    let (status, _, html) = admin
        .post(indexed, &[("csrf", &csrf), ("paths", "plan")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("Indexed fields not saved") && html.contains("JSON Pointer"),
        "{html}"
    );
    let (status, headers, _) = admin
        .post(indexed, &[("csrf", &csrf), ("paths", "/plan\n")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[LOCATION],
        "/admin/event-types/signup/completed?indexed=1"
    );
    let (status, _, html) = admin.get(editor).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<code>/plan</code>"), "{html}");
    let declared: serde_json::Value = app
        .client
        .get(app.url("/event-types/signup/completed/indexed"))
        .bearer_auth(&app.read_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(declared["indexed"][0]["path"], "/plan", "{declared}");
}

#[tokio::test]
async fn an_expired_login_sends_you_back_to_the_login_form() {
    let app = crate::helpers::spawn_app_with(&["--admin-session-minutes", "1"]).await;
    create_user(&app.data_dir, "ops@example.com", "admin", PASSWORD);
    let mut browser = Browser::new(&app);
    let (_, headers, _) = browser.log_in("ops@example.com", PASSWORD).await;
    assert!(set_cookie(&headers, "eye_session").contains("Max-Age=60"));
    assert_eq!(browser.get("/admin").await.0, StatusCode::OK);
    // Age the login in the store rather than wait a minute.
    let sql = "UPDATE logins SET expires_at = created_at";
    if crate::helpers::postgres_mode() {
        let schema = crate::helpers::schema_of(&app);
        crate::helpers::run_sql(format!("SET search_path TO {schema}; {sql}"));
    } else {
        let store = rusqlite::Connection::open(app.data_dir.join("eye.db")).unwrap();
        store.execute(sql, []).unwrap();
    }
    let (status, headers, _) = browser.get("/admin").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/admin/login")
    );
    let (status, _, _) = browser.post("/admin/logout", &[("csrf", "x")]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a form without a login is 401"
    );
}

/// A container is set up without a shell: the first admin comes from settings, its
/// password from a file (`*_FILE`), and a restart with the same settings changes nothing.
#[tokio::test]
async fn a_bootstrap_admin_from_a_password_file_can_log_in_and_is_made_once() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let password_file = temp.path().join("admin_password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let password_path = password_file.display().to_string();
    let env = [
        ("EYE_BOOTSTRAP_ADMIN_EMAIL", "Ops@Example.com"),
        ("EYE_BOOTSTRAP_ADMIN_PASSWORD_FILE", password_path.as_str()),
        ("EYE_LOG", "info"),
    ];
    for start in 0..2 {
        let (mut child, address, log) =
            spawn_eye_logged(&data_dir, &["serve", "--listen", "127.0.0.1:0"], &env);
        let mut browser = Browser::at(&address);
        let (status, headers, _) = browser.log_in("ops@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "start {start}: logged in");
        assert_eq!(headers[LOCATION], "/admin/events");
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = log.lock().unwrap().join("\n");
        assert!(!lines.contains(PASSWORD), "the password is never logged");
        assert_eq!(
            lines.contains("created the bootstrap admin user"),
            start == 0,
            "made at the first start only:\n{lines}"
        );
    }
    let users = cli(&data_dir, &["user", "list"]);
    assert_eq!(users.lines().count(), 1, "{users}");
    assert!(users.contains("ops@example.com\tadmin"), "{users}");

    // The password given both ways is a mistake, named before anything starts.
    let output = eye_command(&data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(env)
        .env("EYE_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "both EYE_BOOTSTRAP_ADMIN_PASSWORD and EYE_BOOTSTRAP_ADMIN_PASSWORD_FILE are set"
        ),
        "{stderr}"
    );
}

/// An admin erases a session from its page and sets an application's retention; an
/// analyst sees neither form and is refused both.
#[tokio::test]
async fn an_admin_erases_a_session_and_sets_a_retention_from_the_pages() {
    let app = spawn_app().await;
    create_user(&app.data_dir, "ops@example.com", "admin", PASSWORD);
    create_user(&app.data_dir, "ana@example.com", "analyst", PASSWORD);
    let id = crate::helpers::verdict_id(
        &app.post_batch(&[crate::helpers::event("person", "2026-01-01T00:00:00Z")])
            .await[0],
    );
    app.wait_for_event("person", &id, crate::helpers::WAIT)
        .await;
    let mut admin = Browser::new(&app);
    admin.log_in("ops@example.com", PASSWORD).await;
    let mut analyst = Browser::new(&app);
    analyst.log_in("ana@example.com", PASSWORD).await;

    let (_, _, page) = analyst.get("/admin/sessions/person").await;
    assert!(
        !page.contains("erase-session"),
        "no erase button for analysts"
    );
    let csrf = analyst.csrf("/admin/sessions/person").await;
    let (status, _, _) = analyst
        .post("/admin/sessions/person/erase", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, _, page) = admin.get("/admin/sessions/person").await;
    assert!(
        page.contains("erase-session") && page.contains("data-confirm"),
        "{page}"
    );
    let csrf = admin.csrf("/admin/sessions/person").await;
    let (status, headers, _) = admin
        .post("/admin/sessions/person/erase", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, listing) = admin.get(headers[LOCATION].to_str().unwrap()).await;
    assert!(
        listing.contains("Erased session person: 1 events"),
        "{listing}"
    );
    assert_eq!(
        admin.get("/admin/sessions/person").await.0,
        StatusCode::NOT_FOUND
    );

    let csrf = admin.csrf("/admin/apps").await;
    let (status, _, _) = admin
        .post(
            "/admin/apps/web/retention",
            &[("csrf", &csrf), ("retention", "30d")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, apps) = admin.get("/admin/apps").await;
    assert!(apps.contains("value=\"30d\""), "{apps}");
    let (status, _, page) = admin
        .post(
            "/admin/apps/web/retention",
            &[("csrf", &csrf), ("retention", "30y")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("with a unit"), "{page}");
    let (status, _, _) = admin
        .post(
            "/admin/apps/web/retention",
            &[("csrf", &csrf), ("retention", "")],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "empty: back to the global retention"
    );
    let (_, _, apps) = admin.get("/admin/apps").await;
    assert!(!apps.contains("value=\"30d\""), "cleared");
}

/// The dashboard's counts come from the store: a restart keeps them, and they are the
/// numbers `/stats` and `/errors/summary` give for the same range.
#[tokio::test]
async fn the_dashboard_counts_from_the_store_across_a_restart_as_stats_does() {
    let mut app = spawn_app().await;
    create_user(&app.data_dir, "ops@example.com", "admin", PASSWORD);
    let now = eye_core::Timestamp::now().to_string();
    let ahead =
        eye_core::Timestamp::from_micros(eye_core::Timestamp::now().as_micros() + 3_600_000_000)
            .to_string();
    let batch = [
        crate::helpers::event("dash-a", &now),
        crate::helpers::event("dash-a", &now),
        crate::helpers::event("dash-b", &now),
        // An hour ahead: the worker refuses it (future_timestamp), the error store keeps it.
        crate::helpers::event("dash-c", &ahead),
    ];
    let verdicts = app.post_batch(&batch).await;
    app.wait_for_event(
        "dash-b",
        &crate::helpers::verdict_id(&verdicts[2]),
        crate::helpers::WAIT,
    )
    .await;
    app.wait_for_errors(1, crate::helpers::WAIT).await;

    assert!(app.terminate(Duration::from_secs(10)), "a clean stop");
    app.start();
    let mut admin = Browser::new(&app);
    admin.log_in("ops@example.com", PASSWORD).await;
    let (status, _, body) = admin.get("/admin/dashboard.json?range=24h").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let figures: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(figures["totals"]["stored"], 3, "{figures}");
    assert_eq!(figures["totals"]["refused"], 1, "{figures}");
    assert_eq!(figures["totals"]["ingested"], 4, "{figures}");
    assert_eq!(figures["t"].as_array().unwrap().len(), 24, "hourly buckets");
    assert_eq!(
        figures["by_app"],
        json!([{"app": "web", "stored": 3, "refused": 1}])
    );
    // The same range through the API.
    let (from, to) = (
        figures["from"].as_str().unwrap(),
        figures["to"].as_str().unwrap(),
    );
    let stats = app
        .get_json(&format!("/stats?from={}&to={}", encode(from), encode(to)))
        .await;
    assert_eq!(stats["total"], figures["totals"]["stored"], "{stats}");
    let summary = app
        .get_json(&format!(
            "/errors/summary?from={}&to={}",
            encode(from),
            encode(to)
        ))
        .await;
    assert_eq!(summary["total"], figures["totals"]["refused"], "{summary}");

    let (status, _, body) = admin.get("/admin/dashboard.json?range=1y").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("range"), "{body}");
}
