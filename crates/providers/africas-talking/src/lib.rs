//! Africa's Talking SMS delivery reports: one form-encoded report per message status change,
//! posted to the delivery reports callback URL set in the dashboard.
//!
//! Docs: <https://developers.africastalking.com/docs/sms/notifications>.
//!
//! - Body: `application/x-www-form-urlencoded` fields `id`, `status`, `phoneNumber`,
//!   `networkCode`, `failureReason` (only on `Rejected`/`Failed`) and `retryCount`; `row` is
//!   the fields as a JSON object.
//! - Ids: `id` (`ATXid_...`) is both the result id and the provider message id: Africa's
//!   Talking echoes no value of the sender's.
//! - `date`: the receive time: the report carries no time.
//! - `attempts`: `retryCount` + 1 (the first attempt is not a retry).
//! - Dedup: no event id, so the key hashes `id`, `status`, `phoneNumber`, `retryCount` and
//!   `failureReason`.
//! - Signature: none. Africa's Talking does not sign callbacks; protect the URL with ApiKey or
//!   Basic auth.

mod status;
mod wire;

use tidings_core::{Draft, Error, Parsed, ProviderParser, RawRequest, Result};

use crate::wire::Report;

const ID: &str = "africas-talking";

tidings_core::provider! {
    /// Africa's Talking SMS delivery reports.
    pub struct AfricasTalking;
    id: ID,
    aliases: ["africastalking"],
    channel: Sms,
    signature: Signature::None,
    media_types: [Form, Multipart],
}

impl ProviderParser for AfricasTalking {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let report = Report::from_form(&request.form()?);
        let mut parsed = Parsed::default();
        normalize(request, report, &mut parsed)?;
        Ok(parsed)
    }
}

fn normalize(request: &RawRequest<'_>, report: Report, parsed: &mut Parsed) -> Result<()> {
    let id = report.id.ok_or(Error::MissingField("id"))?;
    let provider_event = report.status.ok_or(Error::MissingField("status"))?;
    let Some((status, failure)) =
        status::classify(&provider_event, report.failure_reason.as_deref())
    else {
        parsed.ignore(
            provider_event,
            Some(id),
            "status maps to no delivery status",
        );
        return Ok(());
    };
    let retries = report
        .retry_count
        .map(|n| n.to_string())
        .unwrap_or_default();
    let draft = Draft::new(ID, status, &provider_event).dedup_fields(&[
        &id,
        &provider_event,
        report.phone_number.as_deref().unwrap_or(""),
        &retries,
        report.failure_reason.as_deref().unwrap_or(""),
    ]);
    parsed.push(
        request,
        draft
            .external_id(id)
            .attempts(report.retry_count.map(|n| n.saturating_add(1)))
            .response(report.failure_reason.clone())
            .recipient(report.phone_number)
            .failure(failure)
            .code(report.failure_reason)
            .row(report.row),
    );
    Ok(())
}
