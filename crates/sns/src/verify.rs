//! SNS message signatures: RSA PKCS#1 v1.5 over a canonical `Key\nValue\n` string, with the
//! public key of the X.509 certificate at `SigningCertURL`.

use chrono::Duration;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::Digest;
use tidings_core::signature::{base64_decode, check_window};
use tidings_core::{Credentials, Error, RawRequest, Result, time};
use x509_cert::der::{DecodePem, Encode};

use crate::{ANY_TOPIC, Envelope, MessageType, TOPIC_ARNS_OPTION, trust};

/// How far SNS's `Timestamp` may be from the receive time by default. SNS documents no window;
/// an hour covers its retry schedule for HTTP endpoints.
pub const DEFAULT_TOLERANCE: Duration = Duration::hours(1);

/// The certificate to fetch for a request: its checked `SigningCertURL`, or nothing for a body
/// that is not an SNS envelope (raw delivery and EventBridge are unsigned).
pub fn remote_keys(request: &RawRequest<'_>) -> Result<Vec<String>> {
    let Some(envelope) = Envelope::from_body(request.body) else {
        return Ok(Vec::new());
    };
    let url = envelope
        .signing_cert_url
        .as_deref()
        .ok_or(Error::MissingSignatureField("SigningCertURL"))?;
    Ok(vec![trust::signing_cert_url(url)?.to_owned()])
}

/// Verifies an SNS message:
///
/// 1. `SigningCertURL` passes the [`trust`] rule (else [`Error::Untrusted`]);
/// 2. `TopicArn` is in the `topic_arns` option (else [`Error::Untrusted`]): SNS signs every AWS
///    account's topics with the same regional certificate, so a valid signature proves only that
///    Amazon sent the message, not that it came from the integration's own topic;
/// 3. `Timestamp` is within the tolerance (default [`DEFAULT_TOLERANCE`]);
/// 4. `Signature` (base64) verifies over [`string_to_sign`] with the RSA key of the certificate
///    the service fetched (`credentials.fetched[SigningCertURL]`), SHA-1 for `SignatureVersion`
///    `1` and SHA-256 for `2`.
///
/// A body that is not an SNS envelope carries no signature (raw delivery, EventBridge).
pub fn verify(request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
    let checked = local_checks(request, credentials)?;
    let signed = string_to_sign(&checked.envelope, checked.kind)?;
    let (scheme, digest) = match checked.version {
        Version::Sha1 => (
            Pkcs1v15Sign::new::<sha1::Sha1>(),
            sha1::Sha1::digest(signed.as_bytes()).to_vec(),
        ),
        Version::Sha256 => (
            Pkcs1v15Sign::new::<sha2::Sha256>(),
            sha2::Sha256::digest(signed.as_bytes()).to_vec(),
        ),
    };
    let pem = credentials
        .fetched
        .get(&checked.cert_url)
        .ok_or(Error::Untrusted(
            "the certificate at SigningCertURL was not fetched",
        ))?;
    let key = public_key_from_pem(pem)?;
    key.verify(scheme, &digest, &checked.signature)
        .map_err(|_| Error::SignatureMismatch)
}

/// Steps 1 to 3 of [`verify`] and the signature's form: everything but the RSA check, so the
/// service checks it before fetching a certificate.
pub fn precheck(request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
    local_checks(request, credentials).map(|_| ())
}

enum Version {
    Sha1,
    Sha256,
}

struct Checked {
    envelope: Envelope,
    kind: MessageType,
    cert_url: String,
    version: Version,
    signature: Vec<u8>,
}

fn local_checks(request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<Checked> {
    let envelope =
        Envelope::from_body(request.body).ok_or(Error::MissingSignatureField("Signature"))?;
    let kind = envelope
        .message_type()
        .ok_or(Error::MalformedSignature("Type"))?;
    let url = envelope
        .signing_cert_url
        .as_deref()
        .ok_or(Error::MissingSignatureField("SigningCertURL"))?;
    let cert_url = trust::signing_cert_url(url)?.to_owned();
    let topic = envelope.topic_arn.as_deref().unwrap_or_default();
    if !topic_allowed(credentials.option(TOPIC_ARNS_OPTION), topic) {
        return Err(Error::Untrusted(
            "signed for a TopicArn outside the integration's topic_arns allow-list",
        ));
    }
    let version = match envelope
        .signature_version
        .as_deref()
        .ok_or(Error::MissingSignatureField("SignatureVersion"))?
        .trim()
    {
        "1" => Version::Sha1,
        "2" => Version::Sha256,
        _ => return Err(Error::MalformedSignature("SignatureVersion")),
    };
    let signature = envelope
        .signature
        .as_deref()
        .ok_or(Error::MissingSignatureField("Signature"))?;
    let signature = base64_decode(signature).ok_or(Error::MalformedSignature("Signature"))?;
    if let Some(tolerance) = credentials.freshness.tolerance(Some(DEFAULT_TOLERANCE)) {
        let published = envelope
            .timestamp
            .as_deref()
            .ok_or(Error::MissingSignatureField("Timestamp"))?;
        let published = time::parse(published).ok_or(Error::MalformedSignature("Timestamp"))?;
        check_window(published, request.received_at, tolerance)?;
    }
    // The canonical string needs every signed field: a message missing one cannot verify.
    string_to_sign(&envelope, kind)?;
    Ok(Checked {
        envelope,
        kind,
        cert_url,
        version,
        signature,
    })
}

/// The ARNs of a `topic_arns` value (comma-separated), wildcard included.
fn listed(allowed: &str) -> impl Iterator<Item = &str> {
    allowed
        .split(',')
        .map(str::trim)
        .filter(|arn| !arn.is_empty())
}

/// Whether `topic` may be accepted with this `topic_arns` value: listed, or the value holds
/// [`ANY_TOPIC`]. No allow-list accepts nothing.
pub fn topic_allowed(allowed: Option<&str>, topic: &str) -> bool {
    let Some(allowed) = allowed else {
        return false;
    };
    !topic.is_empty() && listed(allowed).any(|arn| arn == topic || arn == ANY_TOPIC)
}

/// Whether `topic` is named in this `topic_arns` value itself (the wildcard does not count):
/// only such a topic's subscription may be confirmed automatically.
pub fn topic_listed(allowed: Option<&str>, topic: &str) -> bool {
    allowed.is_some_and(|allowed| !topic.is_empty() && listed(allowed).any(|arn| arn == topic))
}

/// Problems with an SNS-delivered integration's options: `topic_arns` must be set and each entry
/// be an SNS topic ARN (or [`ANY_TOPIC`]).
pub fn option_problems(options: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let Some(allowed) = options.get(TOPIC_ARNS_OPTION) else {
        return vec![format!(
            "options.{TOPIC_ARNS_OPTION} is required: Amazon SNS signs every AWS account's topics with the same certificate, so only the allow-list tells your topics from anyone else's (e.g. options = {{ {TOPIC_ARNS_OPTION} = \"arn:aws:sns:us-east-1:123456789012:ses-events\" }})"
        )];
    };
    if listed(allowed).next().is_none() {
        return vec![format!(
            "options.{TOPIC_ARNS_OPTION} is empty: list the ARNs of your SNS topics, comma-separated"
        )];
    }
    listed(allowed)
        .filter(|arn| *arn != ANY_TOPIC && !arn.starts_with("arn:aws"))
        .map(|arn| {
            format!(
                "options.{TOPIC_ARNS_OPTION}: `{arn}` is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)"
            )
        })
        .collect()
}

/// The canonical string SNS signs: `Name\nValue\n` for each field, in this order. Notification:
/// `Message, MessageId, Subject` (only when present)`, Timestamp, TopicArn, Type`; subscription
/// messages: `Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type`. Values are the
/// JSON-decoded strings.
pub fn string_to_sign(envelope: &Envelope, kind: MessageType) -> Result<String> {
    let required = |value: &Option<String>, name: &'static str| {
        value
            .clone()
            .ok_or(Error::MissingSignatureField(name))
            .map(|v| (name, v))
    };
    let mut fields = vec![
        required(&envelope.message, "Message")?,
        required(&envelope.message_id, "MessageId")?,
    ];
    match kind {
        MessageType::Notification => {
            if let Some(subject) = &envelope.subject {
                fields.push(("Subject", subject.clone()));
            }
            fields.push(required(&envelope.timestamp, "Timestamp")?);
        }
        MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
            fields.push(required(&envelope.subscribe_url, "SubscribeURL")?);
            fields.push(required(&envelope.timestamp, "Timestamp")?);
            fields.push(required(&envelope.token, "Token")?);
        }
    }
    fields.push(required(&envelope.topic_arn, "TopicArn")?);
    fields.push(required(&envelope.kind, "Type")?);
    Ok(fields
        .iter()
        .map(|(name, value)| format!("{name}\n{value}\n"))
        .collect())
}

/// The RSA public key of a PEM X.509 certificate.
pub fn public_key_from_pem(pem: &[u8]) -> Result<RsaPublicKey> {
    const NOT_A_CERTIFICATE: Error =
        Error::Untrusted("SigningCertURL did not hold a PEM X.509 certificate with an RSA key");
    let text = std::str::from_utf8(pem).map_err(|_| NOT_A_CERTIFICATE)?;
    let certificate =
        x509_cert::Certificate::from_pem(text.trim()).map_err(|_| NOT_A_CERTIFICATE)?;
    let spki = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| NOT_A_CERTIFICATE)?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|_| NOT_A_CERTIFICATE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn canonical_strings() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"Type":"Notification","MessageId":"m","TopicArn":"t","Message":"a\nb","Timestamp":"ts"}"#,
        )
        .unwrap();
        assert_eq!(
            string_to_sign(&envelope, MessageType::Notification).unwrap(),
            "Message\na\nb\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
        );
        let subscription: Envelope = serde_json::from_str(
            r#"{"Type":"SubscriptionConfirmation","MessageId":"m","TopicArn":"t","Message":"x","Timestamp":"ts","Token":"k","SubscribeURL":"u","Subject":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(
            string_to_sign(&subscription, MessageType::SubscriptionConfirmation).unwrap(),
            "Message\nx\nMessageId\nm\nSubscribeURL\nu\nTimestamp\nts\nToken\nk\nTopicArn\nt\nType\nSubscriptionConfirmation\n"
        );
        let no_token: Envelope =
            serde_json::from_str(r#"{"Type":"SubscriptionConfirmation","MessageId":"m","Message":"x","SubscribeURL":"u","Timestamp":"ts"}"#)
                .unwrap();
        assert_eq!(
            string_to_sign(&no_token, MessageType::SubscriptionConfirmation),
            Err(Error::MissingSignatureField("Token"))
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            public_key_from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(Error::Untrusted(_))
        ));
        assert!(public_key_from_pem(&[0xff, 0xfe]).is_err());
    }
}
