//! Resend event → Tidings status.

use tidings_core::{Failure, Status};

/// What a Resend event type means, or `None` for types that map to no status.
///
/// | `type` | status | note |
/// |---|---|---|
/// | `email.sent` | sent | the API accepted it; Resend will try to deliver |
/// | `email.delivered` | delivered | |
/// | `email.delivery_delayed` | delayed | temporary; Resend keeps retrying. Also the typo `email.delivered_delayed` of an old docs sample |
/// | `email.bounced` | bounced | permanent (Resend reports permanent rejections as bounces); temporary when `data.bounce.type` is `Transient` |
/// | `email.complained` | complaint | |
/// | `email.opened` | opened | |
/// | `email.clicked` | clicked | |
/// | `email.failed` | rejected | never sent: quota, unverified domain, invalid recipient, API key |
/// | `email.suppressed` | dropped | never sent: the address is on the suppression list |
/// | `email.scheduled`, `email.received`, `contact.*`, `domain.*`, anything else | ignored | not delivery events |
pub(crate) fn classify(kind: &str) -> Option<(Status, Option<Failure>)> {
    Some(match kind {
        "email.sent" => (Status::Sent, None),
        "email.delivered" => (Status::Delivered, None),
        "email.delivery_delayed" | "email.delivered_delayed" => {
            (Status::Delayed, Some(Failure::Temporary))
        }
        "email.bounced" => (Status::Bounced, Some(Failure::Permanent)),
        "email.complained" => (Status::Complaint, None),
        "email.opened" => (Status::Opened, None),
        "email.clicked" => (Status::Clicked, None),
        "email.failed" => (Status::Rejected, Some(Failure::Permanent)),
        "email.suppressed" => (Status::Dropped, Some(Failure::Permanent)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(
            classify("email.suppressed").map(|c| c.0),
            Some(Status::Dropped)
        );
        assert_eq!(
            classify("email.failed").map(|c| c.0),
            Some(Status::Rejected)
        );
        assert_eq!(classify("email.received"), None);
        assert_eq!(classify("contact.created"), None);
    }
}
