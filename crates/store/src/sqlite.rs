//! The embedded SQLite backend with its group-committing writer thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tidings_core::fold::{Fact, MessageState};
use tokio::sync::{mpsc, oneshot};

use crate::{
    Claim, Error, IDEMPOTENCY_TTL, IdempotencyRecord, Ingest, IngestOutcome, MessageRow,
    PruneStats, Result, StoredEvent, StoredResponse,
};

pub(crate) mod existing;
mod files;
pub(crate) mod lock;

/// Versioned migrations: `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE raw_requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        received_at TEXT NOT NULL,
        content_type TEXT,
        headers TEXT NOT NULL,
        body BLOB NOT NULL,
        ignored TEXT NOT NULL
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        message_id TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        status TEXT NOT NULL,
        date TEXT NOT NULL,
        event TEXT NOT NULL,
        request_seq INTEGER NOT NULL REFERENCES raw_requests(seq),
        received_at TEXT NOT NULL,
        duplicates INTEGER NOT NULL DEFAULT 0,
        UNIQUE (environment_id, dedup_key)
    );
    CREATE INDEX events_by_message ON events (environment_id, message_id, seq);
    CREATE TABLE messages (
        environment_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        status TEXT NOT NULL,
        state TEXT NOT NULL,
        events INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (environment_id, message_id)
    );
    CREATE TABLE idempotency (
        environment_id TEXT NOT NULL,
        key TEXT NOT NULL,
        body_hash BLOB NOT NULL,
        status INTEGER NOT NULL,
        response BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (environment_id, key)
    );",
    // 2: retention deletes idempotency records by age.
    "CREATE INDEX idempotency_by_age ON idempotency (created_at);",
];

/// How the SQLite store is opened.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file.
    pub path: PathBuf,
    /// `synchronous=FULL` (durable on power loss) when true, `NORMAL` otherwise.
    pub synchronous_full: bool,
    /// Requests that may wait for the writer before new ones are refused as saturated.
    pub queue_capacity: usize,
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// An idempotency claim older than this is taken as abandoned (the request timeout).
    pub claim_timeout: Duration,
}

impl SqliteOptions {
    /// Durable defaults for a database file.
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            synchronous_full: true,
            queue_capacity: 4096,
            max_batch: 512,
            claim_timeout: Duration::from_secs(30),
        }
    }
}

type Reply = oneshot::Sender<Result<IngestOutcome>>;

/// In-flight idempotency keys, `(environment, key)`, with when each was claimed.
type Claims = BTreeMap<(String, String), DateTime<Utc>>;

/// One request for the writer: the ingest, its events already serialized (done by the request's
/// own task, in parallel, rather than on the single writer thread), and where to answer.
struct Job {
    ingest: Ingest,
    events_json: Vec<String>,
    reply: Reply,
}

/// Group commit statistics, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitStats {
    /// Transactions committed.
    pub commits: u64,
    /// Requests committed.
    pub requests: u64,
    /// Total time spent committing, in microseconds.
    pub commit_micros: u64,
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
    /// A third connection for retention deletes, so they never wait behind the reader.
    pruner: Arc<Mutex<Connection>>,
    stats: Arc<Mutex<CommitStats>>,
    /// Idempotency keys being processed, with when they were claimed. One process owns a SQLite
    /// database, so in-flight claims live in memory; the records themselves are in the database.
    claims: Arc<Mutex<Claims>>,
    claim_timeout: chrono::Duration,
}

fn open(path: &Path, synchronous_full: bool) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| Error::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        if synchronous_full { "FULL" } else { "NORMAL" },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The default 2 MiB page cache makes a large group transaction spill dirty pages into the
    // WAL before it commits and re-read index pages from the OS. Pages are allocated as used,
    // so this is a ceiling, not a reservation.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(conn)
}

/// Page cache per connection, in KiB.
const CACHE_KIB: i64 = 16 * 1024;
/// WAL frames after which the writer checkpoints by itself: a backstop for when the
/// checkpointer thread falls behind. It normally never gets there.
const WRITER_AUTOCHECKPOINT: i64 = 16_000;
/// How often the checkpointer thread copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// Applies pending migrations in one write transaction, taken before `user_version` is read, so
/// that two processes opening the same file at once apply them once.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let applied: usize = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating) the database and starts the writer thread.
    pub fn open(options: SqliteOptions) -> Result<SqliteStore> {
        files::create_private(&options.path)?;
        // Durable mode: the writer commits with NORMAL (no fsync inside COMMIT) and the syncer
        // thread fsyncs the WAL before any request of the group is answered. A commit is thus
        // as durable as with FULL when its 200 goes out, but the writer builds the next group
        // while the disk syncs the previous one, and one fsync can cover several groups.
        let mut write_conn = open(&options.path, false)?;
        migrate(&mut write_conn)?;
        // Checkpoints copy pages and fsync the database file: done on the commit path they
        // stall every request of the group that happens to cross the threshold. A separate
        // connection does them in the background instead (SQLite allows one checkpoint
        // alongside the writer); the writer keeps a high threshold only as a backstop.
        write_conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT)?;
        let checkpoint_conn = open(&options.path, options.synchronous_full)?;
        checkpoint_conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        let reader = open(&options.path, options.synchronous_full)?;
        let pruner = open(&options.path, options.synchronous_full)?;
        // An event is received with its raw request, so once old events are gone no event refers
        // to an old raw request; skipping the check spares a scan of `events` per deleted request.
        pruner.pragma_update(None, "foreign_keys", "OFF")?;
        let (writer, queue) = mpsc::channel(options.queue_capacity.max(1));
        let stats = Arc::new(Mutex::new(CommitStats::default()));
        let thread_stats = Arc::clone(&stats);
        let max_batch = options.max_batch.max(1);
        let syncer = if options.synchronous_full {
            let (acks, pending) = std::sync::mpsc::channel::<Acks>();
            let wal = wal_path(&options.path);
            let dir = options
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            std::thread::Builder::new()
                .name("tidings-sqlite-sync".into())
                .spawn(move || sync_loop(&wal, &dir, &pending))
                .map_err(|e| Error::Open {
                    path: options.path.display().to_string(),
                    reason: e.to_string(),
                })?;
            Some(acks)
        } else {
            None
        };
        std::thread::Builder::new()
            .name("tidings-sqlite-writer".into())
            .spawn(move || {
                writer_loop(write_conn, queue, max_batch, &thread_stats, syncer.as_ref());
                drop(stop_checkpoints);
            })
            .map_err(|e| Error::Open {
                path: options.path.display().to_string(),
                reason: e.to_string(),
            })?;
        std::thread::Builder::new()
            .name("tidings-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpoint_conn, &stopped))
            .map_err(|e| Error::Open {
                path: options.path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(SqliteStore {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            pruner: Arc::new(Mutex::new(pruner)),
            stats,
            claims: Arc::new(Mutex::new(BTreeMap::new())),
            claim_timeout: chrono::Duration::from_std(options.claim_timeout)
                .unwrap_or(chrono::Duration::seconds(30)),
        })
    }

    /// Commits one request with its events. Resolves once the transaction holding it is durable.
    /// A full queue is [`Error::Saturated`] at once.
    pub async fn ingest(&self, ingest: Ingest) -> Result<IngestOutcome> {
        let (reply, done) = oneshot::channel();
        let events_json = ingest
            .events
            .iter()
            .map(|event| serde_json::to_string(event).map_err(|e| Error::Corrupt(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let job = Job {
            ingest,
            events_json,
            reply,
        };
        self.writer.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Saturated,
            mpsc::error::TrySendError::Closed(_) => Error::Unavailable,
        })?;
        done.await.map_err(|_| Error::Unavailable)?
    }

    /// Whether the commit queue is full: new requests are refused until it drains.
    pub fn is_saturated(&self) -> bool {
        self.writer.capacity() == 0
    }

    /// Group commit statistics so far.
    pub fn stats(&self) -> CommitStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.reader.lock().map_err(|_| Error::Unavailable)?;
        f(&conn)
    }

    /// Whether the database answers.
    pub fn ping(&self) -> Result<()> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
    }

    /// The response remembered under an idempotency key, if any.
    pub fn idempotent_response(
        &self,
        environment_id: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT body_hash, status, response, created_at FROM idempotency
                 WHERE environment_id = ?1 AND key = ?2",
                params![environment_id, key],
                |row| {
                    Ok((
                        row.get::<_, Vec<u8>>(0)?,
                        row.get::<_, u16>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?
            .map(|(body_hash, status, response, created_at)| {
                Ok(StoredResponse {
                    body_hash,
                    status,
                    response,
                    created_at: parse_time(&created_at)?,
                })
            })
            .transpose()
        })
    }

    /// Claims an idempotency key for one request (see [`Claim`]). Records older than
    /// [`IDEMPOTENCY_TTL`] are ignored; a claim older than the claim timeout is abandoned.
    pub fn claim_idempotency(
        &self,
        environment_id: &str,
        key: &str,
        body_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        // In-flight first, under the lock, then the stored response: a request keeps its claim
        // until its response is committed, so whoever gets past the claim sees that response.
        let mut claims = self.claims.lock().map_err(|_| Error::Unavailable)?;
        let entry = (environment_id.to_owned(), key.to_owned());
        if let Some(claimed_at) = claims.get(&entry)
            && now.signed_duration_since(*claimed_at) < self.claim_timeout
        {
            return Ok(Claim::InFlight);
        }
        if let Some(stored) = self.idempotent_response(environment_id, key)?
            && now.signed_duration_since(stored.created_at) <= IDEMPOTENCY_TTL
        {
            return Ok(if stored.body_hash == body_hash {
                Claim::Replay(stored)
            } else {
                Claim::Mismatch
            });
        }
        claims.insert(entry, now);
        Ok(Claim::Claimed)
    }

    /// Releases a claimed idempotency key. The record committed with the request, if any, stays.
    pub fn release_idempotency(&self, environment_id: &str, key: &str) -> Result<()> {
        let mut claims = self.claims.lock().map_err(|_| Error::Unavailable)?;
        claims.remove(&(environment_id.to_owned(), key.to_owned()));
        Ok(())
    }

    /// Deletes raw requests, events and idempotency records received before `cutoff`, `batch`
    /// rows per transaction so the writer never waits long for the database lock.
    pub fn prune(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<PruneStats> {
        prune(&self.pruner, cutoff, batch)
    }

    /// Prunes every `interval` on a thread of its own, until every handle is dropped.
    pub(crate) fn spawn_retention(
        &self,
        retention: chrono::Duration,
        interval: Duration,
        batch: usize,
    ) {
        let pruner = Arc::clone(&self.pruner);
        // The stats outlive the handles only until the writer thread ends.
        let alive = Arc::downgrade(&self.stats);
        let spawned = std::thread::Builder::new()
            .name("tidings-sqlite-retention".into())
            .spawn(move || {
                while alive.strong_count() > 0 {
                    let result = prune(&pruner, Utc::now() - retention, batch);
                    crate::store::log_prune(&result);
                    std::thread::sleep(interval);
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "Cannot start the retention thread.");
        }
    }

    /// Stored events, oldest first, optionally for one environment or message, after `after_seq`.
    pub fn events(
        &self,
        environment_id: Option<&str>,
        message_id: Option<&str>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT seq, environment_id, integration_id, provider, message_id, event,
                        dedup_key, duplicates, received_at
                 FROM events
                 WHERE seq > ?1 AND (?2 IS NULL OR environment_id = ?2)
                   AND (?3 IS NULL OR message_id = ?3)
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![after_seq, environment_id, message_id, limit as i64],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, String>(6)?,
                        row.get::<_, i64>(7)?,
                        row.get::<_, String>(8)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (
                    seq,
                    environment_id,
                    integration_id,
                    provider,
                    id,
                    event,
                    dedup_key,
                    duplicates,
                    received_at,
                ) = row?;
                out.push(StoredEvent {
                    seq,
                    environment_id,
                    integration_id,
                    provider,
                    id,
                    event: serde_json::from_str(&event)
                        .map_err(|e| Error::Corrupt(e.to_string()))?,
                    dedup_key,
                    duplicates,
                    received_at: parse_time(&received_at)?,
                });
            }
            Ok(out)
        })
    }

    /// Messages with their folded state, optionally for one environment or message.
    pub fn messages(
        &self,
        environment_id: Option<&str>,
        message_id: Option<&str>,
    ) -> Result<Vec<MessageRow>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT environment_id, message_id, provider, state, events FROM messages
                 WHERE (?1 IS NULL OR environment_id = ?1) AND (?2 IS NULL OR message_id = ?2)
                 ORDER BY environment_id, message_id",
            )?;
            let rows = stmt.query_map(params![environment_id, message_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (environment_id, id, provider, state, events) = row?;
                out.push(MessageRow {
                    environment_id,
                    id,
                    provider,
                    state: serde_json::from_str(&state)
                        .map_err(|e| Error::Corrupt(e.to_string()))?,
                    events,
                });
            }
            Ok(out)
        })
    }

    /// How many raw requests are stored.
    pub fn raw_request_count(&self) -> Result<i64> {
        self.read(|conn| Ok(conn.query_row("SELECT count(*) FROM raw_requests", [], |r| r.get(0))?))
    }
}

/// Deletes raw requests, events and idempotency records received before `cutoff`, `batch`
/// rows per transaction, so the writer never waits long for the database lock.
fn prune(pruner: &Mutex<Connection>, cutoff: DateTime<Utc>, batch: usize) -> Result<PruneStats> {
    let cutoff = format_time(&cutoff);
    let batch = batch.max(1) as i64;
    let mut stats = PruneStats::default();
    // Events first: they reference their raw request.
    let steps: [(&str, &mut u64); 3] = [
        (
            "DELETE FROM events WHERE seq IN
               (SELECT seq FROM events WHERE received_at < ?1 ORDER BY seq LIMIT ?2)",
            &mut stats.events,
        ),
        (
            "DELETE FROM raw_requests WHERE seq IN
               (SELECT seq FROM raw_requests WHERE received_at < ?1 ORDER BY seq LIMIT ?2)",
            &mut stats.raw_requests,
        ),
        (
            "DELETE FROM idempotency WHERE rowid IN
               (SELECT rowid FROM idempotency WHERE created_at < ?1 LIMIT ?2)",
            &mut stats.idempotency,
        ),
    ];
    for (sql, count) in steps {
        loop {
            let deleted = {
                let conn = pruner.lock().map_err(|_| Error::Unavailable)?;
                conn.execute(sql, params![cutoff, batch])?
            };
            *count += deleted as u64;
            if (deleted as i64) < batch {
                break;
            }
            // Let the writer in between batches.
            std::thread::yield_now();
        }
    }
    Ok(stats)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(e.to_string()))
}

fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Copies the WAL back into the database every [`CHECKPOINT_EVERY`] until the writer stops.
/// PASSIVE: it never waits for, nor blocks, the writer or readers.
fn checkpoint_loop(conn: &Connection, stopped: &std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(CHECKPOINT_EVERY)
    {
        if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %err, "Background checkpoint failed; the writer's own will catch up.");
        }
    }
}

/// Committed requests waiting for the WAL to reach the disk: each one's answer and outcome.
type Acks = Vec<(Reply, IngestOutcome)>;

/// The database's write-ahead log file.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Answers committed groups once the WAL holding them is on disk: every group committed while
/// the previous fsync ran shares the next one. (fsync applies to the file, whichever
/// descriptor calls it, so the writer's own writes are covered.)
fn sync_loop(wal: &Path, dir: &Path, pending: &std::sync::mpsc::Receiver<Acks>) {
    // The WAL file's own directory entry must be durable too, once.
    let mut dir_synced = false;
    while let Ok(mut acks) = pending.recv() {
        while let Ok(more) = pending.try_recv() {
            acks.extend(more);
        }
        let synced = std::fs::File::open(wal)
            .and_then(|file| file.sync_data())
            .and_then(|()| {
                if !dir_synced {
                    std::fs::File::open(dir)?.sync_all()?;
                    dir_synced = true;
                }
                Ok(())
            });
        match synced {
            Ok(()) => {
                for (reply, outcome) in acks {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                // Committed but not known durable: not acknowledged; the provider retries and
                // the retry is deduplicated.
                tracing::error!(error = %err, requests = acks.len(), "Syncing the WAL failed.");
                for (reply, _) in acks {
                    let _ = reply.send(Err(Error::Unavailable));
                }
            }
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    stats: &Mutex<CommitStats>,
    syncer: Option<&std::sync::mpsc::Sender<Acks>>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        // Everything already waiting joins this transaction (and its fsync).
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = commit_group(&mut conn, &batch);
        let elapsed = started.elapsed();
        if let Ok(mut s) = stats.lock() {
            s.commits += 1;
            s.requests += batch.len() as u64;
            s.commit_micros += elapsed.as_micros() as u64;
        }
        match result {
            Ok(outcomes) => {
                let acks = batch.drain(..).map(|job| job.reply).zip(outcomes);
                match syncer {
                    Some(syncer) => {
                        if let Err(returned) = syncer.send(acks.collect()) {
                            for (reply, _) in returned.0 {
                                let _ = reply.send(Err(Error::Unavailable));
                            }
                        }
                    }
                    None => {
                        for (reply, outcome) in acks {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, requests = batch.len(), "Store commit failed.");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(Error::Unavailable));
                }
            }
        }
    }
}

fn commit_group(conn: &mut Connection, batch: &[Job]) -> Result<Vec<IngestOutcome>> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(batch.len());
    // Message states touched by this group, written once at the end.
    let mut touched: BTreeMap<(String, String), (String, MessageState, i64)> = BTreeMap::new();
    {
        let mut insert_request = tx.prepare_cached(
            "INSERT INTO raw_requests
               (environment_id, integration_id, provider, received_at, content_type, headers, body, ignored)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut insert_event = tx.prepare_cached(
            "INSERT INTO events
               (environment_id, integration_id, provider, message_id, dedup_key, status, date,
                event, request_seq, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (environment_id, dedup_key) DO NOTHING",
        )?;
        let mut count_duplicate = tx.prepare_cached(
            "UPDATE events SET duplicates = duplicates + 1
             WHERE environment_id = ?1 AND dedup_key = ?2",
        )?;
        let mut load_message = tx.prepare_cached(
            "SELECT state, events FROM messages WHERE environment_id = ?1 AND message_id = ?2",
        )?;
        let mut save_idempotency = tx.prepare_cached(
            "INSERT INTO idempotency (environment_id, key, body_hash, status, response, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (environment_id, key) DO UPDATE SET
               body_hash = excluded.body_hash, status = excluded.status,
               response = excluded.response, created_at = excluded.created_at",
        )?;
        for Job {
            ingest,
            events_json,
            ..
        } in batch
        {
            let received_at = format_time(&ingest.received_at);
            insert_request.execute(params![
                ingest.environment_id,
                ingest.integration_id,
                ingest.provider,
                received_at,
                ingest.content_type,
                ingest.headers_json,
                ingest.body,
                ingest.ignored_json,
            ])?;
            let request_seq = tx.last_insert_rowid();
            let mut outcome = IngestOutcome {
                request_seq,
                ..IngestOutcome::default()
            };
            for (event, json) in ingest.events.iter().zip(events_json) {
                let inserted = insert_event.execute(params![
                    ingest.environment_id,
                    ingest.integration_id,
                    ingest.provider,
                    event.id,
                    event.dedup_key,
                    event.body.status.as_str(),
                    format_time(&event.body.date),
                    json,
                    request_seq,
                    received_at,
                ])?;
                if inserted == 0 {
                    count_duplicate.execute(params![ingest.environment_id, event.dedup_key])?;
                    outcome.duplicates += 1;
                    continue;
                }
                outcome.stored += 1;
                let key = (ingest.environment_id.clone(), event.id.clone());
                let fact = Fact::from(event);
                if let Some((provider, state, count)) = touched.get_mut(&key) {
                    state.apply(fact);
                    *count += 1;
                    provider.clone_from(&ingest.provider);
                    continue;
                }
                let existing = load_message
                    .query_row(params![key.0, key.1], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                    })
                    .optional()?;
                let (state, count) = match existing {
                    Some((json, count)) => {
                        let mut state: MessageState = serde_json::from_str(&json)
                            .map_err(|e| Error::Corrupt(e.to_string()))?;
                        state.apply(fact);
                        (state, count + 1)
                    }
                    None => (MessageState::new(fact), 1),
                };
                touched.insert(key, (ingest.provider.clone(), state, count));
            }
            if let Some(IdempotencyRecord {
                key,
                body_hash,
                status,
                response,
            }) = &ingest.idempotency
            {
                save_idempotency.execute(params![
                    ingest.environment_id,
                    key,
                    body_hash,
                    status,
                    response,
                    received_at,
                ])?;
            }
            outcomes.push(outcome);
        }
        let mut save_message = tx.prepare_cached(
            "INSERT INTO messages (environment_id, message_id, provider, status, state, events, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (environment_id, message_id) DO UPDATE SET
               provider = excluded.provider, status = excluded.status, state = excluded.state,
               events = excluded.events, updated_at = excluded.updated_at",
        )?;
        let now = format_time(&Utc::now());
        for ((environment_id, message_id), (provider, state, count)) in &touched {
            let json = serde_json::to_string(state).map_err(|e| Error::Corrupt(e.to_string()))?;
            save_message.execute(params![
                environment_id,
                message_id,
                provider,
                state.status.as_str(),
                json,
                count,
                now,
            ])?;
        }
    }
    tx.commit()?;
    Ok(outcomes)
}
