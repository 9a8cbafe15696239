//! Termii events and reports: one JSON object per message status change, signed with an
//! HMAC-SHA512 of the body.
//!
//! Docs: <https://developer.termii.com/events-and-reports>.
//!
//! - Body: a JSON object: `type` (`outbound` for delivery reports), `message_id` (and the same
//!   value in `id`), `receiver`, `sender`, `message`, `sent_at`, `cost`, `status`, `channel`.
//!   The 2020 format writes `status` as `<STATE> | <description>`; the description becomes
//!   `response`. Events of another `type` (inbound messages) are ignored.
//! - Ids: `message_id` (else `id`) is both the result id and the provider message id: Termii
//!   echoes no value of the sender's.
//! - `date`: the receive time. Termii sends no event time: `sent_at` is when the message was
//!   sent, in an unstated zone, not when the reported status happened.
//! - Dedup: no event id, so the key hashes `message_id`, `status`, `receiver` and `sent_at`.
//! - Signature: `X-Termii-Signature` = hex HMAC-SHA512 of the raw body with the account's secret
//!   key. No timestamp.

mod status;
mod wire;

use tidings_core::signature::{hex_matches, hmac_sha512};
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, Status, json,
};

use crate::wire::Report;

const ID: &str = "termii";

tidings_core::provider! {
    /// Termii events and reports.
    pub struct Termii;
    id: ID,
    channel: Sms,
    signature: Signature::Keyed("hmac-sha512"),
    media_types: [Json, Missing],
}

impl ProviderParser for Termii {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header("x-termii-signature")
            .ok_or(Error::MissingHeader("X-Termii-Signature"))?;
        credentials.any_key_matches(|key| {
            let expected = hmac_sha512(key.expose().as_bytes(), &[request.body]);
            hex_matches(&expected, signature)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let report: Report = json::read_slice(ID, request.body)?;
        let row = String::from_utf8_lossy(request.body);
        let mut parsed = Parsed::default();
        normalize(request, report, row.trim(), &mut parsed)?;
        Ok(parsed)
    }
}

fn normalize(
    request: &RawRequest<'_>,
    report: Report,
    row: &str,
    parsed: &mut Parsed,
) -> Result<()> {
    let message_id = report
        .message_id
        .or(report.id)
        .ok_or(Error::MissingField("message_id"))?;
    let provider_event = report.status.ok_or(Error::MissingField("status"))?;
    if let Some(kind) = report.kind.as_deref().map(str::trim)
        && !kind.eq_ignore_ascii_case("outbound")
    {
        parsed.ignore(
            format!("{kind}: {provider_event}"),
            Some(message_id),
            "not a report on an outbound message",
        );
        return Ok(());
    }
    let (state, description) = match provider_event.split_once(" | ") {
        Some((state, description)) => (state, Some(description.trim())),
        None => (provider_event.as_str(), None),
    };
    let Some((status, failure)) = status::classify(state) else {
        parsed.ignore(
            provider_event,
            Some(message_id),
            "status maps to no delivery status",
        );
        return Ok(());
    };
    // The 2020 format's description, else the status text itself for failures (it is the
    // only reason Termii gives: `DND Active on Phone Number`).
    let response = description
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            matches!(
                status,
                Status::Rejected | Status::Failed | Status::Undelivered
            )
            .then(|| provider_event.clone())
        });
    let draft = Draft::new(ID, status, &provider_event).dedup_fields(&[
        &message_id,
        &provider_event,
        report.receiver.as_deref().unwrap_or(""),
        report.sent_at.as_deref().unwrap_or(""),
    ]);
    parsed.push(
        request,
        draft
            .external_id(message_id)
            .recipient(report.receiver)
            .failure(failure)
            .response(response)
            .row(row),
    );
    Ok(())
}
