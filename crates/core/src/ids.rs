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
    dedup_from_field_bytes(provider, fields)
}

/// [`dedup_from_fields`] for fields at hand as bytes (text the caller formatted on the stack):
/// the same key for the same bytes.
pub fn dedup_from_field_bytes<F: AsRef<[u8]>>(provider: &str, fields: &[F]) -> String {
    let digest = fields_digest(fields);
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

/// The first 16 bytes of the SHA-256 of the length-prefixed fields.
fn fields_digest<F: AsRef<[u8]>>(fields: &[F]) -> [u8; 16] {
    // Hot, and the hashed text is usually short: it is laid out and padded on the stack and its
    // blocks compressed directly, without a hasher's buffering. A buffer just big enough for
    // the usual sizes, so there is little to zero.
    let len: usize = fields.iter().map(|field| 8 + field.as_ref().len()).sum();
    if len + 9 <= 2 * 64 {
        fields_digest_in::<{ 2 * 64 }, F>(fields)
    } else if len + 9 <= 8 * 64 {
        fields_digest_in::<{ 8 * 64 }, F>(fields)
    } else {
        fields_digest_streaming(fields)
    }
}

/// [`fields_digest`] in an `N`-byte buffer, which must hold the text and its padding (9 bytes
/// at least).
#[inline(always)]
fn fields_digest_in<const N: usize, F: AsRef<[u8]>>(fields: &[F]) -> [u8; 16] {
    let mut blocks = [0u8; N];
    let mut len = 0;
    for field in fields {
        let field = field.as_ref();
        let end = len + 8 + field.len();
        let Some(slot) = blocks.get_mut(len..end) else {
            return fields_digest_streaming(fields);
        };
        let (prefix, bytes) = slot.split_at_mut(8);
        prefix.copy_from_slice(&(field.len() as u64).to_be_bytes());
        bytes.copy_from_slice(field);
        len = end;
    }
    // SHA-256 padding: a 1 bit, zeros, and the length in bits in the last 8 bytes of a block.
    let padded = (len + 9).div_ceil(64) * 64;
    if let Some(marker) = blocks.get_mut(len) {
        *marker = 0x80;
    }
    let Some(bits) = blocks.get_mut(padded - 8..padded) else {
        return fields_digest_streaming(fields);
    };
    bits.copy_from_slice(&(len as u64 * 8).to_be_bytes());
    let mut state = SHA256_INITIAL_STATE;
    for block in blocks.chunks_exact(64).take(padded / 64) {
        if let Ok(block) = <&[u8; 64]>::try_from(block) {
            sha2::compress256(&mut state, std::slice::from_ref(block.into()));
        }
    }
    let mut digest = [0u8; 16];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const SHA256_INITIAL_STATE: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// [`fields_digest`] of fields too long for its stack buffer: the same bytes, fed to a hasher
/// piece by piece.
fn fields_digest_streaming<F: AsRef<[u8]>>(fields: &[F]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    for field in fields {
        let field = field.as_ref();
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field);
    }
    let mut digest = [0u8; 16];
    digest.copy_from_slice(hasher.finalize().get(..16).unwrap_or(&[0; 16]));
    digest
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
        // Every padding case (lengths around the block boundaries) and fields too long for the
        // stack buffer hash the same bytes as the plain hasher.
        let long = "x".repeat(700);
        for n in 0..700 {
            let fields = ["ab", &long[..n]];
            let mut text = Vec::new();
            for field in fields {
                text.extend_from_slice(&(field.len() as u64).to_be_bytes());
                text.extend_from_slice(field.as_bytes());
            }
            assert_eq!(
                dedup_from_fields("p", &fields),
                format!("p:h:{}", &hex::encode(Sha256::digest(&text))[..32]),
                "{n}"
            );
            assert_eq!(
                dedup_from_field_bytes("p", &fields.map(str::as_bytes)),
                dedup_from_fields("p", &fields)
            );
        }
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
