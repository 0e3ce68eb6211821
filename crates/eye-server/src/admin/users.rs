//! Users (admins only): who may log in, with which role; add one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use maud::html;

use super::form::FormData;
use super::layout::{Nav, PageError, csrf_field, flash, page_with_status, time};
use super::login::Viewer;
use crate::service::users::{MIN_PASSWORD_LEN, Role, UserError, create_user};
use crate::state::AppState;

/// `GET /admin/users`
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    viewer.require_admin()?;
    render(&state, &viewer, StatusCode::OK, None, None).await
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: Option<&FormData>,
    message: Option<(&str, String)>,
) -> Result<Response, PageError> {
    let users = state.store.list_users().await?;
    let value = |field: &str| form.map(|f| f.text(field)).unwrap_or_default();
    let role = value("role");
    let body = html! {
        @if let Some((kind, message)) = &message { (flash(kind, message)) }
        section.card {
            h2 { "New user" }
            form method="post" action="/admin/users" #create-user {
                (csrf_field(viewer))
                label { "Email" input type="email" name="email" required value=(value("email")) autocomplete="off"; }
                label { "Role"
                    select name="role" {
                        option value="analyst" selected[role != "admin"] { "analyst (reads)" }
                        option value="admin" selected[role == "admin"] { "admin (reads and manages)" }
                    }
                }
                label { "Password (at least " (MIN_PASSWORD_LEN) " characters)"
                    input type="password" name="password" required minlength=(MIN_PASSWORD_LEN) autocomplete="new-password";
                }
                button.primary type="submit" { "Create user" }
            }
        }
        section.card {
            h2 { "Users" }
            div.table-wrap { table #users {
                thead { tr { th { "Email" } th { "Role" } th { "Created" } th { "Status" } } }
                tbody { @for user in &users {
                    tr {
                        td { (user.email) }
                        td { (user.role) }
                        td.nowrap { (time(user.created_at)) }
                        td { @if user.disabled_at.is_some() { span.badge.dismissed { "disabled" } } @else { span.badge.ok { "active" } } }
                    }
                } }
            } }
        }
    };
    Ok(page_with_status(status, viewer, Nav::Users, "Users", body))
}

/// `POST /admin/users` (admins)
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = viewer.admin_form(&body)?;
    let Some(role) = Role::parse(&form.text("role")) else {
        let message = ("error", "The role must be admin or analyst.".to_owned());
        return render(
            &state,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&form),
            Some(message),
        )
        .await;
    };
    let email = form.text("email");
    let password = form.get("password").unwrap_or_default().to_owned();
    match create_user(
        state.store.as_ref(),
        &viewer.actor(),
        &email,
        &password,
        role,
    )
    .await
    {
        Ok(_) => {
            let message = ("ok", format!("User {} created.", email.to_lowercase()));
            render(&state, &viewer, StatusCode::CREATED, None, Some(message)).await
        }
        Err(UserError::Store(error)) => Err(error.into()),
        Err(UserError::Hash(cause)) => Err(crate::http::error::ApiError::internal(cause).into()),
        Err(error) => {
            let status = if matches!(error, UserError::Exists(_)) {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let message = ("error", capitalized(&error.to_string()));
            render(&state, &viewer, status, Some(&form), Some(message)).await
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}
