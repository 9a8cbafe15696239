//! The body of a delivery: `{"type": "message.<status>", "timestamp", "data": {the event as the
//! read API returns it, "message": the message's folded status as of the event's position}}`.
//!
//! `data.message` is the fold of that message's events up to and including this event's
//! position, never the state at sending time, so every attempt of one event sends the same
//! bytes (the first attempt's body is also stored with the event's retry row).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tidings_core::fold::{Fact, MessageState};
use tidings_core::wire_date;
use tidings_store::{EventView, MessageRow, MessageView, Store, StoredEvent};

use crate::{Error, Result};

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(with = "wire_date")]
    timestamp: DateTime<Utc>,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    #[serde(flatten)]
    event: EventView<'a>,
    message: MessageView<'a>,
}

/// The event type of a stored event: `message.<status>`.
pub fn event_type(event: &StoredEvent) -> String {
    format!("message.{}", event.event.body.status.as_str())
}

/// The message as of `event`: the fold of its events at or before the event's position.
pub fn message_as_of(event: &StoredEvent, timeline: &[StoredEvent]) -> MessageRow {
    let mut upto: Vec<&StoredEvent> = timeline
        .iter()
        .filter(|e| e.position <= event.position)
        .collect();
    if !upto.iter().any(|e| e.position == event.position) {
        upto.push(event);
    }
    upto.sort_by_key(|e| e.position);
    let facts = upto.iter().map(|e| Fact::from(&e.event));
    let state =
        MessageState::fold(facts).unwrap_or_else(|| MessageState::new(Fact::from(&event.event)));
    let latest = upto.last().copied().unwrap_or(event);
    MessageRow {
        environment_id: event.environment_id.clone(),
        integration_id: event.integration_id.clone(),
        id: event.id.clone(),
        external_id: upto
            .iter()
            .rev()
            .find_map(|e| e.event.body.external_id.clone()),
        provider: latest.provider.clone(),
        state,
        events: upto.len() as i64,
        updated_at: latest.received_at,
        position: latest.position,
    }
}

/// The exact body for one event and endpoint.
pub fn render(event: &StoredEvent, message: &MessageRow, include_row: bool) -> Result<Vec<u8>> {
    let payload = Payload {
        kind: event_type(event),
        timestamp: event.event.body.date,
        data: Data {
            event: EventView::new(event, include_row),
            message: MessageView::new(message, None),
        },
    };
    serde_json::to_vec(&payload).map_err(|e| Error::Payload(e.to_string()))
}

/// Reads the message's events and renders the body.
pub async fn build(store: &Store, event: &StoredEvent, include_row: bool) -> Result<Vec<u8>> {
    let timeline = store
        .timeline(&event.environment_id, &event.integration_id, &event.id)
        .await?;
    render(event, &message_as_of(event, &timeline), include_row)
}
