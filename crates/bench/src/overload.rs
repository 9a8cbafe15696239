//! Overload: an open-loop generator offers a fixed request rate whatever the server answers, so
//! a server slower than the offered rate cannot slow the sender down (as a closed loop would).
//! Each scheduled request takes an idle keep-alive connection or opens a new one, up to a cap.
//!
//! What it shows: how many requests the server still accepts per second (goodput) when offered
//! more than it can take, and how fast the ones it refuses get their 503 with `Retry-After`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;

use crate::load::Connection;

/// What the open-loop run measured, over requests scheduled in the measured window.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// Requests scheduled in the measured window.
    pub offered: u64,
    /// Latencies of 200 answers, microseconds (sorted once the run ends).
    pub accepted: Vec<u32>,
    /// Latencies of 503 answers, microseconds (sorted once the run ends).
    pub shed: Vec<u32>,
    /// 503 answers without `Retry-After`.
    pub shed_without_retry_after: u64,
    /// Other statuses.
    pub other: std::collections::BTreeMap<u16, u64>,
    /// Transport errors (refused or reset connections, closes without an answer).
    pub errors: u64,
    /// Requests not answered by the end of the grace period.
    pub unanswered: u64,
    /// Scheduled requests not sent because the generator had no connection left.
    pub not_sent: u64,
    /// The most connections open at once.
    pub peak_connections: usize,
    /// The measured window.
    pub elapsed: Duration,
}

/// A percentile of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted.get(index).copied().unwrap_or(0)) / 1000.0
}

struct Pool {
    idle: Vec<Connection>,
    open: usize,
    cap: usize,
}

/// Offers `rate` single-event requests per second to `addr` for `warmup + duration`, then
/// waits up to `grace` for the answers still outstanding.
pub fn drive_open(
    addr: SocketAddr,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    grace: Duration,
    max_connections: usize,
) -> Result<OpenReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let report = Rc::new(RefCell::new(OpenReport::default()));
        let pool = Rc::new(RefCell::new(Pool {
            idle: Vec::new(),
            open: 0,
            cap: max_connections,
        }));
        let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
        let start = Instant::now() + Duration::from_millis(20);
        let measure_from = start + warmup;
        let end = measure_from + duration;
        let mut next = start;
        let mut sequence = 0u64;
        let mut tasks = Vec::new();
        while next < end {
            tokio::time::sleep_until(next.into()).await;
            let now = Instant::now();
            // Everything due by now goes out, each timed from its own scheduled instant.
            while next <= now && next < end {
                let measured = next >= measure_from;
                if measured {
                    report.borrow_mut().offered += 1;
                }
                let body = Bytes::from(crate::workload::batch(sequence..sequence + 1));
                sequence += 1;
                tasks.push(tokio::task::spawn_local(request(
                    addr,
                    body,
                    next,
                    measured,
                    Rc::clone(&pool),
                    Rc::clone(&report),
                )));
                next += interval;
            }
        }
        let deadline = tokio::time::Instant::from_std(end + grace);
        for task in tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                report.borrow_mut().unanswered += 1;
            }
        }
        let mut report = report.take();
        report.accepted.sort_unstable();
        report.shed.sort_unstable();
        report.elapsed = duration;
        Ok(report)
    })
}

async fn request(
    addr: SocketAddr,
    body: Bytes,
    scheduled: Instant,
    measured: bool,
    pool: Rc<RefCell<Pool>>,
    report: Rc<RefCell<OpenReport>>,
) {
    let reused = {
        let mut pool = pool.borrow_mut();
        let mut found = None;
        while let Some(connection) = pool.idle.pop() {
            if connection.is_closed() {
                pool.open -= 1;
            } else {
                found = Some(connection);
                break;
            }
        }
        if found.is_none() {
            if pool.open >= pool.cap {
                if measured {
                    report.borrow_mut().not_sent += 1;
                }
                return;
            }
            pool.open += 1;
            let open = pool.open;
            let mut report = report.borrow_mut();
            report.peak_connections = report.peak_connections.max(open);
        }
        found
    };
    let connection = match reused {
        Some(connection) => Ok(connection),
        None => Connection::open(addr).await,
    };
    let answer = match connection {
        Ok(mut connection) => {
            let answer = connection.post(body).await;
            let mut pool = pool.borrow_mut();
            if answer.is_ok() && !connection.is_closed() {
                pool.idle.push(connection);
            } else {
                pool.open -= 1;
            }
            answer
        }
        Err(err) => {
            pool.borrow_mut().open -= 1;
            Err(err)
        }
    };
    if !measured {
        return;
    }
    let micros = u32::try_from(scheduled.elapsed().as_micros()).unwrap_or(u32::MAX);
    let mut report = report.borrow_mut();
    match answer {
        Ok(answer) if answer.status == 200 => report.accepted.push(micros),
        Ok(answer) if answer.status == 503 => {
            report.shed.push(micros);
            report.shed_without_retry_after += u64::from(!answer.retry_after);
        }
        Ok(answer) => *report.other.entry(answer.status).or_insert(0) += 1,
        Err(_) => report.errors += 1,
    }
}
