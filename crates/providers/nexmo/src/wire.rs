//! Vonage's two callback bodies, field for field. No `deny_unknown_fields`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// An SMS API delivery receipt: flat string fields, from a query string, a form or a JSON
/// object (kebab-case and camelCase mixed as Vonage names them).
#[derive(Debug)]
pub(crate) struct DeliveryReceipt<'a> {
    pub(crate) fields: &'a BTreeMap<String, String>,
}

impl<'a> DeliveryReceipt<'a> {
    fn field(&self, name: &str) -> Option<&'a str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The id of this message part.
    pub(crate) fn message_id(&self) -> Option<&'a str> {
        self.field("messageId")
    }

    pub(crate) fn status(&self) -> Option<&'a str> {
        self.field("status")
    }

    /// The recipient.
    pub(crate) fn msisdn(&self) -> Option<&'a str> {
        self.field("msisdn")
    }

    pub(crate) fn err_code(&self) -> Option<&'a str> {
        self.field("err-code")
    }

    /// An inbound message (`type` and `text` or `keyword`, no `status`) sent to the same URL.
    pub(crate) fn is_inbound(&self) -> bool {
        self.field("type").is_some()
            && (self.field("text").is_some() || self.field("keyword").is_some())
    }

    /// The sender's own reference, set on send.
    pub(crate) fn client_ref(&self) -> Option<&'a str> {
        self.field("client-ref")
    }

    /// The carrier's time, `YYMMDDHHMM`.
    pub(crate) fn scts(&self) -> Option<&'a str> {
        self.field("scts")
    }

    /// When Vonage sent the receipt, `YYYY-MM-DD HH:MM:SS` UTC.
    pub(crate) fn message_timestamp(&self) -> Option<&'a str> {
        self.field("message-timestamp")
    }
}

/// A Messages API status webhook.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageStatus {
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) message_uuid: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) status: Option<String>,
    /// ISO 8601.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) timestamp: Option<String>,
    /// A number for SMS; an object (`{"type", "number"|"id"}`) in older payload versions.
    #[serde(default)]
    pub(crate) to: Option<Value>,
    /// The sender's own reference, set on send.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) client_ref: Option<String>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) error: Option<MessageError>,
    /// Set on inbound messages, which are not statuses.
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) message_type: Option<String>,
}

/// The RFC 7807 problem on `rejected` and `undeliverable`.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageError {
    /// The error code (a number in Vonage's examples, sometimes text).
    #[serde(default)]
    pub(crate) title: Option<Value>,
    #[serde(default, deserialize_with = "tidings_core::json::lenient")]
    pub(crate) detail: Option<String>,
}

/// A scalar JSON value as text (strings as they are, numbers and booleans as written).
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The recipient from `to`: the number itself, or the `number`/`id` of an address object.
pub(crate) fn recipient(to: &Value) -> Option<String> {
    match to {
        Value::Object(map) => map
            .get("number")
            .or_else(|| map.get("id"))
            .and_then(scalar_text),
        other => scalar_text(other),
    }
}
