//! Sinch delivery report status → Tidings status.

use tidings_core::{Failure, Status};

/// What a Sinch delivery status means, or `None` for statuses Sinch does not document.
///
/// | `status` | status | note |
/// |---|---|---|
/// | `Queued` | queued | inside Sinch (code 400); only in per-recipient reports |
/// | `Dispatched` | sent | handed to the operator (code 401) |
/// | `Unknown` | sent | dispatched, but the operator returned no usable report |
/// | `Delivered` | delivered | code 0 |
/// | `Aborted` | failed | Sinch stopped before sending (invalid or blocked recipient, no route) |
/// | `Cancelled` | failed | cancelled by the sender before sending |
/// | `Rejected` | rejected | refused by the operator or by Sinch's policy; permanent |
/// | `Failed` | undelivered | the operator could not deliver it; the code says why |
/// | `Expired` | undelivered | the validity period ran out; temporary |
/// | `Deleted` | undelivered | removed from the operator's queue before delivery |
pub(crate) fn classify(status: &str) -> Option<(Status, Option<Failure>)> {
    Some(match status.trim().to_ascii_lowercase().as_str() {
        "queued" => (Status::Queued, None),
        "dispatched" | "unknown" => (Status::Sent, None),
        "delivered" => (Status::Delivered, None),
        "aborted" | "cancelled" => (Status::Failed, None),
        "rejected" => (Status::Rejected, Some(Failure::Permanent)),
        "failed" | "deleted" => (Status::Undelivered, None),
        "expired" => (Status::Undelivered, Some(Failure::Temporary)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(classify("Dispatched"), Some((Status::Sent, None)));
        assert_eq!(classify("Expired").map(|c| c.0), Some(Status::Undelivered));
        assert_eq!(classify("Aborted").map(|c| c.0), Some(Status::Failed));
        assert_eq!(classify("Teleported"), None);
    }
}
