//! Applications and tokens over the management API and the CLI: secrets shown once,
//! revocation biting within a second in a running server, and every change in the
//! audit log with who made it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, cli, event, spawn_app, try_create_user as create_user, wait_until};

/// Waits until `token` is refused by `GET /events`, and says how long that took.
async fn refused_within(app: &TestApp, token: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    wait_until(limit, "the revoked token to be refused", || async {
        let status = app.get_as("/events?limit=1", token).await.status();
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn applications_and_tokens_are_managed_over_http_and_the_cli_and_audited() {
    let app = spawn_app().await;
    let admin = app.admin_token.clone();
    let send = |method: Method, path: &'static str, body: Option<Value>| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let response = app.send_as(method, path, &admin, body.as_ref()).await;
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // An application made over HTTP ingests at once with the token in the answer.
    let (status, created) = send(Method::POST, "/apps", Some(json!({"name": "shop"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let shop_token = created["token"].as_str().unwrap().to_owned();
    let accepted = app
        .post_raw(
            event("m", "2023-01-01T00:00:00Z").to_string().into_bytes(),
            "application/json",
            Some(&shop_token),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);

    // Bad requests get precise answers.
    let (status, body) = send(Method::POST, "/apps", Some(json!({"name": "shop"}))).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("conflict"))
    );
    for name in [" ", "a\u{0}b", "tab\there"] {
        let (status, _) = send(Method::POST, "/apps", Some(json!({ "name": name }))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}");
    }
    let (status, _) = send(
        Method::POST,
        "/tokens",
        Some(json!({"scope": "read", "label": "a\u{0}"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = send(Method::POST, "/tokens", Some(json!({"scope": "ingest"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = send(Method::POST, "/tokens", Some(json!({"scope": "root"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(Method::POST, "/apps/nowhere/revoke", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(Method::POST, "/tokens/999999/revoke", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let as_reader = app.get_as("/apps", &app.read_token).await;
    assert_eq!(
        as_reader.status(),
        StatusCode::FORBIDDEN,
        "admin scope only"
    );

    // A read token made over HTTP, listed without its secret, revoked over HTTP.
    let (status, created) = send(
        Method::POST,
        "/tokens",
        Some(json!({"scope": "read", "label": "analyst"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (reader_id, reader) = (
        created["id"].as_i64().unwrap(),
        created["token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        app.get_as("/events?limit=1", &reader).await.status(),
        StatusCode::OK
    );
    let (_, listed) = send(Method::GET, "/tokens", None).await;
    let text = listed.to_string();
    assert!(
        !text.contains(&reader) && !text.contains(&shop_token),
        "no secrets listed"
    );
    let entry = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == reader_id)
        .expect("the new token is listed")
        .clone();
    assert_eq!(
        (entry["scope"].clone(), entry["label"].clone()),
        (json!("read"), json!("analyst"))
    );
    let path = format!("/tokens/{reader_id}/revoke");
    let revoked = app.send_as(Method::POST, &path, &admin, None).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    // This process forgets its cached grants at once; others within a second.
    let took = refused_within(&app, &reader, Duration::from_millis(200)).await;
    eprintln!("a token revoked over HTTP was refused {took:?} later");

    // The CLI lists tokens and revokes the shop's ingest token; the server notices.
    let listing = cli(&app.data_dir, &["token", "list"]);
    let shop_id = listing
        .lines()
        .find(|l| l.split('\t').nth(2) == Some("shop"))
        .and_then(|l| l.split('\t').next())
        .expect("the shop's token in `eye token list`")
        .to_owned();
    cli(&app.data_dir, &["token", "revoke", &shop_id]);
    let started = Instant::now();
    wait_until(
        Duration::from_millis(1500),
        "the shop's token refused",
        || async {
            let response = app
                .post_raw(
                    event("m", "2023-01-01T00:00:00Z").to_string().into_bytes(),
                    "application/json",
                    Some(&shop_token),
                )
                .await;
            (response.status() == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    eprintln!(
        "a token revoked by the CLI was refused {:?} later",
        started.elapsed()
    );

    let (status, _) = send(Method::POST, "/apps/shop/revoke", None).await;
    assert_eq!(status, StatusCode::OK);

    // Every change is in the audit log, newest first, with who made it.
    let (status, log) = send(Method::GET, "/audit", None).await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<(String, String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("app.revoke", "app:shop".to_owned(), "token:"),
        ("token.revoke", format!("token:{shop_id}"), "cli:"),
        ("token.revoke", format!("token:{reader_id}"), "token:"),
        ("token.create", format!("token:{reader_id}"), "token:"),
        ("app.create", "app:shop".to_owned(), "token:"),
    ];
    let newest: Vec<_> = actions.iter().take(expected.len()).collect();
    for ((action, target, actor), (want_action, want_target, want_actor)) in
        newest.iter().zip(expected.iter())
    {
        assert_eq!(
            (action.as_str(), target),
            (*want_action, want_target),
            "{actions:?}"
        );
        assert!(actor.starts_with(want_actor), "{actor} for {action}");
    }
    assert!(
        !log.to_string().contains(&shop_token),
        "no secret in the audit log"
    );
    let printed = cli(&app.data_dir, &["audit", "--limit", "1"]);
    assert!(
        printed.contains("app.revoke") && printed.contains("app:shop"),
        "{printed}"
    );
}

#[tokio::test]
async fn browsers_may_send_events_only_from_the_origins_their_application_allows() {
    let app = spawn_app().await;
    let shop = cli(
        &app.data_dir,
        &[
            "app",
            "create",
            "shop",
            "--allowed-origin",
            "https://Shop.Example/",
        ],
    )
    .trim()
    .to_owned();
    let body = event("cors", "2023-01-01T00:00:00Z").to_string();
    let post = |token: String, origin: &'static str| {
        app.client
            .post(app.url("/events"))
            .bearer_auth(token)
            .header("Origin", origin)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
    };
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/events"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };

    // The allowed origin: a preflight and the POST, both with the CORS headers.
    let answer = preflight("https://shop.example").await.unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert!(
        answer.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let answer = post(shop.clone(), "https://shop.example").await.unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://shop.example"
    );

    // Another origin: refused at the preflight and at the POST, without CORS headers.
    let answer = preflight("https://evil.example").await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let answer = post(shop.clone(), "https://evil.example").await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["error"]["code"], "origin_not_allowed");

    // The web app allows no origin: a browser page of the shop cannot use its token.
    let answer = post(app.ingest_token.clone(), "https://shop.example")
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    // Servers send no Origin and are not concerned.
    let answer = app
        .post_raw(
            body.clone().into_bytes(),
            "application/json",
            Some(&app.ingest_token),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);

    // Origins changed over HTTP apply at once in this process.
    let put = app
        .send_as(
            Method::PUT,
            "/apps/web/origins",
            &app.admin_token,
            Some(&json!({"allowed_origins": ["*"]})),
        )
        .await;
    assert_eq!(put.status(), StatusCode::OK);
    let answer = post(app.ingest_token.clone(), "https://anywhere.example")
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let bad = app
        .send_as(
            Method::PUT,
            "/apps/web/origins",
            &app.admin_token,
            Some(&json!({"allowed_origins": ["shop.example/path"]})),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let listing = cli(&app.data_dir, &["app", "list"]);
    assert!(listing.contains("https://shop.example"), "{listing}");
}

/// Runs `eye user create` with `password` on stdin; returns (success, stderr).
#[tokio::test]
async fn users_are_created_with_argon2id_hashes_and_listed_without_them() {
    let app = spawn_app().await;
    let password = "a long enough secret";
    let (ok, stderr) = create_user(&app.data_dir, "Ops@Example.com", "admin", password);
    assert!(ok, "{stderr}");
    let (ok, stderr) = create_user(&app.data_dir, "ops@example.com", "analyst", password);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    let (ok, stderr) = create_user(&app.data_dir, "ana@example.com", "analyst", "tiny-pw");
    assert!(!ok && stderr.contains("at least 12"), "{stderr}");
    let (ok, stderr) = create_user(&app.data_dir, "not-an-email", "analyst", password);
    assert!(!ok && stderr.contains("email"), "{stderr}");
    let (ok, _) = create_user(&app.data_dir, "ana@example.com", "analyst", password);
    assert!(ok);

    let listing = cli(&app.data_dir, &["user", "list"]);
    let rows: Vec<Vec<&str>> = listing.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{listing}");
    assert_eq!((rows[0][1], rows[0][2]), ("ana@example.com", "analyst"));
    assert_eq!((rows[1][1], rows[1][2]), ("ops@example.com", "admin"));
    assert!(!listing.contains("argon2"), "no hash in the listing");
    let audit = cli(&app.data_dir, &["audit"]);
    assert!(audit.contains("user.create") && audit.contains("user:ops@example.com"));

    // On disk only an Argon2id hash (read straight from the embedded store's file).
    if !crate::helpers::postgres_mode() {
        let store = rusqlite::Connection::open(app.data_dir.join("eye.db")).unwrap();
        let hash: String = store
            .query_row(
                "SELECT password_hash FROM users WHERE email = 'ops@example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(password));
    }
}
