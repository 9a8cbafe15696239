//! OneSignal's web push webhook and Event Stream bodies, field for field. No
//! `deny_unknown_fields`.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tidings_core::ids::Id;

/// Tells the bodies apart: web push webhooks have `event` as a string, Event Stream templates
/// that nest OneSignal's objects have `event` as an object, flat templates have `kind`.
#[derive(Debug, Deserialize)]
pub(crate) struct Probe<'a> {
    #[serde(default, borrow)]
    pub(crate) event: Option<&'a RawValue>,
    #[serde(default)]
    pub(crate) kind: Option<Value>,
}

/// A web push webhook, posted by the browser's service worker.
#[derive(Debug, Deserialize)]
pub(crate) struct WebPush {
    /// `notification.willDisplay` (`notification.displayed` before SDK v16),
    /// `notification.clicked`, `notification.dismissed`.
    pub(crate) event: String,
    #[serde(rename = "notificationId")]
    pub(crate) notification_id: Id,
    /// The clicked action button; `""` (or absent) when the body was clicked.
    #[serde(rename = "actionId", default)]
    pub(crate) action_id: Option<String>,
    /// Only sent with `cors: true`.
    #[serde(rename = "subscriptionId", default)]
    pub(crate) subscription_id: Option<String>,
    /// The notification's custom data (`data` at send time); Novu's message id travels in it
    /// as `__nvMessageId`.
    #[serde(rename = "additionalData", default)]
    pub(crate) additional_data: Option<Value>,
}

impl WebPush {
    pub(crate) fn nv_message_id(&self) -> Option<String> {
        match self.additional_data.as_ref()?.get("__nvMessageId")? {
            Value::String(id) if !id.is_empty() => Some(id.clone()),
            Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
            _ => None,
        }
    }
}

/// An Event Stream body whose template nests OneSignal's objects:
/// `{"event": {"kind", "id", "timestamp", ...}, "message": {"id", ...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Nested {
    pub(crate) event: StreamEvent,
    #[serde(default)]
    pub(crate) message: Option<StreamMessage>,
}

/// OneSignal's `event` object (the Liquid names).
#[derive(Debug, Deserialize)]
pub(crate) struct StreamEvent {
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) id: Option<Id>,
    #[serde(default)]
    pub(crate) timestamp: Option<Value>,
    #[serde(default)]
    pub(crate) datetime: Option<String>,
    #[serde(default)]
    pub(crate) subscription_id: Option<String>,
}

/// OneSignal's `message` object.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamMessage {
    #[serde(default)]
    pub(crate) id: Option<Id>,
}

/// A flat Event Stream template: `{"kind": "{{ event.kind }}", "event_id": "{{ event.id }}",
/// "message_id": "{{ message.id }}", ...}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Flat {
    pub(crate) kind: String,
    #[serde(default, alias = "id")]
    pub(crate) event_id: Option<Id>,
    #[serde(default)]
    pub(crate) timestamp: Option<Value>,
    #[serde(default)]
    pub(crate) datetime: Option<String>,
    #[serde(default)]
    pub(crate) subscription_id: Option<String>,
    #[serde(default)]
    pub(crate) message_id: Option<Id>,
}

impl From<Flat> for Nested {
    fn from(flat: Flat) -> Nested {
        Nested {
            event: StreamEvent {
                kind: flat.kind,
                id: flat.event_id,
                timestamp: flat.timestamp,
                datetime: flat.datetime,
                subscription_id: flat.subscription_id,
            },
            message: Some(StreamMessage {
                id: flat.message_id,
            }),
        }
    }
}
