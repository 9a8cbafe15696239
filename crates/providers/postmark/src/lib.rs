//! Postmark's delivery, bounce, spam complaint, open, click and subscription change webhooks:
//! one JSON record per request, told apart by `RecordType`.
//!
//! Docs: <https://postmarkapp.com/developer/webhooks/webhooks-overview> and the pages for each
//! record type under <https://postmarkapp.com/developer/webhooks/>; bounce types:
//! <https://postmarkapp.com/developer/api/bounce-api#bounce-types>.
//!
//! - Body: one JSON object per request (an array of them is accepted too). Inbound-message
//!   payloads (no `RecordType`) are ignored.
//! - Ids: `MessageID` is the provider message id (the id the send API returned). The sender's own
//!   id is read from `Metadata` (`id`, `novuMessageId` or `__nvMessageId`), which Postmark echoes
//!   on every record type. The bounce `ID` is a 64-bit integer, kept exact. A record with
//!   neither id is kept, reported under its dedup key, when it names a recipient (`Recipient`
//!   or `Email`); with no recipient either it is ignored.
//! - `date`: `DeliveredAt` (Delivery), `BouncedAt` (Bounce, SpamComplaint), `ReceivedAt` (Open,
//!   Click) or `ChangedAt` (SubscriptionChange), ISO 8601 with up to 7 fractional digits and an
//!   offset. The minimal `Bounce` of `Type: Unsubscribe` has none: the receive time is used.
//! - Dedup: the bounce `ID` for Bounce and SpamComplaint records; else the
//!   `X-PM-Webhook-Trace-Id` header, which Postmark keeps across retries of one event; else a hash
//!   of record type, message id, recipient, event time, link and suppression reason.
//! - Signature: none. Postmark sends the Basic credentials embedded in the webhook URL (or custom
//!   headers): configure Basic auth or an ApiKey header on the integration.

mod status;
mod wire;

use tidings_core::{Draft, Error, Parsed, ProviderParser, RawRequest, Result, json, time};

use crate::wire::Record;
use tidings_core::ids::OWN_ID_KEYS;

const ID: &str = "postmark";
const TRACE_HEADER: &str = "x-pm-webhook-trace-id";

tidings_core::provider! {
    /// Postmark webhooks.
    pub struct Postmark;
    id: ID,
    channel: Email,
    signature: Signature::None,
    media_types: [Json, Missing],
}

impl ProviderParser for Postmark {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        json::batch(ID, request.body, |row, record: Record, parsed| {
            normalize(request, row, record, parsed)
        })
    }
}

fn normalize(
    request: &RawRequest<'_>,
    row: &str,
    record: Record,
    parsed: &mut Parsed,
) -> Result<()> {
    let external_id = record
        .message_id
        .as_ref()
        .map(|id| id.as_str().trim().to_owned())
        .filter(|id| !id.is_empty());
    let Some(record_type) = record.record_type.as_deref() else {
        if record.from_full.is_some() {
            parsed.ignore(
                "Inbound",
                external_id,
                "an inbound message, not a tracking event (the inbound webhook points here)",
            );
            return Ok(());
        }
        return Err(Error::MissingField("RecordType"));
    };
    let provider_event = match record_type {
        "Bounce" => format!("Bounce (Type={})", record.kind.as_deref().unwrap_or("")),
        "SubscriptionChange" if record.suppress_sending == Some(true) => format!(
            "SubscriptionChange (SuppressSending=true, SuppressionReason={})",
            record.suppression_reason.as_deref().unwrap_or("")
        ),
        "SubscriptionChange" => "SubscriptionChange (SuppressSending=false)".to_owned(),
        other => other.to_owned(),
    };
    let own_id = OWN_ID_KEYS
        .iter()
        .find_map(|key| record.metadata.get(*key))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty());
    let id = own_id.or_else(|| external_id.clone());
    let recipient = record
        .recipient
        .clone()
        .or_else(|| record.email.clone())
        .filter(|r| !r.is_empty());
    if id.is_none() && recipient.as_deref().is_none_or(|r| r.trim().is_empty()) {
        parsed.ignore(
            provider_event,
            None,
            "the record carries no message id and no recipient",
        );
        return Ok(());
    }
    let Some((status, failure)) = status::classify(
        record_type,
        record.kind.as_deref(),
        record.suppress_sending,
        record.suppression_reason.as_deref(),
    ) else {
        let reason = if record_type == "SubscriptionChange" {
            "a reactivation (SuppressSending=false) is not a delivery state"
        } else {
            "record type maps to no delivery status"
        };
        parsed.ignore(provider_event, id, reason);
        return Ok(());
    };
    let event_time = record.event_time().unwrap_or("");
    let draft = Draft::new(ID, status, provider_event);
    let draft = match (&record.id, request.header(TRACE_HEADER)) {
        (Some(bounce_id), _) => draft.dedup_id(format!("{record_type}:{}", bounce_id.as_str())),
        (None, Some(trace)) if !trace.trim().is_empty() => {
            draft.dedup_id(format!("trace:{}", trace.trim()))
        }
        _ => draft.dedup_fields(&[
            record_type,
            external_id.as_deref().unwrap_or(""),
            recipient.as_deref().unwrap_or(""),
            event_time,
            record.original_link.as_deref().unwrap_or(""),
            record.suppression_reason.as_deref().unwrap_or(""),
        ]),
    };
    let response = [&record.details, &record.description]
        .into_iter()
        .flatten()
        .map(|text| text.trim())
        .find(|text| !text.is_empty())
        .map(str::to_owned);
    // A record without a message id (a suppression added by hand or through the API) is kept
    // all the same, reported under its dedup key: it still says something true about its
    // recipient.
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(external_id)
            .date(time::parse(event_time))
            .recipient(recipient)
            .failure(failure)
            .code(record.type_code.map(|code| code.0))
            .response(response)
            .row(row),
    );
    Ok(())
}
