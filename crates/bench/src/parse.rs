//! Parse-and-normalize throughput per provider over every fixture, on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use tidings_core::{ProviderParser, RawRequest, registry};

use crate::Options;

struct Measured {
    requests: u64,
    events: u64,
    bytes: u64,
    elapsed: Duration,
}

/// Parses `requests` round-robin for about `budget`, after a short warm-up.
fn measure(parser: &dyn ProviderParser, requests: &[RawRequest<'_>], budget: Duration) -> Measured {
    let run = |budget: Duration| {
        let started = Instant::now();
        let mut measured = Measured {
            requests: 0,
            events: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
        };
        loop {
            for request in requests {
                if let Ok(parsed) = parser.read(black_box(request)) {
                    measured.events += (parsed.events.len() + parsed.ignored.len()) as u64;
                    black_box(parsed);
                }
                measured.requests += 1;
                measured.bytes += request.body.len() as u64;
            }
            measured.elapsed = started.elapsed();
            if measured.elapsed >= budget {
                return measured;
            }
        }
    };
    run(budget / 10);
    run(budget)
}

fn print_row(name: &str, fixtures: usize, m: &Measured) {
    let secs = m.elapsed.as_secs_f64();
    println!(
        "{name:<20} {fixtures:>8} {:>14.0} {:>12.1} {:>12.2}",
        m.events as f64 / secs,
        m.bytes as f64 / secs / 1e6,
        secs * 1e6 / m.requests.max(1) as f64,
    );
}

/// Runs the parse benchmark.
pub fn run(options: &Options) -> Result<()> {
    let budget = Duration::from_secs_f64((options.seconds / 10.0).clamp(0.05, 5.0));
    println!(
        "# parse: one thread, {budget:?} per provider, load {}",
        crate::load_average()
    );
    println!(
        "{:<20} {:>8} {:>14} {:>12} {:>12}",
        "provider", "fixtures", "events/s", "MB/s", "µs/request"
    );
    let fixtures = tidings_fixtures::all();
    for parser in registry().iter() {
        let id = parser.id();
        if options.provider.as_deref().is_some_and(|p| p != id) {
            continue;
        }
        let own: Vec<_> = fixtures.iter().filter(|f| f.provider == id).collect();
        if own.is_empty() {
            continue;
        }
        let requests: Vec<RawRequest<'_>> = own.iter().map(|f| f.request()).collect();
        let measured = measure(parser, &requests, budget);
        print_row(id, own.len(), &measured);
    }

    if options.provider.as_deref().is_none_or(|p| p == "sendgrid")
        && let Some(parser) = registry().get("sendgrid")
    {
        let body = crate::workload::batch(0..1000);
        let headers = http::HeaderMap::new();
        let received_at: DateTime<Utc> =
            DateTime::from_timestamp(1_764_300_000, 0).unwrap_or_default();
        let request = RawRequest {
            method: "POST",
            body: body.as_bytes(),
            content_type: Some("application/json"),
            headers: &headers,
            url: None,
            received_at,
        };
        let measured = measure(parser, std::slice::from_ref(&request), budget * 4);
        println!();
        println!(
            "# sendgrid 1,000-event batch ({} bytes, {} bytes/event): target >= 1,500,000 events/s on one core",
            body.len(),
            body.len() / 1000
        );
        print_row("sendgrid-batch-1000", 1, &measured);
    }
    Ok(())
}
