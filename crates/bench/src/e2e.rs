//! End-to-end durable ingest: the release server on a fresh store per scenario (SQLite with
//! `synchronous = "full"`, or a fresh schema of a PostgreSQL database, with one or more
//! instances), driven over loopback.

use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::Options;

use crate::load::{Plan, Report, drive_many};
use crate::server::{Scratch, Server, fresh_pg_schema, write_config, write_config_with_store};

struct Outcome {
    report: Report,
    /// Stalled connections the server closed (and the bench reopened).
    reopened: u64,
    peak_rss_kib: Option<u64>,
    server_cpu: Option<f64>,
    commits: (f64, f64, f64),
    /// SQLite only: bytes the server wrote per stored event (WAL and database file), and the
    /// database's size (with its WAL) per stored event.
    bytes_per_event: Option<(f64, f64)>,
}

/// A configuration on a fresh store: a SQLite file in `scratch`, or a fresh PostgreSQL schema.
fn fresh_config(options: &Options, scratch: &Scratch) -> Result<std::path::PathBuf> {
    match &options.store_url {
        Some(url) => write_config_with_store(
            &scratch.0,
            &fresh_pg_schema(url, "tidings_bench")?,
            &options.synchronous,
            "",
        ),
        None => write_config(&scratch.0, &options.synchronous, ""),
    }
}

fn scenario(options: &Options, plan: Plan) -> Result<Outcome> {
    let scratch = Scratch::new("bench")?;
    let config = fresh_config(options, &scratch)?;
    let instances = if options.store_url.is_some() {
        options.instances.max(1)
    } else {
        1
    };
    let servers = (0..instances)
        .map(|_| Server::start(&options.server_binary()?, &config))
        .collect::<Result<Vec<_>>>()?;
    let server = servers.first().context("no server started")?;
    let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
    let cpu_before = server.cpu_seconds();
    let stalled = crate::stall::Stalled::hold(server.addr, plan.stalled);
    let report = drive_many(&addrs, plan)?;
    let reopened = stalled.release();
    let server_cpu = cpu_before
        .zip(server.cpu_seconds())
        .map(|(before, after)| (after - before) / (plan.duration + plan.warmup).as_secs_f64());
    let peak_rss_kib = server.peak_rss_kib();
    let commits = crate::load::commit_stats(server.addr).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
    // The server started on an empty store, so what it wrote since is the workload's.
    let written = server.written_bytes();
    for server in servers {
        server.kill();
    }
    let bytes_per_event = match options.store_url {
        Some(_) => None,
        None => written.and_then(|written| sqlite_bytes_per_event(&scratch.0, written)),
    };
    Ok(Outcome {
        report,
        peak_rss_kib,
        server_cpu,
        commits,
        reopened,
        bytes_per_event,
    })
}

/// `(written, stored)` bytes per event stored in the bench's SQLite database.
fn sqlite_bytes_per_event(dir: &std::path::Path, written: u64) -> Option<(f64, f64)> {
    let db = dir.join("tidings.db");
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let stored = size(&db) + size(&dir.join("tidings.db-wal"));
    let conn = rusqlite::Connection::open(&db).ok()?;
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .ok()?;
    let events = events.max(1) as f64;
    Some((written as f64 / events, stored as f64 / events))
}

/// The bare hyper + serde_json baseline ([`crate::baseline`]) under the same plan.
fn baseline_scenario(plan: Plan) -> Result<Outcome> {
    let server = crate::baseline::start()?;
    let cpu_before = server.cpu_seconds();
    let report = drive_many(&[server.addr], plan)?;
    let server_cpu = cpu_before
        .zip(server.cpu_seconds())
        .map(|(before, after)| (after - before) / (plan.duration + plan.warmup).as_secs_f64());
    let peak_rss_kib = server.peak_rss_kib();
    server.kill();
    Ok(Outcome {
        report,
        reopened: 0,
        peak_rss_kib,
        server_cpu,
        commits: (f64::NAN, f64::NAN, f64::NAN),
        bytes_per_event: None,
    })
}

fn print(name: &str, plan: &Plan, outcome: &Outcome) {
    let report = &outcome.report;
    let other: Vec<String> = report
        .other
        .iter()
        .map(|(status, count)| format!("{status}x{count}"))
        .collect();
    println!(
        "{name:<12} conns={:<3} batch={:<4} rate={:<9} req/s={:<9.0} events/s={:<10.0} p50={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms peak_rss={:.1}MiB server_cpu={:.2}cores non200=[{}] errors={} commits={:.0} req/commit={:.1} ms/commit={:.2} stalled={} stalled_closed_by_server={} written/event={} stored/event={} load={}",
        plan.connections,
        plan.batch_size,
        plan.rate.map_or("max".to_owned(), |r| format!("{r:.0}")),
        report.rate(),
        report.rate() * plan.batch_size as f64,
        report.percentile_ms(0.50),
        report.percentile_ms(0.99),
        report.percentile_ms(0.999),
        report.percentile_ms(1.0),
        outcome.peak_rss_kib.unwrap_or(0) as f64 / 1024.0,
        outcome.server_cpu.unwrap_or(f64::NAN),
        other.join(" "),
        report.errors,
        outcome.commits.0,
        outcome.commits.1 / outcome.commits.0,
        outcome.commits.2 * 1000.0 / outcome.commits.0,
        plan.stalled,
        outcome.reopened,
        outcome
            .bytes_per_event
            .map_or("-".to_owned(), |(w, _)| format!("{w:.0}B")),
        outcome
            .bytes_per_event
            .map_or("-".to_owned(), |(_, s)| format!("{s:.0}B")),
        crate::load_average(),
    );
}

/// Runs the end-to-end scenarios.
pub fn run(options: &Options) -> Result<()> {
    let duration = Duration::from_secs_f64(options.seconds);
    let warmup = Duration::from_secs_f64((options.seconds / 5.0).clamp(0.2, 2.0));
    let wanted = |name: &str| {
        options
            .only
            .as_deref()
            .map_or(name != "null", |only| only.split(',').any(|o| o == name))
    };
    println!(
        "# e2e: release server, {} x{}, loopback, load generator on one thread; {}s per scenario; load {}",
        options.store_url.as_ref().map_or_else(
            || format!("SQLite synchronous={}", options.synchronous),
            |_| "PostgreSQL".to_owned()
        ),
        if options.store_url.is_some() {
            options.instances.max(1)
        } else {
            1
        },
        options.seconds,
        crate::load_average()
    );
    println!(
        "# targets: >= 20,000 single-event req/s; >= 200,000 events/s in 100-event batches; p99 < 10 ms at half max rate; peak RSS < 100 MiB"
    );
    let single = Plan {
        connections: options.connections,
        batch_size: 1,
        duration,
        warmup,
        rate: None,
        null: false,
        stalled: 0,
    };
    let batch = Plan {
        connections: options.batch_connections,
        batch_size: options.batch_size,
        duration,
        warmup,
        rate: None,
        null: false,
        stalled: 0,
    };
    if wanted("null") {
        // The ceiling the HTTP stack and the load generator leave: same requests, answered 404
        // after routing, before auth, parsing and the store.
        let null = Plan {
            null: true,
            ..single
        };
        let outcome = scenario(options, null)?;
        print("null-single", &null, &outcome);
        let half = Plan {
            rate: Some((outcome.report.rate() / 2.0).max(1.0)),
            ..null
        };
        let outcome = scenario(options, half)?;
        print("null-half", &half, &outcome);
        let same = Plan {
            rate: Some(11_500.0),
            ..null
        };
        let outcome = scenario(options, same)?;
        print("null-11.5k", &same, &outcome);
    }
    // The bare server first: the durable single-event rate is reported as a ratio of it.
    let bare_rate = if wanted("bare") {
        let outcome = baseline_scenario(single)?;
        print("bare-single", &single, &outcome);
        Some(outcome.report.rate())
    } else {
        None
    };
    for (name, plan) in [("single", single), ("batch", batch)] {
        let overload = name == "single" && wanted("overload");
        let slowloris = name == "single" && wanted("slowloris");
        if !(wanted(name) || wanted(&format!("{name}-half")) || overload || slowloris) {
            continue;
        }
        let max = scenario(options, plan)?;
        if wanted(name) {
            print(name, &plan, &max);
            if let (Some(bare), "single") = (bare_rate, name) {
                println!(
                    "ratio        durable single / bare = {:.2} (goal >= 0.5)",
                    max.report.rate() / bare
                );
            }
        }
        if overload {
            overload_scenario(options, 2.0 * max.report.rate(), warmup, duration)?;
        }
        if wanted(&format!("{name}-half")) || slowloris {
            let half = Plan {
                rate: Some((max.report.rate() / 2.0).max(1.0)),
                ..plan
            };
            let outcome = scenario(options, half)?;
            print(&format!("{name}-half"), &half, &outcome);
            if name == "single" && wanted("slowloris") {
                // The same half rate while 2,000 stalled connections are held open.
                let slow = Plan {
                    stalled: 2000,
                    ..half
                };
                let outcome = scenario(options, slow)?;
                print("slowloris", &slow, &outcome);
            }
        }
    }
    Ok(())
}

/// Offers twice the measured single-event maximum, open-loop, to a fresh server with default
/// limits: the server should keep accepting about its maximum and shed the rest with a quick
/// 503 and `Retry-After`.
fn overload_scenario(
    options: &Options,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> Result<()> {
    let scratch = Scratch::new("bench")?;
    let config = fresh_config(options, &scratch)?;
    let server = Server::start(&options.server_binary()?, &config)?;
    let cpu_before = server.cpu_seconds();
    // Below the server's default `max_connections` (4096), so refusals come from `max_in_flight`.
    let report = crate::overload::drive_open(
        server.addr,
        rate,
        warmup,
        duration,
        Duration::from_secs(35),
        2048,
    )?;
    let server_cpu = cpu_before
        .zip(server.cpu_seconds())
        .map(|(before, after)| (after - before) / (duration + warmup).as_secs_f64());
    let peak_rss_kib = server.peak_rss_kib();
    server.kill();
    let secs = report.elapsed.as_secs_f64();
    let pct = crate::overload::percentile_ms;
    println!(
        "overload     offered={:.0}/s accepted(200)={:.0}/s shed(503)={:.0}/s 200_p50={:.2}ms 200_p99={:.2}ms 503_p50={:.2}ms 503_p99={:.2}ms 503_max={:.2}ms 503_without_retry_after={} other={:?} errors={} unanswered={} not_sent={} peak_connections={} peak_rss={:.1}MiB server_cpu={:.2}cores load={}",
        report.offered as f64 / secs,
        report.accepted.len() as f64 / secs,
        report.shed.len() as f64 / secs,
        pct(&report.accepted, 0.50),
        pct(&report.accepted, 0.99),
        pct(&report.shed, 0.50),
        pct(&report.shed, 0.99),
        pct(&report.shed, 1.0),
        report.shed_without_retry_after,
        report.other,
        report.errors,
        report.unanswered,
        report.not_sent,
        report.peak_connections,
        peak_rss_kib.unwrap_or(0) as f64 / 1024.0,
        server_cpu.unwrap_or(f64::NAN),
        crate::load_average(),
    );
    Ok(())
}
