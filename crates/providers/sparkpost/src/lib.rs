//! SparkPost (and Bird email, same format): batches of message, engagement, generation and
//! unsubscribe events.
//!
//! Docs: <https://developers.sparkpost.com/api/webhooks/> (event types and their fields) and the
//! bounce classes at <https://support.sparkpost.com/docs/deliverability/bounce-classification-codes>.
//!
//! - Body: a JSON array of `{"msys": {"<class>": {...}}}` wrappers, one event class each
//!   (`message_event`, `track_event`, `gen_event`, `unsubscribe_event`, `relay_event`, ...).
//!   `{"msys": {}}` is the ping sent when a webhook is created: it is ignored.
//! - Ids: `message_id` is SparkPost's per-message id (`externalId`, else `transmission_id`). The
//!   result id is the sender's own id from the recipient metadata `rcpt_meta` (`id`,
//!   `novuMessageId` or `__nvMessageId`), else `transmission_id` (the id the transmissions API
//!   returned to the sender), else `message_id`.
//! - `date`: `timestamp`, a string of Unix seconds (ISO 8601 in some events); the receive time
//!   only when it is absent.
//! - Dedup: `event_id`, stable across SparkPost's retries of a batch; where an event lacks it, a
//!   hash of the message id, class, type, recipient, timestamp and link.
//! - Signature: none. SparkPost authenticates with Basic auth or an OAuth 2 bearer token, so
//!   integrations use ApiKey or Basic auth.

mod status;
mod wire;

use tidings_core::{Draft, Parsed, ProviderParser, RawRequest, Result, json, non_empty, time};

use crate::wire::{Scalar, SparkPostEvent, Wrapper};
use tidings_core::ids::OWN_ID_KEYS;

const ID: &str = "sparkpost";

tidings_core::provider! {
    /// SparkPost event webhooks.
    pub struct SparkPost;
    id: ID,
    channel: Email,
    signature: Signature::None,
    media_types: [Json, Missing],
}

impl ProviderParser for SparkPost {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let mut parsed = Parsed::default();
        for row in json::rows(ID, request.body)? {
            let wrapper: Wrapper<'_> = json::read(ID, row.get())?;
            if wrapper.msys.is_empty() {
                parsed.ignore("msys (empty)", None, "webhook ping: carries no event");
            }
            for (class, event) in wrapper.msys {
                let event: SparkPostEvent = json::read(ID, event.get())?;
                normalize(request, row.get(), &class, event, &mut parsed);
            }
        }
        Ok(parsed)
    }
}

fn normalize(
    request: &RawRequest<'_>,
    row: &str,
    class: &str,
    event: SparkPostEvent,
    parsed: &mut Parsed,
) {
    let message_id = non_empty(event.message_id.as_ref().map(|id| id.as_str()));
    let transmission_id = non_empty(event.transmission_id.as_ref().map(|id| id.as_str()));
    let bounce_class = event.bounce_class.as_ref().and_then(Scalar::text);
    let provider_event = match bounce_class {
        Some(bc) if matches!(event.kind.as_str(), "bounce" | "out_of_band") => {
            format!("{class}.{} (bounce_class={bc})", event.kind)
        }
        _ => format!("{class}.{}", event.kind),
    };
    let own_id = event.rcpt_meta.as_ref().and_then(|meta| {
        OWN_ID_KEYS
            .iter()
            .find_map(|key| meta.get(*key).and_then(Scalar::text))
    });
    let id = own_id.or(transmission_id).or(message_id).map(str::to_owned);
    let Some((status, failure)) = status::classify(&event.kind, bounce_class) else {
        let reason = if class == "relay_event" {
            "inbound relay event: about no sent message"
        } else {
            "event type maps to no delivery status"
        };
        parsed.ignore(provider_event, id, reason);
        return;
    };
    let timestamp = event.timestamp.as_ref().and_then(Scalar::text);
    let recipient = non_empty(event.raw_rcpt_to.as_deref())
        .or(non_empty(event.rcpt_to.as_deref()))
        .map(str::to_owned);
    let draft = Draft::new(ID, status, provider_event);
    let draft = match event.event_id.as_ref().map(|e| e.as_str()) {
        Some(event_id) if !event_id.is_empty() => draft.dedup_id(event_id),
        _ => draft.dedup_fields(&[
            message_id
                .or(transmission_id)
                .or(id.as_deref())
                .unwrap_or(""),
            class,
            &event.kind,
            recipient.as_deref().unwrap_or(""),
            timestamp.unwrap_or(""),
            event.target_link_url.as_deref().unwrap_or(""),
        ]),
    };
    // An event with no id at all (SparkPost always sends one; trimmed test payloads do not) is
    // still reported and stored, under its dedup key (core's fallback): it can match no
    // message, but is not lost.
    let response = event
        .raw_reason
        .filter(|r| !r.is_empty())
        .or(event.reason.filter(|r| !r.is_empty()));
    let code = event.error_code.as_ref().and_then(Scalar::text);
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(message_id.or(transmission_id).map(str::to_owned))
            .date(timestamp.and_then(time::parse))
            .recipient(recipient)
            .failure(failure)
            .code(code.map(str::to_owned))
            .response(response)
            .row(row),
    );
}
