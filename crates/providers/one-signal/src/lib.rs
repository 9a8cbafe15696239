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
//!   `message.id`.
//! - `date`: Event Streams: `event.timestamp` (Unix seconds) or `event.datetime`; web push
//!   webhooks carry no time, so the receive time.
//! - Dedup: Event Streams: `event.id` (OneSignal's idempotency id); web push: a hash of
//!   `notificationId`, event, `subscriptionId` and `actionId` (it sends no event id).
//! - Signature: none. Web push comes from browsers and is spoofable (treat it as analytics);
//!   Event Streams take a custom header the service can check as `ApiKey`.

mod status;
mod wire;

use tidings_core::{
    Channel, Error, Event, EventBody, Ignored, Parsed, ProviderParser, RawRequest, Result,
    Signature, ids, time,
};

use crate::wire::{Flat, Nested, Probe, WebPush};

const ID: &str = "one-signal";

/// OneSignal.
pub struct OneSignal;

tidings_core::register_provider!(OneSignal);

impl ProviderParser for OneSignal {
    fn id(&self) -> &'static str {
        ID
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["onesignal"]
    }

    fn channel(&self) -> Channel {
        Channel::Push
    }

    fn signature(&self) -> Signature {
        Signature::None
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if !tidings_push_contract::is_json_like(request) {
            return Err(request.unsupported(ID));
        }
        if let Some(parsed) = tidings_push_contract::parse(ID, request) {
            return parsed;
        }
        let rows: Vec<&serde_json::value::RawValue> =
            if tidings_push_contract::is_object(request.body) {
                vec![serde_json::from_slice(request.body).map_err(|e| Error::json(ID, &e))?]
            } else {
                serde_json::from_slice(request.body).map_err(|_| not_one_signal())?
            };
        let mut parsed = Parsed::default();
        for row in rows {
            let probe: Probe<'_> =
                serde_json::from_str(row.get()).map_err(|e| Error::json(ID, &e))?;
            match probe.event {
                Some(event) if event.get().starts_with('"') => {
                    let event: WebPush =
                        serde_json::from_str(row.get()).map_err(|e| Error::json(ID, &e))?;
                    web_push(request, row.get(), event, &mut parsed);
                }
                Some(event) if event.get().starts_with('{') => {
                    let event: Nested =
                        serde_json::from_str(row.get()).map_err(|e| Error::json(ID, &e))?;
                    stream(request, row.get(), event, &mut parsed);
                }
                _ if probe.kind.is_some() => {
                    let event: Flat =
                        serde_json::from_str(row.get()).map_err(|e| Error::json(ID, &e))?;
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
    let Some(status) = status::classify_web_push(&event.event, event.action_id.as_deref()) else {
        parsed.ignored.push(Ignored {
            provider_event: event.event,
            id: Some(id),
            reason: "web push event maps to no delivery status".into(),
        });
        return;
    };
    let recipient = event.subscription_id.filter(|s| !s.is_empty());
    let action = event.action_id.unwrap_or_default();
    let dedup_key = ids::dedup_from_fields(
        ID,
        &[
            &external_id,
            &event.event,
            recipient.as_deref().unwrap_or(""),
            &action,
        ],
    );
    parsed.events.push(Event {
        id,
        body: EventBody {
            status,
            date: request.received_at,
            external_id: Some(external_id),
            attempts: None,
            response: None,
            row: Some(row.to_owned()),
        },
        dedup_key,
        provider_event: if action.is_empty() {
            event.event
        } else {
            format!("{} (actionId={action})", event.event)
        },
        recipient,
        failure: None,
        code: None,
        automated: None,
    });
}

fn stream(request: &RawRequest<'_>, row: &str, body: Nested, parsed: &mut Parsed) {
    let event = body.event;
    let message_id = body
        .message
        .and_then(|m| m.id)
        .map(|id| id.0)
        .filter(|id| !id.is_empty());
    let status = match status::classify_stream(&event.kind) {
        Ok(status) => status,
        Err(reason) => {
            parsed.ignored.push(Ignored {
                provider_event: event.kind,
                id: message_id,
                reason: reason.into(),
            });
            return;
        }
    };
    let Some(message_id) = message_id else {
        parsed.ignored.push(Ignored {
            provider_event: event.kind,
            id: None,
            reason: "the event carries no message id (`message.id` is blank after 30 days)".into(),
        });
        return;
    };
    let date = event
        .timestamp
        .as_ref()
        .and_then(|t| match t {
            serde_json::Value::Number(n) => n.as_i64().and_then(time::from_unix_auto),
            serde_json::Value::String(s) => time::parse(s),
            _ => None,
        })
        .or_else(|| event.datetime.as_deref().and_then(time::parse));
    let recipient = event.subscription_id.filter(|s| !s.is_empty());
    let dedup_key = match event.id.as_ref().filter(|id| !id.0.is_empty()) {
        Some(event_id) => ids::dedup_from_id(ID, &event_id.0),
        None => ids::dedup_from_fields(
            ID,
            &[
                &message_id,
                &event.kind,
                recipient.as_deref().unwrap_or(""),
                &date.map(|d| d.timestamp().to_string()).unwrap_or_default(),
            ],
        ),
    };
    parsed.events.push(Event {
        id: message_id.clone(),
        body: EventBody {
            status,
            date: date.unwrap_or(request.received_at),
            external_id: Some(message_id),
            attempts: None,
            response: None,
            row: Some(row.to_owned()),
        },
        dedup_key,
        provider_event: event.kind,
        recipient,
        failure: None,
        code: None,
        automated: None,
    });
}

fn not_one_signal() -> Error {
    Error::malformed(
        ID,
        "expected a OneSignal web push webhook (`event`, `notificationId`), an Event Stream event (`event.kind` or `kind`) or Novu's push contract (`eventType`, `eventId`)",
    )
}
