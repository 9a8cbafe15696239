//! The APNs responses a sender forwards, field for field. No `deny_unknown_fields`.

use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_core::ids::Id;

/// An APNs HTTP/2 response body (`{"reason", "timestamp"?}`, `{}` on success) or the
/// `@parse/node-apn` `Provider.send()` result (`{"sent": [...], "failed": [...]}`).
#[derive(Debug, Deserialize)]
pub(crate) struct Body<'a> {
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default, borrow)]
    pub(crate) sent: Option<Vec<&'a RawValue>>,
    #[serde(default, borrow)]
    pub(crate) failed: Option<Vec<&'a RawValue>>,
}

/// One `sent[]` or `failed[]` entry of a node-apn result.
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceResult {
    /// The device token.
    #[serde(default)]
    pub(crate) device: Option<Id>,
    /// The HTTP status APNs answered (`"410"` or `410`).
    #[serde(default)]
    pub(crate) status: Option<Id>,
    /// APNs' JSON body for this device.
    #[serde(default)]
    pub(crate) response: Option<ErrorBody>,
    /// A transport error (node-apn sets it instead of `status` and `response`).
    #[serde(default)]
    pub(crate) error: Option<serde_json::Value>,
}

/// APNs' error body. `timestamp` (410 only) is when the token stopped being valid, in ms.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) reason: Option<String>,
}
