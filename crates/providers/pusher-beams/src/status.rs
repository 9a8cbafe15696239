//! Pusher Beams events → Tidings status.

use tidings_core::{Failure, Status};

/// One user's outcome in a Beams webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `v1.UserNotificationAcknowledgement`.
    Acknowledged,
    /// `v1.UserNotificationOpen`.
    Opened,
    /// `v1.PublishToUsersAttempt`, `users_delivered_to_gateway`.
    DeliveredToGateway,
    /// `v1.PublishToUsersAttempt`, `users_no_devices`.
    NoDevices,
    /// `v1.PublishToUsersAttempt`, `users_gateway_failed`.
    GatewayFailed,
}

/// What one user's outcome means, or `None` when it maps to no status.
///
/// | event | status | failure | note |
/// |---|---|---|---|
/// | `v1.UserNotificationAcknowledgement` | delivered | | the device reported it (iOS SDK ≥ 1.3.0, Android ≥ 1.4.0) |
/// | `v1.UserNotificationOpen` | opened | | |
/// | `v1.PublishToUsersAttempt` `users_no_devices` | failed | permanent | the user has no registered device |
/// | `v1.PublishToUsersAttempt` `users_gateway_failed` | failed | temporary | Beams calls these gateway issues transient |
/// | `v1.PublishToUsersAttempt` `users_delivered_to_gateway` | ignored | | APNs / FCM accepted it; the device's acknowledgement is the delivery |
/// | legacy `STARTED` / `FINISHED` hooks, other types | ignored | | aggregate counts per platform |
pub(crate) fn classify(outcome: Outcome) -> Option<(Status, Option<Failure>)> {
    match outcome {
        Outcome::Acknowledged => Some((Status::Delivered, None)),
        Outcome::Opened => Some((Status::Opened, None)),
        Outcome::NoDevices => Some((Status::Failed, Some(Failure::Permanent))),
        Outcome::GatewayFailed => Some((Status::Failed, Some(Failure::Temporary))),
        Outcome::DeliveredToGateway => None,
    }
}
