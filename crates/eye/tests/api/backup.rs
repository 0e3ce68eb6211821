//! `eye backup` while `eye serve` ingests, and `eye restore` into an empty data
//! directory: every event acknowledged before the backup began is there after the
//! restore, once. Bad targets and damaged backups are refused by name.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{eye_command, postgres_mode, spawn_app, wait_until};

/// Runs `eye ARGS` on `data_dir`; its success and its stderr.
fn eye(data_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = eye_command(data_dir).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_backup_under_load_restores_every_event_acknowledged_before_it_once() {
    let mut app = spawn_app().await;
    if postgres_mode() {
        let target = app.data_dir.with_file_name("backup");
        let (ok, stderr) = eye(&app.data_dir, &["backup", target.to_str().unwrap()]);
        assert!(!ok && stderr.contains("pg_dump"), "{stderr}");
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 0..4 {
        let (client, url, token, stop) = (
            app.client.clone(),
            app.url("/events"),
            app.ingest_token.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            // (event id, when its 202 arrived)
            let mut accepted = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let batch: Vec<Value> = (0..10)
                    .map(|i| {
                        json!({"id": format!("{sender}-{n}-{i}"), "session_id": format!("s{sender}"),
                               "category": "page interaction", "name": "pageview",
                               "data": {"host": "h", "path": "/"}, "timestamp": "2026-01-01T00:00:00Z"})
                    })
                    .collect();
                let Ok(response) = client.post(&url).bearer_auth(&token).json(&batch).send().await
                else {
                    continue;
                };
                if response.status() != 202 {
                    continue;
                }
                let at = Instant::now();
                let body: Value = response.json().await.unwrap();
                for result in body["results"].as_array().unwrap() {
                    accepted.push((result["id"].as_str().unwrap().to_owned(), at));
                }
            }
            accepted
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let target = app.data_dir.with_file_name("backup");
    let began = Instant::now();
    let data_dir = app.data_dir.clone();
    let target_text = target.to_str().unwrap().to_owned();
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || eye(&data_dir, &["backup", &target_text]))
            .await
            .unwrap();
    assert!(ok, "eye backup failed: {stderr}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut before = HashSet::new();
    let mut after = 0;
    for sender in senders {
        for (id, at) in sender.await.unwrap() {
            if at < began {
                before.insert(id);
            } else {
                after += 1;
            }
        }
    }
    assert!(
        before.len() > 100 && after > 0,
        "{} before, {after} after",
        before.len()
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(target.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["format"], 1, "{manifest}");
    assert_eq!(manifest["store"]["sha256"].as_str().map(str::len), Some(64));
    app.kill();

    // Restore into a new, empty data directory and serve from it.
    let restored = app.data_dir.with_file_name("restored");
    let (ok, stderr) = eye(&restored, &["restore", target.to_str().unwrap()]);
    assert!(ok, "eye restore failed: {stderr}");
    app.data_dir = restored;
    app.start();
    let stored = wait_until(
        Duration::from_secs(30),
        "every event acknowledged before the backup",
        || async {
            let mut ids = Vec::new();
            for sender in 0..4 {
                ids.extend(
                    app.all_events(&format!("session_id=s{sender}"))
                        .await
                        .into_iter()
                        .map(|e| e["id"].as_str().unwrap().to_owned()),
                );
            }
            let have: HashSet<&String> = ids.iter().collect();
            before.iter().all(|id| have.contains(id)).then_some(ids)
        },
    )
    .await;
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "each event once");
    eprintln!(
        "backup under load: {} events acknowledged before it, {} stored after the restore",
        before.len(),
        stored.len()
    );
}

#[tokio::test]
async fn bad_backup_targets_and_damaged_backups_are_refused_by_name() {
    let app = spawn_app().await;
    if postgres_mode() {
        return;
    }
    let data = &app.data_dir;
    let exists = data.with_file_name("exists");
    std::fs::create_dir_all(&exists).unwrap();
    let (ok, stderr) = eye(data, &["backup", exists.to_str().unwrap()]);
    assert!(!ok && stderr.contains("exists"), "{stderr}");
    let (ok, stderr) = eye(data, &["backup", "/proc/eye-backup"]);
    assert!(!ok && stderr.contains("writable"), "{stderr}");

    let good = data.with_file_name("good");
    let (ok, stderr) = eye(data, &["backup", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    // Into a directory that holds data: refused.
    let (ok, stderr) = eye(data, &["restore", good.to_str().unwrap()]);
    assert!(!ok && stderr.contains("not empty"), "{stderr}");

    let copy = |name: &str| {
        let dir = data.with_file_name(name);
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["manifest.json", "eye.db", "queue.db"] {
            std::fs::copy(good.join(file), dir.join(file)).unwrap();
        }
        dir
    };
    let empty = |name: &str| data.with_file_name(name);
    let incomplete = copy("incomplete");
    std::fs::remove_file(incomplete.join("queue.db")).unwrap();
    let (ok, stderr) = eye(&empty("into-1"), &["restore", incomplete.to_str().unwrap()]);
    assert!(!ok && stderr.contains("lacks queue.db"), "{stderr}");
    let damaged = copy("damaged");
    let mut bytes = std::fs::read(damaged.join("eye.db")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(damaged.join("eye.db"), bytes).unwrap();
    let (ok, stderr) = eye(&empty("into-2"), &["restore", damaged.to_str().unwrap()]);
    assert!(!ok && stderr.contains("checksum"), "{stderr}");
    let newer = copy("newer");
    let manifest = std::fs::read_to_string(newer.join("manifest.json")).unwrap();
    let mut manifest: Value = serde_json::from_str(&manifest).unwrap();
    manifest["store"]["schema_version"] = json!(999);
    std::fs::write(newer.join("manifest.json"), manifest.to_string()).unwrap();
    let (ok, stderr) = eye(&empty("into-3"), &["restore", newer.to_str().unwrap()]);
    assert!(!ok && stderr.contains("newer eye"), "{stderr}");
    let (ok, stderr) = eye(
        &empty("into-4"),
        &["restore", empty("nowhere").to_str().unwrap()],
    );
    assert!(!ok && stderr.contains("manifest.json"), "{stderr}");
    // Nothing was written into the refused targets.
    for name in ["into-1", "into-2", "into-3", "into-4"] {
        assert!(!empty(name).exists(), "{name} was not created");
    }
    let (ok, stderr) = eye(&empty("into-5"), &["restore", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
}
