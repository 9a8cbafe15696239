//! Amazon SNS for the providers that deliver through it (`ses`, `sns`): the HTTP(S) envelope,
//! subscription handling, signature verification and the signing-certificate trust rule.
//!
//! Docs: <https://docs.aws.amazon.com/sns/latest/dg/http-notification-json.html> and
//! <https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html>.
//!
//! - Body: one JSON object (`Content-Type: text/plain; charset=UTF-8`, though `application/json`
//!   is accepted too) whose `Type` is `Notification`, `SubscriptionConfirmation` or
//!   `UnsubscribeConfirmation`. A notification's payload is the JSON *string* in `Message`.
//! - A body without `Type` and `MessageId` is not an envelope ([`Inbound::Raw`]): SNS raw message
//!   delivery and EventBridge send the provider's own event as it is, unsigned.
//! - Subscriptions: a `SubscriptionConfirmation` yields [`Control::ConfirmSubscription`] only when
//!   its `SubscribeURL` is on an Amazon SNS endpoint; an `UnsubscribeConfirmation` yields
//!   [`Control::Unsubscribed`]. Neither carries events.
//! - Signature: see [`verify`]. The certificate is fetched by the service from the URL
//!   [`remote_keys`] returns, after the trust rule in [`trust`] accepted it.

pub mod trust;
mod verify;

use serde::{Deserialize, Deserializer};
use tidings_core::{Control, Error, MediaType, Parsed, RawRequest, Result, Signature};

pub use verify::{
    DEFAULT_TOLERANCE, option_problems, precheck, public_key_from_pem, remote_keys, string_to_sign,
    topic_allowed, topic_listed, verify,
};

/// The signature scheme of every SNS-delivered provider.
pub const SIGNATURE: Signature = Signature::Keyless("aws-sns-rsa");

/// The integration option holding the comma-separated `TopicArn`s to accept. Required: without
/// it nothing verifies.
pub const TOPIC_ARNS_OPTION: &str = "topic_arns";

/// The option that lets the service confirm a subscription of an allowed topic by itself
/// (`"true"`), on a signature-verified integration.
pub const AUTO_CONFIRM_OPTION: &str = "auto_confirm";

/// A `topic_arns` entry that accepts every topic of every AWS account, named for what it does.
/// The local demo uses it; subscriptions are never confirmed automatically through it.
pub const ANY_TOPIC: &str = "any-topic-of-any-aws-account";

/// The options the local demo gives an SNS-delivered integration.
pub const DEMO_OPTIONS: &[(&str, &str)] = &[(TOPIC_ARNS_OPTION, ANY_TOPIC)];

#[doc(hidden)]
pub use tidings_core as __core;

/// The `ProviderParser` methods every SNS-delivered provider shares, written inside its
/// `impl ProviderParser` block: the signing certificate to fetch, the signature and topic checks,
/// the `topic_arns` option check and which subscriptions the service may confirm. Declare the
/// provider with `signature: tidings_sns::SIGNATURE`, `options: [tidings_sns::TOPIC_ARNS_OPTION,
/// tidings_sns::AUTO_CONFIRM_OPTION]` and `demo_options: tidings_sns::DEMO_OPTIONS`.
#[macro_export]
macro_rules! delivered_through_sns {
    () => {
        fn remote_keys(
            &self,
            request: &$crate::__core::RawRequest<'_>,
        ) -> $crate::__core::Result<Vec<String>> {
            $crate::remote_keys(request)
        }

        fn verify(
            &self,
            request: &$crate::__core::RawRequest<'_>,
            credentials: &$crate::__core::Credentials<'_>,
        ) -> $crate::__core::Result<()> {
            $crate::verify(request, credentials)
        }

        fn precheck(
            &self,
            request: &$crate::__core::RawRequest<'_>,
            credentials: &$crate::__core::Credentials<'_>,
        ) -> $crate::__core::Result<()> {
            $crate::precheck(request, credentials)
        }

        fn option_problems(
            &self,
            options: &std::collections::BTreeMap<String, String>,
        ) -> Vec<String> {
            $crate::option_problems(options)
        }

        fn may_confirm(
            &self,
            topic: &str,
            options: &std::collections::BTreeMap<String, String>,
        ) -> bool {
            $crate::topic_listed(
                options.get($crate::TOPIC_ARNS_OPTION).map(String::as_str),
                topic,
            )
        }
    };
}

/// An SNS HTTP(S) message, field for field. Values are read leniently: a field that is not a
/// string reads as absent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Envelope {
    /// `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    #[serde(rename = "Type", default, deserialize_with = "lenient")]
    pub kind: Option<String>,
    /// SNS's id of this message: stable across SNS's delivery retries.
    #[serde(rename = "MessageId", default, deserialize_with = "lenient")]
    pub message_id: Option<String>,
    /// The topic the message was published to.
    #[serde(rename = "TopicArn", default, deserialize_with = "lenient")]
    pub topic_arn: Option<String>,
    /// The notification's subject, when the publisher set one.
    #[serde(rename = "Subject", default, deserialize_with = "lenient")]
    pub subject: Option<String>,
    /// The payload: for providers, their event as JSON text.
    #[serde(rename = "Message", default, deserialize_with = "lenient")]
    pub message: Option<String>,
    /// When SNS published the message (ISO 8601).
    #[serde(rename = "Timestamp", default, deserialize_with = "lenient")]
    pub timestamp: Option<String>,
    /// `1` (SHA1withRSA) or `2` (SHA256withRSA).
    #[serde(rename = "SignatureVersion", default, deserialize_with = "lenient")]
    pub signature_version: Option<String>,
    /// Base64 RSA signature over [`string_to_sign`].
    #[serde(rename = "Signature", default, deserialize_with = "lenient")]
    pub signature: Option<String>,
    /// Where SNS's signing certificate is.
    #[serde(rename = "SigningCertURL", default, deserialize_with = "lenient")]
    pub signing_cert_url: Option<String>,
    /// The link that confirms a subscription.
    #[serde(rename = "SubscribeURL", default, deserialize_with = "lenient")]
    pub subscribe_url: Option<String>,
    /// The subscription token.
    #[serde(rename = "Token", default, deserialize_with = "lenient")]
    pub token: Option<String>,
}

fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    })
}

/// The SNS message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A published message.
    Notification,
    /// SNS asks the endpoint to confirm a new subscription.
    SubscriptionConfirmation,
    /// SNS tells the endpoint its subscription was deleted.
    UnsubscribeConfirmation,
}

impl Envelope {
    /// Reads an envelope from a body: `None` when the body is not a JSON object with string
    /// `Type` and `MessageId` fields (not an SNS envelope).
    pub fn from_body(body: &[u8]) -> Option<Envelope> {
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .filter(|e| e.kind.is_some() && e.message_id.is_some())
    }

    /// The message type, `None` for a type SNS does not document.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.kind.as_deref()? {
            "Notification" => Some(MessageType::Notification),
            "SubscriptionConfirmation" => Some(MessageType::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(MessageType::UnsubscribeConfirmation),
            _ => None,
        }
    }

    /// The SNS message id (present on every envelope [`Envelope::from_body`] returns).
    pub fn id(&self) -> &str {
        self.message_id.as_deref().unwrap_or_default()
    }
}

/// What a request to an SNS-delivered provider holds.
#[derive(Debug)]
pub enum Inbound {
    /// A notification: the provider's event is the JSON text in `Message` (never empty).
    Notification {
        /// The envelope.
        envelope: Box<Envelope>,
        /// The `Message` text.
        message: String,
    },
    /// A subscription message or an undocumented message type: already normalized (controls and
    /// an ignored entry, no events).
    Handled(Parsed),
    /// Not an SNS envelope: the body is the provider's own event (SNS raw message delivery,
    /// EventBridge, a log record).
    Raw,
}

/// Classifies a request for `provider`: a media type SNS never sends is rejected, an envelope is
/// opened, subscription messages are handled here.
pub fn inbound(provider: &'static str, request: &RawRequest<'_>) -> Result<Inbound> {
    match request.media_type() {
        MediaType::Text | MediaType::Json | MediaType::Missing => {}
        _ => return Err(request.unsupported(provider)),
    }
    let Some(envelope) = Envelope::from_body(request.body) else {
        return Ok(Inbound::Raw);
    };
    let kind = envelope.kind.clone().unwrap_or_default();
    let topic = envelope.topic_arn.clone().unwrap_or_default();
    let mut parsed = Parsed::default();
    let reason = match envelope.message_type() {
        Some(MessageType::Notification) => {
            let message = envelope
                .message
                .clone()
                .ok_or(Error::MissingField("Message"))?;
            return Ok(Inbound::Notification {
                envelope: Box::new(envelope),
                message,
            });
        }
        Some(MessageType::SubscriptionConfirmation) => {
            match envelope
                .subscribe_url
                .as_deref()
                .and_then(trust::sns_endpoint)
            {
                Some(url) => {
                    parsed
                        .controls
                        .push(Control::ConfirmSubscription { url, topic });
                    "subscription confirmation: confirmed once the request verifies"
                }
                None => {
                    "SubscribeURL is not an Amazon SNS endpoint: the subscription is not confirmed"
                }
            }
        }
        Some(MessageType::UnsubscribeConfirmation) => {
            parsed.controls.push(Control::Unsubscribed { topic });
            "the subscription was deleted; it is not re-confirmed"
        }
        None => {
            "not an SNS message type (Notification, SubscriptionConfirmation, UnsubscribeConfirmation)"
        }
    };
    parsed.ignore(kind, None, reason);
    Ok(Inbound::Handled(parsed))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn request(body: &[u8], content_type: Option<&'static str>) -> Result<Inbound> {
        let headers = Default::default();
        let request = RawRequest {
            method: "POST",
            body,
            content_type,
            headers: &headers,
            url: None,
            received_at: chrono::DateTime::UNIX_EPOCH,
        };
        inbound("test", &request)
    }

    #[test]
    fn subscription_confirmation_with_an_attacker_url_is_not_confirmed() {
        let body = br#"{"Type":"SubscriptionConfirmation","MessageId":"m","TopicArn":"arn:t","SubscribeURL":"https://attacker.example/?Action=ConfirmSubscription"}"#;
        let Inbound::Handled(parsed) = request(body, Some("text/plain")).unwrap() else {
            panic!("not handled");
        };
        assert!(parsed.controls.is_empty());
        assert!(parsed.events.is_empty());
        assert_eq!(parsed.ignored.len(), 1);
    }

    #[test]
    fn remote_keys_are_checked_before_any_fetch() {
        let headers = Default::default();
        let keys = |body: &'static [u8]| {
            remote_keys(&RawRequest {
                method: "POST",
                body,
                content_type: Some("text/plain"),
                headers: &headers,
                url: None,
                received_at: chrono::DateTime::UNIX_EPOCH,
            })
        };
        assert_eq!(
            keys(br#"{"Type":"Notification","MessageId":"m","SigningCertURL":"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"}"#),
            Ok(vec!["https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem".to_owned()])
        );
        assert!(matches!(
            keys(br#"{"Type":"Notification","MessageId":"m","SigningCertURL":"https://s3.amazonaws.com/b/SimpleNotificationService-abc.pem"}"#),
            Err(Error::Untrusted(_))
        ));
        assert_eq!(
            keys(br#"{"Type":"Notification","MessageId":"m"}"#),
            Err(Error::MissingSignatureField("SigningCertURL"))
        );
        assert_eq!(keys(br#"{"eventType":"Send"}"#), Ok(Vec::new()));
    }

    #[test]
    fn shapes() {
        let raw = br#"{"eventType":"Delivery","mail":{}}"#;
        assert!(matches!(
            request(raw, Some("application/json")),
            Ok(Inbound::Raw)
        ));
        assert!(matches!(request(b"[1]", None), Ok(Inbound::Raw)));
        assert!(matches!(
            request(raw, Some("application/xml")),
            Err(Error::UnsupportedMediaType { .. })
        ));
        let no_message = br#"{"Type":"Notification","MessageId":"m"}"#;
        assert_eq!(
            request(no_message, None).unwrap_err(),
            Error::MissingField("Message")
        );
        let unsubscribed =
            br#"{"Type":"UnsubscribeConfirmation","MessageId":"m","TopicArn":"arn:t"}"#;
        let Ok(Inbound::Handled(parsed)) = request(unsubscribed, None) else {
            panic!("not handled");
        };
        assert_eq!(
            parsed.controls,
            vec![Control::Unsubscribed {
                topic: "arn:t".into()
            }]
        );
    }
}
