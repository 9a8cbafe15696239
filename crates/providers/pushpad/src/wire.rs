//! Pushpad's notification resources (pushpad-ruby `Pushpad::Notification`), field for field.

use serde::Deserialize;
use tidings_core::ids::Id;

/// `POST /projects/:id/notifications` answers `{"id", "scheduled", "uids"}`;
/// `GET /notifications/:id` answers the notification with its counters.
#[derive(Debug, Deserialize)]
pub(crate) struct Notification {
    #[serde(default)]
    pub(crate) id: Option<Id>,
    /// Create response: subscriptions the notification was scheduled for.
    #[serde(default)]
    pub(crate) scheduled: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) scheduled_count: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) successfully_sent_count: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) opened_count: Option<serde_json::Value>,
}
