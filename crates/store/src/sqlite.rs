//! The embedded SQLite backend with its group-committing writer thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use tidings_core::fold::{Fact, MessageState};
use tokio::sync::mpsc;

use crate::cursor::{
    Collector, Cursor, EventPage, EventQuery, MessageQuery, SCAN_BATCH, SCAN_BUDGET, TIMELINE_MAX,
};
use crate::layout::{self, EventRow};
use crate::suppressions::{SuppressionSettings, Touches, note_event};
use crate::{
    Activity, Claim, Error, IDEMPOTENCY_TTL, IdempotencyRecord, Ingest, IngestOutcome, MessagePage,
    MessageRow, PruneStats, Result, StoredEvent, StoredResponse, Window,
};

pub(crate) mod existing;
mod files;
pub(crate) mod lock;
mod outbound;
mod rejections;
mod reparse;
mod suppressions;

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
    // 3: the read API. A message belongs to one integration (one integration's events never
    // fold into another's), is found by the provider's id too, and records the position of its
    // last change so it can be listed by cursor. Idempotency keys belong to an integration.
    // Messages made before keep the integration of their latest event; idempotency records
    // made before are kept under no integration (they would only have been replayed for 24 h).
    "CREATE TABLE messages_v3 (
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        external_id TEXT,
        provider TEXT NOT NULL,
        status TEXT NOT NULL,
        state TEXT NOT NULL,
        events INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        changed_seq INTEGER NOT NULL,
        PRIMARY KEY (environment_id, integration_id, message_id)
    );
    INSERT INTO messages_v3
    SELECT m.environment_id,
           COALESCE((SELECT e.integration_id FROM events e
                     WHERE e.environment_id = m.environment_id AND e.message_id = m.message_id
                     ORDER BY e.seq DESC LIMIT 1), m.provider),
           m.message_id,
           (SELECT json_extract(e.event, '$.body.externalId') FROM events e
            WHERE e.environment_id = m.environment_id AND e.message_id = m.message_id
              AND json_extract(e.event, '$.body.externalId') IS NOT NULL
            ORDER BY e.seq DESC LIMIT 1),
           m.provider, m.status, m.state, m.events, m.updated_at,
           COALESCE((SELECT max(e.seq) FROM events e
                     WHERE e.environment_id = m.environment_id AND e.message_id = m.message_id), 0)
    FROM messages m;
    DROP TABLE messages;
    ALTER TABLE messages_v3 RENAME TO messages;
    CREATE INDEX messages_by_external_id ON messages (environment_id, external_id);
    CREATE INDEX messages_by_change ON messages (environment_id, changed_seq);
    CREATE TABLE idempotency_v3 (
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        key TEXT NOT NULL,
        body_hash BLOB NOT NULL,
        status INTEGER NOT NULL,
        response BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (environment_id, integration_id, key)
    );
    INSERT INTO idempotency_v3
    SELECT environment_id, '', key, body_hash, status, response, created_at FROM idempotency;
    DROP TABLE idempotency;
    ALTER TABLE idempotency_v3 RENAME TO idempotency;
    CREATE INDEX idempotency_by_age ON idempotency (created_at);",
    // 4: replays: one raw request per distinct body per integration, repeats
    // counted (rows made before have no hash and stay as they are); signed one-time values
    // (Mailgun's token) remembered until they expire, scoped to the signing key.
    "ALTER TABLE raw_requests ADD COLUMN body_hash BLOB;
    ALTER TABLE raw_requests ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX raw_requests_by_body ON raw_requests (environment_id, integration_id, body_hash);
    CREATE TABLE replay_nonces (
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        nonce TEXT NOT NULL,
        body_hash BLOB NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (environment_id, integration_id, scope, nonce)
    );
    CREATE INDEX replay_nonces_by_expiry ON replay_nonces (expires_at);",
    // 5: outbound delivery progress (see `outbound.rs`): one row per configured endpoint with its
    // cursor, counters and head lease, and one row per event in retry or dead-lettered, with
    // the exact payload its attempts send. SQLite has one writing process, so the lease columns
    // only keep the two backends alike.
    "CREATE TABLE outbound_endpoints (
        endpoint_id TEXT PRIMARY KEY,
        environment_id TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        cursor_xid INTEGER NOT NULL DEFAULT 0,
        cursor_seq INTEGER NOT NULL DEFAULT 0,
        delivered INTEGER NOT NULL DEFAULT 0,
        last_success_at TEXT,
        last_error_at TEXT,
        last_error TEXT,
        lease_owner TEXT,
        lease_epoch INTEGER NOT NULL DEFAULT 0,
        lease_until TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE outbound_deliveries (
        endpoint_id TEXT NOT NULL,
        event_xid INTEGER NOT NULL,
        event_seq INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at TEXT,
        last_attempt_at TEXT NOT NULL,
        last_status INTEGER,
        last_answer TEXT NOT NULL,
        webhook_id TEXT NOT NULL,
        payload BLOB NOT NULL,
        lease_owner TEXT,
        lease_until TEXT,
        PRIMARY KEY (endpoint_id, event_seq)
    );
    CREATE INDEX outbound_due ON outbound_deliveries (endpoint_id, state, next_attempt_at);",
    // 6: refused requests: the newest per integration in full, and counts per clock hour.
    "CREATE TABLE rejections (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT NOT NULL,
        status INTEGER NOT NULL,
        message TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        headers TEXT NOT NULL,
        body BLOB NOT NULL,
        body_bytes INTEGER
    );
    CREATE INDEX rejections_by_integration ON rejections (environment_id, integration_id, seq);
    CREATE TABLE rejection_counts (
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        hour TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (environment_id, integration_id, reason, hour)
    );",
    // 7: the suppression list: its records (causing events and manual records) and one derived
    // entry per recipient. Self-contained: creates two new tables, touches nothing else.
    suppressions::MIGRATION,
    // 8: raw requests keep the method and the path and query they were sent to, so that a GET
    // receipt (fields in the query string) and a URL-signed request can be parsed again (rows
    // from before read as POST with no URL); requests and events keep how the request was
    // authenticated (NULL before).
    "ALTER TABLE raw_requests ADD COLUMN method TEXT NOT NULL DEFAULT 'POST';
    ALTER TABLE raw_requests ADD COLUMN url TEXT;
    ALTER TABLE raw_requests ADD COLUMN authentication TEXT;
    ALTER TABLE events ADD COLUMN authentication TEXT;",
    // 9: a repeated body is found through its events: a request carrying events repeats an
    // earlier one only when all its events are duplicates, and their `request_seq` names it. So
    // only requests without events stay in the hash-keyed unique index, which otherwise costs a
    // random page per request. Rows made before stay in it (`has_events` 0).
    "ALTER TABLE raw_requests ADD COLUMN has_events INTEGER NOT NULL DEFAULT 0;
    DROP INDEX raw_requests_by_body;
    CREATE UNIQUE INDEX raw_requests_by_body ON raw_requests (environment_id, integration_id, body_hash)
        WHERE has_events = 0;",
    // 10: events are deduplicated under a key led by their own time, so inserts stay local
    // whatever the message ids, and an event refers to its request's body for its provider
    // text instead of keeping a second copy (see `layout.rs`). SQLite cannot change a UNIQUE
    // constraint, so the table is rebuilt. Rows made before keep `row` in their JSON; their
    // dedup time is what an insert computes now (the receive time's events under 0; a date
    // SQLite cannot read, beyond year 9999, too). `sqlite_sequence` carries over, so no
    // position is ever handed out twice.
    "CREATE TABLE events_v10 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        message_id TEXT NOT NULL,
        dedup_time INTEGER NOT NULL,
        dedup_key TEXT NOT NULL,
        status TEXT NOT NULL,
        date TEXT NOT NULL,
        event TEXT NOT NULL,
        row_at INTEGER,
        row_length INTEGER,
        row_text TEXT,
        request_seq INTEGER NOT NULL REFERENCES raw_requests(seq),
        received_at TEXT NOT NULL,
        duplicates INTEGER NOT NULL DEFAULT 0,
        authentication TEXT,
        UNIQUE (environment_id, dedup_time, dedup_key)
    );
    INSERT INTO events_v10
      (seq, environment_id, integration_id, provider, message_id, dedup_time, dedup_key, status,
       date, event, request_seq, received_at, duplicates, authentication)
    SELECT seq, environment_id, integration_id, provider, message_id,
           CASE WHEN date = received_at THEN 0
                ELSE COALESCE(CAST(strftime('%s', date) AS INTEGER), 0) END,
           dedup_key, status, date, event, request_seq, received_at, duplicates, authentication
    FROM events ORDER BY seq;
    DELETE FROM sqlite_sequence WHERE name = 'events_v10';
    INSERT INTO sqlite_sequence (name, seq)
      SELECT 'events_v10', seq FROM sqlite_sequence WHERE name = 'events';
    DROP TABLE events;
    ALTER TABLE events_v10 RENAME TO events;
    CREATE INDEX events_by_message ON events (environment_id, message_id, seq);",
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
    /// The suppression list's thresholds and phone number defaults.
    pub suppressions: SuppressionSettings,
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
            suppressions: SuppressionSettings::default(),
        }
    }
}

use crate::admission::Reply;

/// In-flight idempotency keys, `(environment, integration, key)`, with when each was claimed.
type Claims = BTreeMap<(String, String, String), DateTime<Utc>>;

/// One request for the writer: the ingest, its events already laid out as rows (done by the
/// request's own task, in parallel, rather than on the single writer thread), and where to answer.
struct Job {
    ingest: Ingest,
    rows: Vec<EventRow>,
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
    /// Connections for the read API, so that readers never wait behind the ingest path's reads
    /// (idempotency claims, readiness) nor block the writer.
    readers: Arc<ReaderPool>,
    /// The highest event `seq` known durable: readers never see a row above it (a row committed
    /// but not yet synced could be lost, and its number handed out again).
    durable: Arc<tokio::sync::watch::Sender<i64>>,
    stats: Arc<Mutex<CommitStats>>,
    readiness: Arc<crate::readiness::Readiness>,
    /// Idempotency keys being processed, with when they were claimed. One process owns a SQLite
    /// database, so in-flight claims live in memory; the records themselves are in the database.
    claims: Arc<Mutex<Claims>>,
    claim_timeout: chrono::Duration,
    suppression_settings: Arc<SuppressionSettings>,
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
/// WAL frames (4 KiB pages) after which the writer pauses before its next group until the
/// checkpointer has copied everything back, so that the next write starts the WAL over. Under
/// sustained load the checkpointer never otherwise catches up with a writer that keeps
/// appending, and the WAL grows until the writer's own backstop checkpoints inside a commit.
const WAL_RESET_FRAMES: i64 = 4000;
/// The longest the writer waits for that checkpoint pass.
const WAL_RESET_WAIT: Duration = Duration::from_millis(100);

/// What the writer and the checkpointer thread share.
#[derive(Default)]
struct Checkpoints {
    state: Mutex<WalState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct WalState {
    /// Frames in the WAL at the last checkpoint.
    frames: i64,
    /// Checkpoint passes run.
    passes: u64,
    /// Checkpoints that copied every frame back.
    complete: u64,
    /// WAL frames when a pass the writer waited for was held back by readers (0: it was not).
    held_back_at: i64,
    /// The writer waits for a complete checkpoint: run one now.
    wanted: bool,
    /// The writer has stopped.
    stopped: bool,
}

impl Checkpoints {
    /// Before a group: when the WAL is long, lets the checkpointer make one pass while nothing
    /// is appended; when that pass copies everything back, the next commit restarts the WAL from
    /// its beginning. A reader holding an old snapshot keeps a pass from completing: then the
    /// writer does not pause again until the WAL has grown by another [`WAL_RESET_FRAMES`], so
    /// busy readers (live streams) cost the writer one short wait, not one per group.
    fn yield_when_long(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.frames < WAL_RESET_FRAMES + state.held_back_at {
            return;
        }
        let (passes, complete) = (state.passes, state.complete);
        state.wanted = true;
        self.changed.notify_all();
        let deadline = Instant::now() + WAL_RESET_WAIT;
        while state.passes == passes {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.changed.wait_timeout(state, left) {
                Ok((next, _)) => state = next,
                Err(_) => return,
            }
        }
        state.wanted = false;
        state.held_back_at = if state.complete == complete {
            state.frames
        } else {
            0
        };
    }

    fn stop(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.stopped = true;
            self.changed.notify_all();
        }
    }
}

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
        // What is in the database at start survived: it is as durable as it will get.
        let highest: i64 =
            write_conn.query_row("SELECT COALESCE(max(seq), 0) FROM events", [], |r| r.get(0))?;
        let durable = Arc::new(tokio::sync::watch::Sender::new(highest));
        // Checkpoints copy pages and fsync the database file: done on the commit path they
        // stall every request of the group that happens to cross the threshold. A separate
        // connection does them in the background instead (SQLite allows one checkpoint
        // alongside the writer); the writer keeps a high threshold only as a backstop.
        write_conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT)?;
        let checkpoint_conn = open(&options.path, options.synchronous_full)?;
        checkpoint_conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpoints = Arc::new(Checkpoints::default());
        let writer_checkpoints = Arc::clone(&checkpoints);
        let reader = open(&options.path, options.synchronous_full)?;
        let pruner = open(&options.path, options.synchronous_full)?;
        // An event is received with its raw request, so once old events are gone no event refers
        // to an old raw request; skipping the check spares a scan of `events` per deleted request.
        pruner.pragma_update(None, "foreign_keys", "OFF")?;
        let (writer, queue) = mpsc::channel(options.queue_capacity.max(1));
        let stats = Arc::new(Mutex::new(CommitStats::default()));
        let thread_stats = Arc::clone(&stats);
        let readiness = Arc::new(crate::readiness::Readiness::default());
        let writer_readiness = Arc::clone(&readiness);
        let sync_readiness = Arc::clone(&readiness);
        let max_batch = options.max_batch.max(1);
        let published = Arc::clone(&durable);
        let suppression_settings = Arc::new(options.suppressions.clone());
        let writer_settings = Arc::clone(&suppression_settings);
        let syncer = if options.synchronous_full {
            let (acks, pending) = std::sync::mpsc::channel::<Acks>();
            let published = Arc::clone(&durable);
            let wal = wal_path(&options.path);
            let dir = options
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            std::thread::Builder::new()
                .name("tidings-sqlite-sync".into())
                .spawn(move || sync_loop(&wal, &dir, &pending, &published, &sync_readiness))
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
                writer_loop(
                    write_conn,
                    queue,
                    max_batch,
                    &thread_stats,
                    &writer_readiness,
                    syncer.as_ref(),
                    &published,
                    &writer_checkpoints,
                    &writer_settings,
                );
                writer_checkpoints.stop();
            })
            .map_err(|e| Error::Open {
                path: options.path.display().to_string(),
                reason: e.to_string(),
            })?;
        std::thread::Builder::new()
            .name("tidings-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpoint_conn, &checkpoints))
            .map_err(|e| Error::Open {
                path: options.path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(SqliteStore {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            pruner: Arc::new(Mutex::new(pruner)),
            readers: Arc::new(ReaderPool {
                path: options.path.clone(),
                synchronous_full: options.synchronous_full,
                idle: Mutex::new(Vec::new()),
            }),
            durable,
            stats,
            readiness,
            claims: Arc::new(Mutex::new(BTreeMap::new())),
            claim_timeout: chrono::Duration::from_std(options.claim_timeout)
                .unwrap_or(chrono::Duration::seconds(30)),
            suppression_settings,
        })
    }

    /// Commits one request with its events. Resolves once the transaction holding it is durable.
    /// A full queue is [`Error::Saturated`] at once.
    pub async fn ingest(&self, ingest: Ingest) -> Result<IngestOutcome> {
        let (reply, done) = Reply::new(ingest.admission.clone());
        let rows = layout::event_rows(&ingest);
        let job = Job {
            ingest,
            rows,
            reply,
        };
        self.readiness.enqueue(|| {
            self.writer.try_send(job).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::Saturated,
                mpsc::error::TrySendError::Closed(_) => Error::Unavailable,
            })
        })?;
        done.await.map_err(|_| Error::Unavailable)?
    }

    /// Whether a write would succeed soon (see [`crate::Store::readiness`]).
    pub fn readiness(
        &self,
        max_queue_age: std::time::Duration,
        failure_window: std::time::Duration,
    ) -> std::result::Result<(), crate::NotReady> {
        self.readiness.check(max_queue_age, failure_window)
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
        integration_id: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT body_hash, status, response, created_at FROM idempotency
                 WHERE environment_id = ?1 AND integration_id = ?2 AND key = ?3",
                params![environment_id, integration_id, key],
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
        integration_id: &str,
        key: &str,
        body_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        // In-flight first, under the lock, then the stored response: a request keeps its claim
        // until its response is committed, so whoever gets past the claim sees that response.
        let mut claims = self.claims.lock().map_err(|_| Error::Unavailable)?;
        let entry = (
            environment_id.to_owned(),
            integration_id.to_owned(),
            key.to_owned(),
        );
        if let Some(claimed_at) = claims.get(&entry)
            && now.signed_duration_since(*claimed_at) < self.claim_timeout
        {
            return Ok(Claim::InFlight);
        }
        if let Some(stored) = self.idempotent_response(environment_id, integration_id, key)?
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
    pub fn release_idempotency(
        &self,
        environment_id: &str,
        integration_id: &str,
        key: &str,
    ) -> Result<()> {
        let mut claims = self.claims.lock().map_err(|_| Error::Unavailable)?;
        claims.remove(&(
            environment_id.to_owned(),
            integration_id.to_owned(),
            key.to_owned(),
        ));
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

    /// Stored events of every environment, oldest first, optionally for one environment or
    /// message, after `after_seq`: the administrator's view, not limited to durable rows.
    pub fn events(
        &self,
        environment_id: Option<&str>,
        message_id: Option<&str>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE seq > ?1 AND (?2 IS NULL OR environment_id = ?2)
                   AND (?3 IS NULL OR message_id = ?3)
                 ORDER BY seq LIMIT ?4"
            ))?;
            let mut rows =
                stmt.query(params![after_seq, environment_id, message_id, limit as i64])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(stored_event(row)?);
            }
            Ok(out)
        })
    }

    /// Messages with their folded state, optionally for one environment or message id.
    pub fn messages(
        &self,
        environment_id: Option<&str>,
        message_id: Option<&str>,
    ) -> Result<Vec<MessageRow>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE (?1 IS NULL OR environment_id = ?1) AND (?2 IS NULL OR message_id = ?2)
                 ORDER BY environment_id, message_id, integration_id"
            ))?;
            collect_messages(stmt.query(params![environment_id, message_id])?)
        })
    }

    /// The highest durable event position: what readers may see.
    fn horizon(&self) -> i64 {
        *self.durable.borrow()
    }

    /// The position after every event visible now.
    pub fn end(&self) -> Cursor {
        Cursor {
            xid: 0,
            seq: self.horizon(),
        }
    }

    /// A receiver that changes whenever more events become visible to readers.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.durable.subscribe()
    }

    /// One page of events after a position, filtered; only durable events are visible.
    pub fn read_events(&self, query: &EventQuery) -> Result<EventPage> {
        let horizon = self.horizon();
        self.readers.with(|conn| {
            let keys = match &query.message {
                Some(id) => {
                    let keys = message_keys(
                        conn,
                        &query.environment_id,
                        query.integration.as_deref(),
                        id,
                    )?;
                    if keys.is_empty() {
                        return Ok(EventPage {
                            events: Vec::new(),
                            next: query.after.max(Cursor {
                                xid: 0,
                                seq: horizon,
                            }),
                        });
                    }
                    Some(keys)
                }
                None => None,
            };
            // Without a message, the position range drives the scan: with `environment_id` left
            // indexable SQLite (without statistics) walks the environment's whole share of
            // `events_by_message` and sorts it, 0.6 s per page at a million events against
            // under 1 ms. With a message, that index finds its events.
            let environment = if keys.is_some() {
                "environment_id"
            } else {
                "+environment_id"
            };
            let mut sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE {environment} = ?1 AND seq > ?2 AND seq <= ?3"
            );
            let mut args: Vec<Value> = vec![
                Value::Text(query.environment_id.clone()),
                Value::Integer(query.after.seq),
                Value::Integer(horizon),
            ];
            let mut any_of = |column: &str, values: Vec<String>, sql: &mut String| {
                let marks = vec!["?"; values.len()].join(", ");
                sql.push_str(&format!(" AND {column} IN ({marks})"));
                args.extend(values.into_iter().map(Value::Text));
            };
            if !query.statuses.is_empty() {
                let statuses = query
                    .statuses
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect();
                any_of("status", statuses, &mut sql);
            }
            if let Some(provider) = &query.provider {
                any_of("provider", vec![provider.clone()], &mut sql);
            }
            if let Some(integration) = &query.integration {
                any_of("integration_id", vec![integration.clone()], &mut sql);
            }
            if let Some(keys) = &keys {
                let ids: std::collections::BTreeSet<String> =
                    keys.iter().map(|(_, id)| id.clone()).collect();
                any_of("message_id", ids.into_iter().collect(), &mut sql);
            }
            sql.push_str(" ORDER BY seq LIMIT ?");
            let batch = query.limit.clamp(1, SCAN_BATCH);
            args.push(Value::Integer(batch as i64));
            let mut stmt = conn.prepare(&sql)?;
            let mut collector = Collector::new(query, keys.as_deref());
            let mut last = query.after.seq;
            loop {
                if let Some(after) = args.get_mut(1) {
                    *after = Value::Integer(last);
                }
                let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
                let mut scanned = 0;
                while let Some(row) = rows.next()? {
                    scanned += 1;
                    let event = stored_event(row)?;
                    last = event.seq;
                    if collector.offer(event) {
                        return Ok(collector.page(Cursor { xid: 0, seq: last }));
                    }
                }
                if scanned < batch {
                    // Scanned up to the horizon.
                    let next = query.after.max(Cursor {
                        xid: 0,
                        seq: horizon,
                    });
                    return Ok(collector.page(next));
                }
                if collector.over_budget() {
                    return Ok(collector.page(Cursor { xid: 0, seq: last }));
                }
            }
        })
    }

    /// The message with this id (the sender's or the provider's) in one integration.
    pub fn message(
        &self,
        environment_id: &str,
        integration_id: &str,
        id: &str,
    ) -> Result<Option<MessageRow>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE environment_id = ?1 AND integration_id = ?2
                   AND (message_id = ?3 OR external_id = ?3)
                 ORDER BY message_id = ?3 DESC LIMIT 1"
            ))?;
            Ok(
                collect_messages(stmt.query(params![environment_id, integration_id, id])?)?
                    .into_iter()
                    .next(),
            )
        })
    }

    /// Every message with this id (the sender's or the provider's), across integrations.
    pub fn find_messages(&self, environment_id: &str, id: &str) -> Result<Vec<MessageRow>> {
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE environment_id = ?1 AND (message_id = ?2 OR external_id = ?2)
                 ORDER BY integration_id, message_id LIMIT 1000"
            ))?;
            collect_messages(stmt.query(params![environment_id, id])?)
        })
    }

    /// Messages by the position of their last change, filtered.
    pub fn list_messages(&self, query: &MessageQuery) -> Result<MessagePage> {
        let horizon = self.horizon();
        self.readers.with(|conn| {
            let mut sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE environment_id = ?1 AND changed_seq > ?2 AND changed_seq <= ?3"
            );
            let mut args: Vec<Value> = vec![
                Value::Text(query.environment_id.clone()),
                Value::Integer(query.after.seq),
                Value::Integer(horizon),
            ];
            if !query.statuses.is_empty() {
                let marks = vec!["?"; query.statuses.len()].join(", ");
                sql.push_str(&format!(" AND status IN ({marks})"));
                args.extend(
                    query
                        .statuses
                        .iter()
                        .map(|s| Value::Text(s.as_str().to_owned())),
                );
            }
            if let Some(integration) = &query.integration {
                sql.push_str(" AND integration_id = ?");
                args.push(Value::Text(integration.clone()));
            }
            sql.push_str(" ORDER BY changed_seq LIMIT ?");
            let batch = query.limit.clamp(1, SCAN_BATCH);
            args.push(Value::Integer(batch as i64));
            let mut stmt = conn.prepare(&sql)?;
            let mut messages = Vec::new();
            let mut last = query.after.seq;
            let mut scanned_total = 0;
            loop {
                if let Some(after) = args.get_mut(1) {
                    *after = Value::Integer(last);
                }
                let page = collect_messages(stmt.query(rusqlite::params_from_iter(args.iter()))?)?;
                let scanned = page.len();
                scanned_total += scanned;
                for message in page {
                    last = message.position.seq;
                    if query
                        .since
                        .is_none_or(|since| message.state.status_at >= since)
                    {
                        messages.push(message);
                        if messages.len() >= query.limit {
                            return Ok(MessagePage {
                                messages,
                                next: Cursor { xid: 0, seq: last },
                            });
                        }
                    }
                }
                if scanned < batch {
                    let next = query.after.max(Cursor {
                        xid: 0,
                        seq: horizon,
                    });
                    return Ok(MessagePage { messages, next });
                }
                if scanned_total >= SCAN_BUDGET {
                    return Ok(MessagePage {
                        messages,
                        next: Cursor { xid: 0, seq: last },
                    });
                }
            }
        })
    }

    /// A message's durable events, in event-time order.
    pub fn timeline(
        &self,
        environment_id: &str,
        integration_id: &str,
        message_id: &str,
    ) -> Result<Vec<StoredEvent>> {
        let horizon = self.horizon();
        self.readers.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE environment_id = ?1 AND message_id = ?2 AND integration_id = ?3
                   AND seq <= ?4
                 ORDER BY seq LIMIT {TIMELINE_MAX}"
            ))?;
            let mut rows =
                stmt.query(params![environment_id, message_id, integration_id, horizon])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(stored_event(row)?);
            }
            crate::cursor::by_event_time(&mut out);
            Ok(out)
        })
    }

    /// Each integration's events per status received in `window`.
    pub fn activity(&self, environment_id: &str, window: Window) -> Result<Vec<Activity>> {
        let horizon = self.horizon();
        let (day, hour, end) = (
            format_time(&window.day),
            format_time(&window.hour),
            format_time(&window.end),
        );
        self.readers.with(|conn| {
            let first: i64 =
                conn.query_row("SELECT COALESCE(min(seq), 1) FROM events", [], |r| r.get(0))?;
            let mut probe = conn.prepare_cached(
                "SELECT seq, received_at >= ?2 FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1",
            )?;
            let from = crate::activity::bisect(first, horizon + 1, |at| {
                probe
                    .query_row(params![at, day], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })?;
            // `+environment_id`: the window's position range drives the scan, not the whole
            // environment's share of `events_by_message` (see `read_events`).
            let mut stmt = conn.prepare_cached(
                "SELECT integration_id, status, count(*), sum(received_at >= ?5), max(received_at),
                        sum(duplicates)
                 FROM events
                 WHERE seq >= ?1 AND seq <= ?2 AND +environment_id = ?3
                   AND received_at >= ?4 AND received_at <= ?6
                 GROUP BY integration_id, status ORDER BY integration_id, status",
            )?;
            let mut rows = stmt.query(params![from, horizon, environment_id, day, hour, end])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(Activity {
                    integration_id: row.get(0)?,
                    status: row.get(1)?,
                    last_day: row.get::<_, i64>(2)?.try_into().unwrap_or(0),
                    last_hour: row.get::<_, i64>(3)?.try_into().unwrap_or(0),
                    last_received_at: parse_time(&row.get::<_, String>(4)?)?,
                    duplicates: row.get::<_, i64>(5)?.try_into().unwrap_or(0),
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

/// The columns [`stored_event`] reads, in its order.
/// The last one is `row`: its text, or its slice of the request body (see `layout.rs`).
const EVENT_COLUMNS: &str = concat!(
    "seq, environment_id, integration_id, provider, message_id, event, dedup_key, duplicates, \
     received_at, authentication, ",
    row_sql!()
);

/// An event's `row` (see `layout.rs`): its text, or its slice of the request body.
macro_rules! row_sql {
    () => {
        "CASE WHEN events.row_at IS NULL THEN events.row_text \
         ELSE (SELECT CAST(substr(r.body, events.row_at + 1, events.row_length) AS TEXT) \
               FROM raw_requests r WHERE r.seq = events.request_seq) END"
    };
}
use row_sql;

/// The columns [`message_row`] reads, in its order.
const MESSAGE_COLUMNS: &str = "environment_id, integration_id, message_id, external_id, provider, \
                               state, events, updated_at, changed_seq";

fn stored_event(row: &rusqlite::Row<'_>) -> Result<StoredEvent> {
    let seq: i64 = row.get(0)?;
    let event: String = row.get(5)?;
    let received_at: String = row.get(8)?;
    Ok(StoredEvent {
        position: Cursor { xid: 0, seq },
        seq,
        environment_id: row.get(1)?,
        integration_id: row.get(2)?,
        provider: row.get(3)?,
        id: row.get(4)?,
        event: layout::read_event(&event, row.get(10)?)?,
        dedup_key: row.get(6)?,
        duplicates: row.get(7)?,
        received_at: parse_time(&received_at)?,
        authentication: row.get(9)?,
    })
}

fn collect_messages(mut rows: rusqlite::Rows<'_>) -> Result<Vec<MessageRow>> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let state: String = row.get(5)?;
        let updated_at: String = row.get(7)?;
        out.push(MessageRow {
            environment_id: row.get(0)?,
            integration_id: row.get(1)?,
            id: row.get(2)?,
            external_id: row.get(3)?,
            provider: row.get(4)?,
            state: serde_json::from_str(&state).map_err(|e| Error::Corrupt(e.to_string()))?,
            events: row.get(6)?,
            updated_at: parse_time(&updated_at)?,
            position: Cursor {
                xid: 0,
                seq: row.get(8)?,
            },
        });
    }
    Ok(out)
}

/// The `(integration, message id)` of every message this id names, sender's or provider's.
fn message_keys(
    conn: &Connection,
    environment_id: &str,
    integration_id: Option<&str>,
    id: &str,
) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT integration_id, message_id FROM messages
         WHERE environment_id = ?1 AND (message_id = ?2 OR external_id = ?2)
           AND (?3 IS NULL OR integration_id = ?3)
         LIMIT 1000",
    )?;
    let keys = stmt
        .query_map(params![environment_id, id, integration_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(keys)
}

/// Connections for the read API, opened as needed and kept for reuse.
struct ReaderPool {
    path: PathBuf,
    synchronous_full: bool,
    idle: Mutex<Vec<Connection>>,
}

/// Reader connections kept open between reads.
const IDLE_READERS: usize = 4;

impl ReaderPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let idle = self.idle.lock().map_err(|_| Error::Unavailable)?.pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&self.path, self.synchronous_full)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_READERS
        {
            idle.push(conn);
        }
        result
    }
}

/// Deletes raw requests, events and idempotency records received before `cutoff`, `batch`
/// rows per transaction, so the writer never waits long for the database lock.
fn prune(pruner: &Mutex<Connection>, cutoff: DateTime<Utc>, batch: usize) -> Result<PruneStats> {
    let cutoff = format_time(&cutoff);
    let batch = batch.max(1) as i64;
    let mut stats = PruneStats::default();
    // Events first: they reference their raw request.
    let events = (
        // Never an event an enabled outbound endpoint has not had yet.
        "DELETE FROM events WHERE seq IN
           (SELECT e.seq FROM events e WHERE e.received_at < ?1
              AND NOT EXISTS (SELECT 1 FROM outbound_endpoints o
                              WHERE o.enabled AND o.environment_id = e.environment_id
                                AND e.seq > o.cursor_seq)
            ORDER BY e.seq LIMIT ?2)",
        &cutoff,
        None,
        &mut stats.events,
    );
    delete_in_batches(pruner, [events], batch)?;
    // An event kept for an outbound endpoint keeps its request too: its `row` is read from the
    // request's body. Events are received with their request, so only events from before the
    // cutoff can refer to requests from before it.
    let kept: Option<i64> = {
        let conn = pruner.lock().map_err(|_| Error::Unavailable)?;
        conn.query_row(
            "SELECT min(request_seq) FROM events WHERE received_at < ?1",
            params![cutoff],
            |row| row.get(0),
        )?
    };
    // Nonces matter only until they expire, whatever the retention.
    let now = format_time(&Utc::now());
    let rest = [
        (
            "DELETE FROM raw_requests WHERE seq IN
               (SELECT seq FROM raw_requests WHERE received_at < ?1 AND seq < ?3
                ORDER BY seq LIMIT ?2)",
            &cutoff,
            Some(kept.unwrap_or(i64::MAX)),
            &mut stats.raw_requests,
        ),
        (
            "DELETE FROM idempotency WHERE rowid IN
               (SELECT rowid FROM idempotency WHERE created_at < ?1 LIMIT ?2)",
            &cutoff,
            None,
            &mut stats.idempotency,
        ),
        (
            "DELETE FROM replay_nonces WHERE rowid IN
               (SELECT rowid FROM replay_nonces WHERE expires_at < ?1 LIMIT ?2)",
            &now,
            None,
            &mut stats.nonces,
        ),
    ];
    delete_in_batches(pruner, rest, batch)?;
    Ok(stats)
}

/// Runs each `(statement, before, bound, count)` until it deletes fewer than `batch` rows; the
/// statement takes `?3` when there is a bound.
type PruneStep<'a> = (&'a str, &'a String, Option<i64>, &'a mut u64);

fn delete_in_batches<const N: usize>(
    pruner: &Mutex<Connection>,
    steps: [PruneStep<'_>; N],
    batch: i64,
) -> Result<()> {
    for (sql, before, bound, count) in steps {
        loop {
            let deleted = {
                let conn = pruner.lock().map_err(|_| Error::Unavailable)?;
                match bound {
                    Some(bound) => conn.execute(sql, params![before, batch, bound])?,
                    None => conn.execute(sql, params![before, batch])?,
                }
            };
            *count += deleted as u64;
            if (deleted as i64) < batch {
                break;
            }
            // Let the writer in between batches.
            std::thread::yield_now();
        }
    }
    Ok(())
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(e.to_string()))
}

fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Copies the WAL back into the database every [`CHECKPOINT_EVERY`], or at once when the
/// writer waits for it, until the writer stops. PASSIVE: it never waits for, nor blocks, the
/// writer or readers.
fn checkpoint_loop(conn: &Connection, checkpoints: &Checkpoints) {
    loop {
        {
            let Ok(state) = checkpoints.state.lock() else {
                return;
            };
            let Ok((state, _)) =
                checkpoints
                    .changed
                    .wait_timeout_while(state, CHECKPOINT_EVERY, |s| !s.wanted && !s.stopped)
            else {
                return;
            };
            if state.stopped {
                return;
            }
        }
        // (busy, frames in the WAL, frames copied back)
        let checkpointed = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match checkpointed {
            Ok((frames, copied)) => {
                if let Ok(mut state) = checkpoints.state.lock() {
                    state.frames = frames;
                    state.passes += 1;
                    if frames >= 0 && copied == frames {
                        state.complete += 1;
                        state.held_back_at = 0;
                    }
                    checkpoints.changed.notify_all();
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "Background checkpoint failed; the writer's own will catch up.");
            }
        }
    }
}

/// Committed requests waiting for the WAL to reach the disk: each one's answer and outcome, and
/// the highest event `seq` the group committed (0 when it stored no event).
type Acks = (Vec<(Reply, IngestOutcome)>, i64);

/// The database's write-ahead log file.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Answers committed groups once the WAL holding them is on disk: every group committed while
/// the previous fsync ran shares the next one. (fsync applies to the file, whichever
/// descriptor calls it, so the writer's own writes are covered.)
fn sync_loop(
    wal: &Path,
    dir: &Path,
    pending: &std::sync::mpsc::Receiver<Acks>,
    durable: &tokio::sync::watch::Sender<i64>,
    readiness: &crate::readiness::Readiness,
) {
    // The WAL file's own directory entry must be durable too, once.
    let mut dir_synced = false;
    // Kept open: opening it before every fdatasync costs two syscalls per group. A checkpoint
    // that resets the WAL rewrites the same file, so the descriptor stays the right one.
    let mut file: Option<std::fs::File> = None;
    while let Ok((mut acks, mut highest)) = pending.recv() {
        while let Ok((more, more_highest)) = pending.try_recv() {
            acks.extend(more);
            highest = highest.max(more_highest);
        }
        let opened = match file.take() {
            Some(open) => Ok(open),
            None => std::fs::File::open(wal),
        };
        let synced = opened
            .and_then(|open| {
                let synced = open.sync_data();
                file = Some(open);
                synced
            })
            .and_then(|()| {
                if !dir_synced {
                    std::fs::File::open(dir)?.sync_all()?;
                    dir_synced = true;
                }
                Ok(())
            });
        readiness.committed(synced.is_ok());
        match synced {
            Ok(()) => {
                publish(durable, highest);
                for (reply, outcome) in acks {
                    reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                file = None;
                // Committed but not known durable: not acknowledged; the provider retries and
                // the retry is deduplicated.
                tracing::error!(error = %err, requests = acks.len(), "Syncing the WAL failed.");
                for (reply, _) in acks {
                    reply.send(Err(Error::Unavailable));
                }
            }
        }
    }
}

/// Raises the durable watermark (never lowers it) and wakes the streams waiting on it.
fn publish(durable: &tokio::sync::watch::Sender<i64>, highest: i64) {
    durable.send_if_modified(|current| {
        let raised = highest > *current;
        if raised {
            *current = highest;
        }
        raised
    });
}

// Each argument is a separate piece of the writer's shared state, set up once by `open`.
#[allow(clippy::too_many_arguments)]
fn writer_loop(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    stats: &Mutex<CommitStats>,
    readiness: &crate::readiness::Readiness,
    syncer: Option<&std::sync::mpsc::Sender<Acks>>,
    durable: &tokio::sync::watch::Sender<i64>,
    checkpoints: &Checkpoints,
    settings: &SuppressionSettings,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = queue.blocking_recv() {
        checkpoints.yield_when_long();
        // A request whose client has gone is dropped here; once in a group it is committed.
        let admit = |batch: &mut Vec<Job>, job: Job| {
            readiness.taken();
            if job.reply.join() {
                batch.push(job);
            } else {
                job.reply.send(Err(Error::Cancelled));
            }
        };
        admit(&mut batch, first);
        // Everything already waiting joins this transaction (and its fsync).
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => admit(&mut batch, job),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = commit_group(&mut conn, &batch, settings);
        let elapsed = started.elapsed();
        if let Ok(mut s) = stats.lock() {
            s.commits += 1;
            s.requests += batch.len() as u64;
            s.commit_micros += elapsed.as_micros() as u64;
        }
        // With a syncer, a commit's success is known once it is synced (the syncer reports it).
        if result.is_err() || syncer.is_none() {
            readiness.committed(result.is_ok());
        }
        match result {
            Ok((outcomes, highest)) => {
                let acks = batch.drain(..).map(|job| job.reply).zip(outcomes);
                match syncer {
                    Some(syncer) => {
                        if let Err(returned) = syncer.send((acks.collect(), highest)) {
                            for (reply, _) in returned.0.0 {
                                reply.send(Err(Error::Unavailable));
                            }
                        }
                    }
                    None => {
                        publish(durable, highest);
                        for (reply, outcome) in acks {
                            reply.send(Ok(outcome));
                        }
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, requests = batch.len(), "Store commit failed.");
                for job in batch.drain(..) {
                    job.reply.send(Err(Error::Unavailable));
                }
            }
        }
    }
}

/// A message touched by a group: its provider and provider id, state, event count and the
/// position of the group's last event for it.
struct Touched {
    provider: String,
    external_id: Option<String>,
    state: MessageState,
    events: i64,
    changed_seq: i64,
}

/// The request a request carrying events repeats: one that stored its events (all of them are
/// already stored) with the same body. A request with a new event stops at the first lookup,
/// so new requests pay one index probe, on the page their event's insert then writes.
fn repeated_request(
    stored_by: &mut rusqlite::CachedStatement<'_>,
    same_body: &mut rusqlite::CachedStatement<'_>,
    ingest: &Ingest,
    rows: &[EventRow],
) -> Result<Option<i64>> {
    let mut originals: Vec<i64> = Vec::new();
    for (event, row) in ingest.events.iter().zip(rows) {
        let original: Option<i64> = stored_by
            .query_row(
                params![ingest.environment_id, row.dedup_time, event.dedup_key],
                |row| row.get(0),
            )
            .optional()?;
        let Some(original) = original else {
            return Ok(None);
        };
        if !originals.contains(&original) {
            originals.push(original);
        }
    }
    for original in originals {
        if same_body.exists(params![
            original,
            ingest.environment_id,
            ingest.integration_id,
            ingest.body_hash
        ])? {
            return Ok(Some(original));
        }
    }
    Ok(None)
}

/// Writes a message's folded state whole (the group's fold, or re-parse's fold from scratch).
const SAVE_MESSAGE: &str = "INSERT INTO messages (environment_id, integration_id, message_id,
       external_id, provider, status, state, events, updated_at, changed_seq)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
     ON CONFLICT (environment_id, integration_id, message_id) DO UPDATE SET
       external_id = excluded.external_id, provider = excluded.provider,
       status = excluded.status, state = excluded.state, events = excluded.events,
       updated_at = excluded.updated_at, changed_seq = excluded.changed_seq";

/// Commits one group; returns each request's outcome and the highest event `seq` stored.
fn commit_group(
    conn: &mut Connection,
    batch: &[Job],
    settings: &SuppressionSettings,
) -> Result<(Vec<IngestOutcome>, i64)> {
    // IMMEDIATE: the group may read before it writes (a repeated body is looked up first), and
    // a deferred transaction whose snapshot another connection (retention) has since written
    // past cannot take the write lock; it fails at once instead of waiting.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut suppression_touches = Touches::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut highest = 0;
    // Message states touched by this group, written once at the end.
    let mut touched: BTreeMap<(String, String, String), Touched> = BTreeMap::new();
    {
        // A request without events is a repeat when its body's hash is already indexed.
        let mut insert_bare_request = tx.prepare_cached(
            "INSERT INTO raw_requests
               (environment_id, integration_id, provider, received_at, content_type, headers, body,
                ignored, body_hash, method, url, authentication)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (environment_id, integration_id, body_hash) WHERE has_events = 0
             DO UPDATE SET repeats = repeats + 1
             RETURNING seq, repeats",
        )?;
        // One carrying events is appended; whether it repeats one is known from its events.
        let mut insert_request = tx.prepare_cached(
            "INSERT INTO raw_requests
               (environment_id, integration_id, provider, received_at, content_type, headers, body,
                ignored, body_hash, method, url, authentication, has_events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1)",
        )?;
        // Looked up before a request carrying events is stored (deleting a row afterwards
        // would scan `events` for the foreign key): which request stored an event, and whether
        // it had this body.
        let mut stored_by = tx.prepare_cached(
            "SELECT request_seq FROM events
             WHERE environment_id = ?1 AND dedup_time = ?2 AND dedup_key = ?3",
        )?;
        let mut same_body = tx.prepare_cached(
            "SELECT 1 FROM raw_requests
             WHERE seq = ?1 AND environment_id = ?2 AND integration_id = ?3 AND body_hash = ?4",
        )?;
        let mut count_repeat =
            tx.prepare_cached("UPDATE raw_requests SET repeats = repeats + 1 WHERE seq = ?1")?;
        // A nonce is taken if it is new or its earlier use has expired.
        let mut take_nonce = tx.prepare_cached(
            "INSERT INTO replay_nonces
               (environment_id, integration_id, scope, nonce, body_hash, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (environment_id, integration_id, scope, nonce) DO UPDATE SET
               body_hash = excluded.body_hash, created_at = excluded.created_at,
               expires_at = excluded.expires_at
             WHERE replay_nonces.expires_at < excluded.created_at",
        )?;
        let mut nonce_body = tx.prepare_cached(
            "SELECT body_hash FROM replay_nonces
             WHERE environment_id = ?1 AND integration_id = ?2 AND scope = ?3 AND nonce = ?4",
        )?;
        let mut insert_event = tx.prepare_cached(
            "INSERT INTO events
               (environment_id, integration_id, provider, message_id, dedup_key, status, date,
                event, request_seq, received_at, authentication, dedup_time, row_at, row_length,
                row_text)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (environment_id, dedup_time, dedup_key) DO NOTHING",
        )?;
        let mut count_duplicate = tx.prepare_cached(
            "UPDATE events SET duplicates = duplicates + 1
             WHERE environment_id = ?1 AND dedup_time = ?2 AND dedup_key = ?3",
        )?;
        let mut load_message = tx.prepare_cached(
            "SELECT state, events, external_id FROM messages
             WHERE environment_id = ?1 AND integration_id = ?2 AND message_id = ?3",
        )?;
        let mut save_idempotency = tx.prepare_cached(
            "INSERT INTO idempotency
               (environment_id, integration_id, key, body_hash, status, response, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (environment_id, integration_id, key) DO UPDATE SET
               body_hash = excluded.body_hash, status = excluded.status,
               response = excluded.response, created_at = excluded.created_at",
        )?;
        for Job { ingest, rows, .. } in batch {
            let received_at = format_time(&ingest.received_at);
            if let Some(nonce) = &ingest.nonce {
                let taken = take_nonce.execute(params![
                    ingest.environment_id,
                    ingest.integration_id,
                    nonce.scope,
                    nonce.value,
                    ingest.body_hash,
                    received_at,
                    format_time(&nonce.expires_at),
                ])?;
                if taken == 0 {
                    let first: Vec<u8> = nonce_body.query_row(
                        params![
                            ingest.environment_id,
                            ingest.integration_id,
                            nonce.scope,
                            nonce.value
                        ],
                        |row| row.get(0),
                    )?;
                    // The same body again is the provider's retry; another body is a replay.
                    if first != ingest.body_hash {
                        outcomes.push(IngestOutcome {
                            nonce_reused: true,
                            ..IngestOutcome::default()
                        });
                        continue;
                    }
                }
            }
            let request = params![
                ingest.environment_id,
                ingest.integration_id,
                ingest.provider,
                received_at,
                ingest.content_type,
                ingest.headers_json,
                ingest.body,
                ingest.ignored_json,
                ingest.body_hash,
                ingest.method,
                ingest.url,
                ingest.authentication,
            ];
            let (request_seq, repeats) = if ingest.events.is_empty() {
                insert_bare_request.query_row(request, |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })?
            } else if let Some(original) =
                repeated_request(&mut stored_by, &mut same_body, ingest, rows)?
            {
                count_repeat.execute(params![original])?;
                (original, 1)
            } else {
                insert_request.execute(request)?;
                (tx.last_insert_rowid(), 0)
            };
            let mut outcome = IngestOutcome {
                request_seq,
                repeat: repeats > 0,
                ..IngestOutcome::default()
            };
            for (event, row) in ingest.events.iter().zip(rows) {
                let inserted = insert_event.execute(params![
                    ingest.environment_id,
                    ingest.integration_id,
                    ingest.provider,
                    event.id,
                    event.dedup_key,
                    event.body.status.as_str(),
                    format_time(&event.body.date),
                    row.json,
                    request_seq,
                    received_at,
                    ingest.authentication,
                    row.dedup_time,
                    row.row_at,
                    row.row_length,
                    row.row_text,
                ])?;
                if inserted == 0 {
                    count_duplicate.execute(params![
                        ingest.environment_id,
                        row.dedup_time,
                        event.dedup_key
                    ])?;
                    outcome.duplicates += 1;
                    continue;
                }
                outcome.stored += 1;
                let seq = tx.last_insert_rowid();
                highest = seq;
                note_event(&mut suppression_touches, settings, ingest, event, seq);
                let key = (
                    ingest.environment_id.clone(),
                    ingest.integration_id.clone(),
                    event.id.clone(),
                );
                let fact = Fact::from(event);
                if let Some(message) = touched.get_mut(&key) {
                    message.state.apply(fact);
                    message.events += 1;
                    message.changed_seq = seq;
                    message.provider.clone_from(&ingest.provider);
                    if event.body.external_id.is_some() {
                        message.external_id.clone_from(&event.body.external_id);
                    }
                    continue;
                }
                let existing = load_message
                    .query_row(params![key.0, key.1, key.2], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, Option<String>>(2)?,
                        ))
                    })
                    .optional()?;
                let (state, events, stored_external_id) = match existing {
                    Some((json, count, external_id)) => {
                        let mut state: MessageState = serde_json::from_str(&json)
                            .map_err(|e| Error::Corrupt(e.to_string()))?;
                        state.apply(fact);
                        (state, count + 1, external_id)
                    }
                    None => (MessageState::new(fact), 1, None),
                };
                touched.insert(
                    key,
                    Touched {
                        provider: ingest.provider.clone(),
                        external_id: event.body.external_id.clone().or(stored_external_id),
                        state,
                        events,
                        changed_seq: seq,
                    },
                );
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
                    ingest.integration_id,
                    key,
                    body_hash,
                    status,
                    response,
                    received_at,
                ])?;
            }
            outcomes.push(outcome);
        }
        let mut save_message = tx.prepare_cached(SAVE_MESSAGE)?;
        let now = format_time(&Utc::now());
        for ((environment_id, integration_id, message_id), message) in &touched {
            let json =
                serde_json::to_string(&message.state).map_err(|e| Error::Corrupt(e.to_string()))?;
            save_message.execute(params![
                environment_id,
                integration_id,
                message_id,
                message.external_id,
                message.provider,
                message.state.status.as_str(),
                json,
                message.events,
                now,
                message.changed_seq,
            ])?;
        }
    }
    suppressions::apply(&tx, &suppression_touches, &settings.policy)?;
    tx.commit()?;
    Ok((outcomes, highest))
}
