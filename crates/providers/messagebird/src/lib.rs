//! MessageBird (Bird) SMS status reports: one report per message, recipient and status change,
//! sent for messages that carry a `reference`, signed with a `MessageBird-Signature-JWT`.
//!
//! Docs: <https://developers.messagebird.com/api/sms-messaging/#handle-a-status-report> and
//! <https://developers.messagebird.com/docs/verify-http-requests>.
//!
//! - Body: MessageBird calls the status report URL with `GET` and the fields in the query
//!   string (`id`, `reference`, `recipient`, `status`, `statusDatetime`, `statusReason`,
//!   `statusErrorCode`, `mccmnc`, `ported`, `price[amount]`, `messagePartCount`). An empty body
//!   is read from the request URL's query; the same fields are accepted as a form body, a
//!   `text/plain` query string, or a flat JSON object when a relay posts them on.
//! - Ids: `id` is the provider message id; `reference`, the sender's own value, is the result
//!   id when present.
//! - `date`: `statusDatetime` (RFC 3339); the receive time only when it is absent.
//! - Dedup: no event id, so the key hashes `id`, `status`, `recipient`, `statusDatetime` and
//!   `statusErrorCode`.
//! - Signature: `MessageBird-Signature-JWT`, an HS256 JWT keyed with the signing key (its UTF-8
//!   bytes). Claims: `iss` = `MessageBird`, non-empty `jti`, `nbf`/`exp` (checked with 1 s of
//!   skew, MessageBird's own libraries' value, or the configured tolerance), `url_hash` = hex
//!   SHA-256 of the full URL called (query included, exactly as sent), and `payload_hash` = hex
//!   SHA-256 of the body, present exactly when there is a body. A body that is exactly the
//!   signed URL's query string (a GET report posted on) is covered by `url_hash` and needs no
//!   `payload_hash`. HS384/HS512 tokens are rejected as malformed.

mod status;
mod wire;

use chrono::Duration;
use sha2::{Digest, Sha256};
use tidings_core::signature::{hex_matches, verify_jwt_hs256};
use tidings_core::{
    Credentials, Draft, Error, Form, MediaType, Parsed, ProviderParser, RawRequest, Result, json,
    time,
};

use crate::wire::Report;

const ID: &str = "messagebird";
const SIGNATURE_HEADER: &str = "messagebird-signature-jwt";
/// The clock skew MessageBird's own verifiers allow around `nbf` and `exp`.
const DEFAULT_SKEW: Duration = Duration::seconds(1);

tidings_core::provider! {
    /// MessageBird SMS status reports.
    pub struct MessageBird;
    id: ID,
    aliases: ["bird"],
    channel: Sms,
    signature: Signature::Keyed("jwt-hs256"),
    media_types: [Json, Form, Text, Missing],
    // Status reports arrive as `GET` requests, the fields in the query string.
    accepts_get: true,
    signs_url: true,
}

impl ProviderParser for MessageBird {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let token = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader("MessageBird-Signature-JWT"))?;
        let url = request.url.ok_or(Error::MissingUrl)?;
        let leeway = credentials
            .freshness
            .tolerance(Some(DEFAULT_SKEW))
            // Unchecked: no window at all.
            .unwrap_or(Duration::MAX);
        credentials.any_key(|key| {
            let claims =
                verify_jwt_hs256(token, key.expose().as_bytes(), request.received_at, leeway)?;
            check_claims(&claims, url, request.body)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let report = if request.body.iter().all(u8::is_ascii_whitespace) {
            let query = request
                .url
                .and_then(query_of)
                .ok_or(Error::MissingField("id"))?;
            Report::from_form(&Form::urlencoded(query.as_bytes()))
        } else {
            match request.media_type() {
                MediaType::Json => {
                    let object: serde_json::Map<String, serde_json::Value> =
                        json::read_slice(ID, request.body)?;
                    let row = String::from_utf8_lossy(request.body);
                    Report::from_json(object, row.trim())
                }
                MediaType::Form | MediaType::Text | MediaType::Missing => {
                    Report::from_form(&Form::urlencoded(request.body))
                }
                _ => return Err(request.unsupported(ID)),
            }
        };
        let mut parsed = Parsed::default();
        normalize(request, report, &mut parsed)?;
        Ok(parsed)
    }
}

/// MessageBird's own claims, checked once the token's HMAC is proven.
fn check_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
    url: &str,
    body: &[u8],
) -> Result<()> {
    let claim = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    if claim("iss") != Some("MessageBird") {
        return Err(Error::MalformedSignature("MessageBird-Signature-JWT (iss)"));
    }
    if claim("jti").is_none_or(str::is_empty) {
        return Err(Error::MalformedSignature("MessageBird-Signature-JWT (jti)"));
    }
    let url_hash = claim("url_hash").ok_or(Error::MalformedSignature(
        "MessageBird-Signature-JWT (url_hash)",
    ))?;
    if !hex_matches(&Sha256::digest(url.as_bytes()), url_hash) {
        return Err(Error::SignatureMismatch);
    }
    match claim("payload_hash").filter(|hash| !hash.is_empty()) {
        Some(hash) if !body.is_empty() && hex_matches(&Sha256::digest(body), hash) => Ok(()),
        None if body.is_empty() || query_of(url).is_some_and(|q| q.as_bytes() == body) => Ok(()),
        _ => Err(Error::SignatureMismatch),
    }
}

/// The query string of a URL, without the fragment.
fn query_of(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once('?')?;
    let query = rest.split('#').next().unwrap_or(rest);
    (!query.is_empty()).then_some(query)
}

fn normalize(request: &RawRequest<'_>, report: Report, parsed: &mut Parsed) -> Result<()> {
    let message_id = report.id.ok_or(Error::MissingField("id"))?;
    let provider_event = report.status.ok_or(Error::MissingField("status"))?;
    let id = report.reference.unwrap_or_else(|| message_id.clone());
    let Some((status, failure)) = status::classify(&provider_event) else {
        parsed.ignore(
            provider_event,
            Some(id),
            "status maps to no delivery status",
        );
        return Ok(());
    };
    let date = report.status_datetime.as_deref().and_then(time::parse);
    let draft = Draft::new(ID, status, &provider_event).dedup_fields(&[
        &message_id,
        &provider_event,
        report.recipient.as_deref().unwrap_or(""),
        report.status_datetime.as_deref().unwrap_or(""),
        report.status_error_code.as_deref().unwrap_or(""),
    ]);
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(message_id)
            .date(date)
            .recipient(report.recipient)
            .failure(failure)
            // 0 is "no error".
            .code(report.status_error_code.filter(|code| code != "0"))
            .response(report.status_reason)
            .row(report.row),
    );
    Ok(())
}
