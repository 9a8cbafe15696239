//! RingCentral's notification JSON, field for field. No `deny_unknown_fields`: RingCentral adds
//! fields.

use serde::{Deserialize, Deserializer};
use tidings_core::ids::Id;

/// The envelope of every RingCentral notification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope<'a> {
    /// The event filter the notification matched (`/restapi/v1.0/account/~/a2p-sms/messages`).
    #[serde(default)]
    pub(crate) event: Option<String>,
    /// When RingCentral sent the notification.
    #[serde(default)]
    pub(crate) timestamp: Option<String>,
    #[serde(borrow)]
    pub(crate) body: &'a serde_json::value::RawValue,
}

/// A message record: the body of a High Volume SMS (`a2p-sms/messages`) or instant message
/// event, or a message-store record as the Message Store API returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Message {
    #[serde(default)]
    pub(crate) id: Option<Id>,
    #[serde(default)]
    pub(crate) message_status: Option<String>,
    /// `Inbound` or `Outbound`.
    #[serde(default)]
    pub(crate) direction: Option<String>,
    #[serde(default, deserialize_with = "first_number")]
    pub(crate) to: Option<String>,
    #[serde(default)]
    pub(crate) creation_time: Option<String>,
    /// When the status last changed.
    #[serde(default)]
    pub(crate) last_modified_time: Option<String>,
    /// Message-store records: how many times RingCentral tried to send the SMS.
    #[serde(default, deserialize_with = "tidings_core::json::lenient_u32")]
    pub(crate) sms_sending_attempts_count: Option<u32>,
    /// High Volume SMS: RingCentral's error code of a failure.
    #[serde(default, deserialize_with = "tidings_core::json::lenient_text")]
    pub(crate) error_code: Option<String>,
    /// Message-store records: the carrier's error code of a failed delivery.
    #[serde(default, deserialize_with = "tidings_core::json::lenient_text")]
    pub(crate) delivery_error_code: Option<String>,
    // Bodies of other events, told apart by these fields.
    /// Message-store events: counts of changed messages, no statuses.
    #[serde(default)]
    pub(crate) changes: Option<serde::de::IgnoredAny>,
    /// Batch events: `Processing` or `Completed`.
    #[serde(default)]
    pub(crate) status: Option<serde::de::IgnoredAny>,
}

/// The recipient number: a string (High Volume SMS), a list of strings, or a list of
/// `{"phoneNumber": ...}` objects (message store).
fn first_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    fn number(value: &serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Object(o) => o.get("phoneNumber").and_then(number),
            serde_json::Value::Array(items) => items.iter().find_map(number),
            _ => None,
        }
    }
    Ok(number(&serde_json::Value::deserialize(d)?))
}
