//! Mandrill event → Tidings status.

use tidings_core::{Failure, Status};

/// What a Mandrill message event means, or `None` for events that map to no status.
///
/// | `event` | status | note |
/// |---|---|---|
/// | `send` | sent | Mandrill handed the message to its MTA |
/// | `delivered` | delivered | not in Mandrill's documented list, but Novu maps it: accepted if it comes |
/// | `deferral` | deferred | the receiver refused temporarily; Mandrill retries |
/// | `hard_bounce` | bounced, permanent | |
/// | `soft_bounce` | bounced, temporary | Mandrill stopped retrying, but the address may work later (mailbox full) |
/// | `open` | opened | |
/// | `click` | clicked | |
/// | `spam` | spam | |
/// | `unsub` | unsubscribed | |
/// | `reject` | rejected | Mandrill refused to send (rejection list, invalid sender) |
/// | `inbound`, sync events, anything else | ignored | not about a sent message |
pub(crate) fn classify(event: &str) -> Option<(Status, Option<Failure>)> {
    Some(match event {
        "send" => (Status::Sent, None),
        "delivered" => (Status::Delivered, None),
        "deferral" => (Status::Deferred, Some(Failure::Temporary)),
        "hard_bounce" => (Status::Bounced, Some(Failure::Permanent)),
        "soft_bounce" => (Status::Bounced, Some(Failure::Temporary)),
        "open" => (Status::Opened, None),
        "click" => (Status::Clicked, None),
        "spam" => (Status::Spam, None),
        "unsub" => (Status::Unsubscribed, None),
        "reject" => (Status::Rejected, Some(Failure::Permanent)),
        _ => return None,
    })
}
