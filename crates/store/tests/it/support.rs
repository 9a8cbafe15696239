//! Backends under test and helpers to build what goes into the store.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use tidings_core::{Event, EventBody, Failure, Status};
use tidings_store::{IdempotencyRecord, Ingest, Store, StoreOptions};

/// The variable that turns the PostgreSQL run on, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub(crate) const POSTGRES_URL_ENV: &str = "TIDINGS_TEST_POSTGRES_URL";

/// A database for one test.
pub(crate) enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres { base: String, schema: String },
}

/// SQLite always; PostgreSQL too when [`POSTGRES_URL_ENV`] is set.
pub(crate) async fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite(tempfile::tempdir().unwrap())];
    if let Some(base) = tidings_fixtures::optional::postgres_url() {
        out.push(Backend::postgres(base).await);
    }
    out
}

/// A PostgreSQL database for a test that needs one, or `None` (said on stderr) when
/// [`POSTGRES_URL_ENV`] is unset; under `CI=true` a missing PostgreSQL fails instead.
pub(crate) async fn postgres_backend() -> Option<Backend> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(base) => Some(Backend::postgres(base).await),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{POSTGRES_URL_ENV} is not set: CI runs the PostgreSQL tests")
        }
        Err(_) => {
            eprintln!("skipped: set {POSTGRES_URL_ENV} to run this PostgreSQL test");
            None
        }
    }
}

async fn admin(base: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {POSTGRES_URL_ENV}: {e}"));
    tokio::spawn(connection);
    client
}

impl Backend {
    async fn postgres(base: String) -> Backend {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let schema = format!(
            "tidings_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_subsec_micros()
        );
        admin(&base)
            .await
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Backend::Postgres { base, schema }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// The store URL of this test's database.
    pub(crate) fn url(&self) -> String {
        match self {
            Backend::Sqlite(dir) => format!("sqlite://{}", dir.path().join("t.db").display()),
            Backend::Postgres { base, schema } => with_schema(base, schema),
        }
    }

    /// A new handle on this test's database (for PostgreSQL: a new instance with its own pool).
    pub(crate) async fn open(&self) -> Store {
        self.open_with(options()).await
    }

    pub(crate) async fn open_with(&self, options: StoreOptions) -> Store {
        Store::open(&self.url(), options).await.unwrap()
    }

    /// Two handles as two service instances would have them: for PostgreSQL two separately
    /// opened stores; for SQLite, which one process owns, two clones of one store.
    pub(crate) async fn pair(&self) -> (Store, Store) {
        let first = self.open().await;
        let second = match self {
            Backend::Sqlite(_) => first.clone(),
            Backend::Postgres { .. } => self.open().await,
        };
        (first, second)
    }

    /// Drops the test's schema (a failed test leaves it for a look).
    pub(crate) async fn cleanup(&self) {
        if let Backend::Postgres { base, schema } = self {
            let _ = admin(base)
                .await
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await;
        }
    }
}

/// `base` with `search_path` set to `schema` for every connection.
pub(crate) fn with_schema(base: &str, schema: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

pub(crate) fn options() -> StoreOptions {
    StoreOptions {
        pool_size: 4,
        claim_timeout: std::time::Duration::from_secs(30),
        ..StoreOptions::default()
    }
}

pub(crate) fn at(seconds: i64, nanos: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, nanos).unwrap()
}

/// An event for `message` with its own dedup key.
pub(crate) fn event(
    message: &str,
    dedup: &str,
    status: Status,
    date: DateTime<Utc>,
    failure: Option<Failure>,
) -> Event {
    Event {
        id: message.to_owned(),
        body: EventBody {
            status,
            date,
            external_id: Some(format!("ext-{message}")),
            attempts: None,
            response: None,
            row: Some(format!("{{\"dedup\":\"{dedup}\"}}")),
        },
        dedup_key: format!("test:{dedup}"),
        provider_event: status.as_str().to_owned(),
        recipient: Some("someone@example.com".into()),
        failure,
        code: None,
        automated: None,
    }
}

/// A request in environment `env` carrying `events`.
pub(crate) fn ingest(env: &str, events: Vec<Event>) -> Ingest {
    ingest_at(env, events, Utc::now())
}

pub(crate) fn ingest_at(env: &str, events: Vec<Event>, received_at: DateTime<Utc>) -> Ingest {
    Ingest {
        environment_id: env.to_owned(),
        integration_id: "sendgrid".into(),
        provider: "sendgrid".into(),
        received_at,
        content_type: Some("application/json".into()),
        method: "POST".into(),
        authentication: "api_key".into(),
        url: "/v2/inbound-webhooks/delivery-providers/env/sendgrid".into(),
        headers_json: "{}".into(),
        body: b"[]".to_vec(),
        // Each request a distinct body, as far as the store can tell (one raw request is kept
        // per distinct body).
        body_hash: next_body_hash(),
        nonce: None,
        events,
        ignored_json: "[]".into(),
        idempotency: None,
        admission: tidings_store::Admission::new(),
        feeds_suppressions: false,
    }
}

/// A body hash no other request of this process has.
pub(crate) fn next_body_hash() -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = u64::from(std::process::id());
    [pid.to_be_bytes(), n.to_be_bytes()].concat()
}

pub(crate) fn record(key: &str, hash: &[u8], response: &[u8]) -> Option<IdempotencyRecord> {
    Some(IdempotencyRecord {
        key: key.to_owned(),
        body_hash: hash.to_vec(),
        status: 200,
        response: response.to_vec(),
    })
}

/// A small deterministic generator (no dependency, same sequence on every run).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }

    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
