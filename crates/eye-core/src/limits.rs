//! Limits on an event's payload, checked before its schema: a schema validator walks
//! the whole tree, so size and depth are bounded first, by a scan of the text that
//! allocates nothing.

use serde_json::value::RawValue;

use crate::reason::Rejection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLimits {
    /// Largest `data`, in bytes of JSON text.
    pub max_bytes: usize,
    /// Deepest nesting of objects and arrays; `data` itself is depth 1.
    pub max_depth: usize,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        PayloadLimits {
            max_bytes: 32 * 1024,
            max_depth: 32,
        }
    }
}

impl PayloadLimits {
    pub fn check(&self, data: &RawValue) -> Result<(), Rejection> {
        let text = data.get();
        if text.len() > self.max_bytes {
            return Err(Rejection::new(
                "payload_too_large",
                format!(
                    "`data` is {} bytes; the limit is {} bytes",
                    text.len(),
                    self.max_bytes
                ),
                Some("data"),
            ));
        }
        let depth = nesting_depth(text.as_bytes());
        if depth > self.max_depth {
            return Err(Rejection::new(
                "payload_too_deep",
                format!(
                    "`data` nests {depth} levels deep; the limit is {}",
                    self.max_depth
                ),
                Some("data"),
            ));
        }
        Ok(())
    }
}

/// The deepest nesting of objects and arrays in valid JSON text (brackets inside
/// strings do not count).
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn depth_counts_objects_and_arrays_but_not_brackets_in_strings() {
        assert_eq!(nesting_depth(br#"{}"#), 1);
        assert_eq!(nesting_depth(br#"{"a":[{"b":1}],"c":{}}"#), 3);
        assert_eq!(nesting_depth(br#"{"a":"[[[{{{\"]]"}"#), 1);
        assert_eq!(nesting_depth(br#"{"a\\":"[["}"#), 1);
    }

    #[test]
    fn size_and_depth_have_their_own_reasons() {
        let limits = PayloadLimits {
            max_bytes: 20,
            max_depth: 2,
        };
        assert!(limits.check(&raw(r#"{"a":{"b":1}}"#)).is_ok());
        let deep = limits.check(&raw(r#"{"a":{"b":[1]}}"#)).unwrap_err();
        assert_eq!(deep.code, "payload_too_deep");
        assert!(deep.message.contains("3 levels"), "{}", deep.message);
        let large = limits
            .check(&raw(r#"{"a":"0123456789012345"}"#))
            .unwrap_err();
        assert_eq!(large.code, "payload_too_large");
        assert_eq!(large.field.as_deref(), Some("data"));
    }
}
