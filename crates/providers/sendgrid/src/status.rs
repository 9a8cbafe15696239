//! SendGrid event → Tidings status.

use tidings_core::{Failure, Status};

/// What a SendGrid event means, or `None` for events that map to no status.
///
/// | `event` | status | note |
/// |---|---|---|
/// | `processed` | sent | SendGrid accepted the message and will send it |
/// | `deferred` | deferred | the receiver refused temporarily; SendGrid retries for up to 72 h |
/// | `delivered` | delivered | |
/// | `open` | opened | `sg_machine_open` marks Apple Mail Privacy Protection pre-fetches |
/// | `click` | clicked | |
/// | `bounce`, `type=bounce` | bounced | permanent |
/// | `bounce`, `type=blocked` | blocked | the receiver blocked it (reputation, content); SendGrid does not suppress the address, so it is temporary |
/// | `dropped` | dropped | suppressed or invalid address: never sent |
/// | `spamreport` | spam | |
/// | `unsubscribe`, `group_unsubscribe` | unsubscribed | |
/// | `group_resubscribe`, anything else | ignored | a resubscribe is not a delivery state |
pub(crate) fn classify(
    event: &str,
    bounce_type: Option<&str>,
) -> Option<(Status, Option<Failure>)> {
    Some(match event {
        "processed" => (Status::Sent, None),
        "deferred" => (Status::Deferred, Some(Failure::Temporary)),
        "delivered" => (Status::Delivered, None),
        "open" => (Status::Opened, None),
        "click" => (Status::Clicked, None),
        "bounce" if bounce_type == Some("blocked") => (Status::Blocked, Some(Failure::Temporary)),
        "bounce" => (Status::Bounced, Some(Failure::Permanent)),
        "dropped" => (Status::Dropped, Some(Failure::Permanent)),
        "spamreport" => (Status::Spam, None),
        "unsubscribe" | "group_unsubscribe" => (Status::Unsubscribed, None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_is_a_bounce_type() {
        assert_eq!(
            classify("bounce", Some("blocked")),
            Some((Status::Blocked, Some(Failure::Temporary)))
        );
        assert_eq!(classify("bounce", None).map(|c| c.0), Some(Status::Bounced));
        assert_eq!(classify("group_resubscribe", None), None);
    }
}
