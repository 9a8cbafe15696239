//! Plivo's message status callback fields (form-encoded on `POST`, query parameters on `GET`).
//! Unknown fields are kept in the row only: Plivo adds fields without notice.

use tidings_core::Form;

/// One message status callback. Empty values read as absent.
#[derive(Debug)]
pub(crate) struct StatusCallback<'f> {
    pub(crate) message_uuid: Option<&'f str>,
    pub(crate) status: Option<&'f str>,
    /// Only on `failed` and `undelivered` (`000` on some successful callbacks).
    pub(crate) error_code: Option<&'f str>,
    pub(crate) to: Option<&'f str>,
    /// The order in which Plivo generated the callbacks of this message.
    pub(crate) sequence: Option<&'f str>,
    /// `YYYY-MM-DD HH:MM:SS.ffffff`, no zone (UTC).
    pub(crate) queued_time: Option<&'f str>,
    pub(crate) sent_time: Option<&'f str>,
    pub(crate) delivery_report_time: Option<&'f str>,
}

impl<'f> StatusCallback<'f> {
    pub(crate) fn read(form: &'f Form<'_>) -> StatusCallback<'f> {
        let field = |name: &str| form.first(name).filter(|v| !v.trim().is_empty());
        StatusCallback {
            message_uuid: field("MessageUUID"),
            status: field("Status"),
            error_code: field("ErrorCode").filter(|c| c.bytes().any(|b| b != b'0')),
            to: field("To"),
            sequence: field("Sequence"),
            queued_time: field("QueuedTime"),
            sent_time: field("SentTime"),
            delivery_report_time: field("DeliveryReportTime"),
        }
    }
}
