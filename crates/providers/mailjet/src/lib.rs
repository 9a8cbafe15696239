//! Mailjet's Event API (event tracking webhooks): flat JSON events, a JSON array when "group
//! events" is on for the callback URL, else one bare object per request.
//!
//! Docs: <https://dev.mailjet.com/email/guides/webhooks/>.
//!
//! - Body: a JSON array of events, or one object.
//! - Ids: `MessageID` is the provider message id, a 64-bit integer kept as exact text
//!   (`mj_message_id`, its deprecated string copy, when it is missing). The sender's own id is
//!   `CustomID` (`Messages[].CustomID` at send time), else `Payload` (`Messages[].EventPayload`):
//!   a JSON object's `id`, `novuMessageId` or `__nvMessageId`, or the whole value when it is a
//!   single id-like token. An event with neither (`MessageID` missing or `0`) is reported under
//!   its dedup key.
//! - `date`: `time`, Unix seconds; the receive time when it is missing.
//! - Dedup: Mailjet sends no event id, so a hash of message id, event, recipient, time and URL.
//! - Signature: none. Mailjet sends Basic credentials embedded in the callback URL: configure
//!   Basic auth or an ApiKey header on the integration.

mod status;
mod wire;

use tidings_core::{Draft, Error, Parsed, ProviderParser, RawRequest, Result, ids, json, time};

use crate::wire::WireEvent;
use tidings_core::json::Scalar;

const ID: &str = "mailjet";

tidings_core::provider! {
    /// Mailjet event tracking webhooks.
    pub struct Mailjet;
    id: ID,
    channel: Email,
    signature: Signature::None,
    media_types: [Json, Missing],
}

impl ProviderParser for Mailjet {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let mut parsed = Parsed::default();
        let rows = json::rows(ID, request.body)?;
        // One row that names no event is ignored; the rest of the batch is kept.
        json::tolerant_rows(
            &rows,
            "event",
            "the row is no event this parser can read",
            |event: &WireEvent| event.event.is_some(),
            &mut parsed,
            |row, event, parsed| normalize(request, row, event, parsed),
        )?;
        Ok(parsed)
    }
}

fn normalize(
    request: &RawRequest<'_>,
    row: &str,
    event: WireEvent,
    parsed: &mut Parsed,
) -> Result<()> {
    let name = event.event.as_deref().ok_or(Error::MissingField("event"))?;
    let external_id = event
        .message_id
        .as_ref()
        .or(event.mj_message_id.as_ref())
        .map(|id| id.as_str().trim().to_owned())
        .filter(|id| !id.is_empty() && id != "0");
    let own_id = event
        .custom_id
        .as_ref()
        .and_then(Scalar::text)
        .map(str::to_owned)
        .or_else(|| {
            event
                .payload
                .as_ref()
                .and_then(Scalar::text)
                .map(str::to_owned)
                .and_then(|payload| ids::own_id_in_text(&payload))
        });
    let id = own_id.or_else(|| external_id.clone());
    let hard_bounce = event.hard_bounce.as_ref().is_some_and(Scalar::flagged);
    let Some((status, failure)) = status::classify(name, hard_bounce) else {
        parsed.ignore(name, id, "event type maps to no delivery status");
        return Ok(());
    };
    let seconds = event.time.as_ref().and_then(Scalar::as_i64);
    let recipient = event.email.filter(|e| !e.trim().is_empty());
    let provider_event = match name {
        "bounce" => format!("bounce (hard_bounce={hard_bounce})"),
        other => other.to_owned(),
    };
    let response = [&event.comment, &event.smtp_reply, &event.error]
        .into_iter()
        .flatten()
        .map(|text| text.trim())
        .find(|text| !text.is_empty())
        .map(str::to_owned);
    let code = match (event.error_related_to.as_deref(), event.error.as_deref()) {
        (_, None | Some("")) => event.source.filter(|s| !s.is_empty()),
        (Some(related), Some(error)) if !related.is_empty() => Some(format!("{related}: {error}")),
        (_, Some(error)) => Some(error.to_owned()),
    };
    let draft = Draft::new(ID, status, provider_event).dedup_fields(&[
        external_id.as_deref().or(id.as_deref()).unwrap_or(""),
        name,
        recipient.as_deref().unwrap_or(""),
        &seconds.map(|s| s.to_string()).unwrap_or_default(),
        event.url.as_deref().unwrap_or(""),
    ]);
    // An event without a MessageID (or with `0`) still says something true about its recipient
    // (a bounce, a complaint): it is kept, reported under its dedup key (core's fallback).
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(external_id)
            .date(seconds.and_then(time::from_unix_seconds))
            .recipient(recipient)
            .failure(failure)
            .code(code)
            .response(response)
            .row(row),
    );
    Ok(())
}
