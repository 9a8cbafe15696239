//! Amazon SNS end to end: the signing certificate is fetched over HTTPS from a local server that
//! stands in for `sns.us-east-1.amazonaws.com`, verified, cached; subscriptions are confirmed
//! only when the integration asks for it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::support::{Server, fixture};

const HOST: &str = "sns.us-east-1.amazonaws.com";

/// A TLS server for `HOST` answering every GET with the SNS signing certificate, recording paths.
struct FakeSns {
    address: String,
    ca_pem: String,
    ca_dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<String>>>,
    fetches: Arc<AtomicUsize>,
}

impl FakeSns {
    fn start() -> FakeSns {
        FakeSns::start_with(Duration::ZERO, 200)
    }

    /// A fake that waits `delay` before each answer and answers with `status`.
    fn start_with(delay: Duration, status: u16) -> FakeSns {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![HOST.to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let signing_cert = std::fs::read(fixture("ses/sns-tidings-test-cert.pem")).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (seen, count) = (Arc::clone(&requests), Arc::clone(&fetches));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut tcp) = stream else { continue };
                let Ok(mut connection) =
                    tokio_rustls::rustls::ServerConnection::new(Arc::clone(&config))
                else {
                    continue;
                };
                let mut tls = tokio_rustls::rustls::Stream::new(&mut connection, &mut tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                count.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(path);
                std::thread::sleep(delay);
                let body: &[u8] = if status == 200 { &signing_cert } else { b"" };
                let response = format!(
                    "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes());
                let _ = tls.write_all(body);
                let _ = tls.flush();
                connection.send_close_notify();
                let _ = connection.complete_io(&mut tcp);
            }
        });
        FakeSns {
            address,
            ca_pem: cert.pem(),
            ca_dir: tempfile::tempdir().unwrap(),
            requests,
            fetches,
        }
    }

    fn server(&self, options: &str) -> Server {
        self.server_with(options, "")
    }

    /// With `certificates` lines added to the `[certificates]` table.
    fn server_with(&self, options: &str, certificates: &str) -> Server {
        let ca_file = self.ca_dir.path().join("sns-ca.pem");
        std::fs::write(&ca_file, &self.ca_pem).unwrap();
        Server::start_with(&format!(
            r#"
[certificates]
ca_file = "{ca}"
resolve = {{ "{HOST}" = "{address}" }}
{certificates}

[[integrations]]
id = "ses"
environment = "prod"
provider = "ses"
# The recorded requests were signed in 2016.
signature_tolerance_secs = 999999999
options = {{ {options} }}

[[integrations]]
id = "ses-other-topic"
environment = "prod"
provider = "ses"
signature_tolerance_secs = 999999999
options = {{ topic_arns = "arn:aws:sns:us-east-1:123456789012:Other" }}

[[integrations]]
id = "ses-strict"
environment = "prod"
provider = "ses"
# The default window (1 h): the recorded requests are years old.
options = {{ topic_arns = "{TOPIC}" }}
"#,
            ca = ca_file.display(),
            address = self.address,
        ))
    }
}

const PATH: &str = "/v2/inbound-webhooks/delivery-providers/prod/ses";
/// The topic of the recorded SES requests.
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:SES_Notifications";
const TEXT: (&str, &str) = ("Content-Type", "text/plain; charset=UTF-8");

#[test]
fn sns_signatures_are_verified_with_a_fetched_and_cached_certificate() {
    let sns = FakeSns::start();
    let server =
        sns.server(r#"topic_arns = "arn:aws:sns:us-east-1:123456789012:SES_Notifications""#);
    let body = std::fs::read(fixture(
        "ses/sns-signed-v2-notification-bounce-two-recipients.json",
    ))
    .unwrap();
    let response = server.post(PATH, &[TEXT], &body);
    assert_eq!(response.status, 200, "{}", response.text());
    let results: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        results.as_array().unwrap().len(),
        2,
        "one event per bounced recipient"
    );
    // The retry is verified with the cached certificate.
    assert_eq!(server.post(PATH, &[TEXT], &body).status, 200);
    assert_eq!(
        sns.fetches.load(Ordering::SeqCst),
        1,
        "the certificate is fetched once"
    );

    let tampered = std::fs::read(fixture("ses/sns-signed-v2-tampered.json")).unwrap();
    assert_eq!(server.post(PATH, &[TEXT], &tampered).status, 401);
    let other_topic = "/v2/inbound-webhooks/delivery-providers/prod/ses-other-topic";
    let response = server.post(other_topic, &[TEXT], &body);
    assert_eq!(response.status, 401, "a topic outside the allow-list");
    for untrusted in [
        "ses/sns-untrusted-cert-url-s3.json",
        "ses/sns-untrusted-cert-url-attacker-host.json",
    ] {
        let response = server.post(PATH, &[TEXT], &std::fs::read(fixture(untrusted)).unwrap());
        assert_eq!(response.status, 401, "{untrusted}: {}", response.text());
    }
    assert_eq!(
        sns.fetches.load(Ordering::SeqCst),
        1,
        "untrusted URLs are never fetched"
    );
}

#[test]
fn subscriptions_are_confirmed_only_when_the_integration_asks() {
    let body = std::fs::read(fixture("ses/sns-signed-v2-subscription-confirmation.json")).unwrap();

    let sns = FakeSns::start();
    let server = sns.server(&format!(r#"topic_arns = "{TOPIC}""#));
    let response = server.post(PATH, &[TEXT], &body);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "[]");
    let paths = sns.requests.lock().unwrap().clone();
    assert!(
        paths.iter().all(|p| p.ends_with(".pem")),
        "not confirmed: {paths:?}"
    );

    let sns = FakeSns::start();
    let server = sns.server(&format!(r#"topic_arns = "{TOPIC}", auto_confirm = "true""#));
    assert_eq!(server.post(PATH, &[TEXT], &body).status, 200);
    let paths = sns.requests.lock().unwrap().clone();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/?Action=ConfirmSubscription")),
        "confirmed: {paths:?}"
    );
}

#[test]
fn a_topic_wildcard_verifies_any_topic_but_never_confirms_a_subscription() {
    let body = std::fs::read(fixture("ses/sns-signed-v2-subscription-confirmation.json")).unwrap();
    let sns = FakeSns::start();
    let server = sns.server(
        r#"topic_arns = "arn:aws:sns:us-east-1:123456789012:Other, any-topic-of-any-aws-account", auto_confirm = "true""#,
    );
    let response = server.post(PATH, &[TEXT], &body);
    assert_eq!(response.status, 200, "{}", response.text());
    let notification = std::fs::read(fixture(
        "ses/sns-signed-v2-notification-bounce-two-recipients.json",
    ))
    .unwrap();
    assert_eq!(server.post(PATH, &[TEXT], &notification).status, 200);
    let paths = sns.requests.lock().unwrap().clone();
    assert!(
        paths.iter().all(|p| p.ends_with(".pem")),
        "a topic let in by the wildcard was confirmed: {paths:?}"
    );
}

#[test]
fn nothing_is_fetched_for_a_request_that_cannot_verify() {
    let sns = FakeSns::start();
    let server = sns.server(&format!(r#"topic_arns = "{TOPIC}""#));
    let genuine = std::fs::read_to_string(fixture(
        "ses/sns-signed-v2-notification-bounce-two-recipients.json",
    ))
    .unwrap();
    let other_topic = "/v2/inbound-webhooks/delivery-providers/prod/ses-other-topic";
    let strict = "/v2/inbound-webhooks/delivery-providers/prod/ses-strict";
    let malformed = genuine.replacen("\"Signature\": \"", "\"Signature\": \"!!not base64!!", 1);
    assert_ne!(
        malformed, genuine,
        "the fixture's Signature field was not found"
    );
    for (path, body, what) in [
        (
            other_topic,
            genuine.as_str(),
            "a topic outside the allow-list",
        ),
        (strict, genuine.as_str(), "a Timestamp outside the window"),
        (PATH, malformed.as_str(), "a signature that is not base64"),
    ] {
        let response = server.post(path, &[TEXT], body.as_bytes());
        assert_eq!(response.status, 401, "{what}: {}", response.text());
    }
    assert_eq!(
        sns.fetches.load(Ordering::SeqCst),
        0,
        "a certificate was fetched for a request that could not verify"
    );
}

#[test]
fn concurrent_fetches_of_one_certificate_are_merged_and_failures_remembered() {
    let body = std::fs::read(fixture(
        "ses/sns-signed-v2-notification-bounce-two-recipients.json",
    ))
    .unwrap();
    // A slow certificate server: eight requests arrive while the first fetch is under way.
    let sns = FakeSns::start_with(Duration::from_millis(500), 200);
    let server = sns.server(&format!(r#"topic_arns = "{TOPIC}""#));
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| server.post(PATH, &[TEXT], &body).status))
            .collect();
        senders.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(sns.fetches.load(Ordering::SeqCst), 1, "one fetch for all");

    // A failing certificate server: fetched once, then the failure is remembered.
    let failing = FakeSns::start_with(Duration::ZERO, 500);
    let server = failing.server_with(
        &format!(r#"topic_arns = "{TOPIC}""#),
        "failure_cache_secs = 60",
    );
    for _ in 0..3 {
        let response = server.post(PATH, &[TEXT], &body);
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(response.header("retry-after").is_some());
    }
    assert_eq!(
        failing.fetches.load(Ordering::SeqCst),
        1,
        "the failure is remembered"
    );
}

#[test]
fn certificate_fetches_at_once_are_bounded() {
    let genuine = std::fs::read_to_string(fixture(
        "ses/sns-signed-v2-notification-bounce-two-recipients.json",
    ))
    .unwrap();
    let url = "SimpleNotificationService-tidings-test.pem";
    assert!(genuine.contains(url));
    // Two certificate URLs (both trusted: the URL is not part of what SNS signs), so the
    // fetches are not merged.
    let other = genuine.replace(url, "SimpleNotificationService-tidings-other.pem");
    let sns = FakeSns::start_with(Duration::from_millis(1500), 200);
    let server = sns.server_with(
        &format!(r#"topic_arns = "{TOPIC}""#),
        "max_concurrent_fetches = 1",
    );
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| server.post(PATH, &[TEXT], genuine.as_bytes()));
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let second = server.post(PATH, &[TEXT], other.as_bytes());
        let after = started.elapsed();
        (first.join().unwrap(), (second, after))
    });
    assert_eq!(first.status, 200, "{}", first.text());
    let (second, after) = second;
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(
        after < Duration::from_millis(1000),
        "the second waited for the first: {after:?}"
    );
    assert_eq!(sns.fetches.load(Ordering::SeqCst), 1);
}
