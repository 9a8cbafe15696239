//! Telnyx Messaging API v2 webhooks: outbound SMS, MMS and RCS message status updates.
//!
//! Docs: <https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks>,
//! <https://developers.telnyx.com/api-reference/callbacks/delivery-update> and
//! <https://developers.telnyx.com/docs/messaging/messages/message-detail-records>.
//!
//! - Body: one JSON event `{"data": {"event_type", "id", "occurred_at", "payload": {message}},
//!   "meta": {"attempt"}}`. `message.sent` and `message.finalized` carry the status of each
//!   recipient in `data.payload.to[]` (and `cc[]` for group MMS): one event per recipient.
//!   RCS adds `message.read` (recipient status `read`), documented at
//!   <https://developers.telnyx.com/docs/messaging/messages/receiving-rcs-webhooks>.
//!   `message.received` (inbound) and other event types are ignored.
//! - Ids: the message id `data.payload.id` is both the result id and `externalId` (Telnyx
//!   carries no sender id back); `data.id` is the event id.
//! - `date`: `data.occurred_at`, else the receive time. `attempts`: `meta.attempt`.
//! - Dedup: the event id `data.id` (stable across Telnyx's retries), with the recipient's
//!   number appended when the event has several recipients.
//! - Signature: Ed25519 over `telnyx-timestamp + "|" + body`, the signature base64 in
//!   `telnyx-signature-ed25519`, the key the account's base64 public key (32 raw bytes, or a
//!   DER SubjectPublicKeyInfo). The timestamp must be within 5 minutes of the receive time, as
//!   Telnyx's own libraries check.

mod status;
mod wire;

use chrono::Duration;
use ed25519_dalek::{Signature as Ed25519Signature, VerifyingKey};
use tidings_core::signature::{Secret, base64_decode, check_signed_seconds};
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, json, time,
};

use crate::wire::Webhook;

const ID: &str = "telnyx";
const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
/// The DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

tidings_core::provider! {
    /// Telnyx messaging webhooks.
    pub struct Telnyx;
    id: ID,
    channel: Sms,
    signature: Signature::Keyed("ed25519"),
    media_types: [Json, Missing],
}

impl ProviderParser for Telnyx {
    fn load_key(&self, key: &Secret) -> Result<()> {
        key.parsed(verifying_key).map(drop)
    }

    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader("telnyx-signature-ed25519"))?;
        let timestamp = request
            .header(TIMESTAMP_HEADER)
            .ok_or(Error::MissingHeader("telnyx-timestamp"))?;
        let signature = base64_decode(signature)
            .and_then(|bytes| Ed25519Signature::from_slice(&bytes).ok())
            .ok_or(Error::MalformedSignature("telnyx-signature-ed25519"))?;
        check_signed_seconds(
            timestamp,
            "telnyx-timestamp",
            request.received_at,
            credentials.freshness.tolerance(Some(Duration::minutes(5))),
        )?;
        let mut message = Vec::with_capacity(timestamp.len() + 1 + request.body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.push(b'|');
        message.extend_from_slice(request.body);
        credentials.any_key(|key| {
            key.parsed(verifying_key)?
                .verify_strict(&message, &signature)
                .map_err(|_| Error::SignatureMismatch)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let webhook: Webhook = json::read_slice(ID, request.body)?;
        let row = request.text(ID)?;
        let mut parsed = Parsed::default();
        let data = &webhook.data;
        let payload = data.payload.as_ref();
        let message_id = payload
            .and_then(|p| p.id.as_ref())
            .map(|id| id.as_str().to_owned())
            .filter(|id| !id.is_empty());
        let inbound = data.event_type == "message.received"
            || payload.and_then(|p| p.direction.as_deref()) == Some("inbound");
        let (Some(payload), Some(message_id), false) = (payload, message_id.clone(), inbound)
        else {
            let reason = if inbound {
                "an inbound message, not a delivery status"
            } else {
                "not an outbound message event"
            };
            parsed.ignore(data.event_type.as_str(), message_id, reason);
            return Ok(parsed);
        };
        let event_id = data
            .id
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .filter(|id| !id.is_empty());
        let occurred_at = data.occurred_at.as_deref().and_then(time::parse);
        // Only the provider's own time goes into a dedup key: a retry arrives at another time.
        let occurred_text = occurred_at.map(|d| d.to_rfc3339()).unwrap_or_default();
        let error = payload.errors.as_ref().and_then(|errors| errors.first());
        let code = error
            .and_then(|e| e.code.as_ref())
            .map(|c| c.as_str().to_owned())
            .filter(|c| !c.is_empty());
        let response = error.and_then(|e| e.detail.clone().or_else(|| e.title.clone()));
        let mut recipients = wire::recipients(payload.to.as_ref());
        recipients.extend(wire::recipients(payload.cc.as_ref()));
        let several = recipients.len() > 1;
        for recipient in recipients {
            let number = recipient.phone_number.unwrap_or_default();
            let raw_status = recipient.status.unwrap_or_default();
            let provider_event = format!("{} ({raw_status})", data.event_type);
            let Some((status, failure)) = status::classify(&raw_status, code.as_deref()) else {
                parsed.ignore(
                    provider_event,
                    Some(message_id.clone()),
                    "recipient status maps to no delivery status",
                );
                continue;
            };
            let draft = Draft::new(ID, status, provider_event);
            let draft = match (&event_id, several) {
                (Some(event_id), false) => draft.dedup_id(event_id),
                (Some(event_id), true) => draft.dedup_id(format!("{event_id}:{number}")),
                (None, _) => {
                    draft.dedup_fields(&[&message_id, &raw_status, &number, &occurred_text])
                }
            };
            let failed = status_is_failure(status);
            parsed.push(
                request,
                draft
                    .external_id(message_id.clone())
                    .date(occurred_at)
                    .recipient(Some(number).filter(|n| !n.is_empty()))
                    .failure(failure)
                    .code(code.clone().filter(|_| failed))
                    .response(response.clone().filter(|_| failed))
                    .attempts(webhook.meta.as_ref().and_then(|m| m.attempt))
                    .row(row),
            );
        }
        if parsed.events.is_empty() && parsed.ignored.is_empty() {
            parsed.ignore(
                data.event_type.as_str(),
                Some(message_id),
                "the event lists no recipient status",
            );
        }
        Ok(parsed)
    }
}

/// Errors are reported for the whole message; they belong to the recipients that failed.
fn status_is_failure(status: tidings_core::Status) -> bool {
    matches!(
        status,
        tidings_core::Status::Failed | tidings_core::Status::Undelivered
    )
}

/// The account's public key: base64 of the 32 raw bytes (as the portal shows it), or of a DER
/// SubjectPublicKeyInfo, optionally in PEM armor.
fn verifying_key(text: &str) -> Result<VerifyingKey> {
    const INVALID: Error = Error::InvalidKey("base64 Ed25519 public key");
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let bytes = base64_decode(&body).ok_or(INVALID)?;
    let raw = match bytes.strip_prefix(SPKI_PREFIX.as_slice()) {
        Some(raw) => raw,
        None => bytes.as_slice(),
    };
    let raw: [u8; 32] = raw.try_into().map_err(|_| INVALID)?;
    VerifyingKey::from_bytes(&raw).map_err(|_| INVALID)
}
