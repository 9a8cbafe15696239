//! The parsers of signature material: the shared helpers in `tidings_core::signature` and
//! `tidings_core::time`, and every provider's reading of its own signature headers.
//!
//! The first byte picks what the rest of the input (`<text>`) is, modulo 5:
//!
//! | kind | `<text>` | runs |
//! |---|---|---|
//! | 0 | a JWT | `verify_jwt_hs256`, with several leeways |
//! | 1 | `<header>.<payload>` | the same, signed here first, so the claims are read too |
//! | 2 | an encoded signature | base64, base64url and hex decoding and comparison |
//! | 3 | a timestamp | Unix-seconds parsing, `time::parse`, the timestamp window |
//! | 4 | `<provider>/<fixture>\n<value>\n...` | the provider's `verify` on that signed fixture, its headers (sorted by name) set to the values given, then its URL |
//!
//! Kind 4 keeps the fixture's body and keys, so mutations land in the header values only:
//! Svix `v1,<sig>` lists, Plivo's comma lists, Twilio's and Sinch's base64, SendGrid's DER,
//! Telnyx's Ed25519, Vonage's and MessageBird's JWTs, timestamps and nonces. Signatures in the
//! body (Mailgun, Unisender Go, Vonage `sig`) are fuzzed by the provider targets.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::Duration;
use tidings_core::signature::{
    base64_decode, base64_encode, base64_matches, base64url_decode, check_window, hex_matches,
    hmac_sha256, verify_jwt_hs256,
};
use tidings_core::{Freshness, RawRequest, registry, time};
use tidings_fixtures::Fixture;
use tidings_providers as _;

/// The HS256 key of kinds 0 and 1.
pub const JWT_KEY: &[u8] = b"fuzz-key";

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match kind % 5 {
        0 => jwt(text),
        1 => {
            let signature = hmac_sha256(JWT_KEY, &[text.as_bytes()]);
            let signature = base64_encode(&signature)
                .replace('+', "-")
                .replace('/', "_")
                .replace('=', "");
            jwt(&format!("{text}.{signature}"));
        }
        2 => encodings(text),
        3 => timestamps(text),
        _ => fixture_headers(text),
    }
}

fn jwt(token: &str) {
    for leeway in [Duration::zero(), Duration::seconds(300), Duration::MAX] {
        let _ = verify_jwt_hs256(token, JWT_KEY, crate::received_at(), leeway);
    }
}

fn encodings(text: &str) {
    let _ = base64_decode(text);
    let _ = base64url_decode(text);
    let expected = [0x5a_u8; 32];
    let _ = hex_matches(&expected, text);
    let _ = base64_matches(&expected, text);
}

fn timestamps(text: &str) {
    let now = crate::received_at();
    let mut dates = vec![time::parse(text)];
    if let Ok(value) = text.trim().parse::<i64>() {
        dates.extend([
            time::from_unix_seconds(value),
            time::from_unix_millis(value),
            time::from_unix_auto(value),
        ]);
    }
    if let Ok(value) = text.trim().parse::<f64>() {
        dates.push(time::from_unix_float(value));
    }
    for date in dates.into_iter().flatten() {
        for tolerance in [Duration::zero(), Duration::minutes(5), Duration::MAX] {
            let _ = check_window(date, now, tolerance);
        }
        let _ = tidings_core::wire_date::format(&date);
    }
}

/// Every fixture a verifier can check, by `<provider>/<name>`.
fn signed_fixtures() -> &'static BTreeMap<String, Fixture> {
    static FIXTURES: OnceLock<BTreeMap<String, Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        tidings_fixtures::all()
            .into_iter()
            .filter(|f| f.meta.signing_key.is_some() || !f.meta.fetched.is_empty())
            .map(|f| (format!("{}/{}", f.provider, f.name), f))
            .collect()
    })
}

fn fixture_headers(text: &str) {
    let mut lines = text.split('\n');
    let Some(fixture) = lines.next().and_then(|name| signed_fixtures().get(name)) else {
        return;
    };
    let Some(parser) = registry().get(&fixture.provider) else {
        return;
    };
    let mut values = lines;
    let header_lines: Vec<String> = fixture
        .meta
        .headers
        .keys()
        .zip(values.by_ref())
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    let headers = crate::headers(header_lines.iter().map(String::as_str));
    let url = values.next().or(fixture.url());
    let raw = RawRequest {
        method: "POST",
        url,
        headers: &headers,
        ..fixture.request()
    };
    let _ = parser.remote_keys(&raw);
    for freshness in [Freshness::Unchecked, Freshness::ProviderDefault] {
        let credentials = tidings_core::Credentials {
            freshness,
            ..fixture.credentials()
        };
        let _ = parser.verify(&raw, &credentials);
    }
}
