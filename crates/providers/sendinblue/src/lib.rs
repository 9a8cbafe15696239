//! Brevo (formerly Sendinblue) transactional email webhooks: flat JSON events, one per request
//! or a JSON array of them when the webhook was created with `batched: true`.
//!
//! Docs: <https://developers.brevo.com/docs/transactional-webhooks>.
//!
//! - Body: one JSON object, or an array of them. Inbound-parse payloads (`{"items": [...]}`) are
//!   ignored.
//! - Ids: `message-id` is the provider message id (the SMTP Message-ID the send API returned),
//!   without its angle brackets. The sender's own id travels in `X-Mailin-custom` (the header of
//!   that name given at send time): a JSON object's `id`, `novuMessageId` or `__nvMessageId`, or
//!   the whole value when it is a single id-like token (not `key=value` data). `id` is the
//!   webhook's id, not an event id: unused. An event with neither is kept, reported under its
//!   dedup key, when it names a recipient (`email`); with no recipient either it is ignored.
//! - `date`: `ts_epoch` (Unix milliseconds; seconds in some payloads, told apart by magnitude),
//!   else `s_epoch` (proxy opens), else `ts_event`/`ts` (Unix seconds), else `date`, which is in
//!   the account's time zone and is read as UTC for want of it; else the receive time.
//! - Dedup: Brevo sends no event id, so a hash of message id, event, recipient, event time and
//!   link.
//! - Signature: none. Brevo sends Basic credentials from the webhook URL, or a bearer token or
//!   custom headers: configure Basic auth or an ApiKey header on the integration.

mod status;
mod wire;

use tidings_core::{
    Draft, Error, Parsed, ProviderParser, RawRequest, Result, Status, ids, json, time,
};

use crate::wire::WireEvent;
use tidings_core::json::Scalar;

const ID: &str = "sendinblue";

tidings_core::provider! {
    /// Brevo transactional webhooks.
    pub struct Sendinblue;
    id: ID,
    aliases: ["brevo"],
    channel: Email,
    signature: Signature::None,
    media_types: [Json, Missing],
}

impl ProviderParser for Sendinblue {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        json::batch(ID, request.body, |row, event: WireEvent, parsed| {
            normalize(request, row, event, parsed)
        })
    }
}

fn normalize(
    request: &RawRequest<'_>,
    row: &str,
    event: WireEvent,
    parsed: &mut Parsed,
) -> Result<()> {
    let external_id = event
        .message_id
        .as_ref()
        .and_then(Scalar::text)
        .map(str::to_owned)
        .map(|id| ids::strip_angle_brackets(&id).to_owned())
        .filter(|id| !id.is_empty());
    let Some(name) = event.event.as_deref() else {
        if event.items.is_some() {
            parsed.ignore(
                "inbound",
                None,
                "an inbound-parse payload, not a tracking event",
            );
            return Ok(());
        }
        return Err(Error::MissingField("event"));
    };
    let own_id = event
        .custom
        .as_ref()
        .and_then(Scalar::text)
        .map(str::to_owned)
        .and_then(|custom| ids::own_id_in_text(&custom));
    let id = own_id.or_else(|| external_id.clone());
    let recipient = event
        .email
        .as_deref()
        .filter(|e| !e.trim().is_empty())
        .map(str::to_owned);
    if id.is_none() && recipient.is_none() {
        parsed.ignore(
            name,
            None,
            "the event carries no message-id and no recipient",
        );
        return Ok(());
    }
    let Some((status, failure)) = status::classify(name) else {
        parsed.ignore(name, id, "event type maps to no delivery status");
        return Ok(());
    };
    let (date, time_text) = event_time(&event);
    let draft = Draft::new(ID, status, name).dedup_fields(&[
        external_id.as_deref().or(id.as_deref()).unwrap_or(""),
        name,
        recipient.as_deref().unwrap_or(""),
        &time_text,
        event.link.as_deref().unwrap_or(""),
    ]);
    let response = event
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    // Without a message-id the event is kept all the same, reported under its dedup key: it
    // still says something true about its recipient.
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(external_id)
            .date(date)
            .recipient(recipient)
            .failure(failure)
            .response(response)
            .automated((status == Status::Opened).then(|| status::is_proxy_open(name)))
            .row(row),
    );
    Ok(())
}

/// The event time and its text as sent (for the dedup key), from the most precise field present.
fn event_time(event: &WireEvent) -> (Option<chrono::DateTime<chrono::Utc>>, String) {
    for epoch in [&event.ts_epoch, &event.s_epoch] {
        if let Some(value) = epoch.as_ref().and_then(Scalar::as_i64) {
            return (time::from_unix_auto(value), value.to_string());
        }
    }
    for seconds in [&event.ts_event, &event.ts] {
        if let Some(value) = seconds.as_ref().and_then(Scalar::as_i64) {
            return (time::from_unix_seconds(value), value.to_string());
        }
    }
    match event.date.as_deref() {
        Some(date) => (time::parse(date), date.to_owned()),
        None => (None, String::new()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sender_id_from_x_mailin_custom() {
        assert_eq!(
            tidings_core::ids::own_id_in_text(r#"{"id": "abc", "meta": 1}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(
            tidings_core::ids::own_id_in_text(r#"{"novuMessageId": 42}"#).as_deref(),
            Some("42")
        );
        assert_eq!(
            tidings_core::ids::own_id_in_text(r#"{"meta": "data"}"#),
            None
        );
        assert_eq!(
            tidings_core::ids::own_id_in_text("plain-id-1").as_deref(),
            Some("plain-id-1")
        );
        assert_eq!(tidings_core::ids::own_id_in_text("[1]"), None);
        assert_eq!(
            tidings_core::ids::own_id_in_text("campaign=spring; user=4"),
            None
        );
    }
}
