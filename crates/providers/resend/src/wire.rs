//! Resend's webhook JSON, field for field. No `deny_unknown_fields`: providers add fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use tidings_core::ids::Id;

/// One webhook event: `{"type", "created_at", "data": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireEvent {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// When the event happened (ISO 8601).
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) data: Data,
}

/// The `data` object of an `email.*` event.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Data {
    /// The id the send API returned.
    #[serde(default)]
    pub(crate) email_id: Option<Id>,
    /// Recipients: an array of addresses (a single string is accepted too).
    #[serde(default, deserialize_with = "strings")]
    pub(crate) to: Vec<String>,
    /// Send-time tags, observed both as `{"name": "value"}` and as `[{"name", "value"}]`.
    #[serde(default, deserialize_with = "tags")]
    pub(crate) tags: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) bounce: Option<Detail>,
    #[serde(default)]
    pub(crate) failed: Option<Detail>,
    #[serde(default)]
    pub(crate) suppressed: Option<Detail>,
    #[serde(default)]
    pub(crate) click: Option<Click>,
}

/// `data.bounce`, `data.failed` and `data.suppressed`: human text and a classification.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Detail {
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// `Permanent`, `Transient`, ... (bounce); the suppression kind.
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) sub_type: Option<String>,
    /// `email.failed`: `reached_daily_quota`, `domain_not_verified`, ...
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// `data.click`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Click {
    #[serde(default)]
    pub(crate) link: Option<String>,
    #[serde(default)]
    pub(crate) timestamp: Option<String>,
}

fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(one) => vec![one],
        serde_json::Value::Array(many) => many
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    })
}

fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
            .collect(),
        serde_json::Value::Array(list) => list
            .iter()
            .filter_map(|tag| {
                let name = tag.get("name")?.as_str()?;
                Some((name.to_owned(), text(tag.get("value")?)?))
            })
            .collect(),
        _ => BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_in_both_shapes_and_lenient_recipients() {
        let map: Data =
            serde_json::from_str(r#"{"tags":{"id":"a"},"to":"x@example.com"}"#).unwrap_or_default();
        let list: Data = serde_json::from_str(
            r#"{"tags":[{"name":"id","value":"a"}],"to":[1,"y@example.com"]}"#,
        )
        .unwrap_or_default();
        assert_eq!(map.tags.get("id").map(String::as_str), Some("a"));
        assert_eq!(list.tags.get("id").map(String::as_str), Some("a"));
        assert_eq!(map.to, ["x@example.com"]);
        assert_eq!(list.to, ["y@example.com"]);
    }
}
