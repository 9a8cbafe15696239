//! The read API over a real socket: events by cursor with every filter, messages, the live
//! stream and its resume, and authentication per environment.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Response, Server, request_to};

const SG: &str = "/v2/inbound-webhooks/delivery-providers/prod/sg";
const KEY: &str = "ApiKey prod-secret-key";

/// One SendGrid event of message `message`, unique by `n`.
fn sg_event(message: &str, event: &str, n: usize, email: &str) -> String {
    format!(
        r#"{{"email":"{email}","event":"{event}","sg_message_id":"{message}.filter0001","sg_event_id":"ev-{n}","timestamp":{},"smtp-id":"<{message}@example.com>"}}"#,
        1_700_000_000 + n
    )
}

fn post_events(server: &Server, events: &[String]) {
    post_events_to(&server.address, events);
}

fn post_events_to(address: &str, events: &[String]) {
    let body = format!("[{}]", events.join(","));
    let answer = request_to(
        address,
        "POST",
        SG,
        &[("Authorization", KEY), ("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

fn get(server: &Server, path: &str, key: &str) -> Response {
    server.request("GET", path, &[("Authorization", key)], b"")
}

fn get_json(server: &Server, path: &str) -> Value {
    let answer = get(server, path, KEY);
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    serde_json::from_slice(&answer.body).unwrap()
}

/// Walks `/events?{query}` page by page until `expected` events were seen, returning their
/// `(position, sender's event id from row)` in order.
fn walk(server: &Server, query: &str, expected: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = get_json(
            server,
            &format!("/v1/environments/prod/events?{query}{after}"),
        );
        let data = page["data"].as_array().unwrap();
        let next = page["next"].as_str().unwrap().to_owned();
        if data.is_empty() && seen.len() >= expected {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "saw {} of {expected}",
            seen.len()
        );
        seen.extend(data.iter().cloned());
        after = format!("&after={next}");
    }
}

#[test]
fn events_are_read_by_cursor_with_every_filter() {
    let server = Server::start();
    let mut events = Vec::new();
    for n in 0..30 {
        let kind = ["processed", "delivered", "bounce", "open", "click"][n % 5];
        let email = if kind == "bounce" {
            "bounced@example.com"
        } else {
            "a@example.com"
        };
        events.push(sg_event(&format!("msg-{}", n % 6), kind, n, email));
    }
    post_events(&server, &events[..10]);
    post_events(&server, &events[10..]);

    // Every event once, in order, pages of 4; absent values omitted, no row unless asked.
    let all = walk(&server, "limit=4", 30);
    assert_eq!(all.len(), 30);
    let positions: Vec<&str> = all
        .iter()
        .map(|e| e["position"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = positions.iter().copied().collect();
    assert_eq!(unique.len(), 30, "no event twice");
    let first = &all[0];
    assert_eq!(first["integration"], "sg");
    assert_eq!(first["provider"], "sendgrid");
    assert_eq!(first["channel"], "email");
    assert_eq!(first["providerEvent"], "processed");
    assert_eq!(first["recipient"], "a@example.com");
    assert_eq!(first["duplicates"], 0);
    assert!(first.get("row").is_none());
    assert!(first.get("failure").is_none());
    let dates: Vec<&str> = all.iter().map(|e| e["date"].as_str().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] < w[1]), "body order is kept");

    // Filters.
    assert_eq!(walk(&server, "status=bounced", 6).len(), 6);
    let bounced = walk(&server, "status=bounced&include=row", 6);
    assert!(
        bounced
            .iter()
            .all(|e| e["status"] == "bounced" && e["row"].is_string())
    );
    assert!(
        bounced
            .iter()
            .all(|e| e["recipient"] == "bounced@example.com")
    );
    assert_eq!(walk(&server, "status=opened,clicked", 12).len(), 12);
    assert_eq!(walk(&server, "status=opened&status=clicked", 12).len(), 12);
    assert_eq!(walk(&server, "recipient=bounced%40example.com", 6).len(), 6);
    assert_eq!(
        walk(&server, "provider=sendgrid&integration=sg", 30).len(),
        30
    );
    assert!(walk(&server, "provider=mailgun", 0).is_empty());
    assert!(walk(&server, "integration=sg-signed", 0).is_empty());
    let one_message = walk(&server, "message=msg-2.filter0001", 5);
    assert_eq!(one_message.len(), 5);
    let since = "2023-11-14T22:13:30Z"; // 1_700_000_010
    let until = "2023-11-14T22:13:40Z"; // 1_700_000_020
    let window = walk(&server, &format!("since={since}&until={until}"), 10);
    assert_eq!(window.len(), 10);

    // Bad parameters are 400 with the ingest error shape.
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "status=nope",
        "after=12",
        "since=yesterday",
    ] {
        let answer = get(&server, &format!("/v1/environments/prod/events?{bad}"), KEY);
        assert_eq!(answer.status, 400, "{bad}");
        let error: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(error["statusCode"], 400);
        assert!(error["message"].is_string());
    }
}

#[test]
fn messages_are_found_by_either_id_and_listed_by_status() {
    let server = Server::start();
    post_events(
        &server,
        &[
            sg_event("m1", "processed", 1, "a@example.com"),
            sg_event("m1", "delivered", 2, "a@example.com"),
            sg_event("m1", "open", 3, "a@example.com"),
            sg_event("m2", "bounce", 4, "b@example.com"),
        ],
    );
    let base = "/v1/environments/prod/integrations/sg/messages";
    let m1 = get_json(&server, &format!("{base}/m1.filter0001"));
    assert_eq!(m1["status"], "opened");
    assert_eq!(m1["integration"], "sg");
    assert_eq!(m1["events"], 3);
    assert!(m1["firstAt"]["delivered"].is_string());
    let timeline = m1["timeline"].as_array().unwrap();
    let statuses: Vec<&str> = timeline
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["sent", "delivered", "opened"]);
    // The provider's id finds it too (percent-encoded in the path).
    let external = m1["externalId"].as_str().unwrap().to_owned();
    let by_external = get_json(
        &server,
        &format!(
            "{base}/{}",
            external
                .replace('<', "%3C")
                .replace('>', "%3E")
                .replace('@', "%40")
        ),
    );
    assert_eq!(by_external["id"], m1["id"]);
    assert_eq!(get(&server, &format!("{base}/unknown"), KEY).status, 404);

    let found = get_json(&server, "/v1/environments/prod/messages?id=m2.filter0001");
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
    assert_eq!(found["data"][0]["status"], "bounced");
    let listed = get_json(&server, "/v1/environments/prod/messages?status=bounced");
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let next = listed["next"].as_str().unwrap();
    // Nothing changed since: the next page is empty; a message that changes again comes back.
    let after = format!("/v1/environments/prod/messages?status=bounced,opened&after={next}");
    assert!(
        get_json(&server, &after)["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    post_events(&server, &[sg_event("m1", "open", 9, "a@example.com")]);
    let again = get_json(&server, &after);
    assert_eq!(again["data"][0]["id"], m1["id"]);
}

#[test]
fn another_environment_or_no_key_is_401_and_reveals_nothing() {
    let server = Server::start();
    post_events(&server, &[sg_event("m1", "delivered", 1, "a@example.com")]);
    for path in [
        "/v1/environments/prod/events",
        "/v1/environments/prod/events/stream",
        "/v1/environments/prod/messages?id=m1.filter0001",
        "/v1/environments/prod/integrations/sg/messages/m1.filter0001",
        "/v1/environments/nowhere/events",
    ] {
        for key in [
            "",
            "ApiKey staging-secret-key",
            "ApiKey wrong",
            "Bearer prod-secret-key",
        ] {
            let answer = get(&server, path, key);
            assert_eq!(answer.status, 401, "{path} with `{key}`");
            assert!(
                !answer.text().contains("delivered"),
                "nothing of the events leaks"
            );
        }
    }
    // Staging's own key sees staging's (empty) events, never prod's.
    let staging = get(
        &server,
        "/v1/environments/staging/events",
        "ApiKey staging-secret-key",
    );
    assert_eq!(staging.status, 200);
    let body: Value = serde_json::from_slice(&staging.body).unwrap();
    assert!(body["data"].as_array().unwrap().is_empty());
    assert_eq!(
        server
            .request(
                "POST",
                "/v1/environments/prod/events",
                &[("Authorization", KEY)],
                b""
            )
            .status,
        405
    );
}

#[test]
fn a_cursor_walk_over_ten_thousand_events_sees_each_once_while_they_arrive() {
    let server = Server::start();
    let total = 10_000;
    let address = server.address.clone();
    let writer = std::thread::spawn(move || {
        for batch in 0..40 {
            let events: Vec<String> = (0..total / 40)
                .map(|i| {
                    let n = batch * (total / 40) + i;
                    sg_event(&format!("bulk-{n}"), "delivered", n, "a@example.com")
                })
                .collect();
            post_events_to(&address, &events);
        }
    });
    let seen = walk(&server, "limit=1000", total);
    writer.join().unwrap();
    let ids: BTreeSet<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(seen.len(), total, "each event once");
    assert_eq!(ids.len(), total);
}

/// A Server-Sent Events client on a raw socket.
struct Sse {
    reader: BufReader<TcpStream>,
}

/// One SSE message: its `id`, `event` and `data` fields.
#[derive(Debug)]
struct SseMessage {
    id: String,
    event: String,
    data: Value,
}

impl Sse {
    fn open(address: &str, path: &str, headers: &[(&str, &str)]) -> Sse {
        Sse::open_with_key(address, path, KEY, headers)
    }

    fn open_with_key(address: &str, path: &str, key: &str, headers: &[(&str, &str)]) -> Sse {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {key}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_lowercase()
                .contains("content-type: text/event-stream"),
            "{head}"
        );
        assert!(
            head.to_lowercase().contains("transfer-encoding: chunked"),
            "{head}"
        );
        Sse { reader }
    }

    /// The next chunk of the body.
    fn chunk(&mut self) -> String {
        let mut size = String::new();
        self.reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).unwrap();
        data.truncate(size);
        String::from_utf8(data).unwrap()
    }

    /// The next message, skipping comments (`: keep-alive`).
    fn next(&mut self) -> SseMessage {
        loop {
            let chunk = self.chunk();
            if chunk.starts_with(':') {
                continue;
            }
            let field = |name: &str| {
                chunk
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap()
                    .to_owned()
            };
            return SseMessage {
                id: field("id"),
                event: field("event"),
                data: serde_json::from_str(&field("data")).unwrap(),
            };
        }
    }
}

#[test]
fn the_stream_delivers_new_events_and_resumes_after_a_dropped_connection() {
    let server = Server::start();
    post_events(&server, &[sg_event("s1", "delivered", 1, "a@example.com")]);
    let path = "/v1/environments/prod/events/stream?status=delivered,bounced";
    let mut stream = Sse::open(&server.address, path, &[]);
    let first = stream.next();
    assert_eq!(first.event, "message.delivered");
    assert_eq!(first.data["position"], first.id.as_str());
    // New events arrive on the open stream; filtered ones do not.
    post_events(
        &server,
        &[
            sg_event("s2", "open", 2, "a@example.com"),
            sg_event("s2", "bounce", 3, "a@example.com"),
        ],
    );
    let second = stream.next();
    assert_eq!(second.event, "message.bounced");
    // The connection drops; events arrive meanwhile; the client resumes with Last-Event-ID.
    drop(stream);
    post_events(
        &server,
        &[
            sg_event("s3", "delivered", 4, "a@example.com"),
            sg_event("s4", "delivered", 5, "a@example.com"),
        ],
    );
    let mut resumed = Sse::open(&server.address, path, &[("Last-Event-ID", &second.id)]);
    let ids: Vec<String> = (0..2)
        .map(|_| resumed.next().data["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["s3.filter0001", "s4.filter0001"],
        "no gap and no repeat"
    );
    // `?after=` resumes the same way.
    let mut by_query = Sse::open(&server.address, &format!("{path}&after={}", first.id), &[]);
    assert_eq!(by_query.next().id, second.id);
}

#[test]
fn shutdown_ends_open_streams() {
    let mut server = Server::start();
    let _stream = Sse::open(&server.address, "/v1/environments/prod/events/stream", &[]);
    // Graceful shutdown finishes (exit 0, checked by restart) although a stream is open.
    server.restart();
}

/// Two instances on one PostgreSQL database: events ingested by the second reach a stream
/// open on the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instances_events_reach_a_stream_on_the_first() {
    let Some(base) = crate::scale_out::postgres_url("the cross-instance stream test") else {
        return;
    };
    let schema = crate::scale_out::fresh_schema(&base, "stream").await;
    let url = crate::scale_out::with_schema(&base, &schema);
    let dir = tempfile::tempdir().unwrap();
    let first = crate::scale_out::start(dir.path(), "first", &url);
    let second = crate::scale_out::start(dir.path(), "second", &url);
    let address = first.address.clone();
    let reader = std::thread::spawn(move || {
        let mut stream = Sse::open_with_key(
            &address,
            "/v1/environments/acme/events/stream",
            "ApiKey scale-out-secret",
            &[],
        );
        (0..3).map(|_| stream.next()).collect::<Vec<_>>()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events: Vec<String> = (0..3)
        .map(|n| sg_event(&format!("x{n}"), "delivered", n, "a@example.com"))
        .collect();
    crate::scale_out::deliver(&second.address, &format!("[{}]", events.join(","))).await;
    let received = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let ids: Vec<&str> = received
        .iter()
        .map(|m| m.data["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["x0.filter0001", "x1.filter0001", "x2.filter0001"]);
    drop((first, second));
    crate::scale_out::drop_schema(&base, &schema).await;
}

/// An integration that is `quiet` after ten minutes without an event.
const QUIET: &str = r#"
[[integrations]]
id = "sg-quiet"
environment = "prod"
provider = "sendgrid"
quiet_after_secs = 600
"#;

pub(crate) fn health<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no integration {id} in {answer}"))
}

#[test]
fn integrations_show_recent_activity_and_go_quiet() {
    let server = Server::start_with(QUIET);
    post_events(
        &server,
        &[
            sg_event("h1", "delivered", 1, "a@example.com"),
            sg_event("h2", "delivered", 2, "b@example.com"),
            sg_event("h3", "bounce", 3, "c@example.com"),
        ],
    );
    // A provider retry of one of them: a repeat, not a new event.
    post_events(&server, &[sg_event("h1", "delivered", 1, "a@example.com")]);
    let answer = request_to(
        &server.address,
        "POST",
        "/v2/inbound-webhooks/delivery-providers/prod/sg-quiet",
        &[("Authorization", KEY), ("Content-Type", "application/json")],
        format!("[{}]", sg_event("q1", "delivered", 9, "q@example.com")).as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());

    let now = get_json(&server, "/v1/environments/prod/integrations");
    let sg = health(&now, "sg");
    assert_eq!(sg["provider"], "sendgrid");
    assert_eq!(sg["state"], "ok");
    assert!(sg["lastEventAt"].is_string(), "{sg}");
    for window in ["lastHour", "lastDay"] {
        assert_eq!(sg[window]["events"], 3, "{window}: {sg}");
        assert_eq!(sg[window]["statuses"]["delivered"], 2, "{sg}");
        assert_eq!(sg[window]["statuses"]["bounced"], 1, "{sg}");
    }
    assert_eq!(sg["lastDay"]["duplicates"], 1, "{sg}");
    assert_eq!(health(&now, "sg-quiet")["state"], "ok");
    // An integration that received nothing has no last event and zero counts.
    let mg = health(&now, "mg");
    assert!(mg.get("lastEventAt").is_none(), "{mg}");
    assert_eq!(mg["lastDay"]["events"], 0);
    // Only this environment's integrations.
    let ids: BTreeSet<&str> = now["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains("sg2"), "{ids:?}");

    // Two hours on: the hour is empty, the day still counts, the watched integration is quiet.
    let later = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let then = get_json(
        &server,
        &format!("/v1/environments/prod/integrations?at={later}"),
    );
    let sg = health(&then, "sg");
    assert_eq!(sg["lastHour"]["events"], 0, "{sg}");
    assert_eq!(sg["lastDay"]["events"], 3, "{sg}");
    assert_eq!(sg["state"], "ok", "no quiet rule: never quiet");
    assert_eq!(health(&then, "sg-quiet")["state"], "quiet");
    // Two days on, nothing is in the window.
    let much_later = (chrono::Utc::now() + chrono::Duration::days(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let gone = get_json(
        &server,
        &format!("/v1/environments/prod/integrations?at={much_later}"),
    );
    assert_eq!(health(&gone, "sg")["lastDay"]["events"], 0);

    // Another environment's key, or a malformed time.
    let other = get(
        &server,
        "/v1/environments/prod/integrations",
        "ApiKey staging-secret-key",
    );
    assert_eq!(other.status, 401);
    assert_eq!(
        get(
            &server,
            "/v1/environments/prod/integrations?at=yesterday",
            KEY
        )
        .status,
        400
    );
}

#[test]
fn after_latest_starts_at_what_is_stored_from_now_on() {
    let server = Server::start();
    post_events(&server, &[sg_event("old", "delivered", 1, "a@example.com")]);
    let page = get_json(&server, "/v1/environments/prod/events?after=latest");
    assert_eq!(page["data"], serde_json::json!([]), "{page}");
    let next = page["next"].as_str().unwrap().to_owned();
    post_events(&server, &[sg_event("new", "delivered", 2, "b@example.com")]);
    let seen = walk(&server, "", 2);
    assert_eq!(seen.len(), 2);
    let page = get_json(
        &server,
        &format!("/v1/environments/prod/events?after={next}"),
    );
    let recipients: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(
        recipients,
        ["b@example.com"],
        "only the event stored after `latest`"
    );
}

#[test]
fn the_dashboard_is_served_with_a_strict_policy() {
    let server = Server::start();
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(page.text().contains("/dashboard/app.js"));
    // No inline script: every script is a file of this server.
    assert!(
        !page.text().contains("<script>"),
        "inline script in the page"
    );
    for (asset, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let answer = server.get(&format!("/dashboard/{asset}"));
        assert_eq!(answer.status, 200, "{asset}");
        assert!(answer.header("content-type").unwrap().starts_with(kind));
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(server.get("/dashboard/../tidings.toml").status, 404);
    assert_eq!(server.get("/dashboard/secrets").status, 404);
}

#[test]
fn a_quiet_integration_is_a_metric_until_events_arrive_again() {
    let server = Server::start_with(
        r#"
[[integrations]]
id = "sg-watched"
environment = "prod"
provider = "sendgrid"
quiet_after_secs = 4
"#,
    );
    let gauge = r#"tidings_integration_quiet{environment="prod",integration="sg-watched"}"#;
    let wait_for = |value: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let metrics = server.get("/metrics").text();
            if metrics.contains(&format!("{gauge} {value}")) {
                return;
            }
            assert!(Instant::now() < deadline, "never {value}: {metrics}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Nothing received yet: quiet.
    wait_for("1");
    let answer = request_to(
        &server.address,
        "POST",
        "/v2/inbound-webhooks/delivery-providers/prod/sg-watched",
        &[("Authorization", KEY), ("Content-Type", "application/json")],
        format!("[{}]", sg_event("w1", "delivered", 1, "w@example.com")).as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    wait_for("0");
    // Integrations without the setting are not watched.
    assert!(
        !server
            .get("/metrics")
            .text()
            .contains(r#"integration="sg"}"#)
    );
}
