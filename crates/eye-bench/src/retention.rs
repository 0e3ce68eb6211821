//! `eye-bench retention`: what retention costs.
//!
//! 1. **Space** (`--cycles`): the embedded store alone, on a clock of its own. Each cycle
//!    writes a slice of events, then expires the slices older than the window, so the
//!    live data stays the same size; the file's size per cycle shows whether the pages
//!    retention frees are reused (it stops growing) or not.
//! 2. **Ingest while deleting**: a store filled with `--expired` events received two
//!    days ago, served with a one-day retention, so the first retention run deletes
//!    them all, while single events arrive at half of the saturation rate measured just
//!    before on the same store (the rate it stores at under a closed loop). Prints the deletion's duration and rate, and the 202
//!    latency during it beside the same load without retention.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eye_core::{IncomingEvent, Timestamp, ids};
use eye_store::{Access, Cutoffs, EventWrites, Lifecycle, Processed, SqliteStore};
use serde_json::value::RawValue;

use crate::load::{self, LoadSpec, Pace};
use crate::server::{ServerProcess, scrape};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Expired events the store holds when the retention run starts.
    #[arg(long, default_value_t = 1_000_000)]
    pub expired: usize,
    /// Seconds of load of the comparison without retention (the load during the
    /// deletion lasts as long as the deletion).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Retention cycles of the space measurement.
    #[arg(long, default_value_t = 12)]
    pub cycles: usize,
    /// Events written per cycle of the space measurement.
    #[arg(long, default_value_t = 100_000)]
    pub per_cycle: usize,
    /// Cycles' worth of events kept live in the space measurement.
    #[arg(long, default_value_t = 3)]
    pub window: usize,
    /// Only the space measurement, or only the ingest one.
    #[arg(long, value_enum)]
    pub only: Option<Part>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Space,
    Ingest,
}

const SESSIONS: u64 = 10_000;
const APP: i64 = 1;

/// `count` events from `first` on, all received at `received_at`.
fn events(first: usize, count: usize, received_at: i64) -> Vec<Processed> {
    let start = Timestamp::parse("2026-01-01T00:00:00Z")
        .expect("a valid time")
        .as_micros();
    (first..first + count)
        .map(|i| {
            let session = (i as u64).wrapping_mul(2_654_435_761) % SESSIONS;
            let timestamp = Timestamp::from_micros(start + i as i64);
            let raw = format!(
                r#"{{"session_id":"bench-session-{session}","category":"page interaction","name":"pageview","data":{{"host":"www.example.com","path":"/page/{}"}},"timestamp":"{timestamp}"}}"#,
                i % 100
            );
            let raw = RawValue::from_string(raw).expect("valid JSON");
            Processed::Event {
                id: ids::new_event_id(),
                app_id: APP,
                received_at,
                event: IncomingEvent::parse(&raw).expect("a valid event"),
                schema_version: None,
                warning: None,
            }
        })
        .collect()
}

fn megabytes(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}

async fn space(options: &Options) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("eye-bench-space-")
        .tempdir()?;
    let store = SqliteStore::open(dir.path())?;
    store.create_app("bench").await?;
    let file = dir.path().join("eye.db");
    println!(
        "space: {} events a cycle, the last {} cycles kept ({} events live)",
        options.per_cycle,
        options.window,
        options.per_cycle * options.window
    );
    println!("| cycle | written | expired | expired events/s | eye.db MB after a checkpoint |");
    println!("|---|---|---|---|---|");
    let mut written = 0;
    for cycle in 0..options.cycles {
        // The store's own clock: cycle `c` is received at second `c`.
        let now = cycle as i64 * 1_000_000;
        for chunk in events(written, options.per_cycle, now).chunks(10_000) {
            store.write(Arc::new(chunk.to_vec())).await?;
        }
        written += options.per_cycle;
        let cutoff = now - (options.window as i64 - 1) * 1_000_000;
        let mut expired = 0;
        let deleting = Instant::now();
        loop {
            let removed = store
                .expire_events(&Cutoffs(vec![(APP, cutoff)]), 5_000)
                .await?;
            if removed.events == 0 {
                break;
            }
            expired += removed.events;
        }
        // Move the WAL into the file, so that its size says what the data needs.
        rusqlite::Connection::open(&file)?.query_row(
            "PRAGMA wal_checkpoint(TRUNCATE)",
            [],
            |_| Ok(()),
        )?;
        let took = deleting.elapsed();
        println!(
            "| {} | {} | {} | {:.0} | {:.1} |",
            cycle + 1,
            written,
            expired,
            expired as f64 / took.as_secs_f64(),
            megabytes(&file),
        );
    }
    Ok(())
}

async fn ingest(eye: &Path, options: &Options) -> anyhow::Result<()> {
    let data = tempfile::Builder::new()
        .prefix("eye-bench-retention-")
        .tempdir()?;
    let output = std::process::Command::new(eye)
        .arg("--data-dir")
        .arg(data.path())
        .args(["app", "create", "bench"])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "eye app create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout)?.trim().to_owned();
    {
        let store = SqliteStore::open(data.path())?;
        let two_days_ago = Timestamp::now().as_micros() - 2 * 86_400_000_000;
        let started = Instant::now();
        for first in (0..options.expired).step_by(50_000) {
            let count = 50_000.min(options.expired - first);
            store
                .write(Arc::new(events(first, count, two_days_ago)))
                .await?;
        }
        println!(
            "ingest: filled the store with {} events received two days ago in {:.1?}",
            options.expired,
            started.elapsed()
        );
    }
    let bodies = load::bodies(1_000, 1, 10_000);
    let spec = |address, pace, duration| LoadSpec {
        address,
        token: token.clone(),
        bodies: Arc::clone(&bodies),
        events_per_body: 1,
        connections: 64,
        duration,
        pace,
    };

    // Saturation and the comparison run, without retention.
    let server = ServerProcess::start_eye_on(eye, data.path(), token.clone(), &[])?;
    // Saturation is what the service sustains end to end: a closed loop for 20 s, and
    // the rate at which events were stored over its last 10 s (accepting alone runs
    // faster for a while, into the queue).
    let closed = tokio::spawn(load::run(spec(
        server.address,
        Pace::ClosedLoop,
        Duration::from_secs(20),
    )));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = scrape(server.address).await?.stored;
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stored_rate =
        (scrape(server.address).await?.stored - before) / measured.elapsed().as_secs_f64();
    let saturated = closed.await??;
    let saturation = stored_rate.min(saturated.requests_per_second());
    let rate = saturation / 2.0;
    let duration = Duration::from_secs(options.duration);
    // The saturation run leaves a backlog: the comparison starts once it is stored.
    drained(server.address).await?;
    let without = load::run(spec(server.address, Pace::FixedRate(rate), duration)).await?;
    server.stop();

    // The same load, in windows, for as long as the first retention run deletes the
    // expired events (at most five minutes).
    let extra = ["--retention", "1d", "--retention-check-seconds", "1"].map(String::from);
    let server = ServerProcess::start_eye_on(eye, data.path(), token.clone(), &extra)?;
    let started = Instant::now();
    let address = server.address;
    let expected = options.expired as f64;
    let mut with: Option<load::LoadResult> = None;
    let mut deleted_after = None;
    let mut deleted = 0.0;
    while deleted_after.is_none() && started.elapsed() < Duration::from_secs(300) {
        let window =
            load::run(spec(address, Pace::FixedRate(rate), Duration::from_secs(5))).await?;
        with = Some(match with {
            None => window,
            Some(mut all) => {
                all.merge(window)?;
                all
            }
        });
        deleted = scrape(address).await?.expired;
        if deleted >= expected {
            deleted_after = Some(started.elapsed());
        }
    }
    let with = with.expect("at least one window");
    server.stop();

    println!(
        "ingest: saturation {:.0} events/s stored ({:.0} req/s accepted in a closed loop); load at half of it, {:.0} req/s, for {:.0?}",
        stored_rate,
        saturated.requests_per_second(),
        rate,
        duration
    );
    match deleted_after {
        Some(took) => println!(
            "ingest: {} expired events deleted in {:.1?} (within 5 s; {:.0} events/s), under the load",
            options.expired,
            took,
            expected / took.as_secs_f64(),
        ),
        None => println!(
            "ingest: {deleted:.0} of the {} expired events deleted within {:.0?} ({:.0} events/s), under the load",
            options.expired,
            started.elapsed(),
            deleted / started.elapsed().as_secs_f64(),
        ),
    }
    println!("| | req/s | p50 ms | p99 ms | p99.9 ms | non-202 |");
    println!("|---|---|---|---|---|---|");
    for (label, result) in [("without retention", &without), ("while deleting", &with)] {
        println!(
            "| {label} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            result.requests_per_second(),
            result.percentile_ms(0.5),
            result.percentile_ms(0.99),
            result.percentile_ms(0.999),
            result.non_2xx.values().sum::<u64>()
        );
    }
    Ok(())
}

/// Waits (at most a minute) until the server's queue is empty.
async fn drained(address: std::net::SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while scrape(address).await?.queue_depth > 0.0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the queue did not drain within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub async fn run(eye: &Path, options: Options) -> anyhow::Result<()> {
    if options.only != Some(Part::Ingest) {
        space(&options).await?;
    }
    if options.only != Some(Part::Space) {
        ingest(eye, &options).await?;
    }
    Ok(())
}
