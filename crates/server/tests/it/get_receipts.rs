//! SMS receipts that providers deliver as `GET` requests, the fields in the query string and
//! the signature over the URL or the fields: MessageBird, Vonage and Plivo, over a real socket.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{self, Server, base64_bytes, unix_now};

pub(crate) const INGEST: &str = "/v2/inbound-webhooks/delivery-providers/prod";
pub(crate) const PUBLIC: &str = "https://hooks.example.com";
const MESSAGEBIRD_KEY: &str = "mb_test_signing_key_0123456789abcdef";
const VONAGE_KEY: &str = "vonage_test_signature_secret_0123";
const PLIVO_TOKEN: &str = "MjA0ZDYxYTc0NzFmNjQ3YjM0ZTRkYTFm";

pub(crate) fn integrations() -> String {
    format!(
        r#"
[[integrations]]
id = "mb"
environment = "prod"
provider = "messagebird"
signing_key = "{MESSAGEBIRD_KEY}"

[[integrations]]
id = "vonage"
environment = "prod"
provider = "nexmo"
signing_key = "{VONAGE_KEY}"
# The recorded receipt was signed in 2025.
signature_tolerance_secs = 999999999

[[integrations]]
id = "plivo"
environment = "prod"
provider = "plivo"
signing_key = "{PLIVO_TOKEN}"
"#
    )
}

/// The query string a fixture's `request_url` carries.
pub(crate) fn fixture_query(meta: &str) -> String {
    let meta = support::fixture_meta(meta);
    let url = meta["request_url"].as_str().unwrap();
    url.split_once('?').unwrap().1.to_owned()
}

fn base64url(bytes: &[u8]) -> String {
    base64_bytes(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// MessageBird's `MessageBird-Signature-JWT` for a GET to `url`, valid now.
pub(crate) fn messagebird_jwt(url: &str) -> String {
    let header = base64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": "MessageBird",
        "nbf": now - 1,
        "exp": now + 60,
        "jti": format!("jti-{now}-{url}"),
        "url_hash": hex::encode(Sha256::digest(url.as_bytes())),
    });
    let payload = base64url(claims.to_string().as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(MESSAGEBIRD_KEY.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = base64url(&mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

/// Vonage's `sig` over the sorted fields (HMAC-SHA1 chosen in the dashboard).
fn vonage_query(fields: &[(&str, &str)]) -> String {
    let mut sorted = fields.to_vec();
    sorted.sort();
    let signed: String = sorted
        .iter()
        .map(|(k, v)| format!("&{k}={}", v.replace(['&', '='], "_")))
        .collect();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(VONAGE_KEY.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let mut query = form_query(fields);
    query.push_str("&sig=");
    query.push_str(&sig);
    query
}

fn form_query(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&")
}

fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> support::Response {
    server.request("GET", path, headers, b"")
}

fn statuses(response: &support::Response) -> Vec<String> {
    assert_eq!(response.status, 200, "{}", response.text());
    let results: Vec<Value> = serde_json::from_slice(&response.body).unwrap();
    results
        .iter()
        .map(|r| r["event"]["status"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_signed_messagebird_get_report_is_stored_and_a_tampered_one_refused() {
    let server = Server::start_with(&integrations());
    let query = fixture_query("messagebird/dlr-delivery-failed-get.meta.json");
    let path = format!("{INGEST}/mb?{query}");
    let jwt = messagebird_jwt(&format!("{PUBLIC}{path}"));
    let response = get(&server, &path, &[("MessageBird-Signature-JWT", &jwt)]);
    assert_eq!(statuses(&response), ["undelivered"]);
    let events = server.events_for("YouReference123");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]
            .to_string()
            .contains("e8077d803532c0b5937c639b60216938"),
        "{events:?}"
    );

    // The same token with the status changed in the URL: url_hash no longer matches.
    let tampered = path.replace("status=delivery_failed", "status=delivered");
    let response = get(&server, &tampered, &[("MessageBird-Signature-JWT", &jwt)]);
    assert_eq!(response.status, 401, "{}", response.text());
    // Without a token at all.
    assert_eq!(get(&server, &path, &[]).status, 401);
    assert_eq!(server.events_for("YouReference123").len(), 1);
}

#[test]
fn a_signed_vonage_get_receipt_is_stored_and_each_receipt_is_its_own_request() {
    let server = Server::start_with(&integrations());
    // The recorded receipt, signed as Vonage signs it (the signature covers the fields).
    let query = fixture_query("nexmo/sms-dlr-expired-get-signed-sha1.meta.json");
    let path = format!("{INGEST}/vonage?{query}");
    assert_eq!(statuses(&get(&server, &path, &[])), ["undelivered"]);
    // A retry of the same receipt is one event, counted as a duplicate.
    assert_eq!(statuses(&get(&server, &path, &[])), ["undelivered"]);
    let events = server.events_for("order-42");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["duplicates"], 1);

    // Another receipt has an empty body too: it is a request of its own, not a repeat.
    let now = unix_now().to_string();
    let other = vonage_query(&[
        ("msisdn", "447700900001"),
        ("to", "AcmeInc"),
        ("messageId", "0B00000127FDBC65"),
        ("status", "delivered"),
        ("err-code", "0"),
        ("client-ref", "order-43"),
        ("message-timestamp", "2025-01-02 12:00:05"),
        ("timestamp", &now),
        ("nonce", "5e0f6a4c-0a43-4bb8-9d9e-7c1b9c0b1f11"),
    ]);
    let response = get(&server, &format!("{INGEST}/vonage?{other}"), &[]);
    assert_eq!(statuses(&response), ["delivered"]);
    assert_eq!(server.events_for("order-43").len(), 1);

    // A changed field breaks the signature.
    let forged = other.replace("status=delivered", "status=failed");
    let response = get(&server, &format!("{INGEST}/vonage?{forged}"), &[]);
    assert_eq!(response.status, 401, "{}", response.text());
}

#[test]
fn a_signed_plivo_get_callback_is_stored() {
    let server = Server::start_with(&integrations());
    let query = fixture_query("plivo/status-delivered-get.meta.json");
    let path = format!("{INGEST}/plivo?{query}");
    // V3: the URL without its query, `?`, the sorted `k=v` pairs, `.`, the nonce.
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    pairs.sort();
    let sorted: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let nonce = "27182818284590452353";
    let base = format!("{PUBLIC}{INGEST}/plivo?{}.{nonce}", sorted.join("&"));
    let mut mac = Hmac::<Sha256>::new_from_slice(PLIVO_TOKEN.as_bytes()).unwrap();
    mac.update(base.as_bytes());
    let signature = base64_bytes(&mac.finalize().into_bytes());
    let headers = [
        ("X-Plivo-Signature-V3", signature.as_str()),
        ("X-Plivo-Signature-V3-Nonce", nonce),
    ];
    let response = get(&server, &path, &headers);
    assert_eq!(statuses(&response), ["delivered"]);
    assert_eq!(
        server
            .events_for("db3ce55a-7f1d-11e1-8ea7-1231380bc196")
            .len(),
        1
    );
    let tampered = path.replace("Status=delivered", "Status=failed");
    assert_eq!(get(&server, &tampered, &headers).status, 401);
}

#[test]
fn a_get_to_a_provider_that_only_posts_is_405() {
    let server = Server::start_with(&integrations());
    let response = get(&server, &format!("{INGEST}/sg?event=delivered"), &[]);
    assert_eq!(response.status, 405, "{}", response.text());
    assert!(response.text().contains("POST"), "{}", response.text());
    // Other methods are 405 for every provider.
    let response = server.request("PUT", &format!("{INGEST}/mb"), &[], b"");
    assert_eq!(response.status, 405, "{}", response.text());
}
