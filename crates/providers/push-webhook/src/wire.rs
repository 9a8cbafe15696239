//! The notification Novu posts to a push-webhook endpoint. The contract's own structs live in
//! `tidings_push_contract`.

use serde::Deserialize;
use serde_json::Value;

/// `{"title", "content", "target": [device tokens], "payload": {...}}`, as Novu's
/// `PushWebhookPushProvider` sends it. Read leniently: only its presence matters.
#[derive(Debug, Deserialize)]
pub(crate) struct Outgoing {
    #[serde(default)]
    pub(crate) title: Option<Value>,
    #[serde(default)]
    pub(crate) content: Option<Value>,
    #[serde(default)]
    pub(crate) target: Option<Value>,
    /// The notification's data; Novu's message id travels in it as `__nvMessageId`.
    #[serde(default)]
    pub(crate) payload: Option<Value>,
}

impl Outgoing {
    pub(crate) fn message_id(&self) -> Option<String> {
        match self.payload.as_ref()?.get("__nvMessageId")? {
            Value::String(id) if !id.is_empty() => Some(id.clone()),
            Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
            _ => None,
        }
    }
}
