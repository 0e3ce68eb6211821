//! Whether a type's schema lets a payload field exist, so that a field declared indexed
//! is one its events can have. The walk follows `properties`, then
//! `additionalProperties`; where a schema says more than these (`$ref`, `allOf`,
//! `patternProperties`...) it gives up and allows the field: an index on a field no
//! event has costs nothing but its declaration.

use eye_core::FieldPath;
use serde_json::Value;

/// Why `schema` (a type's payload schema) forbids `path`, or `None` when the field can
/// hold a value an index can serve (a string, a number, a boolean).
pub fn forbidden_field(schema: &Value, path: &FieldPath) -> Option<String> {
    let mut at = schema;
    let mut walked = String::new();
    for key in path.keys() {
        let here = if walked.is_empty() { "/" } else { &walked };
        match at {
            Value::Bool(false) => return Some(format!("the schema allows nothing at `{here}`")),
            Value::Object(object) => {
                if !allows_type(object.get("type"), "object") {
                    return Some(format!(
                        "the schema makes `{here}` something else than an object"
                    ));
                }
                if let Some(property) = object.get("properties").and_then(|p| p.get(key)) {
                    at = property;
                } else if opaque(object) {
                    return None;
                } else {
                    match object.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            return Some(format!(
                                "the schema allows no property {key:?} at `{here}` (additionalProperties is false)"
                            ));
                        }
                        Some(other) => at = other,
                        None => return None,
                    }
                }
            }
            _ => return None,
        }
        walked.push('/');
        walked.push_str(key);
    }
    match at {
        Value::Bool(false) => Some(format!("the schema allows nothing at `{path}`")),
        Value::Object(object)
            if !["string", "number", "integer", "boolean"]
                .iter()
                .any(|scalar| allows_type(object.get("type"), scalar)) =>
        {
            Some(format!(
                "the schema makes `{path}` an object, an array or null: index a string, number or boolean under it"
            ))
        }
        _ => None,
    }
}

/// Whether a `type` keyword (absent, a name or a list of names) allows `wanted`;
/// `integer` is a `number`.
fn allows_type(keyword: Option<&Value>, wanted: &str) -> bool {
    let names = |name: &str| name == wanted || (wanted == "integer" && name == "number");
    match keyword {
        None => true,
        Some(Value::String(name)) => names(name),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(names),
        Some(_) => true,
    }
}

/// A schema whose properties come from somewhere this walk does not follow.
fn opaque(object: &serde_json::Map<String, Value>) -> bool {
    [
        "$ref",
        "$dynamicRef",
        "allOf",
        "anyOf",
        "oneOf",
        "if",
        "patternProperties",
        "unevaluatedProperties",
        "dependentSchemas",
    ]
    .iter()
    .any(|keyword| object.contains_key(*keyword))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, pointer: &str) -> Option<String> {
        forbidden_field(&schema, &FieldPath::parse(pointer).unwrap())
    }

    #[test]
    fn declared_and_open_fields_are_allowed() {
        let schema = json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "form": {"type": "object", "properties": {"n": {"type": ["integer", "null"]}}}
            }
        });
        assert_eq!(check(schema.clone(), "/path"), None);
        assert_eq!(check(schema.clone(), "/form/n"), None);
        // No additionalProperties: other fields may exist.
        assert_eq!(check(schema, "/other"), None);
        assert_eq!(check(json!(true), "/any/thing"), None);
        assert_eq!(check(json!({"$ref": "#/$defs/x"}), "/x"), None);
    }

    #[test]
    fn fields_the_schema_forbids_or_makes_non_scalar_are_refused() {
        let closed = json!({
            "type": "object",
            "properties": {"path": {"type": "string"}, "form": {"type": "object"}, "tags": {"type": "array"}},
            "additionalProperties": false
        });
        assert!(
            check(closed.clone(), "/nope")
                .unwrap()
                .contains("no property \"nope\"")
        );
        assert!(
            check(closed.clone(), "/form")
                .unwrap()
                .contains("an object, an array")
        );
        assert!(
            check(closed.clone(), "/tags")
                .unwrap()
                .contains("an object, an array")
        );
        assert!(check(closed, "/path/deeper").unwrap().contains("`/path`"));
        assert!(check(json!(false), "/a").is_some());
        assert!(check(json!({"properties": {"a": false}}), "/a").is_some());
    }
}
