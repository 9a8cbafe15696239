//! Africa's Talking delivery status → Tidings status.

use tidings_core::{Failure, Status};

/// What an Africa's Talking delivery report means, or `None` for statuses it does not
/// document.
///
/// | `status` | status | note |
/// |---|---|---|
/// | `Sent` | sent | left Africa's Talking for the operator |
/// | `Submitted` | sent | submitted to the operator's SMSC |
/// | `Buffered` | sent | queued at the operator (handset unreachable for now); not final |
/// | `Success` | delivered | the handset took it |
/// | `Rejected` | rejected | refused before delivery; `failureReason` says why |
/// | `Failed` | undelivered | the operator could not deliver it; `failureReason` says why |
/// | `Expired`, `AbsentSubscriber` | undelivered | gave up on an unreachable handset; temporary |
///
/// `failure` for `Rejected`/`Failed` comes from `failureReason` (see [`failure_of`]).
pub(crate) fn classify(status: &str, reason: Option<&str>) -> Option<(Status, Option<Failure>)> {
    Some(match status.trim().to_ascii_lowercase().as_str() {
        "sent" | "submitted" | "buffered" => (Status::Sent, None),
        "success" => (Status::Delivered, None),
        "rejected" => (Status::Rejected, reason.and_then(failure_of)),
        "failed" => (Status::Undelivered, reason.and_then(failure_of)),
        "expired" | "absentsubscriber" => (Status::Undelivered, Some(Failure::Temporary)),
        _ => return None,
    })
}

/// Whether a `failureReason` can clear up by itself (credit, an inactive or suspended
/// subscriber, a transient delivery failure) or will not (a blacklisted, unknown or foreign
/// number, an invalid link id).
fn failure_of(reason: &str) -> Option<Failure> {
    Some(match reason.trim() {
        "InsufficientCredit"
        | "UserIsInactive"
        | "UserAccountSuspended"
        | "DeliveryFailure"
        | "AbsentSubscriber" => Failure::Temporary,
        "UserInBlackList"
        | "InvalidLinkId"
        | "NotNetworkSubcriber"
        | "NotNetworkSubscriber"
        | "UserNotSubscribedToProduct"
        | "UserDoesNotExist"
        | "InvalidSenderId" => Failure::Permanent,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(classify("Buffered", None), Some((Status::Sent, None)));
        assert_eq!(
            classify("Failed", Some("UserInBlackList")),
            Some((Status::Undelivered, Some(Failure::Permanent)))
        );
        assert_eq!(
            classify("Rejected", Some("InsufficientCredit")),
            Some((Status::Rejected, Some(Failure::Temporary)))
        );
        assert_eq!(classify("Queued", None), None);
    }
}
