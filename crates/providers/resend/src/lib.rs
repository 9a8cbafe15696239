//! Resend's email webhooks: one JSON event per request, signed by Svix.
//!
//! Docs: <https://resend.com/docs/dashboard/webhooks/event-types>,
//! <https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests> and Svix's
//! <https://docs.svix.com/receiving/verifying-payloads/how-manual>.
//!
//! - Body: one JSON object `{"type": "email.*", "created_at", "data": {...}}`.
//! - Ids: `data.email_id` is the provider message id (the id the send API returned). The sender's
//!   own id is a send-time tag named `id`, `novuMessageId` or `__nvMessageId` (`data.tags`, an
//!   object map or a `[{name, value}]` list). An event with neither is kept, reported under its
//!   dedup key, when it names a recipient (`data.to`); with no recipient either it is ignored.
//! - `date`: the top-level `created_at` (the event time; `data.created_at` is the message's
//!   creation), else `data.click.timestamp`, else the receive time.
//! - Dedup: the `svix-id` header, the delivery id Svix keeps across its retries; without it a hash
//!   of type, message id, recipient and event time.
//! - Signature (Svix): headers `svix-id`, `svix-timestamp` (Unix seconds) and `svix-signature`, a
//!   space-separated list of `v1,<base64>` of which any may match (the Standard Webhooks names
//!   `webhook-id`, `webhook-timestamp`, `webhook-signature` are accepted too). Each is
//!   `base64(HMAC-SHA256(key, id "." timestamp "." raw body))`, the key being the base64 after the
//!   `whsec_` prefix of the signing secret. Timestamps more than 5 minutes away are rejected.

mod status;
mod wire;

use chrono::Duration;
use tidings_core::ids::OWN_ID_KEYS;
use tidings_core::signature::{base64_decode, base64_matches, check_window, hmac_sha256};
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, Secret, json, time,
};

use crate::wire::WireEvent;

const ID: &str = "resend";
/// Svix rejects timestamps further than this from now.
const TOLERANCE_SECONDS: i64 = 5 * 60;

tidings_core::provider! {
    /// Resend webhooks.
    pub struct Resend;
    id: ID,
    channel: Email,
    signature: Signature::Keyed("svix-hmac-sha256"),
    media_types: [Json, Missing],
}

impl ProviderParser for Resend {
    fn load_key(&self, key: &Secret) -> Result<()> {
        key.parsed(secret_bytes).map(drop)
    }

    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let msg_id = svix_header(request, "svix-id", "webhook-id")?;
        let timestamp = svix_header(request, "svix-timestamp", "webhook-timestamp")?;
        let signatures = svix_header(request, "svix-signature", "webhook-signature")?;
        let signed_at = timestamp
            .trim()
            .parse()
            .ok()
            .and_then(time::from_unix_seconds)
            .ok_or(Error::MalformedSignature("svix-timestamp"))?;
        if let Some(tolerance) = credentials
            .freshness
            .tolerance(Some(Duration::seconds(TOLERANCE_SECONDS)))
        {
            check_window(signed_at, request.received_at, tolerance)?;
        }
        // `v1,<base64>` entries; other versions are skipped, as Svix's own libraries do.
        let candidates: Vec<&str> = signatures
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .collect();
        if candidates.is_empty() {
            return Err(Error::MalformedSignature("svix-signature"));
        }
        credentials.any_key(|key| {
            let key = key.parsed(secret_bytes)?;
            let expected = hmac_sha256(
                key.as_slice(),
                &[
                    msg_id.as_bytes(),
                    b".",
                    timestamp.as_bytes(),
                    b".",
                    request.body,
                ],
            );
            // Every candidate is compared, so timing does not reveal which one matched.
            let matched = candidates
                .iter()
                .fold(false, |any, given| base64_matches(&expected, given) | any);
            matched.then_some(()).ok_or(Error::SignatureMismatch)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let row = request.text(ID)?;
        let event: WireEvent = json::read(ID, row)?;
        let mut parsed = Parsed::default();
        normalize(request, row.trim(), event, &mut parsed);
        Ok(parsed)
    }
}

/// A Svix header, under its `svix-` name or its Standard Webhooks `webhook-` alias.
fn svix_header<'a>(
    request: &RawRequest<'a>,
    name: &'static str,
    alias: &'static str,
) -> Result<&'a str> {
    request
        .header(name)
        .or_else(|| request.header(alias))
        .ok_or(Error::MissingHeader(name))
}

/// The HMAC key: the base64 after `whsec_`, or a bare base64 secret.
fn secret_bytes(secret: &str) -> Result<Vec<u8>> {
    let secret = secret.trim();
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64_decode(encoded)
        .filter(|key| !key.is_empty())
        .ok_or(Error::InvalidKey(
            "Svix signing secret (whsec_ followed by base64)",
        ))
}

fn normalize(request: &RawRequest<'_>, row: &str, event: WireEvent, parsed: &mut Parsed) {
    let data = event.data;
    let external_id = data
        .email_id
        .map(|id| id.0.trim().to_owned())
        .filter(|id| !id.is_empty());
    let own_id = OWN_ID_KEYS
        .iter()
        .find_map(|name| data.tags.get(*name))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty());
    let Some((status, failure)) = status::classify(&event.kind) else {
        parsed.ignore(
            event.kind,
            own_id.or(external_id),
            "event type maps to no delivery status",
        );
        return;
    };
    let id = own_id.or_else(|| external_id.clone());
    let recipient = data.to.first().map(|to| address(to).to_owned());
    if id.is_none() && recipient.as_deref().is_none_or(str::is_empty) {
        parsed.ignore(
            event.kind,
            None,
            "the event carries no email_id and no recipient",
        );
        return;
    }
    let click = data.click.unwrap_or_default();
    let event_time = event
        .created_at
        .as_deref()
        .or(click.timestamp.as_deref())
        .unwrap_or("");
    let draft = Draft::new(ID, status, &event.kind);
    let delivery = request
        .header("svix-id")
        .or_else(|| request.header("webhook-id"));
    let draft = match delivery {
        Some(delivery) if !delivery.trim().is_empty() => draft.dedup_id(delivery.trim()),
        _ => draft.dedup_fields(&[
            external_id.as_deref().or(id.as_deref()).unwrap_or(""),
            &event.kind,
            recipient.as_deref().unwrap_or(""),
            event_time,
            click.link.as_deref().unwrap_or(""),
        ]),
    };
    let detail = data
        .bounce
        .or(data.failed)
        .or(data.suppressed)
        .unwrap_or_default();
    let response = detail
        .message
        .clone()
        .or_else(|| detail.reason.clone())
        .filter(|text| !text.trim().is_empty());
    let code = match (&detail.kind, &detail.sub_type) {
        (Some(kind), Some(sub)) => Some(format!("{kind}/{sub}")),
        (kind, sub) => kind.clone().or(sub.clone()).or(detail.reason.clone()),
    };
    // Resend reports permanent rejections as bounces, but passes on the receiver's own
    // classification: a `Transient` bounce is not a permanent failure.
    let failure = match detail.kind.as_deref() {
        Some("Transient") if status == tidings_core::Status::Bounced => {
            Some(tidings_core::Failure::Temporary)
        }
        _ => failure,
    };
    // Without an email_id the event is kept all the same, reported under its dedup key: it
    // still says something true about its recipient.
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(external_id)
            .date(time::parse(event_time))
            .recipient(recipient)
            .failure(failure)
            .code(code)
            .response(response)
            .row(row),
    );
}

/// The address inside `Name <address>`, or the text as it is.
fn address(to: &str) -> &str {
    to.rsplit_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(to, |(inside, _)| inside)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_addresses() {
        assert_eq!(address("Recipient <to@example.org>"), "to@example.org");
        assert_eq!(address("to2@example.org"), "to2@example.org");
        assert_eq!(address("broken <"), "broken <");
    }

    #[test]
    fn secrets_with_and_without_prefix() {
        let bytes = secret_bytes("whsec_VEVTVF9TSUdOSU5HX1NFQ1JFVA==");
        assert_eq!(bytes.as_deref().ok(), Some(&b"TEST_SIGNING_SECRET"[..]));
        assert_eq!(
            secret_bytes("VEVTVF9TSUdOSU5HX1NFQ1JFVA==").ok(),
            bytes.ok()
        );
        assert!(secret_bytes("whsec_!!").is_err());
    }
}
