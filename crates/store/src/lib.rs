//! Tidings' storage: every accepted request raw, its normalized events deduplicated by their
//! dedup key, each message's folded status, and idempotency records, written in one
//! transaction per group of requests so that a 200 always means durably committed.
//!
//! Two backends behind one [`Store`]:
//!
//! - SQLite (the default, zero set-up), in WAL mode, durable by default. One writer thread owns
//!   the write connection and commits every request waiting at that moment in one transaction
//!   (group commit), so fsync is paid per group, not per request. In durable mode the fsync is
//!   pipelined: the writer commits with `synchronous=NORMAL` and a syncer thread `fdatasync`s
//!   the WAL before the group's requests are answered, so a 200 still means on disk while the
//!   writer already builds the next group.
//! - PostgreSQL, for several service instances on one database. The same group commit from a
//!   committer task, with the message status fold and idempotency claims done by the database
//!   so that instances cannot overwrite each other.
//!
//! The conformance suite in `tests/it` runs every test against both.

mod activity;
mod admission;
mod cursor;
mod layout;
mod model;
mod outbound;
mod postgres;
mod readiness;
mod redact;
mod rejection;
mod reparse;
mod sqlite;
mod store;
mod suppressions;
mod view;

pub use activity::{Activity, Window};
pub use admission::Admission;
pub use cursor::{BadCursor, Cursor, EventPage, EventQuery, MessageQuery};
pub use model::{
    Claim, IdempotencyRecord, Ingest, IngestOutcome, MessagePage, MessageRow, NonceRecord,
    PruneStats, StoredEvent, StoredResponse,
};
pub use outbound::{
    DELIVERIES_MAX, DeliveryRow, DeliveryState, EndpointProgress, FailedAttempt, Fence, HeadLease,
    Lag,
};
pub use postgres::{PgOptions, PgStore};
pub use readiness::NotReady;
pub use redact::redact_url;
pub use rejection::{
    Rejection, RejectionBatch, RejectionCount, RejectionQuery, RejectionRow, hour_of,
};
pub use reparse::{RawRequestFilter, ReparseOutcome, Reparsed, StoredRequest};
pub use sqlite::lock::StoreLock;
pub use sqlite::{CommitStats, SqliteOptions, SqliteStore};
pub use store::{Store, StoreOptions, backend_of};
pub use suppressions::{
    HISTORY_MAX, ManualRecord, Record, Suppression, SuppressionPage, SuppressionQuery,
    SuppressionSettings,
};
pub use view::{EventView, MessageView};

/// Idempotency records are replayed for this long; older ones are ignored.
pub const IDEMPOTENCY_TTL: chrono::Duration = chrono::Duration::hours(24);

/// Why storage failed. The service answers 503 with `Retry-After` to all of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The writer's queue is full: too many requests are waiting to be committed.
    #[error("storage is saturated")]
    Saturated,
    /// The writer has stopped (shutdown or a fatal error), or the database did not answer in time.
    #[error("storage is unavailable")]
    Unavailable,
    /// The request was cancelled (its client had gone) before it joined a commit group.
    #[error("cancelled before it was committed")]
    Cancelled,
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL (or the connection pool) reported an error.
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    /// A stored value could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A command that only reads found no store where it looked (it never creates one).
    #[error("no Tidings store at {path}: {reason}")]
    NoStore {
        /// The path or URL (without its password).
        path: String,
        /// What was missing.
        reason: String,
    },
    /// Another process serves this SQLite database.
    #[error("the store at {path} is in use by {holder}, another Tidings server")]
    Locked {
        /// The database file.
        path: String,
        /// `process <pid>`, as the lock file says.
        holder: String,
    },
    /// Opening the database failed.
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// The path or URL (without its password).
        path: String,
        /// Why.
        reason: String,
    },
}

/// A result with the store [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
