//! What every store does alike with the rows it reads and writes, whatever its SQL:
//! a page read one row past its limit, the position a page ends at, an event owned
//! from its borrowed row, a refusal's violations as stored text, and which error
//! records a dismissal changes.

use serde_json::value::RawValue;

use crate::{
    Cursor, EventRow, RefusedEvent, RefusedStatus, Result, SessionCursor, SessionSummary,
    StoreError, StoredEvent,
};

/// Cuts `items`, read with a limit of `limit + 1`, down to `limit`, and returns the
/// position of the last item kept when the extra row shows that more follow.
pub(crate) fn cut_to_limit<T, P>(
    items: &mut Vec<T>,
    limit: u32,
    position: impl FnOnce(&T) -> P,
) -> Option<P> {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(position)
    } else {
        None
    }
}

/// Errors are listed newest first by their number alone, so only `pk` counts.
pub(crate) fn error_cursor(record: &RefusedEvent) -> Cursor {
    Cursor {
        ts: 0,
        seq: 0,
        pk: record.id,
    }
}

pub(crate) fn session_cursor(session: &SessionSummary) -> SessionCursor {
    SessionCursor {
        last_seen: session.last_seen.as_micros(),
        session_id: session.session_id.clone(),
    }
}

/// The owned copy of a borrowed event row, with its payload already checked to be
/// JSON (each store reports a bad payload in its own way).
pub(crate) fn stored_event(event: &EventRow<'_>, data: Box<RawValue>) -> StoredEvent {
    StoredEvent {
        id: event.id,
        session_id: event.session_id.to_owned(),
        category: event.category.to_owned(),
        name: event.name.to_owned(),
        data,
        timestamp: event.timestamp,
        seq: event.seq,
        app: event.app.to_owned(),
        client_id: event.client_id.map(str::to_owned),
        received_at: event.received_at,
        sent_at: event.sent_at,
        schema_version: event.schema_version,
        cursor: event.cursor,
    }
}

/// The `violations` column: the JSON list, or `NULL` when there are none.
pub(crate) fn violations_text(refusal: &eye_core::Refusal) -> Result<Option<String>> {
    (!refusal.violations.is_empty())
        .then(|| serde_json::to_string(&refusal.violations))
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Whether dismissing `record` changes it: dismissing twice is harmless, and a
/// reprocessed error (already an event) cannot be dismissed.
pub(crate) fn needs_dismissing(record: &RefusedEvent) -> Result<bool> {
    match record.status {
        RefusedStatus::Open | RefusedStatus::Warning => Ok(true),
        RefusedStatus::Dismissed => Ok(false),
        RefusedStatus::Reprocessed => Err(StoreError::InvalidState(
            "the error was reprocessed into an event and cannot be dismissed".into(),
        )),
    }
}
