//! The event store: the [`Store`] traits that the worker writes through and the API
//! reads through, one per concern (`EventWrites`, `EventReads`, `RefusedEvents`,
//! `EventTypes`, `Access`), the types that cross them, and two back ends with files of
//! the same shape: [`sqlite::SqliteStore`] (the embedded default) and
//! [`postgres::PgStore`]. What both do alike lives here once: `batch` turns a worker
//! batch into rows and counter changes, `rows` turns rows into answers, `aggregate`
//! does the rollup's arithmetic, `cursor` the keyset pagination.
//!
//! Invariants every back end keeps, checked by `tests/conformance.rs` against both: an
//! event id is stored at most once (so a redelivered message or a resent client id
//! changes nothing); an event, its session's counters and its session-application link
//! are written in the same transaction, and only for events actually inserted; a
//! refused-event record is keyed by the id of the message that produced it.

mod access;
mod aggregate;
mod batch;
pub mod cursor;
mod events;
mod indexes;
pub mod lifecycle;
pub mod postgres;
mod refused;
mod registry;
mod removal;
mod rows;
pub mod sqlite;
#[cfg(test)]
mod testing;

pub use access::*;
pub use cursor::{Cursor, ScopedCursorError, SessionCursor};
pub use events::*;
pub use indexes::{FieldIndexes, IndexState, IndexedField, PendingIndex};
pub use lifecycle::{Cutoffs, Erasure, ErasureFilter, ErasureStatus, Lifecycle, Removed};
pub use postgres::PgStore;
pub use refused::*;
pub use registry::*;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused, in its own words. Each back end turns its
    /// driver's errors into this, so no driver's type crosses the trait.
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The request is valid but not in the record's present state.
    #[error("{0}")]
    InvalidState(String),
    #[error("store task failed: {0}")]
    Task(String),
    /// A read ran past the query budget (each back end's `set_query_budget`) and was
    /// stopped.
    #[error("the query ran past the query budget and was stopped")]
    OverBudget,
    #[error("store IO failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything a process needs of its store: each concern is a trait of its own, so
/// that a module's imports say which part of the store it touches.
pub trait Store:
    EventWrites + EventReads + RefusedEvents + EventTypes + FieldIndexes + Access + Lifecycle + 'static
{
}

impl<T> Store for T where
    T: EventWrites
        + EventReads
        + RefusedEvents
        + EventTypes
        + FieldIndexes
        + Access
        + Lifecycle
        + 'static
{
}
