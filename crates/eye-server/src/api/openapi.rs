//! The OpenAPI 3.1 document, generated from the handlers' annotations and the types
//! they answer with, served at `/api/schema`, and Swagger UI (its files compiled into
//! the binary) at `/api/schema/swagger-ui`.
//!
//! Every answer's shape is the type its handler returns (`EventsPage`, `ErrorBody`,
//! ...), defined beside the handler: the document and the answers cannot drift apart.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use eye_core::reason::{Refusal, Violation};
use eye_core::schema::SchemaMode;
use eye_store::{
    EventTypeInfo, HourlyRefusedCount, RefusedCount, RefusedEvent, RefusedStatus, SchemaRecord,
    SessionSummary, StatsRow, StoredEvent,
};

use crate::api::{apps, event_types, events, health, ingest, lifecycle, refused, sessions, stats};
use crate::http::error::{ErrorBody, ErrorDetail};

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
        lifecycle::set_app_retention,
        lifecycle::run_retention,
        lifecycle::erase_session,
        lifecycle::start_erasure,
        lifecycle::get_erasure,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        ingest::WireEvent, ingest::IngestAnswer, ingest::Verdict, ErrorBody, ErrorDetail,
        events::EventsPage, sessions::SessionsPage, sessions::SessionTimeline,
        sessions::TimelineEvent, stats::StatsAnswer, refused::ErrorsPage,
        refused::ErrorSummaryAnswer, refused::ReprocessAnswer, event_types::EventTypesList,
        event_types::PutSchema, health::Health, health::Ready, StoredEvent, SessionSummary,
        StatsRow, RefusedEvent, RefusedStatus, RefusedCount, HourlyRefusedCount, EventTypeInfo,
        SchemaRecord, SchemaMode, Refusal, Violation, apps::AppsList, apps::CreatedApp,
        apps::RevokedApp, apps::RevokedToken, apps::TokensList, apps::CreatedToken,
        apps::AuditList, apps::CreateApp, apps::CreateToken, apps::SetOrigins,
        eye_store::App, eye_store::TokenInfo, eye_store::AuditEntry, lifecycle::AppRetention,
        crate::service::lifecycle::Expired, eye_store::Erasure, eye_store::ErasureFilter,
        eye_store::ErasureStatus, eye_store::Removed,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "ingest", description = "Sending events (ingest tokens)"),
        (name = "query", description = "Reading events, sessions and counts (read tokens)"),
        (name = "errors", description = "The error store: monitoring and reprocessing"),
        (name = "schemas", description = "Event types and their JSON Schemas"),
        (name = "management", description = "Applications, tokens, retention and the audit log (admin tokens)"),
        (name = "erasure", description = "Erasing a person's or an application's data (admin tokens)"),
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
