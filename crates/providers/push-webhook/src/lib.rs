//! Novu's `push-webhook` integration: a generic push channel whose device-side activity the
//! sender forwards in Novu's push contract.
//!
//! Docs: <https://docs.novu.co/platform/integrations/push/push-webhook> (the outgoing request)
//! and <https://docs.novu.co/platform/integrations/push/push-activity-tracking> (the contract).
//!
//! - Body: Novu's push contract (`eventType`, `eventId`, `timestamp`, `deviceId`, see
//!   [`tidings_push_contract`]). The notification Novu itself posts to the push-webhook endpoint
//!   (`title`, `content`, `target`, `payload`) is recognized and ignored: it carries content,
//!   not a delivery status.
//! - Ids: `eventId` is the result id; there is no provider message id.
//! - `date`: the contract's `timestamp`, else the receive time.
//! - Dedup: a hash of `eventId`, `eventType`, `deviceId` and `timestamp`.
//! - Signature: `X-Novu-Signature` = hex HMAC-SHA256 of the raw body with the integration's
//!   `hmacSecretKey` (the scheme Novu signs push-webhook requests with; a sender may sign its
//!   forwarded events the same way). No timestamp, so no replay window. Without it the contract
//!   authenticates with `Authorization: ApiKey`.

mod status;
mod wire;

use tidings_core::signature::{hex_matches, hmac_sha256};
use tidings_core::{Credentials, Error, Parsed, ProviderParser, RawRequest, Result};

use crate::wire::Outgoing;

const ID: &str = "push-webhook";
const SIGNATURE_HEADER: &str = "x-novu-signature";

tidings_core::provider! {
    /// Novu's generic push webhook channel.
    pub struct PushWebhook;
    id: ID,
    channel: Push,
    signature: Signature::Keyed("hmac-sha256-hex"),
    media_types: [Json, Text, Missing],
}

impl ProviderParser for PushWebhook {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let given = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader("X-Novu-Signature"))?;
        let given = given.trim();
        if given.len() != 64 || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::MalformedSignature("X-Novu-Signature"));
        }
        credentials.any_key_matches(|key| {
            hex_matches(
                &hmac_sha256(key.expose().as_bytes(), &[request.body]),
                given,
            )
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if let Some(parsed) = tidings_push_contract::contract(ID, request)? {
            return Ok(parsed);
        }
        let outgoing: Outgoing = serde_json::from_slice(request.body).map_err(|_| {
            Error::malformed(
                ID,
                "expected Novu's push contract (an object with `eventType` and `eventId`)",
            )
        })?;
        let Some(reason) = status::ignore_reason(&outgoing) else {
            return Err(Error::malformed(
                ID,
                "expected Novu's push contract (an object with `eventType` and `eventId`)",
            ));
        };
        let mut parsed = Parsed::default();
        parsed.ignore("notification", outgoing.message_id(), reason);
        Ok(parsed)
    }
}
