//! Twilio's two status bodies, field for field: the form-encoded status callback and the Event
//! Streams CloudEvent. No `deny_unknown_fields`: Twilio adds parameters without notice.

use serde::Deserialize;
use tidings_core::Form;
use tidings_core::ids::Id;

/// A Programmable Messaging status callback (`application/x-www-form-urlencoded`).
#[derive(Debug)]
pub(crate) struct StatusCallback<'f> {
    /// `MessageSid`, or the legacy duplicate `SmsSid`.
    pub(crate) message_sid: Option<&'f str>,
    /// `MessageStatus`, or the legacy duplicate `SmsStatus`.
    pub(crate) message_status: Option<&'f str>,
    /// Only on `failed` and `undelivered`.
    pub(crate) error_code: Option<&'f str>,
    /// Not documented for status callbacks, but sometimes sent.
    pub(crate) error_message: Option<&'f str>,
    /// Channel (WhatsApp, RCS) status text.
    pub(crate) channel_status_message: Option<&'f str>,
    pub(crate) to: Option<&'f str>,
    /// The carrier's done date, `YYMMDDhhmm`, on `delivered` and `undelivered`.
    pub(crate) raw_dlr_done_date: Option<&'f str>,
    /// A voice call's sid: a voice callback sent to the messaging endpoint.
    pub(crate) call_sid: Option<&'f str>,
}

impl<'f> StatusCallback<'f> {
    pub(crate) fn read(form: &'f Form<'_>) -> StatusCallback<'f> {
        let field = |name: &str| form.first(name).filter(|v| !v.trim().is_empty());
        StatusCallback {
            message_sid: field("MessageSid").or_else(|| field("SmsSid")),
            message_status: field("MessageStatus").or_else(|| field("SmsStatus")),
            error_code: field("ErrorCode"),
            error_message: field("ErrorMessage"),
            channel_status_message: field("ChannelStatusMessage"),
            to: field("To"),
            raw_dlr_done_date: field("RawDlrDoneDate"),
            call_sid: field("CallSid"),
        }
    }
}

/// One Event Streams CloudEvent (a webhook sink posts a JSON array of them).
#[derive(Debug, Deserialize)]
pub(crate) struct CloudEvent {
    /// `com.twilio.messaging.message.delivered`, ...
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The event id (`EZ...`), stable across Twilio's retries.
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) time: Option<String>,
    #[serde(default)]
    pub(crate) data: Option<MessageStatusData>,
}

/// The `data` of a `Messaging.MessageStatus` event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageStatusData {
    #[serde(default)]
    pub(crate) message_sid: Option<String>,
    /// Uppercase: `QUEUED`, `SENT`, `DELIVERED`, `UNDELIVERED`, `FAILED`, `READ`.
    #[serde(default)]
    pub(crate) message_status: Option<String>,
    /// ISO 8601 event time.
    #[serde(default)]
    pub(crate) timestamp: Option<String>,
    #[serde(default)]
    pub(crate) to: Option<String>,
    #[serde(default)]
    pub(crate) error_code: Option<Id>,
    #[serde(default)]
    pub(crate) raw_dlr_done_date: Option<String>,
}
