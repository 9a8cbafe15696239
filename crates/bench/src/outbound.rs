//! Outbound delivery throughput: the server delivers every event it stores to a local receiver
//! through one endpoint; events are posted in batches as fast as the server takes them, and the
//! delivery rate is measured at the receiver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;

use crate::Options;
use crate::load::Connection;
use crate::receiver::{Receiver, endpoint_config, named_endpoint_config};
use crate::server::{Scratch, Server, write_config};
use crate::workload::{KINDS, batch, message_of};

/// Runs the benchmark: as fast as possible, or at `--rate` with `--endpoints`.
pub fn run(options: &Options) -> Result<()> {
    if options.rate > 0.0 {
        return paced(options);
    }
    let binary = options.server_binary()?;
    let scratch = Scratch::new("outbound")?;
    let config = write_config(&scratch.0, &options.synchronous, "")?;
    let receiver = Receiver::start()?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&endpoint_config(receiver.addr, options.max_in_flight));
    std::fs::write(&config, text)?;
    let server = Server::start(&binary, &config)?;
    let total = options.events as u64;
    let size = options.batch_size.max(1) as u64;
    let connections = options.batch_connections.max(1) as u64;
    let addr = server.addr;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let next = Arc::clone(&next);
            tasks.push(tokio::spawn(async move {
                let mut connection = Connection::open(addr).await?;
                loop {
                    let first = next.fetch_add(size, std::sync::atomic::Ordering::SeqCst);
                    if first >= total {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let body = Bytes::from(batch(first..(first + size).min(total)));
                    let answer = connection.post(body).await?;
                    if answer.status != 200 {
                        bail!("ingest answered {}", answer.status);
                    }
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let ingested = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = receiver
            .seen
            .lock()
            .map(|seen| seen.ids.len() as u64 >= total)
            .unwrap_or(true);
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = started.elapsed();
    let peak = server.peak_rss_kib().unwrap_or(0);
    let seen = receiver
        .seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let span = match (seen.first_at, seen.last_at) {
        (Some(first), Some(last)) => last.duration_since(first),
        _ => Duration::ZERO,
    };
    println!(
        "outbound: events={total} delivered={} requests={} repeats={} max_in_flight={} ingest={:.2}s ingest_rate={:.0}/s delivered_in={:.2}s delivery_rate={:.0}/s first_to_last_delivery={:.2}s peak_rss={}MiB load={}",
        seen.ids.len(),
        seen.requests,
        seen.duplicates(),
        options.max_in_flight,
        ingested.as_secs_f64(),
        total as f64 / ingested.as_secs_f64(),
        all.as_secs_f64(),
        seen.ids.len() as f64 / all.as_secs_f64(),
        span.as_secs_f64(),
        peak / 1024,
        crate::load_average(),
    );
    if (seen.ids.len() as u64) < total {
        bail!("not every event was delivered within 10 minutes");
    }
    Ok(())
}

/// Single-event requests at a fixed rate to a server with `--endpoints` endpoints (all on the
/// receiver): the ingest rate achieved, and the lag from each event's 200 to its arrival at
/// each endpoint (p50, p99, max).
fn paced(options: &Options) -> Result<()> {
    let binary = options.server_binary()?;
    let scratch = Scratch::new("outbound-paced")?;
    let config = write_config(&scratch.0, &options.synchronous, "")?;
    let receiver = Receiver::start()?;
    let endpoints = options.endpoints;
    let mut text = std::fs::read_to_string(&config)?;
    for index in 0..endpoints {
        text.push_str(&named_endpoint_config(
            &format!("e{index}"),
            receiver.addr,
            options.max_in_flight,
        ));
    }
    std::fs::write(&config, text)?;
    let server = Server::start(&binary, &config)?;
    let total = options.events as u64;
    let connections = options.connections.max(1) as u64;
    let interval = Duration::from_secs_f64(connections as f64 / options.rate);
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let acks = runtime.block_on(async {
        let mut tasks = Vec::new();
        for lane in 0..connections {
            tasks.push(tokio::spawn(async move {
                let mut connection = Connection::open(addr).await?;
                let mut acks = Vec::new();
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = lane;
                while n < total {
                    ticker.tick().await;
                    let answer = connection.post(Bytes::from(batch([n]))).await?;
                    if answer.status != 200 {
                        bail!("ingest answered {}", answer.status);
                    }
                    acks.push((n, Instant::now()));
                    n += connections;
                }
                Ok::<_, anyhow::Error>(acks)
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await??);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    let ingest = started.elapsed();
    let wanted = total as usize * endpoints;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let done = receiver
            .seen
            .lock()
            .map(|seen| seen.arrivals.len() >= wanted)
            .unwrap_or(true);
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = receiver
        .seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut lags = Vec::new();
    for (n, acked) in &acks {
        let key = (
            format!("msg-{}", message_of(*n)),
            KINDS
                .get((n % 3) as usize)
                .copied()
                .unwrap_or("")
                .to_owned(),
        );
        for index in 0..endpoints {
            let path = format!("/hooks/e{index}");
            if let Some(arrived) = seen.arrivals.get(&(path, key.clone())) {
                lags.push(arrived.saturating_duration_since(*acked));
            }
        }
    }
    lags.sort();
    let at = |q: f64| {
        lags.get(((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "outbound-paced: endpoints={endpoints} target_rate={:.0}/s achieved_rate={:.0}/s events={total} deliveries={}/{wanted} lag_p50={:.1}ms lag_p99={:.1}ms lag_max={:.1}ms peak_rss={}MiB load={}",
        options.rate,
        acks.len() as f64 / ingest.as_secs_f64(),
        lags.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        server.peak_rss_kib().unwrap_or(0) / 1024,
        crate::load_average(),
    );
    if lags.len() < wanted {
        bail!("not every event reached every endpoint within 5 minutes");
    }
    Ok(())
}
