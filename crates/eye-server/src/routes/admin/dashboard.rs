//! The dashboard: accepted, stored and refused events per second over the last hour
//! (a chart the page refreshes every few seconds), the queue's backlog and the worker's
//! lag, the busiest event types and the commonest error reasons.
//!
//! The rates come from this process's counters, sampled every [`SAMPLE_EVERY`] into a
//! ring of one hour; in the distributed mode an API process shows what it accepted and
//! refused (its stored rate is the worker's, on the worker's `/metrics`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use eye_core::Timestamp;
use eye_store::RefusedFilter;
use maud::html;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::layout::{Nav, PageError, page, segment};
use super::login::Viewer;
use crate::startup::AppState;

pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// One hour of samples.
const KEPT: usize = 720;
const TOP: usize = 10;
const DAY_MICROS: i64 = 24 * 3_600_000_000;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_secs: f64,
    accepted: u64,
    stored: u64,
    errors: u64,
}

/// The last hour of counter readings.
#[derive(Default)]
pub struct Samples(Mutex<VecDeque<Sample>>);

impl Samples {
    fn push(&self, sample: Sample) {
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// Per-second rates between consecutive samples: `[times, accepted, stored, errors]`.
    fn rates(&self) -> [Vec<f64>; 4] {
        let ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut series: [Vec<f64>; 4] = Default::default();
        for (before, after) in ring.iter().zip(ring.iter().skip(1)) {
            let seconds = (after.at_secs - before.at_secs).max(1e-3);
            let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
            series[0].push(after.at_secs.round());
            series[1].push(rate(before.accepted, after.accepted));
            series[2].push(rate(before.stored, after.stored));
            series[3].push(rate(before.errors, after.errors));
        }
        series
    }
}

/// Reads the counters every [`SAMPLE_EVERY`] until shutdown.
pub async fn sample_until_stopped(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let metrics = &state.metrics;
        state.samples.push(Sample {
            at_secs: Timestamp::now().as_micros() as f64 / 1e6,
            accepted: metrics.events_accepted.get(),
            stored: metrics.pipeline.events_stored.get(),
            errors: metrics.events_rejected.get() + metrics.pipeline.refusals_recorded.get(),
        });
    }
}

/// `GET /admin/dashboard.json`: what the chart and the tiles show, refreshed by the page.
pub async fn figures(State(state): State<AppState>, _viewer: Viewer) -> Json<Value> {
    let [t, accepted, stored, errors] = state.samples.rates();
    let lag = crate::telemetry::oldest_age_seconds(&state).await;
    Json(json!({
        "t": t,
        "accepted": accepted,
        "stored": stored,
        "errors": errors,
        "queue_depth": state.queue.depth(),
        "lag_seconds": if lag.is_finite() { Some(lag) } else { None },
        "sample_seconds": SAMPLE_EVERY.as_secs(),
    }))
}

/// `GET /admin`
pub async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let mut types = state.store.event_types().await?;
    types.sort_by_key(|t| std::cmp::Reverse(t.event_count));
    types.truncate(TOP);
    let to = Timestamp::now();
    let summary = state
        .store
        .refused_summary(RefusedFilter {
            from: Some(Timestamp::from_micros(to.as_micros() - DAY_MICROS)),
            to: Some(to),
            ..RefusedFilter::default()
        })
        .await?;
    let mut reasons: BTreeMap<&str, i64> = BTreeMap::new();
    for count in &summary.by_reason_and_type {
        *reasons.entry(count.reason.as_str()).or_default() += count.count;
    }
    let mut reasons: Vec<(&str, i64)> = reasons.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
    reasons.truncate(TOP);
    let body = html! {
        section.tiles {
            div.tile { span.label { "Accepted /s" } span.value #tile-accepted { "–" } }
            div.tile { span.label { "Stored /s" } span.value #tile-stored { "–" } }
            div.tile { span.label { "Refused /s" } span.value #tile-errors { "–" } }
            div.tile { span.label { "Queue backlog" } span.value #tile-queue { (state.queue.depth()) } }
            div.tile { span.label { "Worker lag" } span.value #tile-lag { "–" } }
        }
        section.card {
            h2 { "Events per second, last hour" }
            div #rates-chart data-source="/admin/dashboard.json" {
                p.hint #chart-empty { "The chart fills in as samples arrive (every " (SAMPLE_EVERY.as_secs()) " s)." }
            }
        }
        div.columns {
            section.card {
                h2 { "Top event types" }
                @if types.is_empty() {
                    p.hint { "No events yet." }
                } @else {
                    table {
                        thead { tr { th { "Type" } th.num { "Events" } } }
                        tbody {
                            @for t in &types {
                                tr {
                                    td { a href={ "/admin/events?category=" (segment(&t.category)) "&name=" (segment(&t.name)) } {
                                        (t.category) " / " (t.name) } }
                                    td.num { (t.event_count) }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Top error reasons, last 24 h" }
                @if reasons.is_empty() {
                    p.hint { "No errors in the last 24 hours." }
                } @else {
                    table {
                        thead { tr { th { "Reason" } th.num { "Errors" } } }
                        tbody {
                            @for (reason, count) in &reasons {
                                tr {
                                    td { a href={ "/admin/errors?reason=" (segment(reason)) } { code { (reason) } } }
                                    td.num { (count) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Dashboard, "Dashboard", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_differences_per_second_and_the_ring_keeps_an_hour() {
        let samples = Samples::default();
        for i in 0..(KEPT as u64 + 10) {
            samples.push(Sample {
                at_secs: i as f64 * 5.0,
                accepted: i * 50,
                stored: i * 40,
                errors: i,
            });
        }
        let [t, accepted, stored, errors] = samples.rates();
        assert_eq!(t.len(), KEPT - 1);
        assert!(accepted.iter().all(|r| (*r - 10.0).abs() < 1e-9));
        assert!(stored.iter().all(|r| (*r - 8.0).abs() < 1e-9));
        assert!(errors.iter().all(|r| (*r - 0.2).abs() < 1e-9));
        assert_eq!(*t.last().unwrap(), (KEPT as f64 + 9.0) * 5.0);
    }
}
