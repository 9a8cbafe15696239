//! Push-webhook bodies → Tidings status.
//!
//! Statuses come only from Novu's push contract (its table is in
//! [`tidings_push_contract::status`]: `eventType` is the status). The integration's other body
//! is Novu's own outgoing notification, which maps to no status.

use crate::wire::Outgoing;

/// Why a body that is not the contract maps to no status, or `None` when it is not a body this
/// integration knows.
///
/// | body | status | note |
/// |---|---|---|
/// | `{title, content, target, payload}` | ignored | the notification Novu posts to the endpoint: content, not a delivery event |
/// | anything else | error | not the contract |
pub(crate) fn ignore_reason(body: &Outgoing) -> Option<&'static str> {
    (body.target.is_some() || (body.title.is_some() && body.content.is_some())).then_some(
        "the notification Novu posts to a push-webhook endpoint carries content, not a delivery status",
    )
}
