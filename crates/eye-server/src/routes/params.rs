//! Query-string parsing shared by the read endpoints. Every parameter is checked by
//! name, so an unknown or malformed one gets a `400` that names it instead of being
//! silently ignored (a typo in a filter would otherwise return everything).

use std::collections::HashMap;

use eye_core::Timestamp;
use eye_store::Cursor;

use crate::error::ApiError;

pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `query`, refusing parameters not in `allowed` and repeated ones. An
    /// entry ending in `*` (`data.*`) allows every name with that prefix.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        let known = |key: &str| {
            allowed.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => key.len() > prefix.len() && key.starts_with(prefix),
                None => *a == key,
            })
        };
        for (key, value) in form_pairs(query.unwrap_or("")) {
            if !known(&key) {
                return Err(ApiError::bad_parameter(
                    &key,
                    format!("unknown parameter `{key}`; known: {}", allowed.join(", ")),
                ));
            }
            // No stored name or value holds U+0000, and PostgreSQL refuses it in a query.
            if key.contains('\0') || value.contains('\0') {
                return Err(ApiError::bad_parameter(
                    &key,
                    format!("`{}` must not contain U+0000", key.replace('\0', "")),
                ));
            }
            if map.insert(key.clone(), value).is_some() {
                return Err(ApiError::bad_parameter(
                    &key,
                    format!("`{key}` is given more than once"),
                ));
            }
        }
        Ok(Params(map))
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// Every parameter whose name starts with `prefix`, without it, sorted by name.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_owned(), v.clone())))
            .collect();
        found.sort();
        found
    }

    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.0
            .get(name)
            .map(|v| {
                Timestamp::parse(v).map_err(|e| {
                    ApiError::bad_parameter(
                        name,
                        format!("`{name}` is not an RFC 3339 time: {}", e.0),
                    )
                })
            })
            .transpose()
    }

    pub fn limit(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.0.get("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_parameter(
                    "limit",
                    format!("`limit` must be an integer from 1 to {max}"),
                )),
            },
        }
    }

    pub fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        self.0
            .get("cursor")
            .map(|v| {
                Cursor::decode(v).map_err(|e| ApiError::bad_parameter("cursor", e.to_string()))
            })
            .transpose()
    }
}

/// Splits `application/x-www-form-urlencoded` text into decoded pairs.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_encoding() {
        assert_eq!(percent_decode("page+interaction"), "page interaction");
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%+1"), "% 1");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }

    #[test]
    fn refuses_unknown_and_repeated_parameters() {
        assert!(Params::parse(Some("category=a&name=b"), &["category", "name"]).is_ok());
        let e = Params::parse(Some("catgory=a"), &["category"])
            .err()
            .unwrap();
        assert_eq!(e.details["parameter"], "catgory");
        assert!(Params::parse(Some("category=a&category=b"), &["category"]).is_err());
        let params = Params::parse(Some("data.b=2&data.a.c=1"), &["data.*"]).unwrap();
        assert_eq!(
            params.with_prefix("data."),
            vec![("a.c".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(Params::parse(Some("data.=1"), &["data.*"]).is_err());
        assert!(Params::parse(Some("datum=1"), &["data.*"]).is_err());
    }
}
