//! Termii's event and report JSON, field for field. No `deny_unknown_fields`: Termii adds
//! fields (`id`, `channel`) and older payloads carry others (`command`).

use serde::Deserialize;

/// One event: one message to one receiver.
#[derive(Debug, Deserialize)]
pub(crate) struct Report {
    /// `outbound` for delivery reports of messages sent; inbound messages use another type.
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient_text")]
    pub(crate) message_id: Option<String>,
    /// The same value as `message_id` in current payloads.
    #[serde(default, deserialize_with = "tidings_core::json::lenient_text")]
    pub(crate) id: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient_text")]
    pub(crate) receiver: Option<String>,
    /// `Delivered`, `Message Sent`, ... or, in the 2020 format, `DELIVERED | <description>`.
    #[serde(default)]
    pub(crate) status: Option<String>,
    /// When the message was sent, `YYYY-MM-DD HH:MM:SS` without a zone.
    #[serde(default)]
    pub(crate) sent_at: Option<String>,
}
