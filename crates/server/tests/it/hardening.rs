//! Overload and hostile-client tests against the real `tidings` binary over a real socket:
//! body and header limits, slow-header connections, malformed requests, in-flight limit,
//! sustained overload.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const SECRET: &str = "hardening-secret";
const PATH: &str = "/v2/inbound-webhooks/delivery-providers/test/sendgrid";
const EVENT: &str = r#"[{"email":"a@example.com","timestamp":1700000000,"event":"delivered","sg_message_id":"m1.filter","id":"msg-1"}]"#;

/// The limits most tests run with: small, so each limit is easy to reach.
const SMALL_LIMITS: &str = "max_body_bytes = 4096
header_timeout_secs = 1
request_timeout_secs = 5
max_connections = 256
max_in_flight = 2";

/// The server with small limits, killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(SMALL_LIMITS)
    }

    /// A server whose `[limits]` table is `limits`.
    pub(crate) fn start_with(limits: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("tidings.toml");
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:0"

[store]
url = "sqlite://{}"

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
"#,
                dir.path().join("tidings.db").display()
            ),
        )
        .expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tidings");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server exited before listening")
                .expect("read stdout");
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().parse().expect("address");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            config,
            _dir: dir,
        }
    }

    pub(crate) fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// A complete, valid webhook on a fresh connection: its status line's code.
    pub(crate) fn post_event(&self) -> u16 {
        let mut stream = self.connect();
        stream
            .write_all(request_head(EVENT.len(), "").as_bytes())
            .and_then(|()| stream.write_all(EVENT.as_bytes()))
            .expect("write");
        status_of(&read_response(&mut stream))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request_head(content_length: usize, extra: &str) -> String {
    format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: ApiKey {SECRET}\r\nContent-Length: {content_length}\r\nConnection: close\r\n{extra}\r\n"
    )
}

/// Reads until the server closes the connection or the read times out.
fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
        // One response is enough: stop once its headers and declared body are in.
        if let Some(text) = complete_response(&out) {
            return text;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn complete_response(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })?
        .parse()
        .ok()?;
    (body.len() >= length).then(|| text.into_owned())
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_oversized_body_is_refused_before_it_is_read() {
    let server = Server::start();
    let mut stream = server.connect();
    // Announce 64 MiB, send 1 KiB of it: the answer must come without the rest.
    stream
        .write_all(request_head(64 * 1024 * 1024, "").as_bytes())
        .expect("write head");
    stream.write_all(&[b' '; 1024]).expect("write some body");
    let started = Instant::now();
    let response = read_response(&mut stream);
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Chunked, with no length announced: refused once the limit is passed.
    let mut stream = server.connect();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAuthorization: ApiKey {SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("write head");
    let chunk = format!("1000\r\n{}\r\n", " ".repeat(0x1000));
    for _ in 0..4 {
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let response = read_response(&mut stream);
    assert_eq!(status_of(&response), 413, "{response}");
    assert_eq!(server.post_event(), 200);
}

#[test]
fn oversized_headers_are_refused_with_431() {
    let server = Server::start();
    // One header larger than the 64 KiB read buffer.
    let mut stream = server.connect();
    let big = format!("X-Padding: {}\r\n", "a".repeat(100 * 1024));
    let _ = stream.write_all(request_head(EVENT.len(), &big).as_bytes());
    let response = read_response(&mut stream);
    assert_eq!(status_of(&response), 431, "{response}");

    // More header lines than the parser accepts.
    let mut stream = server.connect();
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let _ = stream.write_all(request_head(EVENT.len(), &many).as_bytes());
    let response = read_response(&mut stream);
    assert_eq!(status_of(&response), 431, "{response}");
    assert_eq!(server.post_event(), 200);
}

#[test]
fn slow_header_connections_are_closed_and_do_not_block_others() {
    // A thousand stalled connections, within `max_connections`, so only the header timeout
    // can free their slots.
    let server = Server::start_with(
        &SMALL_LIMITS.replace("max_connections = 256", "max_connections = 2048"),
    );
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut stream = server.connect();
            // A third send a partial request head and stall, a third the first byte of one
            // (still ambiguous between HTTP/1.1 and h2c), a third nothing at all.
            match i % 3 {
                0 => {
                    let _ =
                        stream.write_all(format!("POST {PATH} HTTP/1.1\r\nHost: x\r\n").as_bytes());
                }
                1 => {
                    let _ = stream.write_all(b"P");
                }
                _ => {}
            }
            stream
        })
        .collect();
    let started = Instant::now();
    assert_eq!(server.post_event(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a normal request waited behind idle connections"
    );
    // The header timeout is 1 s: every stalled connection is closed soon after.
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(4)))
            .expect("timeout");
        let mut buf = [0u8; 1024];
        let closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                // A 408 answer before the close is fine too.
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break false;
                }
                Err(_) => break true,
            }
        };
        assert!(
            closed,
            "a stalled connection was still open after the header timeout"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(server.post_event(), 200);
}

#[test]
fn malformed_requests_never_take_the_server_down() {
    let mut server = Server::start();
    let garbage: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"POST / HTTP/9.9\r\n\r\n".to_vec(),
        format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n").into_bytes(),
        format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n").into_bytes(),
        format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!").into_bytes(),
        format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n").into_bytes(),
        format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n").into_bytes(),
        [request_head(9, "").as_bytes(), b"{\"event\":"].concat(),
        [request_head(4, "").as_bytes(), b"\xff\xfe\x00\x01"].concat(),
        [request_head(EVENT.len(), "").as_bytes().strip_suffix(b"\r\n").unwrap_or_default(), b"X-Bad: \xff\xfe\r\n\r\n", EVENT.as_bytes()].concat(),
        [request_head(EVENT.len(), "Idempotency-Key: \x01\x02\r\n").as_bytes(), EVENT.as_bytes()].concat(),
        format!("POST /v2/inbound-webhooks/delivery-providers/{}/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "%ff".repeat(1000)).into_bytes(),
        format!("POST {PATH}/../../x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").into_bytes(),
        // A request cut off in the middle of its body.
        [request_head(1000, "").as_bytes(), b"[{\"event\""].concat(),
    ];
    for bytes in &garbage {
        let mut stream = server.connect();
        let _ = stream.write_all(bytes);
        if bytes.ends_with(b"[{\"event\"") {
            drop(stream);
            continue;
        }
        let response = read_response(&mut stream);
        // Refused (4xx or closed), or accepted where the bytes are legal (obs-text in a
        // header value); never a server error.
        let status = status_of(&response);
        assert!(
            status == 0 || (200..500).contains(&status),
            "{:?} got {response}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(server.alive(), "the server died");
    assert_eq!(server.post_event(), 200);
}

#[test]
fn above_max_in_flight_requests_get_503_with_retry_after_at_once() {
    let server = Server::start();
    // Two requests that never finish sending their bodies hold both in-flight slots.
    let mut stuck: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = server.connect();
            stream
                .write_all(request_head(2000, "").as_bytes())
                .and_then(|()| stream.write_all(b"[{"))
                .expect("write");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut stream = server.connect();
    stream
        .write_all(request_head(EVENT.len(), "").as_bytes())
        .and_then(|()| stream.write_all(EVENT.as_bytes()))
        .expect("write");
    let response = read_response(&mut stream);
    assert_eq!(status_of(&response), 503, "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after: "),
        "{response}"
    );
    // At once: not after the stuck requests' 5 s request timeout.
    assert!(started.elapsed() < Duration::from_secs(2));
    // Once the stuck requests end, capacity is back.
    for stream in &mut stuck {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    drop(stuck);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.post_event(), 200);
}

/// A SendGrid event unique to `n`: its own message and event id.
fn unique_event(n: usize) -> String {
    format!(
        r#"[{{"email":"a@example.com","timestamp":1700000000,"event":"delivered","sg_message_id":"overload-{n}.filter","sg_event_id":"overload-event-{n}"}}]"#
    )
}

/// Every [`unique_event`] in `acknowledged` is in the store, as `tidings events` lists it.
fn assert_stored(server: &Server, acknowledged: &[usize], when: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["events", "--config"])
        .arg(&server.config)
        .output()
        .expect("tidings events");
    assert!(output.status.success(), "{output:?}");
    let stored = String::from_utf8_lossy(&output.stdout);
    for n in acknowledged {
        assert!(
            stored.contains(&format!("\"overload-{n}.filter\"")),
            "event {n} was acknowledged but is not stored{when}"
        );
    }
}

#[test]
fn sustained_overload_is_shed_with_503_and_nothing_acknowledged_is_lost() {
    let server =
        Server::start_with(&SMALL_LIMITS.replace("max_in_flight = 2", "max_in_flight = 4"));
    let addr = server.addr;
    // Far more concurrent senders than in-flight slots, each posting new events back to back.
    let senders = 32;
    let until = Instant::now() + Duration::from_millis(1500);
    let threads: Vec<_> = (0..senders)
        .map(|sender| {
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                let mut n = sender;
                while Instant::now() < until {
                    let event = unique_event(n);
                    let mut stream = TcpStream::connect(addr).expect("connect");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .expect("timeout");
                    stream
                        .write_all(request_head(event.len(), "").as_bytes())
                        .and_then(|()| stream.write_all(event.as_bytes()))
                        .expect("write");
                    answers.push((n, read_response(&mut stream)));
                    n += senders;
                }
                answers
            })
        })
        .collect();
    let answers: Vec<(usize, String)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("sender thread"))
        .collect();

    let mut acknowledged = Vec::new();
    let mut shed = 0;
    for (n, response) in &answers {
        match status_of(response) {
            200 => acknowledged.push(*n),
            503 => {
                shed += 1;
                let lower = response.to_ascii_lowercase();
                assert!(lower.contains("retry-after: "), "{response}");
                assert!(lower.contains("\"statuscode\":503"), "{response}");
            }
            // Every request gets an answer: accepted or shed, never a timeout or a close.
            _ => panic!("request {n} got neither 200 nor 503: {response:?}"),
        }
    }
    assert!(
        shed > 0,
        "{} requests, none shed: the overload never happened",
        answers.len()
    );
    assert!(!acknowledged.is_empty(), "overload starved every request");

    // Every acknowledged event is stored; shed ones may be stored or not (a retry dedups).
    assert_stored(&server, &acknowledged, "");
    assert_eq!(server.post_event(), 200);
}

#[test]
fn sigterm_under_load_drains_and_loses_nothing_acknowledged() {
    let mut server =
        Server::start_with(&SMALL_LIMITS.replace("max_in_flight = 2", "max_in_flight = 64"));
    let addr = server.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders = 8;
    let threads: Vec<_> = (0..senders)
        .map(|sender| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                let mut n = sender;
                // Until the server stops taking connections, or 10 s at most.
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let event = unique_event(n);
                    let Ok(mut stream) = TcpStream::connect(addr) else {
                        break;
                    };
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .expect("timeout");
                    if stream
                        .write_all(request_head(event.len(), "").as_bytes())
                        .and_then(|()| stream.write_all(event.as_bytes()))
                        .is_err()
                    {
                        break;
                    }
                    answers.push((n, read_response(&mut stream)));
                    n += senders;
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(exit.success(), "the server exited with {exit:?} on SIGTERM");
    let answers: Vec<(usize, String)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("sender thread"))
        .collect();

    let mut acknowledged = Vec::new();
    for (n, response) in &answers {
        match status_of(response) {
            200 => acknowledged.push(*n),
            // Refused while draining, or closed before being read: not acknowledged, retried.
            0 | 503 => {}
            other => panic!("request {n} got {other} during shutdown: {response:?}"),
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "no request was accepted before SIGTERM"
    );
    assert_stored(&server, &acknowledged, " after a graceful shutdown");
}
