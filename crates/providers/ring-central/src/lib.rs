//! RingCentral SMS message events: notifications of a webhook subscription whose body is one
//! message record with its `messageStatus`.
//!
//! Docs: <https://developers.ringcentral.com/guide/notifications/event-filters/batch-messages>
//! (High Volume SMS message events), <https://developers.ringcentral.com/guide/notifications/event-filters/instant-message>
//! and <https://developers.ringcentral.com/guide/notifications/webhooks/receiving>.
//!
//! - Body: the notification envelope `{"uuid", "event", "subscriptionId", "ownerId",
//!   "timestamp", "body"}` whose `body` is a message record (`id`, `messageStatus`, `direction`,
//!   `to`, `creationTime`, `lastModifiedTime`, `errorCode`, ...). A bare message record or an
//!   array of them (Message Store records, as a sender's own relay posts them) is read too.
//!   Inbound messages, batch progress, opt-out and message-store change-count events carry no
//!   delivery status and are ignored.
//! - Handshake: creating a subscription posts an empty body with a `Validation-Token` header,
//!   which must come back as a response header within 3 s (and the response must stay under
//!   1,024 bytes) or RingCentral refuses the subscription. [`ProviderParser::handshake`] echoes
//!   it; a token longer than 256 bytes is not echoed. If such a request reaches `parse`, it
//!   parses to nothing.
//! - Ids: `id` is both the result id and the provider message id: RingCentral echoes no value
//!   of the sender's.
//! - `date`: `lastModifiedTime` (when the status changed), else `creationTime`, else the
//!   envelope's `timestamp`; the receive time only when none is sent.
//! - `attempts`: `smsSendingAttemptsCount` (message-store records).
//! - Dedup: the envelope's `uuid` is not documented as stable across redeliveries, so the key
//!   hashes `id`, `messageStatus`, the recipient, `lastModifiedTime` and the error code.
//! - Signature: none. RingCentral sends the subscription's `verificationToken` back verbatim in
//!   the `Verification-Token` header; with the token configured as the signing key it is
//!   compared in constant time.

mod status;
mod wire;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use tidings_core::signature::ct_eq;
use tidings_core::{
    Credentials, Draft, Error, Handshake, Parsed, ProviderParser, RawRequest, Result, json, time,
};

use crate::wire::{Envelope, Message};

const ID: &str = "ring-central";

/// The token of a subscription handshake: an empty body with a visible-ASCII `Validation-Token`
/// short enough to echo within RingCentral's 1,024-byte response limit.
fn validation_token<'a>(request: &RawRequest<'a>) -> Option<&'a str> {
    let token = request.header("validation-token")?;
    let echoable =
        !token.is_empty() && token.len() <= 256 && token.bytes().all(|b| b.is_ascii_graphic());
    (echoable && request.body.iter().all(u8::is_ascii_whitespace)).then_some(token)
}

tidings_core::provider! {
    /// RingCentral SMS message events.
    pub struct RingCentral;
    id: ID,
    aliases: ["ringcentral"],
    channel: Sms,
    signature: Signature::Keyed("verification-token"),
    media_types: [Json, Missing],
    // `Verification-Token` is the integration's shared secret itself: never stored.
    credential_headers: ["verification-token"],
}

impl ProviderParser for RingCentral {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let token = request
            .header("verification-token")
            .ok_or(Error::MissingHeader("Verification-Token"))?;
        credentials.any_key_matches(|key| ct_eq(key.expose().as_bytes(), token.as_bytes()))
    }

    fn handshake(&self, request: &RawRequest<'_>) -> Option<Handshake> {
        let token = validation_token(request)?;
        Some(Handshake {
            headers: vec![("validation-token", token.to_owned())],
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let mut parsed = Parsed::default();
        if validation_token(request).is_some() {
            parsed.ignore(
                "subscription validation",
                None,
                "webhook subscription handshake: answer with its Validation-Token header",
            );
            return Ok(parsed);
        }
        if json::is_array(request.body) {
            let rows: Vec<&RawValue> = json::read_slice(ID, request.body)?;
            for row in rows {
                record(request, row, None, None, &mut parsed)?;
            }
            return Ok(parsed);
        }
        let value: serde_json::Map<String, serde_json::Value> = json::read_slice(ID, request.body)?;
        if value.contains_key("body") {
            let envelope: Envelope<'_> = json::read_slice(ID, request.body)?;
            let sent_at = envelope.timestamp.as_deref().and_then(time::parse);
            record(
                request,
                envelope.body,
                envelope.event.as_deref(),
                sent_at,
                &mut parsed,
            )?;
        } else if value.contains_key("messageStatus") {
            let row: &RawValue = json::read_slice(ID, request.body)?;
            record(request, row, None, None, &mut parsed)?;
        } else {
            return Err(Error::malformed(
                ID,
                "neither a notification (`body`) nor a message record (`messageStatus`)",
            ));
        }
        Ok(parsed)
    }
}

/// One message record (or the body of another event, which is ignored).
fn record(
    request: &RawRequest<'_>,
    row: &RawValue,
    event_filter: Option<&str>,
    sent_at: Option<DateTime<Utc>>,
    parsed: &mut Parsed,
) -> Result<()> {
    let message: Message = json::read(ID, row.get())?;
    let filter = event_filter.unwrap_or("message");
    let id = message.id.map(|id| id.0).filter(|id| !id.is_empty());
    let Some(status_name) = message.message_status else {
        let reason = if message.changes.is_some() {
            "message-store event: counts of changed messages, no status"
        } else if message.status.is_some() {
            "batch event: batch progress, not a message status"
        } else {
            "the event carries no message status"
        };
        parsed.ignore(filter, id, reason);
        return Ok(());
    };
    let id = id.ok_or(Error::MissingField("id"))?;
    if message
        .direction
        .as_deref()
        .is_some_and(|d| d.eq_ignore_ascii_case("inbound"))
    {
        parsed.ignore(
            format!("Inbound {status_name}"),
            Some(id),
            "an inbound message, not the delivery status of a sent one",
        );
        return Ok(());
    }
    let Some((status, failure)) = status::classify(&status_name) else {
        parsed.ignore(status_name, Some(id), "status maps to no delivery status");
        return Ok(());
    };
    let date = [
        message.last_modified_time.as_deref(),
        message.creation_time.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find_map(time::parse)
    .or(sent_at);
    let code = message.error_code.or(message.delivery_error_code);
    let draft = Draft::new(ID, status, &status_name).dedup_fields(&[
        &id,
        &status_name,
        message.to.as_deref().unwrap_or(""),
        message.last_modified_time.as_deref().unwrap_or(""),
        code.as_deref().unwrap_or(""),
    ]);
    parsed.push(
        request,
        draft
            .external_id(id)
            .date(date)
            .recipient(message.to)
            .failure(failure)
            .code(code)
            .attempts(message.sms_sending_attempts_count)
            .row(row.get()),
    );
    Ok(())
}
