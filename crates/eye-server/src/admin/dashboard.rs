//! The dashboard: accepted, stored and refused events per second over the last hour
//! (a chart the page refreshes every few seconds), the queue's backlog and the worker's
//! lag, the busiest event types and the commonest error reasons.
//!
//! The rates come from this process's counters, sampled every [`SAMPLE_EVERY`] into a
//! ring of one hour; in the distributed mode an API process shows what it accepted and
//! refused (its stored rate is the worker's, on the worker's `/metrics`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use eye_core::Timestamp;
use eye_store::RefusedFilter;
use maud::html;
use serde_json::{Value, json};

use super::layout::{Nav, PageError, page, segment};
use super::login::Viewer;
use crate::http::telemetry;
use crate::state::AppState;

const TOP: usize = 10;
const DAY_MICROS: i64 = 24 * 3_600_000_000;

/// `GET /admin/dashboard.json`: what the chart and the tiles show, refreshed by the page.
pub async fn figures(State(state): State<AppState>, _viewer: Viewer) -> Json<Value> {
    let [t, accepted, stored, errors] = state.samples.rates();
    let lag = telemetry::oldest_age_seconds(state.queue.as_ref()).await;
    Json(json!({
        "t": t,
        "accepted": accepted,
        "stored": stored,
        "errors": errors,
        "queue_depth": state.queue.depth(),
        "lag_seconds": if lag.is_finite() { Some(lag) } else { None },
        "sample_seconds": telemetry::SAMPLE_EVERY.as_secs(),
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
                p.hint #chart-empty { "The chart fills in as samples arrive (every " (telemetry::SAMPLE_EVERY.as_secs()) " s)." }
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
