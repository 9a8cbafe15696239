//! Vonage (formerly Nexmo): SMS API delivery receipts and Messages API status webhooks.
//!
//! Docs: <https://developer.vonage.com/en/messaging/sms/guides/delivery-receipts>,
//! <https://developer.vonage.com/en/getting-started/concepts/signing-messages>,
//! <https://developer.vonage.com/en/messages/concepts/messages-status-callbacks> and
//! <https://developer.vonage.com/en/getting-started/concepts/webhooks#validating-signed-webhooks>.
//!
//! - Body: a delivery receipt (DLR) is one message part's flat fields (`messageId`, `status`,
//!   `err-code`, `msisdn`, `scts`, `message-timestamp`, `client-ref`, ...) as a JSON object
//!   (`POST-JSON`), a form (`POST`) or the URL's query (`GET`, empty body). A Messages API
//!   status is a JSON object (`message_uuid`, `status`, `timestamp`, `to`, `client_ref`,
//!   `error`). Each long-SMS part has its own DLR and `messageId`.
//! - Ids: `client-ref`/`client_ref` (the sender's own reference, set on send) is the result id
//!   when present, else `messageId`/`message_uuid`, which is always `externalId`.
//! - `date`: DLR `message-timestamp` (when Vonage sent the receipt, UTC), else `scts` (the
//!   carrier's `YYMMDDHHMM`), else the receive time; Messages API `timestamp`.
//! - Dedup: Vonage sends no event id. DLR: a hash of `messageId`, `status`, `err-code`, `scts`
//!   and `message-timestamp`; Messages API: of `message_uuid`, `status`, `timestamp`, `to`.
//! - Signature, DLR: the `sig` field (signed webhooks must be enabled) over every other field
//!   as `&key=value`, keys sorted, `&` and `=` inside values replaced by `_`; `md5hash` = hex
//!   MD5 of that text followed by the signature secret, `md5`/`sha1`/`sha256`/`sha512` = hex
//!   HMAC keyed with the secret (compared case-insensitively). Every method is tried unless the
//!   integration option `signature_method` names one. The signed `timestamp` (Unix seconds)
//!   must be within 5 minutes of the receive time by default.
//! - Signature, Messages API: `Authorization: Bearer <JWT>`, HS256 with the signature secret;
//!   its `payload_hash` claim must be the hex SHA-256 of the body (required when there is a
//!   body: without it the token would authenticate any body), and its `iat`
//!   within 5 minutes of the receive time by default.

mod status;
mod wire;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Sha256;
use tidings_core::signature::{
    check_signed_seconds, check_window, hex_matches, hmac_sha1, hmac_sha256, hmac_sha512,
    verify_jwt_hs256,
};
use tidings_core::{
    Credentials, Draft, Error, Form, MediaType, Parsed, ProviderParser, RawRequest, Result, json,
    time,
};

use crate::status::Source;

use crate::wire::{DeliveryReceipt, MessageStatus};

const ID: &str = "nexmo";
const METHOD_OPTION: &str = "signature_method";
const METHODS: [&str; 5] = ["md5hash", "md5", "sha1", "sha256", "sha512"];

/// The default window for the signed `timestamp` and the JWT `iat`: Vonage names none.
fn default_tolerance() -> Duration {
    Duration::minutes(5)
}

tidings_core::provider! {
    /// Vonage SMS delivery receipts and Messages API statuses.
    pub struct Nexmo;
    id: ID,
    aliases: ["vonage"],
    channel: Sms,
    signature: Signature::Keyed("vonage-sig-or-jwt-hs256"),
    media_types: [Json, Form, Missing],
    // Delivery receipts come as `GET` when the account's HTTP method is set to GET.
    accepts_get: true,
    options: [METHOD_OPTION],
}

/// The two body kinds.
enum Body<'a> {
    /// An SMS API delivery receipt: its fields, and its row text.
    Receipt(BTreeMap<String, String>, String),
    /// A Messages API status (or inbound message) object, raw.
    Message(&'a RawValue),
}

impl ProviderParser for Nexmo {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let tolerance = credentials.freshness.tolerance(Some(default_tolerance()));
        if let Some(token) = request.header("authorization").and_then(bearer) {
            return verify_jwt(request, credentials, token, tolerance);
        }
        match read_body(request) {
            Ok(Body::Receipt(fields, _)) => verify_sig(request, credentials, &fields, tolerance),
            Ok(Body::Message(_)) => Err(Error::MissingHeader("Authorization")),
            Err(_) => Err(Error::MissingSignatureField("sig")),
        }
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let mut parsed = Parsed::default();
        match read_body(request)? {
            Body::Receipt(fields, row) => parse_receipt(request, &fields, row, &mut parsed)?,
            Body::Message(raw) => parse_message(request, raw, &mut parsed)?,
        }
        Ok(parsed)
    }
}

fn read_body<'a>(request: &RawRequest<'a>) -> Result<Body<'a>> {
    let looks_json = json::is_object(request.body);
    let pairs = match request.media_type() {
        MediaType::Json => return read_json(request.body),
        MediaType::Missing if looks_json => return read_json(request.body),
        MediaType::Form | MediaType::Missing if !request.body.is_empty() => {
            Form::urlencoded(request.body)
        }
        // A `GET` receipt: the fields are the URL's query parameters.
        MediaType::Form | MediaType::Missing => {
            let query = request
                .url
                .and_then(|u| u.split_once('?'))
                .map_or("", |(_, q)| q);
            let query = query.split('#').next().unwrap_or(query);
            Form::urlencoded(query.as_bytes())
        }
        _ => return Err(request.unsupported(ID)),
    };
    let fields: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let row = serde_json::to_string(&fields).unwrap_or_default();
    Ok(Body::Receipt(fields, row))
}

fn read_json(body: &[u8]) -> Result<Body<'_>> {
    let raw: &RawValue = json::read_slice(ID, body)?;
    let object: serde_json::Map<String, Value> = json::read(ID, raw.get())?;
    if object.contains_key("message_uuid") {
        return Ok(Body::Message(raw));
    }
    if !object.contains_key("messageId") {
        return Err(Error::malformed(
            ID,
            "neither a delivery receipt (messageId) nor a Messages API status (message_uuid)",
        ));
    }
    let fields = object
        .iter()
        .filter_map(|(k, v)| wire::scalar_text(v).map(|v| (k.clone(), v)))
        .collect();
    Ok(Body::Receipt(fields, raw.get().to_owned()))
}

fn parse_receipt(
    request: &RawRequest<'_>,
    fields: &BTreeMap<String, String>,
    row: String,
    parsed: &mut Parsed,
) -> Result<()> {
    let receipt = DeliveryReceipt { fields };
    let message_id = receipt
        .message_id()
        .ok_or(Error::MissingField("messageId"))?;
    let id = receipt.client_ref().unwrap_or(message_id).to_owned();
    let Some(raw_status) = receipt.status() else {
        if receipt.is_inbound() {
            parsed.ignore(
                "inbound message",
                Some(id),
                "an inbound message, not a delivery receipt",
            );
            return Ok(());
        }
        return Err(Error::MissingField("status"));
    };
    let code = receipt.err_code().filter(|c| *c != "0");
    let Some((status, failure)) = status::classify(Source::Receipt(raw_status, code)) else {
        parsed.ignore(
            raw_status,
            Some(id),
            "the carrier reported no final state; the current status stands",
        );
        return Ok(());
    };
    let date = receipt
        .message_timestamp()
        .and_then(time::parse)
        .or_else(|| receipt.scts().and_then(carrier_time));
    let draft = Draft::new(ID, status, raw_status).dedup_fields(&[
        message_id,
        raw_status,
        receipt.err_code().unwrap_or_default(),
        receipt.scts().unwrap_or_default(),
        receipt.message_timestamp().unwrap_or_default(),
    ]);
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(message_id.to_owned())
            .date(date)
            .recipient(receipt.msisdn().map(str::to_owned))
            .failure(failure)
            .code(code.map(str::to_owned))
            .row(row),
    );
    Ok(())
}

fn parse_message(request: &RawRequest<'_>, raw: &RawValue, parsed: &mut Parsed) -> Result<()> {
    let message: MessageStatus = json::read(ID, raw.get())?;
    let uuid = message
        .message_uuid
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or(Error::MissingField("message_uuid"))?;
    let Some(raw_status) = message.status.as_deref() else {
        if let Some(kind) = message.message_type.as_deref() {
            parsed.ignore(
                format!("inbound {kind}"),
                Some(uuid.to_owned()),
                "an inbound message, not a delivery status",
            );
            return Ok(());
        }
        return Err(Error::MissingField("status"));
    };
    let id = message
        .client_ref
        .as_deref()
        .filter(|r| !r.is_empty())
        .unwrap_or(uuid)
        .to_owned();
    let Some((status, failure)) = status::classify(Source::Message(raw_status)) else {
        parsed.ignore(raw_status, Some(id), "status maps to no delivery status");
        return Ok(());
    };
    let recipient = message.to.as_ref().and_then(wire::recipient);
    let error = message.error.as_ref();
    let draft = Draft::new(ID, status, raw_status).dedup_fields(&[
        uuid,
        raw_status,
        message.timestamp.as_deref().unwrap_or_default(),
        recipient.as_deref().unwrap_or_default(),
    ]);
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(uuid.to_owned())
            .date(message.timestamp.as_deref().and_then(time::parse))
            .recipient(recipient)
            .failure(failure)
            .code(
                error
                    .and_then(|e| e.title.as_ref())
                    .and_then(wire::scalar_text),
            )
            .response(error.and_then(|e| e.detail.clone()))
            .row(raw.get()),
    );
    Ok(())
}

/// `scts`: the carrier's `YYMMDDHHMM`, read as UTC.
fn carrier_time(text: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%y%m%d%H%M")
        .ok()
        .map(|naive| naive.and_utc())
}

fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A Messages API JWT: HS256 with the signature secret, `payload_hash` and `iat` checked.
fn verify_jwt(
    request: &RawRequest<'_>,
    credentials: &Credentials<'_>,
    token: &str,
    tolerance: Option<Duration>,
) -> Result<()> {
    // `exp`/`nbf`, when Vonage sets them, are checked within the same window (or not at all).
    let leeway = tolerance.unwrap_or(Duration::days(365 * 100));
    let body_hash = Sha256::digest(request.body);
    credentials.any_key(|key| {
        let claims = verify_jwt_hs256(token, key.expose().as_bytes(), request.received_at, leeway)?;
        match claims.get("payload_hash") {
            Some(hash) => {
                let hash = hash
                    .as_str()
                    .ok_or(Error::MalformedSignature("JWT payload_hash"))?;
                if !hex_matches(&body_hash, hash) {
                    return Err(Error::SignatureMismatch);
                }
            }
            // Without the claim the token would vouch for any body.
            None if !request.body.is_empty() => {
                return Err(Error::MissingSignatureField("JWT payload_hash"));
            }
            None => {}
        }
        if let Some(tolerance) = tolerance {
            let issued = claims
                .get("iat")
                .and_then(Value::as_i64)
                .and_then(time::from_unix_seconds)
                .ok_or(Error::MalformedSignature("JWT iat"))?;
            check_window(issued, request.received_at, tolerance)?;
        }
        Ok(())
    })
}

/// A delivery receipt's `sig` field.
fn verify_sig(
    request: &RawRequest<'_>,
    credentials: &Credentials<'_>,
    fields: &BTreeMap<String, String>,
    tolerance: Option<Duration>,
) -> Result<()> {
    let sig = fields
        .get("sig")
        .ok_or(Error::MissingSignatureField("sig"))?;
    check_signed_seconds(
        fields.get("timestamp").map_or("", String::as_str),
        "timestamp",
        request.received_at,
        tolerance,
    )?;
    let methods: Vec<&str> = match credentials.option(METHOD_OPTION) {
        None => METHODS.to_vec(),
        Some(method) => {
            let method = METHODS
                .into_iter()
                .find(|m| m.eq_ignore_ascii_case(method.trim()))
                .ok_or(Error::InvalidKey(
                    "signature_method (md5hash, md5, sha1, sha256 or sha512)",
                ))?;
            vec![method]
        }
    };
    let signed: String = fields
        .iter()
        .filter(|(key, _)| key.as_str() != "sig")
        .map(|(key, value)| format!("&{key}={}", value.replace(['&', '='], "_")))
        .collect();
    credentials.any_key_matches(|key| {
        let secret = key.expose().as_bytes();
        methods.iter().any(|method| {
            let digest = match *method {
                "md5hash" => Md5::new_with_prefix(&signed)
                    .chain_update(secret)
                    .finalize()
                    .to_vec(),
                "md5" => match Hmac::<Md5>::new_from_slice(secret) {
                    Ok(mac) => mac
                        .chain_update(signed.as_bytes())
                        .finalize()
                        .into_bytes()
                        .to_vec(),
                    Err(_) => return false,
                },
                "sha1" => hmac_sha1(secret, &[signed.as_bytes()]).to_vec(),
                "sha256" => hmac_sha256(secret, &[signed.as_bytes()]).to_vec(),
                _ => hmac_sha512(secret, &[signed.as_bytes()]).to_vec(),
            };
            hex_matches(&digest, sig)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HS256 JWT with these claims, signed with `key`.
    fn jwt(claims: &str, key: &str) -> String {
        let url = |bytes: &[u8]| {
            tidings_core::signature::base64_encode(bytes)
                .replace('+', "-")
                .replace('/', "_")
                .trim_end_matches('=')
                .to_owned()
        };
        let signing_input = format!(
            "{}.{}",
            url(br#"{"alg":"HS256","typ":"JWT"}"#),
            url(claims.as_bytes())
        );
        let mac = tidings_core::signature::hmac_sha256(key.as_bytes(), &[signing_input.as_bytes()]);
        format!("{signing_input}.{}", url(&mac))
    }

    #[test]
    fn a_jwt_without_payload_hash_does_not_vouch_for_a_body() {
        let key = "vonage-signature-secret";
        let now = chrono::Utc::now();
        let token = jwt(&format!(r#"{{"iat":{}}}"#, now.timestamp()), key);
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert("authorization", value);
        }
        let keys = [tidings_core::Secret::new(key)];
        let options = BTreeMap::new();
        let fetched = BTreeMap::new();
        let credentials = Credentials {
            signing_keys: &keys,
            options: &options,
            fetched: &fetched,
            freshness: tidings_core::Freshness::ProviderDefault,
        };
        let request = |body: &'static [u8]| RawRequest {
            method: "POST",
            body,
            content_type: Some("application/json"),
            headers: &headers,
            url: None,
            received_at: now,
        };
        assert_eq!(
            Nexmo.verify(
                &request(br#"{"message_uuid":"forged","status":"delivered"}"#),
                &credentials
            ),
            Err(Error::MissingSignatureField("JWT payload_hash"))
        );
        assert_eq!(Nexmo.verify(&request(b""), &credentials), Ok(()));
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer a.b.c"), Some("a.b.c"));
        assert_eq!(bearer("bearer  a.b.c "), Some("a.b.c"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(
            carrier_time("1810251210").map(|d| d.to_rfc3339()),
            Some("2018-10-25T12:10:00+00:00".to_owned())
        );
    }
}
