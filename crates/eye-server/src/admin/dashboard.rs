//! The dashboard: ingested, stored and refused events over a range the user picks
//! (the last hour per minute, a day or a week per hour, 30 days per day; drag on the
//! chart to zoom), per application; the queue's backlog and the worker's lag, live; the
//! busiest event types and the commonest error reasons.
//!
//! The counts come from the store (the per-minute rollups `/stats` reads, and the error
//! store), so they survive a restart and every process of a fleet shows the same ones.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::Response;
use eye_core::Timestamp;
use eye_store::{Bucket, GroupBy, RefusedFilter, StatsQuery};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::layout::{Nav, PageError, page, segment};
use super::login::Viewer;
use crate::http::error::ApiError;
use crate::http::telemetry;
use crate::state::AppState;

const TOP: usize = 10;
const DAY_MICROS: i64 = 24 * 3_600_000_000;

/// The ranges the dashboard offers: (name, span, bucket).
const RANGES: [(&str, i64, Bucket); 4] = [
    ("1h", 3_600_000_000, Bucket::Minute),
    ("24h", DAY_MICROS, Bucket::Hour),
    ("7d", 7 * DAY_MICROS, Bucket::Hour),
    ("30d", 30 * DAY_MICROS, Bucket::Day),
];

#[derive(Deserialize)]
pub struct RangeParam {
    range: Option<String>,
}

/// `GET /admin/dashboard.json?range=1h|24h|7d|30d`: what the chart, the tiles and the
/// per-application table show, refreshed by the page.
pub async fn figures(
    State(state): State<AppState>,
    _viewer: Viewer,
    Query(param): Query<RangeParam>,
) -> Result<Json<Value>, ApiError> {
    let wanted = param.range.as_deref().unwrap_or("1h");
    let Some(&(name, span, bucket)) = RANGES.iter().find(|(name, ..)| *name == wanted) else {
        return Err(ApiError::bad_parameter(
            "range",
            "`range` must be 1h, 24h, 7d or 30d",
        ));
    };
    // Whole buckets, the last one the current.
    let step = bucket.micros();
    let to = (Timestamp::now().as_micros() / step + 1) * step;
    let from = to - span;
    let (from_ts, to_ts) = (Timestamp::from_micros(from), Timestamp::from_micros(to));
    let stored = state
        .store
        .stats(StatsQuery {
            group_by: vec![GroupBy::App],
            bucket: Some(bucket),
            from: Some(from_ts),
            to: Some(to_ts),
        })
        .await?;
    let refused = state
        .store
        .refused_per_bucket(from_ts, to_ts, bucket)
        .await?;
    let buckets = ((to - from) / step) as usize;
    let index =
        |at: Timestamp| ((at.as_micros() - from) / step).clamp(0, buckets as i64 - 1) as usize;
    let mut stored_series = vec![0i64; buckets];
    let mut refused_series = vec![0i64; buckets];
    let mut by_app: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for row in &stored {
        if let Some(at) = row.bucket {
            stored_series[index(at)] += row.count;
        }
        by_app
            .entry(row.app.clone().unwrap_or_default())
            .or_default()
            .0 += row.count;
    }
    for row in &refused {
        refused_series[index(row.bucket)] += row.count;
        by_app.entry(row.app.clone()).or_default().1 += row.count;
    }
    let t: Vec<i64> = (0..buckets as i64)
        .map(|i| (from + i * step) / 1_000_000)
        .collect();
    let ingested: Vec<i64> = stored_series
        .iter()
        .zip(&refused_series)
        .map(|(s, r)| s + r)
        .collect();
    let lag = telemetry::oldest_age_seconds(state.queue.as_ref()).await;
    Ok(Json(json!({
        "range": name,
        "bucket_seconds": step / 1_000_000,
        "from": from_ts,
        "to": to_ts,
        "t": t,
        "ingested": ingested,
        "stored": stored_series,
        "refused": refused_series,
        "totals": {
            "ingested": ingested.iter().sum::<i64>(),
            "stored": stored_series.iter().sum::<i64>(),
            "refused": refused_series.iter().sum::<i64>(),
        },
        "by_app": by_app
            .into_iter()
            .map(|(app, (stored, refused))| json!({"app": app, "stored": stored, "refused": refused}))
            .collect::<Vec<_>>(),
        "queue_depth": state.queue.depth(),
        "lag_seconds": if lag.is_finite() { Some(lag) } else { None },
    })))
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
        nav.ranges aria-label="Range" {
            @for (range, ..) in RANGES {
                button type="button" data-range=(range) aria-pressed=(range == "1h") { (range) }
            }
        }
        section.tiles {
            div.tile { span.label { "Ingested" } span.value #tile-ingested { "–" } }
            div.tile { span.label { "Stored" } span.value #tile-stored { "–" } }
            div.tile { span.label { "Refused" } span.value #tile-refused { "–" } }
            div.tile { span.label { "Queue backlog" } span.value #tile-queue { (state.queue.depth()) } }
            div.tile { span.label { "Worker lag" } span.value #tile-lag { "–" } }
        }
        section.card {
            h2 #chart-title { "Events per minute, last hour" }
            div #rates-chart data-source="/admin/dashboard.json" {}
            p.hint {
                "From the store, so the same after a restart and on every process: stored events at their own time, as "
                code { "/stats" } " counts them; refused ones at their reception, as " code { "/errors/summary" }
                " does. Drag across the chart to zoom; double-click to zoom out."
            }
        }
        section.card {
            h2 { "By application" }
            table {
                thead { tr { th { "Application" } th.num { "Stored" } th.num { "Refused" } } }
                tbody #by-app {}
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
