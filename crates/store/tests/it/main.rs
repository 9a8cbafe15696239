//! The store contract, checked on every backend: SQLite (a temporary directory) always, and
//! PostgreSQL when `TIDINGS_TEST_POSTGRES_URL` is set (each test in a fresh schema).

// In tests a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

mod concurrency;
mod cursor;
mod existing;
mod fold;
mod idempotency;
mod ingest;
mod migrations;
mod outbound;
mod reparse;
mod replays;
mod retention;
mod suppressions;

/// One `#[tokio::test]` per case, running it on every backend in turn.
macro_rules! conformance {
    ($($name:ident => $case:path),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                for backend in $crate::support::backends().await {
                    eprintln!("{} on {}", stringify!($name), backend.name());
                    $case(&backend).await;
                    backend.cleanup().await;
                }
            }
        )*
    };
}
pub(crate) use conformance;
