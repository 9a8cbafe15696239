//! `tidings reparse` on raw requests stored as an older mapping left them: the events it
//! ignored or got wrong are stored and folded, a GET receipt is read again from its stored URL,
//! and a second run changes nothing.

use serde_json::Value;
use tidings_core::{RawRequest, Status, registry};
use tidings_providers as _;
use tidings_store::{Admission, Ingest, Store, StoreOptions};

use crate::get_receipts::{INGEST, PUBLIC, fixture_query, integrations, messagebird_jwt};
use crate::support::{self, Server};

const SG: &str = "/v2/inbound-webhooks/delivery-providers/prod/sg";
const PROD_KEY: &str = "ApiKey prod-secret-key";

fn reparse(server: &Server, args: &[&str]) -> Value {
    let mut all = vec!["reparse", "--json"];
    all.extend_from_slice(args);
    let text = server.cli_text(&all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Writes a raw request the way a mapping that ignored most of the batch would have: its
/// body is the real SendGrid batch, its one event has the wrong status.
fn store_as_an_older_mapping_would(server: &Server, body: &[u8]) {
    let headers = http::HeaderMap::new();
    let received_at = chrono::Utc::now();
    let parsed = registry()
        .get("sendgrid")
        .unwrap()
        .read(&RawRequest {
            method: "POST",
            body,
            content_type: Some("application/json"),
            headers: &headers,
            url: None,
            received_at,
        })
        .unwrap();
    let mut wrong = parsed.events.into_iter().next().unwrap();
    assert_eq!(wrong.body.status, Status::Sent);
    wrong.body.status = Status::Bounced;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(&server.store_url(), StoreOptions::default())
            .await
            .unwrap();
        store
            .ingest(Ingest {
                environment_id: "staging".into(),
                integration_id: "sg2".into(),
                provider: "sendgrid".into(),
                received_at,
                content_type: Some("application/json".into()),
                method: "POST".into(),
                authentication: "api_key".into(),
                url: "/v2/inbound-webhooks/delivery-providers/staging/sg2".into(),
                headers_json: "{}".into(),
                body: body.to_vec(),
                body_hash: b"older-mapping".to_vec(),
                nonce: None,
                events: vec![wrong],
                ignored_json: "[]".into(),
                idempotency: None,
                admission: Admission::new(),
                feeds_suppressions: false,
            })
            .await
            .unwrap();
    });
}

#[test]
fn reparse_stores_and_folds_what_an_older_mapping_missed_and_runs_once() {
    let mut server = Server::start_with(&integrations());
    // Stored by today's parsers: a SendGrid batch and a MessageBird GET receipt.
    let body = std::fs::read(support::fixture("sendgrid/docs-batch-all-event-types.json")).unwrap();
    let response = server.post(
        SG,
        &[
            ("Authorization", PROD_KEY),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let query = fixture_query("messagebird/dlr-delivery-failed-get.meta.json");
    let path = format!("{INGEST}/mb?{query}");
    let jwt = messagebird_jwt(&format!("{PUBLIC}{path}"));
    let response = server.request("GET", &path, &[("MessageBird-Signature-JWT", &jwt)], b"");
    assert_eq!(response.status, 200, "{}", response.text());

    // A running server owns a SQLite store.
    let (ok, text) = server.cli_status(&["reparse"]);
    assert!(!ok, "{text}");
    assert!(text.contains("running server"), "{text}");

    server.stop();
    store_as_an_older_mapping_would(&server, &body);
    let status_in = |environment: &str| {
        let rows = server.cli(&[
            "messages",
            "--environment",
            environment,
            "--message",
            "sg_message_id",
        ]);
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0]["status"].as_str().unwrap().to_owned()
    };
    let prod = status_in("prod");
    assert_eq!(status_in("staging"), "bounced");

    // A dry run says what would change and writes nothing.
    let dry = reparse(&server, &["--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    let sg2 = &dry["integrations"]["staging/sg2"];
    assert_eq!(sg2["changed"]["bounced -> sent"], 1, "{dry}");
    assert_eq!(
        sg2["added"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        9,
        "{dry}"
    );
    assert_eq!(
        server.cli(&["events", "--environment", "staging"]).len(),
        1,
        "a dry run writes nothing"
    );
    // What today's parsers stored is unchanged, the GET receipt included (read from its URL).
    assert_eq!(dry["integrations"]["prod/sg"]["unchanged"], 10, "{dry}");
    assert_eq!(dry["integrations"]["prod/mb"]["unchanged"], 1, "{dry}");
    assert_eq!(dry["integrations"]["prod/mb"]["unparsable"], 0, "{dry}");

    let applied = reparse(&server, &[]);
    assert_eq!(applied["integrations"], dry["integrations"]);
    let events = server.cli(&["events", "--environment", "staging"]);
    assert_eq!(events.len(), 10);
    // Folded again from scratch: the wrong bounce is gone, the status is the batch's.
    assert_eq!(status_in("staging"), prod);

    // A second run changes nothing.
    let again = reparse(&server, &[]);
    for (name, changes) in again["integrations"].as_object().unwrap() {
        assert!(
            changes["added"].as_object().unwrap().is_empty()
                && changes["changed"].as_object().unwrap().is_empty(),
            "{name}: {changes}"
        );
    }
    assert_eq!(again["integrations"]["staging/sg2"]["unchanged"], 10);

    // Filters: one integration, and nothing since a time in the future.
    let one = reparse(&server, &["--integration", "mb"]);
    assert_eq!(one["requests"], 1, "{one}");
    let none = reparse(&server, &["--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(none["requests"], 0, "{none}");

    // The server starts again on the re-parsed store and serves the new events.
    server.start_again();
    let answer = server.request(
        "GET",
        "/v1/environments/staging/events?limit=100",
        &[("Authorization", "ApiKey staging-secret-key")],
        b"",
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let page: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 10, "{page}");
}
