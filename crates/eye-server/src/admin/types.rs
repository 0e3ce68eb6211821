//! Event types: their counts and schema versions; a schema editor that checks a sample
//! payload against the edited schema before anything is saved.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use eye_core::EventType;
use eye_core::reason::Violation;
use eye_core::schema::SchemaMode;
use eye_store::{EventQuery, EventTypeInfo, IndexedField, Order};
use maud::{Markup, html};
use serde_json::value::RawValue;

use super::form::FormData;
use super::layout::{
    Nav, PageError, csrf_field, flash, page, page_with_status, pretty_json, segment,
};
use super::login::Viewer;
use crate::http::query::event_type;
use crate::service::indexes::{self, IndexError};
use crate::service::schemas;
use crate::state::AppState;

/// A new type's schema starts from this.
const STARTER_SCHEMA: &str =
    "{\n  \"type\": \"object\",\n  \"properties\": {},\n  \"required\": []\n}";

/// `GET /admin/event-types`
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let types = state.store.event_types().await?;
    let body = html! {
        @if viewer.is_admin() {
            section.card {
                h2 { "Register a type" }
                form.filters method="get" action="/admin/event-types/new" #new-type {
                    label { "Category" input name="category" required placeholder="form interaction"; }
                    label { "Name" input name="name" required placeholder="submit"; }
                    div.actions { button.primary type="submit" { "Write its schema" } }
                }
            }
        }
        @if types.is_empty() {
            p.hint { "No event types yet: none registered and no events stored." }
        } @else {
            div.table-wrap { table.clickable #event-types {
                thead { tr { th { "Type" } th { "Schema" } th { "Mode" } th { "Versions" } th.num { "Events" } } }
                tbody {
                    @for t in &types {
                        @let href = format!("/admin/event-types/{}/{}", segment(&t.category), segment(&t.name));
                        tr data-href=(href) {
                            td { a href=(href) { (t.category) " / " (t.name) } }
                            td { @match t.schema_version {
                                Some(v) => { "version " (v) }
                                None => { span.hint { @if t.registered { "none (removed)" } @else { "none" } } }
                            } }
                            td { @if t.schema_version.is_some() { (t.mode.as_str()) } }
                            td { (t.versions.len()) }
                            td.num { (t.event_count) }
                        }
                    }
                }
            } }
        }
    };
    Ok(page(&viewer, Nav::Types, "Event types", body))
}

/// What the editor shows.
struct Editor {
    event_type: EventType,
    schema: String,
    mode: SchemaMode,
    sample: String,
    versions: Vec<i64>,
    current: Option<i64>,
    event_count: i64,
    indexed: Vec<IndexedField>,
    /// A problem with the schema or the sample text.
    problem: Option<String>,
    /// The sample's check: `Some(empty)` means it passed.
    check: Option<Vec<Violation>>,
    notice: Option<String>,
}

impl Editor {
    /// An editor of `event_type` showing `schema`, `mode` and `sample`, beside what
    /// the store knows of the type (`info`: none for a type without events or schema).
    fn new(
        event_type: EventType,
        info: Option<EventTypeInfo>,
        schema: String,
        mode: SchemaMode,
        sample: String,
    ) -> Editor {
        Editor {
            event_type,
            schema,
            mode,
            sample,
            versions: info.as_ref().map_or_else(Vec::new, |i| i.versions.clone()),
            current: info.as_ref().and_then(|i| i.schema_version),
            event_count: info.as_ref().map_or(0, |i| i.event_count),
            indexed: info.map_or_else(Vec::new, |i| i.indexed),
            problem: None,
            check: None,
            notice: None,
        }
    }
}

/// `GET /admin/event-types/{category}/{name}` (and `new?category=&name=`)
pub async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(path): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let form = FormData::parse(query.as_deref().unwrap_or_default().as_bytes());
    let event_type = event_type(path)?;
    let mut editor = load_editor(&state, event_type).await?;
    editor.notice = match (form.get("saved"), form.get("indexed")) {
        (Some(v), _) => Some(format!("Saved as version {v}.")),
        (None, Some(_)) => Some(
            "Indexed fields saved: new indexes are built in the background (refresh to see them ready)."
                .to_owned(),
        ),
        (None, None) => None,
    };
    Ok(render(&viewer, StatusCode::OK, &editor))
}

/// The editor of a type as the store has it.
async fn load_editor(state: &AppState, event_type: EventType) -> Result<Editor, PageError> {
    let info = state.store.event_type(&event_type).await?;
    let current = state.store.schema(&event_type, None).await?;
    // A sample to start from: the type's latest stored payload, if it has one.
    let latest = state
        .store
        .events(EventQuery {
            category: Some(event_type.category.clone()),
            name: Some(event_type.name.clone()),
            order: Order::Desc,
            limit: 1,
            ..EventQuery::default()
        })
        .await?;
    let schema = current
        .as_ref()
        .map_or(STARTER_SCHEMA.to_owned(), |r| pretty_json(r.schema.get()));
    let mode = current.as_ref().map_or(SchemaMode::Enforce, |r| r.mode);
    let sample = latest
        .items
        .first()
        .map_or("{}".to_owned(), |e| pretty_json(e.data.get()));
    Ok(Editor::new(event_type, info, schema, mode, sample))
}

/// `POST /admin/event-types/{category}/{name}/indexed` (admins): `paths`, one JSON
/// Pointer per line, becomes the type's indexed fields.
pub async fn save_indexed(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(path): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    viewer.check_csrf(&form)?;
    viewer.require_admin()?;
    let event_type = event_type(path)?;
    let pointers: Vec<String> = form
        .text("paths")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let saved = match indexes::parse(&pointers) {
        Ok(paths) => {
            indexes::set(
                state.store.as_ref(),
                Some(&state.index_builder),
                &viewer.actor(),
                &event_type,
                &paths,
            )
            .await
        }
        Err(error) => Err(error),
    };
    match saved {
        Ok(_) => Ok(Redirect::to(&format!(
            "/admin/event-types/{}/{}?indexed=1",
            segment(&event_type.category),
            segment(&event_type.name)
        ))
        .into_response()),
        Err(IndexError::Store(error)) => Err(error.into()),
        Err(error) => {
            let status = match error {
                IndexError::ForbiddenBySchema { .. } | IndexError::TooManyInStore(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                _ => StatusCode::BAD_REQUEST,
            };
            let mut editor = load_editor(&state, event_type).await?;
            editor.problem = Some(format!("Indexed fields not saved: {error}."));
            Ok(render(&viewer, status, &editor))
        }
    }
}

/// `GET /admin/event-types/new?category=&name=`: the editor of a type by its form fields.
pub async fn new_type(RawQuery(query): RawQuery) -> Result<Response, PageError> {
    let form = FormData::parse(query.as_deref().unwrap_or_default().as_bytes());
    let event_type = event_type((form.text("category"), form.text("name")))?;
    Ok(Redirect::to(&format!(
        "/admin/event-types/{}/{}",
        segment(&event_type.category),
        segment(&event_type.name)
    ))
    .into_response())
}

fn render(viewer: &Viewer, status: StatusCode, editor: &Editor) -> Response {
    let t = &editor.event_type;
    let action = format!(
        "/admin/event-types/{}/{}",
        segment(&t.category),
        segment(&t.name)
    );
    let body = html! {
        @if let Some(notice) = &editor.notice { (flash("ok", notice)) }
        @if let Some(problem) = &editor.problem { (flash("error", problem)) }
        @if let Some(check) = &editor.check { (check_result(check)) }
        section.card {
            dl.facts {
                dt { "Type" } dd #type-name { (t.category) " / " (t.name) }
                dt { "Current schema" } dd { @match editor.current { Some(v) => { "version " (v) } None => { "none" } } }
                dt { "Versions" } dd { @if editor.versions.is_empty() { "none" } @else {
                    @for (i, v) in editor.versions.iter().enumerate() { @if i > 0 { ", " } (v) }
                } }
                dt { "Events stored" } dd { (editor.event_count) }
            }
        }
        form.editor method="post" action=(action) #schema-editor {
            (csrf_field(viewer))
            div.columns {
                label.grow { "Schema (JSON Schema, draft 2020-12)"
                    textarea.code name="schema" rows="18" spellcheck="false" { (editor.schema) }
                }
                label.grow { "Sample payload (the event's data)"
                    textarea.code name="sample" rows="18" spellcheck="false" { (editor.sample) }
                }
            }
            div.actions {
                label.inline { "Mode "
                    select name="mode" {
                        @for mode in [SchemaMode::Enforce, SchemaMode::Shadow] {
                            option value=(mode.as_str()) selected[editor.mode == mode] { (mode.as_str()) }
                        }
                    }
                }
                button type="submit" name="action" value="check" #check-sample { "Check sample" }
                @if viewer.is_admin() {
                    button.primary type="submit" name="action" value="save" #save-schema { "Save schema" }
                }
            }
            p.hint { "Enforce refuses events that do not match (they go to the error store); shadow stores them and records a warning. Saving checks the sample first." }
        }
        section.card #indexed-fields {
            h2 { "Indexed fields" }
            @if editor.indexed.is_empty() {
                p.hint { "None: a " code { "data." } " filter on this type's payload scans its events." }
            } @else {
                table { thead { tr { th { "Field" } th { "Index" } } } tbody {
                    @for field in &editor.indexed {
                        tr { td { code { (field.path) } } td {
                            (field.state.as_str())
                            @if let Some(error) = &field.error { " — last build failed: " (error) }
                        } }
                    }
                } }
            }
            @if viewer.is_admin() {
                form method="post" action={ (action) "/indexed" } #indexed-form {
                    (csrf_field(viewer))
                    label { "Fields (JSON Pointers into data, one per line, at most 8)"
                        textarea.code name="paths" rows="4" spellcheck="false" placeholder="/path" {
                            @for field in &editor.indexed { (field.path) "\n" }
                        }
                    }
                    div.actions { button.primary type="submit" #save-indexed { "Save indexed fields" } }
                    p.hint { "A filter such as " code { "data.form.first_name=Ada" } " uses the index of " code { "/form/first_name" } ", with or without category and name. New indexes are built in the background; every index makes writes a little slower." }
                }
            }
        }
        @if viewer.is_admin() {
            section.card {
                form method="post" action={ "/admin/errors/reprocess?category=" (segment(&t.category)) "&name=" (segment(&t.name)) } #reprocess-type {
                    (csrf_field(viewer))
                    p { "After a fix, recheck this type's open errors against the current schema." }
                    button type="submit" { "Reprocess this type's open errors" }
                }
            }
        }
    };
    page_with_status(status, viewer, Nav::Types, "Edit schema", body)
}

fn check_result(violations: &[Violation]) -> Markup {
    html! {
        @if violations.is_empty() {
            div.flash.ok #check-result role="status" { "The sample matches the schema." }
        } @else {
            div.flash.error #check-result role="status" {
                "The sample does not match the schema:"
                ul { @for v in violations {
                    li { code { "data" (v.pointer) } " — " code { (v.rule) } ": " (v.message) }
                } }
            }
        }
    }
}

/// `POST /admin/event-types/{category}/{name}`: `action=check` checks the sample
/// against the edited schema; `action=save` (admins) checks it too, then saves.
pub async fn save(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(path): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = FormData::parse(&body);
    viewer.check_csrf(&form)?;
    let saving = match form.text("action").as_str() {
        "save" => true,
        "check" => false,
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "The form's action must be check or save.",
            ));
        }
    };
    if saving {
        viewer.require_admin()?;
    }
    let event_type = event_type(path)?;
    let info = state.store.event_type(&event_type).await?;
    let mode = SchemaMode::parse(&form.text("mode")).ok_or_else(|| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "The mode must be enforce or shadow.",
        )
    })?;
    let mut editor = Editor::new(
        event_type,
        info,
        form.get("schema").unwrap_or_default().to_owned(),
        mode,
        form.get("sample").unwrap_or_default().to_owned(),
    );
    let schema: serde_json::Value = match serde_json::from_str(&editor.schema) {
        Ok(schema) => schema,
        Err(error) => {
            editor.problem = Some(format!("The schema is not JSON: {error}."));
            return Ok(render(&viewer, StatusCode::UNPROCESSABLE_ENTITY, &editor));
        }
    };
    let validator = match eye_schema::compile(&schema) {
        Ok(validator) => validator,
        Err(error) => {
            editor.problem = Some(format!("The schema is not a valid JSON Schema: {error}."));
            return Ok(render(&viewer, StatusCode::UNPROCESSABLE_ENTITY, &editor));
        }
    };
    let sample_text = editor.sample.trim();
    if !sample_text.is_empty() {
        match RawValue::from_string(sample_text.to_owned()) {
            Ok(sample) => editor.check = Some(eye_schema::violations(&validator, &sample)),
            Err(error) => {
                editor.problem = Some(format!("The sample is not JSON: {error}."));
                return Ok(render(&viewer, StatusCode::UNPROCESSABLE_ENTITY, &editor));
            }
        }
    }
    let sample_fails = editor.check.as_ref().is_some_and(|v| !v.is_empty());
    if !saving {
        return Ok(render(&viewer, StatusCode::OK, &editor));
    }
    if sample_fails {
        editor.problem = Some(
            "Not saved: the sample does not match. Fix the schema or the sample, or empty the sample to save anyway."
                .to_owned(),
        );
        return Ok(render(&viewer, StatusCode::UNPROCESSABLE_ENTITY, &editor));
    }
    let (record, _) = schemas::set(
        state.store.as_ref(),
        Some(&state.checker.registry),
        &viewer.actor(),
        &editor.event_type,
        &schema,
        Some(mode),
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/admin/event-types/{}/{}?saved={}",
        segment(&record.category),
        segment(&record.name),
        record.version
    ))
    .into_response())
}
