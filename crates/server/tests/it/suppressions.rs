//! The suppression list end to end: real fixture webhooks of several providers into the real
//! server, the list read back through the API, manual changes, and replays and reordering.

use serde_json::Value;

use crate::support::{Response, Server, fixture};

const KEY: &str = "ApiKey prod-secret-key";

/// Integrations the suite needs beside the default ones, and a temporary expiry long enough
/// that suppressions made from years-old fixtures have not lapsed.
const EXTRA: &str = r#"
[[integrations]]
id = "ses"
environment = "prod"
provider = "ses"
# The fixtures come from several accounts' topics; their signatures are not what this tests.
options = { topic_arns = "any-topic-of-any-aws-account" }

[[integrations]]
id = "mailgun"
environment = "prod"
provider = "mailgun"

[[integrations]]
id = "twilio"
environment = "prod"
provider = "twilio"

[[integrations]]
id = "expo"
environment = "prod"
provider = "expo"

[[integrations]]
id = "open-fed"
environment = "prod"
provider = "sendgrid"
allow_unauthenticated = true
suppressions = true

[suppressions]
temporary_expiry_days = 36500
"#;

/// The fixture's content type and headers, from its metadata.
fn meta(path: &str) -> (String, Vec<(String, String)>) {
    let name = path.rsplit_once('.').map_or(path, |(stem, _)| stem);
    let meta: Value = std::fs::read(fixture(&format!("{name}.meta.json")))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let content_type = meta["content_type"]
        .as_str()
        .unwrap_or("application/json")
        .to_owned();
    let headers = meta["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .filter(|(k, _)| !k.to_ascii_lowercase().contains("signature"))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    (content_type, headers)
}

/// Posts a fixture (or a body made from it) to an integration of `prod` with the API key.
fn post(server: &Server, integration: &str, path: &str, body: Option<Vec<u8>>) -> Response {
    let body = body.unwrap_or_else(|| std::fs::read(fixture(path)).unwrap());
    let (content_type, extra) = meta(path);
    let mut headers: Vec<(&str, &str)> =
        vec![("Authorization", KEY), ("Content-Type", &content_type)];
    headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let response = server.post(
        &format!("/v2/inbound-webhooks/delivery-providers/prod/{integration}"),
        &headers,
        &body,
    );
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    response
}

fn read(server: &Server, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let response = server.request(
        method,
        path,
        &[("Authorization", KEY), ("Content-Type", "application/json")],
        body,
    );
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

/// `GET .../suppressions/{recipient}` (already percent-encoded).
fn check(server: &Server, recipient: &str) -> (u16, Value) {
    read(
        server,
        "GET",
        &format!("/v1/environments/prod/suppressions/{recipient}"),
        b"",
    )
}

fn history(server: &Server, recipient: &str) -> Vec<Value> {
    let (status, body) = read(
        server,
        "GET",
        &format!("/v1/environments/prod/suppressions/{recipient}/history"),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// SendGrid's documented batch, keeping only the events of `kind`, for `email`.
fn sendgrid_only(kind: &str, email: &str) -> Vec<u8> {
    let batch: Vec<Value> = serde_json::from_slice(
        &std::fs::read(fixture("sendgrid/docs-batch-all-event-types.json")).unwrap(),
    )
    .unwrap();
    let kept: Vec<Value> = batch
        .into_iter()
        .filter(|e| e["event"] == kind)
        .map(|mut e| {
            e["email"] = email.into();
            e
        })
        .collect();
    assert_eq!(kept.len(), 1);
    serde_json::to_vec(&kept).unwrap()
}

/// Mailgun's greylisted temporary failure (or its delivery) for one recipient at `timestamp`.
fn mailgun(path: &str, recipient: &str, timestamp: f64, id: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&std::fs::read(fixture(path)).unwrap()).unwrap();
    body["event-data"]["timestamp"] = timestamp.into();
    body["event-data"]["recipient"] = recipient.into();
    body["event-data"]["id"] = id.into();
    // Another message each time: one message's retries count once.
    body["event-data"]["message"]["headers"]["message-id"] = format!("{id}@example.org").into();
    serde_json::to_vec(&body).unwrap()
}

fn twilio(code: &str, to: &str, sid: &str) -> Vec<u8> {
    std::fs::read_to_string(fixture("twilio/status-undelivered-30003.form"))
        .unwrap()
        .replace("ErrorCode=30003", &format!("ErrorCode={code}"))
        .replace("%2B15558675310", &to.replace('+', "%2B"))
        .replace("SM1342fe1b2c904d1ab04f0fc7a58abca9", sid)
        .into_bytes()
}

const GREYLISTED: &str = "mailgun/failed-temporary-greylisted.json";
const DELIVERED: &str = "mailgun/delivered-complete.json";
/// The greylisted fixture's own time.
const T: f64 = 1_534_111_899.659_519;

#[test]
fn fixture_webhooks_of_several_providers_feed_one_list() {
    let server = Server::start_with(EXTRA);

    // Amazon SES: a permanent bounce (SNS notification).
    post(
        &server,
        "ses",
        "ses/sns-notification-bounce-complete.json",
        None,
    );
    let (status, jane) = check(&server, "jane%40example.com");
    assert_eq!(status, 200, "{jane}");
    assert_eq!(jane["reason"], "permanentFailure");
    assert_eq!(jane["channel"], "email");
    assert_eq!(jane["cause"]["provider"], "ses");
    assert_eq!(jane["cause"]["integration"], "ses");
    assert_eq!(jane["cause"]["code"], "5.1.1");
    assert_eq!(jane["cause"]["providerEvent"], "Bounce (Permanent/General)");
    assert_eq!(jane["firstAt"], "2016-01-27T14:59:44.101Z");
    assert!(jane["cause"]["eventSeq"].as_i64().unwrap() > 0);
    // The path parameter is normalized as the list is: display name and case do not matter.
    let (status, same) = check(&server, "Jane%20%3CJANE%40Example.com%3E");
    assert_eq!((status, &same), (200, &jane));

    // SendGrid: a spam report.
    post(
        &server,
        "sg",
        "sendgrid/docs-batch-all-event-types.json",
        Some(sendgrid_only("spamreport", "Complainer@Example.com")),
    );
    let (status, complaint) = check(&server, "complainer%40example.com");
    assert_eq!(status, 200, "{complaint}");
    assert_eq!(complaint["reason"], "complaint");
    assert_eq!(complaint["cause"]["provider"], "sendgrid");

    // Twilio: 30005 (unknown destination) is permanent; 30003 (handset off) only counts.
    post(
        &server,
        "twilio",
        "twilio/status-undelivered-30003.form",
        Some(twilio("30005", "+15558675310", "SM30005")),
    );
    post(
        &server,
        "twilio",
        "twilio/status-undelivered-30003.form",
        Some(twilio("30003", "+15558675399", "SM30003")),
    );
    let (status, sms) = check(&server, "%2B1%20555%20867%205310");
    assert_eq!(status, 200, "{sms}");
    assert_eq!(sms["recipient"], "+15558675310");
    assert_eq!(sms["channel"], "sms");
    assert_eq!(sms["reason"], "permanentFailure");
    assert_eq!(sms["cause"]["code"], "30005");
    assert_eq!(check(&server, "%2B15558675399").0, 404);
    assert_eq!(history(&server, "%2B15558675399").len(), 1);

    // Expo: a receipt with DeviceNotRegistered.
    post(&server, "expo", "expo/receipts-mixed-errors.json", None);
    let token = "ExponentPushToken%5Byyyyyyyyyyyyyyyyyyyyyy%5D";
    let (status, push) = check(&server, token);
    assert_eq!(status, 200, "{push}");
    assert_eq!(push["channel"], "push");
    assert_eq!(
        push["recipient"],
        "ExponentPushToken[yyyyyyyyyyyyyyyyyyyyyy]"
    );
    assert_eq!(push["reason"], "permanentFailure");
    // A token written like a phone number is found as a token when the channel says so.
    let (status, _) = read(
        &server,
        "PUT",
        "/v1/environments/prod/suppressions/123456789012",
        br#"{"channel": "push"}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(check(&server, "123456789012").0, 404);
    assert_eq!(check(&server, "123456789012?channel=push").0, 200);
    assert_eq!(check(&server, "123456789012?channel=fax").0, 400);

    // Mailgun: temporary failures reach the threshold (3 within 7 days), then a later
    // delivery lifts the suppression.
    let soft = "soft%40example.com";
    for (n, hours) in [0.0, 5.0].into_iter().enumerate() {
        let body = mailgun(
            GREYLISTED,
            "soft@example.com",
            T + hours * 3600.0,
            &format!("g{n}"),
        );
        post(&server, "mailgun", GREYLISTED, Some(body));
    }
    assert_eq!(check(&server, soft).0, 404);
    post(
        &server,
        "mailgun",
        GREYLISTED,
        Some(mailgun(GREYLISTED, "soft@example.com", T + 86_400.0, "g2")),
    );
    let (status, threshold) = check(&server, soft);
    assert_eq!(status, 200, "{threshold}");
    assert_eq!(threshold["reason"], "temporaryFailures");
    assert_eq!(threshold["temporaryFailures"], 3);
    assert_eq!(threshold["cause"]["code"], "450");
    assert!(threshold["expiresAt"].is_string());
    post(
        &server,
        "mailgun",
        DELIVERED,
        Some(mailgun(
            DELIVERED,
            "soft@example.com",
            T + 2.0 * 86_400.0,
            "d1",
        )),
    );
    assert_eq!(check(&server, soft).0, 404);

    // One message retried three times by the provider counts once.
    for (n, hours) in [0.0, 1.0, 2.0].into_iter().enumerate() {
        let mut body: Value = serde_json::from_slice(&mailgun(
            GREYLISTED,
            "retried@example.com",
            T + hours * 3600.0,
            &format!("r{n}"),
        ))
        .unwrap();
        body["event-data"]["message"]["headers"]["message-id"] = "one@example.org".into();
        post(
            &server,
            "mailgun",
            GREYLISTED,
            Some(serde_json::to_vec(&body).unwrap()),
        );
    }
    assert_eq!(check(&server, "retried%40example.com").0, 404);
    assert_eq!(history(&server, "retried%40example.com").len(), 3);

    // The list, by channel and reason, page by page.
    let (status, email) = read(
        &server,
        "GET",
        "/v1/environments/prod/suppressions?channel=email",
        b"",
    );
    assert_eq!(status, 200, "{email}");
    let recipients: Vec<&str> = email["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(recipients, ["complainer@example.com", "jane@example.com"]);
    let (_, complaints) = read(
        &server,
        "GET",
        "/v1/environments/prod/suppressions?reason=complaint",
        b"",
    );
    assert_eq!(complaints["data"].as_array().unwrap().len(), 1);
    let mut walked = Vec::new();
    let mut path = "/v1/environments/prod/suppressions?limit=1".to_owned();
    loop {
        let (status, page) = read(&server, "GET", &path, b"");
        assert_eq!(status, 200, "{page}");
        walked.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["recipient"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/environments/prod/suppressions?limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(
        walked,
        [
            "+15558675310",
            "123456789012",
            "ExponentPushToken[yyyyyyyyyyyyyyyyyyyyyy]",
            "complainer@example.com",
            "jane@example.com"
        ]
    );
    let (status, bad) = read(
        &server,
        "GET",
        "/v1/environments/prod/suppressions?reason=soft",
        b"",
    );
    assert_eq!(status, 400, "{bad}");

    // Another environment's key is 401; another environment's list is its own.
    let other = server.request(
        "GET",
        "/v1/environments/prod/suppressions/jane%40example.com",
        &[("Authorization", "ApiKey staging-secret-key")],
        b"",
    );
    assert_eq!(other.status, 401);
    let staging = server.request(
        "GET",
        "/v1/environments/staging/suppressions/jane%40example.com",
        &[("Authorization", "ApiKey staging-secret-key")],
        b"",
    );
    assert_eq!(staging.status, 404);
}

#[test]
fn only_authenticated_requests_feed_the_list_unless_the_integration_opts_in() {
    let server = Server::start_with(EXTRA);
    for integration in ["open", "open-fed"] {
        let victim = format!("victim-{integration}@example.com");
        let response = server.post(
            &format!("/v2/inbound-webhooks/delivery-providers/prod/{integration}"),
            &[("Content-Type", "application/json")],
            &sendgrid_only("spamreport", &victim),
        );
        assert_eq!(response.status, 200, "{}", response.text());
        let (status, _) = check(&server, &victim.replace('@', "%40"));
        let expected = if integration == "open" { 404 } else { 200 };
        assert_eq!(status, expected, "after {integration}");
    }
}

#[test]
fn manual_changes_are_records_and_lifting_is_kept_in_history() {
    let server = Server::start_with(EXTRA);
    let path = "/v1/environments/prod/suppressions/Someone%40Example.com";
    let (status, added) = read(
        &server,
        "PUT",
        path,
        br#"{"note": "asked us by phone on 2024-05-01"}"#,
    );
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["recipient"], "someone@example.com");
    assert_eq!(added["reason"], "manual");
    assert_eq!(added["cause"]["note"], "asked us by phone on 2024-05-01");
    assert_eq!(check(&server, "someone%40example.com").0, 200);

    let (status, lifted) = read(&server, "DELETE", path, br#"{"note": "resubscribed"}"#);
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["data"][0]["kind"], "removed");
    assert_eq!(lifted["data"][0]["note"], "resubscribed");
    assert_eq!(lifted["data"][1]["kind"], "manual");
    assert_eq!(check(&server, "someone%40example.com").0, 404);
    assert_eq!(read(&server, "DELETE", path, b"").0, 404);

    // A bounce from before the removal does not suppress again.
    post(
        &server,
        "sg",
        "sendgrid/docs-batch-all-event-types.json",
        Some(sendgrid_only("bounce", "someone@example.com")),
    );
    assert_eq!(check(&server, "someone%40example.com").0, 404);
    assert_eq!(history(&server, "someone%40example.com").len(), 3);

    // An import keeps the provider's reason.
    let (status, imported) = read(
        &server,
        "PUT",
        "/v1/environments/prod/suppressions/%2B44%207700%20900000",
        br#"{"reason": "unsubscribed", "note": "from Vonage"}"#,
    );
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["recipient"], "+447700900000");
    assert_eq!(imported["reason"], "unsubscribed");

    // Bad input is a clear 400.
    for (body, recipient) in [
        (
            &br#"{"reason": "temporaryFailures"}"#[..],
            "a%40example.com",
        ),
        (br#"{"reason": "nope"}"#, "a%40example.com"),
        (br#"{"note": 1}"#, "a%40example.com"),
        (b"not json", "a%40example.com"),
        (b"", "%20"),
        (b"", "no-at%40"),
    ] {
        let (status, error) = read(
            &server,
            "PUT",
            &format!("/v1/environments/prod/suppressions/{recipient}"),
            body,
        );
        assert_eq!(status, 400, "{}: {error}", String::from_utf8_lossy(body));
        assert_eq!(error["statusCode"], 400);
    }
}

#[test]
fn replays_and_reordering_change_nothing() {
    let server = Server::start_with(EXTRA);
    let recipient = "late%40example.com";
    let failure =
        |hours: f64, id: &str| mailgun(GREYLISTED, "late@example.com", T + hours * 3600.0, id);
    // One failure, then a delivery later than every failure, then two older failures: the
    // delivery resets them all, whatever the order they came in.
    post(&server, "mailgun", GREYLISTED, Some(failure(1.0, "a")));
    post(
        &server,
        "mailgun",
        DELIVERED,
        Some(mailgun(
            DELIVERED,
            "late@example.com",
            T + 10.0 * 3600.0,
            "d",
        )),
    );
    post(&server, "mailgun", GREYLISTED, Some(failure(0.0, "b")));
    post(&server, "mailgun", GREYLISTED, Some(failure(2.0, "c")));
    assert_eq!(check(&server, recipient).0, 404);
    // Three failures after the delivery suppress; replaying each twice counts nothing more.
    for _ in 0..3 {
        for (hours, id) in [(13.0, "e"), (11.0, "f"), (12.0, "g")] {
            post(&server, "mailgun", GREYLISTED, Some(failure(hours, id)));
        }
    }
    let (status, entry) = check(&server, recipient);
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["temporaryFailures"], 3);
    // The cause is the earliest failure of the window, not the first to arrive.
    assert_eq!(entry["firstAt"], "2018-08-13T09:11:39.659Z");
    assert_eq!(history(&server, recipient).len(), 6);

    // A permanent bounce is not lifted by a delivery, older or newer.
    post(
        &server,
        "ses",
        "ses/sns-notification-bounce-complete.json",
        None,
    );
    let delivery = std::fs::read_to_string(fixture("ses/raw-event-delivery.json"))
        .unwrap()
        .replace("recipient@example.com", "jane@example.com");
    post(
        &server,
        "ses",
        "ses/raw-event-delivery.json",
        Some(delivery.into_bytes()),
    );
    post(
        &server,
        "ses",
        "ses/sns-notification-bounce-complete.json",
        None,
    );
    let (status, jane) = check(&server, "jane%40example.com");
    assert_eq!(
        (status, jane["reason"].as_str()),
        (200, Some("permanentFailure"))
    );
    assert_eq!(history(&server, "jane%40example.com").len(), 1);
}

fn cli(config: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("suppressions")
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--environment", "prod"])
        .env("TIDINGS_TEST_PROD_KEY", "prod-secret-key")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_command_line_imports_exports_checks_and_lifts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
url = "sqlite://{}"

[[environments]]
id = "prod"
secret_key = "prod-secret-key"

[suppressions]
default_country_code = "44"
"#,
            dir.path().join("t.db").display()
        ),
    )
    .unwrap();
    let csv = "recipient,channel,reason,created_at,note\n\
               \"Jane Doe\" <Jane@Example.com>,email,complaint,2024-01-02T03:04:05Z,\"from SES, by hand\"\n\
               07700 900000,sms,unsubscribed,2024-01-03T00:00:00Z,\n\
               ExponentPushToken[abc],push,permanentFailure,2024-01-04T00:00:00Z,DeviceNotRegistered\n";
    // One bad row: nothing is imported.
    let bad = format!("{csv}x@example.com,email,temporaryFailures,,\n");
    let (code, _, stderr) = cli(&config, &["import", "-"], Some(bad.as_bytes()));
    assert_ne!(code, 0);
    assert!(stderr.contains("row 5"), "{stderr}");
    let (code, _, stderr) = cli(&config, &["import", "-"], Some(csv.as_bytes()));
    assert_eq!(code, 0, "{stderr}");

    let (code, stdout, stderr) = cli(&config, &["check", "JANE@example.com"], None);
    assert_eq!(code, 0, "{stderr}");
    let entry: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(entry["reason"], "complaint");
    assert_eq!(entry["cause"]["note"], "from SES, by hand");
    let (code, _, _) = cli(&config, &["check", "nobody@example.com"], None);
    assert_eq!(code, 1);

    let (code, exported, stderr) = cli(&config, &["export"], None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        exported,
        "recipient,channel,reason,created_at,note\n\
         +447700900000,sms,unsubscribed,2024-01-03T00:00:00.000Z,\n\
         ExponentPushToken[abc],push,permanentFailure,2024-01-04T00:00:00.000Z,DeviceNotRegistered\n\
         jane@example.com,email,complaint,2024-01-02T03:04:05.000Z,\"from SES, by hand\"\n"
    );
    let (code, listed, _) = cli(&config, &["list", "--channel", "sms"], None);
    assert_eq!(code, 0);
    assert_eq!(listed.lines().count(), 1);

    let (code, _, stderr) = cli(
        &config,
        &["remove", "+44 7700 900000", "--note", "ok"],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(cli(&config, &["check", "+447700900000"], None).0, 1);
    let (code, _, stderr) = cli(&config, &["add", "a@example.com", "--reason", "nope"], None);
    assert_ne!(code, 0);
    assert!(stderr.contains("not a reason"), "{stderr}");
}

#[test]
fn the_command_line_leaves_a_running_servers_store_alone() {
    let server = Server::start_with(EXTRA);
    post(
        &server,
        "ses",
        "ses/sns-notification-bounce-complete.json",
        None,
    );
    let (code, stdout, stderr) = cli(&server.config(), &["check", "jane@example.com"], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("permanentFailure"), "{stdout}");
    let (code, _, stderr) = cli(&server.config(), &["add", "a@example.com"], None);
    assert_ne!(code, 0);
    assert!(stderr.contains("PUT or DELETE"), "{stderr}");
}
