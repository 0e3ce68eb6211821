//! Query strings and path segments parsed into the store's query types, for the JSON
//! API and the admin UI alike (they accept the same parameters). Every parameter is
//! checked by name, so an unknown or malformed one gets a `400` that names it instead
//! of being silently ignored (a typo in a filter would otherwise return everything).

use std::collections::HashMap;

use eye_core::EventType;
use eye_core::Timestamp;
use eye_core::reason::REASON_CODES;
use eye_store::{Cursor, DataFilter, EventQuery, Order, RefusedFilter, RefusedKey, RefusedStatus};

use crate::http::error::ApiError;

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

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1_000;

/// The parameters of `GET /events` and the admin UI's event pages.
pub const PARAMETERS: [&str; 10] = [
    "session_id",
    "category",
    "name",
    "app",
    "from",
    "to",
    "limit",
    "cursor",
    "order",
    "data.*",
];

/// The filters shared by `/events` and `/sessions/{id}`, without the cursor (see
/// [`with_cursor`]).
pub fn event_query(params: &Params, default_limit: u32) -> Result<EventQuery, ApiError> {
    let session_id = params.text("session_id");
    let from = params.time("from")?;
    let to = params.time("to")?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad_parameter("from", "`from` is later than `to`"));
    }
    // A session's timeline reads naturally oldest first; anything else newest first.
    let order = match params.text("order").as_deref() {
        None if session_id.is_some() => Order::Asc,
        None => Order::Desc,
        Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "order",
                "`order` must be `asc` or `desc`",
            ));
        }
    };
    Ok(EventQuery {
        session_id,
        category: params.text("category"),
        name: params.text("name"),
        app: params.text("app"),
        data: data_filters(params)?,
        from,
        to,
        order,
        limit: params.limit(default_limit, MAX_LIMIT)?,
        after: None,
        received_until: None,
    })
}

/// `query` continued from the `cursor` parameter, which must have been made for the
/// same filters (see [`EventQuery::scope`]): call it once the query is final.
pub fn with_cursor(params: &Params, mut query: EventQuery) -> Result<EventQuery, ApiError> {
    query.after = params
        .text("cursor")
        .map(|text| {
            Cursor::decode_in(&text, query.scope())
                .map_err(|e| ApiError::bad_parameter("cursor", e.to_string()))
        })
        .transpose()?;
    Ok(query)
}

/// `data.a.b=v` parameters. Keys may not hold quotes, `?` or backslashes (they would
/// need escaping in a JSON path, and no sane payload key has them).
fn data_filters(params: &Params) -> Result<Vec<DataFilter>, ApiError> {
    params
        .with_prefix("data.")
        .into_iter()
        .map(|(path, value)| {
            let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
            let bad = keys
                .iter()
                .any(|k| k.is_empty() || k.contains(['"', '\'', '?', '\\']));
            if bad {
                return Err(ApiError::bad_parameter(
                    &format!("data.{path}"),
                    format!(
                        "`data.{path}`: a payload path is keys joined by dots, without empty keys, quotes, `?` or backslashes"
                    ),
                ));
            }
            Ok(DataFilter { path: keys, value })
        })
        .collect()
}

/// The filter parameters every error endpoint takes.
pub const REFUSED_FILTER: [&str; 7] = ["reason", "category", "name", "app", "status", "from", "to"];

pub fn refused_filter(params: &Params) -> Result<RefusedFilter, ApiError> {
    let reason = params.text("reason");
    if let Some(reason) = &reason
        && !REASON_CODES.iter().any(|(code, _)| code == reason)
    {
        return Err(ApiError::bad_parameter(
            "reason",
            format!("`reason` {reason:?} is not a reason code; see docs/guide.md"),
        ));
    }
    let status = params
        .text("status")
        .map(|s| {
            RefusedStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_parameter(
                    "status",
                    "`status` must be one of open, reprocessed, dismissed, warning",
                )
            })
        })
        .transpose()?;
    let (from, to) = (params.time("from")?, params.time("to")?);
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(ApiError::bad_parameter(
            "to",
            "`to` must be later than `from`",
        ));
    }
    Ok(RefusedFilter {
        reason,
        category: params.text("category"),
        name: params.text("name"),
        app: params.text("app"),
        status,
        from,
        to,
    })
}

pub fn refused_key(id: &str) -> Result<RefusedKey, ApiError> {
    RefusedKey::parse(id).ok_or_else(|| {
        ApiError::bad_parameter(
            "id",
            "an error id is the `error_id` UUID from the ingest answer, or the record's number",
        )
    })
}

pub fn event_type((category, name): (String, String)) -> Result<EventType, ApiError> {
    EventType::parse(&category, &name).map_err(|(field, _)| {
        ApiError::bad_parameter(
            field,
            format!("`{field}` must be 1 to 256 characters, not blank, without control characters"),
        )
    })
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
