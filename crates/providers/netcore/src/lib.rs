//! Netcore Email API (formerly Pepipost): batches of delivery and engagement events.
//!
//! Docs: <https://emaildocs.netcorecloud.com/docs/what-are-the-different-webhooks-format> and
//! <https://emaildocs.netcorecloud.com/docs/repository-outline>.
//!
//! - Body: a JSON array of up to 100 flat events with upper-case fields (`EVENT`, `TRANSID`,
//!   `EMAIL`, `TIMESTAMP`, `RESPONSE`, ...); a bare object is accepted too. The empty array
//!   Netcore posts to check a new webhook URL gives no events. The lower-case format of
//!   Netcore's migration webhooks (`event`, `sg_message_id`, `email`, `timestamp`, `response`,
//!   `reason`; <https://emaildev.netcorecloud.com/migration-api/new-subpage/migration-webhooks>)
//!   reads the same way.
//! - Ids: `TRANSID` is the transaction id (`externalId`): a 64-bit integer, kept exact. The result
//!   id is the sender's own value from `X-APIHEADER` (set per recipient at send time), else
//!   `TRANSID`, else (an event without either) the dedup key.
//! - `date`: `TIMESTAMP`, Unix seconds; the receive time only when it is absent.
//! - Dedup: Netcore has no event id, so a hash of `TRANSID`, `RCPTID`, event, recipient,
//!   `TIMESTAMP` and clicked URL.
//! - Signature: none (Netcore only documents its source IP range), so integrations use ApiKey or
//!   Basic auth.

mod status;
mod wire;

use tidings_core::{Draft, Parsed, ProviderParser, RawRequest, Result, json, non_empty, time};

use crate::wire::NetcoreEvent;

const ID: &str = "netcore";

tidings_core::provider! {
    /// Netcore Email API webhooks.
    pub struct Netcore;
    id: ID,
    aliases: ["pepipost"],
    channel: Email,
    signature: Signature::None,
    media_types: [Json, Missing],
}

impl ProviderParser for Netcore {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        let mut parsed = Parsed::default();
        let rows = json::rows(ID, request.body)?;
        // One row that names no event is ignored; the rest of the batch is kept.
        json::tolerant_rows(
            &rows,
            "EVENT",
            "the row is no event this parser can read",
            |event: &NetcoreEvent| event.event.is_some(),
            &mut parsed,
            |row, event, parsed| {
                normalize(request, row, event, parsed);
                Ok(())
            },
        )?;
        Ok(parsed)
    }
}

fn normalize(request: &RawRequest<'_>, row: &str, event: NetcoreEvent, parsed: &mut Parsed) {
    let name = event.event.clone().unwrap_or_default();
    let transid = non_empty(event.transid.as_ref().map(|id| id.as_str()));
    let own_id = non_empty(event.api_header.as_ref().map(|id| id.as_str()));
    let id = own_id.or(transid).map(str::to_owned);
    let Some((status, failure)) = status::classify(&name, event.bounce_type.as_deref()) else {
        parsed.ignore(name, id, "event type maps to no delivery status");
        return;
    };
    let timestamp = wire::timestamp_text(event.timestamp.as_ref());
    let recipient = non_empty(event.email.as_deref()).map(str::to_owned);
    let provider_event = match non_empty(event.bounce_type.as_deref()) {
        Some(kind) => format!("{name} ({kind})"),
        None => name.clone(),
    };
    let draft = Draft::new(ID, status, provider_event).dedup_fields(&[
        transid.or(id.as_deref()).unwrap_or(""),
        non_empty(event.rcptid.as_ref().map(|r| r.as_str())).unwrap_or(""),
        &name,
        recipient.as_deref().unwrap_or(""),
        timestamp.as_deref().unwrap_or(""),
        event.url.as_deref().unwrap_or(""),
    ]);
    let response =
        non_empty(event.response.as_deref()).or(non_empty(event.bounce_reason.as_deref()));
    let code = non_empty(event.bounce_reason_id.as_ref().map(|c| c.as_str())).filter(|c| *c != "0");
    // An event without TRANSID still says something true about its recipient (a bounce, a
    // complaint): it is kept, reported under its dedup key (core's fallback).
    parsed.push(
        request,
        draft
            .own_id(id)
            .external_id(transid.map(str::to_owned))
            .date(timestamp.as_deref().and_then(time::parse))
            .recipient(recipient)
            .failure(failure)
            .code(code.map(str::to_owned))
            .response(response.map(str::to_owned))
            .row(row),
    );
}
