//! Unisender Go email status → Tidings status.

use tidings_core::{Failure, Status};

/// What a `transactional_email_status` event's `status` means (refined for hard bounces by
/// `delivery_info.delivery_status`), or `None` for statuses that map to no status.
///
/// | `status` | `delivery_status` | status | note |
/// |---|---|---|---|
/// | `sent` | | sent | accepted by Unisender Go |
/// | `delivered` | | delivered | |
/// | `soft_bounced` | | deferred | temporary failure; Unisender Go keeps retrying |
/// | `hard_bounced` | `err_unsubscribed`, `err_skip_letter`, `err_spam_skipped` | dropped | never sent: the address had unsubscribed, complained or was skipped |
/// | `hard_bounced` | `err_spam_rejected`, `err_blacklisted` | blocked, temporary | the receiver refused the sender or content |
/// | `hard_bounced` | anything else | bounced, permanent | |
/// | `opened` | | opened | |
/// | `clicked` | | clicked | |
/// | `unsubscribed` | | unsubscribed | |
/// | `spam` | | spam | |
/// | `subscribed`, anything else | | ignored | a resubscribe is not a delivery state |
pub(crate) fn classify(
    status: &str,
    delivery_status: Option<&str>,
) -> Option<(Status, Option<Failure>)> {
    Some(match status {
        "sent" => (Status::Sent, None),
        "delivered" => (Status::Delivered, None),
        "soft_bounced" => (Status::Deferred, Some(Failure::Temporary)),
        "hard_bounced" => match delivery_status {
            Some("err_unsubscribed" | "err_skip_letter" | "err_spam_skipped") => {
                (Status::Dropped, Some(Failure::Permanent))
            }
            Some("err_spam_rejected" | "err_blacklisted") => {
                (Status::Blocked, Some(Failure::Temporary))
            }
            _ => (Status::Bounced, Some(Failure::Permanent)),
        },
        "opened" => (Status::Opened, None),
        "clicked" => (Status::Clicked, None),
        "unsubscribed" => (Status::Unsubscribed, None),
        "spam" => (Status::Spam, None),
        _ => return None,
    })
}
