//! Postal's webhook JSON, field for field. Unknown fields are kept in the raw row only.

use serde::Deserialize;
use tidings_core::ids::Id;

/// One webhook request: a single event.
#[derive(Debug, Deserialize)]
pub(crate) struct PostalEvent {
    /// `MessageSent`, `MessageDelayed`, `MessageDeliveryFailed`, `MessageHeld`,
    /// `MessageBounced`, `MessageLinkClicked`, `MessageLoaded`, `DomainDNSError`, ...
    pub(crate) event: String,
    /// Event time, fractional Unix seconds.
    #[serde(default)]
    pub(crate) timestamp: Option<f64>,
    /// The event's id, the same on every retry of this webhook.
    #[serde(default)]
    pub(crate) uuid: Option<String>,
    #[serde(default)]
    pub(crate) payload: Option<Payload>,
}

/// `payload`: its fields depend on the event.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Payload {
    /// The message (status, click and load events).
    #[serde(default)]
    pub(crate) message: Option<Message>,
    /// The message that bounced (`MessageBounced`).
    #[serde(default)]
    pub(crate) original_message: Option<Message>,
    /// The bounce message received (`MessageBounced`).
    #[serde(default)]
    pub(crate) bounce: Option<Message>,
    /// `Sent`, `SoftFail`, `HardFail` or `Held` (status events).
    #[serde(default)]
    pub(crate) status: Option<String>,
    /// Postal's description of the outcome.
    #[serde(default)]
    pub(crate) details: Option<String>,
    /// The receiving server's reply.
    #[serde(default)]
    pub(crate) output: Option<String>,
    /// Clicked link (`MessageLinkClicked`).
    #[serde(default)]
    pub(crate) url: Option<String>,
}

/// A message as Postal describes it.
#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    /// Postal's per-recipient message id (what the send API returns per recipient).
    #[serde(default)]
    pub(crate) id: Option<Id>,
    /// `outgoing` or `incoming`.
    #[serde(default)]
    pub(crate) direction: Option<String>,
    #[serde(default)]
    pub(crate) to: Option<String>,
}
