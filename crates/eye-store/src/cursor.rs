//! Keyset pagination cursors. A cursor is the sort key of the last item of a page:
//! (timestamp, seq, arrival). It is opaque to clients (hex text), so its layout can
//! change without breaking them, and it never needs an OFFSET scan.
//!
//! The API's event cursors (`encode_in` / `decode_in`) also carry a check over the
//! position and the query's filters (`EventQuery::scope`): a cursor given to another
//! query, or changed by hand, is refused with a message that says so, instead of
//! silently starting another query somewhere in the middle.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub ts: i64,
    pub seq: i64,
    pub pk: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cursor is not one this server issued")]
pub struct CursorError;

/// Why an API cursor was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopedCursorError {
    #[error("the cursor is not one this server issued")]
    Malformed,
    #[error(
        "the cursor was made for another query, or was changed: repeat the query it came from, with the same filters, to continue it"
    )]
    OtherQuery,
}

const VERSION: u8 = 1;
const SCOPED_VERSION: u8 = 3;

/// FNV-1a, 64 bits: stable across builds and platforms, which a cursor outliving an
/// upgrade needs (std's hasher promises neither).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        // The length first, so that ("ab", "c") and ("a", "bc") differ.
        for byte in (part.len() as u64).to_be_bytes().iter().chain(part.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(25);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.ts.to_be_bytes());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.pk.to_be_bytes());
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cursor of a query whose filters hash to `scope`, with its check.
    pub fn encode_in(&self, scope: u64) -> String {
        let mut bytes = Vec::with_capacity(33);
        bytes.push(SCOPED_VERSION);
        bytes.extend_from_slice(&self.ts.to_be_bytes());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.pk.to_be_bytes());
        bytes.extend_from_slice(&self.check(scope).to_be_bytes());
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A cursor `encode_in` made for the same `scope`.
    pub fn decode_in(text: &str, scope: u64) -> Result<Self, ScopedCursorError> {
        if text.len() != 66 || !text.is_ascii() {
            return Err(ScopedCursorError::Malformed);
        }
        let mut bytes = [0u8; 33];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| ScopedCursorError::Malformed)?;
        }
        if bytes[0] != SCOPED_VERSION {
            return Err(ScopedCursorError::Malformed);
        }
        let field = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let cursor = Cursor {
            ts: field(1),
            seq: field(9),
            pk: field(17),
        };
        if field(25) as u64 != cursor.check(scope) {
            return Err(ScopedCursorError::OtherQuery);
        }
        Ok(cursor)
    }

    fn check(&self, scope: u64) -> u64 {
        fnv1a(&[
            &scope.to_be_bytes(),
            &self.ts.to_be_bytes(),
            &self.seq.to_be_bytes(),
            &self.pk.to_be_bytes(),
        ])
    }

    pub fn decode(text: &str) -> Result<Self, CursorError> {
        if text.len() != 50 || !text.is_ascii() {
            return Err(CursorError);
        }
        let mut bytes = [0u8; 25];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| CursorError)?;
        }
        if bytes[0] != VERSION {
            return Err(CursorError);
        }
        let field = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Ok(Cursor {
            ts: field(1),
            seq: field(9),
            pk: field(17),
        })
    }
}

/// The position in a sessions listing: the last session's `last_seen` and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub last_seen: i64,
    pub session_id: String,
}

const SESSION_VERSION: u8 = 2;

impl SessionCursor {
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(9 + self.session_id.len());
        bytes.push(SESSION_VERSION);
        bytes.extend_from_slice(&self.last_seen.to_be_bytes());
        bytes.extend_from_slice(self.session_id.as_bytes());
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Result<Self, CursorError> {
        if text.len() < 18 || !text.len().is_multiple_of(2) || !text.is_ascii() {
            return Err(CursorError);
        }
        let bytes = (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| CursorError))
            .collect::<Result<Vec<u8>, _>>()?;
        if bytes[0] != SESSION_VERSION {
            return Err(CursorError);
        }
        Ok(SessionCursor {
            last_seen: i64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes")),
            session_id: String::from_utf8(bytes[9..].to_vec()).map_err(|_| CursorError)?,
        })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_cursor_continues_only_its_own_query_and_refuses_changes() {
        let cursor = Cursor {
            ts: 1_672_564_527_243_860,
            seq: 3,
            pk: 42,
        };
        let text = cursor.encode_in(7);
        assert_eq!(Cursor::decode_in(&text, 7), Ok(cursor));
        assert_eq!(
            Cursor::decode_in(&text, 8),
            Err(ScopedCursorError::OtherQuery)
        );
        // One digit of the position changed: refused, not another position.
        let mut changed = text.clone();
        changed.replace_range(20..21, if &text[20..21] == "0" { "1" } else { "0" });
        assert_eq!(
            Cursor::decode_in(&changed, 7),
            Err(ScopedCursorError::OtherQuery)
        );
        assert_eq!(
            Cursor::decode_in(&cursor.encode(), 7),
            Err(ScopedCursorError::Malformed)
        );
        assert_eq!(
            Cursor::decode_in("zz", 7),
            Err(ScopedCursorError::Malformed)
        );
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn session_cursors_round_trip_and_are_not_event_cursors() {
        let cursor = SessionCursor {
            last_seen: -5,
            session_id: "s é,1".into(),
        };
        assert_eq!(SessionCursor::decode(&cursor.encode()), Ok(cursor.clone()));
        assert!(Cursor::decode(&cursor.encode()).is_err());
        let event = Cursor {
            ts: 1,
            seq: 2,
            pk: 3,
        }
        .encode();
        assert!(SessionCursor::decode(&event).is_err());
        assert!(SessionCursor::decode("02zz").is_err());
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        for cursor in [
            Cursor::default(),
            Cursor {
                ts: -1,
                seq: i64::MIN,
                pk: i64::MAX,
            },
            Cursor {
                ts: 1_672_564_527_243_860,
                seq: 3,
                pk: 42,
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        }
        assert_eq!(Cursor::decode(""), Err(CursorError));
        assert_eq!(Cursor::decode("zz"), Err(CursorError));
        let mut wrong_version = Cursor::default().encode();
        wrong_version.replace_range(0..2, "02");
        assert_eq!(Cursor::decode(&wrong_version), Err(CursorError));
        assert_eq!(Cursor::decode(&"é".repeat(25)), Err(CursorError));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn event_cursors_round_trip(ts in any::<i64>(), seq in any::<i64>(), pk in any::<i64>()) {
            let cursor = Cursor { ts, seq, pk };
            prop_assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        }

        #[test]
        fn session_cursors_round_trip(last_seen in any::<i64>(), session_id in "\\PC{0,64}") {
            let cursor = SessionCursor { last_seen, session_id };
            prop_assert_eq!(SessionCursor::decode(&cursor.encode()), Ok(cursor));
        }

        #[test]
        fn any_text_is_a_cursor_or_refused_without_a_panic(text in "\\PC{0,80}") {
            let _ = Cursor::decode(&text);
            let _ = SessionCursor::decode(&text);
        }

        #[test]
        fn a_changed_cursor_is_refused_or_decodes_to_another_position(
            ts in any::<i64>(), seq in any::<i64>(), pk in any::<i64>(), at in 0usize..50, to in "[0-9a-f]",
        ) {
            let cursor = Cursor { ts, seq, pk };
            let mut text = cursor.encode();
            text.replace_range(at..at + 1, &to);
            if let Ok(other) = Cursor::decode(&text) {
                prop_assert_eq!(other == cursor, text == cursor.encode());
            }
        }
    }
}
