//! Mailtrap Email Sending: batches of delivery and engagement events.
//!
//! Docs: <https://docs.mailtrap.io/email-api-smtp/advanced/webhooks> and
//! <https://help.mailtrap.io/article/102-webhooks>.
//!
//! - Body: in the JSON payload format `{"events": [...]}`; in the JSON Lines format one event
//!   object per line. Each event is flat (`event`, `message_id`, `event_id`, `email`,
//!   `timestamp`, ...).
//! - Ids: `message_id` is Mailtrap's message id (`externalId`; the send API returns it). The
//!   result id is the sender's own id from `custom_variables` (`id`, `novuMessageId` or
//!   `__nvMessageId`), else `message_id`. An event with neither is kept, reported under its
//!   dedup key, when it names a recipient (`email`); with no recipient either it is ignored.
//! - `date`: `timestamp`, Unix seconds; the receive time only when it is absent.
//! - Dedup: `event_id`, unique per event and stable across retries (with the event name, so two
//!   events never share a key); a hash of message id, event, recipient and time when it is absent.
//! - Signature: none; Mailtrap webhooks authenticate with Basic auth in the URL, so integrations
//!   use ApiKey or Basic auth.

mod status;
mod wire;

use serde_json::value::RawValue;
use tidings_core::ids::OWN_ID_KEYS;
use tidings_core::{
    Draft, Error, MediaType, Parsed, ProviderParser, RawRequest, Result, json, non_empty, time,
};

use crate::wire::{Batch, MailtrapEvent};

const ID: &str = "mailtrap";

tidings_core::provider! {
    /// Mailtrap webhooks.
    pub struct Mailtrap;
    id: ID,
    channel: Email,
    signature: Signature::None,
    media_types: [Json, JsonLines, Text, Missing],
}

impl ProviderParser for Mailtrap {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let json_lines = request.media_type() == MediaType::JsonLines;
        let mut parsed = Parsed::default();
        for row in rows(request.body, json_lines)? {
            let event: MailtrapEvent = json::read(ID, row.get())?;
            normalize(request, row.get(), event, &mut parsed);
        }
        Ok(parsed)
    }
}

/// The events of a request: the `events` array of a JSON payload, or the lines of a JSON Lines
/// payload (also recognized by its shape when the content type does not say).
fn rows(body: &[u8], json_lines: bool) -> Result<Vec<&RawValue>> {
    let batch_error = match serde_json::from_slice::<Batch<'_>>(body) {
        Ok(batch) => return Ok(batch.events),
        Err(err) => err,
    };
    let text = std::str::from_utf8(body).map_err(|_| Error::malformed(ID, "body is not UTF-8"))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines
        .into_iter()
        .map(|line| {
            serde_json::from_str::<&RawValue>(line).map_err(|e| {
                // A body that is neither: report it as the JSON payload it claimed to be.
                Error::json(ID, if json_lines { &e } else { &batch_error })
            })
        })
        .collect()
}

fn normalize(request: &RawRequest<'_>, row: &str, event: MailtrapEvent, parsed: &mut Parsed) {
    let message_id = non_empty(event.message_id.as_ref().map(|id| id.as_str()));
    let own_id = event.custom_variables.as_ref().and_then(|vars| {
        OWN_ID_KEYS.iter().find_map(|key| match vars.get(*key) {
            Some(serde_json::Value::String(s)) => non_empty(Some(s)).map(str::to_owned),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    });
    let id = own_id.or(message_id.map(str::to_owned));
    let Some((status, failure)) = status::classify(&event.event) else {
        parsed.ignore(event.event, id, "event type maps to no delivery status");
        return;
    };
    let recipient = non_empty(event.email.as_deref()).map(str::to_owned);
    if id.is_none() && recipient.is_none() {
        parsed.ignore(
            event.event,
            None,
            "the event carries no message id and no recipient",
        );
        return;
    }
    let timestamp = wire::timestamp_text(event.timestamp.as_ref());
    let provider_event = match non_empty(event.bounce_category.as_deref()) {
        Some(category) => format!("{} (bounce_category={category})", event.event),
        None => event.event.clone(),
    };
    let draft = Draft::new(ID, status, provider_event);
    let draft = match non_empty(event.event_id.as_ref().map(|e| e.as_str())) {
        Some(event_id) => draft.dedup_id(format!("{event_id}:{}", event.event)),
        None => draft.dedup_fields(&[
            message_id.or(id.as_deref()).unwrap_or(""),
            &event.event,
            recipient.as_deref().unwrap_or(""),
            timestamp.as_deref().unwrap_or(""),
            event.url.as_deref().unwrap_or(""),
        ]),
    };
    let response = non_empty(event.response.as_deref()).or(non_empty(event.reason.as_deref()));
    let code = non_empty(event.response_code.as_ref().map(|c| c.as_str()));
    // Without a message id the event is kept all the same, reported under its dedup key: it
    // still says something true about its recipient.
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(message_id.map(str::to_owned))
            .date(timestamp.as_deref().and_then(time::parse))
            .recipient(recipient)
            .failure(failure)
            .code(code.map(str::to_owned))
            .response(response.map(str::to_owned))
            .row(row),
    );
}
