//! Amazon SMS delivery events: AWS End User Messaging SMS event records and the legacy SNS SMS
//! delivery-status log record. No `deny_unknown_fields`: AWS adds fields.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One AWS End User Messaging SMS (and MMS) event, as an event destination publishes it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SmsEvent {
    /// `TEXT_DELIVERED`, `TEXT_CARRIER_UNREACHABLE`, `MEDIA_SUCCESSFUL`, `VOICE_COMPLETED`, ...
    pub(crate) event_type: String,
    /// Unix milliseconds.
    #[serde(default)]
    pub(crate) event_timestamp: Option<serde_json::Number>,
    #[serde(default)]
    pub(crate) message_id: Option<String>,
    #[serde(default)]
    pub(crate) destination_phone_number: Option<String>,
    /// `SUCCESSFUL`, `DELIVERED`, `CARRIER_UNREACHABLE`, ...
    #[serde(default)]
    pub(crate) message_status: Option<String>,
    #[serde(default)]
    pub(crate) message_status_description: Option<String>,
    /// The `Context` key-value pairs the sender set on `SendTextMessage`.
    #[serde(default)]
    pub(crate) context: BTreeMap<String, serde_json::Value>,
}

/// The legacy Amazon SNS SMS delivery-status log record (CloudWatch Logs).
#[derive(Debug, Deserialize)]
pub(crate) struct DeliveryLog {
    pub(crate) notification: LogNotification,
    #[serde(default)]
    pub(crate) delivery: LogDelivery,
    /// `SUCCESS` or `FAILURE`.
    pub(crate) status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogNotification {
    #[serde(default)]
    pub(crate) message_id: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS.mmm`, UTC.
    #[serde(default)]
    pub(crate) timestamp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogDelivery {
    #[serde(default)]
    pub(crate) destination: Option<String>,
    #[serde(default)]
    pub(crate) provider_response: Option<String>,
}

/// Either record.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Record {
    Event(SmsEvent),
    Log(DeliveryLog),
}
