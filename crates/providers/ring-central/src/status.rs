//! RingCentral `messageStatus` → Tidings status.

use tidings_core::{Failure, Status};

/// What a RingCentral message status means, or `None` for statuses it does not document.
///
/// | `messageStatus` | status | note |
/// |---|---|---|
/// | `Received` | accepted | RingCentral took the outbound message (inbound messages are ignored before this) |
/// | `Queued` | queued | |
/// | `Sent` | sent | handed to the carrier |
/// | `Delivered` | delivered | |
/// | `DeliveryFailed` | failed | the carrier reported the delivery failed |
/// | `SendingFailed` | failed | RingCentral could not send it |
pub(crate) fn classify(status: &str) -> Option<(Status, Option<Failure>)> {
    let status = match status.trim() {
        "Received" => Status::Accepted,
        "Queued" => Status::Queued,
        "Sent" => Status::Sent,
        "Delivered" => Status::Delivered,
        "DeliveryFailed" | "SendingFailed" => Status::Failed,
        _ => return None,
    };
    // RingCentral does not say whether a failure is worth retrying.
    Some((status, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(classify("Received"), Some((Status::Accepted, None)));
        assert_eq!(classify("DeliveryFailed"), Some((Status::Failed, None)));
        assert_eq!(classify("Read"), None);
    }
}
