//! Sinch's SMS (XMS) delivery report JSON, field for field. One struct reads both shapes: the
//! batch report (`delivery_report_sms`, with `statuses`) and the per-recipient report
//! (`recipient_delivery_report_sms`). No `deny_unknown_fields`: Sinch adds fields.

use serde::Deserialize;
use tidings_core::ids::Id;

/// One delivery report callback.
#[derive(Debug, Deserialize)]
pub(crate) struct Report {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) batch_id: Option<Id>,
    /// The sender's own value given at send time.
    #[serde(default, deserialize_with = "tidings_core::json::lenient_text")]
    pub(crate) client_reference: Option<String>,
    // Per-recipient reports.
    #[serde(default)]
    pub(crate) recipient: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient_text")]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) status_message: Option<String>,
    /// When Sinch recorded the status.
    #[serde(default)]
    pub(crate) at: Option<String>,
    /// When the operator reported the status (SMSC time), where it did.
    #[serde(default)]
    pub(crate) operator_status_at: Option<String>,
    // Batch reports.
    #[serde(default)]
    pub(crate) statuses: Vec<StatusGroup>,
}

/// The recipients of a batch that share one status and code (`recipients` only in `full`
/// reports, not in `summary` ones).
#[derive(Debug, Deserialize)]
pub(crate) struct StatusGroup {
    #[serde(default, deserialize_with = "tidings_core::json::lenient_text")]
    pub(crate) code: Option<String>,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) recipients: Vec<String>,
}
