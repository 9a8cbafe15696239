//! Migrations apply once, whether the store is opened again or by several instances at once.

use tidings_core::Status;
use tidings_store::Store;

use crate::conformance;
use crate::support::{Backend, at, event, ingest, options};

async fn twice_and_concurrently(backend: &Backend) {
    // Several instances starting together on an empty database.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = backend.url();
            tokio::spawn(async move { Store::open(&url, options()).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    {
        let store = backend.open().await;
        store
            .ingest(ingest(
                "env",
                vec![event("m", "a", Status::Sent, at(0, 0), None)],
            ))
            .await
            .unwrap();
    }
    // Opened again: nothing reapplied, nothing lost.
    let store = backend.open().await;
    assert_eq!(store.raw_request_count().await.unwrap(), 1);
    assert_eq!(store.events(None, None, 0, 10).await.unwrap().len(), 1);
}

conformance! {
    migrations_run_twice_and_concurrently => twice_and_concurrently,
}

/// A SQLite database as the previous release (schema 2) left it: migration 3 moves messages and
/// idempotency keys under their integration and keeps every event readable by cursor.
#[tokio::test]
async fn sqlite_database_of_the_previous_release_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("schema-2.sqlite.sql"))
            .unwrap();
    }
    let store = Store::open(&format!("sqlite://{}", path.display()), options())
        .await
        .unwrap();
    let message = store
        .message("env", "sendgrid", "m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.state.status, Status::Delivered);
    assert_eq!(message.external_id.as_deref(), Some("ext-m1"));
    assert_eq!(message.events, 2);
    let page = store
        .read_events(&tidings_store::EventQuery::new(
            "env",
            tidings_store::Cursor::START,
            10,
        ))
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
    // New events fold into the migrated message.
    store
        .ingest(ingest(
            "env",
            vec![event("m1", "c", Status::Opened, at(5, 0), None)],
        ))
        .await
        .unwrap();
    let message = store
        .message("env", "sendgrid", "ext-m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.state.status, Status::Opened);
    assert_eq!(message.events, 3);
}
