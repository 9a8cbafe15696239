//! MailerSend: one activity event per request, signed with HMAC-SHA256 over the raw body.
//!
//! Docs: <https://developers.mailersend.com/api/v1/webhooks.html> (events and security).
//!
//! - Body: one JSON object `{"type": "activity.<event>", "created_at", "data": {...}}`. Both the
//!   original payload (`data.email.message.id`, `data.email.recipient.email`, details in
//!   `data.morph`) and the current one (`data.message_id`, `data.recipient`, details in
//!   `data.meta`) are read. `webhook.test` pings, inbound messages and account notices are
//!   ignored.
//! - Ids: the message id the send API returned (`X-Message-Id`) is both the result id and
//!   `externalId`: MailerSend echoes no sender metadata, only tags. An event without it is
//!   kept, reported under its dedup key, when it names a recipient; with no recipient either
//!   it is ignored.
//! - `date`: `data.created_at` (original payloads) or the top-level `created_at` (current
//!   payloads), ISO 8601; the receive time only when neither is sent.
//! - Dedup: `data.id`, the activity id, unique per event and stable across retries.
//! - Signature: header `Signature` = hex HMAC-SHA256(signing secret, raw body). The body escapes
//!   `/` as `\/`, so only the exact bytes verify. No timestamp, so no replay window.

mod status;
mod wire;

use tidings_core::signature::{hex_matches, hmac_sha256};
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, json, non_empty, time,
};

use crate::wire::{Envelope, detail};

const ID: &str = "mailersend";
const SIGNATURE_HEADER: &str = "signature";

/// Details that describe why a message failed or a recipient left, most specific first.
const REASON_KEYS: &[&str] = &[
    "readable_reason",
    "reason",
    "bounce_reason",
    "reject_reason",
    "suppression_reason",
    "unsubscribe_reason",
];

tidings_core::provider! {
    /// MailerSend activity webhooks.
    pub struct MailerSend;
    id: ID,
    channel: Email,
    signature: Signature::Keyed("hmac-sha256"),
    media_types: [Json, Missing],
}

impl ProviderParser for MailerSend {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader("Signature"))?;
        credentials.any_key_matches(|key| {
            hex_matches(
                &hmac_sha256(key.expose().as_bytes(), &[request.body]),
                signature,
            )
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let envelope: Envelope = json::read_slice(ID, request.body)?;
        let row = request.text(ID)?.trim();
        let mut parsed = Parsed::default();
        normalize(request, row, envelope, &mut parsed);
        Ok(parsed)
    }
}

fn normalize(request: &RawRequest<'_>, row: &str, envelope: Envelope, parsed: &mut Parsed) {
    let data = envelope.data.as_ref();
    let email = data.and_then(|d| d.email.as_ref());
    let message_id = non_empty(
        data.and_then(|d| d.message_id.as_ref())
            .map(|id| id.as_str()),
    )
    .or_else(|| {
        non_empty(
            email
                .and_then(|e| e.message.as_ref())
                .and_then(|m| m.id.as_ref())
                .map(|id| id.as_str()),
        )
    })
    .map(str::to_owned);
    let Some(activity) = envelope.kind.strip_prefix("activity.") else {
        let reason = match envelope.kind.as_str() {
            "webhook.test" => "webhook test ping",
            "inbound.message" => "inbound message: about no sent message",
            _ => "not a message activity",
        };
        parsed.ignore(envelope.kind, message_id, reason);
        return;
    };
    let Some((status, failure)) = status::classify(activity) else {
        parsed.ignore(
            envelope.kind,
            message_id,
            "event type maps to no delivery status",
        );
        return;
    };
    let recipient = data
        .and_then(|d| d.recipient.as_ref())
        .and_then(|r| r.as_str())
        .or_else(|| {
            email
                .and_then(|e| e.recipient.as_ref())
                .and_then(|r| r.email.as_deref())
        })
        .and_then(|r| non_empty(Some(r)))
        .map(str::to_owned);
    if message_id.is_none() && recipient.is_none() {
        parsed.ignore(
            envelope.kind,
            None,
            "the event carries no message id and no recipient",
        );
        return;
    }
    let created_at = data
        .and_then(|d| d.created_at.as_deref())
        .or(envelope.created_at.as_deref());
    let details = data.and_then(|d| d.meta.as_ref().or(d.morph.as_ref()));
    let event_id = non_empty(data.and_then(|d| d.id.as_ref()).map(|id| id.as_str()));
    let draft = Draft::new(ID, status, &envelope.kind);
    let draft = match event_id {
        Some(event_id) => draft.dedup_id(event_id),
        None => draft.dedup_fields(&[
            message_id.as_deref().unwrap_or(""),
            activity,
            recipient.as_deref().unwrap_or(""),
            created_at.unwrap_or(""),
        ]),
    };
    // Without a message id the event is kept all the same, reported under its dedup key: it
    // still says something true about its recipient.
    parsed.push(
        request,
        draft
            .external_id(message_id)
            .date(created_at.and_then(time::parse))
            .recipient(recipient)
            .failure(failure)
            .code(detail(details, "bounce_code"))
            .response(REASON_KEYS.iter().find_map(|key| detail(details, key)))
            .row(row),
    );
}
