//! The gap-free cursor over stored events, and the queries that walk it.
//!
//! A position is `(xid, seq)`. On SQLite there is one writer, so sequence order is commit order
//! and `xid` is always 0; readers only see rows up to the durable watermark the syncer publishes.
//! On PostgreSQL a sequence number is taken when a transaction inserts, not when it commits, so
//! each event also records its transaction id (`xid8`), positions are ordered by `(xid, seq)`, and
//! readers only see rows whose transaction is older than the oldest one still running
//! (`pg_snapshot_xmin`): every transaction that could still add a row below a position handed out
//! has finished by then. Positions are not contiguous (aborted transactions leave holes); a
//! reader never waits for a missing number.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tidings_core::Status;

use crate::StoredEvent;

/// A position in the event stream. Clients treat its text form as an opaque token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    /// The writing transaction's id (PostgreSQL), 0 on SQLite.
    pub xid: u64,
    /// The row's sequence number.
    pub seq: i64,
}

impl Cursor {
    /// Before every event.
    pub const START: Cursor = Cursor { xid: 0, seq: 0 };
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.xid, self.seq)
    }
}

/// A cursor token that is not one Tidings handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a cursor: pass back a `next` or `id` value exactly as it was given")]
pub struct BadCursor(pub String);

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Cursor, BadCursor> {
        let bad = || BadCursor(text.chars().take(64).collect());
        let (xid, seq) = text.split_once('.').ok_or_else(bad)?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(xid) || !digits(seq) {
            return Err(bad());
        }
        Ok(Cursor {
            xid: xid.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cursor, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which events to read, after which position.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// The environment (always one: nothing of one environment is visible from another).
    pub environment_id: String,
    /// Only events after this position.
    pub after: Cursor,
    /// At most this many events.
    pub limit: usize,
    /// Only these statuses (all when empty).
    pub statuses: Vec<Status>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this integration.
    pub integration: Option<String>,
    /// Only this message: the sender's id or the provider's id.
    pub message: Option<String>,
    /// Only this recipient, as stored.
    pub recipient: Option<String>,
    /// Only events whose own time is at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Only events whose own time is before this.
    pub until: Option<DateTime<Utc>>,
}

impl EventQuery {
    /// Every event of one environment after `after`.
    pub fn new(environment_id: impl Into<String>, after: Cursor, limit: usize) -> EventQuery {
        EventQuery {
            environment_id: environment_id.into(),
            after,
            limit,
            ..EventQuery::default()
        }
    }

    /// Whether an event read by the database filters also passes the time window, which is
    /// checked here on the parsed time (stored text forms differ between backends).
    pub(crate) fn in_window(&self, event: &StoredEvent) -> bool {
        let date = event.event.body.date;
        self.since.is_none_or(|since| date >= since) && self.until.is_none_or(|until| date < until)
    }
}

/// One page of events and where the next page starts.
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    /// The events, in position order.
    pub events: Vec<StoredEvent>,
    /// The position to read after next time: the highest position scanned, never beyond what
    /// is visible, so a filtered walk neither rescans nor skips.
    pub next: Cursor,
}

/// Which messages to list: those whose last change is after a position.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// The environment.
    pub environment_id: String,
    /// Only messages whose last change is after this position.
    pub after: Cursor,
    /// At most this many messages.
    pub limit: usize,
    /// Only messages whose current status is one of these (all when empty).
    pub statuses: Vec<Status>,
    /// Only this integration.
    pub integration: Option<String>,
    /// Only messages whose current status was set by an event at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// Rows read from the database per statement while scanning for a page.
pub(crate) const SCAN_BATCH: usize = 1000;
/// Rows one page request scans at most: a filter that matches little returns a short page (its
/// `next` is where the scan stopped) instead of reading the whole table in one request.
pub(crate) const SCAN_BUDGET: usize = 20_000;
/// Events of one message returned in its timeline at most.
pub(crate) const TIMELINE_MAX: usize = 10_000;

/// Collects one page from rows scanned in position order, applying the filters the database
/// did not (message identity across integrations, recipient, time window).
pub(crate) struct Collector<'q> {
    query: &'q EventQuery,
    messages: Option<&'q [(String, String)]>,
    events: Vec<StoredEvent>,
    scanned: usize,
}

impl<'q> Collector<'q> {
    pub(crate) fn new(
        query: &'q EventQuery,
        messages: Option<&'q [(String, String)]>,
    ) -> Collector<'q> {
        Collector {
            query,
            messages,
            events: Vec::new(),
            scanned: 0,
        }
    }

    /// Takes one scanned event; true once the page is full.
    pub(crate) fn offer(&mut self, event: StoredEvent) -> bool {
        self.scanned += 1;
        let query = self.query;
        let wanted = self.messages.is_none_or(|keys| {
            keys.iter()
                .any(|(integration, id)| *integration == event.integration_id && *id == event.id)
        }) && query
            .recipient
            .as_ref()
            .is_none_or(|r| event.event.recipient.as_ref() == Some(r))
            && query.in_window(&event);
        if wanted {
            self.events.push(event);
        }
        self.events.len() >= query.limit.max(1)
    }

    /// Whether this request has scanned enough rows.
    pub(crate) fn over_budget(&self) -> bool {
        self.scanned >= SCAN_BUDGET
    }

    pub(crate) fn page(self, next: Cursor) -> EventPage {
        EventPage {
            events: self.events,
            next,
        }
    }
}

/// Orders a message's events by their own time, then by position.
pub(crate) fn by_event_time(events: &mut [StoredEvent]) {
    events.sort_by_key(|e| (e.event.body.date, e.position));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_anything_else() {
        let cursor = Cursor {
            xid: 7_000_000_001,
            seq: 42,
        };
        assert_eq!(cursor.to_string(), "7000000001.42");
        assert_eq!("7000000001.42".parse::<Cursor>(), Ok(cursor));
        for bad in [
            "",
            "42",
            ".1",
            "1.",
            "a.1",
            "1.-2",
            "1.2.3",
            "+1.2",
            "99999999999999999999.1",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
        assert!(Cursor { xid: 1, seq: 0 } > Cursor { xid: 0, seq: 99 });
    }
}
