//! Postal (the self-hosted mail server): one message or server event per request, signed with
//! the server's RSA key.
//!
//! Docs: <https://docs.postalserver.io/developer/webhooks> (events, payloads and signatures).
//!
//! - Body: one JSON object `{"event", "timestamp", "uuid", "payload": {...}}`. Status events
//!   (`MessageSent`, `MessageDelayed`, `MessageDeliveryFailed`, `MessageHeld`) carry
//!   `payload.message` and `payload.status`; `MessageBounced` carries `original_message` and
//!   `bounce`; `MessageLinkClicked` and `MessageLoaded` carry `message`. Server events
//!   (`DomainDNSError`, send limits) and events about incoming mail are ignored.
//! - Ids: `message.id` is Postal's per-recipient message id (the send API returns it per
//!   recipient): both the result id and `externalId`, as Postal echoes no sender metadata. An
//!   event without it is kept, reported under its dedup key, when it names a recipient
//!   (`message.to`); with no recipient either it is ignored.
//! - `date`: the top-level `timestamp`, fractional Unix seconds; the receive time only when it is
//!   absent.
//! - Dedup: `uuid`, the event's id, the same on every retry; without it a hash of message id
//!   (else recipient), event, timestamp and URL.
//! - Signature: `X-Postal-Signature` = base64 RSA PKCS#1 v1.5 SHA-1 signature of the raw body;
//!   newer servers also send `X-Postal-Signature-256` (SHA-256), checked instead when present.
//!   The key is the server's public key as Postal shows it (base64 DER, optionally in PEM armor
//!   or as a DKIM-style `p=` record). No timestamp, so no replay window.

mod status;
mod wire;

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tidings_core::signature::base64_decode;
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, Secret, json, non_empty,
    time,
};

use crate::wire::{Payload, PostalEvent};

const ID: &str = "postal";
const SIGNATURE_HEADER: &str = "x-postal-signature";
const SIGNATURE_256_HEADER: &str = "x-postal-signature-256";

tidings_core::provider! {
    /// Postal webhooks.
    pub struct Postal;
    id: ID,
    channel: Email,
    signature: Signature::Keyed("rsa-pkcs1v15-sha1"),
    media_types: [Json, Missing],
}

impl ProviderParser for Postal {
    fn load_key(&self, key: &Secret) -> Result<()> {
        key.parsed(public_key).map(drop)
    }

    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let (header_name, signature, scheme, hashed) =
            if let Some(signature) = request.header(SIGNATURE_256_HEADER) {
                let hashed = Sha256::digest(request.body).to_vec();
                let scheme = Pkcs1v15Sign::new::<Sha256>();
                ("X-Postal-Signature-256", signature, scheme, hashed)
            } else {
                let signature = request
                    .header(SIGNATURE_HEADER)
                    .ok_or(Error::MissingHeader("X-Postal-Signature"))?;
                let hashed = Sha1::digest(request.body).to_vec();
                (
                    "X-Postal-Signature",
                    signature,
                    Pkcs1v15Sign::new::<Sha1>(),
                    hashed,
                )
            };
        let signature = base64_decode(signature).ok_or(Error::MalformedSignature(header_name))?;
        credentials.any_key(|key| {
            key.parsed(public_key)?
                .verify(scheme.clone(), &hashed, &signature)
                .map_err(|_| Error::SignatureMismatch)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let event: PostalEvent = json::read_slice(ID, request.body)?;
        let row = request.text(ID)?.trim();
        let mut parsed = Parsed::default();
        normalize(request, row, event, &mut parsed);
        Ok(parsed)
    }
}

fn normalize(request: &RawRequest<'_>, row: &str, event: PostalEvent, parsed: &mut Parsed) {
    let payload = event.payload.unwrap_or_default();
    let message = payload
        .message
        .as_ref()
        .or(payload.original_message.as_ref());
    let message_id =
        non_empty(message.and_then(|m| m.id.as_ref()).map(|id| id.as_str())).map(str::to_owned);
    if message.and_then(|m| m.direction.as_deref()) == Some("incoming") {
        parsed.ignore(
            event.event,
            message_id,
            "about an incoming message, not a sent one",
        );
        return;
    }
    let Some((status, failure)) = status::classify(
        &event.event,
        payload.status.as_deref(),
        payload.bounce.is_some(),
    ) else {
        parsed.ignore(
            event.event,
            message_id,
            "event type maps to no delivery status",
        );
        return;
    };
    let recipient = non_empty(message.and_then(|m| m.to.as_deref())).map(str::to_owned);
    if message_id.is_none() && recipient.is_none() {
        parsed.ignore(
            event.event,
            None,
            "the event carries no message id and no recipient",
        );
        return;
    }
    let timestamp = event.timestamp.filter(|t| t.is_finite());
    let provider_event = match payload.status.as_deref() {
        Some(s) => format!("{} ({s})", event.event),
        None => event.event.clone(),
    };
    let draft = Draft::new(ID, status, provider_event);
    let draft = match non_empty(event.uuid.as_deref()) {
        Some(uuid) => draft.dedup_id(uuid),
        None => match &message_id {
            Some(id) => draft.dedup_fields(&[
                id,
                &event.event,
                &timestamp.map(|t| t.to_string()).unwrap_or_default(),
                payload.url.as_deref().unwrap_or(""),
            ]),
            // Without a message id the recipient tells events apart.
            None => draft.dedup_fields(&[
                "",
                &event.event,
                &timestamp.map(|t| t.to_string()).unwrap_or_default(),
                payload.url.as_deref().unwrap_or(""),
                recipient.as_deref().unwrap_or(""),
            ]),
        },
    };
    // Without a message id the event is kept all the same, reported under its dedup key: it
    // still says something true about its recipient.
    parsed.push(
        request,
        draft
            .external_id(message_id)
            .date(timestamp.and_then(time::from_unix_float))
            .recipient(recipient)
            .failure(failure)
            .response(response(&payload))
            .row(row),
    );
}

/// The receiving server's reply, else Postal's description of the outcome.
fn response(payload: &Payload) -> Option<String> {
    non_empty(payload.output.as_deref())
        .or(non_empty(payload.details.as_deref()))
        .map(str::to_owned)
}

/// Reads the server's public key: base64 DER (SubjectPublicKeyInfo or PKCS#1), bare, in PEM
/// armor, or as the `p=` tag of a DKIM-style record.
fn public_key(text: &str) -> Result<RsaPublicKey> {
    const KIND: &str = "base64 DER RSA public key";
    let text = match text
        .split(';')
        .map(str::trim)
        .find_map(|tag| tag.strip_prefix("p="))
    {
        Some(value) => value,
        None => text,
    };
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.split_whitespace())
        .collect();
    let der = base64_decode(&body).ok_or(Error::InvalidKey(KIND))?;
    RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|_| Error::InvalidKey(KIND))
}
