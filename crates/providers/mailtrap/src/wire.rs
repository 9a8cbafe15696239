//! Mailtrap's webhook JSON, field for field. Unknown fields are kept in the raw row only.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_core::ids::Id;

/// The request body: `{"events": [...]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Batch<'a> {
    #[serde(borrow)]
    pub(crate) events: Vec<&'a RawValue>,
}

/// One event of the batch.
#[derive(Debug, Deserialize)]
pub(crate) struct MailtrapEvent {
    pub(crate) event: String,
    /// Unix seconds.
    #[serde(default)]
    pub(crate) timestamp: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) message_id: Option<Id>,
    /// Unique per event, stable across retries.
    #[serde(default)]
    pub(crate) event_id: Option<Id>,
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// The sender's custom variables, echoed back (values of any JSON type).
    #[serde(default)]
    pub(crate) custom_variables: Option<BTreeMap<String, serde_json::Value>>,
    /// The receiving server's reply (bounces).
    #[serde(default)]
    pub(crate) response: Option<String>,
    #[serde(default)]
    pub(crate) response_code: Option<Id>,
    /// `hard`, `unavailable`, ... (bounces).
    #[serde(default)]
    pub(crate) bounce_category: Option<String>,
    /// Why a message was suspended or rejected.
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) url: Option<String>,
}

/// A timestamp sent as a number or a string, as text (integers exactly, fractions as written);
/// any other JSON type reads as absent instead of failing the batch.
pub(crate) fn timestamp_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
