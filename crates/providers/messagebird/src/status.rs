//! MessageBird recipient status → Tidings status.

use tidings_core::{Failure, Status};

/// What a MessageBird status report means, or `None` for statuses that map to no delivery
/// status.
///
/// | `status` | status | note |
/// |---|---|---|
/// | `scheduled` | accepted | taken for a later send time |
/// | `sent` | sent | handed to the operator |
/// | `buffered` | sent | the operator holds it (handset off or out of range) and keeps trying |
/// | `delivered` | delivered | |
/// | `expired` | undelivered | the validity period ran out before the handset took it; temporary |
/// | `delivery_failed` | undelivered | the operator gave up; `statusReason`/`statusErrorCode` say why |
pub(crate) fn classify(status: &str) -> Option<(Status, Option<Failure>)> {
    Some(match status.trim().to_ascii_lowercase().as_str() {
        "scheduled" => (Status::Accepted, None),
        "sent" | "buffered" => (Status::Sent, None),
        "delivered" => (Status::Delivered, None),
        "expired" => (Status::Undelivered, Some(Failure::Temporary)),
        "delivery_failed" => (Status::Undelivered, None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(classify("buffered"), Some((Status::Sent, None)));
        assert_eq!(
            classify("delivery_failed").map(|c| c.0),
            Some(Status::Undelivered)
        );
        assert_eq!(classify("received"), None);
    }
}
