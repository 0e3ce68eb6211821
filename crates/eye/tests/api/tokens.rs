use reqwest::StatusCode;

use crate::helpers::{cli, event, eye_command, spawn_app};

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
