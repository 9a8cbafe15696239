//! Brevo event → Tidings status.

use tidings_core::{Failure, Status};

/// What a Brevo payload event means, or `None` for events that map to no status.
///
/// Brevo's payloads use snake_case names that differ from the names of its webhook
/// configuration (`hardBounce`, `uniqueOpened`, ...); the configuration names are accepted too.
///
/// | `event` | status | note |
/// |---|---|---|
/// | `request` (`sent`) | sent | Brevo accepted the message for sending |
/// | `delivered` | delivered | |
/// | `deferred` | deferred | temporary; Brevo retries (its reason text is sometimes a 5xx) |
/// | `soft_bounce` (`softBounce`) | bounced | temporary cause (mailbox full, no MX), but Brevo has given up |
/// | `hard_bounce` (`hardBounce`) | bounced | permanent |
/// | `blocked` | blocked | Brevo refused: the contact is blocklisted |
/// | `spam` | spam | the recipient reported it |
/// | `complaint` | complaint | feedback-loop complaint |
/// | `invalid_email` (`invalid`), `error` | dropped | never sent (invalid address, sending error) |
/// | `opened`, `unique_opened` (`uniqueOpened`) | opened | |
/// | `proxy_open`, `unique_proxy_open` | opened | loaded by a privacy proxy (Apple Mail): automated |
/// | `click` | clicked | |
/// | `unsubscribed`, `unsubscribe` | unsubscribed | the docs and live payloads disagree on the name |
/// | anything else (`list_addition`, ...) | ignored | |
pub(crate) fn classify(event: &str) -> Option<(Status, Option<Failure>)> {
    use Failure::{Permanent, Temporary};
    Some(match event {
        "request" | "sent" => (Status::Sent, None),
        "delivered" => (Status::Delivered, None),
        "deferred" => (Status::Deferred, Some(Temporary)),
        "soft_bounce" | "softBounce" => (Status::Bounced, Some(Temporary)),
        "hard_bounce" | "hardBounce" => (Status::Bounced, Some(Permanent)),
        "blocked" => (Status::Blocked, Some(Permanent)),
        "spam" => (Status::Spam, None),
        "complaint" => (Status::Complaint, None),
        "invalid_email" | "invalid" | "error" => (Status::Dropped, Some(Permanent)),
        "opened" | "unique_opened" | "uniqueOpened" | "proxy_open" | "unique_proxy_open" => {
            (Status::Opened, None)
        }
        "click" => (Status::Clicked, None),
        "unsubscribed" | "unsubscribe" => (Status::Unsubscribed, None),
        _ => return None,
    })
}

/// Whether an open was made by a privacy proxy rather than the recipient.
pub(crate) fn is_proxy_open(event: &str) -> bool {
    matches!(event, "proxy_open" | "unique_proxy_open")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_and_configuration_names() {
        assert_eq!(classify("request").map(|c| c.0), Some(Status::Sent));
        assert_eq!(classify("hardBounce"), classify("hard_bounce"));
        assert_eq!(classify("error").map(|c| c.0), Some(Status::Dropped));
        assert_eq!(classify("list_addition"), None);
        assert!(is_proxy_open("unique_proxy_open") && !is_proxy_open("opened"));
    }
}
