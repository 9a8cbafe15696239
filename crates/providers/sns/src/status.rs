//! Amazon SMS event → Tidings status.

use tidings_core::{Failure, Status};

/// What an AWS End User Messaging SMS event means (`TEXT_` and `MEDIA_` events alike), or `None`
/// for events that map to no status.
///
/// | event (after `TEXT_` / `MEDIA_`) | status | note |
/// |---|---|---|
/// | `QUEUED` | queued | waiting in AWS's queue |
/// | `PENDING` | sending | being handed to the carrier |
/// | `SUCCESSFUL` | sent | the carrier accepted it; some countries never send a handset receipt |
/// | `DELIVERED` | delivered | handset delivery receipt |
/// | `BLOCKED`, `CARRIER_BLOCKED`, `SPAM`, `PROTECT_BLOCKED` | rejected | refused by the carrier, the device or a protect configuration; permanent |
/// | `INVALID`, `INVALID_MESSAGE` | rejected | invalid number or body; permanent |
/// | `FILE_INACCESSIBLE`, `FILE_TYPE_UNSUPPORTED`, `FILE_SIZE_EXCEEDED` | failed | MMS media AWS could not send |
/// | `TTL_EXPIRED` | undelivered | not delivered within the message's TTL |
/// | `CARRIER_UNREACHABLE`, `UNREACHABLE` | undelivered | carrier network or handset unavailable; temporary |
/// | `UNKNOWN`, anything else | ignored | AWS reports it after 72 h without a final receipt: the status stays as it was |
///
/// The legacy SNS SMS delivery log's `status`:
///
/// | `status` | status | note |
/// |---|---|---|
/// | `SUCCESS` | sent | the carrier accepted it |
/// | `FAILURE` | undelivered | the free-text `providerResponse` does not say whether it is final |
pub(crate) fn classify(event_type: &str) -> Option<(Status, Option<Failure>)> {
    match event_type {
        "SUCCESS" => return Some((Status::Sent, None)),
        "FAILURE" => return Some((Status::Undelivered, None)),
        _ => {}
    }
    let kind = event_type
        .strip_prefix("TEXT_")
        .or_else(|| event_type.strip_prefix("MEDIA_"))?;
    Some(match kind {
        "QUEUED" => (Status::Queued, None),
        "PENDING" => (Status::Sending, None),
        "SUCCESSFUL" => (Status::Sent, None),
        "DELIVERED" => (Status::Delivered, None),
        "BLOCKED" | "CARRIER_BLOCKED" | "SPAM" | "PROTECT_BLOCKED" | "INVALID"
        | "INVALID_MESSAGE" => (Status::Rejected, Some(Failure::Permanent)),
        "FILE_INACCESSIBLE" | "FILE_TYPE_UNSUPPORTED" | "FILE_SIZE_EXCEEDED" => {
            (Status::Failed, Some(Failure::Permanent))
        }
        "TTL_EXPIRED" => (Status::Undelivered, None),
        "CARRIER_UNREACHABLE" | "UNREACHABLE" => (Status::Undelivered, Some(Failure::Temporary)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            classify("MEDIA_DELIVERED").map(|c| c.0),
            Some(Status::Delivered)
        );
        assert_eq!(classify("TEXT_SPAM").map(|c| c.0), Some(Status::Rejected));
        assert_eq!(classify("TEXT_UNKNOWN"), None);
        assert_eq!(classify("VOICE_COMPLETED"), None);
        assert_eq!(classify("FAILURE"), Some((Status::Undelivered, None)));
    }
}
