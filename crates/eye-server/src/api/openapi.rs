//! The OpenAPI 3.1 document, generated from the handlers' annotations and the types
//! they answer with, served at `/api/schema`, and Swagger UI (its files compiled into
//! the binary) at `/api/schema/swagger-ui`.
//!
//! Every answer's shape is the type its handler returns (`EventsPage`, `ErrorBody`,
//! ...), defined beside the handler: the document and the answers cannot drift apart.

use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use eye_core::event::MAX_IDENTIFIER_LEN;
use eye_core::reason::REASON_CODES;

use eye_core::reason::{Refusal, Violation};
use eye_core::schema::SchemaMode;
use eye_store::{
    EventTypeInfo, HourlyRefusedCount, RefusedCount, RefusedEvent, RefusedStatus, SchemaRecord,
    SessionSummary, StatsRow, StoredEvent,
};

use crate::api::{apps, event_types, events, health, ingest, lifecycle, refused, sessions, stats};
use crate::http::error::{ErrorBody, ErrorDetail};
use crate::http::query::MAX_LIMIT;
use crate::service::access::{MAX_APP_NAME_LEN, MAX_LABEL_LEN};

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
        event_types::get_indexed,
        event_types::put_indexed,
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
        event_types::PutSchema, event_types::PutIndexed, event_types::IndexedFields,
        eye_store::IndexedField, eye_store::IndexState, health::Health, health::Ready, StoredEvent, SessionSummary,
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

// The rules the server enforces on parameters and body fields that the handlers'
// annotations cannot state are written into the document by name (`constrain`), so
// that a request valid by the document is never refused for them (the contract
// tester checks it in tests/api).

/// Not blank, no control characters: an event type's category or name, an
/// application's name (what `eye_core::event::identifier` and `is_app_name` check).
const IDENTIFIER: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// Free text in a query: anything but U+0000 (PostgreSQL cannot hold it).
const NO_NUL: &str = r"^[^\x00]*$";

/// The read endpoints a query budget bounds.
const BUDGETED: [&str; 6] = [
    "/events",
    "/sessions",
    "/sessions/{id}",
    "/stats",
    "/errors",
    "/errors/summary",
];

fn constrain(document: &mut Value) {
    let reasons: Vec<&str> = REASON_CODES.iter().map(|(code, _)| *code).collect();
    let statuses: Vec<&str> = RefusedStatus::ALL.iter().map(|s| s.as_str()).collect();
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            // The reads bounded by the query budget (`StoreError::OverBudget`).
            if BUDGETED.contains(&path.as_str())
                && let Some(responses) = item
                    .get_mut("get")
                    .and_then(|get| get.get_mut("responses"))
                    .and_then(Value::as_object_mut)
            {
                responses.insert(
                    "422".into(),
                    json!({
                        "description": "The query did not finish within the query budget (`query_over_budget`): narrow it",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    }),
                );
            }
            for operation in item.values_mut() {
                let Some(parameters) = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for parameter in parameters {
                    let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                    let in_path = parameter["in"] == "path";
                    let schema = &mut parameter["schema"];
                    match (name.as_str(), in_path) {
                        ("limit", _) => {
                            schema["minimum"] = json!(1);
                            schema["maximum"] = json!(MAX_LIMIT);
                        }
                        ("version", _) => schema["minimum"] = json!(1),
                        ("from" | "to", _) => schema["format"] = json!("date-time"),
                        ("order", _) => schema["enum"] = json!(["asc", "desc"]),
                        ("bucket", _) => schema["enum"] = json!(["minute", "hour", "day"]),
                        ("reason", _) => schema["enum"] = json!(reasons),
                        ("status", _) => schema["enum"] = json!(statuses),
                        ("group_by", _) => {
                            parameter["style"] = json!("form");
                            parameter["explode"] = json!(false);
                            parameter["schema"] = json!({
                                "type": "array",
                                "items": {"type": "string", "enum": ["category", "name", "app"]},
                                "uniqueItems": true,
                                "minItems": 1,
                            });
                        }
                        ("id", true) if path.starts_with("/errors") => {
                            *schema = json!({"anyOf": [
                                {"type": "string", "format": "uuid"},
                                {"type": "integer", "format": "int64"},
                            ]});
                        }
                        ("category" | "name", true) if path.starts_with("/event-types") => {
                            schema["minLength"] = json!(1);
                            schema["maxLength"] = json!(MAX_IDENTIFIER_LEN);
                            schema["pattern"] = json!(IDENTIFIER);
                        }
                        ("name", true) => {
                            schema["minLength"] = json!(1);
                            schema["maxLength"] = json!(MAX_APP_NAME_LEN);
                            schema["pattern"] = json!(IDENTIFIER);
                        }
                        (_, false) if schema["type"] == "string" => {
                            schema["pattern"] = json!(NO_NUL)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let schemas = &mut document["components"]["schemas"];
    let app_name = &mut schemas["CreateApp"]["properties"]["name"];
    app_name["minLength"] = json!(1);
    app_name["maxLength"] = json!(MAX_APP_NAME_LEN);
    app_name["pattern"] = json!(IDENTIFIER);
    for holder in ["CreateApp", "SetOrigins"] {
        schemas[holder]["properties"]["allowed_origins"]["items"]["pattern"] = json!(ORIGIN);
    }
    schemas["CreateToken"]["properties"]["scope"]["enum"] = json!(["ingest", "read", "admin"]);
    let label = &mut schemas["CreateToken"]["properties"]["label"];
    label["maxLength"] = json!(MAX_LABEL_LEN);
    label["pattern"] = json!(r"^[^\x00-\x1f\x7f-\x9f]*$");
    schemas["AppRetention"]["properties"]["retention"]["pattern"] =
        json!(r"^(forever|[0-9]+[smhdw])$");
    // `eye_core::FieldPath`: 1 to 8 keys of 1 to 64 characters (`~0`, `~1` one each).
    schemas["PutIndexed"]["properties"]["indexed"]["items"]["pattern"] =
        json!(r#"^(?:/(?:[^/~."'?\\\x00-\x1f\x7f-\x9f]|~[01]){1,64}){1,8}$"#);
    schemas["PutIndexed"]["properties"]["indexed"]["uniqueItems"] = json!(true);
    schemas["PutIndexed"]["additionalProperties"] = json!(false);
    schemas["PutSchemaBody"]["properties"]["schema"] = json!({
        "description": "A JSON Schema (draft 2020-12), self-contained (remote `$ref`s are not resolved): an object, or `true` / `false`",
        "type": ["object", "boolean"],
    });
}

/// An allowed origin as `service::access` takes it: `*`, or `http(s)://host[:port]`.
const ORIGIN: &str = r"^(\*|[hH][tT][tT][pP][sS]?://[A-Za-z0-9.:\[\]-]+/*)$";

/// The document, as served at `/api/schema`.
pub fn document() -> &'static Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document =
            serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
        constrain(&mut document);
        document
    })
}

/// `GET /api/schema`.
pub async fn serve_document() -> axum::Json<&'static Value> {
    axum::Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_states_the_servers_limits() {
        let document = document();
        let limit = &document["paths"]["/audit"]["get"]["parameters"][0]["schema"];
        assert_eq!(limit["maximum"], 1000, "{limit}");
        assert!(document["paths"]["/events"]["get"]["responses"]["422"].is_object());
        assert_eq!(
            document["components"]["schemas"]["CreateToken"]["properties"]["scope"]["enum"],
            json!(["ingest", "read", "admin"])
        );
    }
}
