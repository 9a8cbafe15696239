//! Signature helpers shared by provider crates: secrets that never print, constant-time
//! comparison, HMAC, and timestamp windows.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// A signing key or password. Its `Debug` output is redacted; read it with [`Secret::expose`].
/// A key with a format (a public key, `whsec_` + base64) is parsed once, when the configuration
/// loads (the provider's `load_key`), and kept ([`Secret::parsed`]; clones carry it), as svix's
/// `Webhook::new` does.
#[derive(Clone)]
pub struct Secret {
    text: Box<str>,
    parsed: std::sync::OnceLock<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.text == other.text
    }
}

impl Eq for Secret {}

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<Box<str>>) -> Secret {
        Secret {
            text: value.into(),
            parsed: std::sync::OnceLock::new(),
        }
    }

    /// The secret text. Never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The key in the form `parse` gives it, parsed on the first call and kept for the
    /// secret's lifetime (the configuration's), so requests never decode it again. A failed
    /// parse is not kept: it fails again on the next call (`check-config` reports it once, with
    /// the provider's `load_key`). One secret is parsed into one type; asking for another
    /// type parses without keeping it.
    pub fn parsed<T: std::any::Any + Send + Sync>(
        &self,
        parse: impl FnOnce(&str) -> Result<T>,
    ) -> Result<std::sync::Arc<T>> {
        if let Some(kept) = self.parsed.get() {
            if let Ok(value) = std::sync::Arc::clone(kept).downcast::<T>() {
                return Ok(value);
            }
            return parse(&self.text).map(std::sync::Arc::new);
        }
        let value = std::sync::Arc::new(parse(&self.text)?);
        let kept: std::sync::Arc<dyn std::any::Any + Send + Sync> = value.clone();
        // Another thread may have parsed it meanwhile: either value is the same key.
        let _ = self.parsed.set(kept);
        Ok(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(Secret::new)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA1 over the concatenation of `parts` (Twilio, Mandrill).
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA512 over the concatenation of `parts`.
pub fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    let mut mac = match Hmac::<sha2::Sha512>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[allow(clippy::panic)] // InvalidLength is never returned for HMAC, whose keys have any length.
fn unreachable_hmac() -> ! {
    panic!("HMAC accepts keys of every length")
}

/// Whether `expected` equals the hex text `given` (either case), in constant time.
pub fn hex_matches(expected: &[u8], given: &str) -> bool {
    match hex::decode(given.trim()) {
        Ok(bytes) => ct_eq(expected, &bytes),
        Err(_) => false,
    }
}

/// Whether `expected` equals the standard base64 text `given`, in constant time.
pub fn base64_matches(expected: &[u8], given: &str) -> bool {
    match base64::engine::general_purpose::STANDARD.decode(given.trim()) {
        Ok(bytes) => ct_eq(expected, &bytes),
        Err(_) => false,
    }
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64, with or without padding, ignoring surrounding whitespace.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
}

/// Decodes URL-safe base64 without padding (JWT segments).
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .ok()
}

/// Checks that a signed timestamp is within `tolerance` of `now`, in either direction (clocks
/// drift both ways).
pub fn check_window(
    signed_at: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: chrono::Duration,
) -> Result<()> {
    let age = now.signed_duration_since(signed_at);
    if age.abs() > tolerance {
        return Err(Error::Stale {
            age_seconds: age.num_seconds(),
            tolerance_seconds: tolerance.num_seconds(),
        });
    }
    Ok(())
}

/// Checks a signed timestamp sent as Unix seconds in `header` against the window, when there is
/// one (`tolerance` from [`Freshness::tolerance`](crate::Freshness::tolerance)): a value that is
/// not whole seconds is [`Error::MalformedSignature`], one outside the window [`Error::Stale`].
/// Without a window the value is not read at all.
pub fn check_signed_seconds(
    timestamp: &str,
    header: &'static str,
    now: DateTime<Utc>,
    tolerance: Option<chrono::Duration>,
) -> Result<()> {
    let Some(tolerance) = tolerance else {
        return Ok(());
    };
    let signed_at = timestamp
        .trim()
        .parse()
        .ok()
        .and_then(crate::time::from_unix_seconds)
        .ok_or(Error::MalformedSignature(header))?;
    check_window(signed_at, now, tolerance)
}

/// Verifies an HS256 JSON Web Token with `key` and returns its claims. Only `HS256` is accepted
/// (never `none`); `exp` and `nbf`, when present, are checked against `now` with `leeway`.
pub fn verify_jwt_hs256(
    token: &str,
    key: &[u8],
    now: DateTime<Utc>,
    leeway: chrono::Duration,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut segments = token.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(Error::MalformedSignature("JWT"));
    };
    let header_json = base64url_decode(header).ok_or(Error::MalformedSignature("JWT"))?;
    let header_value: serde_json::Value =
        serde_json::from_slice(&header_json).map_err(|_| Error::MalformedSignature("JWT"))?;
    if header_value.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(Error::MalformedSignature(
            "JWT alg (only HS256 is accepted)",
        ));
    }
    let given = base64url_decode(signature).ok_or(Error::MalformedSignature("JWT"))?;
    let expected = hmac_sha256(key, &[header.as_bytes(), b".", payload.as_bytes()]);
    if !ct_eq(&expected, &given) {
        return Err(Error::SignatureMismatch);
    }
    let claims_json = base64url_decode(payload).ok_or(Error::MalformedSignature("JWT"))?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&claims_json).map_err(|_| Error::MalformedSignature("JWT"))?;
    let now_secs = now.timestamp();
    let leeway_secs = leeway.num_seconds();
    if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_i64)
        && now_secs > exp.saturating_add(leeway_secs)
    {
        return Err(Error::Stale {
            age_seconds: now_secs.saturating_sub(exp),
            tolerance_seconds: leeway_secs,
        });
    }
    if let Some(nbf) = claims.get("nbf").and_then(serde_json::Value::as_i64)
        && now_secs < nbf.saturating_sub(leeway_secs)
    {
        return Err(Error::Stale {
            age_seconds: now_secs.saturating_sub(nbf),
            tolerance_seconds: leeway_secs,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hex_matches(
            &mac,
            "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"
        ));
        assert!(!hex_matches(&mac, "5bdc"));
        assert!(!hex_matches(&mac, "not hex"));
    }

    #[test]
    fn window_is_symmetric() {
        let now = Utc.timestamp_opt(1_000_000, 0).unwrap();
        let tol = chrono::Duration::seconds(300);
        assert!(check_window(Utc.timestamp_opt(1_000_000 - 300, 0).unwrap(), now, tol).is_ok());
        assert!(check_window(Utc.timestamp_opt(1_000_000 + 300, 0).unwrap(), now, tol).is_ok());
        assert!(matches!(
            check_window(Utc.timestamp_opt(1_000_000 - 301, 0).unwrap(), now, tol),
            Err(Error::Stale {
                age_seconds: 301,
                tolerance_seconds: 300
            })
        ));
        assert!(check_window(Utc.timestamp_opt(1_000_000 + 301, 0).unwrap(), now, tol).is_err());
    }

    #[test]
    fn jwt_hs256_round_trip_and_rejections() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let header = enc(r#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = enc(r#"{"sub":"x","exp":2000,"nbf":1000}"#);
        let sig = hmac_sha256(b"key", &[header.as_bytes(), b".", payload.as_bytes()]);
        let token = format!(
            "{header}.{payload}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
        );
        let at = |s| Utc.timestamp_opt(s, 0).unwrap();
        let leeway = chrono::Duration::seconds(10);
        assert_eq!(
            verify_jwt_hs256(&token, b"key", at(1500), leeway).unwrap()["sub"],
            "x"
        );
        assert_eq!(
            verify_jwt_hs256(&token, b"other", at(1500), leeway),
            Err(Error::SignatureMismatch)
        );
        assert!(matches!(
            verify_jwt_hs256(&token, b"key", at(2011), leeway),
            Err(Error::Stale { .. })
        ));
        assert!(verify_jwt_hs256(&token, b"key", at(989), leeway).is_err());
        let none = format!("{}.{payload}.", enc(r#"{"alg":"none"}"#));
        assert!(verify_jwt_hs256(&none, b"key", at(1500), leeway).is_err());
        assert!(verify_jwt_hs256("a.b", b"key", at(1500), leeway).is_err());
    }

    #[test]
    fn a_secret_is_parsed_once_and_kept() {
        let secret = Secret::new("42");
        let calls = std::cell::Cell::new(0);
        let parse = |text: &str| {
            calls.set(calls.get() + 1);
            text.parse::<u32>()
                .map_err(|_| Error::InvalidKey("a number"))
        };
        assert_eq!(*secret.parsed(parse).unwrap(), 42);
        assert_eq!(*secret.parsed(parse).unwrap(), 42);
        assert_eq!(calls.get(), 1);
        // A clone keeps the parsed form; a failing parse is not kept.
        assert_eq!(*secret.clone().parsed(parse).unwrap(), 42);
        let bad = Secret::new("x");
        assert!(bad.parsed(parse).is_err());
        assert!(bad.parsed(parse).is_err());
        assert_eq!(calls.get(), 3);
        assert_eq!(format!("{bad:?}"), "Secret([redacted])");
    }
}
