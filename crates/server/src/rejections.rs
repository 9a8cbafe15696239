//! Refused webhook requests: recorded, not only logged, so a person can see why a provider's
//! call did not arrive (`GET /v1/environments/{env}/rejections`, `tidings rejections`, the
//! dashboard).
//!
//! Recording cannot be used as a weapon: it is off the commit path (a task writes batches every
//! [`FLUSH_EVERY`]), a request is recorded in full at most [`FULL_PER_MINUTE`] times a minute
//! per integration (the rest are only counted), bodies are cut at [`BODY_LIMIT`], and counts are
//! kept per integration, reason and clock hour apart from the rows, so a flood of one kind
//! cannot erase the others. What does not fit in [`PENDING_LIMIT`] is counted as dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, header};
use tidings_store::{Rejection, RejectionBatch, RejectionCount, RejectionRow, Store};

/// How often recorded rejections are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Requests recorded in full per integration and minute; more are counted only.
pub const FULL_PER_MINUTE: u32 = 60;
/// Body bytes kept of a refused request.
pub const BODY_LIMIT: usize = 16 * 1024;
/// Rows kept per integration.
pub const KEEP: usize = 1000;
/// Rows waiting to be written at most.
const PENDING_LIMIT: usize = 1024;

/// Why a request was refused: the closed list the API, the CLI and the docs use.
pub const REASONS: &[(&str, &str)] = &[
    (
        "missing_credentials",
        "No credentials: neither `Authorization` nor the provider's signature header was sent.",
    ),
    (
        "bad_credentials",
        "The `Authorization` header was sent but its key or Basic user and password are not this integration's.",
    ),
    (
        "malformed_signature",
        "The signature header is not in the provider's format.",
    ),
    ("bad_signature", "The signature does not match the request."),
    (
        "replayed_signature",
        "A signature's one-time token came again with another body: a captured request replayed.",
    ),
    (
        "stale_timestamp",
        "The signed timestamp is outside the allowed window.",
    ),
    (
        "untrusted_sender",
        "The request is signed, but not by a sender this integration trusts (certificate, topic).",
    ),
    (
        "not_configured",
        "The integration lacks what verifying this request needs (signing key, public_url).",
    ),
    (
        "unsupported_media_type",
        "The body's media type is not one this provider sends.",
    ),
    (
        "unparsable_body",
        "The body is not what this provider sends.",
    ),
    (
        "too_large",
        "The body is larger than `limits.max_body_bytes`.",
    ),
    (
        "invalid_request",
        "The request is malformed (for example its `Idempotency-Key`).",
    ),
    (
        "idempotency_conflict",
        "The `Idempotency-Key` was used before with another body.",
    ),
];

/// What is recorded of a refused request.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The request headers.
    pub headers: HeaderMap,
    /// The body, when it was read before the refusal.
    pub body: Option<Bytes>,
}

#[derive(Default)]
struct Pending {
    rows: Vec<Rejection>,
    counts: BTreeMap<(String, String, &'static str, DateTime<Utc>), i64>,
    /// Full records per integration in the current minute.
    recent: BTreeMap<(String, String), (DateTime<Utc>, u32)>,
    dropped: u64,
    flushing: bool,
}

/// Collects refusals and writes them in the background.
#[derive(Clone, Default)]
pub struct Recorder {
    pending: Arc<Mutex<Pending>>,
}

/// Where a refusal happened.
pub struct Called<'a> {
    /// The environment of the URL.
    pub environment: &'a str,
    /// The integration of the URL.
    pub integration: &'a str,
    /// The integration's provider.
    pub provider: &'a str,
    /// `POST`, ...
    pub method: &'a str,
    /// The path and query.
    pub path: &'a str,
}

impl Recorder {
    /// Records one refusal; the write happens later, off the request's path.
    pub fn record(
        &self,
        store: &Store,
        called: &Called<'_>,
        reason: &'static str,
        refused: &Refused,
        status: u16,
        message: &str,
    ) {
        let at = Utc::now();
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let key = (
            called.environment.to_owned(),
            called.integration.to_owned(),
            reason,
            tidings_store::hour_of(at),
        );
        *pending.counts.entry(key).or_default() += 1;
        let minute = at - chrono::Duration::seconds(60);
        let recent = pending
            .recent
            .entry((called.environment.to_owned(), called.integration.to_owned()))
            .or_insert((at, 0));
        if recent.0 <= minute {
            *recent = (at, 0);
        }
        let full = recent.1 < FULL_PER_MINUTE;
        if full {
            recent.1 += 1;
        }
        if full && pending.rows.len() < PENDING_LIMIT {
            let body = refused.body.as_ref();
            pending.rows.push(Rejection {
                environment_id: called.environment.to_owned(),
                integration_id: called.integration.to_owned(),
                provider: called.provider.to_owned(),
                at,
                reason: reason.to_owned(),
                status,
                message: message.to_owned(),
                method: called.method.to_owned(),
                path: called.path.to_owned(),
                headers_json: redacted_headers(
                    &refused.headers,
                    tidings_core::registry()
                        .get(called.provider)
                        .map_or(&[], |p| p.credential_headers()),
                ),
                body: body
                    .map(|b| b.iter().take(BODY_LIMIT).copied().collect())
                    .unwrap_or_default(),
                body_bytes: body.map(|b| b.len() as u64),
            });
        } else if full {
            pending.dropped += 1;
        }
        if !pending.flushing {
            pending.flushing = true;
            let recorder = self.clone();
            let store = store.clone();
            tokio::spawn(async move { recorder.flush(store).await });
        }
    }

    /// Writes what is pending every [`FLUSH_EVERY`] until nothing is.
    async fn flush(self, store: Store) {
        loop {
            tokio::time::sleep(FLUSH_EVERY).await;
            let (batch, dropped) = {
                let Ok(mut pending) = self.pending.lock() else {
                    return;
                };
                if pending.rows.is_empty() && pending.counts.is_empty() {
                    pending.flushing = false;
                    return;
                }
                let rows = std::mem::take(&mut pending.rows);
                let counts = std::mem::take(&mut pending.counts)
                    .into_iter()
                    .map(
                        |((environment_id, integration_id, reason, hour), count)| RejectionCount {
                            environment_id,
                            integration_id,
                            reason: reason.to_owned(),
                            hour,
                            count,
                        },
                    )
                    .collect();
                let horizon = Utc::now() - chrono::Duration::seconds(120);
                pending.recent.retain(|_, (since, _)| *since > horizon);
                (
                    RejectionBatch {
                        rows,
                        counts,
                        keep: KEEP,
                    },
                    std::mem::take(&mut pending.dropped),
                )
            };
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "Rejections came faster than they could be recorded; these were only counted."
                );
            }
            if let Err(err) = store.record_rejections(batch).await {
                tracing::warn!(error = %err, "Recording rejections failed.");
            }
        }
    }
}

/// Headers as a JSON object for the record: credentials replaced by `[redacted]` (the
/// `Authorization` scheme is kept, so a wrong scheme shows). `credentials` are the headers the
/// provider declares as carrying a secret (`ProviderParser::credential_headers`); names that
/// say they hold one are redacted too, whatever the provider.
pub fn redacted_headers(headers: &HeaderMap, credentials: &[&str]) -> String {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        let shown = if name == header::AUTHORIZATION || name == header::PROXY_AUTHORIZATION {
            match value.split_once(' ') {
                Some((scheme, _)) => format!("{scheme} [redacted]"),
                None => "[redacted]".to_owned(),
            }
        } else if is_secret(name.as_str())
            || credentials
                .iter()
                .any(|credential| name.as_str().eq_ignore_ascii_case(credential))
        {
            "[redacted]".to_owned()
        } else {
            value.into_owned()
        };
        map.insert(name.as_str().to_owned(), shown.into());
    }
    serde_json::Value::Object(map).to_string()
}

/// Header names that carry a shared secret rather than a proof derived from one.
fn is_secret(name: &str) -> bool {
    name == "cookie"
        || ["token", "secret", "password", "api-key", "apikey"]
            .iter()
            .any(|part| name.contains(part))
}

/// The hint shown with a rejection: what usually causes it and what to check.
pub fn hint(reason: &str, message: &str, signs_url: bool, public_url: Option<&str>) -> String {
    let base = match reason {
        "missing_credentials" => {
            "Configure the provider to sign its webhooks (and set this integration's signing key), or send `Authorization: ApiKey <secret key>` of the environment.".to_owned()
        }
        "bad_credentials" => {
            "The key or password sent is not one this environment or integration accepts: check for a rotated key, or a key of another environment.".to_owned()
        }
        "malformed_signature" => {
            "The signature header is damaged or not the provider's: check that no proxy rewrites headers.".to_owned()
        }
        "bad_signature" if signs_url => format!(
            "This provider signs the URL it calls. Tidings verified against the URL it rebuilt from `public_url`{} and the path and query: the provider's configured URL must match it exactly (scheme, host, port, path, query, trailing slash). Else the signing key is wrong.",
            public_url.map(|u| format!(" ({u})")).unwrap_or_default()
        ),
        "bad_signature" => {
            "The signing key may be wrong (a key of another account or environment, or rotated), or the body was changed in transit (a proxy that re-encodes JSON or form bodies breaks the signature).".to_owned()
        }
        "replayed_signature" => {
            "Someone sent a signed request again with a different body. Providers retry with the same body; check where the request came from.".to_owned()
        }
        "stale_timestamp" => {
            "The signed time is too far from this server's clock: check both clocks (NTP), or a proxy or queue that delays requests; a replayed old request also looks like this.".to_owned()
        }
        "untrusted_sender" => {
            "The request is signed by a sender outside this integration's trust list (for SNS: add the topic ARN to `options.topic_arns` if it is yours).".to_owned()
        }
        "not_configured" => {
            "Set what the message names in this integration's configuration and run `tidings check-config`.".to_owned()
        }
        "unsupported_media_type" => {
            "Check the `Content-Type` the provider (or a proxy) sends, and that the URL names the right integration.".to_owned()
        }
        "unparsable_body" => {
            "The body is not this provider's format: check that the URL's integration matches the provider sending to it.".to_owned()
        }
        "too_large" => {
            "Raise `limits.max_body_bytes`, or make the provider send smaller batches.".to_owned()
        }
        "idempotency_conflict" => {
            "Retry with the same body, or use a new `Idempotency-Key` for a new request.".to_owned()
        }
        "invalid_request" => {
            "Fix the request as the message says; providers do not send this, so check what is calling.".to_owned()
        }
        _ => "See the message.".to_owned(),
    };
    format!("{}. {base}", message.trim_end_matches('.'))
}

/// A recorded rejection as the API shows it. With the integration's configuration (the server
/// has it; the command line does not), a URL-signed request that failed is also checked against
/// the URLs a provider is commonly set up with, and the hint names the one that matches.
pub fn view(
    row: &RejectionRow,
    public_url: Option<&str>,
    integration: Option<&crate::config::Integration>,
) -> serde_json::Value {
    let r = &row.rejection;
    let parser = tidings_core::registry().get(&r.provider);
    let signs_url = parser.is_some_and(|p| p.signs_url());
    let matching_url = match (parser, integration, public_url) {
        (Some(parser), Some(integration), Some(base))
            if signs_url && r.reason == "bad_signature" =>
        {
            url_that_verifies(row, parser, integration, base)
        }
        _ => None,
    };
    let provider_hint = match (parser, integration) {
        (Some(parser), Some(integration))
            if matching_url.is_none() && r.reason == "bad_signature" =>
        {
            provider_hint(row, parser, integration)
        }
        _ => None,
    };
    let headers: serde_json::Value =
        serde_json::from_str(&r.headers_json).unwrap_or_else(|_| serde_json::json!({}));
    let mut request = serde_json::json!({
        "method": r.method,
        "path": r.path,
        "headers": headers,
    });
    if let (Some(bytes), Some(map)) = (r.body_bytes, request.as_object_mut()) {
        match std::str::from_utf8(&r.body) {
            Ok(text) => {
                map.insert("body".into(), text.into());
            }
            Err(_) => {
                map.insert("bodyBase64".into(), base64_encode(&r.body).into());
            }
        }
        map.insert("bodyBytes".into(), bytes.into());
        map.insert("bodyTruncated".into(), (bytes > r.body.len() as u64).into());
    }
    serde_json::json!({
        "position": row.seq.to_string(),
        "at": r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "integration": r.integration_id,
        "provider": r.provider,
        "reason": r.reason,
        "status": r.status,
        "message": r.message,
        "hint": match matching_url {
            Some(url) => format!(
                "{}. The signature matches {url}, not the URL Tidings rebuilt from `public_url` ({}): set `public_url` to match what the provider calls, or change the URL configured at the provider.",
                r.message.trim_end_matches('.'),
                public_url.unwrap_or_default()
            ),
            None => match provider_hint {
                Some(hint) => format!("{}. {hint}", r.message.trim_end_matches('.')),
                None => hint(&r.reason, &r.message, signs_url, public_url),
            },
        },
        "request": request,
    })
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The first variant of the called URL (scheme, default port, trailing slash, query) with which
/// the recorded request verifies under the integration's keys, when it is not the one used.
fn url_that_verifies(
    row: &RejectionRow,
    parser: &dyn tidings_core::ProviderParser,
    integration: &crate::config::Integration,
    base: &str,
) -> Option<String> {
    let r = &row.rejection;
    let (headers, content_type) = recorded_request(row)?;
    let content_type = content_type.as_deref();
    let used = format!("{}{}", base.trim_end_matches('/'), r.path);
    let (path, query) = match r.path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (r.path.as_str(), None),
    };
    let host = base
        .trim_end_matches('/')
        .split_once("://")
        .map_or(base, |(_, rest)| rest);
    let mut candidates = Vec::new();
    for scheme in ["https", "http"] {
        for port in ["", ":443", ":80"] {
            for slash in ["", "/"] {
                let path = format!("{}{slash}", path.trim_end_matches('/'));
                let plain = format!("{scheme}://{host}{port}{path}");
                if let Some(query) = query {
                    candidates.push(format!("{plain}?{query}"));
                }
                candidates.push(plain);
            }
        }
    }
    with_credentials(integration, |credentials| {
        candidates
            .into_iter()
            .filter(|url| *url != used)
            .find(|url| {
                let raw = tidings_core::RawRequest {
                    method: &r.method,
                    body: &r.body,
                    content_type,
                    headers: &headers,
                    url: Some(url),
                    received_at: r.at,
                };
                parser.verify(&raw, credentials).is_ok()
            })
    })
}

/// The recorded request's headers (credentials were redacted before recording) and content
/// type, when its whole body was kept: what a second look at the signature needs.
fn recorded_request(row: &RejectionRow) -> Option<(HeaderMap, Option<String>)> {
    let r = &row.rejection;
    if r.body_bytes.is_none_or(|bytes| bytes > r.body.len() as u64) {
        return None;
    }
    let headers = stored_headers(&r.headers_json)?;
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Some((headers, content_type))
}

/// Headers stored as a JSON object of names and values (raw requests and rejections keep them
/// so), back as a `HeaderMap`; names or values that are not valid headers are left out.
pub fn stored_headers(json: &str) -> Option<HeaderMap> {
    let stored: BTreeMap<String, String> = serde_json::from_str(json).ok()?;
    let mut headers = HeaderMap::new();
    for (name, value) in &stored {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    Some(headers)
}

/// The provider's own explanation of a bad signature ([`ProviderParser::refusal_hint`]),
/// computed from the recorded request with the integration's keys.
///
/// [`ProviderParser::refusal_hint`]: tidings_core::ProviderParser::refusal_hint
fn provider_hint(
    row: &RejectionRow,
    parser: &dyn tidings_core::ProviderParser,
    integration: &crate::config::Integration,
) -> Option<String> {
    let r = &row.rejection;
    let (headers, content_type) = recorded_request(row)?;
    let raw = tidings_core::RawRequest {
        method: &r.method,
        body: &r.body,
        content_type: content_type.as_deref(),
        headers: &headers,
        url: None,
        received_at: r.at,
    };
    with_credentials(integration, |credentials| {
        parser.refusal_hint(&raw, credentials)
    })
}

/// The integration's keys and options as a verifier sees them, with no timestamp window (a
/// recorded request is looked at later than it arrived).
fn with_credentials<T>(
    integration: &crate::config::Integration,
    look: impl FnOnce(&tidings_core::Credentials<'_>) -> T,
) -> T {
    let keys: Vec<_> = integration.keys().cloned().collect();
    let fetched = BTreeMap::new();
    look(&tidings_core::Credentials {
        signing_keys: &keys,
        options: &integration.options,
        fetched: &fetched,
        freshness: tidings_core::Freshness::Unchecked,
    })
}
