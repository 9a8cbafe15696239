//! Message ids and dedup keys.
//!
//! Ids are strings everywhere: some providers send 64-bit numbers that a float would corrupt,
//! so numeric ids are read as integers and printed exactly.

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// An id a provider sends as a string or as an integer, kept as its exact decimal text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Id;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or integer id")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Id, E> {
                Ok(Id(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Id, E> {
                Ok(Id(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Id, E> {
                // Only integral values that a double holds exactly are ids; anything else would
                // be a corrupted one.
                if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
                    Ok(Id(format!("{v:.0}")))
                } else {
                    Err(E::custom("a fractional or imprecise number is not an id"))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Id {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The metadata keys (custom args, tags, user variables) that carry the sender's own message id:
/// `id`, and Novu's `novuMessageId` and `__nvMessageId`.
pub const OWN_ID_KEYS: &[&str] = &["id", "novuMessageId", "__nvMessageId"];

/// The sender's own message id in a free-form text field a provider passes through (Brevo's
/// `X-Mailin-custom`, Mailjet's `Payload`): an [`OWN_ID_KEYS`] key of a JSON object, a JSON string
/// or number, or the plain value when it is one id-like token (not free text or `key=value` data).
pub fn own_id_in_text(text: &str) -> Option<String> {
    let non_empty = |id: &str| Some(id.trim().to_owned()).filter(|id| !id.is_empty());
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => {
            OWN_ID_KEYS.iter().find_map(|key| match map.get(*key)? {
                serde_json::Value::String(id) => non_empty(id),
                serde_json::Value::Number(id) => Some(id.to_string()),
                _ => None,
            })
        }
        Ok(serde_json::Value::String(id)) => Some(id).filter(|id| !id.trim().is_empty()),
        Ok(serde_json::Value::Number(id)) => Some(id.to_string()),
        Ok(_) => None,
        Err(_) => non_empty(text).filter(|id| {
            id.len() <= 255
                && !id.contains(|c: char| c.is_whitespace() || "=&:;,{}[]\"".contains(c))
        }),
    }
}

/// A dedup key from a provider's own stable event id: `<provider>:<id>`.
pub fn dedup_from_id(provider: &str, event_id: &str) -> String {
    format!("{provider}:{event_id}")
}

/// A dedup key from the fields that identify one event when the provider has no stable event id:
/// `<provider>:h:<hash>`. The fields are length-prefixed so that no two different lists collide.
pub fn dedup_from_fields(provider: &str, fields: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    let digest = hasher.finalize();
    // Hot: every event of a batch gets one. Built in place, one allocation.
    let mut key = String::with_capacity(provider.len() + 3 + 32);
    key.push_str(provider);
    key.push_str(":h:");
    let mut hex = [0u8; 32];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
        if let Some(digits) = HEX_PAIRS.get(usize::from(*byte)) {
            pair.copy_from_slice(digits);
        }
    }
    key.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    key
}

/// The two lowercase hex digits of every byte value.
// Evaluated at compile time: an index out of bounds would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [DIGITS[i >> 4], DIGITS[i & 0x0f]];
        i += 1;
    }
    table
};

/// Strips one pair of surrounding angle brackets and whitespace from a Message-ID.
pub fn strip_angle_brackets(id: &str) -> &str {
    let id = id.trim();
    id.strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(id)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_exact() {
        let ids: Vec<Id> =
            serde_json::from_str(r#"["abc", 1152921504606846976, -5, 12.0]"#).unwrap();
        let texts: Vec<_> = ids.iter().map(Id::as_str).collect();
        assert_eq!(texts, ["abc", "1152921504606846976", "-5", "12"]);
        assert!(serde_json::from_str::<Id>("1.5").is_err());
        assert!(serde_json::from_str::<Id>("null").is_err());
    }

    #[test]
    fn field_hashes_do_not_collide_on_concatenation() {
        assert_ne!(
            dedup_from_fields("p", &["ab", "c"]),
            dedup_from_fields("p", &["a", "bc"])
        );
        assert_eq!(
            dedup_from_fields("p", &["a", "b"]),
            dedup_from_fields("p", &["a", "b"])
        );
        // The key format is stored: it must never change.
        assert_eq!(
            dedup_from_fields("p", &["a", "b"]),
            format!(
                "p:h:{}",
                &hex::encode(Sha256::digest(b"\0\0\0\0\0\0\0\x01a\0\0\0\0\0\0\0\x01b"))[..32]
            )
        );
    }

    #[test]
    fn own_ids_in_free_text() {
        assert_eq!(own_id_in_text(r#"{"id": "abc"}"#).as_deref(), Some("abc"));
        assert_eq!(
            own_id_in_text(r#"{"novuMessageId": 42}"#).as_deref(),
            Some("42")
        );
        assert_eq!(own_id_in_text(r#"{"meta": "x", "n": 2}"#), None);
        assert_eq!(own_id_in_text("msg-42").as_deref(), Some("msg-42"));
        assert_eq!(own_id_in_text("free text here"), None);
        assert_eq!(own_id_in_text("a=b"), None);
    }

    #[test]
    fn angle_brackets() {
        assert_eq!(strip_angle_brackets(" <a@b> "), "a@b");
        assert_eq!(strip_angle_brackets("a@b"), "a@b");
        assert_eq!(strip_angle_brackets("<"), "<");
    }
}
