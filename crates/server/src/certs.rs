//! Fetching the signing certificates some providers point at (Amazon SNS's `SigningCertURL`).
//!
//! Only URLs a provider's `remote_keys` returned are fetched: each provider checks them against
//! its own trust rule first (SNS: `https://sns.<region>.amazonaws.com/...pem`), so an attacker
//! cannot make Tidings fetch an arbitrary URL. Fetches go over HTTPS only, verified against the
//! built-in Mozilla roots or a configured CA file, with a short timeout and a size cap, and each
//! certificate is cached for the life of the process.
//!
//! So that requests cannot turn Tidings into a source of outbound traffic: concurrent requests
//! for one URL share one fetch, a failed fetch is remembered for a few seconds (requests meanwhile
//! get the same 503 without a fetch), and only a few fetches run at once (more get 503 at once).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::config::CertificatesConfig;

/// Largest certificate accepted.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// Certificates kept at most.
const CACHE_ENTRIES: usize = 256;

/// Why a certificate could not be fetched. The request is answered 503: the provider retries.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not an `https://host[:port]/path` URL.
    #[error("not an https URL")]
    NotHttps,
    /// Connecting, TLS or HTTP failed.
    #[error("fetching failed: {0}")]
    Network(String),
    /// The server answered with another status than 200.
    #[error("the certificate server answered {0}")]
    Status(u16),
    /// It took longer than the timeout.
    #[error("timed out")]
    Timeout,
    /// The CA file could not be read.
    #[error("cannot read the CA file: {0}")]
    CaFile(String),
    /// The fetcher was built offline: it never fetches.
    #[error("fetching is turned off")]
    Offline,
    /// This URL failed moments ago; it is not fetched again yet.
    #[error("failed moments ago ({0}); not fetched again yet")]
    RecentlyFailed(String),
    /// As many fetches as allowed are running.
    #[error("too many certificate fetches at once")]
    Busy,
}

/// Fetches and caches certificates.
pub struct CertFetcher {
    tls: TlsConnector,
    timeout: Duration,
    resolve: BTreeMap<String, SocketAddr>,
    cache: Mutex<BTreeMap<String, Arc<Vec<u8>>>>,
    /// URLs whose last fetch failed: when, and why.
    failures: Mutex<BTreeMap<String, (Instant, String)>>,
    failure_ttl: Duration,
    /// One lock per URL being fetched: a second request for it waits for the first fetch.
    fetching: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Fetches running at once.
    permits: tokio::sync::Semaphore,
    offline: bool,
}

impl CertFetcher {
    /// A fetcher trusting the configured CA file, or the built-in Mozilla roots.
    pub fn new(config: &CertificatesConfig) -> Result<CertFetcher, FetchError> {
        let mut roots = RootCertStore::empty();
        match &config.ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| FetchError::CaFile(e.to_string()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| FetchError::CaFile(e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| FetchError::CaFile(e.to_string()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::CaFile(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(CertFetcher {
            tls: TlsConnector::from(Arc::new(tls)),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            resolve: config.resolve.clone(),
            cache: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            failure_ttl: Duration::from_secs(config.failure_cache_secs),
            fetching: Mutex::new(BTreeMap::new()),
            permits: tokio::sync::Semaphore::new(config.max_concurrent_fetches.max(1)),
            offline: false,
        })
    }

    /// A fetcher that never opens a connection or resolves a name: it serves `documents` (by
    /// URL) and fails every other fetch with [`FetchError::Offline`], which the handler answers
    /// as an unreachable certificate. For driving the handler with arbitrary requests (fuzzing)
    /// without touching the network.
    pub fn offline(documents: BTreeMap<String, Vec<u8>>) -> Result<CertFetcher, FetchError> {
        let cache = documents
            .into_iter()
            .map(|(url, document)| (url, Arc::new(document)))
            .collect();
        Ok(CertFetcher {
            offline: true,
            cache: Mutex::new(cache),
            ..CertFetcher::new(&CertificatesConfig::default())?
        })
    }

    /// The document at `url`, from the cache or fetched.
    pub async fn fetch(&self, url: &str) -> Result<Arc<Vec<u8>>, FetchError> {
        if let Some(known) = self.known(url) {
            return known;
        }
        let lock = {
            let mut fetching = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(fetching.entry(url.to_owned()).or_default())
        };
        // Waits for a fetch of the same URL already under way, then takes its result.
        let _turn = tokio::time::timeout(self.timeout, lock.lock())
            .await
            .map_err(|_| FetchError::Timeout)?;
        if let Some(known) = self.known(url) {
            return known;
        }
        let result = match self.permits.try_acquire() {
            Err(_) => return Err(FetchError::Busy),
            Ok(_permit) => tokio::time::timeout(self.timeout, self.fetch_uncached(url))
                .await
                .unwrap_or(Err(FetchError::Timeout)),
        };
        let result = match result {
            Ok(body) => {
                let body = Arc::new(body);
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(url.to_owned(), Arc::clone(&body));
                Ok(body)
            }
            Err(err) => {
                if !self.failure_ttl.is_zero() {
                    let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
                    if failures.len() >= CACHE_ENTRIES {
                        failures.clear();
                    }
                    failures.insert(url.to_owned(), (Instant::now(), err.to_string()));
                }
                Err(err)
            }
        };
        self.fetching
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(url);
        result
    }

    /// The cached document, or the recent failure, for `url`.
    fn known(&self, url: &str) -> Option<Result<Arc<Vec<u8>>, FetchError>> {
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
        {
            return Some(Ok(Arc::clone(hit)));
        }
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match failures.get(url) {
            Some((at, why)) if at.elapsed() < self.failure_ttl => {
                Some(Err(FetchError::RecentlyFailed(why.clone())))
            }
            Some(_) => {
                failures.remove(url);
                None
            }
            None => None,
        }
    }

    async fn fetch_uncached(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        if self.offline {
            return Err(FetchError::Offline);
        }
        let uri: http::Uri = url.parse().map_err(|_| FetchError::NotHttps)?;
        if uri.scheme_str() != Some("https") {
            return Err(FetchError::NotHttps);
        }
        let host = uri.host().ok_or(FetchError::NotHttps)?.to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let address = match self.resolve.get(&host) {
            Some(address) => *address,
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| FetchError::Network(e.to_string()))?
                .next()
                .ok_or_else(|| FetchError::Network("the host does not resolve".into()))?,
        };
        let network = |e: &dyn std::fmt::Display| FetchError::Network(e.to_string());
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| network(&e))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| network(&e))?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| network(&e))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| network(&e))?;
        tokio::spawn(connection);
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let request = http::Request::get(path)
            .header(http::header::HOST, host)
            .body(Empty::<Bytes>::new())
            .map_err(|e| network(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| network(&e))?;
        if response.status() != http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_CERTIFICATE_BYTES)
            .collect()
            .await
            .map_err(|e| FetchError::Network(e.to_string()))?;
        Ok(body.to_bytes().to_vec())
    }
}
