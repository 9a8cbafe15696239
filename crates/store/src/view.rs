//! What the read API, the live stream and outbound delivery show of stored events and messages:
//! one JSON shape for all of them, camelCase, absent values omitted.

use std::collections::BTreeMap;

use serde::Serialize;
use tidings_core::fold::is_flag;
use tidings_core::wire_date;
use tidings_core::{Channel, Failure, Status, registry};

use crate::{Cursor, MessageRow, StoredEvent};

/// A stored event as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView<'a> {
    /// Its position in the cursor.
    pub position: Cursor,
    /// The message id the sender knows.
    pub id: &'a str,
    /// The provider's message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<&'a str>,
    /// The integration it came in through.
    pub integration: &'a str,
    /// The provider id.
    pub provider: &'a str,
    /// The provider's channel, when the provider is known to this build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// The normalized status.
    pub status: Status,
    /// The provider's own event time.
    #[serde(with = "wire_date")]
    pub date: chrono::DateTime<chrono::Utc>,
    /// When Tidings first received it.
    #[serde(with = "wire_date")]
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// The provider's own name for the event.
    pub provider_event: &'a str,
    /// The recipient address or number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<&'a str>,
    /// For failures: temporary or permanent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The provider's error, bounce or SMTP code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    /// The provider's response or failure text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<&'a str>,
    /// The provider's delivery attempt count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Marked automated (privacy proxy, link scanner, bot) by the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automated: Option<bool>,
    /// How many times the provider delivered it again.
    pub duplicates: i64,
    /// How the request that brought it was proven: `api_key`, `basic`, `signature`, `none`
    /// (the integration allows unauthenticated requests) or `shadow_failed` (its signature
    /// failed on an integration in shadow mode, which accepted it anyway: not proven genuine).
    /// Absent for events stored before it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<&'a str>,
    /// The provider's own text of this event, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<&'a str>,
}

impl<'a> EventView<'a> {
    /// The view of one stored event; `row` only when `include_row`.
    pub fn new(stored: &'a StoredEvent, include_row: bool) -> EventView<'a> {
        let event = &stored.event;
        EventView {
            position: stored.position,
            id: &stored.id,
            external_id: event.body.external_id.as_deref(),
            integration: &stored.integration_id,
            provider: &stored.provider,
            channel: registry().get(&stored.provider).map(|p| p.channel()),
            status: event.body.status,
            date: event.body.date,
            received_at: stored.received_at,
            provider_event: &event.provider_event,
            recipient: event.recipient.as_deref(),
            failure: event.failure,
            code: event.code.as_deref(),
            response: event.body.response.as_deref(),
            attempts: event.body.attempts,
            automated: event.automated,
            duplicates: stored.duplicates,
            authentication: stored.authentication.as_deref(),
            row: event.body.row.as_deref().filter(|_| include_row),
        }
    }
}

/// A message as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView<'a> {
    /// The integration it belongs to.
    pub integration: &'a str,
    /// The provider of its latest event.
    pub provider: &'a str,
    /// The message id the sender knows.
    pub id: &'a str,
    /// The provider's message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<&'a str>,
    /// The folded status.
    pub status: Status,
    /// The time of the event that set it.
    #[serde(with = "wire_date")]
    pub status_at: chrono::DateTime<chrono::Utc>,
    /// Temporary or permanent, when the status is a qualified failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The first time each status was seen.
    pub first_at: BTreeMap<Status, String>,
    /// Complaint, spam, unsubscribe and dismissal flags seen, with `firstAt` holding their times.
    pub flags: Vec<Status>,
    /// Distinct events folded.
    pub events: i64,
    /// When its state last changed.
    #[serde(with = "wire_date")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The position of its last change.
    pub position: Cursor,
    /// Its events in event-time order, on the single-message resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<EventView<'a>>>,
}

impl<'a> MessageView<'a> {
    /// The view of one message, with its timeline when given.
    pub fn new(message: &'a MessageRow, timeline: Option<&'a [StoredEvent]>) -> MessageView<'a> {
        let state = &message.state;
        MessageView {
            integration: &message.integration_id,
            provider: &message.provider,
            id: &message.id,
            external_id: message.external_id.as_deref(),
            status: state.status,
            status_at: state.status_at,
            failure: state.failure,
            first_at: state
                .first_at
                .iter()
                .map(|(status, at)| (*status, wire_date::format(at)))
                .collect(),
            flags: state
                .first_at
                .keys()
                .copied()
                .filter(|s| is_flag(*s))
                .collect(),
            events: message.events,
            updated_at: message.updated_at,
            position: message.position,
            timeline: timeline
                .map(|events| events.iter().map(|e| EventView::new(e, false)).collect()),
        }
    }
}
