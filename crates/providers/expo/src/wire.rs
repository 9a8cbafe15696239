//! Expo's push API responses, field for field (expo-server-sdk-node `ExpoPushTicket`,
//! `ExpoPushReceipt`). No `deny_unknown_fields`.

use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_core::ids::Id;

/// `{"data": ..., "errors": [...]}`: `data` is an array of tickets (send, several messages), one
/// ticket (send, one message) or a map from receipt id to receipt (getReceipts).
#[derive(Debug, Deserialize)]
pub(crate) struct Body<'a> {
    #[serde(default, borrow)]
    pub(crate) data: Option<&'a RawValue>,
    /// Request-level errors (`{"code": "PUSH_TOO_MANY_EXPERIENCE_IDS", "message"}`).
    #[serde(default)]
    pub(crate) errors: Option<Vec<serde_json::Value>>,
}

/// A push ticket or a push receipt: `{"status": "ok", "id"?}` or
/// `{"status": "error", "message", "details": {"error", "expoPushToken"?}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Outcome {
    #[serde(default)]
    pub(crate) status: Option<String>,
    /// The ticket id (= the receipt id to poll); absent on error tickets and on receipts.
    #[serde(default)]
    pub(crate) id: Option<Id>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) details: Option<Details>,
}

/// `details` of an error ticket or receipt.
#[derive(Debug, Deserialize)]
pub(crate) struct Details {
    /// `DeviceNotRegistered`, `MessageTooBig`, `MessageRateExceeded`, `InvalidCredentials`, ...
    #[serde(default)]
    pub(crate) error: Option<String>,
    #[serde(rename = "expoPushToken", default)]
    pub(crate) expo_push_token: Option<String>,
}

/// A JSON object's entries in body order (receipts are keyed by id; order matters for the
/// response and a map type would sort them).
#[derive(Debug)]
pub(crate) struct Entries<'a>(pub(crate) Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Entries<'a>, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of receipt id to receipt")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries<'a>, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(Visitor(std::marker::PhantomData))
    }
}
