//! The management API (admin scope): applications, tokens and the audit log. Token
//! secrets appear once, in the answer that creates them; listings never hold them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eye_core::auth::Scope;
use eye_store::{App, AuditEntry, TokenInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::auth::{Admin, Auth};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::query::Params;
use crate::service::access::{self, ManageError};
use crate::state::AppState;

impl From<ManageError> for ApiError {
    fn from(error: ManageError) -> Self {
        let message = error.to_string();
        match error {
            ManageError::InvalidName
            | ManageError::InvalidLabel
            | ManageError::IngestNeedsApp
            | ManageError::AppNotAllowed
            | ManageError::InvalidOrigin(_) => ApiError::bad_request("invalid_body", message),
            ManageError::AppExists(_) | ManageError::AppRevoked(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            ManageError::UnknownApp(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "app_not_found", message)
            }
            ManageError::UnknownToken(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "token_not_found", message)
            }
            ManageError::Random(cause) => ApiError::internal(cause),
            ManageError::Store(error) => error.into(),
        }
    }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes, shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the body must be {shape}: {e}"))
    })
}

#[utoipa::path(get, path = "/apps", tag = "management",
    responses(
        (status = 200, description = "Every application", body = AppsList),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
    ))]
pub async fn list_apps(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
) -> Result<Json<AppsList>, ApiError> {
    let apps = state.store.list_apps().await?;
    Ok(Json(AppsList { apps }))
}

/// `GET /apps`.
#[derive(Serialize, ToSchema)]
pub struct AppsList {
    pub apps: Vec<App>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    pub name: String,
    /// Browser origins allowed to send its events (`https://shop.example`, or `*`)
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

#[utoipa::path(post, path = "/apps", tag = "management",
    request_body = CreateApp,
    responses(
        (status = 201, description = "Created; `token` is its ingest token, shown only here", body = CreatedApp),
        (status = 400, description = "Not a valid body or name", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
    ))]
pub async fn create_app(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let actor = auth.actor();
    let request: CreateApp = body(&bytes, r#"{"name": "...", "allowed_origins": [...]}"#)?;
    let (app, token) = access::create_app(
        state.store.as_ref(),
        &actor,
        &request.name,
        &request.allowed_origins,
    )
    .await?;
    state.origins.forget();
    Ok((StatusCode::CREATED, Json(CreatedApp { app, token })).into_response())
}

/// `POST /apps`: the application and its ingest token, shown only here.
#[derive(Serialize, ToSchema)]
pub struct CreatedApp {
    pub app: App,
    pub token: String,
}

#[utoipa::path(post, path = "/apps/{name}/revoke", tag = "management",
    params(("name" = String, Path, description = "The application's name")),
    responses(
        (status = 200, description = "Revoked with all its tokens, in every process within a second", body = RevokedApp),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
    ))]
pub async fn revoke_app(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(name): Path<String>,
) -> Result<Json<RevokedApp>, ApiError> {
    let actor = auth.actor();
    access::revoke_app(state.store.as_ref(), &actor, &name).await?;
    state.auth.forget_all();
    Ok(Json(RevokedApp { revoked: name }))
}

/// An application's revocation: its name.
#[derive(Serialize, ToSchema)]
pub struct RevokedApp {
    pub revoked: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOrigins {
    /// The whole new list; empty: no browser may send this application's events
    pub allowed_origins: Vec<String>,
}

#[utoipa::path(put, path = "/apps/{name}/origins", tag = "management",
    params(("name" = String, Path, description = "The application's name")),
    request_body = SetOrigins,
    responses(
        (status = 200, description = "The origins now allowed (normalized), in every process within a second", body = SetOrigins),
        (status = 400, description = "Not a valid body or origin", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
    ))]
pub async fn set_origins(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Json<SetOrigins>, ApiError> {
    let actor = auth.actor();
    let request: SetOrigins = body(&bytes, r#"{"allowed_origins": ["https://..."]}"#)?;
    let origins = access::set_origins(
        state.store.as_ref(),
        &actor,
        &name,
        &request.allowed_origins,
    )
    .await?;
    state.origins.forget();
    Ok(Json(SetOrigins {
        allowed_origins: origins,
    }))
}

#[utoipa::path(get, path = "/tokens", tag = "management",
    responses(
        (status = 200, description = "Every token, without secrets", body = TokensList),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
    ))]
pub async fn list_tokens(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
) -> Result<Json<TokensList>, ApiError> {
    let tokens = state.store.list_tokens().await?;
    Ok(Json(TokensList { tokens }))
}

/// `GET /tokens`.
#[derive(Serialize, ToSchema)]
pub struct TokensList {
    pub tokens: Vec<TokenInfo>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// `ingest`, `read` or `admin`
    pub scope: String,
    /// The application, for an ingest token
    pub app: Option<String>,
    /// Who or what holds the token
    pub label: Option<String>,
}

#[utoipa::path(post, path = "/tokens", tag = "management",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; `token` is shown only here", body = CreatedToken),
        (status = 400, description = "Not a valid body, scope or application pairing", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such application", body = ErrorBody),
        (status = 409, description = "The application is revoked", body = ErrorBody),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let actor = auth.actor();
    let request: CreateToken = body(
        &bytes,
        r#"{"scope": "ingest"|"read"|"admin", "app": "...", "label": "..."}"#,
    )?;
    let scope = Scope::parse(&request.scope).ok_or_else(|| {
        ApiError::bad_request("invalid_body", "`scope` must be ingest, read or admin")
    })?;
    if request
        .label
        .as_ref()
        .is_some_and(|l| l.chars().count() > access::MAX_LABEL_LEN)
    {
        return Err(ApiError::bad_request(
            "invalid_body",
            "`label` is at most 256 characters",
        ));
    }
    let (id, token) = access::create_token(
        state.store.as_ref(),
        &actor,
        scope,
        request.app.as_deref(),
        request.label.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { id, token })).into_response())
}

/// `POST /tokens`: the token's id and its secret, shown only here.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub token: String,
}

#[utoipa::path(post, path = "/tokens/{id}/revoke", tag = "management",
    params(("id" = i64, Path, description = "The token's id, from `GET /tokens`")),
    responses(
        (status = 200, description = "Revoked, in every process within a second", body = RevokedToken),
        (status = 400, description = "Not a token id", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
) -> Result<Json<RevokedToken>, ApiError> {
    let actor = auth.actor();
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_parameter("id", "a token id is a whole number"))?;
    access::revoke_token(state.store.as_ref(), &actor, id).await?;
    state.auth.forget_all();
    Ok(Json(RevokedToken { revoked: id }))
}

/// A token's revocation: its id.
#[derive(Serialize, ToSchema)]
pub struct RevokedToken {
    pub revoked: i64,
}

#[utoipa::path(get, path = "/audit", tag = "management",
    params(("limit" = Option<u32>, Query, description = "Entries, newest first: 1 to 1000, default 100")),
    responses(
        (status = 200, description = "The newest management actions", body = AuditList),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
    ))]
pub async fn audit_log(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditList>, ApiError> {
    let params = Params::parse(query.as_deref(), &["limit"])?;
    let limit = params.limit(100, 1000)?;
    let entries = state.store.audit_log(limit as usize).await?;
    Ok(Json(AuditList { entries }))
}

/// `GET /audit`.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}
