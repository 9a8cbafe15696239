//! Pusher Beams webhooks for publishes to Authenticated Users, and Novu's push contract.
//!
//! Docs: <https://pusher.com/docs/beams/concepts/webhooks/>,
//! <https://pusher.com/docs/beams/reference/api/webhooks/> and
//! <https://docs.novu.co/platform/integrations/push/push-activity-tracking>.
//!
//! - Body: one JSON envelope `{"payload", "metadata": {"event_type", "event_id",
//!   "created_at"}, "custom_data"}`. `v1.UserNotificationAcknowledgement` and
//!   `v1.UserNotificationOpen` are one event for `payload.user_id`; `v1.PublishToUsersAttempt`
//!   fans out to one event per user in `users_no_devices` / `users_gateway_failed` (users
//!   delivered to the gateway are ignored), each with the whole envelope as `row`. The
//!   deprecated per-publish hooks (`{"publishId", "status": "STARTED" | "FINISHED"}`) are
//!   ignored. Otherwise Novu's push contract (see [`tidings_push_contract`]).
//! - Ids: `payload.publish_id` (what Novu keeps from `publishToUsers`) is the result id and
//!   `externalId`; `user_id` is the recipient. An event without a publish id is kept,
//!   reported under its dedup key, when it names a user; with neither it is ignored.
//! - `date`: `metadata.created_at` (`2019-03-11T10:42:16+0000`).
//! - Dedup: `metadata.event_id` (the same across Beams' retries, as `Webhook-Request-ID-UUID`),
//!   with the user for fan-out events.
//! - Signature: `Webhook-Signature` = hex HMAC-SHA1 of the raw body with the webhook secret.
//!   No timestamp, so no replay window.

mod status;
mod wire;

use tidings_core::signature::{hex_matches, hmac_sha1};
use tidings_core::{
    Credentials, Draft, Error, Parsed, ProviderParser, RawRequest, Result, ids, json, time,
};

use crate::status::Outcome;
use crate::wire::{Envelope, LegacyHook};

const ID: &str = "pusher-beams";
const SIGNATURE_HEADER: &str = "webhook-signature";

tidings_core::provider! {
    /// Pusher Beams.
    pub struct PusherBeams;
    id: ID,
    channel: Push,
    signature: Signature::Keyed("hmac-sha1-hex"),
    media_types: [Json, Text, Missing],
}

impl ProviderParser for PusherBeams {
    fn verify(&self, request: &RawRequest<'_>, credentials: &Credentials<'_>) -> Result<()> {
        let given = request
            .header(SIGNATURE_HEADER)
            .ok_or(Error::MissingHeader("Webhook-Signature"))?
            .trim();
        if given.len() != 40 || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::MalformedSignature("Webhook-Signature"));
        }
        credentials.any_key_matches(|key| {
            hex_matches(&hmac_sha1(key.expose().as_bytes(), &[request.body]), given)
        })
    }

    fn parse(&self, request: &RawRequest<'_>) -> Result<Parsed> {
        if let Some(parsed) = tidings_push_contract::contract(ID, request)? {
            return Ok(parsed);
        }
        if !json::is_object(request.body) {
            return Err(not_beams());
        }
        let mut parsed = Parsed::default();
        if let Ok(legacy) = serde_json::from_slice::<LegacyHook>(request.body) {
            parsed.ignore(
                format!("publish {}", legacy.status),
                Some(legacy.publish_id.0),
                "deprecated publish hook: aggregate counts per platform, no user",
            );
            return Ok(parsed);
        }
        let envelope: Envelope = json::read_slice(ID, request.body)?;
        let row = tidings_push_contract::body_text(request);
        let event_type = envelope.metadata.event_type.as_str();
        let payload = &envelope.payload;
        let outcomes: Vec<(Outcome, &ids::Id)> = match event_type {
            "v1.UserNotificationAcknowledgement" | "v1.UserNotificationOpen" => {
                let Some(user) = payload.user_id.as_ref() else {
                    return Err(Error::MissingField("payload.user_id"));
                };
                let outcome = if event_type == "v1.UserNotificationOpen" {
                    Outcome::Opened
                } else {
                    Outcome::Acknowledged
                };
                vec![(outcome, user)]
            }
            "v1.PublishToUsersAttempt" => payload
                .users_delivered_to_gateway
                .iter()
                .map(|u| (Outcome::DeliveredToGateway, u))
                .chain(
                    payload
                        .users_no_devices
                        .iter()
                        .map(|u| (Outcome::NoDevices, u)),
                )
                .chain(
                    payload
                        .users_gateway_failed
                        .iter()
                        .map(|u| (Outcome::GatewayFailed, u)),
                )
                .collect(),
            _ => {
                parsed.ignore(
                    event_type,
                    payload.publish_id.as_ref().map(|id| id.0.clone()),
                    "webhook event type maps to no delivery status",
                );
                return Ok(parsed);
            }
        };
        let fan_out = event_type == "v1.PublishToUsersAttempt";
        for (outcome, user) in outcomes {
            let provider_event = match outcome {
                Outcome::DeliveredToGateway => format!("{event_type} (users_delivered_to_gateway)"),
                Outcome::NoDevices => format!("{event_type} (users_no_devices)"),
                Outcome::GatewayFailed => format!("{event_type} (users_gateway_failed)"),
                Outcome::Acknowledged | Outcome::Opened => event_type.to_owned(),
            };
            let publish_id = payload
                .publish_id
                .as_ref()
                .map(|id| id.0.clone())
                .filter(|id| !id.is_empty());
            let classified = status::classify(outcome);
            // An event without a publish id still says something true about its user: it is
            // kept, reported under its dedup key. Without a user either it says nothing.
            let anonymous = publish_id.is_none() && user.0.trim().is_empty();
            let (Some((status, failure)), false) = (classified, anonymous) else {
                let provider_event = if fan_out {
                    format!("{provider_event}: {}", user.0)
                } else {
                    provider_event
                };
                let reason = if classified.is_some() {
                    "the event carries no publish id and no user"
                } else {
                    "APNs / FCM accepted it; the device's acknowledgement is the delivery"
                };
                parsed.ignore(provider_event, publish_id, reason);
                continue;
            };
            let date = envelope
                .metadata
                .created_at
                .as_deref()
                .and_then(time::parse);
            let draft = Draft::new(ID, status, &provider_event);
            let event_id = envelope.metadata.event_id.as_ref();
            let draft = match event_id.filter(|id| !id.0.is_empty()) {
                Some(event_id) if fan_out => draft.dedup_id(format!("{}:{}", event_id.0, user.0)),
                Some(event_id) => draft.dedup_id(&event_id.0),
                None => draft.dedup_fields(&[
                    publish_id.as_deref().unwrap_or(""),
                    &provider_event,
                    &user.0,
                    envelope.metadata.created_at.as_deref().unwrap_or(""),
                ]),
            };
            parsed.push(
                request,
                draft
                    .external_id(publish_id)
                    .date(date)
                    .recipient(Some(user.0.clone()).filter(|u| !u.is_empty()))
                    .failure(failure)
                    .row(row.as_str()),
            );
        }
        Ok(parsed)
    }
}

fn not_beams() -> Error {
    Error::malformed(
        ID,
        "expected a Pusher Beams webhook (`payload`, `metadata`) or Novu's push contract (`eventType`, `eventId`)",
    )
}
