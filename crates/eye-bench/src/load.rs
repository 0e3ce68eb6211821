//! The load generator: N keep-alive HTTP/1.1 connections on hyper's low-level client,
//! each sending pre-built bodies back to back (closed loop) or on a fixed schedule
//! (open loop). In the fixed-rate mode a request's latency is measured from the moment
//! it was *scheduled*, not sent, so a stalled server cannot hide its stall by slowing
//! the generator down (coordinated omission).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Each connection sends its next request as soon as the last one is answered.
    ClosedLoop,
    /// Requests are scheduled at this many per second in total.
    FixedRate(f64),
}

pub struct LoadSpec {
    pub address: SocketAddr,
    pub token: String,
    pub bodies: Arc<Vec<Bytes>>,
    pub events_per_body: u64,
    pub connections: usize,
    pub duration: Duration,
    pub pace: Pace,
}

#[derive(Debug)]
pub struct LoadResult {
    pub elapsed: Duration,
    pub accepted_requests: u64,
    pub accepted_events: u64,
    /// Answers other than 202, by status; 0 stands for a transport error.
    pub non_2xx: BTreeMap<u16, u64>,
    /// Microseconds.
    pub latency: Histogram<u64>,
}

impl LoadResult {
    pub fn requests_per_second(&self) -> f64 {
        self.accepted_requests as f64 / self.elapsed.as_secs_f64()
    }
    pub fn events_per_second(&self) -> f64 {
        self.accepted_events as f64 / self.elapsed.as_secs_f64()
    }
    pub fn percentile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// Adds a later run of the same load to this one.
    pub fn merge(&mut self, other: LoadResult) -> anyhow::Result<()> {
        self.elapsed += other.elapsed;
        self.accepted_requests += other.accepted_requests;
        self.accepted_events += other.accepted_events;
        for (status, count) in other.non_2xx {
            *self.non_2xx.entry(status).or_default() += count;
        }
        self.latency
            .add(&other.latency)
            .context("merging histograms")
    }
}

struct ConnectionResult {
    accepted: u64,
    non_2xx: BTreeMap<u16, u64>,
    latency: Histogram<u64>,
}

pub async fn run(spec: LoadSpec) -> anyhow::Result<LoadResult> {
    let spec = Arc::new(spec);
    let started = Instant::now();
    let deadline = started + spec.duration;
    let scheduled = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(spec.connections);
    for connection in 0..spec.connections {
        let spec = Arc::clone(&spec);
        let scheduled = Arc::clone(&scheduled);
        tasks.push(tokio::spawn(async move {
            drive_connection(&spec, connection, started, deadline, &scheduled).await
        }));
    }
    let mut result = LoadResult {
        elapsed: Duration::ZERO,
        accepted_requests: 0,
        accepted_events: 0,
        non_2xx: BTreeMap::new(),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
    };
    for task in tasks {
        let connection = task.await.context("load task")??;
        result.accepted_requests += connection.accepted;
        for (status, count) in connection.non_2xx {
            *result.non_2xx.entry(status).or_default() += count;
        }
        result
            .latency
            .add(&connection.latency)
            .context("merging histograms")?;
    }
    result.elapsed = started.elapsed();
    result.accepted_events = result.accepted_requests * spec.events_per_body;
    Ok(result)
}

pub async fn connect(
    address: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address).await.context("connecting")?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn drive_connection(
    spec: &LoadSpec,
    connection: usize,
    started: Instant,
    deadline: Instant,
    scheduled: &AtomicU64,
) -> anyhow::Result<ConnectionResult> {
    let mut result = ConnectionResult {
        accepted: 0,
        non_2xx: BTreeMap::new(),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
    };
    let mut sender = connect(spec.address).await?;
    let authorization = format!("Bearer {}", spec.token);
    let mut index = connection * 7919;
    loop {
        let intended = match spec.pace {
            Pace::ClosedLoop => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                now
            }
            Pace::FixedRate(rate) => {
                let n = scheduled.fetch_add(1, Ordering::Relaxed);
                let at = started + Duration::from_secs_f64(n as f64 / rate);
                if at >= deadline {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                at
            }
        };
        index = (index + 1) % spec.bodies.len();
        let request = Request::post("/events")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .header("authorization", &authorization)
            .body(Full::new(spec.bodies[index].clone()))?;
        if sender.ready().await.is_err() {
            *result.non_2xx.entry(0).or_default() += 1;
            sender = connect(spec.address).await?;
            continue;
        }
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await;
                let micros = intended.elapsed().as_micros().max(1) as u64;
                result.latency.saturating_record(micros);
                if status == 202 {
                    result.accepted += 1;
                } else {
                    *result.non_2xx.entry(status).or_default() += 1;
                }
            }
            Err(_) => {
                *result.non_2xx.entry(0).or_default() += 1;
                sender = connect(spec.address).await?;
            }
        }
    }
    Ok(result)
}

/// Pre-built request bodies: `count` distinct bodies of `events_per_body` events each,
/// spread over `sessions` sessions, with timestamps in the past.
pub fn bodies(count: usize, events_per_body: usize, sessions: usize) -> Arc<Vec<Bytes>> {
    let mut out = Vec::with_capacity(count);
    let mut n: u64 = 0;
    for _ in 0..count {
        let events: Vec<serde_json::Value> = (0..events_per_body)
            .map(|_| {
                n += 1;
                let session = (n.wrapping_mul(2_654_435_761)) % sessions as u64;
                serde_json::json!({
                    "session_id": format!("bench-session-{session}"),
                    "category": "page interaction",
                    "name": "pageview",
                    "data": {"host": "www.example.com", "path": format!("/page/{}", n % 100)},
                    "timestamp": format!("2026-01-01T00:00:{:02}.{:06}Z", (n / 1_000_000) % 60, n % 1_000_000),
                })
            })
            .collect();
        let body = if events_per_body == 1 {
            events[0].to_string()
        } else {
            serde_json::Value::Array(events).to_string()
        };
        out.push(Bytes::from(body));
    }
    Arc::new(out)
}
