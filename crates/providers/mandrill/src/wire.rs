//! Mandrill's webhook events (the JSON array inside the `mandrill_events` form field). Unknown
//! fields are kept in the raw row only.

use std::collections::BTreeMap;

use serde::Deserialize;
use tidings_core::ids::Id;
pub(crate) use tidings_core::json::Scalar;

/// One element of `mandrill_events`: a message event (`event`), or a sync event (`type` and
/// `action`, about the rejection or allow list).
#[derive(Debug, Deserialize)]
pub(crate) struct MandrillEvent {
    #[serde(default)]
    pub(crate) event: Option<String>,
    /// Sync events: `whitelist` or `blacklist`.
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) action: Option<String>,
    /// The message id `messages/send` returned.
    #[serde(default, rename = "_id")]
    pub(crate) id: Option<Id>,
    /// Event time, Unix seconds.
    #[serde(default)]
    pub(crate) ts: Option<Scalar>,
    /// Click events: the link.
    #[serde(default)]
    pub(crate) url: Option<String>,
    #[serde(default)]
    pub(crate) msg: Option<Message>,
}

/// The message an event is about, as Mandrill's `messages/info` describes it.
#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    #[serde(default, rename = "_id")]
    pub(crate) id: Option<Id>,
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// The sender's metadata, echoed back (values may be strings or numbers).
    #[serde(default)]
    pub(crate) metadata: Option<BTreeMap<String, Scalar>>,
    /// The receiving server's reply to a bounce.
    #[serde(default)]
    pub(crate) diag: Option<String>,
    /// Mandrill's bounce class (`bad_mailbox`, `mailbox_full`, ...).
    #[serde(default)]
    pub(crate) bounce_description: Option<String>,
    /// Mandrill's numeric bounce code.
    #[serde(default)]
    pub(crate) bgtools_code: Option<Scalar>,
    /// Delivery attempts so far (deferrals carry the last reply here).
    #[serde(default)]
    pub(crate) smtp_events: Vec<SmtpEvent>,
}

/// One SMTP attempt.
#[derive(Debug, Deserialize)]
pub(crate) struct SmtpEvent {
    #[serde(default)]
    pub(crate) diag: Option<String>,
}
