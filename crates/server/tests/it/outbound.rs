//! Outbound delivery end to end: the real server pushes events to real local receivers (hyper
//! on a TcpListener) that fail at random, are down for a while, answer 429 with `Retry-After`,
//! or never answer. Each receiver checks every delivery's signature on receipt with the
//! independent Python `standardwebhooks` package (it refuses timestamps older than 5 minutes).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::support::{Server, request_to};

/// The endpoints' current secret, and the one being rotated out (both sign every request).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const SG: &str = "/v2/inbound-webhooks/delivery-providers/prod/sg";
const SG_STAGING: &str = "/v2/inbound-webhooks/delivery-providers/staging/sg2";

/// The independent verifier: one Python process reading a request per line.
struct Verifier {
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    child: Mutex<Child>,
}

const VERIFY: &str = r#"
import base64, json, sys
from standardwebhooks.webhooks import Webhook
for line in sys.stdin:
    r = json.loads(line)
    try:
        Webhook(r["secret"]).verify(base64.b64decode(r["body"]), r["headers"])
        print("ok", flush=True)
    except Exception as e:
        print("bad " + type(e).__name__, flush=True)
"#;

impl Verifier {
    /// The verifier, or `None` (a visible skip; a failure under CI) without the package.
    fn start() -> Option<Arc<Verifier>> {
        let importable = Command::new("python3")
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !importable {
            tidings_fixtures::optional::skip(
                "Signature checks with the standardwebhooks package",
                "python3 with `standardwebhooks` is missing",
                "python3 -m pip install standardwebhooks==1.3.0",
            );
            return None;
        }
        let mut child = Command::new("python3")
            .args(["-u", "-c", VERIFY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(Arc::new(Verifier {
            io: Mutex::new((stdin, stdout)),
            child: Mutex::new(child),
        }))
    }

    /// Whether the package accepts `body` with these headers under `secret`.
    fn verify(&self, secret: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
        let request = serde_json::json!({
            "secret": secret,
            "headers": headers,
            "body": crate::support::base64_bytes(body),
        });
        let mut io = self.io.lock().unwrap();
        writeln!(io.0, "{request}").unwrap();
        let mut answer = String::new();
        io.1.read_line(&mut answer).unwrap();
        answer.trim() == "ok"
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// 503 for about one request in three.
    Flaky,
    /// 429 with `Retry-After: 2` on each event's first attempt.
    TooMany,
    /// Holds each event's first attempt open past the endpoint's timeout.
    Silent,
    /// 200, or 400 while `refusing` is set.
    Strict,
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    body: Bytes,
    at: Instant,
    /// What it answered (0: nothing in time).
    answered: u16,
    /// `Some(true)` when the independent library accepted it and refused it tampered.
    verified: Option<bool>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn position(&self) -> String {
        self.json()["data"]["position"].as_str().unwrap().to_owned()
    }
}

struct Receiver {
    log: Arc<Mutex<Vec<Received>>>,
    refusing: Arc<AtomicBool>,
}

impl Receiver {
    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Positions answered with a 2xx.
    fn delivered(&self) -> BTreeSet<String> {
        self.received()
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(Received::position)
            .collect()
    }
}

/// Serves `behaviour` on `listener`, verifying every request with `verifier`.
fn receive(
    listener: tokio::net::TcpListener,
    behaviour: Behaviour,
    verifier: Option<Arc<Verifier>>,
) -> Receiver {
    let log = Arc::new(Mutex::new(Vec::<Received>::new()));
    let refusing = Arc::new(AtomicBool::new(behaviour == Behaviour::Strict));
    let counter = Arc::new(AtomicU64::new(0));
    let receiver = Receiver {
        log: Arc::clone(&log),
        refusing: Arc::clone(&refusing),
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, refusing, counter, verifier) = (
                Arc::clone(&log),
                Arc::clone(&refusing),
                Arc::clone(&counter),
                verifier.clone(),
            );
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (log, refusing, counter, verifier) = (
                            Arc::clone(&log),
                            Arc::clone(&refusing),
                            Arc::clone(&counter),
                            verifier.clone(),
                        );
                        async move {
                            let headers: BTreeMap<String, String> = request
                                .headers()
                                .iter()
                                .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap().to_owned())
                                })
                                .collect();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let verified = match verifier {
                                Some(verifier) => {
                                    let (headers, body) = (headers.clone(), body.clone());
                                    Some(
                                        tokio::task::spawn_blocking(move || {
                                            let mut tampered = body.to_vec();
                                            tampered.extend_from_slice(b" ");
                                            verifier.verify(SECRET, &headers, &body)
                                                && verifier.verify(OLD_SECRET, &headers, &body)
                                                && !verifier.verify(SECRET, &headers, &tampered)
                                        })
                                        .await
                                        .unwrap(),
                                    )
                                }
                                None => None,
                            };
                            let id = headers.get("webhook-id").cloned().unwrap_or_default();
                            let n = counter.fetch_add(1, Ordering::SeqCst);
                            let index;
                            let first;
                            {
                                let mut log = log.lock().unwrap();
                                first = !log.iter().any(|r| r.id == id);
                                index = log.len();
                                log.push(Received {
                                    id,
                                    body,
                                    at: Instant::now(),
                                    answered: 0,
                                    verified,
                                });
                            }
                            let mut response = hyper::Response::builder();
                            let status = match behaviour {
                                // A fixed pseudo-random pattern: some events fail several times.
                                Behaviour::Flaky
                                    if (n.wrapping_mul(2_654_435_761) >> 7) % 3 == 0 =>
                                {
                                    503
                                }
                                Behaviour::TooMany if first => {
                                    response = response.header("Retry-After", "2");
                                    429
                                }
                                Behaviour::Silent if first => {
                                    tokio::time::sleep(Duration::from_secs(4)).await;
                                    log.lock().unwrap()[index].answered = 0;
                                    return Ok::<_, std::convert::Infallible>(
                                        hyper::Response::new(Full::new(Bytes::new())),
                                    );
                                }
                                Behaviour::Strict if refusing.load(Ordering::SeqCst) => 400,
                                _ => 200,
                            };
                            log.lock().unwrap()[index].answered = status;
                            Ok(response
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"{\"seen\":true}")))
                                .unwrap())
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    receiver
}

fn endpoint(id: &str, address: SocketAddr, extra: &str) -> String {
    endpoint_in("prod", id, address, extra)
}

fn endpoint_in(environment: &str, id: &str, address: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[[endpoints]]
id = "{id}"
environment = "{environment}"
url = "http://{address}/hooks/{id}?token=not-for-logs"
secrets = ["{OLD_SECRET}", "{SECRET}"]
timeout_secs = 1
retry_schedule_secs = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
{extra}
"#
    )
}

fn sg_event(message: &str, event: &str, n: usize) -> String {
    format!(
        r#"{{"email":"r{n}@example.com","event":"{event}","sg_message_id":"{message}.filter0001","sg_event_id":"out-{n}","timestamp":{}}}"#,
        1_700_000_000 + n
    )
}

fn post(address: &str, path: &str, key: &str, events: &[String]) {
    let body = format!("[{}]", events.join(","));
    let answer = request_to(
        address,
        "POST",
        path,
        &[("Authorization", key), ("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// Waits until `done` holds, for at most `limit`.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// The properties every receiver must see: every expected event delivered, one `webhook-id`
/// per event kept across retries with the same bytes, signatures that verify, and (ordered)
/// the order of positions.
fn check(name: &str, receiver: &Receiver, expected: &BTreeSet<String>, ordered: bool) {
    let received = receiver.received();
    assert_eq!(
        &receiver.delivered(),
        expected,
        "{name}: every event, and only those"
    );
    let mut ids: BTreeMap<String, (String, Bytes)> = BTreeMap::new();
    for r in &received {
        let position = r.position();
        match ids.get(&position) {
            Some((id, body)) => {
                assert_eq!(id, &r.id, "{name}: webhook-id stable across retries");
                assert_eq!(body, &r.body, "{name}: every attempt sends the same bytes");
            }
            None => {
                ids.insert(position, (r.id.clone(), r.body.clone()));
            }
        }
        assert_ne!(
            r.verified,
            Some(false),
            "{name}: standardwebhooks rejects {r:?}"
        );
        let json = r.json();
        let status = json["data"]["status"].as_str().unwrap();
        assert_eq!(json["type"], format!("message.{status}"));
        assert!(json["timestamp"].is_string() && json["data"]["message"]["status"].is_string());
    }
    let distinct: BTreeSet<&String> = ids.values().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), expected.len(), "{name}: one id per event");
    if ordered {
        let positions: Vec<tidings_store::Cursor> = received
            .iter()
            .map(|r| r.position().parse().unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] <= w[1]),
            "{name}: max_in_flight = 1 keeps the order: {positions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_reaches_flaky_slow_limited_and_returning_endpoints() {
    let verifier = Verifier::start();
    let flaky_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let limited_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The returning receiver's port: nothing listens there for the first seconds.
    let down_address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = [
        endpoint(
            "flaky",
            flaky_listener.local_addr().unwrap(),
            "max_in_flight = 1",
        ),
        endpoint("limited", limited_listener.local_addr().unwrap(), ""),
        endpoint(
            "silent",
            silent_listener.local_addr().unwrap(),
            "max_in_flight = 4",
        ),
        endpoint(
            "returning",
            down_address,
            "max_in_flight = 1\nstart = \"beginning\"",
        ),
    ]
    .concat();
    let server = Server::start_with(&config);
    let flaky = receive(flaky_listener, Behaviour::Flaky, verifier.clone());
    let limited = receive(limited_listener, Behaviour::TooMany, verifier.clone());
    let silent = receive(silent_listener, Behaviour::Silent, verifier.clone());

    // Message m0 is delivered, then opened: each event carries the message as of itself.
    let mut events = vec![sg_event("m0", "delivered", 0), sg_event("m0", "open", 1)];
    events.extend((2..12).map(|n| sg_event(&format!("m{n}"), "delivered", n)));
    for chunk in events.chunks(4) {
        post(&server.address, SG, "ApiKey prod-secret-key", chunk);
    }
    post(
        &server.address,
        SG_STAGING,
        "ApiKey staging-secret-key",
        &[sg_event("other", "delivered", 99)],
    );
    let expected: BTreeSet<String> = server
        .cli(&["events", "--environment", "prod"])
        .iter()
        .map(|e| e["position"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 12);

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        wait_until(Duration::from_secs(1), || true).await,
        "the returning receiver is still down"
    );
    let returning = receive(
        tokio::net::TcpListener::bind(down_address).await.unwrap(),
        Behaviour::Flaky,
        verifier.clone(),
    );
    let receivers = [
        ("flaky", &flaky, true),
        ("limited", &limited, false),
        ("silent", &silent, false),
        ("returning", &returning, true),
    ];
    let all_arrived = wait_until(Duration::from_secs(90), || {
        receivers.iter().all(|(_, r, _)| r.delivered() == expected)
    })
    .await;
    for (name, receiver, ordered) in receivers {
        assert!(
            all_arrived || receiver.delivered() == expected,
            "{name}: {} of 12 delivered",
            receiver.delivered().len()
        );
        check(name, receiver, &expected, ordered);
    }
    if verifier.is_some() {
        assert!(
            flaky.received().iter().all(|r| r.verified == Some(true)),
            "every delivery was checked"
        );
    }

    // Every body is the documented webhook payload, and nothing more.
    let bodies: Vec<Value> = receivers
        .iter()
        .flat_map(|(_, r, _)| r.received())
        .map(|r| r.json())
        .collect();
    matches_the_document(&bodies);

    // Failures really happened and were retried.
    let failed = |r: &Receiver| r.received().iter().filter(|r| r.answered != 200).count();
    assert!(
        failed(&flaky) > 0,
        "the flaky receiver failed some attempts"
    );
    assert_eq!(failed(&limited), 12, "each event was limited once");
    assert_eq!(failed(&silent), 12, "each event timed out once");
    // Retry-After: 2 was honoured although the schedule says at most 1 s.
    let limited_log = limited.received();
    for first in limited_log.iter().filter(|r| r.answered == 429) {
        let retry = limited_log
            .iter()
            .find(|r| r.id == first.id && r.answered == 200)
            .unwrap();
        assert!(
            retry.at.duration_since(first.at) >= Duration::from_millis(1900),
            "retried after {:?}",
            retry.at.duration_since(first.at)
        );
    }
    // data.message is the message as of each event.
    let m0: Vec<Value> = flaky
        .received()
        .iter()
        .map(Received::json)
        .filter(|j| j["data"]["id"] == "m0.filter0001")
        .collect();
    let delivered = m0
        .iter()
        .find(|j| j["type"] == "message.delivered")
        .unwrap();
    let opened = m0.iter().find(|j| j["type"] == "message.opened").unwrap();
    assert_eq!(delivered["data"]["message"]["status"], "delivered");
    assert_eq!(delivered["data"]["message"]["events"], 1);
    assert_eq!(opened["data"]["message"]["status"], "opened");
    assert_eq!(opened["data"]["message"]["events"], 2);
    assert!(
        delivered["data"].get("row").is_none(),
        "row only when asked"
    );

    // The stored progress catches up: no lag, nothing waiting, every event counted once.
    let caught_up = wait_until(Duration::from_secs(10), || {
        let endpoints = server.cli(&["endpoints"]);
        endpoints.len() == 4
            && endpoints.iter().all(|e| {
                e["lagEvents"] == 0 && e["retrying"] == 0 && e["dead"] == 0 && e["delivered"] == 12
            })
    })
    .await;
    assert!(caught_up, "{:?}", server.cli(&["endpoints"]));
    let metrics = server.get("/metrics").text();
    for line in [
        "tidings_outbound_deliveries_total{endpoint=\"flaky\",result=\"delivered\"} 12",
        "tidings_outbound_deliveries_total{endpoint=\"silent\",result=\"retry\"} 12",
        "tidings_outbound_attempt_seconds_count{endpoint=\"limited\"} 24",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deliveries_are_dead_lettered_listed_and_redriven() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = endpoint("strict", listener.local_addr().unwrap(), "");
    let server = Server::start_with(&config);
    let strict = receive(listener, Behaviour::Strict, Verifier::start());
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let events: Vec<String> = (0..3)
        .map(|n| sg_event(&format!("d{n}"), "bounce", n))
        .collect();
    post(&server.address, SG, "ApiKey prod-secret-key", &events);

    // A 400 is not retried: each event is dead-lettered with the answer.
    let dead = wait_until(Duration::from_secs(20), || {
        server
            .cli(&["deliveries", "--endpoint", "strict", "--failed"])
            .len()
            == 3
    })
    .await;
    assert!(dead, "{:?}", server.cli(&["deliveries"]));
    let rows = server.cli(&["deliveries", "--failed"]);
    for row in &rows {
        assert_eq!(row["state"], "dead");
        assert_eq!(row["attempts"], 1);
        assert_eq!(row["lastStatus"], 400);
        assert!(row["lastAnswer"].as_str().unwrap().starts_with("HTTP 400"));
        assert!(row.get("nextAttemptAt").is_none());
    }
    assert_eq!(strict.received().len(), 3, "no retry of a 400");
    let endpoints = server.cli(&["endpoints"]);
    assert_eq!(endpoints[0]["dead"], 3);
    assert!(endpoints[0]["lastError"].as_str().unwrap().contains("400"));

    // The receiver is fixed; the dead letters are sent again, with the same ids.
    strict.refusing.store(false, Ordering::SeqCst);
    let output = server.cli_text(&["redrive", "--endpoint", "strict", "--dead"]);
    assert!(output.contains("3 dead-lettered"), "{output}");
    let redriven = wait_until(Duration::from_secs(20), || strict.delivered().len() == 3).await;
    assert!(redriven);
    assert!(
        wait_until(Duration::from_secs(10), || server
            .cli(&["deliveries"])
            .is_empty())
        .await,
        "delivered rows are gone"
    );
    let ids =
        |r: &Receiver| -> BTreeSet<String> { r.received().iter().map(|r| r.id.clone()).collect() };
    assert_eq!(ids(&strict).len(), 3);

    // A replay of a time range sends everything received since then again, same ids.
    let before = strict.received().len();
    let output = server.cli_text(&[
        "redrive",
        "--endpoint",
        "strict",
        "--since",
        &started.to_rfc3339(),
    ]);
    assert!(output.contains("rewound"), "{output}");
    let replayed = wait_until(Duration::from_secs(20), || {
        strict.received().len() == before + 3
    })
    .await;
    assert!(replayed, "{} after {before}", strict.received().len());
    assert_eq!(
        ids(&strict).len(),
        3,
        "a replay keeps each event's webhook-id"
    );
    let unknown = server.cli_status(&["redrive", "--endpoint", "nope", "--dead"]);
    assert!(
        !unknown.0 && unknown.1.contains("no endpoint `nope`"),
        "{}",
        unknown.1
    );
}

/// Validates payloads against the OpenAPI document's webhook request body, closed (see
/// `openapi.rs`): an undocumented field fails too.
fn matches_the_document(bodies: &[Value]) {
    const CHECK: &str = r##"
with open(sys.argv[2]) as f:
    bodies = json.load(f)
item = doc["components"]["pathItems"]["MessageEvent"]["post"]
schema = closed(inline(item["requestBody"]["content"]["application/json"]["schema"]))
failures = []
for body in bodies:
    for error in OAS31Validator(schema, format_checker=oas31_format_checker).iter_errors(body):
        failures.append(f"{error.message} at {list(error.absolute_path)}")
    if body["type"] not in doc["webhooks"]:
        failures.append(f"type {body['type']} is not a documented webhook")
print("\n".join(sorted(set(failures))), file=sys.stderr)
sys.exit(1 if failures else 0)
"##;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bodies.json");
    std::fs::write(&path, serde_json::to_vec(bodies).unwrap()).unwrap();
    let script = format!("{}{CHECK}", crate::openapi::SCHEMA_HELPERS);
    let Some(output) = crate::openapi::python(
        "openapi_schema_validator",
        &script,
        &[&crate::openapi::ours_path(), &path],
    ) else {
        return;
    };
    assert!(
        output.status.success(),
        "payloads that differ from the document:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two instances on one PostgreSQL database share an endpoint: each event reaches it (through
/// whichever instance holds the head, retries claimed by either), and when the instances are
/// killed one after the other the survivor takes the head over once the lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_an_endpoint_and_a_killed_one_is_taken_over() {
    use crate::scale_out::{deliver, drop_schema, fresh_schema, start_with, with_schema};
    let Some(base) = tidings_fixtures::optional::postgres_url() else {
        return;
    };
    let schema = fresh_schema(&base, "outbound").await;
    let url = with_schema(&base, &schema);
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let extra = endpoint_in(
        "acme",
        "shared",
        listener.local_addr().unwrap(),
        "max_in_flight = 4",
    );
    let receiver = receive(listener, Behaviour::Flaky, Verifier::start());
    let a = start_with(dir.path(), "a", &url, &extra);
    let b = start_with(dir.path(), "b", &url, &extra);
    for n in 0..20 {
        let body = format!("[{}]", sg_event(&format!("s{n}"), "delivered", n));
        deliver(if n % 2 == 0 { &a.address } else { &b.address }, &body).await;
    }
    // Whichever held the head dies; the other carries on with what follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(a);
    for n in 20..30 {
        let body = format!("[{}]", sg_event(&format!("s{n}"), "delivered", n));
        deliver(&b.address, &body).await;
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let expected: BTreeSet<String> = client
        .query("SELECT xid::text || '.' || seq FROM events", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(expected.len(), 30);
    let arrived = wait_until(Duration::from_secs(90), || receiver.delivered() == expected).await;
    assert!(
        arrived,
        "{} of 30 delivered; logs in {}",
        receiver.delivered().len(),
        dir.path().display()
    );
    check("shared", &receiver, &expected, false);
    drop(b);
    drop_schema(&base, &schema).await;
}

/// At info level the log says what failed, and never a secret, the URL's query, the payload
/// or the receiver's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_secret_payload_or_answer() {
    use std::io::Read as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
[store]
url = "sqlite://{}"
[[environments]]
id = "prod"
secret_key = "prod-secret-key"
[[integrations]]
id = "sg"
environment = "prod"
provider = "sendgrid"
"#,
            dir.path().join("t.db").display()
        ) + &endpoint("logged", listener.local_addr().unwrap(), ""),
    )
    .unwrap();
    let receiver = receive(listener, Behaviour::Strict, None);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("TIDINGS_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let event = r#"{"email":"leak-check@example.com","event":"bounce","sg_message_id":"leak.filter0001","sg_event_id":"leak-1","timestamp":1700000000,"reason":"mailbox full"}"#;
    post(&address, SG, "ApiKey prod-secret-key", &[event.to_owned()]);
    assert!(wait_until(Duration::from_secs(20), || !receiver.received().is_empty()).await);
    // The failed attempt is recorded (and logged) right after the answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    assert!(
        stderr.contains("Outbound delivery attempt failed") && stderr.contains("logged"),
        "{stderr}"
    );
    for secret in [
        &SECRET[6..],
        &OLD_SECRET[6..],
        "not-for-logs",
        "leak-check@example.com",
        "mailbox full",
        "seen",
    ] {
        assert!(!stderr.contains(secret), "`{secret}` in the log:\n{stderr}");
    }
}
