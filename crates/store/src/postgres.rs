//! The PostgreSQL backend: several service instances share one database.
//!
//! Same contract as SQLite: one transaction per group of requests (a committer task drains a
//! bounded queue), dedup by a unique key, idempotency records in the same transaction. What
//! differs is that other instances write concurrently, so:
//!
//! - the message status fold is done by the database: an `INSERT ... ON CONFLICT DO UPDATE`
//!   keeps the row whose `(precedence, status_at, status ordinal, failure ordinal)` tuple is the
//!   greatest and merges each status's first-seen time with `LEAST`. Both are joins (max, min),
//!   so two instances folding different events of one message in any order cannot lose an
//!   update, and the result equals [`MessageState::fold`] over all the events;
//! - idempotency claims are rows (`status IS NULL` while in flight), so a key in flight on one
//!   instance is seen by all;
//! - migrations run under `pg_advisory_lock`, so instances starting together apply them once.
//!
//! Times that the fold compares (`status_at`, the first-seen times) are stored as 12 sortable
//! bytes (seconds, then nanoseconds, big-endian with the sign flipped), not `timestamptz`: byte
//! order is exactly chrono's order, to the nanosecond, over chrono's whole range, so the SQL fold
//! and the Rust fold can never disagree through rounding or an out-of-range provider date.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tidings_core::fold::MessageState;
use tidings_core::{Failure, Status};
use tokio::sync::{Semaphore, mpsc};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::cursor::{
    Collector, Cursor, EventPage, EventQuery, MessageQuery, SCAN_BATCH, SCAN_BUDGET, TIMELINE_MAX,
};
use crate::layout;
use crate::suppressions::SuppressionSettings;
use crate::{
    Activity, Claim, CommitStats, Error, IDEMPOTENCY_TTL, Ingest, IngestOutcome, MessagePage,
    MessageRow, PruneStats, Result, StoredEvent, StoredResponse, Window,
};

/// Migration 1: requests, events, idempotency records. `events.request_seq` refers to
/// `raw_requests.seq`; it is not a declared foreign key so that retention can delete old requests
/// without scanning events (an event is always received with its request, so both age together).
const SCHEMA_1: &str = "CREATE TABLE raw_requests (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        content_type TEXT,
        headers TEXT NOT NULL,
        body BYTEA NOT NULL,
        ignored TEXT NOT NULL
    );
    CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        message_id TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        status TEXT NOT NULL,
        date TEXT NOT NULL,
        event TEXT NOT NULL,
        request_seq BIGINT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        duplicates BIGINT NOT NULL DEFAULT 0,
        UNIQUE (environment_id, dedup_key)
    );
    CREATE INDEX events_by_message ON events (environment_id, message_id, seq);
    CREATE TABLE idempotency (
        environment_id TEXT NOT NULL,
        key TEXT NOT NULL,
        body_hash BYTEA NOT NULL,
        status INTEGER,
        response BYTEA,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (environment_id, key)
    );
    CREATE INDEX idempotency_by_age ON idempotency (created_at);";

mod commit;
mod existing;
mod explain;
mod outbound;
mod rejections;
mod reparse;
mod suppressions;

/// Versioned migrations, recorded in `tidings_migrations`: number `i + 1` is `migrations()[i]`.
fn migrations() -> Vec<String> {
    vec![
        SCHEMA_1.to_owned(),
        // 2: messages, with the fold's columns.
        messages_table(),
        SCHEMA_3.to_owned(),
        // 4: replays (one raw request per body, signed nonces).
        REPLAYS.to_owned(),
        // 5: outbound delivery progress.
        OUTBOUND_SCHEMA.to_owned(),
        // 6: refused requests.
        rejections::MIGRATION.to_owned(),
        // 7: the suppression list: its records and one derived entry per recipient.
        // Self-contained: creates two new tables, touches nothing else.
        suppressions::MIGRATION.to_owned(),
        // 8: raw requests keep the method and the path and query they were sent to (a GET
        // receipt's fields are in the query string; rows from before read as POST, no URL);
        // requests and events keep how the request was authenticated (NULL before).
        "ALTER TABLE raw_requests ADD COLUMN method TEXT NOT NULL DEFAULT 'POST',
            ADD COLUMN url TEXT, ADD COLUMN authentication TEXT;
        ALTER TABLE events ADD COLUMN authentication TEXT;"
            .to_owned(),
        // 9: a repeated body found through its events (see `LONE_BODIES`).
        LONE_BODIES.to_owned(),
        // 10: the dedup key led by the event's time, `row` kept once (see `EVENT_LAYOUT`).
        EVENT_LAYOUT.to_owned(),
    ]
}

/// Events are deduplicated under a key led by their own time, so inserts stay local whatever
/// the message ids, and an event refers to its request's body for its provider text instead of
/// keeping a second copy (see `layout.rs`). Rows made before keep `row` in their JSON; their
/// dedup time is what an insert computes now (the receive time's events under 0: `date` keeps
/// nanoseconds and `received_at` microseconds, hence the tolerance; a date beyond year 9999,
/// which PostgreSQL would not read, too). Instances
/// running the previous version name the old constraint in `ON CONFLICT` and fail once it is
/// gone: stop them all before upgrading.
const EVENT_LAYOUT: &str = "ALTER TABLE events ADD COLUMN dedup_time BIGINT,
        ADD COLUMN row_at BIGINT, ADD COLUMN row_length BIGINT, ADD COLUMN row_text TEXT;
    UPDATE events SET dedup_time = CASE
        WHEN date !~ '^[0-9]{4}-' THEN 0
        WHEN date::timestamptz BETWEEN received_at - interval '1 microsecond'
                                   AND received_at + interval '1 microsecond' THEN 0
        ELSE floor(extract(epoch FROM date::timestamptz))::bigint END;
    ALTER TABLE events ALTER COLUMN dedup_time SET NOT NULL;
    ALTER TABLE events DROP CONSTRAINT events_environment_id_dedup_key_key;
    ALTER TABLE events ADD CONSTRAINT events_by_dedup
        UNIQUE (environment_id, dedup_time, dedup_key);";

/// A repeated body is found through its events: a request carrying events repeats an earlier
/// one only when all its events are duplicates, and their `request_seq` names it. So only
/// requests without events stay in the hash-keyed unique index, which otherwise costs a random
/// page per request. Rows made before stay in it. Instances running the previous version name
/// the old index in `ON CONFLICT` and fail once it is gone: stop them all before upgrading.
const LONE_BODIES: &str = "ALTER TABLE raw_requests
        ADD COLUMN has_events BOOLEAN NOT NULL DEFAULT FALSE;
    DROP INDEX raw_requests_by_body;
    CREATE UNIQUE INDEX raw_requests_by_body
        ON raw_requests (environment_id, integration_id, body_hash) WHERE NOT has_events;";

/// Hardening round 2 (replays): one raw request per distinct body per integration, repeats
/// counted (rows made before have no hash and stay as they are); signed one-time values
/// (Mailgun's token) remembered until they expire, scoped to the signing key.
const REPLAYS: &str = "ALTER TABLE raw_requests ADD COLUMN body_hash BYTEA,
        ADD COLUMN repeats BIGINT NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX raw_requests_by_body
        ON raw_requests (environment_id, integration_id, body_hash);
    CREATE TABLE replay_nonces (
        environment_id TEXT NOT NULL,
        integration_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        nonce TEXT NOT NULL,
        body_hash BYTEA NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (environment_id, integration_id, scope, nonce)
    );
    CREATE INDEX replay_nonces_by_expiry ON replay_nonces (expires_at);";

/// Outbound delivery progress (see `outbound.rs`): one row per configured endpoint with its
/// cursor, counters and head lease (owner, expiry, fencing epoch), and one row per event in
/// retry or dead-lettered, with the exact payload its attempts send and a lease of its own.
const OUTBOUND_SCHEMA: &str = "CREATE TABLE outbound_endpoints (
        endpoint_id TEXT PRIMARY KEY,
        environment_id TEXT NOT NULL,
        enabled BOOLEAN NOT NULL DEFAULT TRUE,
        cursor_xid xid8 NOT NULL DEFAULT '0',
        cursor_seq BIGINT NOT NULL DEFAULT 0,
        delivered BIGINT NOT NULL DEFAULT 0,
        last_success_at TIMESTAMPTZ,
        last_error_at TIMESTAMPTZ,
        last_error TEXT,
        lease_owner TEXT,
        lease_epoch BIGINT NOT NULL DEFAULT 0,
        lease_until TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE outbound_deliveries (
        endpoint_id TEXT NOT NULL,
        event_xid xid8 NOT NULL,
        event_seq BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at TIMESTAMPTZ,
        last_attempt_at TIMESTAMPTZ NOT NULL,
        last_status INTEGER,
        last_answer TEXT NOT NULL,
        webhook_id TEXT NOT NULL,
        payload BYTEA NOT NULL,
        lease_owner TEXT,
        lease_until TIMESTAMPTZ,
        PRIMARY KEY (endpoint_id, event_seq)
    );
    CREATE INDEX outbound_due ON outbound_deliveries (endpoint_id, state, next_attempt_at);";

/// Migration 3: the read API. Events record their writing transaction so the cursor can be
/// gap-free (see `cursor.rs`); a message belongs to one integration, is found by the provider's
/// id too, and records the position of its last change; idempotency keys belong to an
/// integration. Messages made before keep the integration of their latest event; idempotency
/// records made before are kept under no integration. Instances of the previous release must be
/// stopped first: their `ON CONFLICT` targets no longer exist.
const SCHEMA_3: &str = "ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
    ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
    CREATE INDEX events_by_position ON events (environment_id, xid, seq);
    ALTER TABLE messages ADD COLUMN integration_id TEXT, ADD COLUMN external_id TEXT,
        ADD COLUMN changed_xid xid8 NOT NULL DEFAULT '0',
        ADD COLUMN changed_seq BIGINT NOT NULL DEFAULT 0;
    UPDATE messages m SET
        integration_id = COALESCE((SELECT e.integration_id FROM events e
            WHERE e.environment_id = m.environment_id AND e.message_id = m.message_id
            ORDER BY e.seq DESC LIMIT 1), m.provider),
        external_id = (SELECT e.event::jsonb #>> '{body,externalId}' FROM events e
            WHERE e.environment_id = m.environment_id AND e.message_id = m.message_id
              AND e.event::jsonb #>> '{body,externalId}' IS NOT NULL
            ORDER BY e.seq DESC LIMIT 1),
        changed_seq = COALESCE((SELECT max(e.seq) FROM events e
            WHERE e.environment_id = m.environment_id AND e.message_id = m.message_id), 0);
    ALTER TABLE messages ALTER COLUMN integration_id SET NOT NULL;
    ALTER TABLE messages DROP CONSTRAINT messages_pkey;
    ALTER TABLE messages ADD PRIMARY KEY (environment_id, integration_id, message_id);
    CREATE INDEX messages_by_external_id ON messages (environment_id, external_id);
    CREATE INDEX messages_by_change ON messages (environment_id, changed_xid, changed_seq);
    ALTER TABLE idempotency ADD COLUMN integration_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE idempotency DROP CONSTRAINT idempotency_pkey;
    ALTER TABLE idempotency ADD PRIMARY KEY (environment_id, integration_id, key);";

/// The advisory lock taken while migrating: one key per schema.
const MIGRATION_LOCK: &str = "hashtext('tidings.migrations'), hashtext(current_schema())";

/// How the PostgreSQL store is opened.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database?options=...`.
    pub url: String,
    /// Connections in this instance's pool.
    pub pool_size: usize,
    /// Requests that may wait for a commit before new ones are refused as saturated.
    pub queue_capacity: usize,
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// An idempotency claim older than this is taken as abandoned (the request timeout).
    pub claim_timeout: Duration,
    /// How long to wait for a connection, a connect, or one commit before answering unavailable.
    pub timeout: Duration,
    /// The suppression list's thresholds and phone number defaults.
    pub suppressions: SuppressionSettings,
}

impl PgOptions {
    /// Defaults for a database URL.
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
            pool_size: 8,
            queue_capacity: 4096,
            max_batch: 512,
            claim_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            suppressions: SuppressionSettings::default(),
        }
    }
}

use crate::admission::Reply;

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Connections for the read API, so that readers never wait behind commits and claims.
    readers: Pool,
    /// Counts this instance's commits, to wake its streams.
    commits: Arc<tokio::sync::watch::Sender<i64>>,
    writer: mpsc::Sender<(Ingest, Reply)>,
    stats: Arc<Mutex<CommitStats>>,
    readiness: Arc<crate::readiness::Readiness>,
    claim_timeout: chrono::Duration,
    timeout: Duration,
    suppression_settings: Arc<SuppressionSettings>,
}

fn pg_error(err: impl std::fmt::Display) -> Error {
    Error::Postgres(err.to_string())
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Error {
        pg_error(err)
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(err: deadpool_postgres::PoolError) -> Error {
        pg_error(err)
    }
}

/// The `messages` table: the fold's tuple, and one first-seen column per status.
fn messages_table() -> String {
    let firsts: String = Status::ALL
        .iter()
        .map(|s| format!("        first_{} BYTEA,\n", s.as_str()))
        .collect();
    format!(
        "CREATE TABLE messages (
        environment_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        status TEXT NOT NULL,
        precedence SMALLINT NOT NULL,
        status_at BYTEA NOT NULL,
        status_ord SMALLINT NOT NULL,
        failure_ord SMALLINT NOT NULL,
{firsts}        events BIGINT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (environment_id, message_id)
    );"
    )
}

/// The columns [`message_row`] reads, in its order.
fn message_columns() -> String {
    let firsts: Vec<String> = Status::ALL
        .iter()
        .map(|s| format!("first_{}", s.as_str()))
        .collect();
    format!(
        "environment_id, message_id, provider, events, status, status_at, failure_ord,
         integration_id, external_id, updated_at, changed_xid::text, changed_seq, {}",
        firsts.join(", ")
    )
}

/// Column index of the first first-seen time in [`message_columns`].
const FIRSTS_AT: usize = 12;

fn select_messages_sql() -> String {
    format!(
        "SELECT {} FROM messages
         WHERE ($1::text IS NULL OR environment_id = $1) AND ($2::text IS NULL OR message_id = $2)
         ORDER BY environment_id COLLATE \"C\", message_id COLLATE \"C\",
                  integration_id COLLATE \"C\"",
        message_columns()
    )
}

/// A time as 12 bytes whose byte order is chrono's order.
pub(crate) fn encode_time(time: &DateTime<Utc>) -> Vec<u8> {
    let seconds = (time.timestamp() as u64) ^ (1 << 63);
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&seconds.to_be_bytes());
    out.extend_from_slice(&time.timestamp_subsec_nanos().to_be_bytes());
    out
}

pub(crate) fn decode_time(bytes: &[u8]) -> Result<DateTime<Utc>> {
    let corrupt = || Error::Corrupt("a stored time is not 12 bytes".into());
    let seconds: [u8; 8] = bytes
        .get(..8)
        .ok_or_else(corrupt)?
        .try_into()
        .map_err(|_| corrupt())?;
    let nanos: [u8; 4] = bytes
        .get(8..12)
        .ok_or_else(corrupt)?
        .try_into()
        .map_err(|_| corrupt())?;
    let seconds = (u64::from_be_bytes(seconds) ^ (1 << 63)) as i64;
    DateTime::from_timestamp(seconds, u32::from_be_bytes(nanos))
        .ok_or_else(|| Error::Corrupt("a stored time is out of range".into()))
}

/// `Option<Failure>`'s order as a number: none, temporary, permanent.
fn failure_ordinal(failure: Option<Failure>) -> i16 {
    match failure {
        None => 0,
        Some(Failure::Temporary) => 1,
        Some(Failure::Permanent) => 2,
    }
}

fn failure_from_ordinal(ordinal: i16) -> Result<Option<Failure>> {
    match ordinal {
        0 => Ok(None),
        1 => Ok(Some(Failure::Temporary)),
        2 => Ok(Some(Failure::Permanent)),
        other => Err(Error::Corrupt(format!("unknown failure ordinal {other}"))),
    }
}

/// Whether a transaction failed only because of a concurrent one and may simply be retried.
fn is_retryable(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

fn open_error(url: &str, reason: impl std::fmt::Display) -> Error {
    Error::Open {
        path: redact(url),
        reason: reason.to_string(),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    crate::redact_url(url)
}

/// Applies the migrations not applied yet, holding the advisory lock on its own connection (a
/// failure closes the connection, which releases the lock).
async fn migrate(config: &tokio_postgres::Config, url: &str) -> Result<()> {
    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| open_error(url, explain::explain(&e)))?;
    let connection = tokio::spawn(connection);
    let result = async {
        client
            .execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"), &[])
            .await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS tidings_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )",
            )
            .await?;
        let applied: i32 = client
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM tidings_migrations",
                &[],
            )
            .await?
            .get(0);
        for (index, sql) in migrations().iter().enumerate() {
            let version = index as i32 + 1;
            if version <= applied {
                continue;
            }
            let tx = client.transaction().await?;
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO tidings_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            tx.commit().await?;
        }
        client
            .execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"), &[])
            .await?;
        Ok::<_, tokio_postgres::Error>(())
    }
    .await;
    drop(client);
    let _ = connection.await;
    result.map_err(|e| open_error(url, explain::explain(&e)))
}

impl PgStore {
    /// Connects, applies pending migrations and starts the committer task. Needs a Tokio runtime.
    pub async fn open(options: PgOptions) -> Result<PgStore> {
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| open_error(&options.url, explain::explain(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("tidings");
        }
        migrate(&config, &options.url).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let build = |manager, size: usize| {
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(options.timeout))
                .create_timeout(Some(options.timeout))
                .recycle_timeout(Some(options.timeout))
                .build()
                .map_err(|e| open_error(&options.url, e))
        };
        let reader_manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = build(manager, options.pool_size.max(2))?;
        let readers = build(reader_manager, (options.pool_size / 2).max(2))?;
        let (writer, queue) = mpsc::channel(options.queue_capacity.max(1));
        let stats = Arc::new(Mutex::new(CommitStats::default()));
        let commits = Arc::new(tokio::sync::watch::Sender::new(0));
        let readiness = Arc::new(crate::readiness::Readiness::default());
        // A quarter of the pool commits (2 of the default 8): fewer, larger groups measured
        // faster than half (BENCHMARKS.md), and the rest serves claims and readiness checks.
        let committers = (options.pool_size.max(2) / 4).max(1);
        let suppression_settings = Arc::new(options.suppressions.clone());
        tokio::spawn(committer(
            pool.clone(),
            queue,
            options.max_batch.max(1),
            committers,
            options.timeout.max(Duration::from_secs(1)) * 2,
            Arc::clone(&stats),
            Arc::clone(&commits),
            Arc::clone(&readiness),
            Arc::clone(&suppression_settings),
        ));
        Ok(PgStore {
            pool,
            readers,
            commits,
            writer,
            stats,
            readiness,
            claim_timeout: chrono::Duration::from_std(options.claim_timeout)
                .unwrap_or(chrono::Duration::seconds(30)),
            timeout: options.timeout,
            suppression_settings,
        })
    }

    /// Commits one request with its events. Resolves once the transaction holding it is durable.
    /// A full queue is [`Error::Saturated`] at once.
    pub async fn ingest(&self, ingest: Ingest) -> Result<IngestOutcome> {
        let (reply, done) = Reply::new(ingest.admission.clone());
        self.readiness.enqueue(|| {
            self.writer.try_send((ingest, reply)).map_err(|e| match e {
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

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    async fn reader(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.readers.get().await?)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        let check = async {
            self.client().await?.query_one("SELECT 1", &[]).await?;
            Ok(())
        };
        tokio::time::timeout(self.timeout, check)
            .await
            .map_err(|_| Error::Unavailable)?
    }

    /// The response remembered under an idempotency key, if any (in-flight claims are not).
    pub async fn idempotent_response(
        &self,
        environment_id: &str,
        integration_id: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT body_hash, status, response, created_at FROM idempotency
                 WHERE environment_id = $1 AND integration_id = $2 AND key = $3
                   AND status IS NOT NULL",
                &[&environment_id, &integration_id, &key],
            )
            .await?;
        row.map(|row| stored_response(&row)).transpose()
    }

    /// Claims an idempotency key for one request, for every instance at once (see [`Claim`]).
    pub async fn claim_idempotency(
        &self,
        environment_id: &str,
        integration_id: &str,
        key: &str,
        body_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        let client = self.client().await?;
        let abandoned = now - self.claim_timeout;
        let expired = now - IDEMPOTENCY_TTL;
        // A row with no status is a claim in flight. An abandoned claim or an expired record is
        // taken over; anything else stays and is read back below.
        let claim = client
            .prepare_cached(
                "INSERT INTO idempotency
                   (environment_id, key, body_hash, status, response, created_at, integration_id)
                 VALUES ($1, $2, $3, NULL, NULL, $4, $7)
                 ON CONFLICT (environment_id, integration_id, key) DO UPDATE SET
                   body_hash = EXCLUDED.body_hash, status = NULL, response = NULL,
                   created_at = EXCLUDED.created_at
                 WHERE (idempotency.status IS NULL AND idempotency.created_at < $5)
                    OR (idempotency.status IS NOT NULL AND idempotency.created_at < $6)
                 RETURNING 1",
            )
            .await?;
        let read = client
            .prepare_cached(
                "SELECT body_hash, status, response, created_at FROM idempotency
                 WHERE environment_id = $1 AND key = $2 AND integration_id = $3",
            )
            .await?;
        // The row may be released between the two statements; then claim again.
        for _ in 0..3 {
            let claimed = client
                .query_opt(
                    &claim,
                    &[
                        &environment_id,
                        &key,
                        &body_hash,
                        &now,
                        &abandoned,
                        &expired,
                        &integration_id,
                    ],
                )
                .await?;
            if claimed.is_some() {
                return Ok(Claim::Claimed);
            }
            let Some(row) = client
                .query_opt(&read, &[&environment_id, &key, &integration_id])
                .await?
            else {
                continue;
            };
            if row.get::<_, Option<i32>>(1).is_none() {
                return Ok(Claim::InFlight);
            }
            let stored = stored_response(&row)?;
            return Ok(if stored.body_hash == body_hash {
                Claim::Replay(stored)
            } else {
                Claim::Mismatch
            });
        }
        Ok(Claim::InFlight)
    }

    /// Releases a claimed idempotency key. The record committed with the request, if any, stays.
    pub async fn release_idempotency(
        &self,
        environment_id: &str,
        integration_id: &str,
        key: &str,
    ) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM idempotency
                 WHERE environment_id = $1 AND integration_id = $2 AND key = $3
                   AND status IS NULL",
                &[&environment_id, &integration_id, &key],
            )
            .await?;
        Ok(())
    }

    /// Deletes raw requests, events and idempotency records received before `cutoff`, `batch`
    /// rows per statement, each its own short transaction.
    pub async fn prune(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<PruneStats> {
        prune(&self.pool, cutoff, batch).await
    }

    /// Prunes every `interval` in a task of its own, until every handle is dropped. Instances
    /// pruning at the same time only delete the same rows once; no coordination is needed.
    pub(crate) fn spawn_retention(
        &self,
        retention: chrono::Duration,
        interval: Duration,
        batch: usize,
    ) {
        let pool = self.pool.clone();
        // The stats outlive the handles only until the committer task ends.
        let alive = Arc::downgrade(&self.stats);
        tokio::spawn(async move {
            while alive.strong_count() > 0 {
                let result = prune(&pool, Utc::now() - retention, batch).await;
                crate::store::log_prune(&result);
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Stored events of every environment, oldest first, optionally for one environment or
    /// message, after `after_seq`: the administrator's view, in `seq` order.
    pub async fn events(
        &self,
        environment_id: Option<&str>,
        message_id: Option<&str>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let client = self.reader().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE seq > $1 AND ($2::text IS NULL OR environment_id = $2)
                       AND ($3::text IS NULL OR message_id = $3)
                     ORDER BY seq LIMIT $4"
                ),
                &[&after_seq, &environment_id, &message_id, &(limit as i64)],
            )
            .await?;
        rows.iter().map(stored_event).collect()
    }

    /// A receiver that changes after each of this instance's commits. Other instances' commits
    /// do not notify it: a stream also polls.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.commits.subscribe()
    }

    /// The visible horizon: every transaction below it has finished, so no row can appear
    /// below it any more.
    async fn horizon(client: &deadpool_postgres::Object) -> Result<u64> {
        let row = client
            .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
            .await?;
        parse_xid(row.try_get(0)?)
    }

    /// The position after every event visible now: everything of transactions older than the
    /// oldest one still running.
    pub async fn end(&self) -> Result<Cursor> {
        let client = self.reader().await?;
        Ok(Cursor {
            xid: Self::horizon(&client).await?,
            seq: 0,
        })
    }

    /// One page of events after a position, filtered; only rows of finished transactions older
    /// than every running one are visible, so the walk is gap-free across instances.
    pub async fn read_events(&self, query: &EventQuery) -> Result<EventPage> {
        let client = self.reader().await?;
        let horizon = Self::horizon(&client).await?;
        let horizon_cursor = Cursor {
            xid: horizon,
            seq: 0,
        };
        let keys = match &query.message {
            Some(id) => {
                let rows = client
                    .query(
                        "SELECT integration_id, message_id FROM messages
                         WHERE environment_id = $1 AND (message_id = $2 OR external_id = $2)
                           AND ($3::text IS NULL OR integration_id = $3)
                         LIMIT 1000",
                        &[&query.environment_id, id, &query.integration],
                    )
                    .await?;
                let keys = rows
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect::<Result<Vec<(String, String)>>>()?;
                if keys.is_empty() {
                    return Ok(EventPage {
                        events: Vec::new(),
                        next: query.after.max(horizon_cursor),
                    });
                }
                Some(keys)
            }
            None => None,
        };
        let mut sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE environment_id = $1 AND (xid, seq) > ($2::text::xid8, $3)
               AND xid < $4::text::xid8"
        );
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![
            Box::new(query.environment_id.clone()),
            Box::new(query.after.xid.to_string()),
            Box::new(query.after.seq),
            Box::new(horizon.to_string()),
        ];
        if !query.statuses.is_empty() {
            let statuses: Vec<String> = query
                .statuses
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect();
            args.push(Box::new(statuses));
            sql.push_str(&format!(" AND status = ANY(${})", args.len()));
        }
        if let Some(provider) = &query.provider {
            args.push(Box::new(provider.clone()));
            sql.push_str(&format!(" AND provider = ${}", args.len()));
        }
        if let Some(integration) = &query.integration {
            args.push(Box::new(integration.clone()));
            sql.push_str(&format!(" AND integration_id = ${}", args.len()));
        }
        if let Some(keys) = &keys {
            let ids: Vec<String> = keys.iter().map(|(_, id)| id.clone()).collect();
            args.push(Box::new(ids));
            sql.push_str(&format!(" AND message_id = ANY(${})", args.len()));
        }
        let batch = query.limit.clamp(1, SCAN_BATCH);
        args.push(Box::new(batch as i64));
        sql.push_str(&format!(" ORDER BY xid, seq LIMIT ${}", args.len()));
        let statement = client.prepare(&sql).await?;
        let mut collector = Collector::new(query, keys.as_deref());
        let mut last = query.after;
        loop {
            if let Some(after) = args.get_mut(1) {
                *after = Box::new(last.xid.to_string());
            }
            if let Some(after) = args.get_mut(2) {
                *after = Box::new(last.seq);
            }
            let params: Vec<&(dyn ToSql + Sync)> = args
                .iter()
                .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = client.query(&statement, &params).await?;
            for row in &rows {
                let event = stored_event(row)?;
                last = event.position;
                if collector.offer(event) {
                    return Ok(collector.page(last));
                }
            }
            if rows.len() < batch {
                return Ok(collector.page(query.after.max(horizon_cursor)));
            }
            if collector.over_budget() {
                return Ok(collector.page(last));
            }
        }
    }

    /// The message with this id (the sender's or the provider's) in one integration.
    pub async fn message(
        &self,
        environment_id: &str,
        integration_id: &str,
        id: &str,
    ) -> Result<Option<MessageRow>> {
        let client = self.reader().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {} FROM messages
                     WHERE environment_id = $1 AND integration_id = $2
                       AND (message_id = $3 OR external_id = $3)
                     ORDER BY message_id = $3 DESC LIMIT 1",
                    message_columns()
                ),
                &[&environment_id, &integration_id, &id],
            )
            .await?;
        row.as_ref().map(message_row).transpose()
    }

    /// Every message with this id (the sender's or the provider's), across integrations.
    pub async fn find_messages(&self, environment_id: &str, id: &str) -> Result<Vec<MessageRow>> {
        let client = self.reader().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {} FROM messages
                     WHERE environment_id = $1 AND (message_id = $2 OR external_id = $2)
                     ORDER BY integration_id COLLATE \"C\", message_id COLLATE \"C\"
                     LIMIT 1000",
                    message_columns()
                ),
                &[&environment_id, &id],
            )
            .await?;
        rows.iter().map(message_row).collect()
    }

    /// Messages by the position of their last change, filtered.
    pub async fn list_messages(&self, query: &MessageQuery) -> Result<MessagePage> {
        let client = self.reader().await?;
        let horizon = Self::horizon(&client).await?;
        let horizon_cursor = Cursor {
            xid: horizon,
            seq: 0,
        };
        let statuses: Option<Vec<String>> = (!query.statuses.is_empty()).then(|| {
            query
                .statuses
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect()
        });
        let batch = query.limit.clamp(1, SCAN_BATCH);
        let statement = client
            .prepare(&format!(
                "SELECT {} FROM messages
                 WHERE environment_id = $1
                   AND (changed_xid, changed_seq) > ($2::text::xid8, $3)
                   AND changed_xid < $4::text::xid8
                   AND ($5::text[] IS NULL OR status = ANY($5))
                   AND ($6::text IS NULL OR integration_id = $6)
                 ORDER BY changed_xid, changed_seq LIMIT $7",
                message_columns()
            ))
            .await?;
        let mut messages = Vec::new();
        let mut last = query.after;
        let mut scanned = 0;
        loop {
            let rows = client
                .query(
                    &statement,
                    &[
                        &query.environment_id,
                        &last.xid.to_string(),
                        &last.seq,
                        &horizon.to_string(),
                        &statuses,
                        &query.integration,
                        &(batch as i64),
                    ],
                )
                .await?;
            scanned += rows.len();
            for row in &rows {
                let message = message_row(row)?;
                last = message.position;
                if query
                    .since
                    .is_none_or(|since| message.state.status_at >= since)
                {
                    messages.push(message);
                    if messages.len() >= query.limit {
                        return Ok(MessagePage {
                            messages,
                            next: last,
                        });
                    }
                }
            }
            if rows.len() < batch {
                let next = query.after.max(horizon_cursor);
                return Ok(MessagePage { messages, next });
            }
            if scanned >= SCAN_BUDGET {
                return Ok(MessagePage {
                    messages,
                    next: last,
                });
            }
        }
    }

    /// A message's events, in event-time order.
    pub async fn timeline(
        &self,
        environment_id: &str,
        integration_id: &str,
        message_id: &str,
    ) -> Result<Vec<StoredEvent>> {
        let client = self.reader().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE environment_id = $1 AND message_id = $2 AND integration_id = $3
                     ORDER BY seq LIMIT {TIMELINE_MAX}"
                ),
                &[&environment_id, &message_id, &integration_id],
            )
            .await?;
        let mut events = rows.iter().map(stored_event).collect::<Result<Vec<_>>>()?;
        crate::cursor::by_event_time(&mut events);
        Ok(events)
    }

    /// Each integration's events per status received in `window`.
    pub async fn activity(&self, environment_id: &str, window: Window) -> Result<Vec<Activity>> {
        let client = self.reader().await?;
        let bounds = client
            .query_one(
                "SELECT COALESCE(min(seq), 1), COALESCE(max(seq), 0) FROM events",
                &[],
            )
            .await?;
        let (mut lo, mut hi): (i64, i64) = (bounds.try_get(0)?, bounds.try_get::<_, i64>(1)? + 1);
        // The bisection of `crate::activity::bisect`, one awaited probe at a time.
        let probe = client
            .prepare(
                "SELECT seq, received_at >= $2 FROM events WHERE seq >= $1 ORDER BY seq LIMIT 1",
            )
            .await?;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let row = client.query_opt(&probe, &[&mid, &window.day]).await?;
            match row.map(|r| (r.get::<_, i64>(0), r.get::<_, bool>(1))) {
                Some((seq, false)) if seq < hi => lo = seq + 1,
                _ => hi = mid,
            }
        }
        let rows = client
            .query(
                "SELECT integration_id, status, count(*),
                        count(*) FILTER (WHERE received_at >= $4), max(received_at),
                        sum(duplicates)::BIGINT
                 FROM events
                 WHERE seq >= $1 AND environment_id = $2 AND received_at >= $3
                   AND received_at <= $5
                 GROUP BY integration_id, status ORDER BY integration_id, status",
                &[&lo, &environment_id, &window.day, &window.hour, &window.end],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Activity {
                    integration_id: row.try_get(0)?,
                    status: row.try_get(1)?,
                    last_day: row.try_get::<_, i64>(2)?.try_into().unwrap_or(0),
                    last_hour: row.try_get::<_, i64>(3)?.try_into().unwrap_or(0),
                    last_received_at: row.try_get(4)?,
                    duplicates: row.try_get::<_, i64>(5)?.try_into().unwrap_or(0),
                })
            })
            .collect()
    }

    /// Messages with their folded state, optionally for one environment or message.
    pub async fn messages(
        &self,
        environment_id: Option<&str>,
        message_id: Option<&str>,
    ) -> Result<Vec<MessageRow>> {
        let client = self.reader().await?;
        let rows = client
            .query(&select_messages_sql(), &[&environment_id, &message_id])
            .await?;
        rows.iter().map(message_row).collect()
    }

    /// How many raw requests are stored.
    pub async fn raw_request_count(&self) -> Result<i64> {
        let client = self.reader().await?;
        Ok(client
            .query_one("SELECT count(*) FROM raw_requests", &[])
            .await?
            .try_get(0)?)
    }
}

/// Deletes raw requests, events and idempotency records received before `cutoff`, `batch` rows
/// per statement, each its own short transaction.
async fn prune(pool: &Pool, cutoff: DateTime<Utc>, batch: usize) -> Result<PruneStats> {
    let client = pool.get().await?;
    let batch = batch.max(1) as i64;
    let mut stats = PruneStats::default();
    // Never an event an enabled outbound endpoint has not had yet.
    loop {
        let deleted = client
            .execute(
                "DELETE FROM events WHERE seq IN
                   (SELECT e.seq FROM events e WHERE e.received_at < $1
                      AND NOT EXISTS (SELECT 1 FROM outbound_endpoints o
                                      WHERE o.enabled AND o.environment_id = e.environment_id
                                        AND (e.xid, e.seq) > (o.cursor_xid, o.cursor_seq))
                    ORDER BY e.seq LIMIT $2)",
                &[&cutoff, &batch],
            )
            .await?;
        stats.events += deleted;
        if (deleted as i64) < batch {
            break;
        }
    }
    // An event kept for an outbound endpoint keeps its request too: its `row` is read from the
    // request's body. Events are received with their request, so only events from before the
    // cutoff can refer to requests from before it.
    let kept: Option<i64> = client
        .query_one(
            "SELECT min(request_seq) FROM events WHERE received_at < $1",
            &[&cutoff],
        )
        .await?
        .try_get(0)?;
    let kept = kept.unwrap_or(i64::MAX);
    loop {
        let deleted = client
            .execute(
                "DELETE FROM raw_requests WHERE seq IN
                   (SELECT seq FROM raw_requests WHERE received_at < $1 AND seq < $3
                    ORDER BY seq LIMIT $2)",
                &[&cutoff, &batch, &kept],
            )
            .await?;
        stats.raw_requests += deleted;
        if (deleted as i64) < batch {
            break;
        }
    }
    let steps: [(&str, &mut u64); 1] = [(
        "DELETE FROM idempotency WHERE (environment_id, key) IN
               (SELECT environment_id, key FROM idempotency WHERE created_at < $1 LIMIT $2)",
        &mut stats.idempotency,
    )];
    // Nonces matter only until they expire, whatever the retention.
    let now = Utc::now();
    let nonces = (
        "DELETE FROM replay_nonces WHERE (environment_id, integration_id, scope, nonce) IN
           (SELECT environment_id, integration_id, scope, nonce FROM replay_nonces
            WHERE expires_at < $1 LIMIT $2)",
        now,
        &mut stats.nonces,
    );
    let steps = steps
        .into_iter()
        .map(|(sql, count)| (sql, cutoff, count))
        .chain(std::iter::once(nonces));
    for (sql, before, count) in steps {
        let statement = client.prepare_cached(sql).await?;
        loop {
            let deleted = client.execute(&statement, &[&before, &batch]).await?;
            *count += deleted;
            if (deleted as i64) < batch {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(stats)
}

fn stored_response(row: &Row) -> Result<StoredResponse> {
    let status: Option<i32> = row.try_get(1)?;
    let response: Option<Vec<u8>> = row.try_get(2)?;
    Ok(StoredResponse {
        body_hash: row.try_get(0)?,
        status: status
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| Error::Corrupt("an idempotency record has no status".into()))?,
        response: response.unwrap_or_default(),
        created_at: row.try_get(3)?,
    })
}

fn message_row(row: &Row) -> Result<MessageRow> {
    let status: String = row.try_get(4)?;
    let status = Status::from_wire(&status)
        .ok_or_else(|| Error::Corrupt(format!("unknown stored status `{status}`")))?;
    let mut first_at = BTreeMap::new();
    for (index, each) in Status::ALL.into_iter().enumerate() {
        let at: Option<Vec<u8>> = row.try_get(FIRSTS_AT + index)?;
        if let Some(at) = at {
            first_at.insert(each, decode_time(&at)?);
        }
    }
    Ok(MessageRow {
        environment_id: row.try_get(0)?,
        integration_id: row.try_get(7)?,
        id: row.try_get(1)?,
        external_id: row.try_get(8)?,
        provider: row.try_get(2)?,
        events: row.try_get(3)?,
        updated_at: row.try_get(9)?,
        position: Cursor {
            xid: parse_xid(row.try_get(10)?)?,
            seq: row.try_get(11)?,
        },
        state: MessageState {
            status,
            status_at: decode_time(row.try_get(5)?)?,
            failure: failure_from_ordinal(row.try_get(6)?)?,
            first_at,
        },
    })
}

/// The columns [`stored_event`] reads, in its order.
/// The last one is `row`: its text, or its slice of the request body (see `layout.rs`).
const EVENT_COLUMNS: &str = concat!(
    "xid::text, seq, environment_id, integration_id, provider, message_id, event, dedup_key, \
     duplicates, received_at, authentication, ",
    row_sql!()
);

/// An event's `row` (see `layout.rs`): its text, or its slice of the request body.
macro_rules! row_sql {
    () => {
        "CASE WHEN events.row_at IS NULL THEN events.row_text \
         ELSE (SELECT convert_from(substring(r.body FROM (events.row_at + 1)::int \
                                             FOR events.row_length::int), 'UTF8') \
               FROM raw_requests r WHERE r.seq = events.request_seq) END"
    };
}
use row_sql;

fn stored_event(row: &Row) -> Result<StoredEvent> {
    let seq: i64 = row.try_get(1)?;
    Ok(StoredEvent {
        position: Cursor {
            xid: parse_xid(row.try_get(0)?)?,
            seq,
        },
        seq,
        environment_id: row.try_get(2)?,
        integration_id: row.try_get(3)?,
        provider: row.try_get(4)?,
        id: row.try_get(5)?,
        event: layout::read_event(row.try_get(6)?, row.try_get(11)?)?,
        dedup_key: row.try_get(7)?,
        duplicates: row.try_get(8)?,
        received_at: row.try_get(9)?,
        authentication: row.try_get(10)?,
    })
}

/// An `xid8` read as text (tokio-postgres has no binary type for it).
fn parse_xid(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("`{text}` is not a transaction id")))
}

/// Takes every request waiting (up to `max_batch`) and commits them in one transaction, with up
/// to `concurrency` transactions at once. While all are busy, requests pile up and the next
/// transaction takes them all: the group grows with the load.
// Each argument is a separate piece of the writer's shared state, set up once by `open`.
#[allow(clippy::too_many_arguments)]
async fn committer(
    pool: Pool,
    mut queue: mpsc::Receiver<(Ingest, Reply)>,
    max_batch: usize,
    concurrency: usize,
    commit_timeout: Duration,
    stats: Arc<Mutex<CommitStats>>,
    commits: Arc<tokio::sync::watch::Sender<i64>>,
    readiness: Arc<crate::readiness::Readiness>,
    settings: Arc<SuppressionSettings>,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max_batch);
        // A request whose client has gone is dropped here; once in a group it is committed.
        let admit = |batch: &mut Vec<(Ingest, Reply)>, (ingest, reply): (Ingest, Reply)| {
            readiness.taken();
            if reply.join() {
                batch.push((ingest, reply));
            } else {
                reply.send(Err(Error::Cancelled));
            }
        };
        admit(&mut batch, first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => admit(&mut batch, job),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let pool = pool.clone();
        let stats = Arc::clone(&stats);
        let commits = Arc::clone(&commits);
        let readiness = Arc::clone(&readiness);
        let settings = Arc::clone(&settings);
        tokio::spawn(async move {
            let _slot = slot;
            let started = Instant::now();
            let ingests: Vec<&Ingest> = batch.iter().map(|(ingest, _)| ingest).collect();
            let result = tokio::time::timeout(
                commit_timeout,
                commit_with_retries(&pool, &ingests, &settings),
            )
            .await
            .unwrap_or(Err(Error::Unavailable));
            let elapsed = started.elapsed();
            if let Ok(mut s) = stats.lock() {
                s.commits += 1;
                s.requests += batch.len() as u64;
                s.commit_micros += elapsed.as_micros() as u64;
            }
            readiness.committed(result.is_ok());
            match result {
                Ok(outcomes) => {
                    commits.send_modify(|count| *count += 1);
                    for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                        reply.send(Ok(outcome));
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, requests = batch.len(), "Store commit failed.");
                    for (_, reply) in batch {
                        reply.send(Err(Error::Unavailable));
                    }
                }
            }
        });
    }
}

async fn commit_with_retries(
    pool: &Pool,
    batch: &[&Ingest],
    settings: &SuppressionSettings,
) -> Result<Vec<IngestOutcome>> {
    let mut client = pool.get().await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match commit::commit_group(&mut client, batch, settings).await {
            Err(err) if attempt < 5 && is_retryable(&err) => {
                tracing::debug!(error = %err, attempt, "Retrying a group after a conflict.");
                tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
            }
            other => return other.map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn encoded_times_sort_like_chrono() {
        let times = [
            Utc.timestamp_opt(-5_000_000_000, 7).unwrap(),
            Utc.timestamp_opt(-1, 999_999_999).unwrap(),
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(0, 1).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
            Utc.timestamp_opt(1_700_000_000, 123_456_790).unwrap(),
            DateTime::<Utc>::MAX_UTC,
        ];
        for a in &times {
            assert_eq!(decode_time(&encode_time(a)).unwrap(), *a);
            for b in &times {
                assert_eq!(a.cmp(b), encode_time(a).cmp(&encode_time(b)));
            }
        }
        assert_eq!(
            decode_time(&encode_time(&DateTime::<Utc>::MIN_UTC)).unwrap(),
            DateTime::<Utc>::MIN_UTC
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/tidings"),
            "postgres://app:***@db:5432/tidings"
        );
        assert_eq!(redact("postgres://db/tidings"), "postgres://db/tidings");
    }
}
