//! Sinch SMS (XMS REST API) delivery reports: a batch report when a whole batch is final, or one
//! report per recipient and status change, posted to the batch's `callback_url`.
//!
//! Docs: <https://developers.sinch.com/docs/sms/api-reference/sms/tag/Delivery-reports/> and
//! <https://developers.sinch.com/docs/sms/api-reference/sms/tag/Webhooks/>.
//!
//! - Body: a JSON object. `type: delivery_report_sms` (or `_mms`) is a batch report whose
//!   `statuses[]` group `recipients` by status and code: one event per recipient (`summary`
//!   reports list no recipients and are ignored). `type: recipient_delivery_report_sms` (or
//!   `_mms`) is one recipient's status.
//! - Ids: `batch_id` is the provider message id (one batch per send request; a message is
//!   `batch_id` + `recipient`). `client_reference`, the sender's own value, is the result id when
//!   present.
//! - `date`: per-recipient reports: `operator_status_at` (the operator's time), else `at`. Batch
//!   reports carry no time, so their events take the receive time.
//! - Dedup: no event id, so the key hashes `batch_id`, `recipient`, `status`, `code` and the
//!   report's times.
//! - Signature (when signed callbacks are enabled for the account):
//!   `x-sinch-webhook-signature` = base64 HMAC of `body ‖ "." ‖ nonce ‖ "." ‖ timestamp` with the
//!   webhook secret, nonce and Unix-seconds timestamp in `x-sinch-webhook-signature-nonce` and
//!   `-timestamp`, algorithm in `-algorithm` (`HmacSHA256`, the default, or `HmacSHA512`). Sinch
//!   documents no timestamp window; its last retry comes 81,920 s (22 h 45 min) after the first
//!   failed attempt, so the default window is 25 h (`signature_tolerance_secs` overrides it).

mod status;
mod wire;

use tidings_core::signature::{base64_matches, check_signed_seconds, hmac_sha256, hmac_sha512};
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, json, time,
};

use crate::wire::Report;

const ID: &str = "sinch";
/// Sinch retries a callback for up to 22 h 45 min: the default window covers that, with margin.
const DEFAULT_TOLERANCE: chrono::Duration = chrono::Duration::hours(25);

tidings_core::provider! {
    /// Sinch SMS delivery reports.
    pub struct Sinch;
    id: ID,
    channel: Sms,
    signature: Signature::Keyed("hmac-sha256"),
    media_types: [Json, Missing],
}

impl ProviderParser for Sinch {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let signature = request
            .header("x-sinch-webhook-signature")
            .ok_or(Error::MissingHeader("x-sinch-webhook-signature"))?;
        let nonce = request
            .header("x-sinch-webhook-signature-nonce")
            .ok_or(Error::MissingHeader("x-sinch-webhook-signature-nonce"))?;
        let timestamp = request
            .header("x-sinch-webhook-signature-timestamp")
            .ok_or(Error::MissingHeader("x-sinch-webhook-signature-timestamp"))?;
        let sha512 = match request
            .header("x-sinch-webhook-signature-algorithm")
            .map(|a| a.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("hmacsha256") => false,
            Some("hmacsha512") => true,
            Some(_) => {
                return Err(Error::MalformedSignature(
                    "x-sinch-webhook-signature-algorithm",
                ));
            }
        };
        check_signed_seconds(
            timestamp,
            "x-sinch-webhook-signature-timestamp",
            request.received_at,
            credentials.freshness.tolerance(Some(DEFAULT_TOLERANCE)),
        )?;
        let parts: [&[u8]; 5] = [
            request.body,
            b".",
            nonce.as_bytes(),
            b".",
            timestamp.as_bytes(),
        ];
        credentials.any_key_matches(|key| {
            let key = key.expose().as_bytes();
            if sha512 {
                base64_matches(&hmac_sha512(key, &parts), signature)
            } else {
                base64_matches(&hmac_sha256(key, &parts), signature)
            }
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let report: Report = json::read_slice(ID, request.body)?;
        let row = String::from_utf8_lossy(request.body);
        let mut parsed = Parsed::default();
        match report.kind.as_str() {
            "recipient_delivery_report_sms" | "recipient_delivery_report_mms" => {
                per_recipient(request, report, row.trim(), &mut parsed)?;
            }
            "delivery_report_sms" | "delivery_report_mms" => {
                batch(request, report, &mut parsed)?;
            }
            other => parsed.ignore(
                other,
                report.client_reference.or(report.batch_id.map(|id| id.0)),
                "not a delivery report",
            ),
        }
        Ok(parsed)
    }
}

/// One recipient's status: one event.
fn per_recipient(
    request: &RawRequest<'_>,
    report: Report,
    row: &str,
    parsed: &mut Parsed,
) -> Result<()> {
    let batch_id = report.batch_id.ok_or(Error::MissingField("batch_id"))?.0;
    let status_name = report.status.ok_or(Error::MissingField("status"))?;
    let id = report.client_reference.unwrap_or_else(|| batch_id.clone());
    let Some((status, failure)) = status::classify(&status_name) else {
        parsed.ignore(status_name, Some(id), UNMAPPED);
        return Ok(());
    };
    let date = [report.operator_status_at.as_deref(), report.at.as_deref()]
        .into_iter()
        .flatten()
        .find_map(time::parse);
    let draft = Draft::new(ID, status, &status_name).dedup_fields(&[
        &batch_id,
        report.recipient.as_deref().unwrap_or(""),
        &status_name,
        report.code.as_deref().unwrap_or(""),
        report.operator_status_at.as_deref().unwrap_or(""),
        report.at.as_deref().unwrap_or(""),
    ]);
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(batch_id)
            .date(date)
            .recipient(report.recipient)
            .failure(failure)
            .code(report.code)
            .response(report.status_message.filter(|m| !m.is_empty()))
            .row(row),
    );
    Ok(())
}

/// A batch report: one event per recipient of every status group. `row` is that recipient's
/// part of the report, as JSON.
fn batch(request: &RawRequest<'_>, report: Report, parsed: &mut Parsed) -> Result<()> {
    let batch_id = report.batch_id.ok_or(Error::MissingField("batch_id"))?.0;
    let id = report.client_reference.unwrap_or_else(|| batch_id.clone());
    for group in report.statuses {
        let Some((status, failure)) = status::classify(&group.status) else {
            parsed.ignore(group.status, Some(id.clone()), UNMAPPED);
            continue;
        };
        if group.recipients.is_empty() {
            parsed.ignore(
                group.status,
                Some(id.clone()),
                "summary report: counts without recipients",
            );
            continue;
        }
        for recipient in group.recipients {
            let mut row = serde_json::Map::new();
            row.insert("type".into(), report.kind.clone().into());
            row.insert("batch_id".into(), batch_id.clone().into());
            if id != batch_id {
                row.insert("client_reference".into(), id.clone().into());
            }
            row.insert("status".into(), group.status.clone().into());
            if let Some(code) = &group.code {
                row.insert("code".into(), code.clone().into());
            }
            row.insert("recipient".into(), recipient.clone().into());
            let draft = Draft::new(ID, status, &group.status).dedup_fields(&[
                &batch_id,
                &recipient,
                &group.status,
                group.code.as_deref().unwrap_or(""),
            ]);
            parsed.push(
                request,
                draft
                    .own_id(id.clone())
                    .external_id(batch_id.clone())
                    .recipient(recipient)
                    .failure(failure)
                    .code(group.code.clone())
                    .row(serde_json::Value::Object(row).to_string()),
            );
        }
    }
    Ok(())
}

const UNMAPPED: &str = "status maps to no delivery status";
