//! Twilio Programmable Messaging: per-message status callbacks, and the same statuses through an
//! Event Streams webhook sink.
//!
//! Docs: <https://www.twilio.com/docs/messaging/guides/track-outbound-message-status>,
//! <https://www.twilio.com/docs/usage/webhooks/webhooks-security> and
//! <https://www.twilio.com/docs/events/event-types/messaging/outbound-message>.
//!
//! - Body: a status callback is one message's fields, form-encoded (`MessageSid`,
//!   `MessageStatus`, `ErrorCode`, `To`, `RawDlrDoneDate`, ...; the legacy `SmsSid`/`SmsStatus`
//!   are read when the new names are absent). Event Streams posts a JSON array of CloudEvents
//!   (`com.twilio.messaging.message.<status>`, the fields camelCase under `data`).
//! - Ids: `MessageSid` is both the result id and `externalId`: Twilio carries no sender id back.
//! - `date`: status callbacks carry no event time. `RawDlrDoneDate` (the carrier's done date,
//!   `YYMMDDhhmm`, read as UTC; its zone varies by carrier) is used when present, else the
//!   receive time. Event Streams events use `data.timestamp`.
//! - Dedup: a hash of `MessageSid`, `MessageStatus` and `ErrorCode`, which the signature
//!   covers; Event Streams: the CloudEvent `id`. Not the `I-Twilio-Idempotency-Token` header:
//!   the signature does not cover it, so a replayed request with a new token would be stored
//!   again.
//! - Signature: `X-Twilio-Signature` = base64 HMAC-SHA1 keyed with the auth token over the URL
//!   Twilio called followed by every form field as `key + value`, keys sorted bytewise (the
//!   values of a repeated key sorted and de-duplicated). JSON bodies: Twilio appends
//!   `bodySHA256=<hex SHA-256 of the body>` to the URL and signs the URL alone; the hash is
//!   checked too. As Twilio's own libraries do, the URL is also tried with its port removed and
//!   with the scheme's default port (443, 80) added. No timestamp, so no replay window.

mod status;
mod wire;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tidings_core::signature::{base64_decode, base64_matches, hex_matches, hmac_sha1};
use tidings_core::{
    Credentials, Draft, Error, Form, MediaType, Parsed, ProviderParser, RawRequest, Result, json,
    time,
};

use crate::wire::{CloudEvent, StatusCallback};

const ID: &str = "twilio";
const SIGNATURE_HEADER: &str = "x-twilio-signature";
const MESSAGE_EVENT_PREFIX: &str = "com.twilio.messaging.message.";

tidings_core::provider! {
    /// Twilio Programmable Messaging status callbacks.
    pub struct Twilio;
    id: ID,
    channel: Sms,
    signature: Signature::Keyed("hmac-sha1-url"),
    media_types: [Json, Form, Missing],
    signs_url: true,
}

impl ProviderParser for Twilio {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader("X-Twilio-Signature"))?;
        if base64_decode(signature).is_none_or(|bytes| bytes.len() != 20) {
            return Err(Error::MalformedSignature("X-Twilio-Signature"));
        }
        let url = request.url.ok_or(Error::MissingUrl)?;
        let params = match query_param(url, "bodySHA256") {
            Some(hash) => {
                if !hex_matches(&Sha256::digest(request.body), &hash) {
                    return Err(Error::SignatureMismatch);
                }
                String::new()
            }
            None if is_json(request) => return Err(Error::MissingSignatureField("bodySHA256")),
            None => signed_params(&Form::urlencoded(request.body)),
        };
        let urls = url_variants(url);
        credentials.any_key_matches(|key| {
            urls.iter().any(|url| {
                let mac = hmac_sha1(
                    key.expose().as_bytes(),
                    &[url.as_bytes(), params.as_bytes()],
                );
                base64_matches(&mac, signature)
            })
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        match request.media_type() {
            MediaType::Form => parse_callback(request),
            MediaType::Json => parse_event_stream(request),
            MediaType::Missing if is_json(request) => parse_event_stream(request),
            MediaType::Missing => parse_callback(request),
            _ => Err(request.unsupported(ID)),
        }
    }
}

/// One status update, from either body shape.
struct Update<'a> {
    message_sid: &'a str,
    raw_status: &'a str,
    provider_event: String,
    /// The provider's own time, where it sends one.
    date: Option<chrono::DateTime<chrono::Utc>>,
    /// The Event Streams event id, stable across retries.
    dedup_id: Option<String>,
    /// Otherwise, the fields hashed for the dedup key.
    dedup_fields: Vec<String>,
    recipient: Option<&'a str>,
    code: Option<String>,
    response: Option<String>,
    row: String,
}

fn push(request: &RawRequest<'_>, update: Update<'_>, parsed: &mut Parsed) {
    let Some((status, failure)) = status::classify(update.raw_status, update.code.as_deref())
    else {
        let inbound = matches!(
            update.raw_status.to_ascii_lowercase().as_str(),
            "receiving" | "received"
        );
        let reason = if inbound {
            "an inbound message, not a delivery status"
        } else {
            "status maps to no delivery status"
        };
        parsed.ignore(
            update.provider_event,
            Some(update.message_sid.to_owned()),
            reason,
        );
        return;
    };
    let response = update.response.or_else(|| {
        update
            .raw_status
            .eq_ignore_ascii_case("canceled")
            .then(|| "canceled".to_owned())
    });
    let draft = Draft::new(ID, status, update.provider_event);
    let draft = match update.dedup_id {
        Some(id) => draft.dedup_id(id),
        None => draft.dedup_fields(&update.dedup_fields),
    };
    parsed.push(
        request,
        draft
            .external_id(update.message_sid.to_owned())
            .date(update.date)
            .recipient(update.recipient.map(str::to_owned))
            .failure(failure)
            .code(update.code)
            .response(response)
            .row(update.row),
    );
}

/// A form-encoded status callback: one message, one status.
fn parse_callback(request: &RawRequest<'_>) -> Result<Parsed> {
    let form = Form::urlencoded(request.body);
    let callback = StatusCallback::read(&form);
    let mut parsed = Parsed::default();
    let Some(message_sid) = callback.message_sid else {
        if let Some(call_sid) = callback.call_sid {
            parsed.ignore(
                "voice callback",
                Some(call_sid.to_owned()),
                "a voice call callback, not a message status",
            );
            return Ok(parsed);
        }
        return Err(Error::MissingField("MessageSid"));
    };
    let raw_status = callback
        .message_status
        .ok_or(Error::MissingField("MessageStatus"))?;
    let date = callback.raw_dlr_done_date.and_then(dlr_done_date);
    let dedup_fields = [
        message_sid,
        raw_status,
        callback.error_code.unwrap_or_default(),
    ];
    push(
        request,
        Update {
            message_sid,
            raw_status,
            provider_event: raw_status.to_owned(),
            date,
            dedup_id: None,
            dedup_fields: dedup_fields.map(str::to_owned).to_vec(),
            recipient: callback.to,
            code: callback.error_code.map(str::to_owned),
            response: callback
                .error_message
                .or(callback.channel_status_message)
                .map(str::to_owned),
            row: json::form_fields(&form),
        },
        &mut parsed,
    );
    Ok(parsed)
}

/// An Event Streams webhook sink delivery: a JSON array of CloudEvents (a bare one accepted).
fn parse_event_stream(request: &RawRequest<'_>) -> Result<Parsed> {
    let rows: Vec<&RawValue> = if json::is_object(request.body) {
        vec![json::read_slice(ID, request.body)?]
    } else {
        json::read_slice(ID, request.body)?
    };
    let mut parsed = Parsed::default();
    for row in rows {
        let event: CloudEvent = json::read(ID, row.get())?;
        let Some(suffix) = event.kind.strip_prefix(MESSAGE_EVENT_PREFIX) else {
            parsed.ignore(
                event.kind.clone(),
                event.data.as_ref().and_then(|d| d.message_sid.clone()),
                "not an outbound message status event",
            );
            continue;
        };
        let data = event.data.as_ref().ok_or(Error::MissingField("data"))?;
        let message_sid = data
            .message_sid
            .as_deref()
            .ok_or(Error::MissingField("data.messageSid"))?;
        let raw_status = data.message_status.as_deref().unwrap_or(suffix);
        let provider_date = data
            .timestamp
            .as_deref()
            .or(event.time.as_deref())
            .and_then(time::parse)
            .or_else(|| data.raw_dlr_done_date.as_deref().and_then(dlr_done_date));
        // Only the provider's own time goes into a dedup key: a retry arrives at another time.
        let provider_date_text = provider_date.map(|d| d.to_rfc3339()).unwrap_or_default();
        let code = data
            .error_code
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .filter(|c| !c.is_empty());
        let dedup_fields = [
            message_sid,
            raw_status,
            code.as_deref().unwrap_or_default(),
            &provider_date_text,
        ];
        push(
            request,
            Update {
                message_sid,
                raw_status,
                provider_event: event.kind.clone(),
                date: provider_date,
                dedup_id: event.id.clone().filter(|id| !id.is_empty()),
                dedup_fields: dedup_fields.map(str::to_owned).to_vec(),
                recipient: data.to.as_deref(),
                code,
                response: None,
                row: row.get().to_owned(),
            },
            &mut parsed,
        );
    }
    Ok(parsed)
}

/// `RawDlrDoneDate`: `YYMMDDhhmm`, minute precision, no zone (read as UTC).
fn dlr_done_date(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%y%m%d%H%M")
        .ok()
        .map(|naive| naive.and_utc())
}

fn is_json(request: &RawRequest<'_>) -> bool {
    match request.media_type() {
        MediaType::Json => true,
        MediaType::Missing => json::is_array(request.body) || json::is_object(request.body),
        _ => false,
    }
}

/// The decoded value of a query parameter of `url`.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The form fields as Twilio signs them: keys sorted bytewise, each followed by its values
/// sorted and de-duplicated, all concatenated as `key + value`.
fn signed_params(form: &Form<'_>) -> String {
    let mut fields: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (key, value) in form.iter() {
        fields.entry(key).or_default().insert(value);
    }
    let mut signed = String::new();
    for (key, values) in fields {
        for value in values {
            signed.push_str(key);
            signed.push_str(value);
        }
    }
    signed
}

/// The URL as given, without its port, and with the scheme's default port added (Twilio signs
/// with or without the port depending on the path the request took).
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at_checked(authority_end).unwrap_or((rest, ""));
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let (userinfo, host_port) = authority
        .split_at_checked(host_start)
        .unwrap_or(("", authority));
    let port_at = host_port
        .rfind(':')
        .filter(|&colon| !host_port.get(colon..).unwrap_or("").contains(']'));
    match port_at {
        Some(colon) => {
            let host = host_port.get(..colon).unwrap_or(host_port);
            variants.push(format!("{scheme}://{userinfo}{host}{tail}"));
        }
        None => {
            let port = match scheme.to_ascii_lowercase().as_str() {
                "https" => 443,
                "http" => 80,
                _ => return variants,
            };
            variants.push(format!("{scheme}://{userinfo}{host_port}:{port}{tail}"));
        }
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_variants_add_and_remove_ports() {
        assert_eq!(
            url_variants("https://h.example.com/p?a=1"),
            [
                "https://h.example.com/p?a=1",
                "https://h.example.com:443/p?a=1"
            ]
        );
        assert_eq!(
            url_variants("http://u:p@h.example.com:8080?a=1"),
            [
                "http://u:p@h.example.com:8080?a=1",
                "http://u:p@h.example.com?a=1"
            ]
        );
        assert_eq!(
            url_variants("https://[::1]/x"),
            ["https://[::1]/x", "https://[::1]:443/x"]
        );
        assert_eq!(url_variants("not a url"), ["not a url"]);
    }

    #[test]
    fn sdk_vector_with_repeated_keys() {
        let form =
            Form::urlencoded(b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234");
        let params = signed_params(&form);
        assert_eq!(params, "Digits1234Digits5678SidCA123SidAccountAC123");
        let mac = hmac_sha1(
            b"12345",
            &[
                b"https://mycompany.com/myapp.php?foo=1&bar=2",
                params.as_bytes(),
            ],
        );
        assert!(base64_matches(&mac, "IK+Dwps556ElfBT0I3Rgjkr1wJU="));
    }

    #[test]
    fn dlr_done_date_is_minutes_in_utc() {
        assert_eq!(
            dlr_done_date("2308102224").map(|d| d.to_rfc3339()),
            Some("2023-08-10T22:24:00+00:00".to_owned())
        );
        assert_eq!(dlr_done_date("23081022"), None);
    }
}
