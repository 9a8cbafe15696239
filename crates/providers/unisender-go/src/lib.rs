//! Unisender Go: batches of transactional email status events, authenticated by an MD5 of the
//! body keyed with the API key.
//!
//! Docs: <https://godocs.unisender.ru/web-api-ref#callback-format> (format and `auth`).
//!
//! - Body: `{"auth", "events_by_user": [{"events": [{"event_name", "event_data"}]}]}`; in
//!   single-event mode `event_name` and `event_data` sit at the top level. Only
//!   `transactional_email_status` events are about a message; `transactional_spam_block`
//!   (a sending domain blocked) is ignored.
//! - Ids: `event_data.job_id` is the id the send API returned (`externalId`). The result id is
//!   the sender's own id from `event_data.metadata` (`id`, `novuMessageId` or `__nvMessageId`),
//!   else `job_id`, else (an event without either) the dedup key.
//! - `date`: `event_data.event_time`, `YYYY-MM-DD HH:MM:SS` in UTC without a zone; the receive
//!   time only when it is absent.
//! - Dedup: Unisender Go has no event id, so a hash of `job_id`, status, recipient, event time
//!   and clicked URL.
//! - Signature: the body field `auth` = hex MD5 of the raw body in which the `auth` value is
//!   replaced by the API key (the integration's signing key). No timestamp, so no replay window.

mod status;
mod wire;

use md5::{Digest, Md5};
use serde_json::value::RawValue;
use tidings_core::ids::OWN_ID_KEYS;
use tidings_core::signature::hex_matches;
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, json, non_empty, time,
};

use crate::wire::{Body, UnisenderEvent};

const ID: &str = "unisender-go";
const EMAIL_STATUS: &str = "transactional_email_status";

tidings_core::provider! {
    /// Unisender Go webhooks.
    pub struct UnisenderGo;
    id: ID,
    aliases: ["unisender"],
    channel: Email,
    signature: Signature::Keyed("md5-body-with-api-key"),
    media_types: [Json, Missing],
}

impl ProviderParser for UnisenderGo {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let body: Body<'_> =
            serde_json::from_slice(request.body).map_err(|_| Error::MalformedSignature("auth"))?;
        let auth = body.auth.ok_or(Error::MissingSignatureField("auth"))?;
        let (start, end) =
            auth_value_span(request.body, &auth).ok_or(Error::MalformedSignature("auth"))?;
        let (before, rest) = request.body.split_at(start);
        let after = rest.get(end - start..).unwrap_or_default();
        credentials.any_key_matches(|key| {
            let mut md5 = Md5::new();
            md5.update(before);
            md5.update(key.expose().as_bytes());
            md5.update(after);
            hex_matches(&md5.finalize(), &auth)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let body: Body<'_> = json::read_slice(ID, request.body)?;
        let rows: Vec<&RawValue> = match body.events_by_user {
            Some(users) => users.into_iter().flat_map(|user| user.events).collect(),
            None if body.event_name.is_some() => {
                vec![json::read_slice(ID, request.body)?]
            }
            None => return Err(Error::MissingField("events_by_user")),
        };
        let mut parsed = Parsed::default();
        // One event that names no type is ignored; the rest of the batch is kept.
        json::tolerant_rows(
            &rows,
            "event_name",
            "the event is none this parser can read",
            |event: &UnisenderEvent| event.event_name.is_some(),
            &mut parsed,
            |row, event, parsed| {
                normalize(request, row, event, parsed);
                Ok(())
            },
        )?;
        Ok(parsed)
    }
}

/// Where the `auth` value sits in the raw body: the byte span of `value` in
/// `"auth"<ws>:<ws>"value"`.
fn auth_value_span(body: &[u8], value: &str) -> Option<(usize, usize)> {
    const KEY: &[u8] = b"\"auth\"";
    let mut from = 0;
    while let Some(offset) = find(body.get(from..)?, KEY) {
        let mut at = from + offset + KEY.len();
        at = skip_whitespace(body, at);
        if body.get(at) == Some(&b':') {
            at = skip_whitespace(body, at + 1);
            let quoted_start = at + 1;
            let quoted_end = quoted_start + value.len();
            if body.get(at) == Some(&b'"')
                && body.get(quoted_start..quoted_end) == Some(value.as_bytes())
                && body.get(quoted_end) == Some(&b'"')
            {
                return Some((quoted_start, quoted_end));
            }
        }
        from = from + offset + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn skip_whitespace(body: &[u8], mut at: usize) -> usize {
    while body.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

fn normalize(request: &RawRequest<'_>, row: &str, event: UnisenderEvent, parsed: &mut Parsed) {
    let data = event.event_data.as_ref();
    let job_id = non_empty(data.and_then(|d| d.job_id.as_ref()).map(|id| id.as_str()));
    let own_id = data.and_then(|d| d.metadata.as_ref()).and_then(|meta| {
        OWN_ID_KEYS.iter().find_map(|key| match meta.get(*key) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    });
    let id = own_id.or(job_id.map(str::to_owned));
    let event_name = event.event_name.unwrap_or_default();
    if event_name != EMAIL_STATUS {
        parsed.ignore(
            event_name,
            id,
            "not about a message (a sending domain or account event)",
        );
        return;
    }
    let status_name = data.and_then(|d| d.status.as_deref()).unwrap_or("");
    let provider_event = format!("{EMAIL_STATUS}/{status_name}");
    let delivery = data.and_then(|d| d.delivery_info.as_ref());
    let delivery_status = non_empty(delivery.and_then(|d| d.delivery_status.as_deref()));
    let Some((status, failure)) = status::classify(status_name, delivery_status) else {
        parsed.ignore(provider_event, id, "event type maps to no delivery status");
        return;
    };
    let event_time = non_empty(data.and_then(|d| d.event_time.as_deref()));
    let recipient = non_empty(data.and_then(|d| d.email.as_deref())).map(str::to_owned);
    let draft = Draft::new(ID, status, provider_event).dedup_fields(&[
        job_id.or(id.as_deref()).unwrap_or(""),
        status_name,
        recipient.as_deref().unwrap_or(""),
        event_time.unwrap_or(""),
        data.and_then(|d| d.url.as_deref()).unwrap_or(""),
    ]);
    let response = non_empty(delivery.and_then(|d| d.destination_response.as_deref()));
    // A bounce or complaint without `job_id` still says something true about its recipient:
    // it is kept, reported under its dedup key (core's fallback).
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(job_id.map(str::to_owned))
            .date(event_time.and_then(time::parse))
            .recipient(recipient)
            .failure(failure)
            .code(
                delivery_status
                    .filter(|s| s.starts_with("err"))
                    .map(str::to_owned),
            )
            .response(response.map(str::to_owned))
            .row(row),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_auth_value_whatever_the_spacing() {
        let body = br#"{"events_by_user":[{"auth":"x"}], "auth" :  "abc123"}"#;
        let (start, end) = auth_value_span(body, "abc123").unwrap_or_default();
        assert_eq!(body.get(start..end), Some(&b"abc123"[..]));
        assert_eq!(auth_value_span(b"{\"auth\":\"abc\"}", "abd"), None);
        assert_eq!(auth_value_span(b"\"auth\"", "a"), None);
    }
}
