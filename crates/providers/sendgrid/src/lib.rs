//! Twilio SendGrid's Event Webhook: batches of delivery and engagement events, optionally signed
//! with ECDSA P-256 (the Signed Event Webhook).
//!
//! Docs: <https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event> and
//! <https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features>.
//!
//! - Body: always a JSON array (a bare object is accepted too). Custom args are flattened into
//!   each event: the custom arg `id` (or Novu's `novuMessageId`) is the result id, else
//!   `sg_message_id`.
//!   An event without either (no `sg_message_id` nor `smtp-id`) is kept, reported under its
//!   dedup key, when it names a recipient (`email`); with neither it is ignored.
//! - `date` is the event's `timestamp` (Unix seconds).
//! - Dedup: `sg_event_id` changes between SendGrid's retries and is missing on some events, so
//!   the key is a hash of the message id, event, recipient, time, bounce type and URL.
//! - Signature: ECDSA P-256 / SHA-256 over `timestamp header ‖ raw body`, DER signature in
//!   base64, the key a base64 DER SubjectPublicKeyInfo. SendGrid documents no timestamp window.

mod status;
mod wire;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature as EcdsaSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use tidings_core::signature::{base64_decode, check_signed_seconds};
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, Secret, ids, json, time,
};

use crate::wire::SendGridEvent;

const ID: &str = "sendgrid";
/// SendGrid documents no timestamp window, and retries a failed POST for up to 24 hours: the
/// default window covers that horizon, plus an hour for clocks and queues. A request signed
/// longer ago than this is refused (a replay), not stored.
const DEFAULT_TOLERANCE: chrono::Duration = chrono::Duration::hours(25);
const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

tidings_core::provider! {
    /// The SendGrid Event Webhook.
    pub struct SendGrid;
    id: ID,
    channel: Email,
    signature: Signature::Keyed("ecdsa-p256-sha256"),
    media_types: [Json, Text, Missing],
}

impl ProviderParser for SendGrid {
    fn load_key(&self, key: &Secret) -> Result<()> {
        key.parsed(verifying_key).map(drop)
    }

    /// SendGrid signs its compact JSON followed by CRLF. A proxy or framework that parses and
    /// re-writes the body (pretty-printing, other line ends) breaks the signature: if the body
    /// verifies once restored to that form, the hint says so.
    fn refusal_hint(
        &self,
        request: &RawRequest<'_>,
        credentials: &Credentials<'_>,
    ) -> Option<String> {
        let compact = tidings_core::json::minified(request.body);
        let mut with_crlf = compact.clone();
        with_crlf.extend_from_slice(b"\r\n");
        let restored = [with_crlf, compact]
            .into_iter()
            .filter(|body| body.as_slice() != request.body)
            .any(|body| {
                let candidate = RawRequest {
                    body: &body,
                    ..*request
                };
                self.verify(&candidate, credentials).is_ok()
            });
        restored.then(|| {
            "The signature matches this body in SendGrid's compact form: something between SendGrid and Tidings (a proxy, gateway or framework) re-encoded the JSON. Forward the raw bytes unchanged.".to_owned()
        })
    }

    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader(
                "X-Twilio-Email-Event-Webhook-Signature",
            ))?;
        let timestamp = request
            .header(TIMESTAMP_HEADER)
            .ok_or(Error::MissingHeader(
                "X-Twilio-Email-Event-Webhook-Timestamp",
            ))?;
        let der = base64_decode(signature).ok_or(Error::MalformedSignature(
            "X-Twilio-Email-Event-Webhook-Signature",
        ))?;
        let signature = EcdsaSignature::from_der(&der)
            .map_err(|_| Error::MalformedSignature("X-Twilio-Email-Event-Webhook-Signature"))?;
        check_signed_seconds(
            timestamp,
            "X-Twilio-Email-Event-Webhook-Timestamp",
            request.received_at,
            credentials.freshness.tolerance(Some(DEFAULT_TOLERANCE)),
        )?;
        let mut message = Vec::with_capacity(timestamp.len() + request.body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(request.body);
        credentials.any_key(|key| {
            let key = key.parsed(verifying_key)?;
            key.verify(&message, &signature)
                .map_err(|_| Error::SignatureMismatch)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        json::batch(ID, request.body, |row, event: SendGridEvent<'_>, parsed| {
            normalize(request, row, &event, parsed);
            Ok(())
        })
    }
}

fn normalize(request: &RawRequest<'_>, row: &str, event: &SendGridEvent<'_>, parsed: &mut Parsed) {
    let external_id = event
        .sg_message_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            event
                .smtp_id
                .as_deref()
                .map(|id| ids::strip_angle_brackets(id).to_owned())
        });
    let own_id = event
        .id
        .as_ref()
        .and_then(wire::Lenient::text)
        .or_else(|| event.novu_message_id.as_ref().and_then(wire::Lenient::text));
    let id = own_id.or_else(|| external_id.clone());
    if id.is_none() && tidings_core::non_empty(event.email.as_deref()).is_none() {
        parsed.ignore(
            event.event.as_ref(),
            None,
            "the event carries no message id and no recipient",
        );
        return;
    }
    let Some((status, failure)) = status::classify(&event.event, event.kind.as_deref()) else {
        parsed.ignore(
            event.event.as_ref(),
            id,
            "event type maps to no delivery status",
        );
        return;
    };
    let timestamp = event.timestamp.as_ref().and_then(wire::Lenient::as_i64);
    let timestamp_text = timestamp.map(|t| t.to_string()).unwrap_or_default();
    let dedup_fields = [
        external_id.as_deref().or(id.as_deref()).unwrap_or(""),
        &event.event,
        event.email.as_deref().unwrap_or(""),
        &timestamp_text,
        event.kind.as_deref().unwrap_or(""),
        event.url.as_deref().unwrap_or(""),
    ];
    let provider_event = match event.kind.as_deref() {
        Some(kind) if event.event == "bounce" => format!("bounce (type={kind})"),
        _ => event.event.to_string(),
    };
    let automated = (status == tidings_core::Status::Opened).then(|| {
        event
            .sg_machine_open
            .as_ref()
            .is_some_and(wire::Lenient::truthy)
    });
    let draft = Draft::new(ID, status, provider_event).dedup_fields(&dedup_fields);
    let attempts = event.attempt.as_ref().and_then(wire::Lenient::as_i64);
    let response = event
        .response
        .as_deref()
        .filter(|r| !r.is_empty())
        .or(event.reason.as_deref().filter(|r| !r.is_empty()));
    let code = event
        .status
        .as_ref()
        .and_then(wire::Lenient::text)
        .or_else(|| event.bounce_classification.as_deref().map(str::to_owned));
    // An event without any message id (neither `sg_message_id` nor `smtp-id`) still says
    // something true about its recipient: it is kept, reported under its dedup key.
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(external_id)
            .date(timestamp.and_then(time::from_unix_seconds))
            .recipient(event.email.as_deref().map(str::to_owned))
            .failure(failure)
            .code(code)
            .response(response.map(str::to_owned))
            .attempts(attempts.and_then(|a| u32::try_from(a).ok()))
            .automated(automated)
            .row(row),
    );
}

/// Reads SendGrid's public key: base64 DER SubjectPublicKeyInfo as the dashboard shows it, or
/// the same wrapped in PEM armor.
fn verifying_key(text: &str) -> Result<VerifyingKey> {
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let der = base64_decode(&body).ok_or(Error::InvalidKey("base64 DER P-256 public key"))?;
    VerifyingKey::from_public_key_der(&der)
        .map_err(|_| Error::InvalidKey("base64 DER P-256 public key"))
}
