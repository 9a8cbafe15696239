//! `suppressions`: the suppression lookup in process (`Store::suppression`, the call behind
//! `GET .../suppressions/{recipient}`) on a list of `--entries` recipients (default 1,000,000),
//! filled through the real write path (complaint events in groups), then `--lookups` random
//! lookups, half of suppressed recipients and half of unknown ones, one at a time.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{TimeZone, Utc};
use tidings_core::{Event, EventBody, Status};
use tidings_store::{Ingest, Store, StoreOptions};

use crate::Options;

/// Events per ingest while filling.
const FILL_BATCH: usize = 1000;
/// Ingests in flight while filling (so the writer groups them).
const FILL_PARALLEL: usize = 8;

fn recipient(n: usize) -> String {
    format!("user{n:08}@example.com")
}

fn complaint(n: usize) -> Event {
    Event {
        id: format!("m{n}"),
        body: EventBody {
            status: Status::Complaint,
            date: Utc
                .timestamp_opt(1_700_000_000 + n as i64, 0)
                .single()
                .unwrap_or_else(Utc::now),
            external_id: None,
            attempts: None,
            response: None,
            row: None,
        },
        dedup_key: format!("bench:{n}"),
        provider_event: "spamreport".into(),
        recipient: Some(recipient(n)),
        failure: None,
        code: None,
        automated: None,
    }
}

fn ingest(events: Vec<Event>, feed: bool) -> Ingest {
    Ingest {
        environment_id: "bench".into(),
        integration_id: "sendgrid".into(),
        provider: "sendgrid".into(),
        received_at: Utc::now(),
        content_type: Some("application/json".into()),
        method: "POST".into(),
        authentication: "api_key".into(),
        url: "/v2/inbound-webhooks/delivery-providers/env/sendgrid".into(),
        headers_json: "{}".into(),
        body: b"[]".to_vec(),
        events,
        ignored_json: "[]".into(),
        idempotency: None,
        feeds_suppressions: feed,
        // Each request stands for a distinct body (one raw request is kept per body).
        body_hash: {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_le_bytes()
                .to_vec()
        },
        nonce: None,
        admission: tidings_store::Admission::new(),
    }
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(index)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000_000.0)
}

pub fn run(options: &Options) -> Result<()> {
    let entries = options.entries;
    let lookups = options.lookups;
    let dir = tempfile_dir()?;
    let url = match &options.store_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", dir.join("bench.db").display()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let options = options.clone();
    runtime.block_on(async move {
        let store = Store::open(
            &url,
            StoreOptions {
                // Filling a million entries durably would measure the disk, not the lookup.
                synchronous_full: false,
                ..StoreOptions::default()
            },
        )
        .await?;
        let started = Instant::now();
        let mut next = 0;
        while next < entries {
            let mut tasks = Vec::new();
            for _ in 0..FILL_PARALLEL {
                if next >= entries {
                    break;
                }
                let end = (next + FILL_BATCH).min(entries);
                let events = (next..end).map(complaint).collect();
                next = end;
                let store = store.clone();
                let feed = options.feed;
                tasks.push(tokio::spawn(async move {
                    store.ingest(ingest(events, feed)).await
                }));
            }
            for task in tasks {
                task.await??;
            }
        }
        let fill = started.elapsed();
        println!(
            "filled {entries} complaints in {:.1} s ({:.0} events/s through ingest, store {}, {})",
            fill.as_secs_f64(),
            entries as f64 / fill.as_secs_f64(),
            store.backend(),
            if options.feed {
                "feeding the list"
            } else {
                "not feeding the list"
            }
        );
        if !options.feed {
            return Ok(());
        }
        let mut rng = Rng(42);
        let mut hits = Vec::with_capacity(lookups / 2);
        let mut misses = Vec::with_capacity(lookups / 2);
        let now = Utc::now();
        for i in 0..lookups {
            let hit = i % 2 == 0;
            let n = rng.below(entries);
            let who = if hit {
                recipient(n)
            } else {
                format!("nobody{n}@example.com")
            };
            let started = Instant::now();
            let found = store.suppression("bench", &who, now).await?;
            let elapsed = started.elapsed();
            anyhow::ensure!(found.is_some() == hit, "wrong answer for {who}");
            if hit {
                hits.push(elapsed);
            } else {
                misses.push(elapsed);
            }
        }
        for (name, mut samples) in [("suppressed (200)", hits), ("not suppressed (404)", misses)] {
            samples.sort();
            println!(
                "lookup {name}: n={} p50={:.0} µs p99={:.0} µs p99.9={:.0} µs max={:.0} µs",
                samples.len(),
                percentile(&samples, 0.5),
                percentile(&samples, 0.99),
                percentile(&samples, 0.999),
                percentile(&samples, 1.0),
            );
        }
        println!("load average: {}", crate::load_average());
        Ok::<(), anyhow::Error>(())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("tidings-bench-suppressions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
