//! Mailjet's Event API JSON, field for field. No `deny_unknown_fields`: providers add fields.

use serde::Deserialize;
use tidings_core::ids::Id;
use tidings_core::json::Scalar;

/// One event, a flat object.
#[derive(Debug, Deserialize)]
pub(crate) struct WireEvent {
    /// `sent`, `open`, `click`, `bounce`, `blocked`, `spam`, `unsub`.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) event: Option<String>,
    /// Unix seconds.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) time: Option<Scalar>,
    /// A 64-bit integer, usually beyond 2^53: kept exact.
    #[serde(
        default,
        rename = "MessageID",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) message_id: Option<Id>,
    /// The same id as a string (deprecated).
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) mj_message_id: Option<Id>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) email: Option<String>,
    /// `Messages[].CustomID` given at send time.
    #[serde(
        default,
        rename = "CustomID",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) custom_id: Option<Scalar>,
    /// `Messages[].EventPayload` given at send time (free text, often JSON).
    #[serde(
        default,
        rename = "Payload",
        deserialize_with = "tidings_core::json::lenient"
    )]
    pub(crate) payload: Option<Scalar>,
    /// Bounce: whether it is permanent.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) hard_bounce: Option<Scalar>,
    /// Bounce and blocked: `recipient`, `domain`, `spam`, `mailjet`.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) error_related_to: Option<String>,
    /// Bounce and blocked: `user unknown`, `greylisted`, `typofix`, ...
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) error: Option<String>,
    /// Bounce: the receiving server's explanation.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) comment: Option<String>,
    /// Sent: the receiving server's SMTP reply.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) smtp_reply: Option<String>,
    /// Spam: the feedback loop (`JMRPP`, ...).
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) source: Option<String>,
    /// Click: the link.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_beyond_2_pow_53_stay_exact() {
        let event: Option<WireEvent> =
            serde_json::from_str(r#"{"event":"sent","MessageID":12345678901234567}"#).ok();
        let id = event.and_then(|e| e.message_id).map(|id| id.0);
        assert_eq!(id.as_deref(), Some("12345678901234567"));
    }
}
