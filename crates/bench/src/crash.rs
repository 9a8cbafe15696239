//! The crash test: drive concurrent load (single events and batches, duplicates of earlier
//! bodies, the same body on two connections at once), SIGKILL the server at a random moment,
//! restart it on the same store, and repeat. Then read the store (the SQLite file, or the
//! PostgreSQL schema with `--store-url`, where `--instances N` servers share it and are all
//! killed together) and check that every event that got a 200 is stored exactly once and every
//! message's status is the fold of its stored events.
//!
//! Each event is identified by (message id, status): event `n` is the `n % 3`-th of
//! `processed`, `delivered`, `open` of message `n / 3`, so no two distinct events share it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tidings_core::Event;
use tidings_core::fold::{Fact, MessageState};

use crate::Options;
use crate::load::Connection;
use crate::receiver::{Receiver, endpoint_config};
use crate::server::{Scratch, Server, fresh_pg_schema, write_config, write_config_with_store};
use crate::workload::{KINDS, Rng, STATUSES, batch, message_of};

/// What the clients know: which events were acknowledged, and the bodies sent so far.
#[derive(Default)]
struct Ledger {
    next_event: u64,
    acked: BTreeSet<u64>,
    sent: Vec<(Bytes, Vec<u64>)>,
    requests_acked: u64,
    duplicate_sends: u64,
    non_200: BTreeMap<u16, u64>,
}

/// Runs the crash test.
pub fn run(options: &Options) -> Result<()> {
    let binary = options.server_binary()?;
    let scratch = Scratch::new("crash")?;
    let (config, store, instances) = match &options.store_url {
        Some(url) => {
            let url = fresh_pg_schema(url, "tidings_crash")?;
            let config = write_config_with_store(&scratch.0, &url, &options.synchronous, "")?;
            (config, StoreAt::Postgres(url), options.instances.max(1))
        }
        None => {
            let config = write_config(&scratch.0, &options.synchronous, "")?;
            (config, StoreAt::Sqlite(scratch.0.join("tidings.db")), 1)
        }
    };
    // Outbound mode: every event also goes to a local receiver that outlives the kills.
    let receiver = if options.outbound {
        let receiver = Receiver::start()?;
        let mut text = std::fs::read_to_string(&config)?;
        text.push_str(&endpoint_config(receiver.addr, 16));
        std::fs::write(&config, text)?;
        Some(receiver)
    } else {
        None
    };
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = Rng::from_time(7);
    let mut ready = Vec::new();
    println!(
        "# crash test: {} cycles, {} connections, {}, load {}",
        options.cycles,
        options.connections,
        store.describe(&options.synchronous, instances),
        crate::load_average()
    );
    let started = Instant::now();
    for cycle in 0..options.cycles {
        let servers = (0..instances)
            .map(|_| Server::start(&binary, &config))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("restarting the server (cycle {cycle})"))?;
        ready.extend(servers.iter().map(|server| server.ready_after));
        let kill_after = Duration::from_millis(30 + rng.below(600));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let addrs: Vec<SocketAddr> = servers.iter().map(|server| server.addr).collect();
        let seed = rng.next_u64();
        let connections = options.connections;
        let shared = Arc::clone(&ledger);
        runtime.block_on(async move {
            let mut tasks = Vec::new();
            for index in 0..connections {
                let ledger = Arc::clone(&shared);
                let addr = addrs.get(index % addrs.len()).copied();
                tasks.push(tokio::spawn(client(addr, ledger, seed ^ index as u64)));
            }
            tokio::time::sleep(kill_after).await;
            // The kill lands while requests are in flight on every connection.
            for server in servers {
                server.kill();
            }
            for task in tasks {
                let _ = task.await;
            }
        });
        drop(runtime);
        if (cycle + 1) % 10 == 0 || cycle + 1 == options.cycles {
            let ledger = ledger.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            eprintln!(
                "cycle {:>4}: {} events acknowledged so far",
                cycle + 1,
                ledger.acked.len()
            );
        }
    }
    let elapsed = started.elapsed();
    let ledger = ledger.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let verdict = check(&store.read()?, &ledger)?;
    ready.sort();
    let slowest_ready = ready.last().copied().unwrap_or_default();
    let median_ready = ready.get(ready.len() / 2).copied().unwrap_or_default();
    println!(
        "cycles={} requests_acked={} events_acked={} events_sent={} duplicate_sends={} stored_events={} messages={} lost={} duplicated={} status_mismatches={} non200={:?} restart_to_ready_median={:.0}ms max={:.0}ms elapsed={:.0}s load={}",
        options.cycles,
        ledger.requests_acked,
        ledger.acked.len(),
        ledger.next_event,
        ledger.duplicate_sends,
        verdict.stored,
        verdict.messages,
        verdict.lost,
        verdict.duplicated,
        verdict.mismatches,
        ledger.non_200,
        median_ready.as_secs_f64() * 1000.0,
        slowest_ready.as_secs_f64() * 1000.0,
        elapsed.as_secs_f64(),
        crate::load_average(),
    );
    if verdict.lost + verdict.duplicated + verdict.mismatches > 0 {
        bail!("the crash test found violations");
    }
    if let Some(receiver) = &receiver {
        check_outbound(receiver, &ledger, &binary, &config, instances)?;
    }
    if ledger.acked.is_empty() {
        bail!("no event was acknowledged: the load never reached the server");
    }
    Ok(())
}

/// One client connection: posts until the server dies.
async fn client(addr: Option<SocketAddr>, ledger: Arc<Mutex<Ledger>>, seed: u64) {
    let mut rng = Rng::new(seed);
    let Some(addr) = addr else {
        return;
    };
    let Ok(mut connection) = Connection::open(addr).await else {
        return;
    };
    loop {
        let (body, events, duplicate) = {
            let Ok(mut ledger) = ledger.lock() else {
                return;
            };
            let roll = rng.below(100);
            if roll < 20 && !ledger.sent.is_empty() {
                // A provider retry: the same body again, acknowledged or not. Recent bodies are
                // likelier, so some land while the first copy is still being committed.
                let len = ledger.sent.len() as u64;
                let back = rng.below(len.min(if roll < 10 { 8 } else { len }));
                let index = (len - 1 - back) as usize;
                match ledger.sent.get(index) {
                    Some((body, events)) => (body.clone(), events.clone(), true),
                    None => continue,
                }
            } else {
                let size = if roll < 60 { 1 } else { 10 };
                let first = ledger.next_event;
                ledger.next_event += size;
                // Shuffle a batch's events so a message's events arrive out of order.
                let mut events: Vec<u64> = (first..first + size).collect();
                for i in (1..events.len()).rev() {
                    events.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let body = Bytes::from(batch(events.iter().copied()));
                if ledger.sent.len() >= 4096 {
                    ledger.sent.drain(..2048);
                }
                ledger.sent.push((body.clone(), events.clone()));
                (body, events, false)
            }
        };
        match connection.post(body).await {
            Ok(answer) => {
                let Ok(mut ledger) = ledger.lock() else {
                    return;
                };
                if answer.status == 200 {
                    ledger.requests_acked += 1;
                    ledger.duplicate_sends += u64::from(duplicate);
                    ledger.acked.extend(events);
                } else {
                    *ledger.non_200.entry(answer.status).or_insert(0) += 1;
                }
            }
            Err(_) => return,
        }
    }
}

struct Verdict {
    stored: usize,
    messages: usize,
    lost: usize,
    duplicated: usize,
    mismatches: usize,
}

/// Where the store under test lives.
enum StoreAt {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The stored rows the check needs: (message, status, event JSON) per event and
/// (message, status, event count) per message.
#[derive(Default)]
struct Rows {
    events: Vec<(String, String, String)>,
    messages: Vec<(String, String, i64)>,
}

const EVENTS: &str = "SELECT message_id, status, event FROM events";
const MESSAGES: &str = "SELECT message_id, status, events FROM messages";

impl StoreAt {
    fn describe(&self, synchronous: &str, instances: usize) -> String {
        match self {
            StoreAt::Sqlite(_) => format!("SQLite synchronous={synchronous}"),
            StoreAt::Postgres(_) => format!("PostgreSQL, {instances} instance(s)"),
        }
    }

    /// Reads the store directly, as it is after the last kill (SQLite recovers its WAL).
    fn read(&self) -> Result<Rows> {
        match self {
            StoreAt::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path)?;
                let mut rows = Rows::default();
                let mut stmt = conn.prepare(EVENTS)?;
                let mut found = stmt.query([])?;
                while let Some(row) = found.next()? {
                    rows.events.push((row.get(0)?, row.get(1)?, row.get(2)?));
                }
                let mut stmt = conn.prepare(MESSAGES)?;
                let mut found = stmt.query([])?;
                while let Some(row) = found.next()? {
                    rows.messages.push((row.get(0)?, row.get(1)?, row.get(2)?));
                }
                Ok(rows)
            }
            StoreAt::Postgres(url) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let (mut client, connection) =
                        tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
                    tokio::spawn(connection);
                    // One snapshot for both reads: a killed server's last COMMIT may still be
                    // landing, and reading events and messages apart would see half of it.
                    let snapshot = client
                        .build_transaction()
                        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start()
                        .await?;
                    let events = snapshot.query(EVENTS, &[]).await?;
                    let messages = snapshot.query(MESSAGES, &[]).await?;
                    snapshot.commit().await?;
                    Ok(Rows {
                        events: events
                            .iter()
                            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                            .collect::<Result<_, tokio_postgres::Error>>()?,
                        messages: messages
                            .iter()
                            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
                            .collect::<Result<_, tokio_postgres::Error>>()?,
                    })
                })
            }
        }
    }
}

/// Checks the ledger against the stored rows.
fn check(rows: &Rows, ledger: &Ledger) -> Result<Verdict> {
    let mut by_key: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut facts: BTreeMap<&str, Vec<Fact>> = BTreeMap::new();
    for (message, status, event) in &rows.events {
        let event: Event = serde_json::from_str(event)?;
        *by_key.entry((message, status)).or_insert(0) += 1;
        facts.entry(message).or_default().push(Fact::from(&event));
    }
    let mut lost = 0;
    for n in &ledger.acked {
        let status = STATUSES.get((n % 3) as usize).copied().unwrap_or("");
        let message = format!("msg-{}", message_of(*n));
        if !by_key.contains_key(&(message.as_str(), status)) {
            lost += 1;
            if lost <= 10 {
                eprintln!("LOST: event {n} ({message} {status})");
            }
        }
    }
    let duplicated = by_key.values().filter(|count| **count > 1).count();
    let mut mismatches = 0;
    let mut seen = BTreeSet::new();
    for (message, status, count) in &rows.messages {
        let own = facts.get(message.as_str()).cloned().unwrap_or_default();
        let folded = MessageState::fold(own.iter().copied()).map(|s| s.status.as_str());
        if folded != Some(status.as_str()) || *count != own.len() as i64 {
            mismatches += 1;
            if mismatches <= 10 {
                eprintln!(
                    "MISMATCH: {message}: stored status {status} with {count} events, fold of {} stored events gives {folded:?}",
                    own.len()
                );
            }
        }
        seen.insert(message.as_str());
    }
    // A message with stored events but no message row is a mismatch too.
    for message in facts.keys() {
        if !seen.contains(message) {
            mismatches += 1;
            eprintln!("MISMATCH: {message} has events but no message row");
        }
    }
    Ok(Verdict {
        stored: rows.events.len(),
        messages: rows.messages.len(),
        lost,
        duplicated,
        mismatches,
    })
}

/// Outbound mode: starts the servers once more (not killed) and waits until every acknowledged
/// event reached the receiver at least once, with one `webhook-id` per event; reports how many
/// deliveries were repeats.
fn check_outbound(
    receiver: &Receiver,
    ledger: &Ledger,
    binary: &std::path::Path,
    config: &std::path::Path,
    instances: usize,
) -> Result<()> {
    let wanted: BTreeSet<(String, String)> = ledger
        .acked
        .iter()
        .map(|n| {
            (
                format!("msg-{}", message_of(*n)),
                KINDS
                    .get((n % 3) as usize)
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let servers = (0..instances)
        .map(|_| Server::start(binary, config))
        .collect::<Result<Vec<_>>>()
        .context("starting the servers for outbound delivery to catch up")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let missing = |seen: &crate::receiver::Seen| {
        wanted
            .iter()
            .filter(|key| !seen.ids.contains_key(*key))
            .count()
    };
    loop {
        let left = missing(
            &*receiver
                .seen
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?,
        );
        if left == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(servers);
    let seen = receiver
        .seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let lost = missing(&seen);
    let changed_ids = seen.ids.values().filter(|ids| ids.len() > 1).count();
    println!(
        "outbound: events_acked={} events_delivered={} requests={} delivered_twice_or_more={} lost={lost} events_with_two_ids={changed_ids}",
        wanted.len(),
        seen.ids.len(),
        seen.requests,
        seen.duplicates(),
    );
    for key in wanted
        .iter()
        .filter(|key| !seen.ids.contains_key(*key))
        .take(10)
    {
        eprintln!("NOT DELIVERED: {} {}", key.0, key.1);
    }
    if lost > 0 || changed_ids > 0 {
        bail!("outbound delivery lost events or changed their webhook-id");
    }
    Ok(())
}
