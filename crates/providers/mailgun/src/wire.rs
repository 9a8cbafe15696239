//! Mailgun's webhook JSON, field for field. No `deny_unknown_fields`: providers add fields.

use serde::Deserialize;
use tidings_core::ids::Id;

/// One event as Mailgun sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct WireEvent {
    pub(crate) event: String,
    pub(crate) message_id: Id,
    #[serde(default)]
    pub(crate) timestamp: Option<i64>,
}
