//! APNs error reasons → Tidings failure kind. Every error a sender forwards is `failed`.

use tidings_core::{Failure, Status};

/// What an APNs error reason means: always `failed`, and whether it can succeed on retry
/// (`None` for reasons Apple does not list, which are still `failed`, of unknown kind).
///
/// | `reason` | HTTP | failure | note |
/// |---|---|---|---|
/// | `BadDeviceToken`, `DeviceTokenNotForTopic` | 400 | permanent | often a sandbox token sent to production: the token is unusable here |
/// | `Unregistered`, `ExpiredToken` | 410 | permanent | the app was removed or the token expired: delete it |
/// | `BadCollapseId`, `BadExpirationDate`, `BadMessageId`, `BadPriority`, `BadTopic`, `DuplicateHeaders`, `InvalidPushType`, `MissingDeviceToken`, `MissingTopic`, `PayloadEmpty`, `TopicDisallowed`, `BadPath` | 400/404 | permanent | the same request fails again |
/// | `PayloadTooLarge` | 413 | permanent | |
/// | `BadCertificate`, `BadCertificateEnvironment`, `Forbidden`, `InvalidProviderToken`, `MissingProviderToken`, `MethodNotAllowed` | 403/405 | permanent | credentials or request are wrong until fixed |
/// | `ExpiredProviderToken`, `TooManyProviderTokenUpdates` | 403/429 | temporary | resent with a fresh provider token |
/// | `TooManyRequests` | 429 | temporary | too many requests to one device: back off |
/// | `InternalServerError`, `ServiceUnavailable`, `Shutdown`, `IdleTimeout` | 500/503 | temporary | retry |
pub(crate) fn classify(reason: &str) -> Option<(Status, Option<Failure>)> {
    let failure = match reason {
        "BadDeviceToken"
        | "DeviceTokenNotForTopic"
        | "Unregistered"
        | "ExpiredToken"
        | "BadCollapseId"
        | "BadExpirationDate"
        | "BadMessageId"
        | "BadPriority"
        | "BadTopic"
        | "DuplicateHeaders"
        | "InvalidPushType"
        | "MissingDeviceToken"
        | "MissingTopic"
        | "PayloadEmpty"
        | "TopicDisallowed"
        | "BadPath"
        | "PayloadTooLarge"
        | "BadCertificate"
        | "BadCertificateEnvironment"
        | "Forbidden"
        | "InvalidProviderToken"
        | "MissingProviderToken"
        | "MethodNotAllowed" => Failure::Permanent,
        "ExpiredProviderToken"
        | "TooManyProviderTokenUpdates"
        | "TooManyRequests"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "Shutdown"
        | "IdleTimeout" => Failure::Temporary,
        _ => return None,
    };
    Some((Status::Failed, Some(failure)))
}

/// The failure kind of an error reason (every forwarded error is `failed`).
pub(crate) fn failure(reason: &str) -> Option<Failure> {
    classify(reason).and_then(|(_, failure)| failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_tokens_are_permanent_and_throttling_temporary() {
        assert_eq!(failure("Unregistered"), Some(Failure::Permanent));
        assert_eq!(failure("BadDeviceToken"), Some(Failure::Permanent));
        assert_eq!(failure("TooManyRequests"), Some(Failure::Temporary));
        assert_eq!(failure("SomethingNew"), None);
    }
}
