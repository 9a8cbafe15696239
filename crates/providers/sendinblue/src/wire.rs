//! Brevo's transactional webhook JSON, field for field. No `deny_unknown_fields`: providers add
//! fields.

use serde::Deserialize;
use tidings_core::json::Scalar;

/// One transactional event, a flat object.
#[derive(Debug, Deserialize)]
pub(crate) struct WireEvent {
    /// The payload event name (`request`, `hard_bounce`, `unique_opened`, ...).
    #[serde(default)]
    pub(crate) event: Option<String>,
    /// The recipient.
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// The SMTP Message-ID the send API returned, usually in angle brackets.
    #[serde(default, rename = "message-id")]
    pub(crate) message_id: Option<Scalar>,
    /// The `X-Mailin-custom` header given at send time, echoed as a string.
    #[serde(default, rename = "X-Mailin-custom")]
    pub(crate) custom: Option<Scalar>,
    /// Event time in Unix milliseconds (the reliable one; some events send seconds).
    #[serde(default)]
    pub(crate) ts_epoch: Option<Scalar>,
    /// Proxy opens send `s_epoch` (milliseconds) instead.
    #[serde(default)]
    pub(crate) s_epoch: Option<Scalar>,
    /// Event time in Unix seconds.
    #[serde(default)]
    pub(crate) ts_event: Option<Scalar>,
    #[serde(default)]
    pub(crate) ts: Option<Scalar>,
    /// `YYYY-MM-DD HH:MM:SS` in the account's time zone.
    #[serde(default)]
    pub(crate) date: Option<String>,
    /// The failure text of bounces, blocks and deferrals.
    #[serde(default)]
    pub(crate) reason: Option<String>,
    /// The clicked link.
    #[serde(default)]
    pub(crate) link: Option<String>,
    /// Inbound-parse payloads are `{"items": [...]}`.
    #[serde(default)]
    pub(crate) items: Option<serde::de::IgnoredAny>,
}
