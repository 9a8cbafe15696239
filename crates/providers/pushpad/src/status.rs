//! Pushpad bodies → Tidings status.
//!
//! Pushpad posts no webhooks; statuses come only from Novu's push contract (its table is in
//! [`tidings_push_contract::status`]). The API resources a sender may forward hold aggregate
//! counters and map to no status.

use crate::wire::Notification;

/// The provider event and why a Pushpad resource maps to no status, or `None` when the body is
/// not one. (No `classify`: no Pushpad body maps to a status.)
///
/// | body | status | note |
/// |---|---|---|
/// | create response `{id, scheduled, uids}` | ignored | Pushpad accepted the notification; no delivery signal follows |
/// | notification `{id, scheduled_count, successfully_sent_count, opened_count, ...}` | ignored | counters for all subscribers: no event for one device |
pub(crate) fn recognize(body: &Notification) -> Option<(&'static str, &'static str)> {
    if body.successfully_sent_count.is_some()
        || body.opened_count.is_some()
        || body.scheduled_count.is_some()
    {
        Some((
            "notification counters",
            "aggregate counters across subscribers: no delivery event for one device",
        ))
    } else if body.scheduled.is_some() {
        Some((
            "created",
            "Pushpad accepted the notification; it reports no delivery (the app reports it)",
        ))
    } else {
        None
    }
}
