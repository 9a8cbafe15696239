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
//!   `externalId`: MailerSend echoes no sender metadata, only tags.
//! - `date`: `data.created_at` (original payloads) or the top-level `created_at` (current
//!   payloads), ISO 8601; the receive time only when neither is sent.
//! - Dedup: `data.id`, the activity id, unique per event and stable across retries.
//! - Signature: header `Signature` = hex HMAC-SHA256(signing secret, raw body). The body escapes
//!   `/` as `\/`, so only the exact bytes verify. No timestamp, so no replay window.

mod status;
mod wire;

use tidings_core::signature::{hex_matches, hmac_sha256};
use tidings_core::{
    Channel, Credentials, Error, Event, EventBody, Ignored, MediaType, Parsed, ProviderParser,
    RawRequest, Result, Signature, ids, time,
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

/// MailerSend activity webhooks.
pub struct MailerSend;

tidings_core::register_provider!(MailerSend);

impl ProviderParser for MailerSend {
    fn id(&self) -> &'static str {
        ID
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn signature(&self) -> Signature {
        Signature::Keyed("hmac-sha256")
    }

    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader("Signature"))?;
        credentials.any_key(|key| {
            if hex_matches(
                &hmac_sha256(key.expose().as_bytes(), &[request.body]),
                signature,
            ) {
                Ok(())
            } else {
                Err(Error::SignatureMismatch)
            }
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        match request.media_type() {
            MediaType::Json | MediaType::Missing => {}
            _ => return Err(request.unsupported(ID)),
        }
        let envelope: Envelope =
            serde_json::from_slice(request.body).map_err(|e| Error::json(ID, &e))?;
        let row = std::str::from_utf8(request.body)
            .map_err(|_| Error::malformed(ID, "body is not UTF-8"))?
            .trim();
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
        parsed.ignored.push(Ignored {
            provider_event: envelope.kind,
            id: message_id,
            reason: reason.into(),
        });
        return;
    };
    let Some((status, failure)) = status::classify(activity) else {
        parsed.ignored.push(Ignored {
            provider_event: envelope.kind.clone(),
            id: message_id,
            reason: "event type maps to no delivery status".into(),
        });
        return;
    };
    let Some(id) = message_id else {
        parsed.ignored.push(Ignored {
            provider_event: envelope.kind.clone(),
            id: None,
            reason: "the event carries no message id".into(),
        });
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
    let created_at = data
        .and_then(|d| d.created_at.as_deref())
        .or(envelope.created_at.as_deref());
    let details = data.and_then(|d| d.meta.as_ref().or(d.morph.as_ref()));
    let event_id = non_empty(data.and_then(|d| d.id.as_ref()).map(|id| id.as_str()));
    let dedup_key = match event_id {
        Some(event_id) => ids::dedup_from_id(ID, event_id),
        None => ids::dedup_from_fields(
            ID,
            &[
                &id,
                activity,
                recipient.as_deref().unwrap_or(""),
                created_at.unwrap_or(""),
            ],
        ),
    };
    parsed.events.push(Event {
        id: id.clone(),
        body: EventBody {
            status,
            date: created_at
                .and_then(time::parse)
                .unwrap_or(request.received_at),
            external_id: Some(id),
            attempts: None,
            response: REASON_KEYS.iter().find_map(|key| detail(details, key)),
            row: Some(row.to_owned()),
        },
        dedup_key,
        provider_event: envelope.kind.clone(),
        recipient,
        failure,
        code: detail(details, "bounce_code"),
        automated: None,
    });
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}
