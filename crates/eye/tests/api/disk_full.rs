//! A full disk, made for real: the data directory lives on a small tmpfs the test
//! mounts, filled until ingest fails, then given room again. Needs root (mount); where
//! mounting is not allowed the test says so and does nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{cli, spawn_eye, typed_event, wait_until};
use crate::nats::Process;

/// A size-limited tmpfs, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallDisk(at.to_owned())),
            other => {
                crate::helpers::skipped(format_args!(
                    "cannot mount a small tmpfs here ({other:?})"
                ));
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_loses_nothing_and_recovers() {
    if crate::helpers::postgres_mode() {
        return; // the disk that fills is the embedded store's and queue's
    }
    let temp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&temp.path().join("disk"), "24m") else {
        return;
    };
    let data = disk.0.join("data");
    let ingest = cli(&data, &["app", "create", "web"]).trim().to_owned();
    let read = cli(&data, &["token", "create", "--scope", "read"])
        .trim()
        .to_owned();
    let (server, address) = spawn_eye(&data, &["serve", "--listen", "127.0.0.1:0"]);
    let _server = Process(server);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let post = |request: usize| {
        let batch: Vec<Value> = (0..50)
            .map(|i| {
                typed_event(
                    "disk",
                    "page interaction",
                    "pageview",
                    json!({"host": "h", "path": format!("/{request}/{i}"), "pad": "x".repeat(8_000)}),
                )
            })
            .collect();
        let request = http
            .post(format!("{address}/events"))
            .bearer_auth(&ingest)
            .json(&batch);
        async move {
            let response = request.send().await.expect("an answer, never a hang");
            let status = response.status();
            let body: Value = response.json().await.expect("a JSON answer");
            (status, body)
        }
    };

    // Fill the disk: the queue and the store share it.
    let mut accepted: HashSet<String> = HashSet::new();
    let mut request = 0;
    let refusal = loop {
        request += 1;
        assert!(request < 2_000, "the disk never filled");
        let (status, body) = post(request).await;
        match status {
            StatusCode::ACCEPTED => {
                for result in body["results"].as_array().unwrap() {
                    accepted.insert(result["id"].as_str().unwrap().to_owned());
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => break body,
            other => panic!("a full disk must answer 503, not {other}: {body}"),
        }
    };
    assert_eq!(refusal["error"]["code"], "queue_unavailable", "{refusal}");
    eprintln!(
        "disk full after {} accepted events ({request} requests)",
        accepted.len()
    );

    // Give room back: the store and the queue free pages as the worker moves events;
    // here a bigger disk is simulated by remounting with more space.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(&disk.0)
        .status()
        .unwrap();
    assert!(grown.success(), "remounting the tmpfs larger");
    let started = Instant::now();
    let body = wait_until(Duration::from_secs(30), "ingest to resume", || async {
        let (status, body) = post(0).await;
        (status == StatusCode::ACCEPTED).then_some(body)
    })
    .await;
    for result in body["results"].as_array().unwrap() {
        accepted.insert(result["id"].as_str().unwrap().to_owned());
    }
    eprintln!(
        "ingest resumed {:?} after space returned",
        started.elapsed()
    );

    // Everything answered 202, before and after, is stored exactly once.
    let stored = wait_until(
        Duration::from_secs(60),
        "every accepted event stored",
        || {
            let (http, address, read) = (&http, &address, &read);
            let accepted = &accepted;
            async move {
                let ids = crate::helpers::event_ids(http, address, read, "session_id=disk").await?;
                let set: HashSet<&String> = ids.iter().collect();
                accepted.iter().all(|id| set.contains(id)).then_some(ids)
            }
        },
    )
    .await;
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no event stored twice");
    let ready = http.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}
