//! SparkPost's webhook JSON, field for field. Unknown fields are kept in the raw row only.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_core::ids::Id;
pub(crate) use tidings_core::json::Scalar;

/// One element of the batch: `{"msys": {"<class>": {...}}}`. `{"msys": {}}` is the ping SparkPost
/// sends when a webhook is created or tested.
#[derive(Debug, Deserialize)]
pub(crate) struct Wrapper<'a> {
    #[serde(borrow)]
    pub(crate) msys: BTreeMap<String, &'a RawValue>,
}

/// One event inside an event class (`message_event`, `track_event`, `gen_event`,
/// `unsubscribe_event`, `relay_event`, ...).
#[derive(Debug, Deserialize)]
pub(crate) struct SparkPostEvent {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// SparkPost's per-message id.
    #[serde(default)]
    pub(crate) message_id: Option<Id>,
    /// The id `POST /api/v1/transmissions` returned to the sender.
    #[serde(default)]
    pub(crate) transmission_id: Option<Id>,
    /// Unique per event and stable across SparkPost's retries of a batch.
    #[serde(default)]
    pub(crate) event_id: Option<Id>,
    /// Unix seconds as a string, or ISO 8601 in some events.
    #[serde(default)]
    pub(crate) timestamp: Option<Scalar>,
    #[serde(default)]
    pub(crate) rcpt_to: Option<String>,
    /// The recipient as the sender wrote it (`rcpt_to` is lowercased).
    #[serde(default)]
    pub(crate) raw_rcpt_to: Option<String>,
    /// Transmission and recipient metadata, merged.
    #[serde(default)]
    pub(crate) rcpt_meta: Option<BTreeMap<String, Scalar>>,
    #[serde(default)]
    pub(crate) bounce_class: Option<Scalar>,
    #[serde(default)]
    pub(crate) error_code: Option<Scalar>,
    /// The MTA reply with addresses redacted.
    #[serde(default)]
    pub(crate) reason: Option<String>,
    /// The full MTA reply.
    #[serde(default)]
    pub(crate) raw_reason: Option<String>,
    #[serde(default)]
    pub(crate) target_link_url: Option<String>,
}
