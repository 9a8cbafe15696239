//! Mailjet event → Tidings status.

use tidings_core::{Failure, Status};

/// What a Mailjet event means, or `None` for events that map to no status.
///
/// | `event` | status | note |
/// |---|---|---|
/// | `sent` | delivered | Mailjet's `sent` means the receiving server accepted it (`smtp_reply`) |
/// | `open` | opened | |
/// | `click` | clicked | |
/// | `bounce`, `hard_bounce: true` | bounced | permanent |
/// | `bounce`, `hard_bounce: false` | deferred | temporary (greylisting, full mailbox); Mailjet retries |
/// | `blocked` | blocked | Mailjet did not send it (preblocked, typofix, spam, duplicate, ...) |
/// | `spam` | spam | a feedback-loop complaint (`source`) |
/// | `unsub` | unsubscribed | |
/// | anything else | ignored | |
pub(crate) fn classify(event: &str, hard_bounce: bool) -> Option<(Status, Option<Failure>)> {
    Some(match event {
        "sent" => (Status::Delivered, None),
        "open" => (Status::Opened, None),
        "click" => (Status::Clicked, None),
        "bounce" if hard_bounce => (Status::Bounced, Some(Failure::Permanent)),
        "bounce" => (Status::Deferred, Some(Failure::Temporary)),
        "blocked" => (Status::Blocked, Some(Failure::Permanent)),
        "spam" => (Status::Spam, None),
        "unsub" => (Status::Unsubscribed, None),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounces_split_on_hard_bounce() {
        assert_eq!(classify("bounce", true).map(|c| c.0), Some(Status::Bounced));
        assert_eq!(
            classify("bounce", false).map(|c| c.0),
            Some(Status::Deferred)
        );
        assert_eq!(
            classify("sent", false).map(|c| c.0),
            Some(Status::Delivered)
        );
        assert_eq!(classify("parse", false), None);
    }
}
