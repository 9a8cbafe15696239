//! OneSignal: web push webhooks (posted by the browser's service worker), Event Streams
//! (posted by OneSignal's servers in the body template the user writes) and Novu's push
//! contract.
//!
//! Docs: <https://documentation.onesignal.com/docs/webhooks>,
//! <https://documentation.onesignal.com/docs/event-streams-data> and
//! <https://docs.novu.co/platform/integrations/push/push-activity-tracking>.
//!
//! - Body: one JSON object (web push sends it as `text/plain` unless `cors: true`). Web push:
//!   `{"event": "notification.clicked", "notificationId", "actionId", "subscriptionId",
//!   "additionalData", ...}`. Event Streams: a template either nesting OneSignal's objects
//!   (`{"event": {"kind", "id", "timestamp"}, "message": {"id"}}`) or flat (`kind`, `event_id`,
//!   `timestamp`, `subscription_id`, `message_id`), one event per request or an array of them.
//!   Otherwise Novu's push contract (see [`tidings_push_contract`]).
//! - Ids: web push: `additionalData.__nvMessageId` (Novu's message id in the notification's
//!   data) is the result id, else `notificationId`, also `externalId`. Event Streams:
//!   `message.id`; an event without it (blank 30 days after the send) is kept, reported under
//!   its dedup key, when it names a subscription (`subscription_id`), else ignored.
//! - `date`: Event Streams: `event.timestamp` (Unix seconds) or `event.datetime`; web push
//!   webhooks carry no time, so the receive time.
//! - Dedup: Event Streams: `event.id` (OneSignal's idempotency id); web push: a hash of
//!   `notificationId`, event, `subscriptionId` and `actionId` (it sends no event id).
//! - Signature: none. Web push comes from browsers and is spoofable (treat it as analytics);
//!   Event Streams take a custom header the service can check as `ApiKey`.

mod status;
mod wire;

use tidings_core::{Draft, Error, Parsed, ProviderParser, RawRequest, Result, json, time};

use crate::status::Source;
use crate::wire::{Flat, Nested, Probe, WebPush};

const ID: &str = "one-signal";

tidings_core::provider! {
    /// OneSignal.
    pub struct OneSignal;
    id: ID,
    aliases: ["onesignal"],
    channel: Push,
    signature: Signature::None,
    media_types: [Json, Text, Missing],
}

impl ProviderParser for OneSignal {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if let Some(parsed) = tidings_push_contract::contract(ID, request)? {
            return Ok(parsed);
        }
        let rows: Vec<&serde_json::value::RawValue> = if json::is_object(request.body) {
            vec![json::read_slice(ID, request.body)?]
        } else {
            serde_json::from_slice(request.body).map_err(|_| not_one_signal())?
        };
        let mut parsed = Parsed::default();
        for row in rows {
            let probe: Probe<'_> = json::read(ID, row.get())?;
            match probe.event {
                Some(event) if event.get().starts_with('"') => {
                    let event: WebPush = json::read(ID, row.get())?;
                    web_push(request, row.get(), event, &mut parsed);
                }
                Some(event) if event.get().starts_with('{') => {
                    let event: Nested = json::read(ID, row.get())?;
                    stream(request, row.get(), event, &mut parsed);
                }
                _ if probe.kind.is_some() => {
                    let event: Flat = json::read(ID, row.get())?;
                    stream(request, row.get(), event.into(), &mut parsed);
                }
                _ => return Err(not_one_signal()),
            }
        }
        Ok(parsed)
    }
}

fn web_push(request: &RawRequest<'_>, row: &str, event: WebPush, parsed: &mut Parsed) {
    let external_id = event.notification_id.0.clone();
    let id = event.nv_message_id().unwrap_or_else(|| external_id.clone());
    let source = Source::WebPush(&event.event, event.action_id.as_deref());
    let Some((status, failure)) = status::classify(source) else {
        parsed.ignore(
            event.event,
            Some(id),
            "web push event maps to no delivery status",
        );
        return;
    };
    let recipient = event.subscription_id.filter(|s| !s.is_empty());
    let action = event.action_id.unwrap_or_default();
    let provider_event = if action.is_empty() {
        event.event.clone()
    } else {
        format!("{} (actionId={action})", event.event)
    };
    let draft = Draft::new(ID, status, provider_event).dedup_fields(&[
        &external_id,
        &event.event,
        recipient.as_deref().unwrap_or(""),
        &action,
    ]);
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(external_id)
            .recipient(recipient)
            .failure(failure)
            .row(row),
    );
}

fn stream(request: &RawRequest<'_>, row: &str, body: Nested, parsed: &mut Parsed) {
    let event = body.event;
    let message_id = body
        .message
        .and_then(|m| m.id)
        .map(|id| id.0)
        .filter(|id| !id.is_empty());
    let Some((status, failure)) = status::classify(Source::Stream(&event.kind)) else {
        let reason = status::ignore_reason(&event.kind);
        parsed.ignore(event.kind, message_id, reason);
        return;
    };
    let recipient = event.subscription_id.filter(|s| !s.is_empty());
    if message_id.is_none() && recipient.is_none() {
        parsed.ignore(
            event.kind,
            None,
            "the event carries no message id (`message.id` is blank after 30 days) and no subscription id",
        );
        return;
    }
    let date = event
        .timestamp
        .as_ref()
        .and_then(|t| match t {
            serde_json::Value::Number(n) => n.as_i64().and_then(time::from_unix_auto),
            serde_json::Value::String(s) => time::parse(s),
            _ => None,
        })
        .or_else(|| event.datetime.as_deref().and_then(time::parse));
    let draft = Draft::new(ID, status, &event.kind);
    let draft = match event.id.as_ref().filter(|id| !id.0.is_empty()) {
        Some(event_id) => draft.dedup_id(&event_id.0),
        None => draft.dedup_fields(&[
            message_id.as_deref().unwrap_or(""),
            &event.kind,
            recipient.as_deref().unwrap_or(""),
            &date.map(|d| d.timestamp().to_string()).unwrap_or_default(),
        ]),
    };
    // Without a message id (blank 30 days after the send) the event is kept all the same,
    // reported under its dedup key: it still says something true about its subscription.
    parsed.push(
        request,
        draft
            .external_id(message_id)
            .date(date)
            .recipient(recipient)
            .failure(failure)
            .row(row),
    );
}

fn not_one_signal() -> Error {
    Error::malformed(
        ID,
        "expected a OneSignal web push webhook (`event`, `notificationId`), an Event Stream event (`event.kind` or `kind`) or Novu's push contract (`eventType`, `eventId`)",
    )
}
