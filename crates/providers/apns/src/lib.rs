//! Apple Push Notification service: APNs has no webhook and no receipts, so Tidings takes
//! Novu's push contract (what the app reports) and the send responses a sender forwards.
//!
//! Docs: <https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns>
//! and <https://docs.novu.co/platform/integrations/push/push-activity-tracking>.
//!
//! - Body: one JSON object, either Novu's push contract (see [`tidings_push_contract`]), or an
//!   APNs response body forwarded with its `apns-id` header: `{"reason": "BadDeviceToken"}` is
//!   `failed` (reason as `code` and `response`), the empty success body (or `{}`) is ignored
//!   (APNs accepted it; nothing follows). The `@parse/node-apn` result Novu's APNs integration
//!   gets, `{"sent": [{device}], "failed": [{device, status, response: {reason}}]}`, gives one
//!   `failed` per failed device; sent devices are ignored.
//! - Ids: the contract's `eventId`. For responses the sender's `eventId` (in the object or the
//!   URL's query string, see [`tidings_push_contract::Forwarded`]), else the `apns-id` header
//!   (`externalId`), else the device token (the id Novu keeps for APNs sends).
//! - `date`: the contract's `timestamp`; responses carry no event time (a 410's `timestamp` is
//!   when the token stopped being valid, kept in `row`), so the receive time.
//! - Dedup: contract: a hash of `eventId`, `eventType`, `deviceId`, `timestamp`; responses: a
//!   hash of the sender's references, `apns-id`, device and reason, plus the receive time when
//!   neither `eventId` nor `apns-id` names the message.
//! - Signature: none (APNs sends nothing); the service authenticates with `ApiKey`.

mod status;
mod wire;

use tidings_core::{Error, Parsed, ProviderParser, RawRequest, Result, json, non_empty};
use tidings_push_contract::{Forwarded, Report};

use crate::wire::{Body, DeviceResult};

const ID: &str = "apns";
const APNS_ID_HEADER: &str = "apns-id";

tidings_core::provider! {
    /// Apple Push Notification service.
    pub struct Apns;
    id: ID,
    channel: Push,
    signature: Signature::None,
    media_types: [Json, Text, Missing],
}

impl ProviderParser for Apns {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if let Some(parsed) = tidings_push_contract::contract(ID, request)? {
            return Ok(parsed);
        }
        let apns_id = non_empty(request.header(APNS_ID_HEADER)).map(str::to_owned);
        let mut parsed = Parsed::default();
        if request.body.iter().all(u8::is_ascii_whitespace) && apns_id.is_some() {
            accepted(&mut parsed, apns_id);
            return Ok(parsed);
        }
        if !json::is_object(request.body) {
            return Err(not_apns());
        }
        let body: Body<'_> = json::read_slice(ID, request.body)?;
        let forwarded = Forwarded::from_request(request);
        if let Some(reason) = body.reason {
            parsed.events.push(forwarded.event(
                ID,
                request,
                Report {
                    failure: status::failure(&reason),
                    provider_event: reason.clone(),
                    external_id: apns_id,
                    code: Some(reason.clone()),
                    response: Some(reason),
                    row: tidings_push_contract::body_text(request),
                    ..Report::default()
                },
            ));
        } else if body.sent.is_some() || body.failed.is_some() {
            for row in body.sent.unwrap_or_default() {
                let sent: DeviceResult = json::read(ID, row.get())?;
                parsed.ignore("sent", sent.device.map(|d| d.0), ACCEPTED);
            }
            for row in body.failed.unwrap_or_default() {
                let failed: DeviceResult = json::read(ID, row.get())?;
                parsed
                    .events
                    .push(forwarded.event(ID, request, device_failure(failed, row.get())));
            }
        } else if request
            .body
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .eq(b"{}".iter())
        {
            accepted(&mut parsed, apns_id);
        } else {
            return Err(not_apns());
        }
        Ok(parsed)
    }
}

/// One `failed[]` entry of a node-apn result: an APNs rejection, or a transport error.
fn device_failure(failed: DeviceResult, row: &str) -> Report {
    let reason = failed
        .response
        .and_then(|r| r.reason)
        .filter(|r| !r.is_empty());
    let http = failed.status.map(|s| s.0);
    let transport = failed.error.as_ref().and_then(|e| {
        e.get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .or_else(|| e.as_str().map(str::to_owned))
    });
    let provider_event = reason
        .clone()
        .or_else(|| http.as_ref().map(|h| format!("HTTP {h}")))
        .unwrap_or_else(|| "error".into());
    let response = match (&http, &reason) {
        (Some(http), Some(reason)) => Some(format!("{http} {reason}")),
        (None, Some(reason)) => Some(reason.clone()),
        _ => transport,
    };
    Report {
        failure: match &reason {
            Some(reason) => status::failure(reason),
            // A connection error before APNs answered: the send can be retried.
            None if failed.error.is_some() => Some(tidings_core::Failure::Temporary),
            None => None,
        },
        provider_event,
        recipient: failed.device.map(|d| d.0).filter(|d| !d.is_empty()),
        code: reason,
        response,
        row: row.to_owned(),
        ..Report::default()
    }
}

const ACCEPTED: &str =
    "APNs accepted the notification; it reports no delivery (the app reports it)";

fn accepted(parsed: &mut Parsed, apns_id: Option<String>) {
    parsed.ignore("200", apns_id, ACCEPTED);
}

fn not_apns() -> Error {
    Error::malformed(
        ID,
        "expected Novu's push contract (`eventType`, `eventId`), an APNs response (`reason`) or a node-apn result (`sent`, `failed`)",
    )
}
