//! Expo push: Expo posts no webhooks (receipts are polled), so Tidings takes Novu's push
//! contract (what the app reports) and the tickets and receipts a sender forwards.
//!
//! Docs: <https://docs.expo.dev/push-notifications/sending-notifications/#push-receipts> and
//! <https://docs.novu.co/platform/integrations/push/push-activity-tracking>.
//!
//! - Body: one JSON object, either Novu's push contract (see [`tidings_push_contract`]), or an
//!   Expo response: receipts `{"data": {"<receipt id>": {"status": "ok"} | {"status": "error",
//!   "message", "details": {"error"}}}}` give one event per receipt in body order (ok is
//!   `delivered`, error `failed` with `details.error` as `code` and `message` as `response`);
//!   tickets `{"data": [ticket, ...]}` (or one ticket) give `failed` per error ticket, ok tickets
//!   are ignored (their receipt follows). Request-level `errors` are ignored.
//! - Ids: the contract's `eventId`. A receipt's id is its receipt id (Novu keeps the ticket id,
//!   which is the receipt id, as the message id), also `externalId`. An error ticket has no id:
//!   the sender's `eventId` (object or query string, see
//!   [`tidings_push_contract::Forwarded`]), else the `expoPushToken` it names.
//! - `date`: the contract's `timestamp`; Expo responses carry no time, so the receive time.
//! - Dedup: contract: a hash of `eventId`, `eventType`, `deviceId`, `timestamp`; receipts: a
//!   hash of the receipt id and outcome (a receipt polled twice is stored once); error
//!   tickets: a hash of the references, token, error and position (never the receive time).
//! - Signature: none (Expo sends nothing); the service authenticates with `ApiKey`.

mod status;
mod wire;

use tidings_core::{Error, Parsed, ProviderParser, RawRequest, Result, json};
use tidings_push_contract::{Forwarded, Report};

use crate::wire::{Body, Entries, Outcome};

const ID: &str = "expo";

tidings_core::provider! {
    /// Expo push notifications.
    pub struct Expo;
    id: ID,
    channel: Push,
    signature: Signature::None,
    media_types: [Json, Text, Missing],
}

impl ProviderParser for Expo {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if let Some(parsed) = tidings_push_contract::contract(ID, request)? {
            return Ok(parsed);
        }
        if !json::is_object(request.body) {
            return Err(not_expo());
        }
        let body: Body<'_> = json::read_slice(ID, request.body)?;
        let mut parsed = Parsed::default();
        let forwarded = Forwarded::from_request(request);
        match body.data {
            Some(data) if data.get().starts_with('[') => {
                let tickets: Vec<&serde_json::value::RawValue> = json::read(ID, data.get())?;
                for (position, row) in tickets.into_iter().enumerate() {
                    ticket(request, &forwarded, position, row.get(), &mut parsed)?;
                }
            }
            Some(data) if data.get().starts_with('{') => {
                let single: Outcome = json::read(ID, data.get())?;
                if single.status.is_some() {
                    ticket(request, &forwarded, 0, data.get(), &mut parsed)?;
                } else {
                    let receipts: Entries<'_> = json::read(ID, data.get())?;
                    for (receipt_id, row) in receipts.0 {
                        receipt(request, receipt_id, row.get(), &mut parsed)?;
                    }
                }
            }
            Some(_) => return Err(not_expo()),
            None if body.errors.is_none() => return Err(not_expo()),
            None => {}
        }
        for error in body.errors.unwrap_or_default() {
            let code = error.get("code").and_then(|c| c.as_str());
            parsed.ignore(
                code.unwrap_or("error"),
                None,
                "Expo refused the whole request: no message to update",
            );
        }
        Ok(parsed)
    }
}

/// One push receipt: `delivered` or `failed`, under its receipt id.
fn receipt(request: &RawRequest<'_>, id: String, row: &str, parsed: &mut Parsed) -> Result<()> {
    let outcome: Outcome = json::read(ID, row)?;
    let state = outcome.status.clone().unwrap_or_default();
    let error = outcome.details.as_ref().and_then(|d| d.error.clone());
    let Some((status, failure)) = status::classify(true, &state, error.as_deref()) else {
        parsed.ignore(
            format!("receipt {state}"),
            Some(id),
            "receipt status maps to no delivery status",
        );
        return Ok(());
    };
    let report = Report {
        provider_event: error.clone().unwrap_or_else(|| format!("receipt {state}")),
        status: Some(status),
        external_id: Some(id),
        recipient: outcome.details.and_then(|d| d.expo_push_token),
        code: error,
        response: outcome.message,
        failure,
        row: row.to_owned(),
        ..Report::default()
    };
    // A receipt names its message: the sender's request-level references do not apply.
    parsed
        .events
        .push(Forwarded::default().event(ID, request, report));
    Ok(())
}

/// One push ticket: errors are `failed`; ok tickets are ignored until their receipt.
fn ticket(
    request: &RawRequest<'_>,
    forwarded: &Forwarded,
    position: usize,
    row: &str,
    parsed: &mut Parsed,
) -> Result<()> {
    let outcome: Outcome = json::read(ID, row)?;
    let state = outcome.status.clone().unwrap_or_default();
    let error = outcome.details.as_ref().and_then(|d| d.error.clone());
    let Some((status, failure)) = status::classify(false, &state, error.as_deref()) else {
        parsed.ignore(
            format!("ticket {state}"),
            outcome.id.map(|id| id.0),
            "Expo queued the message; its push receipt reports the outcome",
        );
        return Ok(());
    };
    parsed.events.push(forwarded.event(
        ID,
        request,
        Report {
            provider_event: error.clone().unwrap_or_else(|| format!("ticket {state}")),
            status: Some(status),
            external_id: outcome.id.map(|id| id.0),
            recipient: outcome.details.and_then(|d| d.expo_push_token),
            code: error,
            response: outcome.message,
            failure,
            discriminator: position.to_string(),
            row: row.to_owned(),
            ..Report::default()
        },
    ));
    Ok(())
}

fn not_expo() -> Error {
    Error::malformed(
        ID,
        "expected Novu's push contract (`eventType`, `eventId`) or an Expo push response (`data`)",
    )
}
