//! `tidings-bench`: Tidings' benchmarks and crash test. `cargo xtask bench` and
//! `cargo xtask crash-test` build it in release and run it; it prints numbers and asserts none
//! (the crash test's verdict is its exit code).
//!
//! - `parse [--seconds S] [--provider ID]`: parse-and-normalize throughput per provider over
//!   every fixture, on one core, and a 1,000-event SendGrid batch.
//! - `e2e --server PATH [--seconds S] [--connections N] [--batch-connections N]`: the release
//!   server on a temporary durable SQLite store, driven over loopback.
//! - `crash --server PATH [--cycles N] [--store-url postgres://... [--instances N]]`: kill -9
//!   under load, restart, check every acknowledged event is stored exactly once and every
//!   message's status is the fold of its events.
//! - `memory --server PATH`: resident memory under held 1 MiB bodies and concurrent 1 MB
//!   batches of tiny events, with the default limits (issue 14 item 7).
//! - `suppressions [--entries N] [--lookups N] [--store-url URL]`: the suppression lookup in
//!   process on a list of a million entries (p50/p99 of hits and misses).
//! - `outbound --server PATH [--events N] [--max-in-flight N]`: events delivered per second to
//!   a local receiver through one outbound endpoint.
//! - `bare-server`: the baseline of `e2e --only bare`: a bare hyper + serde_json server that
//!   parses the same requests and answers without storing.
//! - `fuzz-seeds --out DIR`: seed corpora for every fuzz target, one directory each, from the
//!   fixtures.

// A binary crate: `pub` marks each module's interface to the rest of the binary.
#![allow(unreachable_pub)]

mod baseline;
mod crash;
mod e2e;
mod load;
mod memory;
mod outbound;
mod overload;
mod parse;
mod receiver;
mod seeds;
mod server;
mod stall;
mod suppressions;
mod workload;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use tidings_providers as _;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str);
    let options = Options::parse(args.get(1..).unwrap_or_default())?;
    match mode {
        Some("parse") => parse::run(&options),
        Some("e2e") => e2e::run(&options),
        Some("crash") => crash::run(&options),
        Some("memory") => memory::run(&options),
        Some("suppressions") => suppressions::run(&options),
        Some("outbound") => outbound::run(&options),
        Some("bare-server") => baseline::serve(),
        Some("fuzz-seeds") => seeds::write(&options.out.clone().context("--out DIR is required")?),
        _ => {
            eprintln!(
                "usage: tidings-bench <mode> [options]\n\n\
                 modes:\n  \
                 parse [--seconds S] [--provider ID]\n  \
                 e2e --server PATH [--seconds S] [--connections N] [--batch-connections N] [--batch-size N] [--only single,single-half,batch,batch-half,overload,slowloris,null]\n  \
                 crash --server PATH [--cycles N] [--connections N] [--store-url URL [--instances N]] [--outbound]\n  \
                 memory --server PATH\n  \
                 suppressions [--entries N] [--lookups N] [--store-url URL] [--no-feed]\n  \
                 outbound --server PATH [--events N] [--max-in-flight N] [--batch-size N] [--batch-connections N] [--rate R [--endpoints N] [--connections N]]\n  \
                 fuzz-seeds --out DIR"
            );
            bail!("unknown or missing mode")
        }
    }
}

/// Command-line options shared by the modes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per measurement.
    pub seconds: f64,
    /// Only this provider (parse mode).
    pub provider: Option<String>,
    /// The `tidings` binary (e2e and crash modes).
    pub server: Option<PathBuf>,
    /// Connections for single-event requests.
    pub connections: usize,
    /// Connections for batch requests.
    pub batch_connections: usize,
    /// Events per batch request.
    pub batch_size: usize,
    /// Crash cycles.
    pub cycles: usize,
    /// Only these e2e scenarios (comma-separated: single, batch, single-half, batch-half,
    /// overload, slowloris, null).
    pub only: Option<String>,
    /// `synchronous` of the store: full (default) or normal.
    pub synchronous: String,
    /// A PostgreSQL URL: the e2e scenarios (a fresh schema per scenario) and the crash test (a
    /// fresh schema per run) use PostgreSQL instead of SQLite.
    pub store_url: Option<String>,
    /// Server instances sharing the store (PostgreSQL only), load spread over all of them.
    pub instances: usize,
    /// Output directory (fuzz-seeds mode).
    pub out: Option<PathBuf>,
    /// Suppression list entries (suppressions mode).
    pub entries: usize,
    /// Lookups measured (suppressions mode).
    pub lookups: usize,
    /// Whether the filling events feed the list (suppressions mode; `--no-feed` measures the
    /// same ingest without the fold, for comparison).
    pub feed: bool,
    /// Crash test: also deliver every event to a local receiver through an outbound endpoint,
    /// and check that every acknowledged event reached it.
    pub outbound: bool,
    /// Events posted (outbound mode).
    pub events: usize,
    /// The endpoint's `max_in_flight` (outbound mode).
    pub max_in_flight: usize,
    /// Outbound mode: post single events at this rate (events/s) instead of as fast as possible.
    pub rate: f64,
    /// Outbound mode at a rate: endpoints configured.
    pub endpoints: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options {
            seconds: 10.0,
            provider: None,
            server: None,
            connections: 64,
            batch_connections: 16,
            batch_size: 100,
            cycles: 100,
            only: None,
            synchronous: "full".into(),
            store_url: None,
            instances: 1,
            out: None,
            entries: 1_000_000,
            lookups: 100_000,
            feed: true,
            outbound: false,
            events: 20_000,
            max_in_flight: 16,
            rate: 0.0,
            endpoints: 1,
        };
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            if flag == "--no-feed" {
                options.feed = false;
                continue;
            }
            let mut value = || {
                iter.next()
                    .with_context(|| format!("{flag} needs a value"))
                    .cloned()
            };
            match flag.as_str() {
                "--seconds" => options.seconds = value()?.parse()?,
                "--provider" => options.provider = Some(value()?),
                "--server" => options.server = Some(PathBuf::from(value()?)),
                "--connections" => options.connections = value()?.parse()?,
                "--batch-connections" => options.batch_connections = value()?.parse()?,
                "--batch-size" => options.batch_size = value()?.parse()?,
                "--cycles" => options.cycles = value()?.parse()?,
                "--only" => options.only = Some(value()?),
                "--synchronous" => options.synchronous = value()?,
                "--store-url" => options.store_url = Some(value()?),
                "--instances" => options.instances = value()?.parse()?,
                "--out" => options.out = Some(PathBuf::from(value()?)),
                "--entries" => options.entries = value()?.parse()?,
                "--lookups" => options.lookups = value()?.parse()?,
                "--outbound" => options.outbound = true,
                "--events" => options.events = value()?.parse()?,
                "--max-in-flight" => options.max_in_flight = value()?.parse()?,
                "--rate" => options.rate = value()?.parse()?,
                "--endpoints" => options.endpoints = value()?.parse()?,
                other => bail!("unknown option `{other}`"),
            }
        }
        Ok(options)
    }

    /// The server binary, required by the modes that start one.
    pub fn server_binary(&self) -> Result<PathBuf> {
        self.server
            .clone()
            .context("--server PATH (the release `tidings` binary) is required")
    }
}

/// The machine's load average (1, 5, 15 min), as `uptime` shows it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}
