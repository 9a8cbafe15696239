//! Amazon SES event JSON (event publishing and identity notifications share one layout), and the
//! EventBridge envelope around it. No `deny_unknown_fields`: AWS adds fields.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

/// An EventBridge event: `detail` is the SES event.
#[derive(Debug, Deserialize)]
pub(crate) struct EventBridge<'a> {
    /// EventBridge's event id, stable across the API destination's retries.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) id: Option<String>,
    #[serde(borrow)]
    pub(crate) detail: &'a RawValue,
}

/// One SES event.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SesEvent {
    /// Event publishing (configuration sets).
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) event_type: Option<String>,
    /// Identity notifications (`Bounce`, `Complaint`, `Delivery`, `Received`).
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) notification_type: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient_or_default")]
    pub(crate) mail: Mail,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) bounce: Option<Bounce>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) complaint: Option<Complaint>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) delivery: Option<Delivery>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) delivery_delay: Option<DeliveryDelay>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) open: Option<Engagement>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) click: Option<Engagement>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) reject: Option<Reject>,
    /// `Rendering Failure`.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) failure: Option<RenderingFailure>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) subscription: Option<Subscription>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Mail {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) timestamp: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) message_id: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient_or_default")]
    pub(crate) destination: Vec<String>,
    /// Message tags, `{name: [value]}` (event publishing only).
    #[serde(default, deserialize_with = "tidings_core::json::lenient_or_default")]
    pub(crate) tags: BTreeMap<String, Vec<String>>,
    /// Original headers, when the identity includes them.
    #[serde(default, deserialize_with = "tidings_core::json::lenient_or_default")]
    pub(crate) headers: Vec<Header>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// A recipient with SMTP details (bounces, delays).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recipient {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) email_address: Option<String>,
    /// Enhanced status code (`5.1.1`).
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) status: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) diagnostic_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Bounce {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) bounce_type: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) bounce_sub_type: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient_or_default")]
    pub(crate) bounced_recipients: Vec<Recipient>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) timestamp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Complaint {
    #[serde(default, deserialize_with = "tidings_core::json::lenient_or_default")]
    pub(crate) complained_recipients: Vec<Recipient>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) complaint_feedback_type: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) timestamp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Delivery {
    #[serde(default, deserialize_with = "tidings_core::json::lenient_or_default")]
    pub(crate) recipients: Vec<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) smtp_response: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) timestamp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryDelay {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) delay_type: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient_or_default")]
    pub(crate) delayed_recipients: Vec<Recipient>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) timestamp: Option<String>,
}

/// `open` and `click`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Engagement {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) timestamp: Option<String>,
    /// The clicked link.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Reject {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RenderingFailure {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) error_message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subscription {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) timestamp: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) new_topic_preferences: Option<TopicPreferences>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) old_topic_preferences: Option<TopicPreferences>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TopicPreferences {
    #[serde(default)]
    pub(crate) unsubscribe_all: bool,
    #[serde(default)]
    pub(crate) topic_subscription_status: Vec<TopicStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TopicStatus {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) topic_name: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) subscription_status: Option<String>,
}

impl Subscription {
    /// Whether this change opts the contact out: `unsubscribeAll` newly set, or a topic newly
    /// `OptOut`.
    pub(crate) fn is_unsubscribe(&self) -> bool {
        let Some(new) = &self.new_topic_preferences else {
            return false;
        };
        let old = self.old_topic_preferences.as_ref();
        if new.unsubscribe_all && !old.is_some_and(|o| o.unsubscribe_all) {
            return true;
        }
        new.topic_subscription_status.iter().any(|topic| {
            topic.subscription_status.as_deref() == Some("OptOut")
                && !old.is_some_and(|o| {
                    o.topic_subscription_status.iter().any(|before| {
                        before.topic_name == topic.topic_name
                            && before.subscription_status.as_deref() == Some("OptOut")
                    })
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_fields_degrade_to_absent_instead_of_failing_the_event() {
        let event: Option<SesEvent> = serde_json::from_str(
            r#"{"notificationType": "Complaint", "mail": {"messageId": "m-1", "destination": null,
                "timestamp": {}}, "complaint": {"complainedRecipients": [{"emailAddress": 7}]}}"#,
        )
        .ok();
        let mail = event
            .as_ref()
            .map(|e| (&e.mail.message_id, e.mail.destination.len()));
        assert_eq!(mail, Some((&Some("m-1".to_owned()), 0)));
        let recipients = event
            .and_then(|e| e.complaint)
            .map(|c| c.complained_recipients.len());
        assert_eq!(recipients, Some(1));
        let event: Option<SesEvent> =
            serde_json::from_str(r#"{"eventType": "Bounce", "mail": null}"#).ok();
        assert!(event.is_some_and(|e| e.mail.message_id.is_none()));
    }
}
