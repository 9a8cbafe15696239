//! The load generator: N keep-alive HTTP/1.1 connections (hyper client) posting SendGrid bodies,
//! closed-loop (as fast as answers come) or rate-limited (a fixed schedule; latency counted
//! from the scheduled send time, so a stall is not hidden by the sender waiting).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::server::{PATH, SECRET};

/// One open client connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

/// A response: status and body.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Whether it carried `Retry-After`.
    pub retry_after: bool,
    /// The body.
    pub body: Bytes,
}

impl Connection {
    /// Connects and performs the HTTP/1.1 handshake.
    pub async fn open(addr: SocketAddr) -> Result<Connection> {
        let stream = TcpStream::connect(addr).await.context("connecting")?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("handshake")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            sender,
            authority: addr.to_string(),
        })
    }

    /// Posts a JSON body to the SendGrid integration, authenticated with the API key.
    pub async fn post(&mut self, body: Bytes) -> Result<Answer> {
        self.post_to(PATH, body).await
    }

    /// Posts a JSON body to a path, authenticated with the API key.
    pub async fn post_to(&mut self, path: &str, body: Bytes) -> Result<Answer> {
        self.sender.ready().await.context("connection closed")?;
        let request = http::Request::post(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, const_format_auth())
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key(http::header::RETRY_AFTER);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// Whether the server has closed this connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl Connection {
    /// A GET, for `/metrics`.
    pub async fn get(&mut self, path: &str) -> Result<Answer> {
        self.sender.ready().await.context("connection closed")?;
        let request = http::Request::get(path)
            .header(http::header::HOST, &self.authority)
            .body(Full::new(Bytes::new()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key(http::header::RETRY_AFTER);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// The server's group-commit counters from `/metrics`: (commits, requests, seconds).
pub fn commit_stats(addr: SocketAddr) -> Result<(f64, f64, f64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let text = runtime.block_on(async {
        let mut connection = Connection::open(addr).await?;
        let answer = connection.get("/metrics").await?;
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&answer.body).into_owned())
    })?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Ok((
        value("tidings_store_commits_total"),
        value("tidings_store_committed_requests_total"),
        value("tidings_store_commit_seconds_total"),
    ))
}

fn const_format_auth() -> String {
    format!("ApiKey {SECRET}")
}

/// How to drive the server.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Connections.
    pub connections: usize,
    /// Events per request.
    pub batch_size: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// Requests per second over all connections; `None` is closed-loop.
    pub rate: Option<f64>,
    /// Post to an integration that does not exist: everything but auth, parsing and the
    /// store (the HTTP stack and the load generator alone), answered 404.
    pub null: bool,
    /// Stalled connections held open against the server meanwhile (slowloris): each sends part
    /// of a request head, or one byte, or nothing, and is reopened when the server closes it.
    pub stalled: usize,
}

/// The path of [`Plan::null`] requests.
pub const NULL_PATH: &str = "/v2/inbound-webhooks/delivery-providers/bench/no-such-integration";

/// What one run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Expected answers (200; 404 for [`Plan::null`]) in the measured window.
    pub ok: u64,
    /// Other answers (status, count).
    pub other: Vec<(u16, u64)>,
    /// Transport errors.
    pub errors: u64,
    /// Latencies of 200 answers, microseconds, sorted.
    pub latencies: Vec<u32>,
    /// The measured window.
    pub elapsed: Duration,
}

impl Report {
    /// A latency percentile, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies.get(index).copied().unwrap_or(0)) / 1000.0
    }

    /// 200 answers per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Drives the server according to `plan`; every request carries fresh, unique events.
/// The connections are spread round-robin over several servers (instances sharing one
/// database); events stay unique across all of them.
pub fn drive_many(addrs: &[SocketAddr], plan: Plan) -> Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(drive_async(addrs.to_vec(), plan))
}

async fn drive_async(addrs: Vec<SocketAddr>, plan: Plan) -> Result<Report> {
    anyhow::ensure!(!addrs.is_empty(), "no server to drive");
    let next_event = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let mut tasks = Vec::new();
    for index in 0..plan.connections {
        let next_event = Arc::clone(&next_event);
        let Some(&addr) = addrs.get(index % addrs.len()) else {
            continue;
        };
        let interval = plan
            .rate
            .map(|rate| Duration::from_secs_f64(plan.connections as f64 / rate));
        // Spread the connections' schedules over one interval.
        let offset = interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / plan.connections as f64)
        });
        tasks.push(tokio::spawn(async move {
            worker(
                addr,
                plan,
                next_event,
                start + offset,
                interval,
                measure_from,
                end,
            )
            .await
        }));
    }
    let mut report = Report::default();
    let mut other = std::collections::BTreeMap::new();
    for task in tasks {
        let part = task.await??;
        report.ok += part.ok;
        report.errors += part.errors;
        report.latencies.extend(part.latencies);
        for (status, count) in part.other {
            *other.entry(status).or_insert(0) += count;
        }
    }
    report.other = other.into_iter().collect();
    report.latencies.sort_unstable();
    report.elapsed = plan.duration;
    Ok(report)
}

async fn worker(
    addr: SocketAddr,
    plan: Plan,
    next_event: Arc<AtomicU64>,
    first: Instant,
    interval: Option<Duration>,
    measure_from: Instant,
    end: Instant,
) -> Result<Report> {
    let mut report = Report::default();
    let mut other = std::collections::BTreeMap::new();
    let mut connection = Connection::open(addr).await?;
    let mut scheduled = first;
    tokio::time::sleep_until(first.into()).await;
    let batch = plan.batch_size as u64;
    loop {
        let sent_at = match interval {
            Some(interval) => {
                tokio::time::sleep_until(scheduled.into()).await;
                let at = scheduled;
                scheduled += interval;
                at
            }
            None => Instant::now(),
        };
        if sent_at >= end {
            break;
        }
        let first_event = next_event.fetch_add(batch, Ordering::Relaxed);
        let body = crate::workload::batch(first_event..first_event + batch);
        let path = if plan.null { NULL_PATH } else { PATH };
        let answer = connection.post_to(path, Bytes::from(body)).await;
        let done = Instant::now();
        let measured = sent_at >= measure_from && done <= end;
        let expected = if plan.null { 404 } else { 200 };
        match answer {
            Ok(answer) if answer.status == expected => {
                if measured {
                    report.ok += 1;
                    let micros = done.duration_since(sent_at).as_micros();
                    report
                        .latencies
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            Ok(answer) => {
                if measured {
                    *other.entry(answer.status).or_insert(0) += 1;
                }
            }
            Err(_) => {
                report.errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                connection = Connection::open(addr).await?;
            }
        }
    }
    report.other = other.into_iter().collect();
    Ok(report)
}
