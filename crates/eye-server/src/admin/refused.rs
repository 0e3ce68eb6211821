//! The error store: counts by reason and type, the errors themselves, one error's
//! violations and raw event; admins dismiss one or reprocess a filtered set.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use eye_core::Timestamp;
use eye_core::reason::REASON_CODES;
use eye_store::{RefusedQuery, RefusedStatus};
use maud::{Markup, html};

use super::form::FormData;
use super::layout::{Nav, PageError, csrf_field, flash, page_with_status, pretty_json, time};
use super::login::Viewer;
use crate::http::query::Params;
use crate::http::query::{REFUSED_FILTER, refused_filter, refused_key};
use crate::service::refused;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;
/// The counts by reason and type cover this many days.
const SUMMARY_DAYS: i64 = 7;
const FIELDS: [&str; 5] = ["status", "reason", "category", "name", "app"];

/// The filter fields that were filled in, in `/errors`' words.
fn filter_pairs(form: &FormData) -> Vec<(&'static str, String)> {
    FIELDS
        .into_iter()
        .map(|name| (name, form.text(name)))
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

fn encode(pairs: &[(&str, String)], extra: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        out.append_pair(name, value);
    }
    for (name, value) in extra {
        out.append_pair(name, value);
    }
    out.finish()
}

/// `GET /admin/errors`
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let form = FormData::parse(query.as_deref().unwrap_or_default().as_bytes());
    let pairs = filter_pairs(&form);
    let cursor = form.text("cursor");
    let mut problem = None;
    let filter = match Params::parse(Some(&encode(&pairs, &[])), &REFUSED_FILTER)
        .and_then(|params| refused_filter(&params))
    {
        Ok(filter) => Some(filter),
        Err(error) => {
            problem = Some(error.message);
            None
        }
    };
    let before_id = match cursor.parse::<i64>() {
        Ok(id) => Some(id),
        Err(_) if cursor.is_empty() => None,
        Err(_) => return Err(PageError::new(StatusCode::BAD_REQUEST, "Bad page link.")),
    };
    let (summary, errors) = match &filter {
        Some(filter) => {
            let to = Timestamp::now();
            let mut window = filter.clone();
            window.from = Some(Timestamp::from_micros(
                to.as_micros() - SUMMARY_DAYS * 24 * 3_600_000_000,
            ));
            window.to = Some(to);
            let summary = state.store.refused_summary(window).await?;
            let errors = state
                .store
                .refused_events(RefusedQuery {
                    filter: filter.clone(),
                    limit: PAGE_SIZE,
                    before_id,
                })
                .await?;
            (Some(summary), Some(errors))
        }
        None => (None, None),
    };
    let notice = match (form.get("reprocessed"), form.get("still_invalid")) {
        (Some(done), Some(left)) => Some(format!(
            "Reprocessed: {done} became events; {left} are still invalid."
        )),
        _ => None,
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        @if let Some(notice) = &notice { (flash("ok", notice)) }
        @if let Some(problem) = &problem { (flash("error", problem)) }
        (filter_form(&form))
        @if let Some(summary) = &summary {
            section.card {
                h2 { "By reason and type, last " (SUMMARY_DAYS) " days" }
                @if summary.by_reason_and_type.is_empty() {
                    p.hint { "No errors match." }
                } @else {
                    div.table-wrap { table #error-groups {
                        thead { tr { th { "Reason" } th { "Type" } th.num { "Errors" } } }
                        tbody {
                            @for group in &summary.by_reason_and_type {
                                tr {
                                    td { a href={ "/admin/errors?" (group_link(&pairs, group)) } { code { (group.reason) } } }
                                    td { @match (&group.category, &group.name) {
                                        (Some(c), Some(n)) => { (c) " / " (n) }
                                        _ => { span.hint { "(no type)" } }
                                    } }
                                    td.num { (group.count) }
                                }
                            }
                        }
                    } }
                }
            }
        }
        @if viewer.is_admin() && problem.is_none() {
            section.card.actions-card {
                form method="post" action={ "/admin/errors/reprocess?" (encode(&pairs, &[])) } #reprocess {
                    (csrf_field(&viewer))
                    p { "Recheck the " strong { "open" } " errors matching these filters against the current schemas; those valid now become events (same id, original time)." }
                    button.primary type="submit" { "Reprocess matching errors" }
                }
            }
        }
        @if let Some(errors) = &errors {
            @if errors.items.is_empty() {
                p.hint #no-errors { "No errors match these filters." }
            } @else {
                div.table-wrap { table.clickable #error-list {
                    thead { tr { th { "Received (UTC)" } th { "Reason" } th { "Type" } th { "Application" } th { "Message" } th { "Status" } } }
                    tbody {
                        @for error in &errors.items {
                            tr data-href={ "/admin/errors/" (error.id) } {
                                td.nowrap { a href={ "/admin/errors/" (error.id) } { (time(error.received_at)) } }
                                td { code { (error.reason) } }
                                td.nowrap { @if let (Some(c), Some(n)) = (&error.category, &error.name) { (c) " / " (n) } }
                                td { (error.app) }
                                td { (error.message) }
                                td { (status_badge(error.status)) }
                            }
                        }
                    }
                } }
            }
            nav.pager {
                @if let Some(next) = errors.next {
                    a href={ "/admin/errors?" (encode(&pairs, &[("cursor", &next.pk.to_string())])) } { "Older errors →" }
                }
            }
        }
    };
    Ok(page_with_status(
        status,
        &viewer,
        Nav::Errors,
        "Errors",
        body,
    ))
}

/// The list narrowed to one group of the counts, keeping the other filters.
fn group_link(pairs: &[(&'static str, String)], group: &eye_store::RefusedCount) -> String {
    let mut link: Vec<(&str, String)> = pairs
        .iter()
        .filter(|(name, _)| !matches!(*name, "reason" | "category" | "name"))
        .cloned()
        .collect();
    link.push(("reason", group.reason.clone()));
    if let (Some(category), Some(name)) = (&group.category, &group.name) {
        link.push(("category", category.clone()));
        link.push(("name", name.clone()));
    }
    encode(&link, &[])
}

fn filter_form(form: &FormData) -> Markup {
    let status = form.text("status");
    let reason = form.text("reason");
    html! {
        form.filters method="get" action="/admin/errors" #error-filters {
            label { "Status"
                select name="status" {
                    option value="" selected[status.is_empty()] { "any" }
                    @for s in RefusedStatus::ALL {
                        option value=(s.as_str()) selected[status == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Reason"
                select name="reason" {
                    option value="" selected[reason.is_empty()] { "any" }
                    @for (code, _) in REASON_CODES {
                        option value=(code) selected[reason == code] { (code) }
                    }
                }
            }
            label { "Category" input name="category" value=(form.text("category")); }
            label { "Name" input name="name" value=(form.text("name")); }
            label { "Application" input name="app" value=(form.text("app")); }
            div.actions {
                button.primary type="submit" { "Filter" }
                a href="/admin/errors" { "Clear" }
            }
        }
    }
}

fn status_badge(status: RefusedStatus) -> Markup {
    html! { span class={ "badge " (status.as_str()) } { (status.as_str()) } }
}

/// `GET /admin/errors/{id}`
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let error = state
        .store
        .refused_event(refused_key(&id)?)
        .await?
        .ok_or_else(|| PageError::not_found(format!("No error {id}.")))?;
    let dismissed_now = query.as_deref() == Some("dismissed=1");
    let body = html! {
        @if dismissed_now { (flash("ok", "Dismissed.")) }
        section.card {
            dl.facts {
                dt { "Status" } dd #error-status { (status_badge(error.status)) }
                dt { "Reason" } dd { code { (error.reason) } }
                dt { "Message" } dd { (error.message) }
                @if let Some(field) = &error.field { dt { "Field" } dd { code { (field) } } }
                @if let (Some(c), Some(n)) = (&error.category, &error.name) { dt { "Type" } dd { (c) " / " (n) } }
                dt { "Application" } dd { (error.app) }
                @if let Some(session) = &error.session_id { dt { "Session" } dd { code { (session) } } }
                dt { "Event id" } dd { code { (error.event_id) } }
                dt { "Received" } dd { (time(error.received_at)) }
                @if let Some(updated) = error.updated_at { dt { "Updated" } dd { (time(updated)) } }
            }
            @if viewer.is_admin() && matches!(error.status, RefusedStatus::Open | RefusedStatus::Warning) {
                form method="post" action={ "/admin/errors/" (error.id) "/dismiss" } #dismiss {
                    (csrf_field(&viewer))
                    button.danger type="submit" { "Dismiss" }
                }
            }
        }
        @if !error.violations.is_empty() {
            section.card {
                h2 { "Violations" }
                div.table-wrap { table {
                    thead { tr { th { "Where" } th { "Rule" } th { "Message" } } }
                    tbody { @for v in &error.violations {
                        tr { td { code { "data" (v.pointer) } } td { code { (v.rule) } } td { (v.message) } }
                    } }
                } }
            }
        }
        section.card {
            h2 { "Raw event" }
            pre.json #raw-event { (pretty_json(error.raw.get())) }
        }
    };
    Ok(page_with_status(
        StatusCode::OK,
        &viewer,
        Nav::Errors,
        &format!("Error {}", error.id),
        body,
    ))
}

/// `POST /admin/errors/{id}/dismiss` (admins)
pub async fn dismiss(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    viewer.admin_form(&body)?;
    let record = refused::dismiss(
        state.store.as_ref(),
        &viewer.actor(),
        refused_key(&id)?,
        &id,
    )
    .await?;
    Ok(Redirect::to(&format!("/admin/errors/{}?dismissed=1", record.id)).into_response())
}

/// `POST /admin/errors/reprocess?<filters>` (admins)
pub async fn reprocess(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, PageError> {
    viewer.admin_form(&body)?;
    let form = FormData::parse(query.as_deref().unwrap_or_default().as_bytes());
    // Only open errors are rechecked, whatever the page's status filter said.
    let pairs: Vec<_> = filter_pairs(&form)
        .into_iter()
        .filter(|(name, _)| *name != "status")
        .collect();
    let filter = Params::parse(Some(&encode(&pairs, &[])), &REFUSED_FILTER)
        .and_then(|params| refused_filter(&params))?;
    let described = format!("errors:{}", encode(&pairs, &[]));
    let outcome = refused::reprocess(
        state.store.as_ref(),
        &state.checker,
        &state.metrics.pipeline,
        &viewer.actor(),
        filter,
        &described,
    )
    .await?;
    let done = outcome.reprocessed.to_string();
    let left = outcome.still_invalid.to_string();
    let target = format!(
        "/admin/errors?{}",
        encode(&pairs, &[("reprocessed", &done), ("still_invalid", &left)])
    );
    Ok(Redirect::to(&target).into_response())
}
