//! Mailgun event → Tidings status.

use tidings_core::Status;

/// What a Mailgun event means, or `None` for events that map to no status.
///
/// | event | status | note |
/// |---|---|---|
/// | `delivered` | delivered | |
pub(crate) fn classify(event: &str) -> Option<Status> {
    Some(match event {
        "delivered" => Status::Delivered,
        _ => return None,
    })
}
