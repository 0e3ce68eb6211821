//! `eye-bench query`: the analyst's read path over HTTP on a large embedded store.
//!
//! It generates a data set (by default 10 million events over 1 million sessions, 20
//! event types and 30 days, written through the store's own write path in time order,
//! as ingestion would), serves it with `eye serve`, and measures what analysts do: a
//! session's timeline, the first page of one category in a one-hour window, hourly
//! counts by type over one day, and the export of one day.
//!
//! With `--database-url` the data set lives in PostgreSQL (in the schema named by
//! `--pg-schema`, kept between runs like `--data-dir`) and `eye serve` reads it there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use eye_core::{IncomingEvent, ids};
use eye_store::{PgStore, Processed, SqliteStore, Store};
use http_body_util::BodyExt;
use serde_json::value::RawValue;

use crate::server::ServerProcess;

const DAY_MICROS: i64 = 86_400_000_000;
/// 2026-01-01T00:00:00Z: the data set's first day.
const START_MICROS: i64 = 1_767_225_600_000_000;
const CATEGORIES: [&str; 5] = [
    "page interaction",
    "form interaction",
    "video",
    "search",
    "account",
];
const NAMES: [[&str; 4]; 5] = [
    ["pageview", "cta click", "scroll", "hover"],
    ["submit", "focus", "error", "abandon"],
    ["play", "pause", "seek", "complete"],
    ["query", "result click", "filter", "no results"],
    ["login", "logout", "signup", "password reset"],
];

pub struct Options {
    pub events: u64,
    pub sessions: u64,
    pub days: u64,
    pub data_dir: Option<PathBuf>,
    pub samples: usize,
    pub eye: PathBuf,
    /// PostgreSQL instead of the embedded store, and the schema that holds the data set.
    pub database_url: Option<String>,
    pub pg_schema: String,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let temp;
    let data_dir: &Path = match &options.data_dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::Builder::new()
                .prefix("eye-bench-query-")
                .tempdir()?;
            temp.path()
        }
    };
    // The embedded store in `data_dir`, or PostgreSQL in its own schema.
    let database_url = match &options.database_url {
        None => None,
        Some(url) => {
            crate::fleet::psql_like(
                url,
                &format!("CREATE SCHEMA IF NOT EXISTS {}", options.pg_schema),
            )?;
            Some(eye_store::postgres::in_schema(url, &options.pg_schema))
        }
    };
    let store: Box<dyn Store> = match &database_url {
        None => Box::new(SqliteStore::open(data_dir)?),
        Some(url) => Box::new(PgStore::connect(url).await?),
    };
    let where_ = match &database_url {
        None => data_dir.display().to_string(),
        Some(_) => format!("PostgreSQL schema {}", options.pg_schema),
    };
    let stored = store.stats(Default::default()).await?;
    let have: i64 = stored.iter().map(|r| r.count).sum();
    if have as u64 != options.events {
        if have != 0 {
            bail!(
                "{where_} holds {have} events, not {}: use an empty or matching store",
                options.events
            );
        }
        generate(store.as_ref(), &options).await?;
    } else {
        println!("reusing {where_} ({have} events)");
    }
    index_path(store.as_ref()).await?;
    drop(store);

    let mut global = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    if let Some(url) = &database_url {
        global.extend(["--database-url".to_owned(), url.clone()]);
    }
    let read_token = cli(
        &options.eye,
        &global,
        &["token", "create", "--scope", "read"],
    )?;
    let server = ServerProcess::start_eye_on(&options.eye, data_dir, read_token, &global[2..])?;
    let result = measure(&server, &options).await;
    server.stop();
    result
}

fn cli(eye: &Path, global: &[String], args: &[&str]) -> anyhow::Result<String> {
    let output = std::process::Command::new(eye)
        .args(global)
        .args(args)
        .output()
        .with_context(|| format!("running {}", eye.display()))?;
    if !output.status.success() {
        bail!("eye {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// A small deterministic generator (SplitMix64), so every run builds the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn session_id(index: u64) -> String {
    format!("session-{index:07}")
}

/// Each session lives on one day, starts at a random time and has its share of the
/// events a few seconds to a few minutes apart; a day's events are written in time
/// order, in transactions of 50,000.
async fn generate(store: &dyn Store, options: &Options) -> anyhow::Result<()> {
    let apps = [
        store.create_app("web").await?,
        store.create_app("mobile").await?,
    ];
    let per_session = options.events / options.sessions;
    let started = Instant::now();
    let mut rng = Rng(42);
    let mut written = 0u64;
    println!(
        "generating {} events over {} sessions, 20 types, {} days...",
        options.events, options.sessions, options.days
    );
    for day in 0..options.days {
        let mut events: Vec<(i64, u64, usize)> = Vec::new();
        let mut session = day;
        while session < options.sessions {
            let mut at = START_MICROS
                + day as i64 * DAY_MICROS
                + rng.below(DAY_MICROS as u64 - 3_600_000_000) as i64;
            for _ in 0..per_session {
                events.push((at, session, rng.below(20) as usize));
                at += 1_000_000 + rng.below(180_000_000) as i64;
            }
            session += options.days;
        }
        events.sort_unstable();
        for chunk in events.chunks(50_000) {
            let batch = chunk
                .iter()
                .map(|&(ts, session, kind)| {
                    let (category, name) = (CATEGORIES[kind / 4], NAMES[kind / 4][kind % 4]);
                    let raw = format!(
                        r#"{{"session_id":"{}","category":"{category}","name":"{name}","data":{{"host":"www.example.com","path":"/p/{}","element":"e{}","form":{{"f":1}}}},"timestamp":"{}"}}"#,
                        session_id(session),
                        session % 100,
                        kind,
                        eye_core::Timestamp::from_micros(ts)
                    );
                    let raw = RawValue::from_string(raw).expect("generated JSON");
                    Processed::Event {
                        id: ids::new_event_id(),
                        app_id: apps[(session % 2) as usize].id,
                        received_at: ts,
                        event: IncomingEvent::parse(&raw).expect("generated event"),
                        schema_version: None,
                        warning: None,
                    }
                })
                .collect::<Vec<_>>();
            written += batch.len() as u64;
            store.write(std::sync::Arc::new(batch)).await?;
        }
        println!(
            "  day {:>2}: {written} events, {:.0} events/s",
            day + 1,
            written as f64 / started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Declares `/path` indexed on every type and builds its index (once per data set), as
/// `PUT /event-types/{category}/{name}/indexed` and the server's builder would.
async fn index_path(store: &dyn Store) -> anyhow::Result<()> {
    let path = eye_core::FieldPath::parse("/path")?;
    for (kind, category) in CATEGORIES.iter().enumerate() {
        for name in NAMES[kind] {
            let event_type = eye_core::EventType {
                category: (*category).to_owned(),
                name: name.to_owned(),
            };
            if store.indexed_fields(&event_type).await?.is_empty() {
                store
                    .set_indexed_fields(&event_type, std::slice::from_ref(&path))
                    .await?;
            }
        }
    }
    for index in store.pending_field_indexes().await? {
        let started = Instant::now();
        store.build_field_index(&index).await?;
        println!(
            "built the index of {} in {:.1} s",
            index.path,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// GET `path` and read the whole body; returns the status, the body and the time taken.
async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
    server: &ServerProcess,
    path: &str,
    accept: &str,
) -> anyhow::Result<(u16, Bytes, Duration)> {
    let request = hyper::Request::get(path)
        .header("host", server.address.to_string())
        .header("authorization", format!("Bearer {}", server.token))
        .header("accept", accept)
        .body(http_body_util::Full::new(Bytes::new()))?;
    sender.ready().await?;
    let started = Instant::now();
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body, started.elapsed()))
}

fn percentile(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index].as_secs_f64() * 1e3
}

async fn measure(server: &ServerProcess, options: &Options) -> anyhow::Result<()> {
    let mut sender = crate::load::connect(server.address).await?;
    let mut rng = Rng(7);
    let day = |d: u64| START_MICROS + (d % options.days) as i64 * DAY_MICROS;
    let iso = |micros: i64| eye_core::Timestamp::from_micros(micros).to_string();
    let report = |what: &str, samples: &mut Vec<Duration>, extra: String| {
        println!(
            "| {what} | {} | {:.2} ms | {:.2} ms | {extra} |",
            samples.len(),
            percentile(samples, 0.5),
            percentile(samples, 0.99)
        );
    };
    println!("| query | samples | p50 | p99 | notes |");
    println!("|---|---|---|---|---|");

    let mut samples = Vec::new();
    let mut events_seen = 0usize;
    for _ in 0..options.samples {
        let path = format!("/sessions/{}", session_id(rng.below(options.sessions)));
        let (status, body, took) = get(&mut sender, server, &path, "application/json").await?;
        anyhow::ensure!(status == 200, "{path}: {status}");
        events_seen += body.windows(4).filter(|w| w == b"\"id\"").count();
        samples.push(took);
    }
    report(
        "a session's timeline (`GET /sessions/{id}`)",
        &mut samples,
        format!(
            "{:.1} events per session",
            events_seen as f64 / options.samples as f64
        ),
    );

    let mut samples = Vec::new();
    for _ in 0..options.samples {
        let hour = day(rng.below(options.days)) + rng.below(23) as i64 * 3_600_000_000;
        let category = CATEGORIES[rng.below(5) as usize].replace(' ', "+");
        let path = format!(
            "/events?category={category}&from={}&to={}",
            iso(hour),
            iso(hour + 3_600_000_000)
        );
        let (status, _, took) = get(&mut sender, server, &path, "application/json").await?;
        anyhow::ensure!(status == 200, "{path}: {status}");
        samples.push(took);
    }
    report(
        "first page (100) of one category in a one-hour window",
        &mut samples,
        String::new(),
    );

    let mut samples = Vec::new();
    for _ in 0..options.samples.min(50) {
        let from = day(rng.below(options.days));
        let path = format!(
            "/stats?group_by=category,name&bucket=hour&from={}&to={}",
            iso(from),
            iso(from + DAY_MICROS)
        );
        let (status, _, took) = get(&mut sender, server, &path, "application/json").await?;
        anyhow::ensure!(status == 200, "{path}: {status}");
        samples.push(took);
    }
    report(
        "hourly counts by type over one day (`/stats`)",
        &mut samples,
        String::new(),
    );

    // `/path` is an indexed field (`index_path`): each value is on 1% of the events.
    for (what, with_category) in [
        ("indexed payload filter with `category`", true),
        ("indexed payload filter alone", false),
    ] {
        let mut samples = Vec::new();
        let mut found = 0usize;
        for _ in 0..options.samples {
            let mut path = format!("/events?data.path=/p/{}", rng.below(100));
            if with_category {
                path.push_str(&format!(
                    "&category={}",
                    CATEGORIES[rng.below(5) as usize].replace(' ', "+")
                ));
            }
            let (status, body, took) = get(&mut sender, server, &path, "application/json").await?;
            anyhow::ensure!(status == 200, "{path}: {status}");
            found += body.windows(4).filter(|w| w == b"\"id\"").count();
            samples.push(took);
        }
        report(
            what,
            &mut samples,
            format!(
                "{:.0} events per page",
                found as f64 / options.samples as f64
            ),
        );
    }

    // Shapes no index serves: each must answer within the query budget (EYE_QUERY_BUDGET_MS,
    // 5 s by default), with its page or with 422 query_over_budget.
    let one_day = day(5);
    let shapes = [
        (
            "unindexed payload filter matching nothing, whole store",
            "/events?data.host=nomatch".to_owned(),
        ),
        (
            "unindexed payload filter matching nothing, one day",
            format!(
                "/events?data.host=nomatch&from={}&to={}",
                iso(one_day),
                iso(one_day + DAY_MICROS)
            ),
        ),
        (
            "`name` without `category`",
            format!("/events?name={}", NAMES[1][2].replace(' ', "+")),
        ),
        (
            "`name` without `category`, a name no event has",
            "/events?name=no+such+name".to_owned(),
        ),
    ];
    for (what, path) in shapes {
        let mut samples = Vec::new();
        let mut statuses = std::collections::BTreeMap::new();
        for _ in 0..options.samples.min(5) {
            let (status, _, took) = get(&mut sender, server, &path, "application/json").await?;
            anyhow::ensure!(
                status == 200 || status == 422,
                "{path}: {status} (expected a page or 422 query_over_budget)"
            );
            *statuses.entry(status).or_insert(0) += 1;
            samples.push(took);
        }
        report(what, &mut samples, format!("answers {statuses:?}"));
    }

    let mut samples = Vec::new();
    let mut rates = Vec::new();
    for run in 0..3 {
        let from = day(run * 7 + 3);
        let path = format!(
            "/events?order=asc&from={}&to={}",
            iso(from),
            iso(from + DAY_MICROS)
        );
        let (status, body, took) = get(&mut sender, server, &path, "application/x-ndjson").await?;
        anyhow::ensure!(status == 200, "{path}: {status}");
        let lines = body.iter().filter(|b| **b == b'\n').count();
        rates.push(lines as f64 / took.as_secs_f64());
        samples.push(took);
    }
    rates.sort_by(f64::total_cmp);
    report(
        "export of one day as NDJSON",
        &mut samples,
        format!("median {:.0}k events/s", rates[1] / 1e3),
    );
    Ok(())
}
