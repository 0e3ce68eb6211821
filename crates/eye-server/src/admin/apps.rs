//! Applications and tokens: list, create (the secret shown once, with a copy button),
//! change an application's allowed browser origins, revoke. Reading is for everyone
//! logged in (no secret is ever listed); changes are for admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use eye_core::auth::Scope;
use eye_core::retention::Retention;
use maud::{Markup, html};

use super::form::FormData;
use super::layout::{Nav, PageError, csrf_field, flash, page_with_status, segment, time};
use super::login::Viewer;
use crate::http::error::ApiError;
use crate::service::access::{self, ManageError};
use crate::service::lifecycle;
use crate::state::AppState;

/// What the page shows besides the lists.
#[derive(Default)]
struct Outcome {
    /// A secret just created: what it is for, and the secret itself.
    created: Option<(String, String)>,
    /// A refused form: which one, and why; the values are shown again.
    problem: Option<(&'static str, String)>,
    form: Option<FormData>,
    notice: Option<String>,
}

impl Outcome {
    fn value(&self, form: &'static str, field: &str) -> String {
        match (&self.problem, &self.form) {
            (Some((which, _)), Some(values)) if *which == form => values.text(field),
            _ => String::new(),
        }
    }

    fn problem(&self, form: &'static str) -> Option<&str> {
        self.problem
            .as_ref()
            .filter(|(which, _)| *which == form)
            .map(|(_, message)| message.as_str())
    }
}

/// One origin per line (or separated by spaces or commas).
fn origins(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `GET /admin/apps`
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    render(&state, &viewer, StatusCode::OK, Outcome::default()).await
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response, PageError> {
    let apps = state.store.list_apps().await?;
    let tokens = state.store.list_tokens().await?;
    let global_retention = state.settings.retention;
    let body = html! {
        @if let Some(notice) = &outcome.notice { (flash("ok", notice)) }
        @if let Some((what, secret)) = &outcome.created {
            section.card.secret #new-token {
                h2 { "New token for " (what) }
                p { "Copy it now: it is shown only once and stored only as a hash." }
                div.copy-row {
                    input #token-value readonly value=(secret) aria-label="The new token";
                    button.primary type="button" data-copy="#token-value" { "Copy" }
                }
            }
        }
        @if viewer.is_admin() {
            div.columns {
                section.card {
                    h2 { "New application" }
                    @if let Some(problem) = outcome.problem("app") { (flash("error", problem)) }
                    form method="post" action="/admin/apps" #create-app {
                        (csrf_field(viewer))
                        label { "Name" input name="name" required maxlength="128" value=(outcome.value("app", "name")); }
                        label { "Allowed browser origins (one per line, optional)"
                            textarea name="origins" rows="2" placeholder="https://shop.example.com" { (outcome.value("app", "origins")) }
                        }
                        button.primary type="submit" { "Create application and token" }
                    }
                }
                section.card {
                    h2 { "New token" }
                    @if let Some(problem) = outcome.problem("token") { (flash("error", problem)) }
                    form method="post" action="/admin/tokens" #create-token {
                        (csrf_field(viewer))
                        @let scope = outcome.value("token", "scope");
                        label { "Scope"
                            select name="scope" {
                                @for s in ["ingest", "read", "admin"] {
                                    option value=(s) selected[scope == s] { (s) }
                                }
                            }
                        }
                        label { "Application (ingest tokens only)"
                            select name="app" {
                                option value="" { "—" }
                                @for app in apps.iter().filter(|a| a.revoked_at.is_none()) {
                                    option value=(app.name) selected[outcome.value("token", "app") == app.name] { (app.name) }
                                }
                            }
                        }
                        label { "Label (optional)" input name="label" maxlength="256" value=(outcome.value("token", "label")); }
                        button.primary type="submit" { "Create token" }
                    }
                }
            }
        }
        section.card {
            h2 { "Applications" }
            @if let Some(problem) = outcome.problem("origins") { (flash("error", problem)) }
            @if apps.is_empty() {
                p.hint { "No applications yet." }
            } @else {
                div.table-wrap { table #apps {
                    thead { tr { th { "Name" } th { "Created" } th { "Allowed origins" } th { "Retention" } th { "Status" } @if viewer.is_admin() { th {} } } }
                    tbody {
                        @for app in &apps {
                            tr data-app=(app.name) {
                                td { a href={ "/admin/events?app=" (segment(&app.name)) } { (app.name) } }
                                td.nowrap { (time(app.created_at)) }
                                td {
                                    @if viewer.is_admin() && app.revoked_at.is_none() {
                                        form.inline method="post" action={ "/admin/apps/" (segment(&app.name)) "/origins" } {
                                            (csrf_field(viewer))
                                            textarea name="origins" rows="1" aria-label="Allowed origins" { (app.allowed_origins.join("\n")) }
                                            button type="submit" { "Save" }
                                        }
                                    } @else {
                                        (app.allowed_origins.join(", "))
                                    }
                                }
                                td {
                                    @if viewer.is_admin() && app.revoked_at.is_none() {
                                        form.inline method="post" action={ "/admin/apps/" (segment(&app.name)) "/retention" } {
                                            (csrf_field(viewer))
                                            input name="retention" size="8" aria-label="Retention"
                                                placeholder={ "global (" (global_retention) ")" }
                                                value=(app.retention.map(|r| r.to_string()).unwrap_or_default());
                                            button type="submit" { "Save" }
                                        }
                                    } @else {
                                        (app.retention.map_or_else(|| format!("global ({global_retention})"), |r| r.to_string()))
                                    }
                                }
                                td { @if let Some(at) = app.revoked_at { span.badge.dismissed { "revoked" } " " (time(at)) } @else { span.badge.ok { "active" } } }
                                @if viewer.is_admin() {
                                    td { @if app.revoked_at.is_none() { (revoke_button(viewer, &format!("/admin/apps/{}/revoke", segment(&app.name)), &format!("Revoke {} and all its tokens?", app.name))) } }
                                }
                            }
                        }
                    }
                } }
            }
        }
        section.card {
            h2 { "Tokens" }
            @if tokens.is_empty() {
                p.hint { "No tokens yet." }
            } @else {
                div.table-wrap { table #tokens {
                    thead { tr { th { "Id" } th { "Scope" } th { "Application" } th { "Label" } th { "Created" } th { "Status" } @if viewer.is_admin() { th {} } } }
                    tbody {
                        @for token in &tokens {
                            tr {
                                td.num { (token.id) }
                                td { (token.scope) }
                                td { (token.app.as_deref().unwrap_or("")) }
                                td { (token.label.as_deref().unwrap_or("")) }
                                td.nowrap { (time(token.created_at)) }
                                td { @if token.revoked_at.is_some() { span.badge.dismissed { "revoked" } } @else { span.badge.ok { "active" } } }
                                @if viewer.is_admin() {
                                    td { @if token.revoked_at.is_none() { (revoke_button(viewer, &format!("/admin/tokens/{}/revoke", token.id), &format!("Revoke token {}?", token.id))) } }
                                }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(page_with_status(
        status,
        viewer,
        Nav::Apps,
        "Applications & tokens",
        body,
    ))
}

fn revoke_button(viewer: &Viewer, action: &str, question: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=(question) {
            (csrf_field(viewer))
            button.danger type="submit" { "Revoke" }
        }
    }
}

/// A refused form is shown again with its values; anything else is an error page.
async fn refused(
    state: &AppState,
    viewer: &Viewer,
    form_id: &'static str,
    form: FormData,
    error: ManageError,
) -> Result<Response, PageError> {
    let api = ApiError::from(error);
    if api.status.is_server_error() {
        return Err(api.into());
    }
    let status = if api.status == StatusCode::BAD_REQUEST {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        api.status
    };
    let outcome = Outcome {
        problem: Some((form_id, api.message)),
        form: Some(form),
        ..Outcome::default()
    };
    render(state, viewer, status, outcome).await
}

/// `POST /admin/apps` (admins)
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = viewer.admin_form(&body)?;
    let name = form.text("name");
    let origins = origins(&form.text("origins"));
    match access::create_app(state.store.as_ref(), &viewer.actor(), &name, &origins).await {
        Ok((app, secret)) => {
            state.origins.forget();
            let outcome = Outcome {
                created: Some((format!("application {}", app.name), secret)),
                notice: Some(format!("Application {} created.", app.name)),
                ..Outcome::default()
            };
            render(&state, &viewer, StatusCode::CREATED, outcome).await
        }
        Err(error) => refused(&state, &viewer, "app", form, error).await,
    }
}

/// `POST /admin/tokens` (admins)
pub async fn create_token(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = viewer.admin_form(&body)?;
    let Some(scope) = Scope::parse(&form.text("scope")) else {
        let error = PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The scope must be ingest, read or admin.",
        );
        return Err(error);
    };
    let app = form.text("app");
    let label = form.text("label");
    let created = access::create_token(
        state.store.as_ref(),
        &viewer.actor(),
        scope,
        (!app.is_empty()).then_some(app.as_str()),
        (!label.is_empty()).then_some(label.as_str()),
    )
    .await;
    match created {
        Ok((id, secret)) => {
            let outcome = Outcome {
                created: Some((format!("{} token {id}", scope.as_str()), secret)),
                ..Outcome::default()
            };
            render(&state, &viewer, StatusCode::CREATED, outcome).await
        }
        Err(error) => refused(&state, &viewer, "token", form, error).await,
    }
}

/// `POST /admin/apps/{name}/origins` (admins)
pub async fn set_origins(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = viewer.admin_form(&body)?;
    let origins = origins(&form.text("origins"));
    match access::set_origins(state.store.as_ref(), &viewer.actor(), &name, &origins).await {
        Ok(_) => {
            state.origins.forget();
            Ok(Redirect::to("/admin/apps").into_response())
        }
        Err(error) => refused(&state, &viewer, "origins", form, error).await,
    }
}

/// `POST /admin/apps/{name}/retention` (admins): an empty field means the global one.
pub async fn set_retention(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = viewer.admin_form(&body)?;
    let text = form.text("retention");
    let retention = match text.trim() {
        "" => None,
        other => Some(
            other
                .parse::<Retention>()
                .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        ),
    };
    lifecycle::set_app_retention(state.store.as_ref(), &viewer.actor(), &name, retention).await?;
    Ok(Redirect::to("/admin/apps").into_response())
}

/// `POST /admin/apps/{name}/revoke` (admins)
pub async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    viewer.admin_form(&body)?;
    access::revoke_app(state.store.as_ref(), &viewer.actor(), &name)
        .await
        .map_err(ApiError::from)?;
    state.auth.forget_all();
    Ok(Redirect::to("/admin/apps").into_response())
}

/// `POST /admin/tokens/{id}/revoke` (admins)
pub async fn revoke_token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    viewer.admin_form(&body)?;
    let id: i64 = id
        .parse()
        .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, "A token id is a number."))?;
    access::revoke_token(state.store.as_ref(), &viewer.actor(), id)
        .await
        .map_err(ApiError::from)?;
    state.auth.forget_all();
    Ok(Redirect::to("/admin/apps").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_split_on_lines_spaces_and_commas() {
        assert_eq!(
            origins("https://a.example\r\nhttps://b.example, https://c.example  "),
            [
                "https://a.example",
                "https://b.example",
                "https://c.example"
            ]
        );
        assert!(origins(" \n ").is_empty());
    }
}
