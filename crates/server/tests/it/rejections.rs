//! Refused webhooks are recorded with their reason, a hint and the redacted request, and read
//! back through `GET /v1/environments/{env}/rejections` and the integration health.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Server, sign_mailgun, unix_now};

const KEY: &str = "ApiKey prod-secret-key";
const JSON: &str = "application/json";
const INGEST: &str = "/v2/inbound-webhooks/delivery-providers/prod";

/// A Twilio integration, to see the hint of a URL-signing provider.
const TWILIO: &str = r#"
[[integrations]]
id = "tw"
environment = "prod"
provider = "twilio"
signing_key = "a-twilio-auth-token-for-tests"
"#;

/// The rejections of `query`, waiting for the background writer to record `expected`.
fn rejections(server: &Server, query: &str, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = server.request(
            "GET",
            &format!("/v1/environments/prod/rejections?{query}"),
            &[("Authorization", KEY)],
            b"",
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        let data = body["data"].as_array().unwrap().clone();
        if data.len() >= expected || Instant::now() > deadline {
            return data;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The newest rejection, after sending a request that must be refused with `status` for
/// `reason`; `seen` counts the rejections recorded so far.
fn refused(
    server: &Server,
    seen: &mut usize,
    reason: &str,
    status: u16,
    response: support::Response,
) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    *seen += 1;
    let found = rejections(server, "limit=1000", *seen);
    assert_eq!(found.len(), *seen, "{reason}: {found:?}");
    let rejection = found.into_iter().next().unwrap();
    assert_eq!(rejection["reason"], reason);
    assert_eq!(rejection["status"], status);
    rejection
}

fn sendgrid_signed() -> (Vec<u8>, String, String) {
    let meta = support::fixture_meta("sendgrid/signed-dropped-official-vector.meta.json");
    let body = std::fs::read(support::fixture(
        "sendgrid/signed-dropped-official-vector.txt",
    ))
    .unwrap();
    let header = |name: &str| meta["headers"][name].as_str().unwrap().to_owned();
    (
        body,
        header("X-Twilio-Email-Event-Webhook-Signature"),
        header("X-Twilio-Email-Event-Webhook-Timestamp"),
    )
}

#[test]
fn every_reason_is_recorded_with_a_hint_and_the_redacted_request() {
    let server = Server::start_with(TWILIO);
    let mut seen = 0;

    // No credentials at all.
    let body = br#"[{"email":"a@example.com","event":"delivered","sg_message_id":"m1","timestamp":1700000000}]"#;
    let response = server.post(&format!("{INGEST}/sg"), &[("Content-Type", JSON)], body);
    let missing = refused(&server, &mut seen, "missing_credentials", 401, response);
    assert_eq!(missing["integration"], "sg");
    assert_eq!(missing["provider"], "sendgrid");
    assert_eq!(missing["request"]["method"], "POST");
    assert_eq!(missing["request"]["path"], format!("{INGEST}/sg"));
    // Refused from its headers alone, before the body was read: recorded without a body.
    assert!(missing["request"].get("body").is_none(), "{missing}");
    assert!(missing["request"].get("bodyBytes").is_none(), "{missing}");
    assert!(
        missing["hint"].as_str().unwrap().contains("signing key"),
        "{missing}"
    );

    // A wrong key: recorded with the scheme kept and the secret redacted.
    let response = server.post(
        &format!("{INGEST}/sg"),
        &[
            ("Content-Type", JSON),
            ("Authorization", "ApiKey not-the-key-of-prod"),
        ],
        body,
    );
    let bad = refused(&server, &mut seen, "bad_credentials", 401, response);
    let shown = bad["request"]["headers"].to_string();
    assert_eq!(
        bad["request"]["headers"]["authorization"],
        "ApiKey [redacted]"
    );
    assert!(!shown.contains("not-the-key-of-prod"), "{shown}");

    // SendGrid: a malformed signature, a tampered body, a stale signed timestamp.
    let (signed, signature, timestamp) = sendgrid_signed();
    let sg_signed = format!("{INGEST}/sg-signed");
    let response = server.post(
        &sg_signed,
        &[
            ("Content-Type", JSON),
            ("X-Twilio-Email-Event-Webhook-Signature", "not base64!"),
            ("X-Twilio-Email-Event-Webhook-Timestamp", &timestamp),
        ],
        &signed,
    );
    refused(&server, &mut seen, "malformed_signature", 401, response);
    let mut tampered = signed.clone();
    let at = tampered.iter().position(|b| *b == b'@').unwrap();
    tampered[at - 1] ^= 1;
    let response = server.post(
        &sg_signed,
        &[
            ("Content-Type", JSON),
            ("X-Twilio-Email-Event-Webhook-Signature", &signature),
            ("X-Twilio-Email-Event-Webhook-Timestamp", &timestamp),
        ],
        &tampered,
    );
    let mismatch = refused(&server, &mut seen, "bad_signature", 401, response);
    assert!(
        mismatch["hint"].as_str().unwrap().contains("re-encodes"),
        "{mismatch}"
    );

    // Mailgun signed an hour ago: stale, and the hint names the clocks.
    let stale = sign_mailgun(
        unix_now() - 3600,
        "d7f3a1c9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1",
    );
    let response = server.post(
        &format!("{INGEST}/mg"),
        &[("Content-Type", JSON)],
        stale.as_bytes(),
    );
    let stale = refused(&server, &mut seen, "stale_timestamp", 401, response);
    let hint = stale["hint"].as_str().unwrap();
    assert!(
        hint.contains("s away from the receive time") && hint.contains("clock"),
        "{hint}"
    );

    // Twilio signs the URL: the hint shows the URL Tidings verified against.
    let response = server.post(
        &format!("{INGEST}/tw"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ],
        b"MessageSid=SM1&MessageStatus=delivered",
    );
    let url = refused(&server, &mut seen, "bad_signature", 401, response);
    assert!(
        url["hint"]
            .as_str()
            .unwrap()
            .contains("https://hooks.example.com"),
        "{url}"
    );
    assert_eq!(
        url["request"]["headers"]["x-twilio-signature"],
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );

    // Media type, body, size, Idempotency-Key.
    let open = format!("{INGEST}/open");
    let response = server.post(&open, &[("Content-Type", "image/png")], b"\x89PNG");
    let media = refused(&server, &mut seen, "unsupported_media_type", 415, response);
    assert!(
        media["request"].get("body").is_none(),
        "refused before the body was read"
    );
    let response = server.post(&open, &[("Content-Type", JSON)], b"{\"not\": \"sendgrid\"");
    refused(&server, &mut seen, "unparsable_body", 400, response);
    let big = vec![b' '; 70_000];
    let response = server.post(&open, &[("Content-Type", JSON)], &big);
    refused(&server, &mut seen, "too_large", 413, response);
    let long_key = "k".repeat(300);
    let response = server.post(
        &open,
        &[("Content-Type", JSON), ("Idempotency-Key", &long_key)],
        body,
    );
    refused(&server, &mut seen, "invalid_request", 400, response);
    let first = server.post(
        &open,
        &[("Content-Type", JSON), ("Idempotency-Key", "key-1")],
        body,
    );
    assert_eq!(first.status, 200, "{}", first.text());
    let other = br#"[{"email":"b@example.com","event":"delivered","sg_message_id":"m2","timestamp":1700000000}]"#;
    let response = server.post(
        &open,
        &[("Content-Type", JSON), ("Idempotency-Key", "key-1")],
        other,
    );
    refused(&server, &mut seen, "idempotency_conflict", 422, response);

    // Newest first, filtered by integration, paged with `before`.
    let all = rejections(&server, "", seen);
    assert_eq!(all.len(), 11);
    let positions: Vec<i64> = all
        .iter()
        .map(|r| r["position"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");
    let open_only = rejections(&server, "integration=open", 5);
    assert_eq!(open_only.len(), 5);
    assert!(open_only.iter().all(|r| r["integration"] == "open"));
    let answer = server.request(
        "GET",
        "/v1/environments/prod/rejections?limit=5",
        &[("Authorization", KEY)],
        b"",
    );
    let page: Value = serde_json::from_slice(&answer.body).unwrap();
    let next = page["next"].as_str().unwrap();
    let rest = rejections(&server, &format!("before={next}&limit=100"), 6);
    assert_eq!(rest.len(), 6);
    assert_eq!(rest[0]["position"], all[5]["position"]);

    // The command line reads the same records.
    let printed = server.cli(&[
        "rejections",
        "--environment",
        "prod",
        "--integration",
        "open",
    ]);
    assert_eq!(printed.len(), 5);
    assert_eq!(printed[0]["reason"], "idempotency_conflict");
    assert_eq!(printed[4]["reason"], "unsupported_media_type");

    // The health shows the counts per reason.
    let answer = server.request(
        "GET",
        "/v1/environments/prod/integrations",
        &[("Authorization", KEY)],
        b"",
    );
    let health: Value = serde_json::from_slice(&answer.body).unwrap();
    let open_health = crate::api::health(&health, "open");
    assert_eq!(
        open_health["refusedLastHour"]["requests"], 5,
        "{open_health}"
    );
    assert_eq!(open_health["refusedLastDay"]["reasons"]["too_large"], 1);
    assert_eq!(
        open_health["state"], "failing",
        "5 refused against 1 accepted"
    );

    // Another environment's key sees nothing; an unknown reason is a clear 400.
    let answer = server.request(
        "GET",
        "/v1/environments/prod/rejections",
        &[("Authorization", "ApiKey staging-secret-key")],
        b"",
    );
    assert_eq!(answer.status, 401);
    let answer = server.request(
        "GET",
        "/v1/environments/prod/rejections?reason=nope",
        &[("Authorization", KEY)],
        b"",
    );
    assert_eq!(answer.status, 400);
    assert!(
        answer.text().contains("missing_credentials"),
        "{}",
        answer.text()
    );
}

#[test]
fn a_flood_is_counted_but_recorded_in_full_only_up_to_the_rate_bound() {
    let server = Server::start();
    let path = format!("{INGEST}/sg");
    for _ in 0..80 {
        let response = server.post(&path, &[("Content-Type", JSON)], b"[]");
        assert_eq!(response.status, 401);
    }
    let recorded = rejections(&server, "limit=1000", 60);
    std::thread::sleep(Duration::from_millis(500));
    let recorded_later = rejections(&server, "limit=1000", 60);
    assert_eq!(recorded.len(), 60, "60 a minute per integration in full");
    assert_eq!(recorded_later.len(), 60);
    let answer = server.request(
        "GET",
        "/v1/environments/prod/integrations",
        &[("Authorization", KEY)],
        b"",
    );
    let health: Value = serde_json::from_slice(&answer.body).unwrap();
    let sg = crate::api::health(&health, "sg");
    assert_eq!(
        sg["refusedLastHour"]["requests"], 80,
        "every refusal counted: {sg}"
    );
}

#[test]
fn shadow_mode_records_the_failure_and_accepts_the_request() {
    let server = Server::start_with(
        r#"
[[integrations]]
id = "mg-shadow"
environment = "prod"
provider = "mailgun"
signing_key = "a-mailgun-signing-key-nobody-signed-with"
verify = "shadow"
"#,
    );
    // Signed with the test suite's Mailgun key, not this integration's: shadow accepts it.
    let body = sign_mailgun(
        unix_now(),
        "e7f3a1c9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1",
    );
    let response = server.post(
        &format!("{INGEST}/mg-shadow"),
        &[("Content-Type", JSON)],
        body.as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let found = rejections(&server, "integration=mg-shadow", 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["reason"], "bad_signature");
    assert_eq!(found[0]["status"], 200);
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Accepted in shadow mode"),
        "{}",
        found[0]
    );
    // The event is stored, and marked as not proven genuine, in the read API too.
    let events = server.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["authentication"], "shadow_failed", "{events:?}");
    let answer = server.request(
        "GET",
        "/v1/environments/prod/events?integration=mg-shadow",
        &[("Authorization", KEY)],
        b"",
    );
    let page: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(page["data"][0]["authentication"], "shadow_failed", "{page}");
    // A request signed with the right key is marked as such.
    let response = server.post(
        &format!("{INGEST}/mg"),
        &[("Content-Type", JSON)],
        sign_mailgun(
            unix_now(),
            "a7f3a1c9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1",
        )
        .as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = server.request(
        "GET",
        "/v1/environments/prod/events?integration=mg",
        &[("Authorization", KEY)],
        b"",
    );
    let page: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(page["data"][0]["authentication"], "signature", "{page}");
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains(
            r#"tidings_shadow_failures_total{environment="prod",integration="mg-shadow",reason="bad_signature"} 1"#
        ),
        "{metrics}"
    );
    // The same request on the enforcing integration is refused.
    let response = server.post(
        &format!("{INGEST}/mg"),
        &[("Content-Type", JSON)],
        body.replace("e7f3", "f7f3").as_bytes(),
    );
    assert_eq!(response.status, 401);

    // check-config says so.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["check-config", "--config"])
        .arg(server.config())
        .env("TIDINGS_TEST_PROD_KEY", "prod-secret-key")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: integration `mg-shadow`") && stderr.contains("shadow mode"),
        "{stderr}"
    );
}

/// Twilio's scheme: base64 HMAC-SHA1 over the URL and the sorted form fields, names and values
/// run together.
fn twilio_signature(key: &str, url: &str, fields: &[(&str, &str)]) -> String {
    use hmac::Mac as _;
    let mut sorted = fields.to_vec();
    sorted.sort();
    let mut signed = url.to_owned();
    for (name, value) in sorted {
        signed.push_str(name);
        signed.push_str(value);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    support::base64_bytes(&mac.finalize().into_bytes())
}

#[test]
fn a_url_mismatch_names_the_url_the_signature_matches() {
    let server = Server::start_with(TWILIO);
    // The provider was set up with http:// (a proxy terminates TLS); public_url says https.
    let called = format!("http://hooks.example.com{INGEST}/tw");
    let fields = [("MessageSid", "SM1"), ("MessageStatus", "delivered")];
    let signature = twilio_signature("a-twilio-auth-token-for-tests", &called, &fields);
    let response = server.post(
        &format!("{INGEST}/tw"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", &signature),
        ],
        b"MessageSid=SM1&MessageStatus=delivered",
    );
    assert_eq!(response.status, 401, "{}", response.text());
    let found = rejections(&server, "integration=tw", 1);
    let hint = found[0]["hint"].as_str().unwrap();
    assert!(
        hint.contains(&format!("The signature matches {called}")),
        "{hint}"
    );
}

#[test]
fn a_replayed_signature_is_recorded_as_such() {
    let server = Server::start();
    let path = format!("{INGEST}/mg");
    let signed = sign_mailgun(
        unix_now(),
        "a8f3a1c9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1",
    );
    let first = server.post(&path, &[("Content-Type", JSON)], signed.as_bytes());
    assert_eq!(first.status, 200, "{}", first.text());
    // Mailgun signs the timestamp and token only: the same signature over another body.
    let replayed = signed.replace("a@example.com", "b@example.com");
    assert_ne!(replayed, signed);
    let response = server.post(&path, &[("Content-Type", JSON)], replayed.as_bytes());
    assert_eq!(response.status, 401, "{}", response.text());
    let found = rejections(&server, "reason=replayed_signature", 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]["message"].as_str().unwrap().contains("replay"),
        "{}",
        found[0]
    );
}

/// A topic outside an integration's SNS allow-list is refused before any certificate is
/// fetched, and recorded as `untrusted_sender`.
#[test]
fn an_untrusted_topic_is_recorded_with_its_reason() {
    let server = Server::start_with(
        r#"
[[integrations]]
id = "ses-mine"
environment = "prod"
provider = "ses"
options = { topic_arns = "arn:aws:sns:us-east-1:123456789012:Other" }
"#,
    );
    let mut seen = 0;
    let meta: Value = serde_json::from_slice(
        &std::fs::read(support::fixture(
            "ses/sns-signed-v2-topic-not-allowed.meta.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let headers: Vec<(String, String)> = meta["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let mut sent: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sent.push(("Content-Type", "text/plain; charset=UTF-8"));
    let body = std::fs::read(support::fixture("ses/sns-signed-v2-topic-not-allowed.json")).unwrap();
    let response = server.post(&format!("{INGEST}/ses-mine"), &sent, &body);
    let topic = refused(&server, &mut seen, "untrusted_sender", 401, response);
    assert!(
        topic["hint"].as_str().unwrap().contains("topic_arns"),
        "{topic}"
    );
}

/// A signing key of the wrong kind would refuse every webhook as `not_configured`: the
/// provider says so at configuration time instead.
#[test]
fn a_signing_key_of_the_wrong_kind_is_a_configuration_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        r#"
[[environments]]
id = "prod"
secret_key = "prod-secret-key"

[[integrations]]
id = "sg"
environment = "prod"
provider = "sendgrid"
signing_key = "this is not a base64 DER public key"
"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("signing key 1 cannot be used")
            && stderr.contains("base64 DER P-256 public key"),
        "{stderr}"
    );
}

#[test]
fn a_sendgrid_body_re_encoded_in_transit_is_named() {
    let server = Server::start();
    let meta: Value = serde_json::from_slice(
        &std::fs::read(support::fixture(
            "sendgrid/signed-dropped-official-vector.meta.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let header = |name: &str| meta["headers"][name].as_str().unwrap().to_owned();
    let signature = header("X-Twilio-Email-Event-Webhook-Signature");
    let timestamp = header("X-Twilio-Email-Event-Webhook-Timestamp");
    let body = std::fs::read(support::fixture(
        "sendgrid/signed-dropped-official-vector.txt",
    ))
    .unwrap();
    // What a framework that parses and pretty-prints JSON forwards.
    let value: Value = serde_json::from_slice(&body).unwrap();
    let pretty = serde_json::to_string_pretty(&value).unwrap();
    assert_ne!(pretty.as_bytes(), body.as_slice());
    let mut seen = 0;
    let rejection = refused(
        &server,
        &mut seen,
        "bad_signature",
        401,
        server.post(
            &format!("{INGEST}/sg-signed"),
            &[
                ("Content-Type", JSON),
                ("X-Twilio-Email-Event-Webhook-Signature", &signature),
                ("X-Twilio-Email-Event-Webhook-Timestamp", &timestamp),
            ],
            pretty.as_bytes(),
        ),
    );
    let hint = rejection["hint"].as_str().unwrap();
    assert!(hint.contains("re-encoded the JSON"), "{hint}");
}

#[test]
fn a_mailgun_api_key_in_place_of_the_signing_key_is_named() {
    let server = Server::start_with(
        r#"
[[integrations]]
id = "mg-api-key"
environment = "prod"
provider = "mailgun"
signing_key = "0123456789abcdef0123456789abcdef-0a1b2c3d-4e5f6a7b"
"#,
    );
    let body = sign_mailgun(
        unix_now(),
        "d7f3a1c9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1",
    );
    let mut seen = 0;
    let rejection = refused(
        &server,
        &mut seen,
        "bad_signature",
        401,
        server.post(
            &format!("{INGEST}/mg-api-key"),
            &[("Content-Type", JSON)],
            body.as_bytes(),
        ),
    );
    let hint = rejection["hint"].as_str().unwrap();
    assert!(hint.contains("private API key"), "{hint}");
}
