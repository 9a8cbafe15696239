//! Infobip's SMS delivery report JSON, field for field. No `deny_unknown_fields`: Infobip adds
//! fields (v3 `messageCount`/`sender`/`platform`, v2 `smsCount`).

use serde::{Deserialize, Deserializer};
use tidings_core::ids::Id;

/// The body: one callback carries up to `maxBucketSize` (default 100) reports.
#[derive(Debug, Deserialize)]
pub(crate) struct Reports<'a> {
    #[serde(borrow)]
    pub(crate) results: Vec<&'a serde_json::value::RawValue>,
}

/// One delivery report: one message to one recipient.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Report {
    #[serde(default)]
    pub(crate) message_id: Option<Id>,
    #[serde(default)]
    pub(crate) to: Option<String>,
    /// When Infobip finished processing the message (delivered, expired, ...).
    #[serde(default)]
    pub(crate) done_at: Option<String>,
    /// When the message was (scheduled to be) sent.
    #[serde(default)]
    pub(crate) sent_at: Option<String>,
    /// The sender's own value given at send time, echoed back.
    #[serde(default, deserialize_with = "lenient_text")]
    pub(crate) callback_data: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<Code>,
    #[serde(default)]
    pub(crate) error: Option<Code>,
}

/// Infobip's `status` and `error` objects share this shape.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Code {
    #[serde(default, deserialize_with = "tidings_core::json::lenient_i64")]
    pub(crate) group_id: Option<i64>,
    #[serde(default)]
    pub(crate) group_name: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient_i64")]
    pub(crate) id: Option<i64>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// On `error` only: whether retrying the same message cannot succeed.
    #[serde(default)]
    pub(crate) permanent: Option<bool>,
}

/// Free text the sender chose: a string as it is, a number as its exact text, anything else
/// (an object) as its JSON text.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if s.is_empty() => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}
