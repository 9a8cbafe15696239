//! Twilio message status → Tidings status.

use tidings_core::{Failure, Status};

/// What a Twilio `MessageStatus` means (case-insensitive: status callbacks send it lowercase,
/// Event Streams uppercase), with the failure kind its `ErrorCode` gives (see [`failure`]), or
/// `None` for statuses that map to no delivery status.
///
/// | `MessageStatus` | status | note |
/// |---|---|---|
/// | `accepted` | accepted | a Messaging Service took the request |
/// | `scheduled` | accepted | a Messaging Service holds it until its send time |
/// | `queued` | queued | |
/// | `sending` | sending | |
/// | `sent` | sent | the nearest carrier accepted it |
/// | `delivered` | delivered | the carrier (or handset) confirmed it |
/// | `partially_delivered` | delivered | some parts of a multi-part message were confirmed |
/// | `read` | delivered | WhatsApp/RCS read receipt: the message was delivered; the read itself is kept as the provider event |
/// | `undelivered` | undelivered | a delivery receipt said it did not arrive |
/// | `failed` | failed | Twilio could not send it |
/// | `canceled` | failed | a scheduled message canceled before sending: it will never be sent |
/// | `receiving`, `received`, anything else | ignored | inbound messages, not delivery states |
pub(crate) fn classify(raw_status: &str, code: Option<&str>) -> Option<(Status, Option<Failure>)> {
    let status = match raw_status.to_ascii_lowercase().as_str() {
        "accepted" | "scheduled" => Status::Accepted,
        "queued" => Status::Queued,
        "sending" => Status::Sending,
        "sent" => Status::Sent,
        "delivered" | "partially_delivered" | "read" => Status::Delivered,
        "undelivered" => Status::Undelivered,
        "failed" | "canceled" => Status::Failed,
        _ => return None,
    };
    Some((status, failure(status, raw_status, code)))
}

/// Whether a failure is worth retrying, from Twilio's error code where it says so.
///
/// | `ErrorCode` | failure | meaning |
/// |---|---|---|
/// | 30001, 30017, 30022, 30023 | temporary | queue overflow, carrier congestion, throughput or daily limit exceeded |
/// | 30003 | temporary | handset switched off or out of coverage |
/// | 21211, 21408, 21610, 21612, 21614, 30004, 30005, 30006, 30007, 30032, 30034 | permanent | invalid or unsubscribed number, blocked, unknown handset, landline, carrier filtering, unregistered sender |
/// | other codes | unknown | (30008 "unknown error" says nothing either way) |
///
/// A `canceled` message is permanent: it will not be sent.
fn failure(status: Status, raw_status: &str, code: Option<&str>) -> Option<Failure> {
    if !matches!(status, Status::Failed | Status::Undelivered) {
        return None;
    }
    if raw_status.eq_ignore_ascii_case("canceled") {
        return Some(Failure::Permanent);
    }
    match code? {
        "30001" | "30003" | "30017" | "30022" | "30023" => Some(Failure::Temporary),
        "21211" | "21408" | "21610" | "21612" | "21614" | "30004" | "30005" | "30006" | "30007"
        | "30032" | "30034" => Some(Failure::Permanent),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_is_delivered_and_inbound_is_ignored() {
        assert_eq!(classify("read", None), Some((Status::Delivered, None)));
        assert_eq!(classify("DELIVERED", None), Some((Status::Delivered, None)));
        assert_eq!(classify("received", None), None);
        assert_eq!(
            failure(Status::Failed, "canceled", None),
            Some(Failure::Permanent)
        );
        assert_eq!(
            failure(Status::Undelivered, "undelivered", Some("30003")),
            Some(Failure::Temporary)
        );
        assert_eq!(failure(Status::Sent, "sent", Some("30003")), None);
    }
}
