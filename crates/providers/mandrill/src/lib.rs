//! Mandrill (Mailchimp Transactional): batches of message events in one form field, signed with
//! HMAC-SHA1 over the webhook URL and the form fields.
//!
//! Docs: <https://mailchimp.com/developer/transactional/guides/track-respond-activity-webhooks/>
//! and <https://mailchimp.com/developer/transactional/guides/authenticate-webhook-requests/>.
//!
//! - Body: `application/x-www-form-urlencoded` with one field, `mandrill_events`, a JSON array
//!   of events. Message events have `event`; sync events (`type` `whitelist`/`blacklist`) and
//!   inbound messages are ignored.
//! - Ids: `_id` is Mandrill's message id (`externalId`; `messages/send` returns it). The result id
//!   is the sender's own id from `msg.metadata` (`id`, `novuMessageId` or `__nvMessageId`), else
//!   `_id`. An event with neither (no `_id` nor `msg._id`) is kept, reported under its dedup
//!   key, when it names a recipient (`msg.email`); with no recipient either it is ignored.
//! - `date`: `ts`, Unix seconds (the event time; `msg.ts` is the send time); the receive time
//!   only when it is absent.
//! - Dedup: Mandrill has no event id, so a hash of `_id`, event, recipient, `ts` and clicked URL.
//! - Signature: `X-Mandrill-Signature` = base64 HMAC-SHA1(webhook key, webhook URL followed by
//!   every POST field's key and value, sorted by key). The URL is the public URL Mandrill called,
//!   exactly as registered. No timestamp, so no replay window.

mod status;
mod wire;

use serde_json::value::RawValue;
use tidings_core::ids::OWN_ID_KEYS;
use tidings_core::signature::{base64_matches, hmac_sha1};
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, json, non_empty, time,
};

use crate::wire::{MandrillEvent, Scalar};

const ID: &str = "mandrill";
const SIGNATURE_HEADER: &str = "x-mandrill-signature";
const EVENTS_FIELD: &str = "mandrill_events";

tidings_core::provider! {
    /// Mandrill webhooks.
    pub struct Mandrill;
    id: ID,
    aliases: ["mailchimp-transactional"],
    channel: Email,
    signature: Signature::Keyed("hmac-sha1-url-fields"),
    media_types: [Form, Multipart],
    signs_url: true,
}

impl ProviderParser for Mandrill {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader("X-Mandrill-Signature"))?;
        let url = request.url.ok_or(Error::MissingUrl)?;
        let form = request.form()?;
        let mut fields: Vec<(&str, &str)> = form.iter().collect();
        // A stable sort by key, as Mandrill's reference code (PHP `ksort`) does.
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let mut signed = Vec::with_capacity(url.len() + request.body.len());
        signed.extend_from_slice(url.as_bytes());
        for (key, value) in fields {
            signed.extend_from_slice(key.as_bytes());
            signed.extend_from_slice(value.as_bytes());
        }
        credentials.any_key_matches(|key| {
            base64_matches(&hmac_sha1(key.expose().as_bytes(), &[&signed]), signature)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let form = request.form()?;
        let events = form
            .first(EVENTS_FIELD)
            .ok_or(Error::MissingField(EVENTS_FIELD))?;
        let rows: Vec<&RawValue> = json::read(ID, events)?;
        let mut parsed = Parsed::default();
        for row in rows {
            let event: MandrillEvent = json::read(ID, row.get())?;
            normalize(request, row.get(), event, &mut parsed);
        }
        Ok(parsed)
    }
}

fn normalize(request: &RawRequest<'_>, row: &str, event: MandrillEvent, parsed: &mut Parsed) {
    let msg = event.msg.as_ref();
    let message_id = non_empty(event.id.as_ref().map(|id| id.as_str()))
        .or_else(|| non_empty(msg.and_then(|m| m.id.as_ref()).map(|id| id.as_str())));
    let own_id = msg.and_then(|m| m.metadata.as_ref()).and_then(|meta| {
        OWN_ID_KEYS
            .iter()
            .find_map(|key| meta.get(*key).and_then(Scalar::text))
    });
    let id = own_id.or(message_id).map(str::to_owned);
    let Some(name) = event.event.as_deref() else {
        // A sync event: an address added to or removed from the rejection or allow list.
        let kind = event.kind.as_deref().unwrap_or("unknown");
        let provider_event = match event.action.as_deref() {
            Some(action) => format!("{kind} ({action})"),
            None => kind.to_owned(),
        };
        parsed.ignore(
            provider_event,
            id,
            "sync event: a rejection or allow list change, about no message",
        );
        return;
    };
    let Some((status, failure)) = status::classify(name) else {
        let reason = if name == "inbound" {
            "inbound message: about no sent message"
        } else {
            "event type maps to no delivery status"
        };
        parsed.ignore(name, id, reason);
        return;
    };
    let recipient = non_empty(msg.and_then(|m| m.email.as_deref())).map(str::to_owned);
    if id.is_none() && recipient.is_none() {
        parsed.ignore(
            name,
            None,
            "the event carries no message id and no recipient",
        );
        return;
    }
    let ts = event.ts.as_ref().and_then(Scalar::text);
    let draft = Draft::new(ID, status, name).dedup_fields(&[
        message_id.or(id.as_deref()).unwrap_or(""),
        name,
        recipient.as_deref().unwrap_or(""),
        ts.unwrap_or(""),
        event.url.as_deref().unwrap_or(""),
    ]);
    let response = msg.and_then(|m| {
        non_empty(m.diag.as_deref())
            .or_else(|| {
                m.smtp_events
                    .iter()
                    .rev()
                    .find_map(|s| non_empty(s.diag.as_deref()))
            })
            .map(str::to_owned)
    });
    let code = msg.and_then(|m| {
        non_empty(m.bounce_description.as_deref())
            .or_else(|| m.bgtools_code.as_ref().and_then(Scalar::text))
            .map(str::to_owned)
    });
    // Without a message id the event is kept all the same, reported under its dedup key: it
    // still says something true about its recipient.
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(message_id.map(str::to_owned))
            .date(ts.and_then(time::parse))
            .recipient(recipient)
            .failure(failure)
            .code(code)
            .response(response)
            .row(row),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request<'a>(headers: &'a http::HeaderMap, url: Option<&'a str>) -> RawRequest<'a> {
        RawRequest {
            method: "POST",
            body: b"mandrill_events=%5B%5D",
            content_type: Some("application/x-www-form-urlencoded"),
            headers,
            url,
            received_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn signs_the_url_and_sorted_fields() {
        let url = "https://hooks.example.com/mandrill";
        let signature = tidings_core::signature::base64_encode(&hmac_sha1(
            b"k",
            &[url.as_bytes(), b"mandrill_events[]"],
        ));
        let mut headers = http::HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        let keys = [tidings_core::Secret::new("k")];
        let (options, fetched) = (Default::default(), Default::default());
        let credentials = Credentials {
            signing_keys: &keys,
            options: &options,
            fetched: &fetched,
            freshness: Default::default(),
        };
        assert_eq!(
            Mandrill.verify(&request(&headers, Some(url)), &credentials),
            Ok(())
        );
        assert_eq!(
            Mandrill.verify(
                &request(&headers, Some("https://hooks.example.com/other")),
                &credentials
            ),
            Err(Error::SignatureMismatch)
        );
        assert_eq!(
            Mandrill.verify(&request(&headers, None), &credentials),
            Err(Error::MissingUrl)
        );
        let empty = http::HeaderMap::new();
        assert_eq!(
            Mandrill.verify(&request(&empty, Some(url)), &credentials),
            Err(Error::MissingHeader("X-Mandrill-Signature"))
        );
    }
}
