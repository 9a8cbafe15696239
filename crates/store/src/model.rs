//! What goes into the store and what comes out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tidings_core::Event;
use tidings_core::fold::MessageState;

use crate::Cursor;

/// One accepted request and everything it produced, committed together.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// The environment from the path.
    pub environment_id: String,
    /// The integration from the path.
    pub integration_id: String,
    /// The provider id.
    pub provider: String,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The HTTP method (`POST`, or `GET` for receipts sent in the query string).
    pub method: String,
    /// The path and query the provider called, as sent: re-parsing a GET receipt or a
    /// URL-signed request needs them.
    pub url: String,
    /// How the request was authenticated: `api_key`, `basic`, `signature`, `none` (the
    /// integration allows it) or `shadow_failed` (its signature failed on a `verify = "shadow"`
    /// integration, which accepted it anyway). Kept with the request and each of its events.
    pub authentication: String,
    /// Request headers as a JSON object, without credentials.
    pub headers_json: String,
    /// The exact body.
    pub body: Vec<u8>,
    /// SHA-256 of the body (for a GET, of the method, path, query and body): one raw request is
    /// kept per distinct request per integration, and a repeat only counts (`repeats`).
    pub body_hash: Vec<u8>,
    /// The signed one-time value of a provider whose signature does not cover the body
    /// (Mailgun's token), when the request was verified by it.
    pub nonce: Option<NonceRecord>,
    /// The normalized events, in body order.
    pub events: Vec<Event>,
    /// Provider events that mapped to no status, as JSON (kept for the record).
    pub ignored_json: String,
    /// The response to remember for an `Idempotency-Key`.
    pub idempotency: Option<IdempotencyRecord>,
    /// Whether these events feed the suppression list: by default only when the request was
    /// authenticated (API key, Basic or a verified signature), so that nobody can stop a team's
    /// mail with a forged complaint.
    pub feeds_suppressions: bool,
    /// Cancels the request while it waits for a commit group (its client has gone).
    pub admission: crate::Admission,
}

/// A signed one-time value, remembered until it expires so that a signature cannot be replayed
/// with another body. The check is atomic with the request's commit (a unique key), so it holds
/// across instances sharing a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceRecord {
    /// What the value is scoped to besides the integration: a digest of the signing key that
    /// verified it, so a rotated key starts afresh.
    pub scope: String,
    /// The value as signed.
    pub value: String,
    /// Until when a reuse is a replay (the end of the signature's timestamp window).
    pub expires_at: DateTime<Utc>,
}

/// A response remembered under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The key, as sent.
    pub key: String,
    /// SHA-256 of the request body.
    pub body_hash: Vec<u8>,
    /// The response status code.
    pub status: u16,
    /// The exact response body.
    pub response: Vec<u8>,
}

/// A remembered response, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// SHA-256 of the request body that produced it.
    pub body_hash: Vec<u8>,
    /// The response status code.
    pub status: u16,
    /// The exact response body.
    pub response: Vec<u8>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// What committing one [`Ingest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestOutcome {
    /// The stored raw request's sequence number.
    pub request_seq: i64,
    /// Events stored for the first time.
    pub stored: usize,
    /// Events already stored (a provider retry): counted on the stored event, not stored again.
    pub duplicates: usize,
    /// The same body was already stored for this integration: its raw request counted a repeat.
    pub repeat: bool,
    /// The request's nonce was already used with another body within its window: nothing of
    /// it was stored.
    pub nonce_reused: bool,
}

/// A stored event, as `tidings events` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// The event's position in the gap-free cursor.
    pub position: Cursor,
    /// Monotonic sequence within one writer.
    pub seq: i64,
    /// The environment.
    pub environment_id: String,
    /// The integration.
    pub integration_id: String,
    /// The provider id.
    pub provider: String,
    /// The message id (the result id).
    pub id: String,
    /// The normalized event with its extras.
    pub event: Event,
    /// The dedup key.
    pub dedup_key: String,
    /// How many times the provider delivered it again.
    pub duplicates: i64,
    /// When it was first received.
    pub received_at: DateTime<Utc>,
    /// How the request that brought it was authenticated (see [`Ingest::authentication`]);
    /// absent for events stored before this was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<String>,
}

/// A message's current state, as `tidings messages` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRow {
    /// The environment.
    pub environment_id: String,
    /// The integration the message belongs to.
    pub integration_id: String,
    /// The message id (the sender's id where the provider carries it).
    pub id: String,
    /// The provider's own message id, from its latest event that carries one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub external_id: Option<String>,
    /// The provider of its latest event.
    pub provider: String,
    /// The folded state: status, milestones, flags.
    #[serde(flatten)]
    pub state: MessageState,
    /// How many distinct events it has.
    pub events: i64,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
    /// The position of its last change: messages are listed by it.
    pub position: Cursor,
}

/// One page of messages, by the position of their last change.
#[derive(Debug, Clone, Serialize)]
pub struct MessagePage {
    /// The messages, in order of their last change.
    pub messages: Vec<MessageRow>,
    /// The position to list after next time.
    pub next: Cursor,
}

/// What [`crate::Store::claim_idempotency`] found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is now held by the caller: process the request, then release the key.
    Claimed,
    /// Another request (on this or another instance) holds the key and has not finished.
    InFlight,
    /// The key was used with the same body within the replay window: answer this.
    Replay(StoredResponse),
    /// The key was used with a different body within the replay window.
    Mismatch,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneStats {
    /// Raw requests deleted.
    pub raw_requests: u64,
    /// Events deleted.
    pub events: u64,
    /// Idempotency records deleted.
    pub idempotency: u64,
    /// Expired nonces deleted.
    pub nonces: u64,
}

impl PruneStats {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.raw_requests + self.events + self.idempotency + self.nonces
    }
}
