//! A real `tidings serve` process on a temporary store, and a minimal HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;

/// The SendGrid public key of the official signed vector in `fixtures/sendgrid/`.
pub(crate) const SENDGRID_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
pub(crate) const MAILGUN_KEY: &str = "TEST_WEBHOOK_SIGNING_KEY";

pub(crate) fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(path)
}

/// A fixture's `.meta.json`, parsed.
pub(crate) fn fixture_meta(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(path)).unwrap()).unwrap()
}

pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn base64_bytes(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A Mailgun webhook signed with the test key at `timestamp`.
pub(crate) fn sign_mailgun(timestamp: i64, token: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(MAILGUN_KEY.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!(
        r#"{{"signature":{{"timestamp":"{timestamp}","token":"{token}","signature":"{signature}"}},"event-data":{{"event":"delivered","timestamp":{timestamp}.5,"id":"ev-{token}","recipient":"a@example.com","message":{{"headers":{{"message-id":"mg-{token}@example.com"}}}}}}}}"#
    )
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(crate) struct Server {
    dir: tempfile::TempDir,
    child: Child,
    pub(crate) address: String,
}

impl Server {
    pub(crate) fn start() -> Server {
        Server::start_with("")
    }

    /// A server whose configuration ends with `extra` (more tables).
    pub(crate) fn start_with(extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"
listen = "127.0.0.1:0"
public_url = "https://hooks.example.com"

[store]
url = "sqlite://{db}"

[limits]
max_body_bytes = 65536

[[environments]]
id = "prod"
secret_key = "${{TIDINGS_TEST_PROD_KEY}}"

[[environments]]
id = "staging"
secret_key = "staging-secret-key"

[[integrations]]
id = "sg"
environment = "prod"
provider = "sendgrid"

[[integrations]]
id = "sg2"
environment = "staging"
provider = "sendgrid"

[[integrations]]
id = "sg-signed"
environment = "prod"
provider = "sendgrid"
signing_key = "{SENDGRID_KEY}"
# The official signed vector is years old: outside SendGrid's default window.
signature_tolerance_secs = 999999999

[[integrations]]
id = "mg"
environment = "prod"
provider = "mailgun"
signing_key = "{MAILGUN_KEY}"

[[integrations]]
id = "pm"
environment = "prod"
provider = "postmark"
basic_auth = {{ username = "hook", password = "hook-password" }}

[[integrations]]
id = "open"
environment = "prod"
provider = "sendgrid"
allow_unauthenticated = true

[[integrations]]
id = "push"
environment = "prod"
provider = "push-webhook"
"#,
            db = dir.path().join("tidings.db").display()
        ) + extra;
        std::fs::write(dir.path().join("tidings.toml"), config).unwrap();
        let (child, address) = spawn(&dir);
        Server {
            dir,
            child,
            address,
        }
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.path().join("tidings.toml")
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM (graceful) and starts it again on the same store.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stops the server with SIGTERM (graceful); its store and configuration stay.
    pub(crate) fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    }

    /// Starts a stopped server again on the same store.
    pub(crate) fn start_again(&mut self) {
        let (child, address) = spawn(&self.dir);
        self.child = child;
        self.address = address;
    }

    /// The SQLite store's URL.
    pub(crate) fn store_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("tidings.db").display())
    }

    pub(crate) fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.request("POST", path, headers, body)
    }

    pub(crate) fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request_to(&self.address, method, path, headers, body)
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Vec<Value> {
        let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env("TIDINGS_TEST_PROD_KEY", "prod-secret-key")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// A command's standard output, which must succeed.
    pub(crate) fn cli_text(&self, args: &[&str]) -> String {
        let (ok, text) = self.cli_status(args);
        assert!(ok, "{text}");
        text
    }

    /// Whether a command succeeded, with its standard output and error.
    pub(crate) fn cli_status(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env("TIDINGS_TEST_PROD_KEY", "prod-secret-key")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    }

    pub(crate) fn events(&self) -> Vec<Value> {
        self.cli(&["events"])
    }

    pub(crate) fn events_for(&self, message: &str) -> Vec<Value> {
        self.cli(&["events", "--message", message])
    }

    pub(crate) fn message(&self, message: &str) -> Value {
        let rows = self.cli(&["messages", "--message", message]);
        assert_eq!(rows.len(), 1, "message {message}: {rows:?}");
        rows.into_iter().next().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &tempfile::TempDir) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("tidings.toml"))
        .env("TIDINGS_TEST_PROD_KEY", "prod-secret-key")
        .env("TIDINGS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (child, address)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<Vec<_>>();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

/// One HTTP/1.1 request to `address`, answered in full.
pub(crate) fn request_to(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        address,
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body and close.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}
