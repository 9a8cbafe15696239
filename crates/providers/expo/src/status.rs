//! Expo tickets and receipts → Tidings status.

use tidings_core::{Failure, Status};

/// What a ticket or receipt means, or `None` for outcomes that map to no status.
///
/// | outcome | status | failure | note |
/// |---|---|---|---|
/// | receipt `ok` | delivered | | Expo handed it to APNs / FCM: the last signal Expo gives, not proof the device showed it |
/// | ticket `ok` | ignored | | Expo queued it; its receipt (same id) follows |
/// | `error`, `DeviceNotRegistered` | failed | permanent | the token is dead: stop sending to it |
/// | `error`, `MessageTooBig`, `InvalidCredentials`, `DeveloperError` | failed | permanent | the same message fails again until the sender fixes it |
/// | `error`, `MessageRateExceeded`, `ExpoError`, `ProviderError` | failed | temporary | retry later |
/// | `error`, other or no `details.error` | failed | unknown | |
/// | other `status` | ignored | | |
pub(crate) fn classify(
    receipt: bool,
    status: &str,
    error: Option<&str>,
) -> Option<(Status, Option<Failure>)> {
    match status {
        "ok" if receipt => Some((Status::Delivered, None)),
        "error" => Some((
            Status::Failed,
            match error {
                Some(
                    "DeviceNotRegistered"
                    | "MessageTooBig"
                    | "InvalidCredentials"
                    | "DeveloperError",
                ) => Some(Failure::Permanent),
                Some("MessageRateExceeded" | "ExpoError" | "ProviderError") => {
                    Some(Failure::Temporary)
                }
                _ => None,
            },
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_receipts_deliver_ok_tickets_wait() {
        assert_eq!(classify(true, "ok", None), Some((Status::Delivered, None)));
        assert_eq!(classify(false, "ok", None), None);
        assert_eq!(
            classify(false, "error", Some("DeviceNotRegistered")),
            Some((Status::Failed, Some(Failure::Permanent)))
        );
        assert_eq!(
            classify(true, "error", Some("MessageRateExceeded")),
            Some((Status::Failed, Some(Failure::Temporary)))
        );
        assert_eq!(classify(true, "error", None), Some((Status::Failed, None)));
    }
}
