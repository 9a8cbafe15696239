//! Telnyx's Messaging API v2 webhook JSON, field for field. No `deny_unknown_fields`.

use serde::Deserialize;
use serde_json::Value;
use tidings_core::ids::Id;

/// The envelope: `{"data": {...}, "meta": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Webhook {
    pub(crate) data: EventData,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) meta: Option<Meta>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventData {
    /// `message.sent`, `message.finalized`, `message.received`, ...
    pub(crate) event_type: String,
    /// The event id: stable across Telnyx's retries of this webhook.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) id: Option<Id>,
    /// ISO 8601 with offset.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) occurred_at: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) payload: Option<Payload>,
}

/// The message the event is about.
#[derive(Debug, Deserialize)]
pub(crate) struct Payload {
    /// The message id.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) id: Option<Id>,
    /// `outbound` or `inbound`.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) direction: Option<String>,
    /// The recipients, each with its own status (read leniently: a list of objects).
    #[serde(default)]
    pub(crate) to: Option<Value>,
    /// Copied recipients of a group MMS, each with its own status.
    #[serde(default)]
    pub(crate) cc: Option<Value>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) errors: Option<Vec<MessagingError>>,
}

/// One recipient and its status.
#[derive(Debug, Deserialize)]
pub(crate) struct Recipient {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) phone_number: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) status: Option<String>,
}

/// A messaging error: `{code, title, detail?}`.
#[derive(Debug, Deserialize)]
pub(crate) struct MessagingError {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) code: Option<Id>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) title: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) detail: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Meta {
    /// Telnyx's delivery attempt of this webhook.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) attempt: Option<u32>,
}

/// The recipients of a `to` or `cc` list; entries that are not recipient objects are skipped.
pub(crate) fn recipients(list: Option<&Value>) -> Vec<Recipient> {
    match list {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| Recipient::deserialize(item).ok())
            .collect(),
        _ => Vec::new(),
    }
}
