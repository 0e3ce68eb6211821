//! The OpenAPI 3.1 document, generated from the handlers' annotations and the types
//! they answer with, served at `/api/schema`, and Swagger UI (its files compiled into
//! the binary) at `/api/schema/swagger-ui`.
//!
//! The shapes here exist for the document only: handlers that build their answers
//! with `json!` describe them with these, and a test checks answers against them.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use eye_core::reason::{Refusal, Violation};
use eye_core::schema::SchemaMode;
use eye_store::{
    EventTypeInfo, HourlyRefusedCount, RefusedCount, RefusedEvent, RefusedStatus, SchemaRecord,
    SessionSummary, StatsRow, StoredEvent,
};

use crate::api::{apps, event_types, events, health, ingest, refused, sessions, stats};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "The Eye",
        description = "Collects behavioural events from trusted applications, validates them per event type, and answers analysts' queries. Every error is `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        ingest::ingest_events,
        events::list_events,
        sessions::list_sessions,
        sessions::get_session,
        stats::get_stats,
        refused::list_errors,
        refused::error_summary,
        refused::get_error,
        refused::dismiss_error,
        refused::reprocess_errors,
        event_types::list_types,
        event_types::get_type,
        event_types::get_schema,
        event_types::put_schema,
        event_types::delete_schema,
        apps::list_apps,
        apps::create_app,
        apps::revoke_app,
        apps::set_origins,
        apps::list_tokens,
        apps::create_token,
        apps::revoke_token,
        apps::audit_log,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        WireEvent, IngestAnswer, Verdict, ErrorBody, ErrorDetail, EventsPage, SessionsPage,
        SessionTimeline, TimelineEvent, StatsAnswer, ErrorsPage, ErrorSummaryAnswer,
        ReprocessAnswer, EventTypesList, PutSchemaBody, Health, StoredEvent, SessionSummary,
        StatsRow, RefusedEvent, RefusedStatus, RefusedCount, HourlyRefusedCount, EventTypeInfo,
        SchemaRecord, SchemaMode, Refusal, Violation, AppsList, CreatedApp, Revoked,
        TokensList, CreatedToken, AuditList, apps::CreateApp, apps::CreateToken, apps::SetOrigins,
        eye_store::App, eye_store::TokenInfo, eye_store::AuditEntry,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "ingest", description = "Sending events (ingest tokens)"),
        (name = "query", description = "Reading events, sessions and counts (read tokens)"),
        (name = "errors", description = "The error store: monitoring and reprocessing"),
        (name = "schemas", description = "Event types and their JSON Schemas"),
        (name = "management", description = "Applications, tokens and the audit log (admin tokens)"),
        (name = "operations", description = "Health"),
    ),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `eye app create` (ingest) or `eye token create --scope read|admin`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON text.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// One event as an application sends it. Unknown top-level fields are refused.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct WireEvent {
    /// Chosen by the application; 1–256 bytes.
    session_id: String,
    /// For example `page interaction`; 1–256 bytes.
    category: String,
    /// For example `pageview`; 1–256 bytes.
    name: String,
    /// The payload, checked against the type's schema; `{}` when absent.
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Value>,
    /// When it happened: `2023-01-01 09:15:27.243860`, `…Z`, or RFC 3339; no zone means UTC.
    #[schema(example = "2023-01-01 09:15:27.243860Z")]
    timestamp: String,
    /// Idempotency key, unique per application: a resend is stored once.
    id: Option<String>,
    /// The client's clock when it sent the request.
    sent_at: Option<String>,
    /// Orders events with equal timestamps.
    seq: Option<i64>,
}

/// `202`: every element's verdict, in order.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct IngestAnswer {
    accepted: usize,
    rejected: usize,
    results: Vec<Verdict>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Verdict {
    index: usize,
    /// `accepted` or `rejected`.
    status: String,
    /// The event id (accepted elements).
    id: Option<uuid::Uuid>,
    /// Why it was refused (rejected elements).
    error: Option<Refusal>,
    /// Its record in the error store (rejected elements).
    error_id: Option<uuid::Uuid>,
}

/// Every error answer.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_parameter`, `unauthorized`, `not_found`, ...
    code: String,
    message: String,
    /// For example `{"parameter": "from"}` for a bad query parameter.
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct EventsPage {
    events: Vec<StoredEvent>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SessionsPage {
    sessions: Vec<SessionSummary>,
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SessionTimeline {
    #[serde(flatten)]
    summary: SessionSummary,
    events: Vec<TimelineEvent>,
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct TimelineEvent {
    #[serde(flatten)]
    event: StoredEvent,
    /// Milliseconds since the session's previous event; `null` for its first.
    since_previous_ms: Option<f64>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct StatsAnswer {
    from: Option<eye_core::Timestamp>,
    to: Option<eye_core::Timestamp>,
    group_by: Vec<String>,
    bucket: Option<String>,
    total: i64,
    groups: Vec<StatsRow>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorsPage {
    errors: Vec<RefusedEvent>,
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ErrorSummaryAnswer {
    from: eye_core::Timestamp,
    to: eye_core::Timestamp,
    total: i64,
    by_reason_and_type: Vec<RefusedCount>,
    hourly: Vec<HourlyRefusedCount>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ReprocessAnswer {
    /// Errors that became events.
    reprocessed: u64,
    /// Errors still invalid, left open with their new reason.
    still_invalid: u64,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct EventTypesList {
    event_types: Vec<EventTypeInfo>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct PutSchemaBody {
    /// A JSON Schema (draft 2020-12), self-contained (remote `$ref`s are not resolved).
    #[schema(value_type = Value)]
    schema: serde_json::Value,
    /// Defaults to the type's current mode, or `enforce`.
    mode: Option<SchemaMode>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Health {
    status: String,
}

/// `GET /apps`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AppsList {
    apps: Vec<eye_store::App>,
}

/// `POST /apps`: the application and its ingest token, shown only here.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreatedApp {
    app: eye_store::App,
    token: String,
}

/// A revocation's answer: the name or id revoked.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Revoked {
    revoked: String,
}

/// `GET /tokens`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokensList {
    tokens: Vec<eye_store::TokenInfo>,
}

/// `POST /tokens`: the token's id and its secret, shown only here.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreatedToken {
    id: i64,
    token: String,
}

/// `GET /audit`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AuditList {
    entries: Vec<eye_store::AuditEntry>,
}
