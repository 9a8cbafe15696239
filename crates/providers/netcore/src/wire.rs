//! Netcore Email API's (formerly Pepipost) webhook JSON, field for field. Unknown fields are kept
//! in the raw row only. Each field also reads under its name in the lower-case format of
//! Netcore's migration webhooks (`event`, `sg_message_id`, `email`, `timestamp`, `response`,
//! `reason`, `url`).

use serde::Deserialize;
use tidings_core::ids::Id;

/// One event of the batch.
#[derive(Debug, Deserialize)]
pub(crate) struct NetcoreEvent {
    #[serde(
        default,
        rename = "EVENT",
        alias = "event",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) event: Option<String>,
    /// The transaction id of the email, a 64-bit integer (sent as a number or a string).
    #[serde(
        default,
        rename = "TRANSID",
        alias = "sg_message_id",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) transid: Option<Id>,
    /// The recipient's index within the transaction.
    #[serde(
        default,
        rename = "RCPTID",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) rcptid: Option<Id>,
    #[serde(
        default,
        rename = "EMAIL",
        alias = "email",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) email: Option<String>,
    /// Unix seconds, as a number or a string.
    #[serde(default, rename = "TIMESTAMP", alias = "timestamp")]
    pub(crate) timestamp: Option<serde_json::Value>,
    /// The receiving server's reply, or why the message was dropped.
    #[serde(
        default,
        rename = "RESPONSE",
        alias = "response",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) response: Option<String>,
    /// What the sender passed per recipient at send time (`token_to`, `X-APIHEADER`).
    #[serde(
        default,
        rename = "X-APIHEADER",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) api_header: Option<Id>,
    /// `HARDBOUNCE` or `SOFTBOUNCE`.
    #[serde(
        default,
        rename = "BOUNCE_TYPE",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) bounce_type: Option<String>,
    #[serde(
        default,
        rename = "BOUNCE_REASON",
        alias = "reason",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) bounce_reason: Option<String>,
    #[serde(
        default,
        rename = "BOUNCE_REASONID",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) bounce_reason_id: Option<Id>,
    /// Clicked link.
    #[serde(
        default,
        rename = "URL",
        alias = "url",
        deserialize_with = "tidings_core::json::lenient"
    )]
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
