//! Plivo: message status callbacks for SMS, MMS and WhatsApp.
//!
//! Docs: <https://www.plivo.com/docs/messaging/api/message/message-status-callbacks> and
//! <https://www.plivo.com/docs/messaging/concepts/signature-validation>.
//!
//! - Body: one message's fields, form-encoded on `POST` (PascalCase: `MessageUUID`, `Status`,
//!   `ErrorCode`, `To`, `Sequence`, `QueuedTime`, `SentTime`, `DeliveryReportTime`, ...); on
//!   `GET` callbacks the same fields are the URL's query parameters.
//! - Ids: `MessageUUID` is both the result id and `externalId` (Plivo carries no sender id).
//! - `date`: the time field of the status (`DeliveryReportTime` for delivered, undelivered and
//!   read, `SentTime` for sent, `QueuedTime` for queued), else the latest of them, else the
//!   receive time. Plivo writes them as `YYYY-MM-DD HH:MM:SS.ffffff` without a zone: read as UTC.
//! - Dedup: a hash of `MessageUUID`, `Status`, `Sequence` (Plivo's order of this message's
//!   callbacks) and `ErrorCode`.
//! - Signature V3: `X-Plivo-Signature-V3` (sub-account auth token) or `X-Plivo-Signature-Ma-V3`
//!   (main account token), each possibly several comma-separated signatures, = base64
//!   HMAC-SHA256 over `base + "." + X-Plivo-Signature-V3-Nonce`. `base` is the URL without its
//!   query; then `?` and the URL's query parameters sorted as `k=v` joined by `&`; for a `POST`
//!   with fields, a `.` after a non-empty query and every field as `key + value`, keys sorted
//!   (so a `POST` to a URL without a query signs `https://host/path?Field1value1...`). No
//!   timestamp: the nonce is not a replay window.
//! - Signature V2 (`X-Plivo-Signature-V2`, `-V2-Nonce`: HMAC-SHA256 over the URL without its
//!   query, then the nonce) signs neither the body nor the time, so it is only accepted when
//!   the integration sets the option `accept_signature_v2 = "true"` and the request has no V3
//!   signature.

mod status;
mod wire;

use std::collections::BTreeMap;

use tidings_core::signature::{base64_matches, hmac_sha256};
use tidings_core::{
    Credentials, Draft, Error, Form, MediaType, Parsed, ProviderParser, RawRequest, Result, json,
    time,
};

use crate::wire::StatusCallback;

const ID: &str = "plivo";
const V3_HEADERS: [&str; 2] = ["x-plivo-signature-v3", "x-plivo-signature-ma-v3"];
const V3_NONCE: &str = "x-plivo-signature-v3-nonce";
const V2_HEADERS: [&str; 2] = ["x-plivo-signature-v2", "x-plivo-signature-ma-v2"];
const V2_NONCE: &str = "x-plivo-signature-v2-nonce";
/// The integration option that allows V2 signatures, which do not sign the body.
const ACCEPT_V2_OPTION: &str = "accept_signature_v2";

tidings_core::provider! {
    /// Plivo message status callbacks.
    pub struct Plivo;
    id: ID,
    channel: Sms,
    signature: Signature::Keyed("hmac-sha256-v3"),
    media_types: [Form, Missing],
    // A message sent with `method=GET` gets its status callbacks as `GET` requests.
    accepts_get: true,
    signs_url: true,
    options: [ACCEPT_V2_OPTION],
}

impl ProviderParser for Plivo {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let v3: Vec<&str> = V3_HEADERS
            .iter()
            .filter_map(|h| request.header(h))
            .collect();
        let v2: Vec<&str> = V2_HEADERS
            .iter()
            .filter_map(|h| request.header(h))
            .collect();
        let accept_v2 = credentials
            .option(ACCEPT_V2_OPTION)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let (signatures, message) = if !v3.is_empty() {
            let nonce = request
                .header(V3_NONCE)
                .ok_or(Error::MissingHeader("X-Plivo-Signature-V3-Nonce"))?;
            let url = request.url.ok_or(Error::MissingUrl)?;
            let mut message = v3_base(url, &post_fields(request));
            message.push('.');
            message.push_str(nonce);
            (v3, message)
        } else if accept_v2 && !v2.is_empty() {
            let nonce = request
                .header(V2_NONCE)
                .ok_or(Error::MissingHeader("X-Plivo-Signature-V2-Nonce"))?;
            let url = request.url.ok_or(Error::MissingUrl)?;
            (v2, format!("{}{nonce}", without_query(url)))
        } else {
            return Err(Error::MissingHeader("X-Plivo-Signature-V3"));
        };
        credentials.any_key_matches(|key| {
            let mac = hmac_sha256(key.expose().as_bytes(), &[message.as_bytes()]);
            signatures
                .iter()
                .flat_map(|header| header.split(','))
                .any(|given| base64_matches(&mac, given))
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let form = match request.media_type() {
            MediaType::Form if !request.body.is_empty() => Form::urlencoded(request.body),
            // Without `Content-Type: application/x-www-form-urlencoded` the V3 signature covers
            // only the URL: a body there is not read, so no unsigned field can become an event.
            MediaType::Missing if !request.body.is_empty() => {
                return Err(request.unsupported(ID));
            }
            // A `GET` callback: the fields are the URL's query parameters.
            MediaType::Form | MediaType::Missing => Form::urlencoded(request.query().as_bytes()),
            _ => return Err(request.unsupported(ID)),
        };
        let callback = StatusCallback::read(&form);
        let message_uuid = callback
            .message_uuid
            .ok_or(Error::MissingField("MessageUUID"))?;
        let raw_status = callback.status.ok_or(Error::MissingField("Status"))?;
        let mut parsed = Parsed::default();
        let Some((status, failure)) = status::classify(raw_status, callback.error_code) else {
            parsed.ignore(
                raw_status,
                Some(message_uuid.to_owned()),
                "status maps to no delivery status",
            );
            return Ok(parsed);
        };
        let draft = Draft::new(ID, status, raw_status).dedup_fields(&[
            message_uuid,
            raw_status,
            callback.sequence.unwrap_or_default(),
            callback.error_code.unwrap_or_default(),
        ]);
        parsed.push(
            request,
            draft
                .external_id(message_uuid.to_owned())
                .date(event_time(&callback, raw_status))
                .recipient(callback.to.map(str::to_owned))
                .failure(failure)
                .code(callback.error_code.map(str::to_owned))
                .row(json::form_fields(&form)),
        );
        Ok(parsed)
    }
}

/// The time field that belongs to the status, else the latest time the callback carries.
fn event_time(
    callback: &StatusCallback<'_>,
    raw_status: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let own = match raw_status.to_ascii_lowercase().as_str() {
        "delivered" | "undelivered" | "read" => callback.delivery_report_time,
        "sent" => callback.sent_time,
        "queued" => callback.queued_time,
        _ => None,
    };
    own.and_then(time::parse).or_else(|| {
        [
            callback.delivery_report_time,
            callback.sent_time,
            callback.queued_time,
        ]
        .into_iter()
        .flatten()
        .filter_map(time::parse)
        .max()
    })
}

/// The signed form fields of a `POST` (none for a `GET`, whose fields are in the URL).
fn post_fields(request: &RawRequest<'_>) -> BTreeMap<String, Vec<String>> {
    if request.media_type() != MediaType::Form {
        return BTreeMap::new();
    }
    sorted_fields(form_urlencoded::parse(request.body))
}

fn sorted_fields<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> BTreeMap<String, Vec<String>> {
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in pairs {
        fields
            .entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    for values in fields.values_mut() {
        values.sort();
    }
    fields
}

/// The URL without query and fragment.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The V3 signed base: the URL without its query, `?` and the sorted query as `k=v&k=v`, then
/// for a `POST` with fields a `.` (only after a non-empty query) and the fields as `key+value`.
fn v3_base(url: &str, post: &BTreeMap<String, Vec<String>>) -> String {
    let query = url
        .split('#')
        .next()
        .and_then(|u| u.split_once('?'))
        .map_or("", |(_, q)| q);
    let query = sorted_fields(form_urlencoded::parse(query.as_bytes()));
    let query: Vec<String> = query
        .iter()
        .flat_map(|(k, values)| values.iter().map(move |v| format!("{k}={v}")))
        .collect();
    let query = query.join("&");
    let mut base = without_query(url).to_owned();
    if post.is_empty() {
        if !query.is_empty() {
            base.push('?');
            base.push_str(&query);
        }
        return base;
    }
    base.push('?');
    base.push_str(&query);
    if !query.is_empty() {
        base.push('.');
    }
    for (key, values) in post {
        for value in values {
            base.push_str(key);
            base.push_str(value);
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        sorted_fields(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())))
    }

    #[test]
    fn v3_base_follows_plivos_rules() {
        let post = fields(&[("To", "1"), ("From", "2"), ("To", "0")]);
        assert_eq!(
            v3_base("https://h.example.com/p", &post),
            "https://h.example.com/p?From2To0To1"
        );
        assert_eq!(
            v3_base("https://h.example.com/p?b=2&a=1#f", &post),
            "https://h.example.com/p?a=1&b=2.From2To0To1"
        );
        assert_eq!(
            v3_base("https://h.example.com/p?b=2&a=1", &BTreeMap::new()),
            "https://h.example.com/p?a=1&b=2"
        );
        assert_eq!(
            v3_base("https://h.example.com/p", &BTreeMap::new()),
            "https://h.example.com/p"
        );
    }

    #[test]
    fn a_body_the_signature_does_not_cover_is_not_read() {
        let headers = Default::default();
        let body = b"MessageUUID=forged&Status=delivered&To=1";
        let request = |content_type| RawRequest {
            method: "POST",
            body,
            content_type,
            headers: &headers,
            url: Some("https://h.example.com/p?MessageUUID=m1&Status=sent"),
            received_at: chrono::DateTime::UNIX_EPOCH,
        };
        // No Content-Type: the V3 signature covers only the URL, so the body is refused.
        let error = Plivo.parse(&request(None)).map(|p| p.events.len());
        assert!(
            matches!(error, Err(Error::UnsupportedMediaType { .. })),
            "{error:?}"
        );
        // As a form, the body is signed and read.
        let parsed = Plivo
            .parse(&request(Some("application/x-www-form-urlencoded")))
            .map_err(|e| e.to_string());
        assert_eq!(
            parsed.map(|p| p.events.first().map(|e| e.id.clone())),
            Ok(Some("forged".to_owned()))
        );
    }

    #[test]
    fn v2_sdk_vector() {
        let mac = hmac_sha256(b"my_auth_token", &[b"https://answer.url12345"]);
        assert!(base64_matches(
            &mac,
            "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
        ));
        assert_eq!(
            without_query("https://answer.url?x=1"),
            "https://answer.url"
        );
    }
}
