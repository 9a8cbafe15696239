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

use tidings_core::signature::{base64_matches, check_window, hmac_sha256, hmac_sha512};
use tidings_core::{
    Channel, Credentials, Error, Event, EventBody, Ignored, MediaType, Parsed, ProviderParser,
    RawRequest, Result, Signature, ids, time,
};

use crate::wire::Report;

const ID: &str = "sinch";
/// Sinch retries a callback for up to 22 h 45 min: the default window covers that, with margin.
const DEFAULT_TOLERANCE: chrono::Duration = chrono::Duration::hours(25);

/// Sinch SMS delivery reports.
pub struct Sinch;

tidings_core::register_provider!(Sinch);

impl ProviderParser for Sinch {
    fn id(&self) -> &'static str {
        ID
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn signature(&self) -> Signature {
        Signature::Keyed("hmac-sha256")
    }

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
        if let Some(tolerance) = credentials.freshness.tolerance(Some(DEFAULT_TOLERANCE)) {
            let signed_at = timestamp
                .trim()
                .parse()
                .ok()
                .and_then(time::from_unix_seconds)
                .ok_or(Error::MalformedSignature(
                    "x-sinch-webhook-signature-timestamp",
                ))?;
            check_window(signed_at, request.received_at, tolerance)?;
        }
        let parts: [&[u8]; 5] = [
            request.body,
            b".",
            nonce.as_bytes(),
            b".",
            timestamp.as_bytes(),
        ];
        credentials.any_key(|key| {
            let key = key.expose().as_bytes();
            let matches = if sha512 {
                base64_matches(&hmac_sha512(key, &parts), signature)
            } else {
                base64_matches(&hmac_sha256(key, &parts), signature)
            };
            if matches {
                Ok(())
            } else {
                Err(Error::SignatureMismatch)
            }
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        match request.media_type() {
            MediaType::Json | MediaType::Missing => {}
            _ => return Err(request.unsupported(ID)),
        }
        let report: Report =
            serde_json::from_slice(request.body).map_err(|e| Error::json(ID, &e))?;
        let row = String::from_utf8_lossy(request.body);
        let mut parsed = Parsed::default();
        match report.kind.as_str() {
            "recipient_delivery_report_sms" | "recipient_delivery_report_mms" => {
                per_recipient(request, report, row.trim(), &mut parsed)?;
            }
            "delivery_report_sms" | "delivery_report_mms" => {
                batch(request, report, &mut parsed)?;
            }
            other => parsed.ignored.push(Ignored {
                provider_event: other.to_owned(),
                id: report.client_reference.or(report.batch_id.map(|id| id.0)),
                reason: "not a delivery report".into(),
            }),
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
        parsed.ignored.push(unmapped(status_name, id));
        return Ok(());
    };
    let date = [report.operator_status_at.as_deref(), report.at.as_deref()]
        .into_iter()
        .flatten()
        .find_map(time::parse)
        .unwrap_or(request.received_at);
    let dedup_key = ids::dedup_from_fields(
        ID,
        &[
            &batch_id,
            report.recipient.as_deref().unwrap_or(""),
            &status_name,
            report.code.as_deref().unwrap_or(""),
            report.operator_status_at.as_deref().unwrap_or(""),
            report.at.as_deref().unwrap_or(""),
        ],
    );
    parsed.events.push(Event {
        id,
        body: EventBody {
            status,
            date,
            external_id: Some(batch_id),
            attempts: None,
            response: report.status_message.filter(|m| !m.is_empty()),
            row: Some(row.to_owned()),
        },
        dedup_key,
        provider_event: status_name,
        recipient: report.recipient,
        failure,
        code: report.code,
        automated: None,
    });
    Ok(())
}

/// A batch report: one event per recipient of every status group. `row` is that recipient's
/// part of the report, as JSON.
fn batch(request: &RawRequest<'_>, report: Report, parsed: &mut Parsed) -> Result<()> {
    let batch_id = report.batch_id.ok_or(Error::MissingField("batch_id"))?.0;
    let id = report.client_reference.unwrap_or_else(|| batch_id.clone());
    for group in report.statuses {
        let Some((status, failure)) = status::classify(&group.status) else {
            parsed.ignored.push(unmapped(group.status, id.clone()));
            continue;
        };
        if group.recipients.is_empty() {
            parsed.ignored.push(Ignored {
                provider_event: group.status,
                id: Some(id.clone()),
                reason: "summary report: counts without recipients".into(),
            });
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
            parsed.events.push(Event {
                id: id.clone(),
                body: EventBody {
                    status,
                    date: request.received_at,
                    external_id: Some(batch_id.clone()),
                    attempts: None,
                    response: None,
                    row: Some(serde_json::Value::Object(row).to_string()),
                },
                dedup_key: ids::dedup_from_fields(
                    ID,
                    &[
                        &batch_id,
                        &recipient,
                        &group.status,
                        group.code.as_deref().unwrap_or(""),
                    ],
                ),
                provider_event: group.status.clone(),
                recipient: Some(recipient),
                failure,
                code: group.code.clone(),
                automated: None,
            });
        }
    }
    Ok(())
}

fn unmapped(provider_event: String, id: String) -> Ignored {
    Ignored {
        provider_event,
        id: Some(id),
        reason: "status maps to no delivery status".into(),
    }
}
