//! Limits on an event's payload, checked before its schema: a schema validator walks
//! the whole tree, so size and depth are bounded first, by a scan of the text that
//! allocates nothing. Then one strict pass refuses what JSON parsers disagree on: a key
//! twice in one object (SQLite keeps both, PostgreSQL's jsonb the last one) and numbers
//! no double can hold (`1e999`).

use serde_json::value::RawValue;

use crate::reason::Refusal;

/// The most an event's timestamp may be ahead of its reception (`EYE_CLOCK_SKEW_MS`
/// at most): so every stored event has `ts <= received_at + a day`, which lets a query
/// from a time skip what was received a day before it (PostgreSQL's partitions).
pub const MAX_CLOCK_SKEW_MS: u64 = 86_400_000;

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
    pub fn check(&self, data: &RawValue) -> Result<(), Refusal> {
        let text = data.get();
        if text.len() > self.max_bytes {
            return Err(Refusal::new(
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
            return Err(Refusal::new(
                "payload_too_deep",
                format!(
                    "`data` nests {depth} levels deep; the limit is {}",
                    self.max_depth
                ),
                Some("data"),
            ));
        }
        strict::check(text)
    }
}

mod strict {
    use std::borrow::Cow;
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    use crate::reason::Refusal;

    /// Walks `data` once without building it; fails on a duplicate key or a number
    /// out of range.
    pub fn check(text: &str) -> Result<(), Refusal> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        Node.deserialize(&mut deserializer).map_err(|error| {
            let (code, what) = if error.is_data() && error.to_string().starts_with("duplicate") {
                ("duplicate_field", "a key appears twice in one object")
            } else {
                ("invalid_value", "a value no JSON reader can hold")
            };
            Refusal::new(code, format!("`data` has {what}: {error}"), Some("data"))
        })
    }

    /// U+0000 is valid JSON, but PostgreSQL's jsonb refuses it: an event holding it
    /// could be accepted and never stored.
    fn no_nul<E: de::Error>(text: &str) -> Result<(), E> {
        if text.contains('\0') {
            Err(E::custom(
                "a string holding U+0000, which stores cannot keep",
            ))
        } else {
            Ok(())
        }
    }

    struct Node;

    impl<'de> DeserializeSeed<'de> for Node {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Node {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
            no_nul(text)
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Node)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            // Small objects (nearly all) compare keys in a list; large ones hash them.
            let mut few: Vec<Cow<'de, str>> = Vec::new();
            let mut many: HashSet<Cow<'de, str>> = HashSet::new();
            while let Some(key) = map.next_key_seed(Key)? {
                let repeated = if many.is_empty() && few.len() < 16 {
                    let seen = few.contains(&key);
                    few.push(key.clone());
                    seen
                } else {
                    many.extend(few.drain(..));
                    !many.insert(key.clone())
                };
                no_nul(&key)?;
                if repeated {
                    return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
                }
                map.next_value_seed(Node)?;
            }
            Ok(())
        }
    }

    /// A key, borrowed from the text unless it holds escapes.
    struct Key;

    impl<'de> DeserializeSeed<'de> for Key {
        type Value = Cow<'de, str>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Key {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object key")
        }
        fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
            Ok(Cow::Borrowed(key))
        }
        fn visit_str<E>(self, key: &str) -> Result<Cow<'de, str>, E> {
            Ok(Cow::Owned(key.to_owned()))
        }
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

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_and_any_object_size() {
        let limits = PayloadLimits::default();
        assert!(limits.check(&raw(r#"{"a":1,"b":{"a":2}}"#)).is_ok());
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":[{"k":1,"k":1}]}"#,
            r#"{"a\u0062":1,"ab":2}"#,
        ] {
            let refused = limits.check(&raw(text)).unwrap_err();
            assert_eq!(refused.code, "duplicate_field", "{text}");
            assert_eq!(refused.field.as_deref(), Some("data"));
        }
        let many: Vec<String> = (0..40).map(|i| format!(r#""k{i}":{i}"#)).collect();
        assert!(
            limits
                .check(&raw(&format!("{{{}}}", many.join(","))))
                .is_ok()
        );
        let repeated = format!(r#"{{{},"k3":0}}"#, many.join(","));
        assert!(
            limits
                .check(&raw(&repeated))
                .unwrap_err()
                .message
                .contains("k3")
        );
    }

    #[test]
    fn numbers_no_double_can_hold_are_refused() {
        let limits = PayloadLimits::default();
        assert!(
            limits
                .check(&raw(r#"{"n":1e308,"m":-12345678901234567890}"#))
                .is_ok()
        );
        let refused = limits.check(&raw(r#"{"n":1e999}"#)).unwrap_err();
        assert_eq!(refused.code, "invalid_value");
        assert!(
            refused.message.contains("out of range"),
            "{}",
            refused.message
        );
    }
}
