//! A small HTTP client on hyper for deliveries: one target URL per endpoint, kept-alive
//! connections reused, connect and total timeouts, redirects never followed (a 3xx is an
//! answer like any other), and at most [`ANSWER_LIMIT`] bytes of an answer read.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::{Error, Result};

/// Bytes of an answer's body read at most; the rest is dropped with the connection.
pub const ANSWER_LIMIT: usize = 4096;
/// Characters of an answer kept in the record.
const ANSWER_KEPT: usize = 256;
/// Connections kept open per endpoint between attempts.
const IDLE_MAX: usize = 64;

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The endpoint answered.
    Status {
        /// The HTTP status.
        code: u16,
        /// The start of the body, as text.
        body: String,
        /// `Retry-After`, when given and readable.
        retry_after: Option<Duration>,
    },
    /// No complete answer within the timeout.
    Timeout,
    /// No connection (refused, unreachable, TLS failed, name does not resolve).
    Connect(String),
    /// The connection broke before an answer.
    Network(String),
}

impl Answer {
    /// 2xx.
    pub fn delivered(&self) -> bool {
        matches!(self, Answer::Status { code, .. } if (200..300).contains(code))
    }

    /// Worth another attempt: 408, 429 and 5xx, timeouts and connection errors. Other
    /// answers (3xx, 4xx) will not change by themselves and are dead-lettered at once.
    pub fn retryable(&self) -> bool {
        match self {
            Answer::Status { code, .. } => *code == 408 || *code == 429 || *code >= 500,
            Answer::Timeout | Answer::Connect(_) | Answer::Network(_) => true,
        }
    }

    /// The status code, if there was an answer.
    pub fn code(&self) -> Option<u16> {
        match self {
            Answer::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// `Retry-After`, if the answer had one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Answer::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short label for metrics: `2xx`, `4xx`, `5xx`, `timeout`, `connect`, `network`.
    pub fn class(&self) -> &'static str {
        match self {
            Answer::Status { code, .. } => match code {
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            Answer::Timeout => "timeout",
            Answer::Connect(_) => "connect",
            Answer::Network(_) => "network",
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status { code, body, .. } if body.is_empty() => write!(f, "HTTP {code}"),
            Answer::Status { code, body, .. } => write!(f, "HTTP {code}: {body}"),
            Answer::Timeout => f.write_str("timed out"),
            Answer::Connect(reason) => write!(f, "cannot connect: {reason}"),
            Answer::Network(reason) => write!(f, "connection failed: {reason}"),
        }
    }
}

/// Where one endpoint's requests go.
#[derive(Debug, Clone)]
pub struct Target {
    host: String,
    port: u16,
    https: bool,
    path: String,
    host_header: String,
}

impl Target {
    /// The target of a checked URL.
    pub fn new(uri: &http::Uri) -> Result<Target> {
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or_else(|| Error::Url("the URL has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_header = uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
        Ok(Target {
            host,
            port,
            https,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            host_header,
        })
    }
}

/// The client: TLS set-up shared by every endpoint.
#[derive(Clone)]
pub struct Client {
    tls: TlsConnector,
}

/// One endpoint's idle kept-alive connections.
#[derive(Default)]
pub struct Connections {
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Client {
    /// A client that trusts the built-in Mozilla roots.
    pub fn new() -> Result<Client> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client {
            tls: TlsConnector::from(Arc::new(tls)),
        })
    }

    /// POSTs `body` with `headers`; the whole attempt ends within `timeout`.
    pub async fn post(
        &self,
        target: &Target,
        connections: &Connections,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Answer {
        let attempt = async {
            // A kept-alive connection the endpoint closed meanwhile fails before any answer:
            // then one fresh connection is tried within the same attempt.
            if let Some(sender) = connections.take()
                && let Ok((answer, sender)) = self.send(sender, target, headers, body.clone()).await
            {
                connections.put(sender);
                return answer;
            }
            let sender = match self.connect(target, timeout).await {
                Ok(sender) => sender,
                Err(answer) => return answer,
            };
            match self.send(sender, target, headers, body).await {
                Ok((answer, sender)) => {
                    connections.put(sender);
                    answer
                }
                Err(answer) => answer,
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or(Answer::Timeout)
    }

    async fn connect(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Result<SendRequest<Full<Bytes>>, Answer> {
        let connect_timeout = timeout.min(Duration::from_secs(10));
        let tcp = tokio::time::timeout(
            connect_timeout,
            tokio::net::TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| Answer::Timeout)?
        .map_err(|e| Answer::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        if target.https {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| Answer::Connect(e.to_string()))?;
            let tls = tokio::time::timeout(connect_timeout, self.tls.connect(name, tcp))
                .await
                .map_err(|_| Answer::Timeout)?
                .map_err(|e| Answer::Connect(format!("TLS: {e}")))?;
            handshake(TokioIo::new(tls)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    }

    /// Sends one request on a connection: `Ok` with the answer (and the connection when it can
    /// be used again), `Err` when the connection failed before an answer.
    async fn send(
        &self,
        mut sender: SendRequest<Full<Bytes>>,
        target: &Target,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<(Answer, Option<SendRequest<Full<Bytes>>>), Answer> {
        sender
            .ready()
            .await
            .map_err(|e| Answer::Network(e.to_string()))?;
        let mut request = http::Request::post(target.path.as_str())
            .header(http::header::HOST, target.host_header.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("Tidings/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| Answer::Network(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Answer::Network(e.to_string()))?;
        let code = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let (text, complete) = read_limited(response.into_body()).await;
        let answer = Answer::Status {
            code,
            body: text,
            retry_after,
        };
        // The rest of a long answer is not read: the connection is dropped with it.
        Ok((answer, complete.then_some(sender)))
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, Answer>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Answer::Connect(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl Connections {
    fn take(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, sender: Option<SendRequest<Full<Bytes>>>) {
        let Some(sender) = sender.filter(|s| !s.is_closed()) else {
            return;
        };
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_MAX
        {
            idle.push(sender);
        }
    }
}

/// Reads up to [`ANSWER_LIMIT`] bytes; true when the body ended within them.
async fn read_limited(mut body: hyper::body::Incoming) -> (String, bool) {
    let mut read = Vec::new();
    let mut complete = true;
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = ANSWER_LIMIT.saturating_sub(read.len());
                    read.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
                    if data.len() > room {
                        complete = false;
                        break;
                    }
                }
            }
            Some(Err(_)) => {
                complete = false;
                break;
            }
            None => break,
        }
    }
    let text: String = String::from_utf8_lossy(&read)
        .chars()
        .filter(|c| !c.is_control())
        .take(ANSWER_KEPT)
        .collect();
    (text, complete)
}

/// `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn answers_are_classified() {
        let status = |code| Answer::Status {
            code,
            body: String::new(),
            retry_after: None,
        };
        assert!(status(204).delivered() && !status(204).retryable());
        for code in [408, 429, 500, 503] {
            assert!(status(code).retryable(), "{code}");
        }
        for code in [301, 400, 401, 404, 410] {
            assert!(
                !status(code).retryable() && !status(code).delivered(),
                "{code}"
            );
        }
        assert!(Answer::Timeout.retryable() && Answer::Connect("refused".into()).retryable());
    }
}
