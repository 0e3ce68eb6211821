//! Why an event was refused: a stable reason code, a readable message and the field
//! at fault. The codes are part of the external contract (documented in `docs/`).

/// Every reason code The Eye records, in one place.
pub const REASON_CODES: [(&str, &str); 9] = [
    ("invalid_event", "the element is not a JSON object"),
    (
        "duplicate_field",
        "a top-level field appears more than once",
    ),
    (
        "unknown_field",
        "a top-level field that is not part of the event format",
    ),
    ("missing_field", "a required field is absent or null"),
    ("invalid_type", "a field has the wrong JSON type"),
    (
        "invalid_value",
        "a field has the right type but an unacceptable value",
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
        "internal",
        "the event could not be processed; see the message",
    ),
];

/// A refused event's reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Rejection {
    pub fn new(code: &'static str, message: impl Into<String>, field: Option<&str>) -> Self {
        debug_assert!(REASON_CODES.iter().any(|(c, _)| *c == code), "{code}");
        Rejection {
            code: code.to_owned(),
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }
}
