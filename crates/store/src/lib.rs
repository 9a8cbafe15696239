//! Tidings' storage: every accepted request raw, its normalized events deduplicated by their
//! dedup key, each message's folded status, and idempotency records, written in one
//! transaction per group of requests so that a 200 always means durably committed.
//!
//! The embedded backend is SQLite in WAL mode, durable by default. One writer thread owns the
//! write connection and commits every request waiting at that moment in one transaction (group
//! commit), so fsync is paid per group, not per request. In durable mode the fsync is taken out
//! of the commit and pipelined: the writer commits with `synchronous=NORMAL` and a syncer
//! thread `fdatasync`s the WAL before the group's requests are answered, so a 200 still means
//! on disk, while the writer already builds the next group.

mod model;
mod sqlite;

pub use model::{
    IdempotencyRecord, Ingest, IngestOutcome, MessageRow, StoredEvent, StoredResponse,
};
pub use sqlite::{CommitStats, SqliteOptions, SqliteStore};

/// Why storage failed. The service answers 503 with `Retry-After` to all of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The writer's queue is full: too many requests are waiting to be committed.
    #[error("storage is saturated")]
    Saturated,
    /// The writer has stopped (shutdown or a fatal error).
    #[error("storage is unavailable")]
    Unavailable,
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Opening the database failed.
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A result with the store [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
