//! Infobip SMS delivery reports: batches of final (and, where enabled, intermediate) message
//! statuses posted to the message's `notifyUrl` or the account's subscription.
//!
//! Docs: <https://www.infobip.com/docs/api/channels/sms/sms-messaging/logs-and-status-reports/receive-outbound-sms-message-report>
//! and the status table <https://www.infobip.com/docs/essentials/api-essentials/response-status-and-error-codes>.
//!
//! - Body: a JSON object `{"results": [...]}`, one report per message and recipient (up to 100
//!   per request by default).
//! - Ids: `messageId` is the provider message id; `callbackData`, the value the sender attached
//!   at send time, is the result id when present. `bulkId` is not used. A report without
//!   `messageId` is kept (under `callbackData`, else its dedup key) when it names a recipient
//!   (`to`); with neither it is ignored.
//! - `date`: `doneAt` (when Infobip finished processing the message), else `sentAt`; both ISO
//!   8601 with `+0000` (v2) or `+01:00` (v3) offsets. The receive time only when neither parses.
//! - Status: `status.groupId` refined by `status.id` (see `status.rs`); `error.name` is the code
//!   and `error.permanent` the failure kind when `error.id` is not 0 (`NO_ERROR`).
//! - Dedup: Infobip sends no event id, so the key hashes `messageId`, `status.id`, `to`,
//!   `doneAt` and `error.id`.
//! - Signature: none. Infobip does not sign delivery reports; protect the URL with ApiKey or
//!   Basic auth.

mod status;
mod wire;

use tidings_core::{Draft, Parsed, ProviderParser, RawRequest, Result, json, time};

use crate::wire::{Code, Report, Reports};

const ID: &str = "infobip-sms";

tidings_core::provider! {
    /// Infobip SMS delivery reports.
    pub struct InfobipSms;
    id: ID,
    channel: Sms,
    signature: Signature::None,
    media_types: [Json, Missing],
}

impl ProviderParser for InfobipSms {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let body: Reports<'_> = json::read_slice(ID, request.body)?;
        let mut parsed = Parsed::default();
        for row in body.results {
            let report: Report = json::read(ID, row.get())?;
            normalize(request, row.get(), report, &mut parsed);
        }
        Ok(parsed)
    }
}

fn normalize(request: &RawRequest<'_>, row: &str, report: Report, parsed: &mut Parsed) {
    let status = report.status.unwrap_or_default();
    let provider_event = status
        .name
        .clone()
        .or_else(|| status.group_name.clone())
        .unwrap_or_else(|| "(no status)".into());
    let message_id = report.message_id.map(|id| id.0).filter(|id| !id.is_empty());
    let recipient = report.to.filter(|to| !to.is_empty());
    if message_id.is_none() && recipient.is_none() {
        parsed.ignore(
            provider_event,
            report.callback_data,
            "the report carries no messageId and no recipient",
        );
        return;
    }
    // `error` with id 0 is Infobip's `NO_ERROR`: not an error at all.
    let error = report.error.filter(|e| e.id.is_some_and(|id| id != 0));
    let Some((status_kind, failure)) = status::classify(
        status.group_id,
        status.group_name.as_deref(),
        status.id,
        error.as_ref().and_then(|e| e.permanent),
    ) else {
        parsed.ignore(
            provider_event,
            report.callback_data.or(message_id),
            "status group maps to no delivery status",
        );
        return;
    };
    let date = [report.done_at.as_deref(), report.sent_at.as_deref()]
        .into_iter()
        .flatten()
        .find_map(time::parse);
    let draft = Draft::new(ID, status_kind, &provider_event).dedup_fields(&[
        message_id
            .as_deref()
            .or(report.callback_data.as_deref())
            .unwrap_or(""),
        &status
            .id
            .map(|id| id.to_string())
            .unwrap_or_else(|| provider_event.clone()),
        recipient.as_deref().unwrap_or(""),
        report.done_at.as_deref().unwrap_or(""),
        &error
            .as_ref()
            .and_then(|e| e.id)
            .map(|id| id.to_string())
            .unwrap_or_default(),
    ]);
    let response = error
        .as_ref()
        .and_then(|e| e.description.clone())
        .or(status.description)
        .filter(|text| !text.is_empty());
    let code = error.as_ref().and_then(code_of);
    // A report without a messageId is kept all the same, reported under its callbackData or
    // its dedup key: it still says something true about its recipient.
    parsed.push(
        request,
        draft
            .own_id(report.callback_data)
            .external_id(message_id)
            .date(date)
            .recipient(recipient)
            .failure(failure)
            .code(code)
            .response(response)
            .row(row),
    );
}

/// The error's name (`EC_ABSENT_SUBSCRIBER`), else its numeric id.
fn code_of(error: &Code) -> Option<String> {
    error
        .name
        .clone()
        .filter(|name| !name.is_empty())
        .or_else(|| error.id.map(|id| id.to_string()))
}
