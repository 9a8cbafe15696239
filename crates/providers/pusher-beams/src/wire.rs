//! Pusher Beams webhook JSON, field for field. No `deny_unknown_fields`.

use serde::Deserialize;
use tidings_core::ids::Id;

/// The envelope of every webhook: `{"payload", "metadata", "custom_data"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) payload: Payload,
    pub(crate) metadata: Metadata,
}

/// `metadata`: the event type, its id (stable across Beams' retries) and its time.
#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    pub(crate) event_type: String,
    #[serde(default)]
    pub(crate) event_id: Option<Id>,
    /// `2019-03-11T10:42:16+0000`.
    #[serde(default)]
    pub(crate) created_at: Option<String>,
}

/// `payload` of the three event types (fields absent where the type has none).
#[derive(Debug, Deserialize)]
pub(crate) struct Payload {
    #[serde(default)]
    pub(crate) publish_id: Option<Id>,
    /// `v1.UserNotificationAcknowledgement`, `v1.UserNotificationOpen`.
    #[serde(default)]
    pub(crate) user_id: Option<Id>,
    /// `v1.PublishToUsersAttempt`: accepted by APNs / FCM for at least one device.
    #[serde(default)]
    pub(crate) users_delivered_to_gateway: Vec<Id>,
    /// `v1.PublishToUsersAttempt`: no device registered.
    #[serde(default)]
    pub(crate) users_no_devices: Vec<Id>,
    /// `v1.PublishToUsersAttempt`: transient gateway failure.
    #[serde(default)]
    pub(crate) users_gateway_failed: Vec<Id>,
}

/// The deprecated per-publish `webhookUrl` hook: `{"publishId", "status": "STARTED" | "FINISHED"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct LegacyHook {
    #[serde(rename = "publishId")]
    pub(crate) publish_id: Id,
    pub(crate) status: String,
}
