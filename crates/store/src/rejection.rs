//! Refused webhook requests, kept so a person can see why a provider's call did not arrive.
//!
//! Bounded twice: the newest requests per integration (older ones are deleted as new ones come),
//! and a count per integration, reason and clock hour, kept apart so a flood of one kind cannot
//! erase the history of the others. Written off the commit path, in batches.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// One refused request, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The environment of the URL called (only existing environments are recorded).
    pub environment_id: String,
    /// The integration of the URL called.
    pub integration_id: String,
    /// The integration's provider.
    pub provider: String,
    /// When the request was refused.
    pub at: DateTime<Utc>,
    /// The reason code, from the service's closed list.
    pub reason: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The error message answered.
    pub message: String,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path and query called.
    pub path: String,
    /// The request headers as a JSON object, credentials redacted.
    pub headers_json: String,
    /// The body, up to the recording limit (empty when refused before the body was read).
    pub body: Vec<u8>,
    /// The body's full length in bytes, when it was read.
    pub body_bytes: Option<u64>,
}

/// A recorded rejection and its position (newer rejections have higher positions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionRow {
    /// The position, for paging.
    pub seq: i64,
    /// The rejection.
    pub rejection: Rejection,
}

/// Which rejections to list: newest first, optionally before a position.
#[derive(Debug, Clone, Default)]
pub struct RejectionQuery {
    /// The environment.
    pub environment_id: String,
    /// Only this integration.
    pub integration_id: Option<String>,
    /// Only this reason.
    pub reason: Option<String>,
    /// Only rejections older than this position.
    pub before: Option<i64>,
    /// Most rows.
    pub limit: usize,
}

/// Rejections of one integration for one reason in one clock hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionCount {
    /// The environment.
    pub environment_id: String,
    /// The integration.
    pub integration_id: String,
    /// The reason code.
    pub reason: String,
    /// The start of the clock hour.
    pub hour: DateTime<Utc>,
    /// Requests refused.
    pub count: i64,
}

/// The start of the clock hour holding `at`.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// What one write records.
#[derive(Debug, Clone, Default)]
pub struct RejectionBatch {
    /// Rejections recorded in full.
    pub rows: Vec<Rejection>,
    /// Every rejection of the batch, recorded in full or not.
    pub counts: Vec<RejectionCount>,
    /// Rows kept per integration: older ones are deleted.
    pub keep: usize,
}
