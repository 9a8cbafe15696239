//! The backend-neutral store the service uses: SQLite or PostgreSQL, chosen by URL.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::suppressions::{
    ManualRecord, Record, Suppression, SuppressionPage, SuppressionQuery, SuppressionSettings,
};
use crate::{
    Activity, Claim, CommitStats, Cursor, Error, EventPage, EventQuery, Ingest, IngestOutcome,
    MessagePage, MessageQuery, MessageRow, PgOptions, PgStore, PruneStats, RejectionBatch,
    RejectionCount, RejectionQuery, RejectionRow, Result, SqliteOptions, SqliteStore, StoredEvent,
    StoredResponse, Window,
};
use crate::{DeliveryRow, EndpointProgress, FailedAttempt, Fence, HeadLease, Lag};
use crate::{RawRequestFilter, ReparseOutcome, Reparsed, StoredRequest};

/// How a [`Store`] is opened. Each backend uses what applies to it.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite: `synchronous=FULL` (durable on power loss) when true, `NORMAL` otherwise.
    pub synchronous_full: bool,
    /// PostgreSQL: connections in this instance's pool.
    pub pool_size: usize,
    /// Requests that may wait for a commit before new ones are refused as saturated.
    pub queue_capacity: usize,
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// An idempotency claim older than this is taken as abandoned (the request timeout).
    pub claim_timeout: Duration,
    /// PostgreSQL: how long to wait for a connection or a commit before answering unavailable.
    pub timeout: Duration,
    /// Delete raw requests, events and idempotency records older than this, in the background.
    /// `None` keeps everything.
    pub retention: Option<chrono::Duration>,
    /// How often the retention task runs.
    pub retention_interval: Duration,
    /// Rows deleted per statement by the retention task.
    pub retention_batch: usize,
    /// The suppression list's thresholds and phone number defaults.
    pub suppressions: SuppressionSettings,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            synchronous_full: true,
            pool_size: 8,
            queue_capacity: 4096,
            max_batch: 512,
            claim_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            retention: None,
            retention_interval: Duration::from_secs(300),
            retention_batch: 1000,
            suppressions: SuppressionSettings::default(),
        }
    }
}

/// The store, whichever the backend. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// The embedded SQLite database.
    Sqlite(SqliteStore),
    /// A PostgreSQL database, possibly shared by several instances.
    Postgres(PgStore),
}

/// Whether `url` names a backend [`Store::open`] knows: `sqlite://path` or `postgres://...`.
pub fn backend_of(url: &str) -> Option<&'static str> {
    if url
        .strip_prefix("sqlite://")
        .is_some_and(|path| !path.is_empty())
    {
        Some("sqlite")
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some("postgres")
    } else {
        None
    }
}

impl Store {
    /// Opens the store at `url` (`sqlite://path/to/file.db` or `postgres://...`), applies pending
    /// migrations, and starts the retention task when `options.retention` is set. Needs a Tokio
    /// runtime.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Store> {
        let store = match backend_of(url) {
            Some("sqlite") => {
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                let mut sqlite = SqliteOptions::new(path);
                sqlite.synchronous_full = options.synchronous_full;
                sqlite.queue_capacity = options.queue_capacity;
                sqlite.max_batch = options.max_batch;
                sqlite.claim_timeout = options.claim_timeout;
                sqlite.suppressions = options.suppressions.clone();
                Store::Sqlite(SqliteStore::open(sqlite)?)
            }
            Some(_) => {
                let mut pg = PgOptions::new(url);
                pg.pool_size = options.pool_size;
                pg.queue_capacity = options.queue_capacity;
                pg.max_batch = options.max_batch;
                pg.claim_timeout = options.claim_timeout;
                pg.timeout = options.timeout;
                pg.suppressions = options.suppressions.clone();
                Store::Postgres(PgStore::open(pg).await?)
            }
            None => {
                return Err(Error::Open {
                    path: crate::redact_url(url),
                    reason: "use sqlite://path/to/file.db or postgres://user@host/database".into(),
                });
            }
        };
        if let Some(retention) = options.retention {
            store.spawn_retention(
                retention,
                options.retention_interval,
                options.retention_batch,
            );
        }
        Ok(store)
    }

    /// Opens a store that must already exist, for commands that only read: nothing is created
    /// and no migration runs, on either backend. No store where `url` points is
    /// [`Error::NoStore`]. Needs a Tokio runtime; starts no background task.
    pub async fn open_existing(url: &str, options: &StoreOptions) -> Result<Store> {
        match backend_of(url) {
            Some("sqlite") => {
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                Ok(Store::Sqlite(SqliteStore::open_existing(
                    std::path::Path::new(path),
                )?))
            }
            Some(_) => {
                let mut pg = PgOptions::new(url);
                pg.timeout = options.timeout;
                Ok(Store::Postgres(PgStore::open_existing(pg).await?))
            }
            None => Err(Error::Open {
                path: crate::redact_url(url),
                reason: "use sqlite://path/to/file.db or postgres://user@host/database".into(),
            }),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Commits one request with its events. Resolves once the transaction holding it is durable.
    /// A full queue is [`Error::Saturated`] at once.
    pub async fn ingest(&self, ingest: Ingest) -> Result<IngestOutcome> {
        match self {
            Store::Sqlite(s) => s.ingest(ingest).await,
            Store::Postgres(s) => s.ingest(ingest).await,
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.ping(),
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Claims an idempotency key for one request: [`Claim::Claimed`] (process it, then
    /// [`Store::release_idempotency`]), [`Claim::InFlight`], [`Claim::Replay`] of the stored
    /// response for the same body, or [`Claim::Mismatch`] for a different body. Records older than
    /// [`crate::IDEMPOTENCY_TTL`] are ignored; a claim older than the claim timeout is abandoned.
    /// Keys belong to one integration of an environment.
    pub async fn claim_idempotency(
        &self,
        environment_id: &str,
        integration_id: &str,
        key: &str,
        body_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        match self {
            Store::Sqlite(s) => {
                s.claim_idempotency(environment_id, integration_id, key, body_hash, now)
            }
            Store::Postgres(s) => {
                s.claim_idempotency(environment_id, integration_id, key, body_hash, now)
                    .await
            }
        }
    }

    /// Releases a key claimed by [`Store::claim_idempotency`], however the request ended. The
    /// record committed with a successful request stays.
    pub async fn release_idempotency(
        &self,
        environment_id: &str,
        integration_id: &str,
        key: &str,
    ) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.release_idempotency(environment_id, integration_id, key),
            Store::Postgres(s) => {
                s.release_idempotency(environment_id, integration_id, key)
                    .await
            }
        }
    }

    /// Releases a claimed key at once where the backend needs no round trip (SQLite keeps claims
    /// in memory): `true` when it did, `false` when the caller must use
    /// [`Store::release_idempotency`]. For a release from a `Drop`, which cannot await.
    pub fn release_idempotency_at_once(
        &self,
        environment_id: &str,
        integration_id: &str,
        key: &str,
    ) -> bool {
        match self {
            Store::Sqlite(s) => {
                // Only a poisoned lock fails, and then no claim can be released anyway.
                let _ = s.release_idempotency(environment_id, integration_id, key);
                true
            }
            Store::Postgres(_) => false,
        }
    }

    /// The response remembered under an idempotency key, if any, however old.
    pub async fn idempotent_response(
        &self,
        environment_id: &str,
        integration_id: &str,
        key: &str,
    ) -> Result<Option<StoredResponse>> {
        match self {
            Store::Sqlite(s) => s.idempotent_response(environment_id, integration_id, key),
            Store::Postgres(s) => {
                s.idempotent_response(environment_id, integration_id, key)
                    .await
            }
        }
    }

    /// One page of an environment's events after a position, filtered. A caller that keeps
    /// passing [`EventPage::next`] back sees every durably committed event exactly once, in
    /// position order, including events other instances commit late.
    pub async fn read_events(&self, query: &EventQuery) -> Result<EventPage> {
        match self {
            Store::Sqlite(s) => {
                let (s, query) = (s.clone(), query.clone());
                blocking(move || s.read_events(&query)).await
            }
            Store::Postgres(s) => s.read_events(query).await,
        }
    }

    /// A receiver that changes when more events may be visible. SQLite: whenever they are;
    /// PostgreSQL: after this instance's commits only, so streams poll as well
    /// ([`Store::poll_interval`]).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        match self {
            Store::Sqlite(s) => s.subscribe(),
            Store::Postgres(s) => s.subscribe(),
        }
    }

    /// How often a stream should look for events nobody told it about: other instances'
    /// commits, and rows held back until an older transaction finished (PostgreSQL).
    pub fn poll_interval(&self) -> Duration {
        match self {
            Store::Sqlite(_) => Duration::from_secs(5),
            Store::Postgres(_) => Duration::from_millis(200),
        }
    }

    /// The message with this id (the sender's or the provider's) in one integration.
    pub async fn message(
        &self,
        environment_id: &str,
        integration_id: &str,
        id: &str,
    ) -> Result<Option<MessageRow>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                let args = (
                    environment_id.to_owned(),
                    integration_id.to_owned(),
                    id.to_owned(),
                );
                blocking(move || s.message(&args.0, &args.1, &args.2)).await
            }
            Store::Postgres(s) => s.message(environment_id, integration_id, id).await,
        }
    }

    /// Every message with this id (the sender's or the provider's), across integrations.
    pub async fn find_messages(&self, environment_id: &str, id: &str) -> Result<Vec<MessageRow>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                let args = (environment_id.to_owned(), id.to_owned());
                blocking(move || s.find_messages(&args.0, &args.1)).await
            }
            Store::Postgres(s) => s.find_messages(environment_id, id).await,
        }
    }

    /// Messages by the position of their last change: one that changes again is listed again.
    pub async fn list_messages(&self, query: &MessageQuery) -> Result<MessagePage> {
        match self {
            Store::Sqlite(s) => {
                let (s, query) = (s.clone(), query.clone());
                blocking(move || s.list_messages(&query)).await
            }
            Store::Postgres(s) => s.list_messages(query).await,
        }
    }

    /// A message's events, in event-time order.
    pub async fn timeline(
        &self,
        environment_id: &str,
        integration_id: &str,
        message_id: &str,
    ) -> Result<Vec<StoredEvent>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                let args = (
                    environment_id.to_owned(),
                    integration_id.to_owned(),
                    message_id.to_owned(),
                );
                blocking(move || s.timeline(&args.0, &args.1, &args.2)).await
            }
            Store::Postgres(s) => s.timeline(environment_id, integration_id, message_id).await,
        }
    }

    /// The position after every event visible now: a reader starting there sees only what is
    /// stored from now on.
    pub async fn end(&self) -> Result<Cursor> {
        match self {
            Store::Sqlite(s) => Ok(s.end()),
            Store::Postgres(s) => s.end().await,
        }
    }

    /// Each integration's events per status received in `window` (see [`crate::activity`]).
    pub async fn activity(&self, environment_id: &str, window: Window) -> Result<Vec<Activity>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                let environment_id = environment_id.to_owned();
                blocking(move || s.activity(&environment_id, window)).await
            }
            Store::Postgres(s) => s.activity(environment_id, window).await,
        }
    }

    /// Records refused requests (see [`crate::Rejection`]), apart from the ingest commits.
    pub async fn record_rejections(&self, batch: RejectionBatch) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.record_rejections(&batch)).await
            }
            Store::Postgres(s) => s.record_rejections(&batch).await,
        }
    }

    /// Recorded rejections, newest first.
    pub async fn rejections(&self, query: RejectionQuery) -> Result<Vec<RejectionRow>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.rejections(&query)).await
            }
            Store::Postgres(s) => s.rejections(&query).await,
        }
    }

    /// Rejection counts per integration, reason and clock hour, from the hour starting at
    /// `since` on.
    pub async fn rejection_counts(
        &self,
        environment_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RejectionCount>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                let environment_id = environment_id.to_owned();
                blocking(move || s.rejection_counts(&environment_id, since)).await
            }
            Store::Postgres(s) => s.rejection_counts(environment_id, since).await,
        }
    }

    /// Writes a manual suppression record (added, removed or imported) and refolds the
    /// recipient's entry.
    pub async fn record_suppression(&self, manual: ManualRecord) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.record_suppression(&manual)).await
            }
            Store::Postgres(s) => s.record_suppression(&manual).await,
        }
    }

    /// The recipient's suppression in force at `now` (a temporary one lapses), if any.
    /// `recipient` must be normalized.
    pub async fn suppression(
        &self,
        environment_id: &str,
        recipient: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Suppression>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                let args = (environment_id.to_owned(), recipient.to_owned());
                blocking(move || s.suppression(&args.0, &args.1, now)).await
            }
            Store::Postgres(s) => s.suppression(environment_id, recipient, now).await,
        }
    }

    /// A page of suppressions in force, by recipient.
    pub async fn suppressions(&self, query: &SuppressionQuery) -> Result<SuppressionPage> {
        match self {
            Store::Sqlite(s) => {
                let (s, query) = (s.clone(), query.clone());
                blocking(move || s.suppressions(&query)).await
            }
            Store::Postgres(s) => s.suppressions(query).await,
        }
    }

    /// A recipient's suppression records (causing events and manual records), newest first.
    pub async fn suppression_history(
        &self,
        environment_id: &str,
        recipient: &str,
    ) -> Result<Vec<Record>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                let args = (environment_id.to_owned(), recipient.to_owned());
                blocking(move || s.suppression_history(&args.0, &args.1)).await
            }
            Store::Postgres(s) => s.suppression_history(environment_id, recipient).await,
        }
    }

    /// Stored events, oldest first, optionally for one environment or message, after `after_seq`.
    pub async fn events(
        &self,
        environment_id: Option<&str>,
        message_id: Option<&str>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        match self {
            Store::Sqlite(s) => s.events(environment_id, message_id, after_seq, limit),
            Store::Postgres(s) => s.events(environment_id, message_id, after_seq, limit).await,
        }
    }

    /// Messages with their folded state, optionally for one environment or message.
    pub async fn messages(
        &self,
        environment_id: Option<&str>,
        message_id: Option<&str>,
    ) -> Result<Vec<MessageRow>> {
        match self {
            Store::Sqlite(s) => s.messages(environment_id, message_id),
            Store::Postgres(s) => s.messages(environment_id, message_id).await,
        }
    }

    /// How many raw requests are stored.
    pub async fn raw_request_count(&self) -> Result<i64> {
        match self {
            Store::Sqlite(s) => s.raw_request_count(),
            Store::Postgres(s) => s.raw_request_count().await,
        }
    }

    /// Whether a write would succeed soon, from what the writer has been doing (no write probe):
    /// the last commit succeeded or none failed within `failure_window`, and no request has
    /// waited in the commit queue for `max_queue_age` or more.
    pub fn readiness(
        &self,
        max_queue_age: Duration,
        failure_window: Duration,
    ) -> std::result::Result<(), crate::NotReady> {
        match self {
            Store::Sqlite(s) => s.readiness(max_queue_age, failure_window),
            Store::Postgres(s) => s.readiness(max_queue_age, failure_window),
        }
    }

    /// Records a configured endpoint (its environment, whether it is enabled), starting at
    /// `start` when the store has no progress for it yet.
    pub async fn outbound_register(
        &self,
        endpoint_id: &str,
        environment_id: &str,
        enabled: bool,
        start: Cursor,
        now: DateTime<Utc>,
    ) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                let (s, e, v) = (s.clone(), endpoint_id.to_owned(), environment_id.to_owned());
                blocking(move || s.outbound_register(&e, &v, enabled, start, now)).await
            }
            Store::Postgres(s) => {
                s.outbound_register(endpoint_id, environment_id, enabled, start, now)
                    .await
            }
        }
    }

    /// Takes the head of an endpoint (the events after its cursor) until `until`, when nobody
    /// holds it, the holder's lease has run out, or `owner` holds it already (taking it again
    /// after an error); the new epoch fences off any former holder.
    pub async fn outbound_acquire(
        &self,
        endpoint_id: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<HeadLease>> {
        match self {
            Store::Sqlite(s) => {
                let (s, e, o) = (s.clone(), endpoint_id.to_owned(), owner.to_owned());
                blocking(move || s.outbound_acquire(&e, &o, until, now)).await
            }
            Store::Postgres(s) => s.outbound_acquire(endpoint_id, owner, until, now).await,
        }
    }

    /// Extends the head's lease to `until`; false when it was lost (taken over or rewound).
    pub async fn outbound_renew(
        &self,
        endpoint_id: &str,
        owner: &str,
        epoch: i64,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        match self {
            Store::Sqlite(s) => {
                let (s, e, o) = (s.clone(), endpoint_id.to_owned(), owner.to_owned());
                blocking(move || s.outbound_renew(&e, &o, epoch, until)).await
            }
            Store::Postgres(s) => s.outbound_renew(endpoint_id, owner, epoch, until).await,
        }
    }

    /// Gives the head of an endpoint up, so another instance can take it at once.
    pub async fn outbound_release(&self, endpoint_id: &str, owner: &str, epoch: i64) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                let (s, e, o) = (s.clone(), endpoint_id.to_owned(), owner.to_owned());
                blocking(move || s.outbound_release(&e, &o, epoch)).await
            }
            Store::Postgres(s) => s.outbound_release(endpoint_id, owner, epoch).await,
        }
    }

    /// Moves the head's cursor to `cursor` (never back), counting `delivered` successes; false
    /// when the epoch is no longer the endpoint's (the write is refused).
    pub async fn outbound_advance(
        &self,
        endpoint_id: &str,
        epoch: i64,
        cursor: Cursor,
        delivered: i64,
        last_success_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        match self {
            Store::Sqlite(s) => {
                let (s, e) = (s.clone(), endpoint_id.to_owned());
                blocking(move || s.outbound_advance(&e, epoch, cursor, delivered, last_success_at))
                    .await
            }
            Store::Postgres(s) => {
                s.outbound_advance(endpoint_id, epoch, cursor, delivered, last_success_at)
                    .await
            }
        }
    }

    /// Records a failed attempt: the event's row (created with its payload at the first
    /// failure) and the endpoint's last error. False when `fence` no longer holds.
    pub async fn outbound_fail(
        &self,
        endpoint_id: &str,
        fence: &Fence,
        failed: &FailedAttempt,
    ) -> Result<bool> {
        match self {
            Store::Sqlite(s) => {
                let (s, e, fence, failed) = (
                    s.clone(),
                    endpoint_id.to_owned(),
                    fence.clone(),
                    failed.clone(),
                );
                blocking(move || s.outbound_fail(&e, &fence, &failed)).await
            }
            Store::Postgres(s) => s.outbound_fail(endpoint_id, fence, failed).await,
        }
    }

    /// Records that an event with a row was delivered at `at`: the row is deleted. False when
    /// `fence` no longer holds.
    pub async fn outbound_succeed(
        &self,
        endpoint_id: &str,
        fence: &Fence,
        position: Cursor,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        match self {
            Store::Sqlite(s) => {
                let (s, e, fence) = (s.clone(), endpoint_id.to_owned(), fence.clone());
                blocking(move || s.outbound_succeed(&e, &fence, position, at)).await
            }
            Store::Postgres(s) => s.outbound_succeed(endpoint_id, fence, position, at).await,
        }
    }

    /// Claims up to `limit` rows in retry that are due at `now` and not leased by anyone,
    /// leasing them to `owner` until `until` (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
    pub async fn outbound_claim_due(
        &self,
        endpoint_id: &str,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DeliveryRow>> {
        match self {
            Store::Sqlite(s) => {
                let (s, e, o) = (s.clone(), endpoint_id.to_owned(), owner.to_owned());
                blocking(move || s.outbound_claim_due(&e, &o, until, now, limit)).await
            }
            Store::Postgres(s) => {
                s.outbound_claim_due(endpoint_id, owner, until, now, limit)
                    .await
            }
        }
    }

    /// When an endpoint's earliest row in retry is due.
    pub async fn outbound_next_due(&self, endpoint_id: &str) -> Result<Option<DateTime<Utc>>> {
        match self {
            Store::Sqlite(s) => {
                let (s, e) = (s.clone(), endpoint_id.to_owned());
                blocking(move || s.outbound_next_due(&e)).await
            }
            Store::Postgres(s) => s.outbound_next_due(endpoint_id).await,
        }
    }

    /// The row of one event for one endpoint, if it has one.
    pub async fn outbound_delivery(
        &self,
        endpoint_id: &str,
        position: Cursor,
    ) -> Result<Option<DeliveryRow>> {
        match self {
            Store::Sqlite(s) => {
                let (s, e) = (s.clone(), endpoint_id.to_owned());
                blocking(move || s.outbound_delivery(&e, position)).await
            }
            Store::Postgres(s) => s.outbound_delivery(endpoint_id, position).await,
        }
    }

    /// Every endpoint's stored progress, by id.
    pub async fn outbound_endpoints(&self) -> Result<Vec<EndpointProgress>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.outbound_endpoints()).await
            }
            Store::Postgres(s) => s.outbound_endpoints().await,
        }
    }

    /// Events not delivered yet (held, in retry or dead), optionally of one endpoint, only the
    /// dead-lettered ones when `dead_only`; at most [`crate::DELIVERIES_MAX`].
    pub async fn outbound_deliveries(
        &self,
        endpoint_id: Option<&str>,
        dead_only: bool,
    ) -> Result<Vec<DeliveryRow>> {
        match self {
            Store::Sqlite(s) => {
                let (s, e) = (s.clone(), endpoint_id.map(str::to_owned));
                blocking(move || s.outbound_deliveries(e.as_deref(), dead_only)).await
            }
            Store::Postgres(s) => s.outbound_deliveries(endpoint_id, dead_only).await,
        }
    }

    /// Queues an endpoint's dead-lettered events for a new round of attempts at `now`.
    pub async fn outbound_redrive_dead(
        &self,
        endpoint_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        match self {
            Store::Sqlite(s) => {
                let (s, e) = (s.clone(), endpoint_id.to_owned());
                blocking(move || s.outbound_redrive_dead(&e, now)).await
            }
            Store::Postgres(s) => s.outbound_redrive_dead(endpoint_id, now).await,
        }
    }

    /// Rewinds an endpoint so that every event of its environment received at or after `since`
    /// is delivered again; `None` for an endpoint the store does not know.
    pub async fn outbound_redrive_since(
        &self,
        endpoint_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Cursor>> {
        match self {
            Store::Sqlite(s) => {
                let (s, e) = (s.clone(), endpoint_id.to_owned());
                blocking(move || s.outbound_redrive_since(&e, since)).await
            }
            Store::Postgres(s) => s.outbound_redrive_since(endpoint_id, since).await,
        }
    }

    /// How far behind `cursor` is in an environment's visible events.
    pub async fn outbound_lag(&self, environment_id: &str, cursor: Cursor) -> Result<Lag> {
        match self {
            Store::Sqlite(s) => {
                let (s, e) = (s.clone(), environment_id.to_owned());
                blocking(move || s.outbound_lag(&e, cursor)).await
            }
            Store::Postgres(s) => s.outbound_lag(environment_id, cursor).await,
        }
    }

    /// Up to `limit` stored raw requests after `after` (a request `seq`), oldest first: the
    /// input of re-parse.
    pub async fn raw_requests(
        &self,
        filter: &RawRequestFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredRequest>> {
        match self {
            Store::Sqlite(s) => {
                let (s, filter) = (s.clone(), filter.clone());
                blocking(move || s.raw_requests(&filter, after, limit)).await
            }
            Store::Postgres(s) => s.raw_requests(filter, after, limit).await,
        }
    }

    /// Applies one request's re-parsed events: new ones are stored, changed ones replace the
    /// stored record (with a new position), and the messages they touch are folded again from
    /// all of their events. With `dry_run` nothing is written.
    pub async fn supersede(&self, reparsed: Reparsed, dry_run: bool) -> Result<ReparseOutcome> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.supersede(&reparsed, dry_run)).await
            }
            Store::Postgres(s) => s.supersede(&reparsed, dry_run).await,
        }
    }

    /// The event at a position, if it is still stored.
    pub async fn event_at(&self, position: Cursor) -> Result<Option<StoredEvent>> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.event_at(position)).await
            }
            Store::Postgres(s) => s.event_at(position).await,
        }
    }

    /// Whether this instance's commit queue is full (new requests get [`Error::Saturated`]).
    pub fn is_saturated(&self) -> bool {
        match self {
            Store::Sqlite(s) => s.is_saturated(),
            Store::Postgres(s) => s.is_saturated(),
        }
    }

    /// Group commit statistics of this instance so far.
    pub fn stats(&self) -> CommitStats {
        match self {
            Store::Sqlite(s) => s.stats(),
            Store::Postgres(s) => s.stats(),
        }
    }

    /// Deletes raw requests, events and idempotency records older than `cutoff`, `batch` rows
    /// per statement. Message states are kept.
    pub async fn prune(&self, cutoff: DateTime<Utc>, batch: usize) -> Result<PruneStats> {
        match self {
            Store::Sqlite(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.prune(cutoff, batch))
                    .await
                    .map_err(|_| Error::Unavailable)?
            }
            Store::Postgres(s) => s.prune(cutoff, batch).await,
        }
    }

    /// Runs [`Store::prune`] every `interval` for records older than `retention`, in the
    /// background (a thread for SQLite, a task for PostgreSQL), until the store is dropped.
    fn spawn_retention(&self, retention: chrono::Duration, interval: Duration, batch: usize) {
        match self {
            Store::Sqlite(s) => s.spawn_retention(retention, interval, batch),
            Store::Postgres(s) => s.spawn_retention(retention, interval, batch),
        }
    }
}

/// Runs a SQLite read on the blocking pool, off the async workers.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|_| Error::Unavailable)?
}

/// Logs what one retention pass did.
pub(crate) fn log_prune(result: &Result<PruneStats>) {
    match result {
        Ok(stats) if stats.total() > 0 => tracing::info!(
            raw_requests = stats.raw_requests,
            events = stats.events,
            idempotency = stats.idempotency,
            "Retention deleted old records."
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "Retention pass failed; will retry."),
    }
}
