//! Pushpad (web push): Pushpad posts no webhooks, so Tidings takes Novu's push contract, which
//! the sender's site forwards from its service worker or backend.
//!
//! Docs: <https://pushpad.xyz/docs/rest_api> and
//! <https://docs.novu.co/platform/integrations/push/push-activity-tracking>.
//!
//! - Body: Novu's push contract (`eventType`, `eventId`, `timestamp`, `deviceId`, see
//!   [`tidings_push_contract`]). Pushpad's own API answers a sender may forward (the create
//!   response `{id, scheduled, uids}`, a notification with `successfully_sent_count` /
//!   `opened_count`) are recognized and ignored: they are counters, not per-device events.
//! - Ids: `eventId` is the result id (Novu keeps Pushpad's notification `id` as its provider
//!   id, and its own message id reaches the device as `__nvMessageId`).
//! - `date`: the contract's `timestamp`, else the receive time.
//! - Dedup: a hash of `eventId`, `eventType`, `deviceId` and `timestamp`.
//! - Signature: none; the service authenticates with `ApiKey`.

mod status;
mod wire;

use tidings_core::{Error, Parsed, ProviderParser, RawRequest, Result, json};

use crate::wire::Notification;

const ID: &str = "pushpad";

tidings_core::provider! {
    /// Pushpad.
    pub struct Pushpad;
    id: ID,
    channel: Push,
    signature: Signature::None,
    media_types: [Json, Text, Missing],
}

impl ProviderParser for Pushpad {
    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if let Some(parsed) = tidings_push_contract::contract(ID, request)? {
            return Ok(parsed);
        }
        let not_pushpad = || {
            Error::malformed(
                ID,
                "expected Novu's push contract (an object with `eventType` and `eventId`)",
            )
        };
        if !json::is_object(request.body) {
            return Err(not_pushpad());
        }
        let body: Notification = serde_json::from_slice(request.body).map_err(|_| not_pushpad())?;
        let (provider_event, reason) = status::recognize(&body).ok_or_else(not_pushpad)?;
        let mut parsed = Parsed::default();
        parsed.ignore(provider_event, body.id.map(|id| id.0), reason);
        Ok(parsed)
    }
}
