//! MailerSend's webhook JSON, field for field. Two payload versions exist: the original one
//! (`data.email.{message.id, recipient.email}`, details in `data.morph`) and the current one
//! (`data.message_id`, `data.recipient`, details in `data.meta`). Unknown fields are kept in the
//! raw row only.

use serde::Deserialize;
use serde_json::Value;
use tidings_core::ids::Id;

/// One webhook request: a single event.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    /// `activity.<event>`, or `webhook.test`, `inbound.message`, `maintenance.*`, ...
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// When the activity happened (current payloads; the original ones put it in `data`).
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) data: Option<Activity>,
}

/// `data`: the activity.
#[derive(Debug, Deserialize)]
pub(crate) struct Activity {
    /// The activity (event) id, unique per event.
    #[serde(default)]
    pub(crate) id: Option<Id>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    /// Current payloads: the message id the send API returned (`X-Message-Id`).
    #[serde(default)]
    pub(crate) message_id: Option<Id>,
    /// Current payloads: the recipient address.
    #[serde(default)]
    pub(crate) recipient: Option<Value>,
    /// Current payloads: event details (an object, or `[]` when there are none).
    #[serde(default)]
    pub(crate) meta: Option<Value>,
    /// Original payloads: the email.
    #[serde(default)]
    pub(crate) email: Option<Email>,
    /// Original payloads: event details (`null` when there are none).
    #[serde(default)]
    pub(crate) morph: Option<Value>,
}

/// Original payloads: `data.email`.
#[derive(Debug, Deserialize)]
pub(crate) struct Email {
    #[serde(default)]
    pub(crate) message: Option<Message>,
    #[serde(default)]
    pub(crate) recipient: Option<Recipient>,
}

/// Original payloads: `data.email.message`.
#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub(crate) id: Option<Id>,
}

/// Original payloads: `data.email.recipient`.
#[derive(Debug, Deserialize)]
pub(crate) struct Recipient {
    #[serde(default)]
    pub(crate) email: Option<String>,
}

/// A string or number field of a details object (`meta`, `morph`), as text.
pub(crate) fn detail(details: Option<&Value>, key: &str) -> Option<String> {
    match details?.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
