//! FCM send errors → Tidings failure kind. Every error a sender forwards is `failed`.

use tidings_core::{Failure, Status};

/// What an FCM error code means: always `failed`, and whether it can succeed on retry (`None`
/// when FCM does not say, which is still `failed`, of unknown kind).
///
/// | HTTP v1 `errorCode` | Admin SDK `code` | failure | note |
/// |---|---|---|---|
/// | `UNREGISTERED` | `messaging/registration-token-not-registered` | permanent | the token is gone: delete it |
/// | `INVALID_ARGUMENT` | `messaging/invalid-argument`, `messaging/invalid-registration-token`, `messaging/invalid-payload`, `messaging/payload-size-limit-exceeded` | permanent | the same request fails again |
/// | `SENDER_ID_MISMATCH` | `messaging/mismatched-credential` | permanent | the token belongs to another project |
/// | `THIRD_PARTY_AUTH_ERROR` | `messaging/third-party-auth-error` | permanent | APNs / web push credentials are wrong until fixed |
/// | `QUOTA_EXCEEDED` | `messaging/message-rate-exceeded`, `messaging/device-message-rate-exceeded` | temporary | retry with backoff |
/// | `UNAVAILABLE` | `messaging/server-unavailable` | temporary | retry with backoff |
/// | `INTERNAL` | `messaging/internal-error` | temporary | retry with backoff |
/// | canonical `NOT_FOUND` / `RESOURCE_EXHAUSTED` | | permanent / temporary | errors without an `FcmError` detail: as `UNREGISTERED` / `QUOTA_EXCEEDED` |
/// | `UNSPECIFIED_ERROR`, anything else | | unknown | |
pub(crate) fn classify(code: &str) -> Option<(Status, Option<Failure>)> {
    let failure = match code {
        "UNREGISTERED"
        | "INVALID_ARGUMENT"
        | "SENDER_ID_MISMATCH"
        | "THIRD_PARTY_AUTH_ERROR"
        | "NOT_FOUND"
        | "messaging/registration-token-not-registered"
        | "messaging/invalid-argument"
        | "messaging/invalid-registration-token"
        | "messaging/invalid-payload"
        | "messaging/payload-size-limit-exceeded"
        | "messaging/mismatched-credential"
        | "messaging/third-party-auth-error" => Failure::Permanent,
        "QUOTA_EXCEEDED"
        | "UNAVAILABLE"
        | "INTERNAL"
        | "RESOURCE_EXHAUSTED"
        | "messaging/message-rate-exceeded"
        | "messaging/device-message-rate-exceeded"
        | "messaging/server-unavailable"
        | "messaging/internal-error" => Failure::Temporary,
        _ => return None,
    };
    Some((Status::Failed, Some(failure)))
}

/// The failure kind of an error code (every forwarded error is `failed`).
pub(crate) fn failure(code: &str) -> Option<Failure> {
    classify(code).and_then(|(_, failure)| failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_admin_codes_agree() {
        assert_eq!(failure("UNREGISTERED"), Some(Failure::Permanent));
        assert_eq!(
            failure("messaging/registration-token-not-registered"),
            Some(Failure::Permanent)
        );
        assert_eq!(failure("QUOTA_EXCEEDED"), Some(Failure::Temporary));
        assert_eq!(
            failure("messaging/message-rate-exceeded"),
            Some(Failure::Temporary)
        );
        assert_eq!(failure("UNSPECIFIED_ERROR"), None);
    }
}
