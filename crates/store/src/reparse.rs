//! Re-parse: stored raw requests run through today's parsers, and the events that are new or
//! changed supersede what an older mapping stored.
//!
//! The parsers live above the store, so the store only pages out raw requests and applies one
//! request's freshly parsed events: an event whose dedup key is new is stored; one whose stored
//! record differs replaces it (a new position, so readers and outbound delivery see it again);
//! an identical one is left alone. Every message an applied change touches is folded again from
//! all of its events: the fold is monotone, so a status an older mapping got wrong could not
//! otherwise go away.

use chrono::{DateTime, Utc};
use tidings_core::{Event, Status};

/// Which raw requests to re-parse.
#[derive(Debug, Clone, Default)]
pub struct RawRequestFilter {
    /// Only this environment.
    pub environment_id: Option<String>,
    /// Only this integration.
    pub integration_id: Option<String>,
    /// Only requests received at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// One stored raw request, as received.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    /// Its sequence number (pages are taken after one).
    pub seq: i64,
    /// The environment.
    pub environment_id: String,
    /// The integration.
    pub integration_id: String,
    /// The provider id at the time.
    pub provider: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The headers as a JSON object, credentials left out.
    pub headers_json: String,
    /// The exact body.
    pub body: Vec<u8>,
    /// `POST` or `GET` (requests stored before methods were kept read as `POST`).
    pub method: String,
    /// The path and query it was sent to, when known.
    pub url: Option<String>,
    /// How it was authenticated, when known.
    pub authentication: Option<String>,
}

/// One request's events as today's parser reads them.
#[derive(Debug, Clone)]
pub struct Reparsed {
    /// The raw request they came from.
    pub request_seq: i64,
    /// The environment.
    pub environment_id: String,
    /// The integration.
    pub integration_id: String,
    /// The provider id.
    pub provider: String,
    /// The request's receive time.
    pub received_at: DateTime<Utc>,
    /// How the request was authenticated, carried to the events it adds.
    pub authentication: Option<String>,
    /// The events, in body order.
    pub events: Vec<Event>,
}

/// What applying one request's events changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReparseOutcome {
    /// Statuses of events stored for the first time.
    pub added: Vec<Status>,
    /// Events whose stored record changed: the old status and the new one.
    pub replaced: Vec<(Status, Status)>,
    /// Events stored exactly as today's parser reads them (or stored first through another
    /// integration, which keeps them).
    pub unchanged: usize,
    /// Messages folded again.
    pub refolded: usize,
}

impl ReparseOutcome {
    /// Whether anything was (or, in a dry run, would be) written.
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.replaced.is_empty()
    }
}
