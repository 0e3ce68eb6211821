//! Events, one event, sessions and one session's timeline: the same filters and
//! indexed queries as `GET /events` and `GET /sessions/{id}`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use eye_store::{EventQuery, Order, SessionCursor, SessionQuery, StoredEvent};
use maud::{Markup, html};
use uuid::Uuid;

use super::form::FormData;
use super::layout::{
    Nav, PageError, csrf_field, flash, gap, page, page_with_status, pretty_json, segment, time,
};
use super::login::Viewer;
use crate::http::query::Params;
use crate::http::query::{PARAMETERS, event_query, with_cursor};
use crate::service::lifecycle;
use crate::state::AppState;

const PAGE_SIZE: u32 = 50;
const TIMELINE_PAGE: u32 = 500;
const PREVIEW_CHARS: usize = 120;

/// The filter form's fields as the browser sent them.
#[derive(Default)]
struct Filters {
    pairs: Vec<(String, String)>,
}

impl Filters {
    fn from_query(query: Option<&str>) -> Filters {
        let form = FormData::parse(query.unwrap_or_default().as_bytes());
        let mut pairs = Vec::new();
        for name in [
            "session_id",
            "category",
            "name",
            "app",
            "from",
            "to",
            "field",
            "value",
            "limit",
            "order",
        ] {
            let value = form.text(name);
            if !value.is_empty() {
                pairs.push((name.to_owned(), value));
            }
        }
        Filters { pairs }
    }

    fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The same filters in `GET /events`' words: a payload field becomes
    /// `data.<field>=<value>`, a `datetime-local` time becomes RFC 3339 (UTC).
    fn api_query(&self, cursor: Option<&str>) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.pairs {
            match name.as_str() {
                "field" | "value" => {}
                "from" | "to" => {
                    out.append_pair(name, &rfc3339(value));
                }
                _ => {
                    out.append_pair(name, value);
                }
            }
        }
        let field = self.get("field");
        if !field.is_empty() {
            out.append_pair(
                &format!("data.{}", field.trim_start_matches("data.")),
                self.get("value"),
            );
        }
        if let Some(cursor) = cursor {
            out.append_pair("cursor", cursor);
        }
        out.finish()
    }

    /// This page's own query string plus a cursor, for the next-page link.
    fn link(&self, cursor: Option<&str>) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.pairs {
            out.append_pair(name, value);
        }
        if let Some(cursor) = cursor {
            out.append_pair("cursor", cursor);
        }
        out.finish()
    }
}

/// `2026-11-29T10:30` (what a `datetime-local` input sends) → `2026-11-29T10:30:00Z`.
fn rfc3339(value: &str) -> String {
    match value.len() {
        16 if value.as_bytes()[10] == b'T' => format!("{value}:00Z"),
        19 if value.as_bytes()[10] == b'T' => format!("{value}Z"),
        _ => value.to_owned(),
    }
}

/// `GET /admin/events`
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let filters = Filters::from_query(query.as_deref());
    let cursor = FormData::parse(query.as_deref().unwrap_or_default().as_bytes()).text("cursor");
    let api_query = filters.api_query((!cursor.is_empty()).then_some(cursor.as_str()));
    let parsed = Params::parse(Some(&api_query), &PARAMETERS)
        .and_then(|params| with_cursor(&params, event_query(&params, PAGE_SIZE)?));
    let (result, status) = match parsed {
        Ok(event_query) => {
            let scope = event_query.scope();
            match state.store.events(event_query).await {
                Ok(page) => (Ok((page, scope)), StatusCode::OK),
                Err(error) => return Err(error.into()),
            }
        }
        Err(error) => (Err(error.message), StatusCode::BAD_REQUEST),
    };
    let body = html! {
        (filter_form(&filters))
        @match &result {
            Err(message) => { (flash("error", message)) }
            Ok((page, scope)) => {
                @if page.items.is_empty() {
                    p.hint #no-events { "No events match these filters." }
                } @else {
                    (events_table(&page.items, false))
                }
                nav.pager {
                    @if !cursor.is_empty() {
                        a href={ "/admin/events?" (filters.link(None)) } { "← First page" }
                    }
                    @if let Some(next) = page.next {
                        a #next-page href={ "/admin/events?" (filters.link(Some(&next.encode_in(*scope)))) } { "Next page →" }
                    }
                }
            }
        }
    };
    Ok(page_with_status(
        status,
        &viewer,
        Nav::Events,
        "Events",
        body,
    ))
}

fn filter_form(filters: &Filters) -> Markup {
    html! {
        form.filters method="get" action="/admin/events" #event-filters {
            label { "Session" input name="session_id" value=(filters.get("session_id")); }
            label { "Category" input name="category" value=(filters.get("category")); }
            label { "Name" input name="name" value=(filters.get("name")); }
            label { "Application" input name="app" value=(filters.get("app")); }
            label { "From (UTC)" input type="datetime-local" step="1" name="from" value=(filters.get("from")); }
            label { "To (UTC)" input type="datetime-local" step="1" name="to" value=(filters.get("to")); }
            label { "Payload field" input name="field" placeholder="e.g. element or form.id" value=(filters.get("field")); }
            label { "equals" input name="value" value=(filters.get("value")); }
            div.actions {
                button.primary type="submit" { "Filter" }
                a href="/admin/events" { "Clear" }
            }
        }
    }
}

/// A table of events; `timeline` adds the time since the previous row.
fn events_table(events: &[StoredEvent], timeline: bool) -> Markup {
    html! {
        div.table-wrap {
            table.events.clickable {
                thead { tr {
                    th { "Time (UTC)" }
                    @if timeline { th.num { "Since previous" } }
                    @else { th { "Session" } }
                    th { "Type" } th { "Application" } th { "Data" }
                } }
                tbody {
                    @for (index, event) in events.iter().enumerate() {
                        tr data-href={ "/admin/events/" (event.id) } {
                            td.nowrap { a href={ "/admin/events/" (event.id) } { (time(event.timestamp)) } }
                            @if timeline {
                                td.num.nowrap { @if index > 0 {
                                    (gap(event.timestamp.as_micros() - events[index - 1].timestamp.as_micros()))
                                } }
                            } @else {
                                td { a href={ "/admin/sessions/" (segment(&event.session_id)) } { code { (event.session_id) } } }
                            }
                            td.nowrap { (event.category) " / " (event.name) }
                            td { (event.app) }
                            td { code.preview { (preview(event.data.get())) } }
                        }
                    }
                }
            }
        }
    }
}

fn preview(json: &str) -> String {
    match json.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &json[..cut]),
        None => json.to_owned(),
    }
}

/// `GET /admin/events/{id}`
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let uuid = Uuid::parse_str(&id)
        .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, "An event id is a UUID."))?;
    let event = state
        .store
        .event(uuid)
        .await?
        .ok_or_else(|| PageError::not_found(format!("No event {id}.")))?;
    let body = html! {
        section.card {
            dl.facts {
                dt { "Id" } dd { code { (event.id) } }
                dt { "Type" } dd { (event.category) " / " (event.name) }
                dt { "Session" } dd { a href={ "/admin/sessions/" (segment(&event.session_id)) } { code { (event.session_id) } } }
                dt { "Application" } dd { (event.app) }
                dt { "Time" } dd { (time(event.timestamp)) }
                dt { "Received" } dd { (time(event.received_at)) }
                @if let Some(sent) = event.sent_at { dt { "Sent" } dd { (time(sent)) } }
                dt { "Sequence" } dd { (event.seq) }
                @if let Some(client_id) = &event.client_id { dt { "Client id" } dd { code { (client_id) } } }
                dt { "Schema version" } dd { (event.schema_version.map_or("none".to_owned(), |v| v.to_string())) }
            }
            h2 { "Data" }
            pre.json #event-data { (pretty_json(event.data.get())) }
        }
    };
    Ok(page(&viewer, Nav::Events, "Event", body))
}

/// `GET /admin/sessions`
pub async fn sessions(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let form = FormData::parse(query.as_deref().unwrap_or_default().as_bytes());
    let open = form.text("open");
    if !open.is_empty() {
        return Ok(Redirect::to(&format!("/admin/sessions/{}", segment(&open))).into_response());
    }
    let app = form.text("app");
    let erased = form.text("erased");
    let cursor = form.text("cursor");
    let after =
        if cursor.is_empty() {
            None
        } else {
            Some(SessionCursor::decode(&cursor).map_err(|e| {
                PageError::new(StatusCode::BAD_REQUEST, format!("Bad page link: {e}"))
            })?)
        };
    let (sessions, next) = state
        .store
        .sessions(SessionQuery {
            app: (!app.is_empty()).then(|| app.clone()),
            from: None,
            to: None,
            limit: PAGE_SIZE,
            after,
        })
        .await?;
    let body = html! {
        @if !erased.is_empty() { (flash("ok", &erased)) }
        div.columns {
            form.filters method="get" action="/admin/sessions" {
                label { "Application" input name="app" value=(app); }
                div.actions { button.primary type="submit" { "Filter" } }
            }
            form.filters method="get" action="/admin/sessions" #open-session {
                label { "Session id" input name="open" required; }
                div.actions { button type="submit" { "Open" } }
            }
        }
        @if sessions.is_empty() {
            p.hint { "No sessions yet." }
        } @else {
            div.table-wrap { table.clickable {
                thead { tr { th { "Session" } th { "First event" } th { "Last event" } th.num { "Events" } th { "Applications" } } }
                tbody {
                    @for s in &sessions {
                        tr data-href={ "/admin/sessions/" (segment(&s.session_id)) } {
                            td { a href={ "/admin/sessions/" (segment(&s.session_id)) } { code { (s.session_id) } } }
                            td.nowrap { (time(s.first_seen)) }
                            td.nowrap { (time(s.last_seen)) }
                            td.num { (s.event_count) }
                            td { (s.apps.join(", ")) }
                        }
                    }
                }
            } }
        }
        nav.pager {
            @if let Some(next) = next {
                a href={ "/admin/sessions?" (form_urlencoded::Serializer::new(String::new()).append_pair("app", &app).append_pair("cursor", &next.encode()).finish()) } { "Next page →" }
            }
        }
    };
    Ok(page(&viewer, Nav::Sessions, "Sessions", body))
}

/// `GET /admin/sessions/{id}`
pub async fn session(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(session_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let known = !session_id.chars().any(char::is_control);
    let summary = if known {
        state.store.session(&session_id).await?
    } else {
        None
    };
    let summary =
        summary.ok_or_else(|| PageError::not_found(format!("No session {session_id:?}.")))?;
    let cursor = FormData::parse(query.as_deref().unwrap_or_default().as_bytes()).text("cursor");
    let after =
        if cursor.is_empty() {
            None
        } else {
            Some(eye_store::Cursor::decode(&cursor).map_err(|e| {
                PageError::new(StatusCode::BAD_REQUEST, format!("Bad page link: {e}"))
            })?)
        };
    let timeline = state
        .store
        .events(EventQuery {
            session_id: Some(session_id.clone()),
            order: Order::Asc,
            limit: TIMELINE_PAGE,
            after,
            ..EventQuery::default()
        })
        .await?;
    let duration = summary.last_seen.as_micros() - summary.first_seen.as_micros();
    let body = html! {
        section.card {
            dl.facts {
                dt { "Session" } dd { code #session-id { (summary.session_id) } }
                dt { "Events" } dd #session-count { (summary.event_count) }
                dt { "First event" } dd { (time(summary.first_seen)) }
                dt { "Last event" } dd { (time(summary.last_seen)) }
                dt { "Duration" } dd { (gap(duration).trim_start_matches('+')) }
                dt { "Applications" } dd #session-apps { (summary.apps.join(", ")) }
            }
            @if viewer.is_admin() {
                form.inline method="post" action={ "/admin/sessions/" (segment(&session_id)) "/erase" }
                    data-confirm={ "Erase session " (session_id) " everywhere: its events, its refused events, the session? This cannot be undone." } {
                    (csrf_field(&viewer))
                    button.danger type="submit" #erase-session { "Erase this session" }
                }
            }
        }
        h2 { "Timeline" }
        (events_table(&timeline.items, true))
        nav.pager {
            @if let Some(next) = timeline.next {
                a href={ "/admin/sessions/" (segment(&session_id)) "?cursor=" (next.encode()) } { "Later events →" }
            }
        }
    };
    Ok(page(&viewer, Nav::Sessions, "Session", body))
}

/// `POST /admin/sessions/{id}/erase` (admins): erases the session everywhere, as
/// `DELETE /sessions/{id}` does, then shows the sessions with what was removed.
pub async fn erase(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(session_id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    viewer.admin_form(&body)?;
    let erasure =
        lifecycle::erase_session(state.store.as_ref(), &viewer.actor(), &session_id, None).await?;
    let removed = erasure.removed;
    let note = format!(
        "Erased session {session_id}: {} events, {} refused events.",
        removed.events, removed.refused
    );
    Ok(Redirect::to(&format!("/admin/sessions?erased={}", segment(&note))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_become_the_apis_parameters() {
        let filters = Filters::from_query(Some(
            "session_id=&category=page+interaction&from=2026-11-29T10%3A30&field=element&value=signup&to=",
        ));
        let query = filters.api_query(None);
        let params = Params::parse(Some(&query), &PARAMETERS).unwrap();
        assert_eq!(params.text("category").as_deref(), Some("page interaction"));
        assert_eq!(params.text("from").as_deref(), Some("2026-11-29T10:30:00Z"));
        assert_eq!(params.text("data.element").as_deref(), Some("signup"));
        assert_eq!(
            params.text("session_id"),
            None,
            "empty fields are no filter"
        );
        assert!(event_query(&params, PAGE_SIZE).is_ok());
    }

    #[test]
    fn previews_are_cut_on_a_character_boundary() {
        let long = "é".repeat(200);
        let cut = preview(&long);
        assert_eq!(cut.chars().count(), PREVIEW_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(preview("{}"), "{}");
    }
}
