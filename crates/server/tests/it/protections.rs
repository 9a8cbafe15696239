//! Protections of the second hardening round against the real `tidings` binary: h2c deadlines
//! and stream caps, early authentication, bounded body reading and the other limits of
//! docs/reliability.md. Every limit is small here so each test takes seconds.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::hardening::{SECRET, Server};

/// The HTTP/2 connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Small limits: a 1 s header deadline, a 2 s h2c idle deadline.
const H2_LIMITS: &str = "max_body_bytes = 4096
header_timeout_secs = 1
request_timeout_secs = 5
max_connections = 256
max_in_flight = 8
h2_idle_timeout_secs = 2
h2_keep_alive_secs = 0";

/// One HTTP/2 frame: 9-byte header and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![length[1], length[2], length[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads (and drops) what the server sends until it closes the connection: how long that took,
/// or `None` when it was still open after `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < wait {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[test]
fn h2c_connections_that_never_complete_a_request_are_closed() {
    let server = Server::start_with(H2_LIMITS);
    let settings = frame(0x4, 0, 0, &[]);
    // HEADERS on stream 1 (`:method GET`, indexed) without END_HEADERS: a request head that
    // never ends.
    let open_headers = frame(0x1, 0, 1, &[0x82]);
    let stalls: Vec<(&str, Vec<u8>)> = vec![
        ("the preface only", PREFACE.to_vec()),
        (
            "the preface and an empty SETTINGS frame",
            [PREFACE, &settings].concat(),
        ),
        (
            "a HEADERS frame without END_HEADERS",
            [PREFACE, &settings, &open_headers].concat(),
        ),
    ];
    let mut streams: Vec<(&str, TcpStream)> = stalls
        .into_iter()
        .map(|(what, bytes)| {
            let mut stream = server.connect();
            stream.write_all(&bytes).unwrap();
            (what, stream)
        })
        .collect();
    for (what, stream) in &mut streams {
        // The header deadline (1 s), then GOAWAY and at most 1 s more; generous for a busy
        // machine, and far short of "never".
        let closed = closed_within(stream, Duration::from_secs(8));
        assert!(closed.is_some(), "{what}: still open after 8 s");
    }
    assert_eq!(server.post_event(), 200);
}

/// A GET over an h2c connection made with hyper's client.
async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    authority: &str,
    path: &str,
) -> hyper::Response<hyper::body::Incoming> {
    let request = hyper::Request::get(format!("http://{authority}{path}"))
        .header("authorization", format!("ApiKey {SECRET}"))
        .body(Empty::new())
        .unwrap();
    sender.send_request(request).await.unwrap()
}

#[test]
fn an_h2c_connection_is_kept_while_an_event_stream_is_open_and_closed_once_idle() {
    let server = Server::start_with(H2_LIMITS);
    let authority = server.addr.to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let (ended_tx, mut ended) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = connection.await;
            let _ = ended_tx.send(());
        });
        let stream = h2_get(
            &mut sender,
            &authority,
            "/v1/environments/test/events/stream",
        )
        .await;
        assert_eq!(stream.status(), 200);
        // Twice the idle deadline with only the event stream open: the connection stays.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let health = h2_get(&mut sender, &authority, "/healthz").await;
        assert_eq!(
            health.status(),
            200,
            "the connection was closed under an open stream"
        );
        health.into_body().collect().await.unwrap();
        drop(stream);
        // Now idle: closed after the idle deadline (2 s), GOAWAY first.
        let closed = tokio::time::timeout(Duration::from_secs(8), &mut ended).await;
        assert!(
            closed.is_ok(),
            "an idle h2c connection was still open after 8 s"
        );
    });
    assert_eq!(server.post_event(), 200);
}

const PATH: &str = "/v2/inbound-webhooks/delivery-providers/test/sendgrid";

/// Sends `bytes` and reads for at most `wait`: the status code of the answer (0 for none) and
/// how long it took.
fn exchange(server: &Server, bytes: &[u8], wait: Duration) -> (u16, Duration) {
    let mut stream = server.connect();
    stream.set_read_timeout(Some(wait)).unwrap();
    let started = Instant::now();
    stream.write_all(bytes).unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

/// A request head announcing `length` bytes of JSON body, with `auth` as extra header lines.
fn head(length: usize, auth: &str) -> String {
    format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n{auth}\r\n"
    )
}

#[test]
fn requests_that_cannot_authenticate_are_refused_before_their_body_is_read() {
    let server = Server::start_with(
        "max_body_bytes = 4096
header_timeout_secs = 1
request_timeout_secs = 10
body_timeout_secs = 10
max_in_flight = 2",
    );
    // The body never comes: only an answer decided from the headers can arrive in time.
    for (auth, what) in [
        ("", "no credentials"),
        ("Authorization: ApiKey not-the-key\r\n", "a wrong API key"),
        (
            "Authorization: Basic dXNlcjpwYXNzd29yZA==\r\n",
            "Basic credentials on an integration without any",
        ),
    ] {
        let (status, took) = exchange(&server, head(1000, auth).as_bytes(), Duration::from_secs(3));
        assert_eq!(status, 401, "{what}: no 401 within 3 s");
        assert!(took < Duration::from_secs(3), "{what}: {took:?}");
    }
    // Such requests take no in-flight slot: more of them than max_in_flight, held open, do not
    // keep a real webhook out.
    let held: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(head(1000, "").as_bytes()).unwrap();
            stream
        })
        .collect();
    assert_eq!(server.post_event(), 200);
    drop(held);
}

#[test]
fn a_body_that_trickles_is_cut_off_by_the_body_deadline() {
    let server = Server::start_with(
        "max_body_bytes = 4096
header_timeout_secs = 1
request_timeout_secs = 20
body_timeout_secs = 1
max_in_flight = 2",
    );
    let auth = format!("Authorization: ApiKey {SECRET}\r\n");
    let mut bytes = head(100, &auth).into_bytes();
    bytes.extend_from_slice(b"[{\"event\"");
    let (status, took) = exchange(&server, &bytes, Duration::from_secs(8));
    assert_eq!(status, 408, "took {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "answered after {took:?}: the request deadline, not the body's"
    );
    assert_eq!(server.post_event(), 200);
}

#[test]
fn h2c_connections_announce_the_stream_cap() {
    let server = Server::start_with(&format!("{H2_LIMITS}\nh2_max_streams = 3"));
    let mut stream = server.connect();
    stream
        .write_all(&[PREFACE, &frame(0x4, 0, 0, &[])].concat())
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // The server's first frame is its SETTINGS: 6-byte (identifier, value) pairs.
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[3], 0x4, "not a SETTINGS frame");
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).unwrap();
    let streams = payload.chunks_exact(6).find_map(|pair| {
        (u16::from_be_bytes([pair[0], pair[1]]) == 0x3)
            .then(|| u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]))
    });
    assert_eq!(streams, Some(3), "SETTINGS_MAX_CONCURRENT_STREAMS");
}

#[test]
fn a_mailgun_signature_replayed_with_another_body_is_refused_across_restarts() {
    let mut server = crate::support::Server::start();
    let path = "/v2/inbound-webhooks/delivery-providers/prod/mg";
    let json = [("Content-Type", "application/json")];
    let genuine = crate::support::sign_mailgun(crate::support::unix_now(), "replayed-token");
    let response = server.post(path, &json, genuine.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    // Mailgun's own retry: the same body, answered 200 again.
    assert_eq!(server.post(path, &json, genuine.as_bytes()).status, 200);
    // The signature (timestamp + token) with another event: a replay.
    let forged = genuine.replace("\"event\":\"delivered\"", "\"event\":\"failed\"");
    assert_ne!(forged, genuine);
    let response = server.post(path, &json, forged.as_bytes());
    assert_eq!(response.status, 401, "{}", response.text());
    // Remembered in the database: a restart does not forget it.
    server.restart();
    assert_eq!(server.post(path, &json, forged.as_bytes()).status, 401);
    assert_eq!(server.post(path, &json, genuine.as_bytes()).status, 200);
    let statuses: Vec<String> = server
        .events()
        .iter()
        .map(|e| e["status"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(statuses, ["delivered"], "only the genuine event is stored");
}

#[test]
fn signed_timestamps_have_a_default_window_covering_the_retry_horizon() {
    let key = crate::support::SENDGRID_KEY;
    let server = crate::support::Server::start_with(&format!(
        r#"
[[integrations]]
id = "sg-default-window"
environment = "prod"
provider = "sendgrid"
signing_key = "{key}"
"#
    ));
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(crate::support::fixture(
            "sendgrid/signed-dropped-official-vector.meta.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let header = |name: &str| meta["headers"][name].as_str().unwrap().to_owned();
    let signature = header("X-Twilio-Email-Event-Webhook-Signature");
    let timestamp = header("X-Twilio-Email-Event-Webhook-Timestamp");
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Twilio-Email-Event-Webhook-Signature", signature.as_str()),
        ("X-Twilio-Email-Event-Webhook-Timestamp", timestamp.as_str()),
    ];
    let body = std::fs::read(crate::support::fixture(
        "sendgrid/signed-dropped-official-vector.txt",
    ))
    .unwrap();
    // A genuine signature made years ago: a replay, refused by default.
    let path = "/v2/inbound-webhooks/delivery-providers/prod/sg-default-window";
    let response = server.post(path, &headers, &body);
    assert_eq!(response.status, 401, "{}", response.text());
    // The integration that widened its window accepts it.
    let wide = "/v2/inbound-webhooks/delivery-providers/prod/sg-signed";
    assert_eq!(server.post(wide, &headers, &body).status, 200);
}

#[test]
fn twilio_retries_with_new_idempotency_tokens_are_one_event() {
    let server = crate::support::Server::start_with(
        r#"
[[integrations]]
id = "tw"
environment = "prod"
provider = "twilio"
"#,
    );
    let body = std::fs::read(crate::support::fixture("twilio/status-delivered.form")).unwrap();
    let path = "/v2/inbound-webhooks/delivery-providers/prod/tw";
    for token in ["token-one", "token-two", "token-three"] {
        let response = server.post(
            path,
            &[
                ("Authorization", "ApiKey prod-secret-key"),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("I-Twilio-Idempotency-Token", token),
            ],
            &body,
        );
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let events = server.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["duplicates"], 2);
}

/// A server on a fresh PostgreSQL schema with `limits`; its `/readyz` and webhook path.
fn postgres_server(
    dir: &std::path::Path,
    url: &str,
    limits: &str,
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let config = dir.join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"

[store]
url = "{url}"
pool_size = 4

[log]
level = "error"

[limits]
{limits}

[[environments]]
id = "test"
secret_key = "{SECRET}"

[[integrations]]
id = "sendgrid"
environment = "test"
provider = "sendgrid"
"#
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("TIDINGS_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let address = loop {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_means_a_write_would_succeed_soon() {
    let Some(base) = tidings_fixtures::optional::postgres_url() else {
        return;
    };
    let schema = crate::scale_out::fresh_schema(&base, "readyz").await;
    let url = crate::scale_out::with_schema(&base, &schema);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = postgres_server(
        dir.path(),
        &url,
        "request_timeout_secs = 20\nready_max_queue_age_ms = 300\nready_failure_window_secs = 30",
    );
    let get = |path: &'static str| {
        let address = address.clone();
        move || crate::support::request_to(&address, "GET", path, &[], b"").status
    };
    let readyz = || tokio::task::spawn_blocking(get("/readyz"));
    let post = |n: usize| {
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            let body = format!(
                r#"[{{"email":"a@example.com","timestamp":1700000000,"event":"delivered","sg_message_id":"m{n}.filter","sg_event_id":"e{n}"}}]"#
            );
            crate::support::request_to(
                &address,
                "POST",
                "/v2/inbound-webhooks/delivery-providers/test/sendgrid",
                &[
                    ("Authorization", &format!("ApiKey {SECRET}")),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            )
            .status
        })
    };
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    assert_eq!(readyz().await.unwrap(), 200);
    assert_eq!(post(0).await.unwrap(), 200);

    // Every write fails (as on a full disk): not ready, though the database answers.
    admin
        .batch_execute(
            "ALTER TABLE raw_requests ADD CONSTRAINT readyz_test_no_writes CHECK (false) NOT VALID",
        )
        .await
        .unwrap();
    assert_eq!(post(1).await.unwrap(), 503);
    assert_eq!(
        readyz().await.unwrap(),
        503,
        "ready while every write fails"
    );
    admin
        .batch_execute("ALTER TABLE raw_requests DROP CONSTRAINT readyz_test_no_writes")
        .await
        .unwrap();
    assert_eq!(post(2).await.unwrap(), 200);
    assert_eq!(
        readyz().await.unwrap(),
        200,
        "a successful commit makes it ready again"
    );

    // Writes backed up behind a lock: not ready while requests wait to be committed.
    let (locker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    locker
        .batch_execute("BEGIN; LOCK TABLE raw_requests IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let waiting: Vec<_> = (10..16).map(post).collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        readyz().await.unwrap(),
        503,
        "ready while writes wait behind a lock"
    );
    locker.batch_execute("COMMIT").await.unwrap();
    for request in waiting {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(readyz().await.unwrap(), 200);
    let _ = child.kill();
    let _ = child.wait();
    crate::scale_out::drop_schema(&base, &schema).await;
}

#[test]
fn unknown_environments_and_integrations_look_alike_without_the_key() {
    let server = crate::support::Server::start();
    let post = |path: &str, key: &str| {
        let response = server.post(
            path,
            &[("Authorization", key), ("Content-Type", "application/json")],
            b"[]",
        );
        let error: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        (
            response.status,
            error["message"].as_str().unwrap_or("").to_owned(),
        )
    };
    let unknown_environment = post(
        "/v2/inbound-webhooks/delivery-providers/nope/sg",
        "ApiKey x",
    );
    let unknown_integration = post(
        "/v2/inbound-webhooks/delivery-providers/prod/nope",
        "ApiKey x",
    );
    assert_eq!(unknown_environment.0, 404);
    assert_eq!(unknown_environment, unknown_integration);
    // The environment's own key learns which part is missing.
    let keyed = post(
        "/v2/inbound-webhooks/delivery-providers/prod/nope",
        "ApiKey prod-secret-key",
    );
    assert_eq!(keyed.0, 404);
    assert!(keyed.1.contains("nope"), "{}", keyed.1);
    // Credential failures do not tell how an integration authenticates.
    let basic = format!("Basic {}", crate::support::base64("u:wrong-password"));
    let answers: Vec<(u16, String)> = [
        (
            "/v2/inbound-webhooks/delivery-providers/prod/sg",
            basic.as_str(),
        ),
        (
            "/v2/inbound-webhooks/delivery-providers/prod/pm",
            basic.as_str(),
        ),
        (
            "/v2/inbound-webhooks/delivery-providers/prod/sg",
            "Bearer x",
        ),
        (
            "/v2/inbound-webhooks/delivery-providers/prod/mg",
            "Bearer x",
        ),
    ]
    .iter()
    .map(|(path, auth)| post(path, auth))
    .collect();
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 401);
}

#[test]
fn metrics_can_be_served_on_their_own_address_behind_a_token() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
[store]
url = "sqlite://{}"
[log]
level = "error"
[metrics]
listen = "127.0.0.1:0"
token = "metrics-token-1"
[[environments]]
id = "test"
secret_key = "{SECRET}"
"#,
            dir.path().join("tidings.db").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("TIDINGS_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut main, mut metrics) = (None, None);
    while main.is_none() || metrics.is_none() {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(address) = line.strip_prefix("metrics listening on ") {
            metrics = Some(address.trim().to_owned());
        } else if let Some(address) = line.strip_prefix("listening on ") {
            main = Some(address.trim().to_owned());
        }
    }
    let (main, metrics) = (main.unwrap(), metrics.unwrap());
    let get = |address: &str, headers: &[(&str, &str)]| {
        crate::support::request_to(address, "GET", "/metrics", headers, b"").status
    };
    assert_eq!(get(&main, &[]), 404, "not on the public address");
    assert_eq!(get(&metrics, &[]), 401);
    assert_eq!(
        get(&metrics, &[("Authorization", "Bearer wrong-token")]),
        401
    );
    let response = crate::support::request_to(
        &metrics,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer metrics-token-1")],
        b"",
    );
    assert_eq!(response.status, 200);
    assert!(response.text().contains("tidings_"), "{}", response.text());
    let health = crate::support::request_to(&main, "GET", "/healthz", &[], b"");
    assert_eq!(health.status, 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn buffered_bodies_share_one_budget() {
    let server = Server::start_with(
        "max_body_bytes = 4096
max_buffered_body_bytes = 8192
header_timeout_secs = 1
request_timeout_secs = 20
body_timeout_secs = 20
max_in_flight = 16",
    );
    let auth = format!("Authorization: ApiKey {SECRET}\r\n");
    // Two requests that declared 4,000 bytes each and are still sending: the budget is spent.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = server.connect();
            stream
                .write_all(&[head(4000, &auth).into_bytes(), b"[".to_vec()].concat())
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, took) = exchange(
        &server,
        head(1000, &auth).as_bytes(),
        Duration::from_secs(3),
    );
    assert_eq!(status, 503, "a body past the budget");
    assert!(took < Duration::from_secs(3));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.post_event(), 200, "the budget is given back");
}

#[test]
fn a_request_with_too_many_events_is_413_saying_so() {
    let server = Server::start_with("max_events_per_request = 2");
    let event = |n: usize| {
        format!(
            r#"{{"email":"a@example.com","timestamp":1700000000,"event":"delivered","sg_message_id":"m{n}.filter","sg_event_id":"e{n}"}}"#
        )
    };
    let auth = format!("Authorization: ApiKey {SECRET}\r\n");
    let post = |events: usize| {
        let body = format!("[{}]", (0..events).map(event).collect::<Vec<_>>().join(","));
        let mut stream = server.connect();
        stream
            .write_all(&[head(body.len(), &auth).into_bytes(), body.into_bytes()].concat())
            .unwrap();
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    };
    let refused = post(3);
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    assert!(refused.contains("carries 3 events"), "{refused}");
    assert!(post(2).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_weak_integration_can_neither_claim_keys_nor_touch_messages_of_another() {
    let server = crate::support::Server::start();
    let json = ("Content-Type", "application/json");
    let key = ("Authorization", "ApiKey prod-secret-key");
    let event = |message: &str, event: &str, n: u32| {
        format!(
            r#"[{{"email":"a@example.com","timestamp":{},"event":"{event}","sg_message_id":"{message}","sg_event_id":"{message}-{event}-{n}"}}]"#,
            1_700_000_000 + n
        )
    };
    // `open` takes unauthenticated requests: its caller claims a key first.
    let claimed = server.post(
        "/v2/inbound-webhooks/delivery-providers/prod/open",
        &[json, ("Idempotency-Key", "shared-key")],
        event("m-open", "delivered", 1).as_bytes(),
    );
    assert_eq!(claimed.status, 200, "{}", claimed.text());
    let real = server.post(
        "/v2/inbound-webhooks/delivery-providers/prod/sg",
        &[json, key, ("Idempotency-Key", "shared-key")],
        event("m-x", "bounce", 2).as_bytes(),
    );
    assert_eq!(
        real.status,
        200,
        "another integration's key: {}",
        real.text()
    );
    assert_eq!(real.header("idempotency-replay"), None);
    // An empty key is no key: two bodies under it are both processed.
    for n in [3, 4] {
        let response = server.post(
            "/v2/inbound-webhooks/delivery-providers/prod/sg",
            &[json, key, ("Idempotency-Key", "")],
            event(&format!("m-empty-{n}"), "delivered", n).as_bytes(),
        );
        assert_eq!(response.status, 200, "{}", response.text());
    }
    // The weak integration's `click` for the same message id does not fold into `sg`'s message.
    let weak = server.post(
        "/v2/inbound-webhooks/delivery-providers/prod/open",
        &[json],
        event("m-x", "click", 5).as_bytes(),
    );
    assert_eq!(weak.status, 200);
    let message = crate::support::request_to(
        &server.address,
        "GET",
        "/v1/environments/prod/integrations/sg/messages/m-x",
        &[key],
        b"",
    );
    assert_eq!(message.status, 200, "{}", message.text());
    let message: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(message["status"], "bounced", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_that_timed_out_in_the_queue_are_not_committed() {
    let Some(base) = tidings_fixtures::optional::postgres_url() else {
        return;
    };
    let schema = crate::scale_out::fresh_schema(&base, "cancelled").await;
    let url = crate::scale_out::with_schema(&base, &schema);
    let dir = tempfile::tempdir().unwrap();
    // pool_size 4: two commit groups at a time.
    let (mut child, address) = postgres_server(dir.path(), &url, "request_timeout_secs = 1");
    let post = |n: usize, key: Option<&'static str>| {
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            let body = format!(
                r#"[{{"email":"a@example.com","timestamp":1700000000,"event":"delivered","sg_message_id":"q{n}.filter","sg_event_id":"q{n}"}}]"#
            );
            let auth = format!("ApiKey {SECRET}");
            let mut headers = vec![
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            if let Some(key) = key {
                headers.push(("Idempotency-Key", key));
            }
            crate::support::request_to(
                &address,
                "POST",
                "/v2/inbound-webhooks/delivery-providers/test/sendgrid",
                &headers,
                body.as_bytes(),
            )
            .status
        })
    };
    let (locker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    locker
        .batch_execute("BEGIN; LOCK TABLE raw_requests IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // The first two are taken into commit groups (which wait on the lock); the rest queue.
    let mut requests = vec![post(0, Some("joined-key"))];
    tokio::time::sleep(Duration::from_millis(200)).await;
    requests.push(post(1, None));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 2..8 {
        requests.push(post(n, None));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 408);
    }
    // The first request's claim is kept while its group waits: another body under its key is
    // not let in.
    assert_eq!(post(100, Some("joined-key")).await.unwrap(), 409);
    locker.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stored: i64 = locker
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        stored <= 2,
        "{stored} events committed for requests that timed out while queued"
    );
    let _ = child.kill();
    let _ = child.wait();
    crate::scale_out::drop_schema(&base, &schema).await;
}
