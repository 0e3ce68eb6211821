use reqwest::StatusCode;

use crate::helpers::{cli, event, eye_command, spawn_app, spawn_eye_logged, wait_until};

#[tokio::test]
async fn tokens_created_while_the_server_runs_work_at_once_and_revocation_bites() {
    let app = spawn_app().await;
    let output = eye_command(&app.data_dir)
        .args(["app", "create", "shop"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "the token alone on stdout: {stdout:?}"
    );
    let token = stdout.trim();
    assert!(
        token.starts_with("eye_i_") && token.len() >= 6 + 32,
        "at least 128 random bits"
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(token),
        "the token is not echoed to stderr"
    );

    let body = event("t", "2023-01-01T00:00:00Z").to_string().into_bytes();
    let response = app
        .post_raw(body.clone(), "application/json", Some(token))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "a new token is accepted at once"
    );

    let duplicate = eye_command(&app.data_dir)
        .args(["app", "create", "shop"])
        .output()
        .unwrap();
    assert!(!duplicate.status.success());
    assert!(duplicate.stdout.is_empty());

    let admin = cli(&app.data_dir, &["token", "create", "--scope", "admin"]);
    assert!(admin.trim().starts_with("eye_a_"));
    let response = app.get_as("/errors", admin.trim()).await;
    assert_eq!(response.status(), StatusCode::OK, "admin implies read");

    cli(&app.data_dir, &["app", "revoke", "shop"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let response = app
            .post_raw(body.clone(), "application/json", Some(token))
            .await;
        if response.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revocation did not take effect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let listed = cli(&app.data_dir, &["app", "list"]);
    assert!(
        listed.contains("shop") && listed.contains("revoked"),
        "{listed}"
    );
}

#[test]
fn token_secrets_are_stored_only_as_hashes() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let token = cli(&data_dir, &["app", "create", "web"]).trim().to_owned();
    let database = std::fs::read(data_dir.join("eye.db")).unwrap();
    let wal = std::fs::read(data_dir.join("eye.db-wal")).unwrap_or_default();
    let secret = &token.as_bytes()[6..];
    for bytes in [&database, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "the plaintext token is on disk"
        );
    }
}

/// `eye serve` at debug level in `format`, its log kept line by line.
struct LoggedServer {
    _temp: tempfile::TempDir,
    _server: crate::nats::Process,
    address: String,
    token: String,
    log: crate::helpers::Log,
}

impl LoggedServer {
    fn start(format: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path().join("data");
        let token = cli(&data, &["app", "create", "web"]).trim().to_owned();
        let (server, address, log) = spawn_eye_logged(
            &data,
            &["serve", "--listen", "127.0.0.1:0"],
            &[("EYE_LOG", "debug"), ("EYE_LOG_FORMAT", format)],
        );
        LoggedServer {
            _temp: temp,
            _server: crate::nats::Process(server),
            address,
            token,
            log,
        }
    }

    /// Posts one event with `token` and `request_id`.
    async fn post(&self, token: &str, request_id: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/events", self.address))
            .bearer_auth(token)
            .header("X-Request-Id", request_id)
            .json(&event("logs", "2023-01-01T00:00:00Z"))
            .send()
            .await
            .unwrap()
    }

    /// Every log line so far, once the line of the request `request_id` queuing its
    /// events is among them.
    async fn lines_after_queuing(&self, request_id: &str) -> Vec<String> {
        wait_until(crate::helpers::WAIT, "the request's log line", || async {
            let lines = self.log.lock().unwrap().clone();
            lines
                .iter()
                .any(|l| l.contains("events queued") && l.contains(request_id))
                .then_some(lines)
        })
        .await
    }
}

#[tokio::test]
async fn no_secret_reaches_the_logs_and_json_logs_carry_the_request_id() {
    let server = LoggedServer::start("json");
    let token = server.token.clone();
    let id = "req-secret-test";
    assert_eq!(server.post(&token, id).await.status(), StatusCode::ACCEPTED);
    // A wrong secret that looks real, and garbage.
    let forged = format!("{}x", &token[..token.len() - 1]);
    for bad in [forged.as_str(), "eye_i_not-a-token"] {
        assert_eq!(
            server.post(bad, id).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // The request's debug line is there, as JSON, in the request's span.
    let lines = server.lines_after_queuing(id).await;
    for line in &lines {
        assert!(!line.contains(&token), "a token in the log: {line}");
        assert!(
            !line.contains(&forged),
            "a presented secret in the log: {line}"
        );
        if !line.starts_with("eye: ") {
            let parsed: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            assert!(parsed["level"].is_string(), "{line}");
        }
    }
}

/// A log read from a pipe (a file, journald, a collector) holds no terminal colour
/// codes; colours are for a person at a terminal only.
#[tokio::test]
async fn human_logs_to_a_pipe_have_no_colour_codes() {
    let server = LoggedServer::start("human");
    let id = "req-colour-test";
    assert_eq!(
        server.post(&server.token, id).await.status(),
        StatusCode::ACCEPTED
    );
    for line in &server.lines_after_queuing(id).await {
        assert!(
            !line.contains('\u{1b}'),
            "a colour code in the log: {line:?}"
        );
    }
}
