//! The FCM responses a sender forwards, field for field. No `deny_unknown_fields`.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Any of the bodies below; which key is present tells them apart.
#[derive(Debug, Deserialize)]
pub(crate) struct Body<'a> {
    /// HTTP v1 `projects.messages.send` error (google.rpc.Status in JSON).
    #[serde(default)]
    pub(crate) error: Option<SendError>,
    /// HTTP v1 success: `projects/<project>/messages/<message id>`.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Firebase Admin SDK `sendEach*` result: one response per message, in request order.
    #[serde(default, borrow)]
    pub(crate) responses: Option<Vec<&'a RawValue>>,
    /// FCM Data API `androidApps.deliveryData.list`: daily aggregates.
    #[serde(rename = "androidDeliveryData", default, borrow)]
    pub(crate) android_delivery_data: Option<Vec<&'a RawValue>>,
}

/// `{"error": {"code": 404, "message": "...", "status": "NOT_FOUND", "details": [...]}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SendError {
    /// The HTTP status code.
    #[serde(default)]
    pub(crate) code: Option<i64>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// The canonical gRPC status (`NOT_FOUND`, `INVALID_ARGUMENT`, ...).
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) details: Vec<Detail>,
}

/// One `details[]` entry; the `google.firebase.fcm.v1.FcmError` one carries `errorCode`.
#[derive(Debug, Deserialize)]
pub(crate) struct Detail {
    #[serde(rename = "errorCode", default)]
    pub(crate) error_code: Option<String>,
}

impl SendError {
    /// FCM's own error code (`UNREGISTERED`), else the canonical status.
    pub(crate) fn fcm_code(&self) -> Option<String> {
        self.details
            .iter()
            .find_map(|d| d.error_code.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| self.status.clone().filter(|s| !s.is_empty()))
    }
}

/// One `SendResponse` of a Firebase Admin SDK batch result, as `JSON.stringify` prints it.
#[derive(Debug, Deserialize)]
pub(crate) struct SendResponse {
    #[serde(default)]
    pub(crate) success: Option<bool>,
    #[serde(rename = "messageId", default)]
    pub(crate) message_id: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<AdminError>,
}

/// A Firebase Admin SDK error: `{"code": "messaging/registration-token-not-registered", "message"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct AdminError {
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}
