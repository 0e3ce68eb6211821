//! `compose.yaml`: the image running `eye serve` with its data in a named volume, used as
//! the README tells a user to, then stopped, restarted, and stopped under load.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::docker::{Compose, build_images, docker_available, free_port, one_at_a_time, repo_root};
use crate::helpers::{event_ids, wait_until};

/// The event the README's first session sends with curl, read from the README itself.
fn readme_example() -> Value {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme
        .find("-X POST")
        .and_then(|at| readme[at..].find("-d '").map(|d| at + d + 4))
        .expect("the README's curl POST with -d '...'");
    let end = start + readme[start..].find('\'').expect("the end of the -d body");
    serde_json::from_str(&readme[start..end]).expect("the README's example is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_single_node_stack_keeps_every_event_across_restarts_and_a_sigterm_under_load() {
    if !docker_available() {
        return;
    }
    let _serial = one_at_a_time().await;
    build_images();
    let port = free_port();
    let compose = Compose::new("compose.yaml", "single", &[("EYE_PORT", port.to_string())]);
    compose.ok(&["up", "-d"]);
    let address = format!("http://127.0.0.1:{port}");
    compose.wait_healthy("eye", Duration::from_secs(90));

    // The README's first session, with the CLI inside the container.
    let token = compose.eye("eye", &["app", "create", "web"]);
    let read = compose.eye("eye", &["token", "create", "--scope", "read"]);
    assert!(
        !token.contains('\n') && token.len() > 20,
        "a token alone: {token:?}"
    );
    let client = reqwest::Client::new();
    let example = readme_example();
    let session = example["session_id"].as_str().unwrap().to_owned();
    let answer = client
        .post(format!("{address}/events"))
        .bearer_auth(&token)
        .json(&example)
        .send()
        .await
        .expect("POST /events");
    assert_eq!(answer.status(), 202);
    let answer: Value = answer.json().await.unwrap();
    let id = answer["results"][0]["id"].as_str().unwrap().to_owned();
    let stored = |client: reqwest::Client, read: String, query: String| async move {
        event_ids(&client, &format!("http://127.0.0.1:{port}"), &read, &query).await
    };
    let query = format!("session_id={session}");
    let ids = wait_until(Duration::from_secs(30), "the README's event stored", || {
        let stored = stored(client.clone(), read.clone(), query.clone());
        async move { stored.await.filter(|ids| !ids.is_empty()) }
    })
    .await;
    assert_eq!(ids, vec![id.clone()]);

    // Stopping and starting the stack keeps the event (the volume stays).
    compose.ok(&["stop"]);
    compose.ok(&["up", "-d"]);
    compose.wait_healthy("eye", Duration::from_secs(90));
    let ids = wait_until(Duration::from_secs(30), "the event after a restart", || {
        stored(client.clone(), read.clone(), query.clone())
    })
    .await;
    assert_eq!(ids, vec![id], "the event survives a restart, once");

    // SIGTERM (`docker stop`) while clients send: every 202 is stored, once.
    let session = "sigterm-under-load";
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for sender in 0..16 {
        let (client, token, stop) = (client.clone(), token.clone(), stop.clone());
        let url = format!("{address}/events");
        senders.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut sent = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            for n in 0.. {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let client_id = format!("{sender}-{n}");
                let event = json!({
                    "id": client_id, "session_id": session,
                    "category": "page interaction", "name": "pageview",
                    "data": {"host": "example.com", "path": "/"},
                    "timestamp": "2026-01-01T00:00:00Z",
                });
                let Ok(response) = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&event)
                    .send()
                    .await
                else {
                    // Refused while the server stops: not accepted.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let status = response.status();
                let Ok(body) = response.json::<Value>().await else {
                    continue;
                };
                let Some(id) = body["results"][0]["id"].as_str() else {
                    continue;
                };
                sent.push(id.to_owned());
                if status == 202 {
                    accepted.push(id.to_owned());
                }
            }
            (accepted, sent)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    // The senders go on, on the runtime's other threads, while this one waits.
    tokio::task::block_in_place(|| compose.ok(&["stop", "eye"]));
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut accepted, mut known) = (HashSet::new(), HashSet::new());
    for sender in senders {
        let (yes, all) = sender.await.unwrap();
        accepted.extend(yes);
        known.extend(all);
    }
    let exit_code = compose.inspect("eye", "{{.State.ExitCode}}");
    eprintln!(
        "SIGTERM under load: {} events accepted, stopped in {took:.1?}, exit code {exit_code}",
        accepted.len()
    );
    assert!(
        accepted.len() > 100,
        "the load ran: {} accepted",
        accepted.len()
    );
    assert_eq!(
        exit_code, "0",
        "eye stopped by itself, not killed at the grace period's end"
    );
    assert!(
        took < Duration::from_secs(25),
        "stopped within the grace period: {took:?}"
    );

    compose.ok(&["start", "eye"]);
    compose.wait_healthy("eye", Duration::from_secs(90));
    let query = format!("session_id={session}");
    let ids = wait_until(
        Duration::from_secs(60),
        "every accepted event stored",
        || {
            let stored = stored(client.clone(), read.clone(), query.clone());
            let accepted = &accepted;
            async move {
                stored
                    .await
                    .filter(|ids| accepted.iter().all(|id| ids.contains(id)))
            }
        },
    )
    .await;
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event is stored twice");
    assert!(
        ids.iter().all(|id| known.contains(id)),
        "only events that were sent are stored"
    );
}
