//! Amazon SNS end to end: the signing certificate is fetched over HTTPS from a local server that
//! stands in for `sns.us-east-1.amazonaws.com`, verified, cached; subscriptions are confirmed
//! only when the integration asks for it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    signing_cert.len()
                );
                let _ = tls.write_all(response.as_bytes());
                let _ = tls.write_all(&signing_cert);
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
        let ca_file = self.ca_dir.path().join("sns-ca.pem");
        std::fs::write(&ca_file, &self.ca_pem).unwrap();
        Server::start_with(&format!(
            r#"
[certificates]
ca_file = "{ca}"
resolve = {{ "{HOST}" = "{address}" }}

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
"#,
            ca = ca_file.display(),
            address = self.address,
        ))
    }
}

const PATH: &str = "/v2/inbound-webhooks/delivery-providers/prod/ses";
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
    let server = sns.server("");
    let response = server.post(PATH, &[TEXT], &body);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "[]");
    let paths = sns.requests.lock().unwrap().clone();
    assert!(
        paths.iter().all(|p| p.ends_with(".pem")),
        "not confirmed: {paths:?}"
    );

    let sns = FakeSns::start();
    let server = sns.server(r#"auto_confirm = "true""#);
    assert_eq!(server.post(PATH, &[TEXT], &body).status, 200);
    let paths = sns.requests.lock().unwrap().clone();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/?Action=ConfirmSubscription")),
        "confirmed: {paths:?}"
    );
}
