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
    RawRequest, Result, Secret, Signature, ids, time,
};

use crate::wire::SendGridEvent;

const ID: &str = "sendgrid";
/// SendGrid documents no timestamp window, and retries a failed POST for up to 24 hours: the
/// default window covers that horizon, plus an hour for clocks and queues. A request signed
/// longer ago than this is refused (a replay), not stored.
const DEFAULT_TOLERANCE: chrono::Duration = chrono::Duration::hours(25);
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

    fn key_problem(&self, key: &Secret) -> Option<String> {
        verifying_key(key.expose()).err().map(|e| e.to_string())
    }

    /// SendGrid signs its compact JSON followed by CRLF. A proxy or framework that parses and
    /// re-writes the body (pretty-printing, other line ends) breaks the signature: if the body
    /// verifies once restored to that form, the hint says so.
    fn refusal_hint(
        &self,
        request: &RawRequest<'_>,
        credentials: &Credentials<'_>,
    ) -> Option<String> {
        let compact = tidings_core::json::minified(request.body);
        let mut with_crlf = compact.clone();
        with_crlf.extend_from_slice(b"\r\n");
        let restored = [with_crlf, compact]
            .into_iter()
            .filter(|body| body.as_slice() != request.body)
            .any(|body| {
                let candidate = RawRequest {
                    body: &body,
                    ..*request
                };
                self.verify(&candidate, credentials).is_ok()
            });
        restored.then(|| {
            "The signature matches this body in SendGrid's compact form: something between SendGrid and Tidings (a proxy, gateway or framework) re-encoded the JSON. Forward the raw bytes unchanged.".to_owned()
        })
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
        if let Some(tolerance) = credentials.freshness.tolerance(Some(DEFAULT_TOLERANCE)) {
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
            let key = key.parsed(verifying_key)?;
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
        // One pass: each event is read into its struct straight from the body by a
        // hand-written reader (`read`), and its raw JSON text (the result `row`) is the slice
        // the reader consumed. Anything the reader is not sure to read exactly as serde would
        // takes the general path below, which also gives the precise error.
        if fast_parse(request, &mut parsed).is_some() {
            return Ok(parsed);
        }
        general_parse(request)
    }
}

/// The general path: the body split into raw rows, then each row read with serde. About three
/// times the work of [`fast_parse`], and its errors are serde_json's own.
fn general_parse(request: &RawRequest<'_>) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    for row in split_batch(request.body)? {
        let event: SendGridEvent<'_> =
            serde_json::from_str(row.get()).map_err(|e| Error::json(ID, &e))?;
        normalize(request, row.get(), &event, &mut parsed);
    }
    Ok(parsed)
}

/// Reads a batch (`[{...}, ...]`) or a bare object in one pass. `None` when the body is not
/// exactly that, valid, or has something [`wire::read::event`] leaves to serde: the caller then
/// re-reads it the general way.
fn fast_parse(request: &RawRequest<'_>, parsed: &mut Parsed) -> Option<()> {
    // Validated once: the reader then reads strings without checking each again, and every row
    // is a slice of this text.
    let text = std::str::from_utf8(request.body).ok()?;
    let body = text.as_bytes();
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
        let mut event = SendGridEvent::default();
        let end = wire::read::event(text, at, &mut event)?;
        let row = text.get(at..end)?;
        normalize(request, row, &event, parsed);
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

/// An integer's decimal text, on the stack (as bytes: it is only hashed).
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn new(value: i64) -> Decimal {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut rest = value.unsigned_abs();
        // Two digits at a time.
        while rest >= 10 {
            start -= 2;
            let pair = (rest % 100) as u8;
            if let Some(slot) = digits.get_mut(start..start + 2) {
                slot.copy_from_slice(&[b'0' + pair / 10, b'0' + pair % 10]);
            }
            rest /= 100;
        }
        if rest > 0 || start == digits.len() {
            start -= 1;
            if let Some(digit) = digits.get_mut(start) {
                *digit = b'0' + rest as u8;
            }
        }
        if value < 0 {
            start -= 1;
            if let Some(sign) = digits.get_mut(start) {
                *sign = b'-';
            }
        }
        Decimal { digits, start }
    }

    fn as_bytes(&self) -> &[u8] {
        self.digits.get(self.start..).unwrap_or_default()
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

fn normalize(request: &RawRequest<'_>, row: &str, event: &SendGridEvent<'_>, parsed: &mut Parsed) {
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
    let timestamp_text = timestamp.map(Decimal::new);
    let dedup_key = ids::dedup_from_field_bytes(
        ID,
        &[
            external_id.as_deref().unwrap_or(&id).as_bytes(),
            event.event.as_bytes(),
            event.email.as_deref().unwrap_or("").as_bytes(),
            timestamp_text.as_ref().map_or(&[], Decimal::as_bytes),
            event.kind.as_deref().unwrap_or("").as_bytes(),
            event.url.as_deref().unwrap_or("").as_bytes(),
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
                .as_deref()
                .filter(|r| !r.is_empty())
                .or(event.reason.as_deref().filter(|r| !r.is_empty()))
                .map(str::to_owned),
            row: Some(row.to_owned()),
        },
        dedup_key,
        provider_event,
        recipient: event.email.as_deref().map(str::to_owned),
        failure,
        code: event
            .status
            .as_ref()
            .and_then(wire::Lenient::text)
            .or_else(|| event.bounce_classification.as_deref().map(str::to_owned)),
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
            method: "POST",
            body: body.as_bytes(),
            content_type: Some("application/json"),
            headers: &headers,
            url: None,
            received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        (SendGrid.parse(&request), general_parse(&request))
    }

    /// Reads `body` with the one-pass reader; where it accepts the body, what it read must be
    /// exactly what the serde path reads. Whether it accepted.
    fn fast_agrees(body: &[u8]) -> bool {
        let headers = http::HeaderMap::new();
        let request = RawRequest {
            method: "POST",
            body,
            content_type: Some("application/json"),
            headers: &headers,
            url: None,
            received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let mut fast = Parsed::default();
        if fast_parse(&request, &mut fast).is_none() {
            return false;
        }
        match general_parse(&request) {
            Ok(general) => assert_eq!(fast, general, "{}", String::from_utf8_lossy(body)),
            Err(err) => panic!(
                "the one-pass reader accepted what serde rejects ({err}): {}",
                String::from_utf8_lossy(body)
            ),
        }
        true
    }

    #[test]
    fn the_one_pass_reader_takes_the_usual_bodies() {
        for body in [
            include_str!("../../../../fixtures/sendgrid/docs-batch-all-event-types.json"),
            include_str!("../../../../fixtures/sendgrid/bounce.json"),
            include_str!("../../../../fixtures/sendgrid/processed-with-custom-args.json"),
            FAST_SEEDS[0],
            FAST_SEEDS[1],
            FAST_SEEDS[2],
        ] {
            assert!(fast_agrees(body.as_bytes()), "{body}");
        }
    }

    /// Bodies the one-pass reader reads, with escapes, nesting, odd numbers and whitespace.
    const FAST_SEEDS: [&str; 3] = [
        r#"[{"email":"user1@example.com","timestamp":1764201600,"smtp-id":"<1@ismtpd-bench>","event":"open","category":["bench"],"sg_event_id":"ev-1","sg_message_id":"sgm1.filter0001.bench","id":"msg-1","useragent":"Mozilla/5.0","ip":"203.0.113.7","sg_machine_open":false}]"#,
        r#"[ {"event":"bounce","type":"blocked","reason":"5\"50 \u00e9","status":"5.1.1","timestamp":"17","id":12,"attempt":3,"novuMessageId":null,"x":{"y":[1,-0.5e+3,"\ud83d\ude00",{}],"z":[]},"url":"h\/t","sg_machine_open":1,"bounce_classification":"Invalid"} ,{"event":"click","email":null,"sg_message_id":"","smtp-id":" <a@b> ","status":{"a":[true,false,null]},"id":[],"sg_machine_open":"true"}]"#,
        " {\"event\" : \"delivered\" , \"sg_message_id\" : \"m1\" , \"response\" : \"\" , \"reason\" : \"r\" }\n",
    ];

    #[test]
    fn the_one_pass_reader_never_reads_differently_from_serde() {
        // Every body one edit away from the seeds: a byte deleted, inserted or replaced. The
        // reader may refuse any of them, but what it accepts it must read as serde does.
        const BYTES: &[u8] = b"\"\\{}[],: 01-.eEun\x01\xc3";
        let mut accepted = 0;
        for seed in FAST_SEEDS {
            let seed = seed.as_bytes();
            for at in 0..=seed.len() {
                let mut bodies = Vec::new();
                if at < seed.len() {
                    let mut body = seed.to_vec();
                    body.remove(at);
                    bodies.push(body);
                }
                for &byte in BYTES {
                    let mut body = seed.to_vec();
                    body.insert(at, byte);
                    bodies.push(body);
                    if at < seed.len() {
                        let mut body = seed.to_vec();
                        body[at] = byte;
                        bodies.push(body);
                    }
                }
                accepted += bodies.iter().filter(|body| fast_agrees(body)).count();
            }
        }
        // Many edits leave a valid body (inside strings, whitespace): those are read in one pass.
        assert!(accepted > 1000, "{accepted}");
        for body in [
            r#"{"event":"open","event":"open"}"#,
            r#"{"event":"open","email":null,"email":null}"#,
            r#"{"email":"a"}"#,
            r#"{}"#,
            r#"{"ev\u0065nt":"open"}"#,
            r#"{"event":"open","x":{"k\u0065y":1}}"#,
            r#"{"event":"open","id":{"\ud800":1}}"#,
            r#"{"event":"open","x":"\ud800"}"#,
            r#"{"event":"open","id":"\ud800"}"#,
            r#"{"event":"open","id":-1}"#,
            r#"{"event":"open","id":01}"#,
            r#"{"event":"open","id":1e3}"#,
            r#"{"event":"open","id":1234567890123456789}"#,
            r#"{"event":"open","x":01}"#,
            r#"{"event":"open","x":1.}"#,
            r#"{"event":"open","x":[1,]}"#,
            r#"{"event":"open","x":{"a":1,}}"#,
            r#"{"event":"open",}"#,
            r#"{"event":null}"#,
            r#"{"event":1}"#,
            r#"{"event":"open","email":1}"#,
            r#"{"event":"o\pen"}"#,
            r#"{"event":"o\u00"}"#,
            "{\"event\":\"o\tpen\"}",
        ] {
            fast_agrees(body.as_bytes());
        }
        let deep = format!(
            r#"{{"event":"open","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        fast_agrees(deep.as_bytes());
        let deep = format!(
            r#"{{"event":"open","id":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        fast_agrees(deep.as_bytes());
    }

    #[test]
    fn decimal_text() {
        for value in [
            0,
            7,
            -7,
            10,
            99,
            100,
            -100,
            101,
            1_700_000_000,
            1_764_201_607,
            i64::MAX,
            i64::MIN,
        ]
        .into_iter()
        .chain(-1000..1000)
        {
            assert_eq!(Decimal::new(value).as_bytes(), value.to_string().as_bytes());
        }
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
