//! Outbound delivery progress: where each configured endpoint stands in the event cursor, and
//! the events that are waiting for a retry or were dead-lettered.
//!
//! Progress is written in batches: an endpoint's cursor moves over runs of handled events (every
//! event at or below it was delivered, or has a row of its own), and only events in retry or
//! dead-lettered have rows. A row keeps the exact payload of the first attempt, so every retry
//! and redrive of one event sends the same bytes.
//!
//! Several instances on PostgreSQL share the work through leases:
//!
//! - the head of an endpoint (the events after its cursor) is read by one instance at a time,
//!   the holder of the endpoint's lease. Taking the lease increments a fencing epoch, and every
//!   progress write of the head checks it, so a stalled former holder can neither move the
//!   cursor nor record attempts once another instance has taken over;
//! - rows in retry are claimed one by one with `FOR UPDATE SKIP LOCKED` and a lease of their
//!   own, so each is attempted by exactly one instance at a time, and by another once an
//!   instance died mid-attempt and the lease expired.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Cursor;

/// Where an event that was not delivered at its first attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Holds an ordered endpoint (`max_in_flight = 1`): retried in place by the head.
    Hold,
    /// Waiting for its next attempt, which any instance may make.
    Retry,
    /// Every attempt failed: dead-lettered until redriven.
    Dead,
}

impl DeliveryState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Hold => "hold",
            DeliveryState::Retry => "retry",
            DeliveryState::Dead => "dead",
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<DeliveryState> {
        match text {
            "hold" => Ok(DeliveryState::Hold),
            "retry" => Ok(DeliveryState::Retry),
            "dead" => Ok(DeliveryState::Dead),
            other => Err(crate::Error::Corrupt(format!(
                "unknown delivery state `{other}`"
            ))),
        }
    }
}

/// One endpoint's stored progress.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointProgress {
    /// The endpoint's configured id.
    pub endpoint_id: String,
    /// Its environment.
    pub environment_id: String,
    /// Whether the configuration enables it (retention keeps what an enabled endpoint lacks).
    pub enabled: bool,
    /// Every event at or below this position was delivered or has a row.
    pub cursor: Cursor,
    /// Events delivered so far.
    pub delivered: i64,
    /// The last successful attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<DateTime<Utc>>,
    /// What the last failed attempt got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Events waiting for a retry (held or queued).
    pub retrying: i64,
    /// Events dead-lettered.
    pub dead: i64,
    /// The instance holding the head, while its lease runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// The fencing epoch: incremented whenever the head changes hands or is rewound.
    pub lease_epoch: i64,
}

/// An event that was not delivered at its first attempt.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRow {
    /// The endpoint.
    pub endpoint_id: String,
    /// The event's position.
    pub position: Cursor,
    /// Held, queued for retry, or dead.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (none once dead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    pub last_attempt_at: DateTime<Utc>,
    /// The HTTP status of the last answer, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// What the last attempt got: the status and the start of the body, or the error.
    pub last_answer: String,
    /// The `webhook-id` of every attempt.
    pub webhook_id: String,
    /// The exact body every attempt sends.
    #[serde(skip)]
    pub payload: Vec<u8>,
}

/// What one failed attempt records.
#[derive(Debug, Clone)]
pub struct FailedAttempt {
    /// The event's position.
    pub position: Cursor,
    /// The delivery's `webhook-id`.
    pub webhook_id: String,
    /// The body sent (kept for the next attempts).
    pub payload: Vec<u8>,
    /// Attempts made so far, this one included.
    pub attempts: u32,
    /// Hold (ordered), retry, or dead after the last attempt.
    pub state: DeliveryState,
    /// When to try again (none when dead).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When this attempt was made.
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The answer or the error, short.
    pub answer: String,
}

/// Who may write a piece of progress: the holder of the endpoint's head at an epoch, or the
/// instance that claimed a row in retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    /// The head's lease at this epoch.
    Epoch(i64),
    /// The row's lease, held by this instance.
    Owner(String),
}

/// The head of an endpoint, as taken by one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLease {
    /// The fencing epoch every write of this holder carries.
    pub epoch: i64,
    /// Where the head stands.
    pub cursor: Cursor,
}

/// How far an endpoint is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    /// Events of its environment after its cursor (before its filters).
    pub events: i64,
    /// When the oldest of them was received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_received_at: Option<DateTime<Utc>>,
}

/// Rows listed by [`crate::Store::outbound_deliveries`] at most.
pub const DELIVERIES_MAX: usize = 10_000;
