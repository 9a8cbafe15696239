//! MailerSend activity → Tidings status.

use tidings_core::{Failure, Status};

/// What a MailerSend activity (the `type` after `activity.`) means, or `None` for activities
/// that map to no status.
///
/// | activity | status | note |
/// |---|---|---|
/// | `sent` | sent | MailerSend handed the message to its MTA |
/// | `delivered` | delivered | |
/// | `deferred` | deferred | temporary failure, MailerSend retries |
/// | `soft_bounced` | bounced, temporary | MailerSend gave up, but the address may work later |
/// | `hard_bounced` | bounced, permanent | |
/// | `opened`, `opened_unique` | opened | `_unique`: only the first open of each message |
/// | `clicked`, `clicked_unique` | clicked | |
/// | `unsubscribed` | unsubscribed | |
/// | `spam_complaint` (`data.type` `spam_complaints`) | spam | |
/// | `suppressed` | dropped | the address is on a suppression list: never sent |
/// | `survey_opened`, `survey_submitted`, anything else | ignored | |
pub(crate) fn classify(activity: &str) -> Option<(Status, Option<Failure>)> {
    Some(match activity {
        "sent" => (Status::Sent, None),
        "delivered" => (Status::Delivered, None),
        "deferred" => (Status::Deferred, Some(Failure::Temporary)),
        "soft_bounced" => (Status::Bounced, Some(Failure::Temporary)),
        "hard_bounced" => (Status::Bounced, Some(Failure::Permanent)),
        "opened" | "opened_unique" => (Status::Opened, None),
        "clicked" | "clicked_unique" => (Status::Clicked, None),
        "unsubscribed" => (Status::Unsubscribed, None),
        "spam_complaint" | "spam_complaints" => (Status::Spam, None),
        "suppressed" => (Status::Dropped, Some(Failure::Permanent)),
        _ => return None,
    })
}
