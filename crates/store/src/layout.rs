//! How an event is laid out in its `events` row (migration 10), the same on both backends.
//!
//! **The dedup key is led by the event's own time.** The unique key is `(environment_id,
//! dedup_time, dedup_key)`: `dedup_key` is a hash, so a key led by it sends every insert to a
//! random index page; led by the time the provider gave the event (in whole seconds), inserts
//! land next to each other whatever the message ids, since providers send events roughly in
//! the order they happen. Dedup stays exact because a retry repeats the time: every provider
//! reads it from the event itself (see `docs/operations.md`, "Dedup key layout"), and where the
//! time is one of the hashed fields a different time was a different key already. An event
//! whose date is the receive time (the provider gave none) would get a new time on every retry,
//! so it is keyed under the fixed time [`RECEIVE_TIME`] instead.
//!
//! **`row` is stored once.** The provider's text of one event is usually a verbatim slice of
//! the request body (`raw_requests.body`): the row then keeps only its offset and length, and
//! reads cut it out of the body again. Where it is not a slice (SES inside SNS is unescaped,
//! Mandrill and Twilio form fields are encoded as JSON, Mailgun multipart) the text is kept in
//! `row_text`. Nothing is parsed again to rebuild it. Rows stored before migration 10 keep
//! `row` inside their `event` JSON, which reads as before.

use chrono::{DateTime, Utc};
use tidings_core::Event;

use crate::{Error, Result};

/// The dedup time of an event whose date is the receive time.
pub(crate) const RECEIVE_TIME: i64 = 0;

/// What `events` stores for one event besides its normalized columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventRow {
    /// The event as JSON, without its `row`.
    pub json: String,
    /// Leads the unique key (see the module's documentation).
    pub dedup_time: i64,
    /// Where `row` starts in the request body, when it is a verbatim slice of it.
    pub row_at: Option<i64>,
    /// Its length in bytes, with `row_at`.
    pub row_length: Option<i64>,
    /// `row` itself, when it is not a slice of the body.
    pub row_text: Option<String>,
}

/// The dedup time of `event`, received (with its request) at `received_at`.
pub(crate) fn dedup_time(event: &Event, received_at: &DateTime<Utc>) -> i64 {
    if event.body.date == *received_at {
        RECEIVE_TIME
    } else {
        event.body.date.timestamp()
    }
}

/// Lays out `event` of a request with `body`. `from` is where the previous event's row ended:
/// a batch's rows follow each other, so each is searched for there first.
pub(crate) fn event_row(
    event: &Event,
    body: &[u8],
    received_at: &DateTime<Utc>,
    from: &mut usize,
) -> EventRow {
    // An `Event` always serializes (no maps, no non-string keys).
    let json = if event.body.row.is_some() {
        let mut bare = event.clone();
        bare.body.row = None;
        serde_json::to_string(&bare)
    } else {
        serde_json::to_string(event)
    }
    .unwrap_or_default();
    let (mut row_at, mut row_length, mut row_text) = (None, None, None);
    if let Some(row) = &event.body.row {
        match find(body, row.as_bytes(), *from) {
            Some(at) => {
                *from = at + row.len();
                row_at = i64::try_from(at).ok();
                row_length = i64::try_from(row.len()).ok();
            }
            None => row_text = Some(row.clone()),
        }
    }
    EventRow {
        json,
        dedup_time: dedup_time(event, received_at),
        row_at,
        row_length,
        row_text,
    }
}

/// The rows of a request's events, in order.
pub(crate) fn event_rows(ingest: &crate::Ingest) -> Vec<EventRow> {
    let mut from = 0;
    ingest
        .events
        .iter()
        .map(|event| event_row(event, &ingest.body, &ingest.received_at, &mut from))
        .collect()
}

/// Where `needle` occurs in `body`, looked for after `from` first. An empty row is kept as
/// text (it is no slice worth pointing at).
///
/// Searched by its first bytes, each candidate then compared whole: building a searcher for a
/// whole row (often a kilobyte) cost more than the search itself, on every event.
fn find(body: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let prefix = needle.get(..needle.len().min(PREFIX))?;
    if prefix.is_empty() {
        return None;
    }
    let finder = memchr::memmem::Finder::new(prefix);
    let whole_at = |at: &usize| body.get(*at..at.saturating_add(needle.len())) == Some(needle);
    let after = body
        .get(from..)
        .and_then(|tail| finder.find_iter(tail).map(|at| at + from).find(whole_at));
    after.or_else(|| {
        finder
            .find_iter(body.get(..from.min(body.len()))?)
            .find(whole_at)
    })
}

/// How many leading bytes of a row [`find`] searches for.
const PREFIX: usize = 32;

/// The stored event: its JSON, with `row` put back where the row keeps it apart (`row` is the
/// slice of the body or `row_text`, as the query read it).
pub(crate) fn read_event(json: &str, row: Option<String>) -> Result<Event> {
    let mut event: Event = serde_json::from_str(json).map_err(|e| Error::Corrupt(e.to_string()))?;
    if row.is_some() {
        event.body.row = row;
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use tidings_core::{EventBody, Status};

    fn event(row: Option<&str>, date: DateTime<Utc>) -> Event {
        Event {
            id: "m".into(),
            body: EventBody {
                status: Status::Delivered,
                date,
                external_id: None,
                attempts: None,
                response: None,
                row: row.map(str::to_owned),
            },
            dedup_key: "p:k".into(),
            provider_event: "delivered".into(),
            recipient: None,
            failure: None,
            code: None,
            automated: None,
        }
    }

    #[test]
    fn rows_that_are_slices_point_into_the_body() {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let received = Utc.timestamp_opt(1_700_000_100, 0).unwrap();
        let body = br#"[{"a":1},{"a":2},{"a":1}]"#;
        let mut from = 0;
        let first = event_row(&event(Some(r#"{"a":1}"#), at), body, &received, &mut from);
        assert_eq!((first.row_at, first.row_length), (Some(1), Some(7)));
        let second = event_row(&event(Some(r#"{"a":2}"#), at), body, &received, &mut from);
        assert_eq!(second.row_at, Some(9));
        // The third is the same text as the first: found after the second, in order.
        let third = event_row(&event(Some(r#"{"a":1}"#), at), body, &received, &mut from);
        assert_eq!(third.row_at, Some(17));
        assert_eq!(first.dedup_time, 1_700_000_000);
        assert!(!first.json.contains("row"));
        let text = event_row(&event(Some(r#"{"b":1}"#), at), body, &received, &mut from);
        assert_eq!(text.row_text.as_deref(), Some(r#"{"b":1}"#));
        assert_eq!(text.row_at, None);
        let back = read_event(&text.json, text.row_text).unwrap();
        assert_eq!(back, event(Some(r#"{"b":1}"#), at));
    }

    #[test]
    fn a_row_sharing_its_first_bytes_with_another_is_found_whole() {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let first = r#"{"event":"delivered","sg_message_id":"aaaaaaaaaaaa","n":1}"#;
        let second = r#"{"event":"delivered","sg_message_id":"aaaaaaaaaaaa","n":2}"#;
        let body = format!("[{first},{second}]");
        // Looked for from the start, the second row's first bytes match the first row first.
        let mut from = 0;
        let row = event_row(&event(Some(second), at), body.as_bytes(), &at, &mut from);
        assert_eq!(row.row_at, Some(first.len() + 2).map(|n| n as i64));
        // Looked for after the end, the first row is found before `from`.
        let row = event_row(&event(Some(first), at), body.as_bytes(), &at, &mut from);
        assert_eq!(row.row_at, Some(1));
    }

    #[test]
    fn an_event_dated_by_its_receipt_has_the_fixed_time() {
        let received = Utc.timestamp_opt(1_700_000_100, 123_456_789).unwrap();
        let mut from = 0;
        let row = event_row(&event(None, received), b"", &received, &mut from);
        assert_eq!(row.dedup_time, RECEIVE_TIME);
        assert_eq!((row.row_at, row.row_text), (None, None));
    }
}
