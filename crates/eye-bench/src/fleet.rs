//! `eye-bench fleet`: the distributed deployment on this machine: N `eye api` and M
//! `eye worker` processes over NATS JetStream and PostgreSQL (a fresh stream and a
//! fresh schema per run, removed afterwards). It drives the APIs (connections split
//! evenly) with single events and with batches, closed loop, then at a fixed rate of
//! half the single-event maximum, and reports accepted and stored events/s and the
//! end-to-end lag (accepted to stored, from the workers' histograms).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::load::{self, LoadResult, LoadSpec, Pace};
use crate::server::{self, ServerProcess};

pub struct Options {
    pub eye: PathBuf,
    pub apis: usize,
    pub workers: usize,
    pub nats_url: String,
    pub database_url: String,
    pub connections: usize,
    pub duration: Duration,
    pub batch_size: usize,
    pub sessions: usize,
}

struct Fleet {
    apis: Vec<ServerProcess>,
    workers: Vec<ServerProcess>,
}

impl Fleet {
    /// Events stored so far, summed over the workers' metrics.
    async fn stored(&self) -> anyhow::Result<f64> {
        let mut total = 0.0;
        for worker in &self.workers {
            total += server::scrape(worker.address).await?.stored;
        }
        Ok(total)
    }

    /// The workers' lag histograms, merged.
    async fn lag(&self) -> anyhow::Result<server::Scrape> {
        let mut merged: Option<server::Scrape> = None;
        for worker in &self.workers {
            let scrape = server::scrape(worker.address).await?;
            merged = Some(match merged {
                None => scrape,
                Some(mut m) => {
                    for (bucket, other) in m.lag_buckets.iter_mut().zip(&scrape.lag_buckets) {
                        bucket.1 += other.1;
                    }
                    m
                }
            });
        }
        Ok(merged.unwrap_or_default())
    }
}

fn eye(options: &Options, database_url: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(&options.eye)
        .arg("--database-url")
        .arg(database_url)
        .args(args)
        .output()
        .with_context(|| format!("running {}", options.eye.display()))?;
    if !output.status.success() {
        bail!("eye {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Runs one SQL statement with `psql`.
pub(crate) fn psql_like(database_url: &str, sql: &str) -> anyhow::Result<()> {
    let status = Command::new("psql")
        .arg(database_url)
        .args(["-q", "-c", sql])
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .status()
        .context("running psql (Debian's postgresql-client) to make the benchmark's schema")?;
    if !status.success() {
        bail!("psql {sql:?} failed");
    }
    Ok(())
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let schema = format!("eye_bench_{nanos:x}");
    let stream = format!("EYE_BENCH_{nanos:x}");
    psql_like(&options.database_url, &format!("CREATE SCHEMA {schema}"))?;
    let database_url = eye_store::postgres::in_schema(&options.database_url, &schema);
    let result = run_in(&options, &database_url, &stream).await;
    let _ = psql_like(
        &options.database_url,
        &format!("DROP SCHEMA {schema} CASCADE"),
    );
    if let Ok(client) = async_nats::connect(options.nats_url.as_str()).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
    result
}

async fn run_in(options: &Options, database_url: &str, stream: &str) -> anyhow::Result<()> {
    let data = tempfile::Builder::new()
        .prefix("eye-bench-fleet-")
        .tempdir()?;
    let token = eye(options, database_url, &["app", "create", "bench"])?;
    let common: Vec<String> = [
        "--queue-url",
        &options.nats_url,
        "--nats-stream",
        stream,
        "--database-url",
        database_url,
        "--queue-max-depth",
        "100000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let start = |role: &str| -> anyhow::Result<ServerProcess> {
        ServerProcess::start_role(&options.eye, data.path(), role, token.clone(), &common)
    };
    let mut fleet = Fleet {
        apis: Vec::new(),
        workers: Vec::new(),
    };
    for _ in 0..options.apis {
        fleet.apis.push(start("api")?);
    }
    for _ in 0..options.workers {
        fleet.workers.push(start("worker")?);
    }
    println!(
        "fleet: {} × eye api, {} × eye worker, NATS {} (stream {stream}), PostgreSQL",
        options.apis, options.workers, options.nats_url
    );
    println!(
        "| load | accepted req/s | accepted events/s | p50 ms | p99 ms | non-2xx | stored events/s | drained after | lag p50 ms | lag p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|");

    let single = load::bodies(4096, 1, options.sessions);
    let batches = load::bodies(256, options.batch_size, options.sessions);
    let max = drive(
        &fleet,
        options,
        &token,
        single.clone(),
        1,
        Pace::ClosedLoop,
        "single event",
    )
    .await?;
    drive(
        &fleet,
        options,
        &token,
        batches,
        options.batch_size as u64,
        Pace::ClosedLoop,
        &format!("batch of {}", options.batch_size),
    )
    .await?;
    let rate = (max.requests_per_second() / 2.0).max(100.0);
    drive(
        &fleet,
        options,
        &token,
        single,
        1,
        Pace::FixedRate(rate),
        &format!("fixed rate {rate:.0}/s"),
    )
    .await?;
    for process in fleet.apis.into_iter().chain(fleet.workers) {
        process.stop();
    }
    Ok(())
}

/// One load against all APIs at once; then waits until everything accepted is stored.
async fn drive(
    fleet: &Fleet,
    options: &Options,
    token: &str,
    bodies: std::sync::Arc<Vec<bytes::Bytes>>,
    events_per_body: u64,
    pace: Pace,
    label: &str,
) -> anyhow::Result<LoadResult> {
    let stored_before = fleet.stored().await?;
    let lag_before = fleet.lag().await?;
    let per_api = (options.connections / fleet.apis.len()).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for api in &fleet.apis {
        let pace = match pace {
            Pace::FixedRate(rate) => Pace::FixedRate(rate / fleet.apis.len() as f64),
            other => other,
        };
        tasks.push(tokio::spawn(load::run(LoadSpec {
            address: api.address,
            token: token.to_owned(),
            bodies: bodies.clone(),
            events_per_body,
            connections: per_api,
            duration: options.duration,
            pace,
        })));
    }
    let mut total: Option<LoadResult> = None;
    for task in tasks {
        let result = task.await??;
        total = Some(match total {
            None => result,
            Some(mut t) => {
                t.accepted_requests += result.accepted_requests;
                t.accepted_events += result.accepted_events;
                for (status, count) in result.non_2xx {
                    *t.non_2xx.entry(status).or_default() += count;
                }
                t.latency.add(&result.latency)?;
                t.elapsed = t.elapsed.max(result.elapsed);
                t
            }
        });
    }
    let total = total.context("no API")?;
    let load_ended = Instant::now();
    let target = stored_before + total.accepted_events as f64;
    let deadline = load_ended + Duration::from_secs(300);
    while fleet.stored().await? < target {
        if Instant::now() > deadline {
            bail!("{label}: the workers did not store every accepted event within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = load_ended.elapsed();
    let stored_rate = total.accepted_events as f64 / started.elapsed().as_secs_f64();
    // Only this load's lags: the histograms' growth since it began.
    let mut lag = fleet.lag().await?;
    for (bucket, before) in lag.lag_buckets.iter_mut().zip(&lag_before.lag_buckets) {
        bucket.1 -= before.1;
    }
    let (lag50, lag99) = (lag.lag_quantile_ms(0.5), lag.lag_quantile_ms(0.99));
    let non_2xx = if total.non_2xx.is_empty() {
        "0".to_owned()
    } else {
        format!("{:?}", total.non_2xx)
    };
    let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    println!(
        "| {label} | {:.0} | {:.0} | {:.2} | {:.2} | {non_2xx} | {stored_rate:.0} | {:.2} s | {} | {} |",
        total.requests_per_second(),
        total.events_per_second(),
        total.percentile_ms(0.5),
        total.percentile_ms(0.99),
        drained.as_secs_f64(),
        show(lag50),
        show(lag99),
    );
    Ok(total)
}
