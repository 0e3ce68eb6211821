//! A payload field an event type declares indexed: a JSON Pointer into `data`
//! (RFC 6901, `/form/first_name`), parsed once into its keys so that the store builds
//! its index from keys it can quote safely and the `data.form.first_name=...` filter
//! finds it by the same keys.

use std::fmt;

/// Keys in one indexed path: deeper fields are rare, and each level costs a lookup.
pub const MAX_DEPTH: usize = 8;
/// Characters in one key.
pub const MAX_KEY_CHARS: usize = 64;
/// Fields one event type may declare indexed: every index slows every write a little.
pub const MAX_PER_TYPE: usize = 8;
/// Distinct indexed paths in a store, over all types.
pub const MAX_PATHS: usize = 32;

/// Object keys from the top of `data`, at least one; none empty, none holding a dot
/// (the query parameter joins keys with dots), a quote, `?`, a backslash or a control
/// character (they would need escaping in every back end's path syntax).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    #[error("{0:?} is not a JSON Pointer: it must start with `/`, e.g. `/form/first_name`")]
    NoSlash(String),
    #[error("{0:?} has an empty key")]
    EmptyKey(String),
    #[error("{0:?} is deeper than {MAX_DEPTH} keys")]
    TooDeep(String),
    #[error("{0:?} has a key longer than {MAX_KEY_CHARS} characters")]
    KeyTooLong(String),
    #[error("{0:?} has a `~` that is neither `~0` nor `~1`")]
    BadEscape(String),
    #[error(
        "{0:?} has a key with a dot, a quote, `?`, a backslash or a control character, which a `data.` filter cannot name"
    )]
    BadKey(String),
}

impl FieldPath {
    /// Parses a JSON Pointer: `/a/b`, with `~1` for `/` and `~0` for `~` in keys.
    pub fn parse(pointer: &str) -> Result<Self, FieldPathError> {
        let error = |make: fn(String) -> FieldPathError| make(pointer.to_owned());
        let Some(rest) = pointer.strip_prefix('/') else {
            return Err(error(FieldPathError::NoSlash));
        };
        let mut keys = Vec::new();
        for raw in rest.split('/') {
            if keys.len() == MAX_DEPTH {
                return Err(error(FieldPathError::TooDeep));
            }
            let key = unescape(raw).ok_or_else(|| error(FieldPathError::BadEscape))?;
            if key.is_empty() {
                return Err(error(FieldPathError::EmptyKey));
            }
            if key.chars().count() > MAX_KEY_CHARS {
                return Err(error(FieldPathError::KeyTooLong));
            }
            if key.contains(['.', '"', '\'', '?', '\\']) || key.chars().any(char::is_control) {
                return Err(error(FieldPathError::BadKey));
            }
            keys.push(key);
        }
        Ok(FieldPath(keys))
    }

    /// The path of the filter `data.<keys joined by dots>`, if its keys are valid.
    pub fn from_keys(keys: &[String]) -> Option<Self> {
        let pointer: String = keys.iter().map(|k| format!("/{}", escape(k))).collect();
        FieldPath::parse(&pointer).ok()
    }

    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

fn unescape(raw: &str) -> Option<String> {
    let mut key = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => key.push('~'),
                Some('1') => key.push('/'),
                _ => return None,
            }
        } else {
            key.push(c);
        }
    }
    Some(key)
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for key in &self.0 {
            write!(f, "/{}", escape(key))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_parse_into_keys_and_print_back() {
        let path = FieldPath::parse("/form/first_name").unwrap();
        assert_eq!(path.keys(), ["form", "first_name"]);
        assert_eq!(path.to_string(), "/form/first_name");
        let escaped = FieldPath::parse("/a~1b/c~0d").unwrap();
        assert_eq!(escaped.keys(), ["a/b", "c~d"]);
        assert_eq!(escaped.to_string(), "/a~1b/c~0d");
        assert_eq!(
            FieldPath::from_keys(&["form".into(), "first_name".into()]),
            Some(path)
        );
    }

    #[test]
    fn bad_pointers_are_refused_with_their_reason() {
        use FieldPathError::*;
        type Reason = fn(String) -> FieldPathError;
        let cases: [(&str, Reason); 7] = [
            ("path", NoSlash),
            ("", NoSlash),
            ("/", EmptyKey),
            ("/a//b", EmptyKey),
            ("/a/b.c", BadKey),
            ("/a~2", BadEscape),
            ("/1/2/3/4/5/6/7/8/9", TooDeep),
        ];
        for (pointer, expected) in cases {
            assert_eq!(
                FieldPath::parse(pointer),
                Err(expected(pointer.to_owned())),
                "{pointer}"
            );
        }
        let long = format!("/{}", "k".repeat(MAX_KEY_CHARS + 1));
        assert_eq!(FieldPath::parse(&long), Err(KeyTooLong(long.clone())));
        assert!(FieldPath::parse("/a\u{1}").is_err());
    }
}
