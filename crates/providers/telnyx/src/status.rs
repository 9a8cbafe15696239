//! Telnyx per-recipient message status → Tidings status.

use tidings_core::{Failure, Status};

/// What a recipient's `status` (`data.payload.to[].status`) means, with the failure kind its error
/// code gives (see [`failure`]), or `None` for statuses that map to no delivery status. The event type (`message.sent`, `message.finalized`) is not used:
/// a `message.sent` event may still carry `queued`.
///
/// | `status` | status | note |
/// |---|---|---|
/// | `queued` | queued | |
/// | `sending` | sending | |
/// | `sent` | sent | handed to the carrier |
/// | `delivery_unconfirmed` | sent | sent, but the carrier returned no delivery receipt |
/// | `delivered` | delivered | |
/// | `read` | delivered | RCS read receipt (`message.read`); the read is kept as the provider event |
/// | `sending_failed` | failed | Telnyx could not send it |
/// | `delivery_failed` | undelivered | the carrier reported it not delivered after sending |
/// | `expired` | undelivered | not delivered within its validity period |
/// | anything else | ignored | |
pub(crate) fn classify(status: &str, code: Option<&str>) -> Option<(Status, Option<Failure>)> {
    let status = match status {
        "queued" => Status::Queued,
        "sending" => Status::Sending,
        "sent" | "delivery_unconfirmed" => Status::Sent,
        "delivered" | "read" => Status::Delivered,
        "sending_failed" => Status::Failed,
        "delivery_failed" | "expired" => Status::Undelivered,
        _ => return None,
    };
    Some((status, failure(status, code)))
}

/// Whether a failure is worth retrying, from Telnyx's messaging error code.
///
/// | error code | failure | meaning |
/// |---|---|---|
/// | 40002, 40005, 40006, 40011, 40014 | temporary | blocked as spam (temporary), message expired, recipient unavailable, rate limited, expired in queue |
/// | 40001, 40003, 40004, 40012, 40013 | permanent | not routable, blocked as spam (permanent), rejected by destination, invalid destination, invalid source |
/// | others (40008 undeliverable, ...) | unknown | |
fn failure(status: Status, code: Option<&str>) -> Option<Failure> {
    if !matches!(status, Status::Failed | Status::Undelivered) {
        return None;
    }
    match code? {
        "40002" | "40005" | "40006" | "40011" | "40014" => Some(Failure::Temporary),
        "40001" | "40003" | "40004" | "40012" | "40013" => Some(Failure::Permanent),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let status = |s| classify(s, None).map(|(status, _)| status);
        assert_eq!(status("delivery_failed"), Some(Status::Undelivered));
        assert_eq!(status("sending_failed"), Some(Status::Failed));
        assert_eq!(status("webhook_delivered"), None);
        assert_eq!(status("read"), Some(Status::Delivered));
        assert_eq!(
            failure(Status::Undelivered, Some("40006")),
            Some(Failure::Temporary)
        );
        assert_eq!(failure(Status::Sent, Some("40006")), None);
    }
}
