//! Seed corpora for the fuzz targets (`fuzz/`), one directory per target, written from the
//! fixtures in the input shape each target reads (documented in `fuzz/src/lib.rs`):
//!
//! - `provider_<id>/`: each of the provider's fixtures as
//!   `<content type>\n<url>\n<Header: value\n>*\n<body>` (`-` for no content type or no URL, so
//!   that the first empty line always ends the head);
//! - `signature_headers/`: the signed fixtures' header values, JWTs and timestamps, behind the
//!   byte that tells the target what they are;
//! - `sns_cert_url/`: the certificate and subscription URLs of the SNS fixtures, and look-alikes;
//! - `form/`: the urlencoded and multipart fixtures as `<content type>\n<body>`;
//! - `router/`: every fixture as an HTTP request to the demo configuration, with its API key,
//!   and the signed ones to their `-signed` integration with their signature instead, plus the
//!   other routes.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use tidings_core::registry;
use tidings_fixtures::Fixture;

/// The demo environment's webhook path prefix (the router target's configuration).
const WEBHOOKS: &str = "/v2/inbound-webhooks/delivery-providers/dev";

/// Kinds of `signature_headers` inputs (its first byte).
const JWT: u8 = 0;
const JWT_UNSIGNED: u8 = 1;
const ENCODED: u8 = 2;
const TIMESTAMP: u8 = 3;
const FIXTURE_HEADERS: u8 = 4;

/// URLs the SNS trust rule must get right, beside the fixtures' own.
const SNS_URLS: &[&str] = &[
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
    "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
    "https://sns.us-east-1.amazonaws.com.attacker.example/cert.pem",
    "https://sns.us-east-1.amazonaws.com@attacker.example/cert.pem",
    "https://attacker.example\\@sns.us-east-1.amazonaws.com/cert.pem",
    "https://attacker.example#@sns.us-east-1.amazonaws.com/cert.pem",
    "https://sns.us-east-1.amazonaws.com%2eattacker.example/cert.pem",
    "https://sns.us-east-1.amazonaws.com:443/cert.pem",
    "https://sns.us-east-1.amazonaws.com/a/../cert.pem",
    "https://[::1]/cert.pem",
    "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:T&Token=2336412f37",
];

/// Timestamps for the `signature_headers` target, beside the fixtures' own.
const TIMESTAMPS: &[&str] = &[
    "0",
    "1767225600",
    "1767225600123",
    "1534108637.153125",
    "-62135596800",
    "9223372036854775807",
    "-9223372036854775808",
    "1e300",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.1234567+0100",
    "2026-01-01 00:00:00",
    "Thu, 01 Jan 2026 00:00:00 +0000",
];

/// Writes every target's seeds into `out/<target>/`.
pub fn write(out: &Path) -> Result<()> {
    let fixtures = tidings_fixtures::all();
    let mut seeds = Seeds::default();
    for fixture in &fixtures {
        provider_seed(&mut seeds, fixture)?;
        signature_seeds(&mut seeds, fixture);
        sns_seeds(&mut seeds, fixture);
        form_seed(&mut seeds, fixture);
        router_seeds(&mut seeds, fixture)?;
    }
    for url in SNS_URLS {
        seeds.add("sns_cert_url", "look-alike", url.as_bytes().to_vec());
    }
    for timestamp in TIMESTAMPS {
        seeds.add(
            "signature_headers",
            "timestamp",
            tagged(TIMESTAMP, timestamp),
        );
    }
    seeds.add(
        "form",
        "multipart",
        b"multipart/form-data; boundary=XyZ\n--XyZ\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\nbounced\r\n--XyZ--\r\n"
            .to_vec(),
    );
    seeds.add(
        "form",
        "urlencoded",
        b"application/x-www-form-urlencoded\na=1&b=%zz&a=+2".to_vec(),
    );
    for request in [
        "GET /healthz\n\n",
        "GET /readyz\n\n",
        "GET /metrics\n\n",
        "DELETE /metrics\n\n",
        "GET /v2/inbound-webhooks/delivery-providers/dev/sendgrid\n\n",
        "POST /v2/inbound-webhooks/delivery-providers/nope/sendgrid\nauthorization: ApiKey fuzz-secret-key\n\n{}",
        "POST /v2/inbound-webhooks/delivery-providers/dev/basic\nauthorization: Basic ZnV6ejpmdXp6LXBhc3N3b3Jk\ncontent-type: application/json\n\n[]",
        "POST /v2/inbound-webhooks/delivery-providers/dev/open\ncontent-type: application/json\nidempotency-key: k1\n\n{}",
        "POST /v2/inbound-webhooks/delivery-providers/dev/sendgrid\nauthorization: ApiKey fuzz-secret-key\ncontent-type: application/xml\n\n<a/>",
        "POST /v2/inbound-webhooks/delivery-providers/dev/sendgrid\nauthorization: ApiKey fuzz-secret-key\ncontent-type: application/json\ncontent-length: 99999999\n\n[]",
        "POST /nope\n\n",
        "GET /v1/environments/dev/events?limit=5&status=delivered&since=2024-01-01T00:00:00Z\nauthorization: ApiKey fuzz-secret-key\n\n",
        "GET /v1/environments/dev/events?after=1.2&include=row\nauthorization: ApiKey fuzz-secret-key\n\n",
        "GET /v1/environments/dev/messages?recipient=a%40example.com\nauthorization: ApiKey fuzz-secret-key\n\n",
        "GET /v1/environments/dev/integrations/sendgrid/messages/abc\nauthorization: ApiKey fuzz-secret-key\n\n",
        "GET /v1/environments/dev/suppressions/Jane%20%3CJane%40Example.com%3E\nauthorization: ApiKey fuzz-secret-key\n\n",
        "GET /v1/environments/dev/suppressions?reason=complaint&channel=email&after=6162&limit=2\nauthorization: ApiKey fuzz-secret-key\n\n",
        "PUT /v1/environments/dev/suppressions/%2B44%207700%20900000\nauthorization: ApiKey fuzz-secret-key\ncontent-type: application/json\n\n{\"reason\":\"unsubscribed\",\"note\":\"n\"}",
        "DELETE /v1/environments/dev/suppressions/a%40example.com\nauthorization: ApiKey fuzz-secret-key\n\n",
        "GET /v1/environments/dev/suppressions/tok/history\nauthorization: ApiKey fuzz-secret-key\n\n",
        "GET /openapi.json\n\n",
    ] {
        seeds.add("router", "route", request.as_bytes().to_vec());
    }
    // Providers without fixtures still get a directory: libFuzzer wants it to exist.
    for id in registry().ids() {
        seeds.dirs.entry(format!("provider_{id}")).or_default();
    }

    let mut total = 0;
    for (target, files) in &seeds.dirs {
        let dir = out.join(target);
        // Seeds are regenerated whole: files of fixtures since removed must go.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (index, (label, seed)) in files.iter().enumerate() {
            std::fs::write(dir.join(format!("{index:04}-{label}")), seed)?;
        }
        total += files.len();
    }
    println!(
        "{total} seeds for {} targets in {}",
        seeds.dirs.len(),
        out.display()
    );
    Ok(())
}

/// Seeds by target, without duplicates.
#[derive(Default)]
struct Seeds {
    /// Target → (label, seed).
    dirs: std::collections::BTreeMap<String, Vec<(String, Vec<u8>)>>,
}

impl Seeds {
    /// Adds a seed, named after `label` (a fixture, usually) in its file name.
    fn add(&mut self, target: &str, label: &str, seed: Vec<u8>) {
        let files = self.dirs.entry(target.to_owned()).or_default();
        if !files.iter().any(|(_, s)| *s == seed) {
            let label = label.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "-");
            files.push((label, seed));
        }
    }
}

fn tagged(kind: u8, text: &str) -> Vec<u8> {
    let mut seed = vec![kind];
    seed.extend_from_slice(text.as_bytes());
    seed
}

/// `<content type>\n<url>\n<Header: value\n>*\n<body>`.
fn provider_seed(seeds: &mut Seeds, fixture: &Fixture) -> Result<()> {
    let mut seed = Vec::with_capacity(fixture.body.len() + 256);
    writeln!(seed, "{}", fixture.content_type().unwrap_or("-"))?;
    writeln!(seed, "{}", fixture.url().unwrap_or("-"))?;
    for (name, value) in &fixture.headers {
        if let Ok(value) = value.to_str() {
            writeln!(seed, "{name}: {value}")?;
        }
    }
    seed.push(b'\n');
    seed.extend_from_slice(&fixture.body);
    seeds.add(
        &format!("provider_{}", fixture.provider),
        &fixture.name,
        seed,
    );
    Ok(())
}

fn is_signed(fixture: &Fixture) -> bool {
    fixture.meta.signing_key.is_some() || !fixture.meta.fetched.is_empty()
}

fn signature_seeds(seeds: &mut Seeds, fixture: &Fixture) {
    if !is_signed(fixture) {
        return;
    }
    // The header values in name order, then the URL: what the target sets them from.
    let mut text = format!("{}/{}", fixture.provider, fixture.name);
    for value in fixture.meta.headers.values() {
        text.push('\n');
        text.push_str(value);
    }
    if let Some(url) = fixture.url() {
        text.push('\n');
        text.push_str(url);
    }
    let label = format!("{}-{}", fixture.provider, fixture.name);
    seeds.add("signature_headers", &label, tagged(FIXTURE_HEADERS, &text));
    for value in fixture.meta.headers.values() {
        let value = value.trim();
        seeds.add("signature_headers", &label, tagged(ENCODED, value));
        if value.parse::<i64>().is_ok() {
            seeds.add("signature_headers", &label, tagged(TIMESTAMP, value));
        }
        let token = value.strip_prefix("Bearer ").unwrap_or(value);
        if token.split('.').count() == 3 {
            seeds.add("signature_headers", &label, tagged(JWT, token));
            if let Some((signed, _)) = token.rsplit_once('.') {
                seeds.add("signature_headers", &label, tagged(JWT_UNSIGNED, signed));
            }
        }
    }
}

/// The URL fields of SNS messages, wherever they are in the body.
fn sns_seeds(seeds: &mut Seeds, fixture: &Fixture) {
    fn walk(value: &serde_json::Value, label: &str, seeds: &mut Seeds) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match value.as_str() {
                        Some(url) if key.ends_with("URL") || key.ends_with("Url") => {
                            seeds.add("sns_cert_url", label, url.as_bytes().to_vec());
                        }
                        // SES wraps the SNS message in a JSON string.
                        Some(text) => {
                            if let Ok(inner) = serde_json::from_str(text) {
                                walk(&inner, label, seeds);
                            }
                        }
                        None => walk(value, label, seeds),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, label, seeds)),
            _ => {}
        }
    }
    if let Ok(body) = serde_json::from_slice(&fixture.body) {
        walk(
            &body,
            &format!("{}-{}", fixture.provider, fixture.name),
            seeds,
        );
    }
}

fn form_seed(seeds: &mut Seeds, fixture: &Fixture) {
    let Some(content_type) = fixture.content_type() else {
        return;
    };
    let essence = content_type.to_ascii_lowercase();
    if essence.starts_with("application/x-www-form-urlencoded")
        || essence.starts_with("multipart/form-data")
    {
        let mut seed = format!("{content_type}\n").into_bytes();
        seed.extend_from_slice(&fixture.body);
        seeds.add(
            "form",
            &format!("{}-{}", fixture.provider, fixture.name),
            seed,
        );
    }
}

fn router_seeds(seeds: &mut Seeds, fixture: &Fixture) -> Result<()> {
    let request = |path: &str, api_key: bool| -> Result<Vec<u8>> {
        let mut seed = Vec::with_capacity(fixture.body.len() + 512);
        writeln!(seed, "POST {WEBHOOKS}/{path}")?;
        if api_key {
            writeln!(seed, "authorization: ApiKey fuzz-secret-key")?;
        }
        if let Some(content_type) = fixture.content_type() {
            writeln!(seed, "content-type: {content_type}")?;
        }
        for (name, value) in &fixture.headers {
            if let Ok(value) = value.to_str()
                && name != http::header::CONTENT_TYPE
            {
                writeln!(seed, "{name}: {value}")?;
            }
        }
        seed.push(b'\n');
        seed.extend_from_slice(&fixture.body);
        Ok(seed)
    };
    let label = format!("{}-{}", fixture.provider, fixture.name);
    seeds.add("router", &label, request(&fixture.provider, true)?);
    if is_signed(fixture) {
        seeds.add(
            "router",
            &format!("{label}-signed"),
            request(&format!("{}-signed", fixture.provider), false)?,
        );
    }
    Ok(())
}
