//! Postmark's webhook JSON, field for field. No `deny_unknown_fields`: providers add fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use tidings_core::ids::Id;

/// One webhook record. Every record type shares this shape; fields a type does not send are
/// absent (the minimal `Bounce` of `Type: Unsubscribe` has neither `Email` nor `BouncedAt`, and a
/// `SubscriptionChange` may carry `MessageID: null`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Record {
    /// `Delivery`, `Bounce`, `SpamComplaint`, `Open`, `Click`, `SubscriptionChange`
    /// (inbound-message payloads have none).
    #[serde(default)]
    pub(crate) record_type: Option<String>,
    #[serde(default, rename = "MessageID")]
    pub(crate) message_id: Option<Id>,
    /// The bounce or complaint id (Bounce API); a 64-bit integer.
    #[serde(default, rename = "ID")]
    pub(crate) id: Option<Id>,
    /// Bounce type (`HardBounce`, `Transient`, ...).
    #[serde(default, rename = "Type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) type_code: Option<Id>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// The receiving server's response (Delivery, Bounce).
    #[serde(default)]
    pub(crate) details: Option<String>,
    /// The recipient of Delivery, Open, Click and SubscriptionChange records.
    #[serde(default)]
    pub(crate) recipient: Option<String>,
    /// The recipient of Bounce and SpamComplaint records.
    #[serde(default)]
    pub(crate) email: Option<String>,
    #[serde(default)]
    pub(crate) delivered_at: Option<String>,
    #[serde(default)]
    pub(crate) bounced_at: Option<String>,
    #[serde(default)]
    pub(crate) received_at: Option<String>,
    #[serde(default)]
    pub(crate) changed_at: Option<String>,
    /// Metadata set at send time (string to string).
    #[serde(default, deserialize_with = "lenient_metadata")]
    pub(crate) metadata: BTreeMap<String, String>,
    /// Present on inbound-message payloads, which have no `RecordType`.
    #[serde(default)]
    pub(crate) from_full: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub(crate) original_link: Option<String>,
    #[serde(default)]
    pub(crate) suppress_sending: Option<bool>,
    #[serde(default)]
    pub(crate) suppression_reason: Option<String>,
}

impl Record {
    /// The event time: the one timestamp field each record type sends.
    pub(crate) fn event_time(&self) -> Option<&str> {
        self.delivered_at
            .as_deref()
            .or(self.bounced_at.as_deref())
            .or(self.received_at.as_deref())
            .or(self.changed_at.as_deref())
    }
}

/// `Metadata` is documented as string to string; a number or bool value is kept as its text,
/// anything else (and a non-object `Metadata`) is skipped instead of failing the request.
fn lenient_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let serde_json::Value::Object(map) = value else {
        return Ok(BTreeMap::new());
    };
    Ok(map
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::String(text) => Some((key, text)),
            serde_json::Value::Number(n) => Some((key, n.to_string())),
            serde_json::Value::Bool(b) => Some((key, b.to_string())),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_ids_beyond_2_pow_53_stay_exact() {
        let record: Record = serde_json::from_str(
            r#"{"RecordType":"Bounce","ID":18446744073709551615,"MessageID":"m","Metadata":null}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            record.id.map(|id| id.0).as_deref(),
            Some("18446744073709551615")
        );
        assert!(record.metadata.is_empty());
    }
}
