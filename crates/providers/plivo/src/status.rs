//! Plivo message status → Tidings status.

use tidings_core::{Failure, Status};

/// What a Plivo `Status` means (the failure kind from its `ErrorCode`, see [`failure`]), or
/// `None` for statuses that map to no delivery status.
///
/// | `Status` | status | note |
/// |---|---|---|
/// | `queued` | queued | |
/// | `sent` | sent | handed to the carrier |
/// | `delivered` | delivered | |
/// | `read` | delivered | WhatsApp read receipt: delivered; the read itself is kept as the provider event |
/// | `undelivered` | undelivered | the carrier reported it not delivered |
/// | `failed` | failed | Plivo could not send it |
/// | `rejected` | rejected | refused before sending (older docs) |
/// | `received`, anything else | ignored | inbound messages, not delivery states |
pub(crate) fn classify(
    status: &str,
    error_code: Option<&str>,
) -> Option<(Status, Option<Failure>)> {
    let status = match status.to_ascii_lowercase().as_str() {
        "queued" => Status::Queued,
        "sent" => Status::Sent,
        "delivered" | "read" => Status::Delivered,
        "undelivered" => Status::Undelivered,
        "failed" => Status::Failed,
        "rejected" => Status::Rejected,
        _ => return None,
    };
    Some((status, failure(status, error_code)))
}

/// Whether a failure is worth retrying, from Plivo's SMS error code where it says so.
///
/// | `ErrorCode` | failure | meaning |
/// |---|---|---|
/// | 20 | temporary | network error |
/// | 10, 30, 40, 50 | permanent | invalid message, spam detected, invalid source number, invalid destination number |
/// | other codes | unknown | look them up in Plivo's SMS error code table |
fn failure(status: Status, code: Option<&str>) -> Option<Failure> {
    if !matches!(
        status,
        Status::Failed | Status::Undelivered | Status::Rejected
    ) {
        return None;
    }
    match code? {
        "20" => Some(Failure::Temporary),
        "10" | "30" | "40" | "50" => Some(Failure::Permanent),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_failures() {
        assert_eq!(classify("read", None), Some((Status::Delivered, None)));
        assert_eq!(classify("received", None), None);
        assert_eq!(
            failure(Status::Undelivered, Some("30")),
            Some(Failure::Permanent)
        );
        assert_eq!(failure(Status::Delivered, Some("30")), None);
    }
}
