//! Why an event was refused: a stable reason code, a readable message and the field
//! at fault. The codes are part of the external contract (documented in `docs/`).

/// Every reason code The Eye records, in one place.
pub const REASON_CODES: [(&str, &str); 13] = [
    ("invalid_event", "the element is not a JSON object"),
    (
        "duplicate_field",
        "a top-level field appears more than once, or a key twice in one object of `data`",
    ),
    (
        "unknown_field",
        "a top-level field that is not part of the event format",
    ),
    ("missing_field", "a required field is absent or null"),
    ("invalid_type", "a field has the wrong JSON type"),
    (
        "invalid_value",
        "a field has the right type but an unacceptable value (also: a number in `data` no double can hold, or a string holding U+0000)",
    ),
    (
        "invalid_timestamp",
        "`timestamp` or `sent_at` cannot be parsed",
    ),
    (
        "future_timestamp",
        "the timestamp is later than the allowance permits",
    ),
    (
        "payload_too_large",
        "`data` is larger than the payload size limit",
    ),
    (
        "payload_too_deep",
        "`data` nests objects and arrays deeper than the limit",
    ),
    (
        "unknown_event_type",
        "the event type has no registry entry and the policy is `reject`",
    ),
    (
        "schema_violation",
        "`data` does not match the event type's JSON Schema; see `violations`",
    ),
    (
        "internal",
        "the event could not be processed; see the message",
    ),
];

/// A refused event's reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = Rejection)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `schema_violation`: what the schema found wrong, at most [`MAX_VIOLATIONS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// Most violations kept for one event: enough to fix it, bounded so that a payload
/// with a thousand bad fields does not make a thousand-line error record.
pub const MAX_VIOLATIONS: usize = 20;

/// One thing a JSON Schema found wrong with a payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Violation {
    /// JSON pointer to the offending value inside `data` (`""` is `data` itself).
    pub pointer: String,
    /// The schema keyword that failed (`required`, `type`, `minLength`, ...).
    pub rule: String,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>, field: Option<&str>) -> Self {
        debug_assert!(REASON_CODES.iter().any(|(c, _)| *c == code), "{code}");
        Refusal {
            code: code.to_owned(),
            message: message.into(),
            field: field.map(str::to_owned),
            violations: Vec::new(),
        }
    }

    /// A `schema_violation` listing `violations` (which must not be empty).
    pub fn schema_violation(version: i64, violations: Vec<Violation>) -> Self {
        let first = violations
            .first()
            .map(|v| format!("{} at `{}`", v.message, display_pointer(&v.pointer)))
            .unwrap_or_default();
        let more = match violations.len() {
            0 | 1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Refusal {
            code: "schema_violation".to_owned(),
            message: format!("`data` does not match schema version {version}: {first}{more}"),
            field: Some("data".to_owned()),
            violations,
        }
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() { "/" } else { pointer }
}
