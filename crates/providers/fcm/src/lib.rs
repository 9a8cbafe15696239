//! Firebase Cloud Messaging: FCM has no delivery webhook, so Tidings takes Novu's push contract
//! (what the app reports) and the send responses a sender forwards.
//!
//! Docs: <https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send>,
//! <https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode> and
//! <https://docs.novu.co/platform/integrations/push/push-activity-tracking>.
//!
//! - Body: one JSON object, either Novu's push contract (see [`tidings_push_contract`]), or an
//!   FCM HTTP v1 send response: an error `{"error": {code, message, status, details[]}}` is
//!   `failed` with FCM's `details[].errorCode` (else `status`) as `code` and its `message` as
//!   `response`; a success `{"name"}` is ignored (FCM accepted it; no delivery signal follows).
//!   A Firebase Admin SDK batch result `{"responses": [{success, messageId, error}]}` gives one
//!   `failed` per failed message. FCM Data API `androidDeliveryData` reports are daily
//!   aggregates and are ignored.
//! - Ids: the contract's `eventId`. A forwarded response names no message: the sender adds
//!   `eventId` / `deviceId` to the object or to the URL's query string (see
//!   [`tidings_push_contract::Forwarded`]).
//! - `date`: the contract's `timestamp`; send responses carry no time, so the receive time.
//! - Dedup: contract: a hash of `eventId`, `eventType`, `deviceId`, `timestamp`; responses: a
//!   hash of the sender's references, the error code and the batch position, plus the receive
//!   time when the sender named no message (so two unnamed failures are never merged). A
//!   response forwarded with no reference at all gets that key as its id.
//! - Signature: none (FCM sends nothing); the service authenticates with `ApiKey`.

mod status;
mod wire;

use tidings_core::{Error, Parsed, ProviderParser, RawRequest, Result, json};
use tidings_push_contract::{Forwarded, Report};

use crate::wire::{Body, SendResponse};

const ID: &str = "fcm";

tidings_core::provider! {
    /// Firebase Cloud Messaging.
    pub struct Fcm;
    id: ID,
    channel: Push,
    signature: Signature::None,
    media_types: [Json, Text, Missing],
}

impl ProviderParser for Fcm {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if let Some(parsed) = tidings_push_contract::contract(ID, request)? {
            return Ok(parsed);
        }
        if !json::is_object(request.body) {
            return Err(not_fcm());
        }
        let body: Body<'_> = json::read_slice(ID, request.body)?;
        let forwarded = Forwarded::from_request(request);
        let mut parsed = Parsed::default();
        if let Some(error) = body.error {
            let code = error.fcm_code();
            let provider_event = code.clone().unwrap_or_else(|| {
                error
                    .code
                    .map_or_else(|| "error".to_owned(), |http| format!("HTTP {http}"))
            });
            parsed.events.push(forwarded.event(
                ID,
                request,
                Report {
                    failure: code.as_deref().and_then(status::failure),
                    provider_event,
                    code,
                    response: error.message,
                    row: tidings_push_contract::body_text(request),
                    ..Report::default()
                },
            ));
        } else if let Some(responses) = body.responses {
            for (position, row) in responses.into_iter().enumerate() {
                let response: SendResponse = json::read(ID, row.get())?;
                batch_item(
                    request,
                    &forwarded,
                    position,
                    row.get(),
                    response,
                    &mut parsed,
                );
            }
        } else if let Some(name) = body.name {
            parsed.ignore("sent", Some(message_id(&name).to_owned()), ACCEPTED);
        } else if let Some(reports) = body.android_delivery_data {
            for _ in &reports {
                parsed.ignore(
                    "androidDeliveryData",
                    None,
                    "daily delivery percentages per app and analytics label: no message to update",
                );
            }
        } else {
            return Err(not_fcm());
        }
        Ok(parsed)
    }
}

/// One message of an Admin SDK batch result: failures are events, successes are ignored.
fn batch_item(
    request: &RawRequest<'_>,
    forwarded: &Forwarded,
    position: usize,
    row: &str,
    response: SendResponse,
    parsed: &mut Parsed,
) {
    if response.success == Some(true) {
        let id = response.message_id.map(|name| message_id(&name).to_owned());
        parsed.ignore("sent", id, ACCEPTED);
        return;
    }
    let (code, message) = response
        .error
        .map(|e| (e.code, e.message))
        .unwrap_or_default();
    parsed.events.push(forwarded.event(
        ID,
        request,
        Report {
            provider_event: code.clone().unwrap_or_else(|| "error".into()),
            failure: code.as_deref().and_then(status::failure),
            code,
            response: message,
            discriminator: position.to_string(),
            row: row.to_owned(),
            ..Report::default()
        },
    ));
}

const ACCEPTED: &str = "FCM accepted the message; it reports no delivery (the app reports it)";

/// The message id at the end of `projects/<project>/messages/<id>`.
fn message_id(name: &str) -> &str {
    name.rsplit_once("/messages/").map_or(name, |(_, id)| id)
}

fn not_fcm() -> Error {
    Error::malformed(
        ID,
        "expected Novu's push contract (`eventType`, `eventId`) or an FCM send response (`error`, `name`, `responses`)",
    )
}
