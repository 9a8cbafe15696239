//! A local webhook receiver for the outbound modes: answers 200 to every POST and records each
//! delivery's `webhook-id` and the event it carries (message id and provider event).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// What the receiver has seen.
#[derive(Default)]
pub struct Seen {
    /// Requests answered.
    pub requests: u64,
    /// `webhook-id`s per event (message id, provider event).
    pub ids: BTreeMap<(String, String), BTreeSet<String>>,
    /// Deliveries per `webhook-id`.
    pub per_id: BTreeMap<String, u64>,
    /// When each event first reached each path (one path per endpoint).
    pub arrivals: BTreeMap<(String, (String, String)), Instant>,
    /// When the first and the last request arrived.
    pub first_at: Option<Instant>,
    /// See `first_at`.
    pub last_at: Option<Instant>,
}

impl Seen {
    /// Deliveries beyond the first of each `webhook-id`.
    pub fn duplicates(&self) -> u64 {
        self.per_id.values().map(|n| n.saturating_sub(1)).sum()
    }
}

/// A receiver running on its own thread until the process ends.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    /// Binds 127.0.0.1 on a free port and serves on a thread of its own.
    pub fn start() -> Result<Receiver> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the receiver")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::clone(&seen);
        std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(serve(listener, shared));
                }
            })?;
        Ok(Receiver { addr, seen })
    }
}

async fn serve(listener: std::net::TcpListener, seen: Arc<Mutex<Seen>>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let path = request.uri().path().to_owned();
                        let id = request
                            .headers()
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        record(&seen, path, id, &body);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn record(seen: &Mutex<Seen>, path: String, id: String, body: &[u8]) {
    let payload: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| {
        payload
            .get("data")
            .and_then(|data| data.get(name))
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let key = (field("id"), field("providerEvent"));
    if let Ok(mut seen) = seen.lock() {
        seen.requests += 1;
        let now = Instant::now();
        seen.arrivals.entry((path, key.clone())).or_insert(now);
        seen.ids.entry(key).or_default().insert(id.clone());
        *seen.per_id.entry(id).or_insert(0) += 1;
        seen.first_at.get_or_insert(now);
        seen.last_at = Some(now);
    }
}

/// The `[[endpoints]]` table that points an environment `bench` at the receiver.
pub fn endpoint_config(addr: SocketAddr, max_in_flight: usize) -> String {
    named_endpoint_config("bench-receiver", addr, max_in_flight)
}

/// [`endpoint_config`] with another id (and path, `/hooks/<id>`).
pub fn named_endpoint_config(id: &str, addr: SocketAddr, max_in_flight: usize) -> String {
    format!(
        r#"
[[endpoints]]
id = "{id}"
environment = "bench"
url = "http://{addr}/hooks/{id}"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
max_in_flight = {max_in_flight}
timeout_secs = 5
start = "beginning"
retry_schedule_secs = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
"#
    )
}
