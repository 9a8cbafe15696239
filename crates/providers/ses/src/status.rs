//! Amazon SES event → Tidings status.

use tidings_core::{Failure, Status};

/// What an SES event means, or `None` for events that map to no status.
///
/// | `eventType` / `notificationType` | status | note |
/// |---|---|---|
/// | `Send` | sent | SES accepted the message and will try to deliver it |
/// | `Delivery` | delivered | the receiving server accepted it |
/// | `Bounce`, subType `Suppressed` / `OnAccountSuppressionList` | dropped | SES never sent it: the address is on a suppression list |
/// | `Bounce`, `Permanent` | bounced | permanent |
/// | `Bounce`, `Transient` | deferred | temporary (mailbox full, message too large, ...) |
/// | `Bounce`, `Undetermined` | bounced | SES could not tell why; not marked temporary or permanent |
/// | `Complaint` | complaint | the recipient marked it as spam (feedback loop) |
/// | `Reject` | rejected | SES refused it (virus) before sending |
/// | `Rendering Failure` | rejected | the template could not be rendered; never sent |
/// | `DeliveryDelay` | delayed | temporary; SES keeps retrying until `expirationTime` |
/// | `Open` / `Click` | opened / clicked | |
/// | `Subscription` that opts out | unsubscribed | `unsubscribeAll` or a topic newly `OptOut` |
/// | `Subscription` otherwise, `Received`, anything else | ignored | opt-ins and inbound mail are not delivery states |
pub(crate) fn classify(
    event: &str,
    bounce_type: Option<&str>,
    bounce_sub_type: Option<&str>,
    unsubscribes: bool,
) -> Option<(Status, Option<Failure>)> {
    Some(match event {
        "Send" => (Status::Sent, None),
        "Delivery" => (Status::Delivered, None),
        "Bounce" => match (bounce_type, bounce_sub_type) {
            (_, Some("Suppressed" | "OnAccountSuppressionList")) => {
                (Status::Dropped, Some(Failure::Permanent))
            }
            (Some("Permanent"), _) => (Status::Bounced, Some(Failure::Permanent)),
            (Some("Transient"), _) => (Status::Deferred, Some(Failure::Temporary)),
            _ => (Status::Bounced, None),
        },
        "Complaint" => (Status::Complaint, None),
        "Reject" | "Rendering Failure" => (Status::Rejected, Some(Failure::Permanent)),
        "DeliveryDelay" => (Status::Delayed, Some(Failure::Temporary)),
        "Open" => (Status::Opened, None),
        "Click" => (Status::Clicked, None),
        "Subscription" if unsubscribes => (Status::Unsubscribed, None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_kinds() {
        let status = |t, s| classify("Bounce", t, s, false).map(|c| c.0);
        assert_eq!(
            status(Some("Permanent"), Some("Suppressed")),
            Some(Status::Dropped)
        );
        assert_eq!(
            status(Some("Permanent"), Some("General")),
            Some(Status::Bounced)
        );
        assert_eq!(
            status(Some("Transient"), Some("MailboxFull")),
            Some(Status::Deferred)
        );
        assert_eq!(
            status(Some("Undetermined"), Some("Undetermined")),
            Some(Status::Bounced)
        );
        assert_eq!(classify("Subscription", None, None, false), None);
        assert_eq!(classify("Received", None, None, false), None);
    }
}
