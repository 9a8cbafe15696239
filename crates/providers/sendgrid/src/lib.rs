//! Twilio SendGrid's Event Webhook: batches of delivery and engagement events, optionally signed
//! with ECDSA P-256 (the Signed Event Webhook).
//!
//! Docs: <https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event> and
//! <https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features>.
//!
//! - Body: always a JSON array (a bare object is accepted too). Custom args are flattened into
//!   each event: the custom arg `id` (or Novu's `novuMessageId`) is the result id, else
//!   `sg_message_id`.
//! - `date` is the event's `timestamp` (Unix seconds).
//! - Dedup: `sg_event_id` changes between SendGrid's retries and is missing on some events, so
//!   the key is a hash of the message id, event, recipient, time, bounce type and URL.
//! - Signature: ECDSA P-256 / SHA-256 over `timestamp header ‖ raw body`, DER signature in
//!   base64, the key a base64 DER SubjectPublicKeyInfo. SendGrid documents no timestamp window.

mod status;
mod wire;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature as EcdsaSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::value::RawValue;
use tidings_core::signature::base64_decode;
use tidings_core::{
    Channel, Credentials, Error, Event, EventBody, Ignored, MediaType, Parsed, ProviderParser,
    RawRequest, Result, Signature, ids, time,
};

use serde::Deserialize as _;

use crate::wire::SendGridEvent;

const ID: &str = "sendgrid";
const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// The SendGrid Event Webhook.
pub struct SendGrid;

tidings_core::register_provider!(SendGrid);

impl ProviderParser for SendGrid {
    fn id(&self) -> &'static str {
        ID
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn signature(&self) -> Signature {
        Signature::Keyed("ecdsa-p256-sha256")
    }

    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader(
                "X-Twilio-Email-Event-Webhook-Signature",
            ))?;
        let timestamp = request
            .header(TIMESTAMP_HEADER)
            .ok_or(Error::MissingHeader(
                "X-Twilio-Email-Event-Webhook-Timestamp",
            ))?;
        let der = base64_decode(signature).ok_or(Error::MalformedSignature(
            "X-Twilio-Email-Event-Webhook-Signature",
        ))?;
        let signature = EcdsaSignature::from_der(&der)
            .map_err(|_| Error::MalformedSignature("X-Twilio-Email-Event-Webhook-Signature"))?;
        if let Some(tolerance) = credentials.freshness.tolerance(None) {
            let signed_at = timestamp
                .trim()
                .parse()
                .ok()
                .and_then(time::from_unix_seconds)
                .ok_or(Error::MalformedSignature(
                    "X-Twilio-Email-Event-Webhook-Timestamp",
                ))?;
            tidings_core::signature::check_window(signed_at, request.received_at, tolerance)?;
        }
        let mut message = Vec::with_capacity(timestamp.len() + request.body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(request.body);
        credentials.any_key(|key| {
            let key = verifying_key(key.expose())?;
            key.verify(&message, &signature)
                .map_err(|_| Error::SignatureMismatch)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        match request.media_type() {
            MediaType::Json | MediaType::Text | MediaType::Missing => {}
            _ => return Err(request.unsupported(ID)),
        }
        let mut parsed = Parsed::default();
        // One pass: each event is read into its struct straight from the body, and its raw
        // JSON text (the result `row`) is the slice the reader consumed. Anything this walk
        // does not expect takes the general path below, which also gives the precise error.
        if fast_parse(request, &mut parsed).is_some() {
            return Ok(parsed);
        }
        general_parse(request)
    }
}

/// The general path: the body split into raw rows, then each row read. Twice the work of
/// [`fast_parse`], and its errors are serde_json's own.
fn general_parse(request: &RawRequest<'_>) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    for row in split_batch(request.body)? {
        let event: SendGridEvent<'_> =
            serde_json::from_str(row.get()).map_err(|e| Error::json(ID, &e))?;
        normalize(request, row.get(), event, &mut parsed);
    }
    Ok(parsed)
}

/// Reads a batch (`[{...}, ...]`) or a bare object in one pass. `None` when the body is not
/// exactly that, valid: the caller then re-reads it the general way for the error.
fn fast_parse(request: &RawRequest<'_>, parsed: &mut Parsed) -> Option<()> {
    let body = request.body;
    let mut at = skip_whitespace(body, 0);
    let batch = match body.get(at)? {
        b'[' => {
            at = skip_whitespace(body, at + 1);
            if body.get(at) == Some(&b']') {
                return end_of_body(body, at + 1);
            }
            true
        }
        b'{' => false,
        _ => return None,
    };
    loop {
        let rest = body.get(at..)?;
        let mut reader = serde_json::Deserializer::from_slice(rest);
        let event = SendGridEvent::deserialize(&mut reader).ok()?;
        // A stream deserializer starts counting where its reader stands: right after the
        // event's closing brace.
        let end = at + reader.into_iter::<serde::de::IgnoredAny>().byte_offset();
        let row = std::str::from_utf8(body.get(at..end)?).ok()?;
        normalize(request, row, event, parsed);
        at = skip_whitespace(body, end);
        if !batch {
            return end_of_body(body, at);
        }
        match body.get(at)? {
            b',' => at = skip_whitespace(body, at + 1),
            b']' => return end_of_body(body, at + 1),
            _ => return None,
        }
    }
}

fn skip_whitespace(body: &[u8], mut at: usize) -> usize {
    while body
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
    {
        at += 1;
    }
    at
}

fn end_of_body(body: &[u8], at: usize) -> Option<()> {
    (skip_whitespace(body, at) == body.len()).then_some(())
}

/// The events of a batch (or of a single bare object) as raw JSON rows.
fn split_batch(body: &[u8]) -> Result<Vec<&RawValue>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        let row: &RawValue = serde_json::from_slice(body).map_err(|e| Error::json(ID, &e))?;
        return Ok(vec![row]);
    }
    serde_json::from_slice(body).map_err(|e| Error::json(ID, &e))
}

fn normalize(request: &RawRequest<'_>, row: &str, event: SendGridEvent<'_>, parsed: &mut Parsed) {
    let external_id = event
        .sg_message_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            event
                .smtp_id
                .as_deref()
                .map(|id| ids::strip_angle_brackets(id).to_owned())
        });
    let own_id = event
        .id
        .as_ref()
        .and_then(wire::Lenient::text)
        .or_else(|| event.novu_message_id.as_ref().and_then(wire::Lenient::text));
    let Some(id) = own_id.or_else(|| external_id.clone()) else {
        parsed.ignored.push(Ignored {
            provider_event: event.event.to_string(),
            id: None,
            reason: "the event carries no message id".into(),
        });
        return;
    };
    let Some((status, failure)) = status::classify(&event.event, event.kind.as_deref()) else {
        parsed.ignored.push(Ignored {
            provider_event: event.event.to_string(),
            id: Some(id),
            reason: "event type maps to no delivery status".into(),
        });
        return;
    };
    let timestamp = event.timestamp.as_ref().and_then(wire::Lenient::as_i64);
    let date = timestamp
        .and_then(time::from_unix_seconds)
        .unwrap_or(request.received_at);
    let timestamp_text = timestamp.map(|t| t.to_string()).unwrap_or_default();
    let dedup_key = ids::dedup_from_fields(
        ID,
        &[
            external_id.as_deref().unwrap_or(&id),
            &event.event,
            event.email.as_deref().unwrap_or(""),
            &timestamp_text,
            event.kind.as_deref().unwrap_or(""),
            event.url.as_deref().unwrap_or(""),
        ],
    );
    let provider_event = match event.kind.as_deref() {
        Some(kind) if event.event == "bounce" => format!("bounce (type={kind})"),
        _ => event.event.to_string(),
    };
    let automated = (status == tidings_core::Status::Opened).then(|| {
        event
            .sg_machine_open
            .as_ref()
            .is_some_and(wire::Lenient::truthy)
    });
    parsed.events.push(Event {
        id,
        body: EventBody {
            status,
            date,
            external_id,
            attempts: event
                .attempt
                .as_ref()
                .and_then(wire::Lenient::as_i64)
                .and_then(|a| u32::try_from(a).ok()),
            response: event
                .response
                .filter(|r| !r.is_empty())
                .or(event.reason.filter(|r| !r.is_empty()))
                .map(wire::Str::into_owned),
            row: Some(row.to_owned()),
        },
        dedup_key,
        provider_event,
        recipient: event.email.map(wire::Str::into_owned),
        failure,
        code: event
            .status
            .as_ref()
            .and_then(wire::Lenient::text)
            .or(event.bounce_classification.map(wire::Str::into_owned)),
        automated,
    });
}

/// Reads SendGrid's public key: base64 DER SubjectPublicKeyInfo as the dashboard shows it, or
/// the same wrapped in PEM armor.
fn verifying_key(text: &str) -> Result<VerifyingKey> {
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    let der = base64_decode(&body).ok_or(Error::InvalidKey("base64 DER P-256 public key"))?;
    VerifyingKey::from_public_key_der(&der)
        .map_err(|_| Error::InvalidKey("base64 DER P-256 public key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(body: &str) -> (Result<Parsed>, Result<Parsed>) {
        let headers = http::HeaderMap::new();
        let request = RawRequest {
            body: body.as_bytes(),
            content_type: Some("application/json"),
            headers: &headers,
            url: None,
            received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        (SendGrid.parse(&request), general_parse(&request))
    }

    #[test]
    fn the_one_pass_reader_gives_what_the_general_path_gives() {
        let event = r#"{"event":"delivered","email":"a\u00e9@example.com","timestamp":"1700000000","sg_message_id":"m\"1","id":{"nested":[1,2]},"novuMessageId":18446744073709551615,"attempt":2.0,"response":"250 \\ OK","status":["x"],"sg_machine_open":null,"url":"https://e.example/\/a"}"#;
        for body in [
            format!("[{event}]"),
            format!(" \n[ {event} ,\t{event}\r\n] \n"),
            format!("  {event}  "),
            "[]".to_owned(),
            " [ ] ".to_owned(),
        ] {
            let (fast, general) = both(&body);
            assert_eq!(fast.unwrap(), general.unwrap(), "{body}");
        }
        for bad in [
            format!("[{event}] x"),
            format!("[{event},]"),
            format!("[{event} {event}]"),
            format!("{event} {event}"),
            "[1]".to_owned(),
            "[".to_owned(),
            String::new(),
            "null".to_owned(),
        ] {
            let (fast, general) = both(&bad);
            assert_eq!(
                fast.unwrap_err().to_string(),
                general.unwrap_err().to_string(),
                "{bad}"
            );
        }
    }
}
