//! Unisender Go's webhook JSON, field for field. Unknown fields are kept in the raw row only.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_core::ids::Id;

/// The request body: events grouped by user, or (single-event mode) one event at the top level.
#[derive(Debug, Deserialize)]
pub(crate) struct Body<'a> {
    /// The request's MD5 signature.
    #[serde(default)]
    pub(crate) auth: Option<String>,
    #[serde(default, borrow)]
    pub(crate) events_by_user: Option<Vec<UserEvents<'a>>>,
    /// Single-event mode: the event's name at the top level.
    #[serde(default)]
    pub(crate) event_name: Option<String>,
}

/// One user's (project's) events.
#[derive(Debug, Deserialize)]
pub(crate) struct UserEvents<'a> {
    #[serde(default, borrow)]
    pub(crate) events: Vec<&'a RawValue>,
}

/// One event: `{"event_name", "event_data"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct UnisenderEvent {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) event_name: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) event_data: Option<EmailStatus>,
}

/// `event_data` of a `transactional_email_status` event.
#[derive(Debug, Deserialize)]
pub(crate) struct EmailStatus {
    /// The id the send API returned.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) job_id: Option<Id>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) email: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) status: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`, UTC without a zone.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) event_time: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) url: Option<String>,
    /// The sender's metadata, echoed back.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) metadata: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) delivery_info: Option<DeliveryInfo>,
}

/// `event_data.delivery_info`.
#[derive(Debug, Deserialize)]
pub(crate) struct DeliveryInfo {
    /// `err_user_unknown`, `err_will_retry`, ... for failures.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) delivery_status: Option<String>,
    /// The receiving server's reply.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) destination_response: Option<String>,
}
