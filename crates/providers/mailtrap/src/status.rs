//! Mailtrap event → Tidings status.

use tidings_core::{Failure, Status};

/// What a Mailtrap event means, or `None` for events that map to no status.
///
/// | `event` | status | note |
/// |---|---|---|
/// | `delivery` | delivered | |
/// | `soft bounce` | deferred | temporary failure, Mailtrap retries |
/// | `bounce` | bounced, permanent | |
/// | `suspension` | deferred | Mailtrap paused sending to this recipient for now |
/// | `reject` | rejected | Mailtrap refused to send it |
/// | `open` | opened | |
/// | `click` | clicked | |
/// | `spam` | spam | |
/// | `unsubscribe` | unsubscribed | |
/// | anything else | ignored | |
pub(crate) fn classify(event: &str) -> Option<(Status, Option<Failure>)> {
    Some(match event {
        "delivery" => (Status::Delivered, None),
        "soft bounce" | "soft_bounce" => (Status::Deferred, Some(Failure::Temporary)),
        "bounce" => (Status::Bounced, Some(Failure::Permanent)),
        "suspension" => (Status::Deferred, Some(Failure::Temporary)),
        "reject" => (Status::Rejected, Some(Failure::Permanent)),
        "open" => (Status::Opened, None),
        "click" => (Status::Clicked, None),
        "spam" => (Status::Spam, None),
        "unsubscribe" => (Status::Unsubscribed, None),
        _ => return None,
    })
}
