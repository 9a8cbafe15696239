//! The delivery engine: per endpoint, a head task that walks the event cursor and a retry task
//! that attempts the events whose first attempt failed.
//!
//! - The head holds the endpoint's lease (see `tidings_store::outbound`): it reads pages of
//!   events after the stored cursor, sends up to `max_in_flight` at once, and moves the cursor
//!   over runs of handled events (written every [`FLUSH_EVERY`] or [`FLUSH_MAX`] events). An
//!   event that fails gets a row with its payload: unordered endpoints queue it for the retry
//!   task and move on; an ordered endpoint (`max_in_flight = 1`) retries it in place, so it
//!   holds the endpoint until it is delivered or dead-lettered. Nothing is ever skipped: the
//!   cursor only passes events that were delivered or have a row.
//! - The retry task claims due rows (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so several
//!   instances share them) and attempts each once per claim.
//! - Each endpoint has its own tasks, connections and in-flight limit, and keeps at most a page
//!   of events and a bounded window in memory: an endpoint that is down for days neither stops
//!   the others nor grows; its backlog stays in the database.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use tidings_store::{
    Cursor, DeliveryRow, DeliveryState, EventQuery, FailedAttempt, Fence, HeadLease, Store,
    StoredEvent,
};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::client::{Answer, Client, Connections, Target};
use crate::metrics::{LagGauge, Metrics, Result as Outcome};
use crate::{EndpointConfig, Result, Start, payload, sign};

/// How long a head lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// An attempt is not started when the lease has less than this left.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often an instance that does not hold a head tries to take it.
const ACQUIRE_EVERY: Duration = Duration::from_secs(2);
/// The cursor is written at least this often while it moves...
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// ...or after this many handled events.
const FLUSH_MAX: usize = 500;
/// Events read per page.
const PAGE: usize = 100;
/// Events sent or done but not yet passed by the cursor, at most (a slow event at the front
/// holds the cursor; the window stops growing behind it).
const WINDOW_MIN: usize = 256;
/// How often lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// The running delivery to every enabled endpoint.
pub struct Outbound {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Settings that tests and operators may tune.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This instance's name in leases.
    pub owner: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            owner: format!(
                "{}-{}",
                std::process::id(),
                Utc::now().timestamp_nanos_opt().unwrap_or_default() % 1_000_000_007
            ),
        }
    }
}

impl Outbound {
    /// Records every configured endpoint in the store (a new one starts where its `start`
    /// says) and starts delivering to the enabled ones.
    pub async fn start(
        store: Store,
        endpoints: &[EndpointConfig],
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Result<Outbound> {
        let (shutdown, watcher) = watch::channel(false);
        let client = Client::new()?;
        let mut tasks = JoinSet::new();
        let mut running = Vec::new();
        for config in endpoints {
            let start = match config.start {
                Start::Now => store.end().await?,
                Start::Beginning => Cursor::START,
            };
            store
                .outbound_register(
                    &config.id,
                    &config.environment,
                    config.enabled,
                    start,
                    Utc::now(),
                )
                .await?;
            if !config.enabled {
                tracing::info!(endpoint = %config.id, "Outbound endpoint disabled.");
                continue;
            }
            let endpoint = Arc::new(Endpoint {
                target: Target::new(&config.uri()?)?,
                keys: config.keys(),
                filters: config.filters(),
                retry: config.retry(),
                config: config.clone(),
                connections: Connections::default(),
                client: client.clone(),
                store: store.clone(),
                metrics: Arc::clone(&metrics),
                owner: settings.owner.clone(),
                permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
                lease_deadline: AtomicI64::new(0),
                shutdown: watcher.clone(),
            });
            tracing::info!(
                endpoint = %config.id,
                environment = %config.environment,
                url = %config.shown_url(),
                max_in_flight = config.max_in_flight,
                "Delivering events to an outbound endpoint."
            );
            tasks.spawn(Arc::clone(&endpoint).run_head());
            tasks.spawn(Arc::clone(&endpoint).run_retries());
            running.push(endpoint);
        }
        if !running.is_empty() {
            tasks.spawn(measure_lag(store, running, metrics, watcher));
        }
        Ok(Outbound { shutdown, tasks })
    }

    /// Stops every task: heads write their cursor and give their lease up; attempts in flight
    /// are abandoned (their events are sent again, at least once).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let wait = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

struct Endpoint {
    config: EndpointConfig,
    filters: crate::Filters,
    retry: crate::RetrySchedule,
    target: Target,
    keys: Vec<Vec<u8>>,
    connections: Connections,
    client: Client,
    store: Store,
    metrics: Arc<Metrics>,
    owner: String,
    /// Shared by the head and the retries: `max_in_flight` in all.
    permits: Arc<Semaphore>,
    /// When the head's lease runs out, in Unix milliseconds: no attempt starts after it.
    lease_deadline: AtomicI64,
    shutdown: watch::Receiver<bool>,
}

/// What became of one event the head sent.
enum Handled {
    /// Delivered.
    Delivered,
    /// Has a row now (queued for a retry, or dead-lettered), or was delivered after failures
    /// (counted with its row's removal): the cursor may pass it.
    Recorded,
    /// The lease was lost: stop.
    Lost,
}

/// Why the head stopped.
enum Stop {
    Shutdown,
    Lost,
}

impl Endpoint {
    fn ordered(&self) -> bool {
        self.config.max_in_flight <= 1
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Holds the head whenever this instance can, until shutdown.
    async fn run_head(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        loop {
            if self.stopping() {
                return;
            }
            let now = Utc::now();
            let until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
            match self
                .store
                .outbound_acquire(&self.config.id, &self.owner, until, now)
                .await
            {
                Ok(Some(lease)) => {
                    self.lease_deadline
                        .store(until.timestamp_millis(), Ordering::SeqCst);
                    tracing::debug!(endpoint = %self.config.id, epoch = lease.epoch, "Took the head.");
                    match self.head(lease).await {
                        Ok(Stop::Shutdown) => return,
                        Ok(Stop::Lost) => {
                            tracing::info!(endpoint = %self.config.id, "Lost the endpoint's lease; taking it again when free.");
                        }
                        Err(err) => {
                            tracing::warn!(endpoint = %self.config.id, error = %err, "Delivery paused after a storage error; resuming.");
                        }
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(endpoint = %self.config.id, error = %err, "Cannot take the endpoint's lease; retrying.");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(ACQUIRE_EVERY) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Walks the cursor while the lease holds.
    async fn head(self: &Arc<Self>, lease: HeadLease) -> Result<Stop> {
        let id = self.config.id.as_str();
        let epoch = lease.epoch;
        let mut stored = lease.cursor;
        let mut safe = lease.cursor;
        let mut read_from = lease.cursor;
        // Events after the cursor that already have a row: a crash or takeover came between
        // the row and the cursor's next write. A held one resumes; the others are handled.
        let mut rows: BTreeMap<Cursor, DeliveryRow> = self
            .store
            .outbound_deliveries(Some(id), false)
            .await?
            .into_iter()
            .filter(|row| row.position > lease.cursor)
            .map(|row| (row.position, row))
            .collect();
        let mut buffer: VecDeque<StoredEvent> = VecDeque::new();
        let mut window: BTreeMap<Cursor, bool> = BTreeMap::new();
        let window_max = WINDOW_MIN.max(self.config.max_in_flight * 4);
        let mut inflight: JoinSet<(Cursor, Result<Handled>)> = JoinSet::new();
        let mut delivered = 0i64;
        let mut handled = 0usize;
        let mut last_success = None;
        let mut last_flush = Instant::now();
        let mut renew =
            tokio::time::interval_at(tokio::time::Instant::now() + RENEW_EVERY, RENEW_EVERY);
        let mut changes = self.store.subscribe();
        let mut changes_alive = true;
        let mut shutdown = self.shutdown.clone();
        let mut caught_up = false;
        loop {
            if self.stopping() {
                self.flush(epoch, &mut stored, safe, &mut delivered, last_success)
                    .await?;
                inflight.abort_all();
                let _ = self.store.outbound_release(id, &self.owner, epoch).await;
                return Ok(Stop::Shutdown);
            }
            // Send what can be sent.
            let mut blocked = false;
            while window.len() < window_max {
                if buffer.is_empty() {
                    if caught_up {
                        break;
                    }
                    let page = self
                        .store
                        .read_events(&EventQuery::new(
                            self.config.environment.clone(),
                            read_from,
                            PAGE,
                        ))
                        .await?;
                    read_from = page.next;
                    if page.events.is_empty() {
                        caught_up = true;
                        break;
                    }
                    buffer.extend(page.events.into_iter().filter(|e| self.wants(e)));
                    continue;
                }
                let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                    blocked = true;
                    break;
                };
                let Some(event) = buffer.pop_front() else {
                    break;
                };
                let position = event.position;
                let row = rows.remove(&position);
                if row.as_ref().is_some_and(|r| r.state != DeliveryState::Hold) {
                    // Queued for the retry task or dead-lettered already.
                    window.insert(position, true);
                    continue;
                }
                window.insert(position, false);
                let endpoint = Arc::clone(self);
                inflight.spawn(async move {
                    let result = endpoint.deliver_head(event, epoch, row).await;
                    drop(permit);
                    (position, result)
                });
            }
            // The cursor passes every handled event at the front.
            while let Some((&position, &done)) = window.first_key_value() {
                if !done {
                    break;
                }
                window.pop_first();
                safe = safe.max(position);
            }
            if window.is_empty() && buffer.is_empty() {
                safe = safe.max(read_from);
            }
            if safe > stored
                && (last_flush.elapsed() >= FLUSH_EVERY || handled >= FLUSH_MAX || caught_up)
            {
                if !self
                    .flush(epoch, &mut stored, safe, &mut delivered, last_success)
                    .await?
                {
                    return Ok(Stop::Lost);
                }
                handled = 0;
                last_flush = Instant::now();
            }
            let flush_due = safe > stored;
            tokio::select! {
                Some(joined) = inflight.join_next(), if !inflight.is_empty() => {
                    let Ok((position, result)) = joined else {
                        return Ok(Stop::Lost);
                    };
                    match result? {
                        Handled::Delivered => {
                            delivered += 1;
                            last_success = Some(Utc::now());
                        }
                        Handled::Recorded => {}
                        Handled::Lost => return Ok(Stop::Lost),
                    }
                    handled += 1;
                    window.insert(position, true);
                }
                _ = renew.tick() => {
                    let until = Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
                    if !self.store.outbound_renew(id, &self.owner, epoch, until).await? {
                        return Ok(Stop::Lost);
                    }
                    self.lease_deadline.store(until.timestamp_millis(), Ordering::SeqCst);
                    // Other instances' commits do not notify this one: look again now and then.
                    caught_up = false;
                }
                changed = changes.changed(), if changes_alive => {
                    changes_alive = changed.is_ok();
                    caught_up = false;
                }
                _ = tokio::time::sleep(self.store.poll_interval()), if caught_up => {
                    caught_up = false;
                }
                _ = tokio::time::sleep(Duration::from_millis(20)), if blocked && inflight.is_empty() => {}
                _ = tokio::time::sleep(FLUSH_EVERY), if flush_due => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Writes the cursor if it moved; false when the lease was lost.
    async fn flush(
        &self,
        epoch: i64,
        stored: &mut Cursor,
        safe: Cursor,
        delivered: &mut i64,
        last_success: Option<chrono::DateTime<Utc>>,
    ) -> Result<bool> {
        if safe <= *stored {
            return Ok(true);
        }
        let moved = self
            .store
            .outbound_advance(&self.config.id, epoch, safe, *delivered, last_success)
            .await?;
        if moved {
            *stored = safe;
            *delivered = 0;
        }
        Ok(moved)
    }

    fn wants(&self, event: &StoredEvent) -> bool {
        let channel = tidings_core::registry()
            .get(&event.provider)
            .map(|p| p.channel());
        self.filters.accepts(
            event.event.body.status,
            channel,
            &event.provider,
            &event.integration_id,
        )
    }

    fn lease_left(&self) -> bool {
        let deadline = self.lease_deadline.load(Ordering::SeqCst);
        let margin = LEASE_MARGIN.as_millis() as i64;
        Utc::now().timestamp_millis() + margin < deadline
    }

    /// Sends one event of the head until it is delivered or has a row (for an ordered
    /// endpoint: until it is delivered or dead-lettered).
    async fn deliver_head(
        &self,
        event: StoredEvent,
        epoch: i64,
        row: Option<DeliveryRow>,
    ) -> Result<Handled> {
        let webhook_id = sign::webhook_id(&self.config.id, &event.environment_id, &event.dedup_key);
        let (body, mut attempts, mut wait) = match row {
            Some(row) => {
                let wait = row
                    .next_attempt_at
                    .and_then(|at| (at - Utc::now()).to_std().ok());
                (Bytes::from(row.payload), row.attempts, wait)
            }
            None => (
                Bytes::from(payload::build(&self.store, &event, self.config.include_row).await?),
                0,
                None,
            ),
        };
        let mut has_row = attempts > 0;
        let fence = Fence::Epoch(epoch);
        loop {
            if let Some(wait) = wait.take() {
                tokio::time::sleep(wait).await;
            }
            if !self.lease_left() {
                return Ok(Handled::Lost);
            }
            let (answer, latency) = self.attempt(&webhook_id, &body).await;
            attempts += 1;
            if answer.delivered() {
                self.metrics
                    .attempt(&self.config.id, Outcome::Delivered, latency);
                if !has_row {
                    return Ok(Handled::Delivered);
                }
                // The row goes, and the store counts the success with it.
                let counted = self
                    .store
                    .outbound_succeed(&self.config.id, &fence, event.position, Utc::now())
                    .await?;
                return Ok(if counted {
                    Handled::Recorded
                } else {
                    Handled::Lost
                });
            }
            let delay = self.next_delay(&answer, attempts);
            let state = match delay {
                None => DeliveryState::Dead,
                Some(_) if self.ordered() => DeliveryState::Hold,
                Some(_) => DeliveryState::Retry,
            };
            let recorded = self
                .record_failure(
                    &fence,
                    event.position,
                    &webhook_id,
                    &body,
                    attempts,
                    state,
                    delay,
                    &answer,
                    latency,
                )
                .await?;
            if !recorded {
                return Ok(Handled::Lost);
            }
            has_row = true;
            match state {
                DeliveryState::Hold => wait = delay,
                DeliveryState::Retry | DeliveryState::Dead => return Ok(Handled::Recorded),
            }
        }
    }

    fn next_delay(&self, answer: &Answer, attempts: u32) -> Option<Duration> {
        if !answer.retryable() {
            return None;
        }
        self.retry.delay(attempts, jitter(), answer.retry_after())
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_failure(
        &self,
        fence: &Fence,
        position: Cursor,
        webhook_id: &str,
        body: &Bytes,
        attempts: u32,
        state: DeliveryState,
        delay: Option<Duration>,
        answer: &Answer,
        latency: Duration,
    ) -> Result<bool> {
        let now = Utc::now();
        let failed = FailedAttempt {
            position,
            webhook_id: webhook_id.to_owned(),
            payload: body.to_vec(),
            attempts,
            state,
            next_attempt_at: delay.map(|d| now + chrono::Duration::from_std(d).unwrap_or_default()),
            attempted_at: now,
            status: answer.code(),
            answer: answer.to_string(),
        };
        let recorded = self
            .store
            .outbound_fail(&self.config.id, fence, &failed)
            .await?;
        if recorded {
            let outcome = if state == DeliveryState::Dead {
                Outcome::Dead
            } else {
                Outcome::Retry
            };
            self.metrics.attempt(&self.config.id, outcome, latency);
            // The answer's text stays out of info-level logs: it can echo the payload.
            tracing::warn!(
                endpoint = %self.config.id,
                position = %position,
                attempts,
                answer = answer.class(),
                status = answer.code(),
                next_in_secs = delay.map(|d| d.as_secs()),
                dead_lettered = state == DeliveryState::Dead,
                "Outbound delivery attempt failed."
            );
            tracing::debug!(endpoint = %self.config.id, position = %position, answer = %answer, "Failed attempt's answer.");
        }
        Ok(recorded)
    }

    /// One signed POST.
    async fn attempt(&self, webhook_id: &str, body: &Bytes) -> (Answer, Duration) {
        let timestamp = Utc::now().timestamp();
        let headers = [
            ("webhook-id", webhook_id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                sign::signature(&self.keys, webhook_id, timestamp, body),
            ),
        ];
        let started = Instant::now();
        let answer = self
            .client
            .post(
                &self.target,
                &self.connections,
                &headers,
                body.clone(),
                Duration::from_secs(self.config.timeout_secs.max(1)),
            )
            .await;
        (answer, started.elapsed())
    }

    /// Attempts due rows in retry until shutdown.
    async fn run_retries(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        let mut inflight = JoinSet::new();
        loop {
            if self.stopping() {
                inflight.abort_all();
                return;
            }
            while inflight.try_join_next().is_some() {}
            let free = self.permits.available_permits().min(64);
            let mut claimed = 0;
            if free > 0 {
                let now = Utc::now();
                let row_lease = Duration::from_secs(self.config.timeout_secs.max(1)) + LEASE;
                let until = now + chrono::Duration::from_std(row_lease).unwrap_or_default();
                match self
                    .store
                    .outbound_claim_due(&self.config.id, &self.owner, until, now, free)
                    .await
                {
                    Ok(rows) => {
                        claimed = rows.len();
                        for row in rows {
                            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                                return;
                            };
                            let endpoint = Arc::clone(&self);
                            inflight.spawn(async move {
                                if let Err(err) = endpoint.deliver_row(row).await {
                                    tracing::warn!(endpoint = %endpoint.config.id, error = %err, "Cannot record a retry's outcome; its lease will expire and it is tried again.");
                                }
                                drop(permit);
                            });
                        }
                    }
                    Err(err) => {
                        tracing::warn!(endpoint = %self.config.id, error = %err, "Cannot claim retries; trying again.");
                    }
                }
            }
            if claimed > 0 && claimed == free {
                continue;
            }
            let wait = match self.store.outbound_next_due(&self.config.id).await {
                Ok(Some(at)) => (at - Utc::now())
                    .to_std()
                    .unwrap_or_default()
                    .clamp(Duration::from_millis(50), Duration::from_secs(1)),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One attempt of a claimed row.
    async fn deliver_row(&self, row: DeliveryRow) -> Result<()> {
        let body = Bytes::from(row.payload);
        let (answer, latency) = self.attempt(&row.webhook_id, &body).await;
        let attempts = row.attempts.saturating_add(1);
        let fence = Fence::Owner(self.owner.clone());
        if answer.delivered() {
            self.metrics
                .attempt(&self.config.id, Outcome::Delivered, latency);
            self.store
                .outbound_succeed(&self.config.id, &fence, row.position, Utc::now())
                .await?;
            return Ok(());
        }
        let delay = self.next_delay(&answer, attempts);
        let state = if delay.is_some() {
            DeliveryState::Retry
        } else {
            DeliveryState::Dead
        };
        self.record_failure(
            &fence,
            row.position,
            &row.webhook_id,
            &body,
            attempts,
            state,
            delay,
            &answer,
            latency,
        )
        .await?;
        Ok(())
    }
}

/// Measures each running endpoint's lag every [`LAG_EVERY`].
async fn measure_lag(
    store: Store,
    endpoints: Vec<Arc<Endpoint>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Ok(progress) = store.outbound_endpoints().await {
            for endpoint in &endpoints {
                let Some(p) = progress
                    .iter()
                    .find(|p| p.endpoint_id == endpoint.config.id)
                else {
                    continue;
                };
                if let Ok(lag) = store.outbound_lag(&p.environment_id, p.cursor).await {
                    let seconds = lag.oldest_received_at.map_or(0.0, |at| {
                        (Utc::now() - at).num_milliseconds().max(0) as f64 / 1e3
                    });
                    metrics.set_lag(
                        &endpoint.config.id,
                        LagGauge {
                            events: lag.events,
                            seconds,
                            retrying: p.retrying,
                            dead: p.dead,
                        },
                    );
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LAG_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Uniform in `[0, 1)`, for full jitter (not for secrets).
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
