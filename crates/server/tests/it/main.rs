//! End-to-end tests: the real `tidings` binary, a real socket, a real store (SQLite; PostgreSQL
//! for the scale-out tests when `TIDINGS_TEST_POSTGRES_URL` is set).

// In tests a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod api;
mod browser;
mod cli;
mod first_hour;
mod get_receipts;
mod hardening;
mod openapi;
mod outbound;
mod protections;
mod rejections;
mod reparse;
mod scale_out;
mod sns;
mod support;
mod suppressions;

/// Expected status, path, headers, body, what the case is.
type Case<'a> = (u16, &'a str, Vec<(&'a str, &'a str)>, String, &'a str);

use serde_json::Value;
use support::{Server, sign_mailgun, unix_now};

const SG: &str = "/v2/inbound-webhooks/delivery-providers/prod/sg";
const PROD_KEY: &str = "ApiKey prod-secret-key";
const JSON: &str = "application/json";

fn sendgrid_event(message: &str, event: &str, timestamp: i64) -> String {
    format!(
        r#"{{"email":"a@example.com","event":"{event}","sg_message_id":"{message}","sg_event_id":"{message}-{event}","timestamp":{timestamp}}}"#
    )
}

#[test]
fn a_provider_delivery_is_answered_with_its_normalized_events() {
    let server = Server::start();
    let body = std::fs::read(support::fixture("sendgrid/docs-batch-all-event-types.json")).unwrap();
    let response = server.post(
        SG,
        &[("Authorization", PROD_KEY), ("Content-Type", JSON)],
        &body,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let results: Vec<Value> = serde_json::from_slice(&response.body).unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["event"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "sent",
            "deferred",
            "delivered",
            "opened",
            "clicked",
            "bounced",
            "dropped",
            "spam",
            "unsubscribed",
            "unsubscribed"
        ]
    );
    // Exactly the wire shape: id, event.{status, date, externalId, attempts?, response?, row}.
    let first = &results[0];
    assert_eq!(first["id"], "sg_message_id");
    assert_eq!(first["event"]["date"], "2017-12-15T00:59:29.000Z");
    assert!(first["event"]["row"].is_string());
    assert!(
        first["event"].get("attempts").is_none(),
        "absent values are omitted, never null"
    );
    // The ignored group_resubscribe is stored with the raw request, not answered.
    assert_eq!(server.events().len(), 10);
}

#[test]
fn every_error_status_code() {
    let server = Server::start();
    let body = sendgrid_event("m1", "delivered", 1_700_000_000);
    let ok = [("Authorization", PROD_KEY), ("Content-Type", JSON)];
    let long_key = "k".repeat(256);
    let cases: Vec<Case<'_>> = vec![
        (
            401,
            SG,
            vec![("Content-Type", JSON)],
            format!("[{body}]"),
            "no credentials",
        ),
        (
            401,
            SG,
            vec![
                ("Authorization", "ApiKey staging-secret-key"),
                ("Content-Type", JSON),
            ],
            format!("[{body}]"),
            "another environment's key",
        ),
        (
            401,
            SG,
            vec![("Authorization", "ApiKey wrong"), ("Content-Type", JSON)],
            format!("[{body}]"),
            "wrong key",
        ),
        (
            404,
            "/v2/inbound-webhooks/delivery-providers/nope/sg",
            ok.to_vec(),
            format!("[{body}]"),
            "unknown environment",
        ),
        (
            404,
            "/v2/inbound-webhooks/delivery-providers/prod/nope",
            ok.to_vec(),
            format!("[{body}]"),
            "unknown integration",
        ),
        (
            404,
            "/v2/inbound-webhooks/delivery-providers/staging/sg",
            vec![
                ("Authorization", "ApiKey staging-secret-key"),
                ("Content-Type", JSON),
            ],
            format!("[{body}]"),
            "integration of another environment",
        ),
        (
            404,
            "/nothing/here",
            ok.to_vec(),
            String::new(),
            "unknown path",
        ),
        (
            415,
            SG,
            vec![
                ("Authorization", PROD_KEY),
                ("Content-Type", "application/xml"),
            ],
            "<a/>".into(),
            "xml",
        ),
        (
            400,
            SG,
            ok.to_vec(),
            "[{\"event\": ".into(),
            "malformed JSON",
        ),
        (
            400,
            SG,
            ok.to_vec(),
            "{\"not\": \"sendgrid\"}".into(),
            "not the provider's format",
        ),
        (
            413,
            SG,
            ok.to_vec(),
            format!("[{}]", vec![body.as_str(); 2000].join(",")),
            "too large",
        ),
        (
            400,
            SG,
            vec![
                ("Authorization", PROD_KEY),
                ("Content-Type", JSON),
                ("Idempotency-Key", &long_key),
            ],
            format!("[{body}]"),
            "idempotency key too long",
        ),
    ];
    for (status, path, headers, body, what) in cases {
        let response = server.post(path, &headers, body.as_bytes());
        assert_eq!(response.status, status, "{what}: {}", response.text());
        let error: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(error["statusCode"], status, "{what}");
        assert!(
            error["message"].is_string()
                && error["error"].is_string()
                && error["timestamp"].is_string(),
            "{what}"
        );
        assert_eq!(error["path"], path, "{what}");
        assert!(
            !response.text().contains("prod-secret-key"),
            "{what}: a secret was echoed"
        );
    }
    assert_eq!(server.get(SG).status, 405);
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/readyz").status, 200);
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text()
            .contains("tidings_requests_total{provider=\"sendgrid\",code=\"401\"} 3"),
        "{}",
        metrics.text()
    );
    assert!(
        server.events().is_empty(),
        "no rejected request stores events"
    );
}

#[test]
fn basic_auth_and_unauthenticated_integrations() {
    let server = Server::start();
    let body = std::fs::read(support::fixture("postmark/delivery-with-metadata.json")).unwrap();
    let path = "/v2/inbound-webhooks/delivery-providers/prod/pm";
    let good = format!("Basic {}", support::base64("hook:hook-password"));
    let bad = format!("Basic {}", support::base64("hook:guess"));
    assert_eq!(
        server
            .post(
                path,
                &[("Authorization", &good), ("Content-Type", JSON)],
                &body
            )
            .status,
        200
    );
    assert_eq!(
        server
            .post(
                path,
                &[("Authorization", &bad), ("Content-Type", JSON)],
                &body
            )
            .status,
        401
    );
    assert_eq!(
        server.post(path, &[("Content-Type", JSON)], &body).status,
        401
    );
    let open = "/v2/inbound-webhooks/delivery-providers/prod/open";
    let sg = format!("[{}]", sendgrid_event("m-open", "delivered", 1_700_000_000));
    assert_eq!(
        server
            .post(open, &[("Content-Type", JSON)], sg.as_bytes())
            .status,
        200
    );
}

#[test]
fn signed_requests_verify_and_tampered_ones_are_401() {
    let server = Server::start();
    // SendGrid's official signed vector.
    let meta = support::fixture_meta("sendgrid/signed-dropped-official-vector.meta.json");
    let signature = meta["headers"]["X-Twilio-Email-Event-Webhook-Signature"]
        .as_str()
        .unwrap();
    let timestamp = meta["headers"]["X-Twilio-Email-Event-Webhook-Timestamp"]
        .as_str()
        .unwrap();
    let headers = [
        ("Content-Type", JSON),
        ("X-Twilio-Email-Event-Webhook-Signature", signature),
        ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp),
    ];
    let path = "/v2/inbound-webhooks/delivery-providers/prod/sg-signed";
    let body = std::fs::read(support::fixture(
        "sendgrid/signed-dropped-official-vector.txt",
    ))
    .unwrap();
    let response = server.post(path, &headers, &body);
    assert_eq!(response.status, 200, "{}", response.text());
    let tampered = std::fs::read(support::fixture("sendgrid/signed-dropped-tampered.txt")).unwrap();
    let response = server.post(path, &headers, &tampered);
    assert_eq!(response.status, 401);
    assert!(
        response.text().contains("Missing or invalid credentials"),
        "{}",
        response.text()
    );

    // Mailgun, signed now, and a replay of an old signature.
    let path = "/v2/inbound-webhooks/delivery-providers/prod/mg";
    let fresh = sign_mailgun(
        unix_now(),
        "b7f3a1c9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1",
    );
    assert_eq!(
        server
            .post(path, &[("Content-Type", JSON)], fresh.as_bytes())
            .status,
        200
    );
    let stale = sign_mailgun(
        unix_now() - 3600,
        "c7f3a1c9d2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1",
    );
    let response = server.post(path, &[("Content-Type", JSON)], stale.as_bytes());
    assert_eq!(response.status, 401);
    // Why (the timestamp is outside the window) is logged, not told to the caller.
    assert!(
        response.text().contains("Missing or invalid credentials"),
        "{}",
        response.text()
    );
    let forged = fresh.replace("\"signature\":\"", "\"signature\":\"0");
    assert_eq!(
        server
            .post(path, &[("Content-Type", JSON)], forged.as_bytes())
            .status,
        401
    );
}

#[test]
fn idempotency_matrix() {
    let server = Server::start();
    let body = format!("[{}]", sendgrid_event("m-idem", "delivered", 1_700_000_000));
    let other = format!("[{}]", sendgrid_event("m-idem", "open", 1_700_000_100));
    let with_key = |key: &'static str, env_key: &'static str| {
        vec![
            ("Authorization", env_key),
            ("Content-Type", JSON),
            ("Idempotency-Key", key),
        ]
    };
    let first = server.post(SG, &with_key("key-1", PROD_KEY), body.as_bytes());
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotency-replay"), None);
    let replay = server.post(SG, &with_key("key-1", PROD_KEY), body.as_bytes());
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body, first.body, "replayed byte for byte");
    assert_eq!(replay.header("idempotency-key"), Some("key-1"));
    assert_eq!(replay.header("idempotency-replay"), Some("true"));
    let mismatch = server.post(SG, &with_key("key-1", PROD_KEY), other.as_bytes());
    assert_eq!(mismatch.status, 422, "{}", mismatch.text());
    // Keys are scoped per environment.
    let staging = "/v2/inbound-webhooks/delivery-providers/staging/sg2";
    let elsewhere = server.post(
        staging,
        &with_key("key-1", "ApiKey staging-secret-key"),
        other.as_bytes(),
    );
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.text());
    assert_eq!(elsewhere.header("idempotency-replay"), None);
    // One event stored, though the request was answered twice.
    assert_eq!(
        server.events_for("m-idem").len(),
        2,
        "one in prod, one in staging"
    );

    // Concurrent requests with one key: one is processed, the rest see it in flight or replay it.
    let concurrent = format!("[{}]", sendgrid_event("m-race", "delivered", 1_700_000_000));
    let responses: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| server.post(SG, &with_key("race", PROD_KEY), concurrent.as_bytes()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let fresh = responses
        .iter()
        .filter(|r| r.status == 200 && r.header("idempotency-replay").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request is processed");
    for response in &responses {
        match response.status {
            200 => {}
            409 => assert_eq!(response.header("retry-after"), Some("1")),
            other => panic!("unexpected {other}: {}", response.text()),
        }
    }
}

#[test]
fn a_provider_retry_is_answered_the_same_and_stored_once() {
    let server = Server::start();
    let body = std::fs::read(support::fixture("sendgrid/docs-batch-all-event-types.json")).unwrap();
    let headers = [("Authorization", PROD_KEY), ("Content-Type", JSON)];
    let first = server.post(SG, &headers, &body);
    let second = server.post(SG, &headers, &body);
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.body, second.body);
    let events = server.events();
    assert_eq!(events.len(), 10);
    assert!(
        events.iter().all(|e| e["duplicates"] == 1),
        "duplicates are counted, not hidden"
    );
}

#[test]
fn out_of_order_events_reach_the_same_final_status_and_survive_a_restart() {
    let mut server = Server::start();
    let headers = [("Authorization", PROD_KEY), ("Content-Type", JSON)];
    let timeline = [
        ("processed", 10),
        ("delivered", 20),
        ("open", 30),
        ("bounce", 40),
    ];
    let in_order: Vec<String> = timeline
        .iter()
        .map(|(e, t)| sendgrid_event("m-a", e, 1_700_000_000 + t))
        .collect();
    let mut reversed: Vec<String> = timeline
        .iter()
        .map(|(e, t)| sendgrid_event("m-b", e, 1_700_000_000 + t))
        .collect();
    reversed.reverse();
    for event in in_order.iter().chain(&reversed) {
        assert_eq!(
            server
                .post(SG, &headers, format!("[{event}]").as_bytes())
                .status,
            200
        );
    }
    let a = server.message("m-a");
    let b = server.message("m-b");
    assert_eq!(
        a["status"], "opened",
        "engagement outranks a later bounce notice"
    );
    assert_eq!(a["status"], b["status"]);
    assert_eq!(a["firstAt"], b["firstAt"]);

    server.restart();
    assert_eq!(server.message("m-a")["status"], "opened");
    assert_eq!(server.events_for("m-a").len(), 4);
    // A retry after the restart is still recognized.
    assert_eq!(
        server
            .post(SG, &headers, format!("[{}]", in_order[1]).as_bytes())
            .status,
        200
    );
    assert_eq!(server.events_for("m-a").len(), 4);
}

#[test]
fn a_novu_sdk_request_is_accepted() {
    let server = Server::start();
    // What Novu's SDKs send for `novu.activity.track(...)`: ApiKey auth, an auto-generated
    // idempotency key (`Date.now()` + 9 base36 characters), a JSON object body.
    let key = format!("{}k3j9x2m1q", unix_now() * 1000);
    let body = r#"{"eventType":"opened","eventId":"64f1c0ffee0000000000beef","timestamp":"2026-11-01T10:00:00.000Z","deviceId":"device-1","platform":"ios"}"#;
    let path = "/v2/inbound-webhooks/delivery-providers/prod/push";
    let headers = [
        ("Authorization", PROD_KEY),
        ("Content-Type", JSON),
        ("Idempotency-Key", key.as_str()),
        ("User-Agent", "speakeasy-sdk/typescript"),
    ];
    let response = server.post(path, &headers, body.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    let results: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(results[0]["id"], "64f1c0ffee0000000000beef");
    assert_eq!(results[0]["event"]["status"], "opened");
    assert_eq!(results[0]["event"]["date"], "2026-11-01T10:00:00.000Z");
    let row: Value = serde_json::from_str(results[0]["event"]["row"].as_str().unwrap()).unwrap();
    assert_eq!(row["deviceId"], "device-1");
    // The SDK retries with the same key: a replay.
    let again = server.post(path, &headers, body.as_bytes());
    assert_eq!(again.header("idempotency-replay"), Some("true"));
    assert_eq!(again.body, response.body);
}

#[test]
fn a_ringcentral_subscription_handshake_is_echoed_and_nothing_is_stored() {
    let server = Server::start_with(
        r#"
[[integrations]]
id = "rc"
environment = "prod"
provider = "ring-central"
signing_key = "rc-verification-token"
"#,
    );
    let path = "/v2/inbound-webhooks/delivery-providers/prod/rc";
    // RingCentral's validation request: no body, no verification token, a Validation-Token to echo.
    let response = server.post(path, &[("Validation-Token", "3f1c-9a7e-token")], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("validation-token"), Some("3f1c-9a7e-token"));
    assert!(response.body.is_empty());
    assert!(server.events().is_empty());

    // A handshake-shaped request with a body is a notification: it must authenticate.
    let response = server.post(
        path,
        &[
            ("Validation-Token", "3f1c-9a7e-token"),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.header("validation-token"), None);

    // A token too long to echo within RingCentral's 1,024-byte limit is not a handshake.
    let long = "t".repeat(300);
    let response = server.post(path, &[("Validation-Token", &long)], b"");
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.header("validation-token"), None);
}
