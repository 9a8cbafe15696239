//! Termii report status → Tidings status.

use tidings_core::{Failure, Status};

/// What a Termii report status means, or `None` for statuses Termii does not document. The
/// state is matched case-insensitively, and only the part before ` | ` of the 2020 format
/// (`DELIVERED | Message delivered to handset`) counts.
///
/// | `status` | status | note |
/// |---|---|---|
/// | `Message Sent`, `Sent` | sent | handed to the operator |
/// | `Delivered` | delivered | |
/// | `DND Active on Phone Number` | rejected | the number is on Nigeria's Do-Not-Disturb list and the message went on the generic route; permanent for that route |
/// | `Rejected` | rejected | refused by Termii or the operator; permanent |
/// | `Message Failed`, `Failed` | failed | Termii could not send it |
/// | `Expired` | undelivered | the operator gave up before the handset took it; temporary |
pub(crate) fn classify(state: &str) -> Option<(Status, Option<Failure>)> {
    let state = state.trim().to_ascii_lowercase();
    Some(match state.as_str() {
        "message sent" | "sent" => (Status::Sent, None),
        "delivered" => (Status::Delivered, None),
        "rejected" => (Status::Rejected, Some(Failure::Permanent)),
        "message failed" | "failed" => (Status::Failed, None),
        "expired" => (Status::Undelivered, Some(Failure::Temporary)),
        dnd if dnd.starts_with("dnd active") => (Status::Rejected, Some(Failure::Permanent)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(classify("Message Sent"), Some((Status::Sent, None)));
        assert_eq!(
            classify("message failed").map(|c| c.0),
            Some(Status::Failed)
        );
        assert_eq!(
            classify("DND Active on Phone Number").map(|c| c.0),
            Some(Status::Rejected)
        );
        assert_eq!(classify("Received"), None);
    }
}
