//! Event-type schemas: compiling a JSON Schema (draft 2020-12) once, and checking an
//! event's `data` against the schema of its type.
//!
//! The [`Registry`] holds what the store says is current (each registered type, its
//! schema version and mode) and a cache of compiled validators keyed by type and
//! version, so a refresh that changes nothing compiles nothing. It knows nothing of
//! the store: its owner loads it ([`Registry::load`]) and decides when it is stale.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use eye_core::reason::{MAX_VIOLATIONS, Violation};
pub use eye_core::schema::ActiveType;
use eye_core::schema::SchemaMode;
use eye_core::{EventType, Refusal};
use jsonschema::Validator;
use serde_json::Value;
use serde_json::value::RawValue;

mod fields;
pub use fields::forbidden_field;

/// What happens to an event whose type is not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTypePolicy {
    /// Stored without a schema check.
    #[default]
    Accept,
    /// Recorded as an error `unknown_event_type`.
    Reject,
}

impl UnknownTypePolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "accept" => Some(UnknownTypePolicy::Accept),
            "reject" => Some(UnknownTypePolicy::Reject),
            _ => None,
        }
    }
}

impl std::str::FromStr for UnknownTypePolicy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text).ok_or_else(|| format!("{text:?} is neither accept nor reject"))
    }
}

/// A schema that cannot be used, with the reason (for a `422`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSchema(pub String);

/// Compiles `schema` as draft 2020-12, checking it against the meta-schema first.
/// Remote `$ref`s are not resolved: a schema must be self-contained.
pub fn compile(schema: &Value) -> Result<Validator, InvalidSchema> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(InvalidSchema(
            "a JSON Schema must be an object or a boolean".into(),
        ));
    }
    jsonschema::draft202012::new(schema).map_err(|error| {
        let at = error.instance_path().as_str();
        if at.is_empty() {
            InvalidSchema(error.to_string())
        } else {
            InvalidSchema(format!("{error} (at `{at}` in the schema)"))
        }
    })
}

/// The result of checking one event's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Store it, recording the schema version it was checked against (if any).
    Valid { version: Option<i64> },
    /// Store it, and record the violations as a warning (shadow mode).
    Warn {
        version: i64,
        violations: Vec<Violation>,
    },
    /// Do not store it: it is an error with this reason.
    Invalid(Refusal),
}

#[derive(Clone)]
enum Entry {
    Unchecked,
    Checked {
        version: i64,
        mode: SchemaMode,
        validator: Arc<Validator>,
    },
    /// A stored schema that does not compile (only possible if it was written by
    /// something other than this binary): its events are errors until it is fixed.
    Broken {
        version: i64,
        reason: String,
    },
}

#[derive(Default)]
struct State {
    types: HashMap<EventType, Entry>,
    compiled: HashMap<(EventType, i64), Arc<Validator>>,
    loaded_at: Option<Instant>,
    ever_loaded: bool,
}

pub struct Registry {
    policy: UnknownTypePolicy,
    state: RwLock<State>,
}

impl Registry {
    pub fn new(policy: UnknownTypePolicy) -> Self {
        Registry {
            policy,
            state: RwLock::new(State::default()),
        }
    }

    /// True when never loaded, invalidated, or loaded longer than `max_age` ago.
    pub fn is_stale(&self, max_age: Duration) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.loaded_at.is_none_or(|at| at.elapsed() >= max_age)
    }

    /// False until the first [`Registry::load`]: until then nothing can be checked.
    pub fn ever_loaded(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .ever_loaded
    }

    /// Makes the next [`Registry::is_stale`] true, so that a change made by this
    /// process applies to the very next batch.
    pub fn invalidate(&self) {
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .loaded_at = None;
    }

    /// Replaces what is current with `types`, compiling only versions not seen before.
    pub fn load(&self, types: Vec<ActiveType>) {
        let mut fresh = HashMap::with_capacity(types.len());
        let mut compiled = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state.compiled.clone()
        };
        compiled.retain(|(event_type, version), _| {
            types.iter().any(|t| {
                t.event_type == *event_type && t.schema.as_ref().is_some_and(|s| s.0 == *version)
            })
        });
        for active in types {
            let entry = match &active.schema {
                None => Entry::Unchecked,
                Some((version, text)) => {
                    let key = (active.event_type.clone(), *version);
                    match compiled.get(&key) {
                        Some(validator) => Entry::Checked {
                            version: *version,
                            mode: active.mode,
                            validator: Arc::clone(validator),
                        },
                        None => match serde_json::from_str(text)
                            .map_err(|e| InvalidSchema(e.to_string()))
                            .and_then(|schema| compile(&schema))
                        {
                            Ok(validator) => {
                                let validator = Arc::new(validator);
                                compiled.insert(key, Arc::clone(&validator));
                                Entry::Checked {
                                    version: *version,
                                    mode: active.mode,
                                    validator,
                                }
                            }
                            Err(InvalidSchema(reason)) => {
                                tracing::error!(
                                    category = active.event_type.category,
                                    name = active.event_type.name,
                                    version,
                                    %reason,
                                    "stored schema does not compile; its events become errors"
                                );
                                Entry::Broken {
                                    version: *version,
                                    reason,
                                }
                            }
                        },
                    }
                }
            };
            fresh.insert(active.event_type, entry);
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.types = fresh;
        state.compiled = compiled;
        state.loaded_at = Some(Instant::now());
        state.ever_loaded = true;
    }

    /// True when `event_type` has an entry (with or without a schema): the registered
    /// types are a set operators control, so they are safe as metric labels.
    pub fn is_registered(&self, event_type: &EventType) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.types.contains_key(event_type)
    }

    /// Checks one payload against its type's current schema.
    pub fn check(&self, event_type: &EventType, data: &RawValue) -> Check {
        let entry = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state.types.get(event_type).cloned()
        };
        match entry {
            None => match self.policy {
                UnknownTypePolicy::Accept => Check::Valid { version: None },
                UnknownTypePolicy::Reject => Check::Invalid(Refusal::new(
                    "unknown_event_type",
                    format!(
                        "the event type {:?}/{:?} is not registered, and unknown types are refused",
                        event_type.category, event_type.name
                    ),
                    Some("name"),
                )),
            },
            Some(Entry::Unchecked) => Check::Valid { version: None },
            Some(Entry::Broken { version, reason }) => Check::Invalid(Refusal::new(
                "internal",
                format!("schema version {version} of this type cannot be compiled: {reason}"),
                None,
            )),
            Some(Entry::Checked {
                version,
                mode,
                validator,
            }) => {
                let violations = violations(&validator, data);
                match (violations.is_empty(), mode) {
                    (true, _) => Check::Valid {
                        version: Some(version),
                    },
                    (false, SchemaMode::Shadow) => Check::Warn {
                        version,
                        violations,
                    },
                    (false, SchemaMode::Enforce) => {
                        Check::Invalid(Refusal::schema_violation(version, violations))
                    }
                }
            }
        }
    }
}

/// Every violation of `validator` by `data`, at most [`MAX_VIOLATIONS`].
pub fn violations(validator: &Validator, data: &RawValue) -> Vec<Violation> {
    let value: Value = match serde_json::from_str(data.get()) {
        Ok(value) => value,
        // `data` was checked to be JSON when the event was parsed.
        Err(error) => {
            return vec![Violation {
                pointer: String::new(),
                rule: "json".into(),
                message: error.to_string(),
            }];
        }
    };
    if validator.is_valid(&value) {
        return Vec::new();
    }
    validator
        .iter_errors(&value)
        .take(MAX_VIOLATIONS)
        .map(|error| Violation {
            pointer: error.instance_path().as_str().to_owned(),
            rule: error.kind().keyword().to_owned(),
            message: error.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_type(category: &str, name: &str) -> EventType {
        EventType {
            category: category.into(),
            name: name.into(),
        }
    }

    fn raw(value: Value) -> Box<RawValue> {
        RawValue::from_string(value.to_string()).unwrap()
    }

    fn active(mode: SchemaMode, version: i64, schema: Value) -> ActiveType {
        ActiveType {
            event_type: event_type("page interaction", "pageview"),
            mode,
            schema: Some((version, schema.to_string())),
        }
    }

    fn pageview_schema() -> Value {
        json!({"type": "object", "required": ["host", "path"],
               "properties": {"host": {"type": "string"}, "path": {"type": "string"}}})
    }

    #[test]
    fn invalid_schemas_are_refused_with_a_reason() {
        assert!(compile(&pageview_schema()).is_ok());
        let error = compile(&json!({"type": "strin"})).unwrap_err();
        assert!(error.0.contains("/type"), "{error}");
        assert!(compile(&json!(3)).is_err());
        assert!(compile(&json!({"minLength": -1})).is_err());
    }

    #[test]
    fn enforce_reports_every_violation_with_its_pointer_and_rule() {
        let registry = Registry::new(UnknownTypePolicy::Accept);
        registry.load(vec![active(SchemaMode::Enforce, 3, pageview_schema())]);
        let pageview = event_type("page interaction", "pageview");
        assert_eq!(
            registry.check(&pageview, &raw(json!({"host": "h", "path": "/"}))),
            Check::Valid { version: Some(3) }
        );
        let Check::Invalid(refusal) = registry.check(&pageview, &raw(json!({"path": 5}))) else {
            panic!("expected an error")
        };
        assert_eq!(refusal.code, "schema_violation");
        let found: Vec<(&str, &str)> = refusal
            .violations
            .iter()
            .map(|v| (v.pointer.as_str(), v.rule.as_str()))
            .collect();
        assert!(found.contains(&("", "required")), "{found:?}");
        assert!(found.contains(&("/path", "type")), "{found:?}");
        assert!(refusal.message.contains("version 3"), "{}", refusal.message);
    }

    #[test]
    fn violations_are_capped() {
        let schema = json!({"type": "object", "additionalProperties": {"type": "string"}});
        let registry = Registry::new(UnknownTypePolicy::Accept);
        registry.load(vec![active(SchemaMode::Enforce, 1, schema)]);
        let data: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        let Check::Invalid(refusal) = registry.check(
            &event_type("page interaction", "pageview"),
            &raw(Value::Object(data)),
        ) else {
            panic!("expected an error")
        };
        assert_eq!(refusal.violations.len(), MAX_VIOLATIONS);
    }

    #[test]
    fn shadow_mode_warns_and_unknown_types_follow_the_policy() {
        let registry = Registry::new(UnknownTypePolicy::Reject);
        registry.load(vec![active(SchemaMode::Shadow, 2, pageview_schema())]);
        let check = registry.check(
            &event_type("page interaction", "pageview"),
            &raw(json!({"host": "h"})),
        );
        assert!(
            matches!(check, Check::Warn { version: 2, ref violations } if violations.len() == 1)
        );
        let Check::Invalid(refusal) =
            registry.check(&event_type("other", "thing"), &raw(json!({})))
        else {
            panic!("expected an error")
        };
        assert_eq!(refusal.code, "unknown_event_type");

        let accepting = Registry::new(UnknownTypePolicy::Accept);
        assert_eq!(
            accepting.check(&event_type("other", "thing"), &raw(json!({}))),
            Check::Valid { version: None }
        );
    }

    #[test]
    fn staleness_and_invalidation() {
        let registry = Registry::new(UnknownTypePolicy::Accept);
        assert!(registry.is_stale(Duration::from_secs(60)));
        registry.load(Vec::new());
        assert!(!registry.is_stale(Duration::from_secs(60)));
        registry.invalidate();
        assert!(registry.is_stale(Duration::from_secs(60)));
    }

    #[test]
    fn a_new_version_replaces_the_old_one_and_reuses_nothing_stale() {
        let registry = Registry::new(UnknownTypePolicy::Accept);
        registry.load(vec![active(SchemaMode::Enforce, 1, pageview_schema())]);
        let pageview = event_type("page interaction", "pageview");
        let data = raw(json!({"host": "h", "path": "/"}));
        assert_eq!(
            registry.check(&pageview, &data),
            Check::Valid { version: Some(1) }
        );
        let stricter = json!({"type": "object", "required": ["element"]});
        registry.load(vec![active(SchemaMode::Enforce, 2, stricter)]);
        assert!(matches!(
            registry.check(&pageview, &data),
            Check::Invalid(_)
        ));
    }
}
