//! `eye-bench`: drives the real HTTP ingest path of `eye serve` on 127.0.0.1 for a
//! bounded time, and the same load against a trivial server that parses and answers
//! 202 without storing (the HTTP ceiling), in the same run, so that every figure is also
//! a ratio. It reads the server's `/metrics` for stored counts and end-to-end lag, and
//! its peak memory from `/proc`. It asserts nothing about speed; it fails only when the
//! server loses events or accepts none.

mod ceiling;
mod fleet;
mod load;
mod query;
mod retention;
mod server;
mod store;
mod validate;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Parser, Subcommand, ValueEnum};

use crate::load::{LoadResult, LoadSpec, Pace};
use crate::server::{ServerProcess, scrape};

#[derive(Parser)]
#[command(
    name = "eye-bench",
    about = "Benchmark The Eye's ingest path against the HTTP ceiling"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The `eye` binary to start [default: `eye` beside this binary].
    #[arg(long)]
    eye: Option<PathBuf>,
    /// Scenarios to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "single,batch,rate,sustained"
    )]
    scenarios: Vec<Scenario>,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Events per request in the batch scenario.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Requests per second in the fixed-rate scenario [default: half of what eye
    /// reached in the single-event scenario of this run, or 5000].
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load in the sustained scenario.
    #[arg(long, default_value_t = 60)]
    sustained_duration: u64,
    /// Distinct sessions the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Repeat every scenario this many times and report medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// A quick run that only proves the benchmark works (2 s per measurement, 8 connections).
    #[arg(long)]
    smoke: bool,
    /// Extra flags for `eye serve`, e.g. `--extra=--queue-max-depth=200000`.
    #[arg(long, allow_hyphen_values = true)]
    extra: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the trivial HTTP ceiling (used by the benchmark itself).
    CeilingServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Measure the store's write path alone (no HTTP, no queue).
    Store(store::Options),
    /// Measure the analyst's queries over HTTP on a large generated store.
    Query {
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1_000_000)]
        sessions: u64,
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// Keep the generated store here and reuse it on the next run.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Requests per query kind.
        #[arg(long, default_value_t = 300)]
        samples: usize,
        /// Generate and serve the data set from PostgreSQL instead of the embedded store.
        #[arg(long)]
        database_url: Option<String>,
        /// The PostgreSQL schema that holds the data set (kept and reused between runs).
        #[arg(long, default_value = "eye_bench_query")]
        pg_schema: String,
    },
    /// Measure a fleet: N `eye api` and M `eye worker` over NATS JetStream and PostgreSQL.
    Fleet {
        #[arg(long, default_value_t = 2)]
        apis: usize,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        database_url: String,
    },
    /// Measure retention: the store's file across expiry cycles, and ingest while a
    /// million expired events are deleted.
    Retention(retention::Options),
    /// Measure schema validation per event for the default schemas (no HTTP, no store).
    Validate {
        #[arg(long, default_value_t = 200_000)]
        iterations: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Single,
    Batch,
    Rate,
    Sustained,
}

struct Row {
    scenario: String,
    target: &'static str,
    load: LoadResult,
    ceiling_ratio: Option<f64>,
    eye: Option<EyeFigures>,
}

struct EyeFigures {
    lag_p50_ms: Option<f64>,
    lag_p99_ms: Option<f64>,
    stored_per_second: f64,
    drained_after: Option<Duration>,
    peak_memory_mb: Option<f64>,
    lost: f64,
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Command::CeilingServer { listen }) => return runtime.block_on(ceiling::serve(listen)),
        Some(Command::Store(options)) => return runtime.block_on(store::run(options)),
        Some(Command::Retention(options)) => {
            let eye = cli.eye.clone().unwrap_or_else(server::default_eye_binary);
            return runtime.block_on(retention::run(&eye, options));
        }
        Some(Command::Query {
            events,
            sessions,
            days,
            data_dir,
            samples,
            database_url,
            pg_schema,
        }) => {
            return runtime.block_on(query::run(query::Options {
                events,
                sessions,
                days,
                data_dir,
                samples,
                eye: cli.eye.clone().unwrap_or_else(server::default_eye_binary),
                database_url,
                pg_schema,
            }));
        }
        Some(Command::Fleet {
            apis,
            workers,
            nats_url,
            database_url,
        }) => {
            return runtime.block_on(fleet::run(fleet::Options {
                eye: cli.eye.clone().unwrap_or_else(server::default_eye_binary),
                apis,
                workers,
                nats_url,
                database_url,
                connections: cli.connections,
                duration: Duration::from_secs(cli.duration),
                batch_size: cli.batch_size,
                sessions: cli.sessions,
            }));
        }
        Some(Command::Validate { iterations }) => {
            return runtime.block_on(validate::run(iterations));
        }
        None => {}
    }
    if cli.smoke {
        cli.duration = 2;
        cli.sustained_duration = 3;
        cli.connections = cli.connections.min(8);
        cli.batch_size = cli.batch_size.min(10);
    }
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let eye = cli.eye.clone().unwrap_or_else(server::default_eye_binary);
    if !eye.exists() {
        bail!(
            "{} not found; build it first (cargo build --release --workspace) or pass --eye",
            eye.display()
        );
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut eye_single_rps = None;
    let mut failures = Vec::new();
    let duration = Duration::from_secs(cli.duration);
    for run in 0..cli.runs.max(1) {
        if cli.runs > 1 {
            eprintln!("== run {} of {}", run + 1, cli.runs);
        }
        for scenario in &cli.scenarios {
            let (label, events_per_body, pace, seconds, with_ceiling) = match scenario {
                Scenario::Single => (
                    "single event".to_owned(),
                    1,
                    Pace::ClosedLoop,
                    duration,
                    true,
                ),
                Scenario::Batch => (
                    format!("batch of {}", cli.batch_size),
                    cli.batch_size,
                    Pace::ClosedLoop,
                    duration,
                    true,
                ),
                Scenario::Rate => {
                    let rate = cli
                        .rate
                        .or(eye_single_rps.map(|r: f64| r / 2.0))
                        .unwrap_or(5_000.0);
                    (
                        format!("fixed rate {rate:.0}/s"),
                        1,
                        Pace::FixedRate(rate),
                        duration,
                        false,
                    )
                }
                Scenario::Sustained => (
                    format!("sustained {} s", cli.sustained_duration),
                    1,
                    Pace::ClosedLoop,
                    Duration::from_secs(cli.sustained_duration),
                    false,
                ),
            };
            let bodies = load::bodies(
                4096.min(200_000 / events_per_body).max(64),
                events_per_body,
                cli.sessions,
            );
            let mut ceiling_load = None;
            if with_ceiling {
                eprintln!(
                    "== {label}: HTTP ceiling, {} connections, {:?}",
                    cli.connections, seconds
                );
                let ceiling = ServerProcess::start_ceiling()?;
                let spec = LoadSpec {
                    address: ceiling.address,
                    token: ceiling.token.clone(),
                    bodies: bodies.clone(),
                    events_per_body: events_per_body as u64,
                    connections: cli.connections,
                    duration: seconds,
                    pace,
                };
                let result = load::run(spec).await?;
                ceiling.stop();
                ceiling_load = Some(result);
            }

            eprintln!(
                "== {label}: eye serve, {} connections, {:?}",
                cli.connections, seconds
            );
            let server = ServerProcess::start_eye(&eye, &cli.extra)?;
            let spec = LoadSpec {
                address: server.address,
                token: server.token.clone(),
                bodies,
                events_per_body: events_per_body as u64,
                connections: cli.connections,
                duration: seconds,
                pace,
            };
            let load_started = Instant::now();
            let result = load::run(spec).await?;
            let load_ended = Instant::now();
            if *scenario == Scenario::Single {
                eye_single_rps = Some(result.requests_per_second());
            }
            let at_end = scrape(server.address).await?;
            // Wait (bounded) for the worker to store everything that was accepted.
            let mut drained_after = None;
            let mut last = at_end.clone();
            let drain_deadline = load_ended + Duration::from_secs(120);
            while Instant::now() < drain_deadline {
                last = scrape(server.address).await?;
                if last.stored + last.errors >= last.accepted {
                    drained_after = Some(load_ended.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let stored_window = load_started.elapsed().as_secs_f64();
            let figures = EyeFigures {
                lag_p50_ms: last.lag_quantile_ms(0.5),
                lag_p99_ms: last.lag_quantile_ms(0.99),
                stored_per_second: last.stored / stored_window,
                drained_after,
                peak_memory_mb: server.peak_memory_bytes().map(|b| b as f64 / 1_048_576.0),
                lost: (last.accepted - last.stored - last.errors).max(0.0),
            };
            server.stop();
            if result.accepted_requests == 0 {
                failures.push(format!("{label}: the server accepted nothing"));
            }
            if figures.drained_after.is_none() {
                failures.push(format!(
                    "{label}: {} accepted events not stored within 120 s",
                    figures.lost
                ));
            }
            if (last.accepted - result.accepted_events as f64).abs() > 0.5 {
                failures.push(format!(
                    "{label}: the server counted {} accepted events, the client {}",
                    last.accepted, result.accepted_events
                ));
            }
            let ceiling_ratio = ceiling_load
                .as_ref()
                .map(|c| result.events_per_second() / c.events_per_second());
            if let Some(ceiling) = ceiling_load {
                rows.push(Row {
                    scenario: label.clone(),
                    target: "ceiling",
                    load: ceiling,
                    ceiling_ratio: None,
                    eye: None,
                });
            }
            rows.push(Row {
                scenario: label,
                target: "eye",
                load: result,
                ceiling_ratio,
                eye: Some(figures),
            });
        }
    }
    println!("{}", table(&rows, &cli));
    if !failures.is_empty() {
        bail!("benchmark failures:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

/// One table row's figures; with several runs, each is the median over the runs.
struct Cells {
    scenario: String,
    target: &'static str,
    numbers: [Option<f64>; 11],
    non_2xx: String,
    not_drained: bool,
}

impl Cells {
    fn of(row: &Row) -> Self {
        let load = &row.load;
        let eye = row.eye.as_ref();
        let non_2xx = if load.non_2xx.is_empty() {
            "0".to_owned()
        } else {
            load.non_2xx
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Cells {
            scenario: row.scenario.clone(),
            target: row.target,
            numbers: [
                Some(load.requests_per_second()),
                Some(load.events_per_second()),
                row.ceiling_ratio,
                Some(load.percentile_ms(0.5)),
                Some(load.percentile_ms(0.99)),
                Some(load.percentile_ms(0.999)),
                eye.and_then(|e| e.lag_p50_ms),
                eye.and_then(|e| e.lag_p99_ms),
                eye.map(|e| e.stored_per_second),
                eye.and_then(|e| e.drained_after.map(|d| d.as_secs_f64())),
                eye.and_then(|e| e.peak_memory_mb),
            ],
            non_2xx,
            not_drained: eye.is_some_and(|e| e.drained_after.is_none()),
        }
    }

    /// The median of each figure over runs of the same scenario and server.
    fn median(runs: &[Cells]) -> Cells {
        let mut numbers = [None; 11];
        for (i, number) in numbers.iter_mut().enumerate() {
            let mut values: Vec<f64> = runs.iter().filter_map(|c| c.numbers[i]).collect();
            values.sort_by(f64::total_cmp);
            *number = values.get(values.len() / 2).copied();
        }
        Cells {
            scenario: runs[0].scenario.clone(),
            target: runs[0].target,
            numbers,
            non_2xx: runs
                .iter()
                .map(|c| c.non_2xx.as_str())
                .collect::<Vec<_>>()
                .join(" / "),
            not_drained: runs.iter().any(|c| c.not_drained),
        }
    }
}

fn table(rows: &[Row], cli: &Cli) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "connections: {}, sessions: {}, cores: {}, runs: {}{}",
        cli.connections,
        cli.sessions,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cli.runs,
        if cli.runs > 1 {
            " (medians; each ratio is taken within its run)"
        } else {
            ""
        }
    );
    out.push_str(
        "\n| scenario | server | req/s | events/s | x ceiling | p50 ms | p99 ms | p99.9 ms | non-2xx | lag p50 ms | lag p99 ms | stored ev/s | drained after | peak RSS MB |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n");
    // Rows come run after run in the same order; row i of each run is the same scenario.
    let per_run = rows.len() / cli.runs.max(1);
    for i in 0..per_run {
        let runs: Vec<Cells> = rows
            .iter()
            .skip(i)
            .step_by(per_run.max(1))
            .map(Cells::of)
            .collect();
        let cells = Cells::median(&runs);
        let n = |i: usize, digits: usize| {
            cells.numbers[i].map_or("-".to_owned(), |v| format!("{v:.digits$}"))
        };
        let drained = if cells.not_drained {
            "not drained".to_owned()
        } else {
            cells.numbers[9].map_or("-".to_owned(), |v| format!("{v:.2} s"))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cells.scenario,
            cells.target,
            n(0, 0),
            n(1, 0),
            n(2, 2),
            n(3, 2),
            n(4, 2),
            n(5, 2),
            cells.non_2xx,
            n(6, 1),
            n(7, 1),
            n(8, 0),
            drained,
            n(10, 0),
        );
    }
    out
}
