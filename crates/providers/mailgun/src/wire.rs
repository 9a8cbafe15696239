//! Mailgun's webhook JSON (webhooks "v3"), field for field, and readers for the legacy form fields.
//! Unknown fields are kept in the raw row only. Scalars whose type varies (codes, attempt counts,
//! bot flags) are read leniently.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tidings_core::ids::OWN_ID_KEYS;
pub(crate) use tidings_core::json::Scalar;

/// The body of a v3 webhook: one event and the signature over `timestamp ‖ token`.
#[derive(Debug, Deserialize)]
pub(crate) struct Webhook<'a> {
    #[serde(default)]
    pub(crate) signature: Option<SignatureBlock>,
    #[serde(default, borrow, rename = "event-data")]
    pub(crate) event_data: Option<&'a RawValue>,
}

/// `signature`: `timestamp` is a string of Unix seconds, `token` 50 random characters,
/// `signature` the hex HMAC. Subaccounts also get `parent-signature` (not needed to verify).
#[derive(Debug, Deserialize)]
pub(crate) struct SignatureBlock {
    #[serde(default)]
    pub(crate) timestamp: Option<Scalar>,
    #[serde(default)]
    pub(crate) token: Option<Scalar>,
    #[serde(default)]
    pub(crate) signature: Option<Scalar>,
}

/// `event-data`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventData {
    pub(crate) event: String,
    /// Unique only within a day: pair it with `timestamp`.
    #[serde(default)]
    pub(crate) id: Option<Scalar>,
    /// Float Unix seconds with microseconds (`1534108637.153125`).
    #[serde(default)]
    pub(crate) timestamp: Option<Scalar>,
    #[serde(default)]
    pub(crate) recipient: Option<String>,
    /// `permanent` or `temporary` on `failed` events.
    #[serde(default)]
    pub(crate) severity: Option<String>,
    /// `bounce`, `suppress-bounce`, `suppress-unsubscribe`, `generic`, `greylisted`, `old`, ...
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<Message>,
    /// The sender's `v:` variables / `X-Mailgun-Variables`: an object, a JSON string, or an empty
    /// array when there are none.
    #[serde(default, rename = "user-variables")]
    pub(crate) user_variables: Option<Value>,
    /// Absent or `null` on events that made no delivery attempt.
    #[serde(default, rename = "delivery-status")]
    pub(crate) delivery_status: Option<DeliveryStatus>,
    /// `rejected` events only.
    #[serde(default)]
    pub(crate) reject: Option<Reject>,
    /// `opened`, `clicked`, `unsubscribed`.
    #[serde(default, rename = "client-info")]
    pub(crate) client_info: Option<ClientInfo>,
    /// The clicked link.
    #[serde(default)]
    pub(crate) url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub(crate) headers: Option<Headers>,
}

/// The message's headers, lower-cased. Opens and clicks carry only `message-id`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Headers {
    /// Without angle brackets (the send API returns it with them).
    #[serde(default, rename = "message-id")]
    pub(crate) message_id: Option<String>,
    #[serde(default)]
    pub(crate) to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeliveryStatus {
    /// SMTP code (`550`), or Mailgun's own (`498`, `605`); sometimes a string.
    #[serde(default)]
    pub(crate) code: Option<Scalar>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default, rename = "attempt-no")]
    pub(crate) attempt_no: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Reject {
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ClientInfo {
    /// `browser`, `mobile browser`, `email client`, `robot`, ...
    #[serde(default, rename = "client-type")]
    pub(crate) client_type: Option<String>,
    /// Bot detection: which bot (`apple`, `gmail`, `generic`), empty for a person.
    #[serde(default)]
    pub(crate) bot: Option<Scalar>,
}

/// The sender's own message id among the user variables (`id`, Novu's `novuMessageId` or
/// `__nvMessageId`). Accepts an object or the JSON text of one.
pub(crate) fn own_id(user_variables: &Value) -> Option<String> {
    let parsed;
    let object = match user_variables {
        Value::Object(map) => map,
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            parsed.as_object()?
        }
        _ => return None,
    };
    OWN_ID_KEYS.iter().find_map(|key| match object.get(*key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    })
}

/// The address in `Name <addr@example.com>`, or the value itself.
pub(crate) fn address(value: &str) -> &str {
    value
        .rsplit_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(value, |(addr, _)| addr)
}

/// The `Message-Id` in legacy `message-headers`: the JSON text of `[[name, value], ...]`.
pub(crate) fn message_id_header(text: &str) -> Option<String> {
    let headers: Vec<Value> = serde_json::from_str(text).ok()?;
    headers.iter().find_map(|pair| {
        let pair = pair.as_array()?;
        let name = pair.first()?.as_str()?;
        let value = pair.get(1)?.as_str()?;
        name.eq_ignore_ascii_case("message-id")
            .then(|| value.to_owned())
    })
}
