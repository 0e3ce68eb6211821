//! The schema registry over HTTP.
//!
//! `GET /event-types`, `GET /event-types/{category}/{name}`,
//! `GET /event-types/{category}/{name}/schema[?version=N]`: read scope.
//! `PUT` and `DELETE /event-types/{category}/{name}/schema`: admin scope.
//! `GET` (read scope) and `PUT` (admin scope) `/event-types/{category}/{name}/indexed`:
//! the type's indexed payload fields.
//! Category and name are path segments, percent-encoded (`page%20interaction`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eye_core::EventType;
use eye_core::schema::SchemaMode;
use eye_store::{EventTypeInfo, SchemaRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::auth::{Admin, Auth, Read};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::query::{Params, event_type};
use crate::service::indexes::{self, IndexError};
use crate::service::schemas::{self, SchemaError};
use crate::state::AppState;

/// The path every endpoint here but the list takes, as the OpenAPI document shows it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct TypePath {
    /// Percent-encoded, e.g. `page%20interaction`
    category: String,
    name: String,
}

fn type_not_found(event_type: &EventType) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "event_type_not_found",
        format!(
            "no event type {:?}/{:?}: it is not registered and has no events",
            event_type.category, event_type.name
        ),
    )
}

#[utoipa::path(
    get,
    path = "/event-types",
    tag = "schemas",
    description = "Registered types and types that have events, with schema versions and event counts.",
    responses(
        (status = 200, description = "The types", body = EventTypesList),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
    )
)]
pub async fn list_types(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    RawQuery(query): RawQuery,
) -> Result<Json<EventTypesList>, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let event_types = state.store.event_types().await?;
    Ok(Json(EventTypesList { event_types }))
}

/// `GET /event-types`.
#[derive(Serialize, ToSchema)]
pub struct EventTypesList {
    pub event_types: Vec<EventTypeInfo>,
}

#[utoipa::path(
    get,
    path = "/event-types/{category}/{name}",
    tag = "schemas",
    params(
        TypePath,
    ),
    responses(
        (status = 200, description = "The type", body = eye_store::EventTypeInfo),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 404, description = "Neither registered nor seen (`event_type_not_found`)", body = ErrorBody),
    )
)]
pub async fn get_type(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    Path(path): Path<(String, String)>,
) -> Result<Json<EventTypeInfo>, ApiError> {
    let event_type = event_type(path)?;
    let info = state
        .store
        .event_type(&event_type)
        .await?
        .ok_or_else(|| type_not_found(&event_type))?;
    Ok(Json(info))
}

#[utoipa::path(
    get,
    path = "/event-types/{category}/{name}/schema",
    tag = "schemas",
    params(
        TypePath,
        ("version" = Option<i64>, Query, description = "A version; the current one by default"),
    ),
    responses(
        (status = 200, description = "The schema", body = eye_store::SchemaRecord),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 404, description = "No such schema (`schema_not_found`)", body = ErrorBody),
    )
)]
pub async fn get_schema(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    Path(path): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<SchemaRecord>, ApiError> {
    let event_type = event_type(path)?;
    let params = Params::parse(query.as_deref(), &["version"])?;
    let version = params
        .text("version")
        .map(|v| match v.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(ApiError::bad_parameter(
                "version",
                "`version` must be a positive integer",
            )),
        })
        .transpose()?;
    let record = state.store.schema(&event_type, version).await?;
    let record = record.ok_or_else(|| {
        let which = version.map_or("a current schema".to_owned(), |v| format!("version {v}"));
        ApiError::new(
            StatusCode::NOT_FOUND,
            "schema_not_found",
            format!(
                "{:?}/{:?} has no {which}",
                event_type.category, event_type.name
            ),
        )
    })?;
    Ok(Json(record))
}

/// The body of `PUT .../schema`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PutSchemaBody)]
pub struct PutSchema {
    /// A JSON Schema (draft 2020-12), self-contained (remote `$ref`s are not resolved).
    #[schema(value_type = Object)]
    pub schema: Value,
    /// Defaults to the type's current mode, or `enforce`.
    #[serde(default)]
    pub mode: Option<SchemaMode>,
}

#[utoipa::path(
    put,
    path = "/event-types/{category}/{name}/schema",
    tag = "schemas",
    description = "Sets the type's schema (a new version; the old ones are kept) and, optionally, its mode. Applies to new events within a second.",
    params(
        TypePath,
    ),
    request_body = PutSchema,
    responses(
        (status = 201, description = "A new version", body = eye_store::SchemaRecord),
        (status = 200, description = "The same schema as the current one: no new version", body = eye_store::SchemaRecord),
        (status = 400, description = "The body is not `{schema, mode}`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 422, description = "Not a valid JSON Schema (`invalid_schema`)", body = ErrorBody),
    )
)]
pub async fn put_schema(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(path): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event_type = event_type(path)?;
    let request: PutSchema = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "the body must be {{\"schema\": <JSON Schema>, \"mode\": \"enforce\"|\"shadow\"}}: {e}"
            ),
        )
    })?;
    let (record, created) = schemas::set(
        state.store.as_ref(),
        Some(&state.checker.registry),
        &auth.actor(),
        &event_type,
        &request.schema,
        request.mode,
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record)).into_response())
}

#[utoipa::path(
    delete,
    path = "/event-types/{category}/{name}/schema",
    tag = "schemas",
    description = "Stops checking the type's events; its versions are kept.",
    params(
        TypePath,
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 404, description = "The type has no current schema (`schema_not_found`)", body = ErrorBody),
    )
)]
pub async fn delete_schema(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(path): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let event_type = event_type(path)?;
    schemas::delete(
        state.store.as_ref(),
        Some(&state.checker.registry),
        &auth.actor(),
        &event_type,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<SchemaError> for ApiError {
    fn from(error: SchemaError) -> Self {
        let message = error.to_string();
        match error {
            SchemaError::InvalidSchema(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_schema", message)
            }
            SchemaError::NoSchema(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "schema_not_found", message)
            }
            SchemaError::Store(error) => error.into(),
        }
    }
}

/// `PUT /event-types/{category}/{name}/indexed`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutIndexed {
    /// JSON Pointers into `data` (RFC 6901), e.g. `/form/first_name`; the whole list,
    /// replacing the type's earlier one (`[]` removes them all).
    #[schema(max_items = 8)]
    pub indexed: Vec<String>,
}

/// A type's indexed payload fields.
#[derive(Serialize, ToSchema)]
pub struct IndexedFields {
    pub category: String,
    pub name: String,
    pub indexed: Vec<eye_store::IndexedField>,
}

#[utoipa::path(
    get,
    path = "/event-types/{category}/{name}/indexed",
    tag = "schemas",
    description = "The type's indexed payload fields, with their indexes' states.",
    params(
        TypePath,
    ),
    responses(
        (status = 200, description = "The fields (an empty list when none is declared)", body = IndexedFields),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
    )
)]
pub async fn get_indexed(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    Path(path): Path<(String, String)>,
) -> Result<Json<IndexedFields>, ApiError> {
    let event_type = event_type(path)?;
    let indexed = state.store.indexed_fields(&event_type).await?;
    Ok(Json(IndexedFields {
        category: event_type.category,
        name: event_type.name,
        indexed,
    }))
}

#[utoipa::path(
    put,
    path = "/event-types/{category}/{name}/indexed",
    tag = "schemas",
    description = "Declares which payload fields of the type `data.<path>=<value>` filters find through an index. \
        A new path's index is built in the background over the events already stored (`state: building`, then `ready`); \
        until it is ready, filters on it scan. The index serves the path's filter with or without `category` and `name`.",
    params(
        TypePath,
    ),
    request_body = PutIndexed,
    responses(
        (status = 200, description = "Every listed field's index is ready", body = IndexedFields),
        (status = 202, description = "Declared; some indexes are being built", body = IndexedFields),
        (status = 400, description = "The body is not `{\"indexed\": [JSON Pointer, ...]}` (`invalid_body`), or a pointer is malformed or repeated (`invalid_field_path`)", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 422, description = "The type's schema forbids the field or makes it an object or array (`field_forbidden_by_schema`), or the store would hold too many indexed paths (`too_many_indexed_paths`)", body = ErrorBody),
    )
)]
pub async fn put_indexed(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(path): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let event_type = event_type(path)?;
    let request: PutIndexed = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("the body must be {{\"indexed\": [JSON Pointer, ...]}}, e.g. {{\"indexed\": [\"/path\"]}}: {e}"),
        )
    })?;
    let paths = indexes::parse(&request.indexed)?;
    let indexed = indexes::set(
        state.store.as_ref(),
        Some(&state.index_builder),
        &auth.actor(),
        &event_type,
        &paths,
    )
    .await?;
    let status = if indexed
        .iter()
        .all(|f| f.state == eye_store::IndexState::Ready)
    {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = IndexedFields {
        category: event_type.category,
        name: event_type.name,
        indexed,
    };
    Ok((status, Json(body)).into_response())
}

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> Self {
        let message = error.to_string();
        match error {
            IndexError::BadPath(_) | IndexError::Repeated(_) | IndexError::TooManyForType(_) => {
                ApiError::bad_request("invalid_field_path", message)
            }
            IndexError::ForbiddenBySchema { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field_forbidden_by_schema",
                message,
            ),
            IndexError::TooManyInStore(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_many_indexed_paths",
                message,
            ),
            IndexError::Store(error) => error.into(),
        }
    }
}
