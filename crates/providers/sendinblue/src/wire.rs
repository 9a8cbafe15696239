//! Brevo's transactional webhook JSON, field for field. No `deny_unknown_fields`: providers add
//! fields.

use serde::Deserialize;
use serde_json::Value;

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
    pub(crate) message_id: Option<Value>,
    /// The `X-Mailin-custom` header given at send time, echoed as a string.
    #[serde(default, rename = "X-Mailin-custom")]
    pub(crate) custom: Option<Value>,
    /// Event time in Unix milliseconds (the reliable one; some events send seconds).
    #[serde(default)]
    pub(crate) ts_epoch: Option<Value>,
    /// Proxy opens send `s_epoch` (milliseconds) instead.
    #[serde(default)]
    pub(crate) s_epoch: Option<Value>,
    /// Event time in Unix seconds.
    #[serde(default)]
    pub(crate) ts_event: Option<Value>,
    #[serde(default)]
    pub(crate) ts: Option<Value>,
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

/// A string or number as exact text (ids, timestamps); anything else is absent.
pub(crate) fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A string or number as an integer.
pub(crate) fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
