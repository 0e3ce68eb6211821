//! An ingest body split into its elements, borrowed from it: one JSON object, a JSON
//! array of them, or NDJSON (one per line, blank lines skipped). The elements are not
//! parsed as events here: each one gets its own verdict later.

use serde_json::value::RawValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Ndjson,
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(serde_json::Error),
    #[error("line {line} is not valid JSON: {source}")]
    InvalidLine {
        line: usize,
        source: serde_json::Error,
    },
    #[error("the body must be an event object or an array of events")]
    NotEvents,
}

/// The body's elements, and whether it was a single object (rather than an array or
/// NDJSON): a single event's refusal is answered with `400`, a batch's per element.
pub fn split(bytes: &[u8], format: BodyFormat) -> Result<(Vec<&RawValue>, bool), BodyError> {
    match format {
        BodyFormat::Json => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => Ok((
                serde_json::from_slice(bytes).map_err(BodyError::InvalidJson)?,
                false,
            )),
            Some(b'{') => Ok((
                vec![serde_json::from_slice(bytes).map_err(BodyError::InvalidJson)?],
                true,
            )),
            _ => {
                let _: &RawValue = serde_json::from_slice(bytes).map_err(BodyError::InvalidJson)?;
                Err(BodyError::NotEvents)
            }
        },
        BodyFormat::Ndjson => {
            let mut items = Vec::new();
            for (number, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value =
                    serde_json::from_slice(line).map_err(|source| BodyError::InvalidLine {
                        line: number + 1,
                        source,
                    })?;
                items.push(value);
            }
            Ok((items, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_arrays_and_lines_split_into_elements() {
        let (items, single) = split(br#" {"a":1} "#, BodyFormat::Json).unwrap();
        assert_eq!((items.len(), single), (1, true));
        let (items, single) = split(br#"[{"a":1},{"b":2}]"#, BodyFormat::Json).unwrap();
        assert_eq!((items.len(), single), (2, false));
        assert_eq!(items[1].get(), r#"{"b":2}"#);
        let (items, _) = split(b"{\"a\":1}\n\n {\"b\":2}\n", BodyFormat::Ndjson).unwrap();
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn what_is_not_events_is_refused_with_its_reason() {
        assert!(matches!(
            split(b"42", BodyFormat::Json),
            Err(BodyError::NotEvents)
        ));
        assert!(matches!(
            split(b"{oops", BodyFormat::Json),
            Err(BodyError::InvalidJson(_))
        ));
        assert!(matches!(
            split(b"{}\nnope", BodyFormat::Ndjson),
            Err(BodyError::InvalidLine { line: 2, .. })
        ));
    }
}
