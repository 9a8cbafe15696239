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

/// The events of one request whose rows are slices of its body, and one dated by its receipt.
fn layout_request(received_at: chrono::DateTime<chrono::Utc>) -> tidings_store::Ingest {
    let mut first = event("m2", "a", Status::Sent, at(0, 0), None);
    first.body.row = Some(r#"{"dedup":"a"}"#.into());
    let mut second = event("m2", "b", Status::Delivered, at(1, 500_000_000), None);
    second.body.row = Some(r#"{"dedup":"b","n":"\u00e9"}"#.into());
    // The provider gave no time: the event is dated by its receipt, which a retry does not repeat.
    let mut undated = event("m3", "c", Status::Sent, received_at, None);
    undated.body.row = Some(r#"{"not":"a slice"}"#.into());
    let mut request = crate::support::ingest_at("env", vec![first, second, undated], received_at);
    request.body = br#"[{"dedup":"a"},{"dedup":"b","n":"\u00e9"}]"#.to_vec();
    request
}

/// Turns this test's database back into schema 9 (events keyed by `(environment_id,
/// dedup_key)`, `row` inside the JSON), with `events` as that version stored them, and the
/// last of them deleted (as retention or re-parse would), so its position is not reused.
async fn back_to_schema_9(backend: &Backend, events: &[tidings_store::StoredEvent]) {
    let full: Vec<(i64, String)> = events
        .iter()
        .map(|e| (e.seq, serde_json::to_string(&e.event).unwrap()))
        .collect();
    match backend {
        Backend::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE events_v9 (
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
                    authentication TEXT,
                    UNIQUE (environment_id, dedup_key)
                );
                INSERT INTO events_v9 SELECT seq, environment_id, integration_id, provider,
                    message_id, dedup_key, status, date, event, request_seq, received_at,
                    duplicates, authentication FROM events;
                DELETE FROM sqlite_sequence WHERE name = 'events_v9';
                INSERT INTO sqlite_sequence (name, seq)
                    SELECT 'events_v9', seq FROM sqlite_sequence WHERE name = 'events';
                DROP TABLE events;
                ALTER TABLE events_v9 RENAME TO events;
                CREATE INDEX events_by_message ON events (environment_id, message_id, seq);
                DELETE FROM events WHERE seq = (SELECT max(seq) FROM events);
                PRAGMA user_version = 9;",
            )
            .unwrap();
            for (seq, json) in &full {
                conn.execute(
                    "UPDATE events SET event = ?1 WHERE seq = ?2",
                    rusqlite::params![json, seq],
                )
                .unwrap();
            }
        }
        Backend::Postgres { .. } => {
            let (client, connection) =
                tokio_postgres::connect(&backend.url(), tokio_postgres::NoTls)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(
                    "ALTER TABLE events DROP CONSTRAINT events_by_dedup;
                    ALTER TABLE events DROP COLUMN dedup_time, DROP COLUMN row_at,
                        DROP COLUMN row_length, DROP COLUMN row_text;
                    ALTER TABLE events ADD CONSTRAINT events_environment_id_dedup_key_key
                        UNIQUE (environment_id, dedup_key);
                    DELETE FROM events WHERE seq = (SELECT max(seq) FROM events);
                    DELETE FROM tidings_migrations WHERE version = 10;",
                )
                .await
                .unwrap();
            for (seq, json) in &full {
                client
                    .execute("UPDATE events SET event = $1 WHERE seq = $2", &[json, seq])
                    .await
                    .unwrap();
            }
        }
    }
}

/// Migration 10 (the dedup key led by the event's time, `row` kept once): a database of
/// schema 9 reads back the same events, a provider's retry of them is still a duplicate (the
/// one dated by its receipt too), and positions go on after the highest ever handed out.
async fn event_layout_migrates(backend: &Backend) {
    let received_at = at(100, 123_456_789);
    let before = {
        let store = backend.open().await;
        store.ingest(layout_request(received_at)).await.unwrap();
        store
            .ingest(ingest(
                "env",
                vec![event("m4", "last", Status::Sent, at(2, 0), None)],
            ))
            .await
            .unwrap();
        store.events(None, None, 0, 10).await.unwrap()
    };
    assert_eq!(before.len(), 4);
    assert_eq!(
        before[1].event.body.row.as_deref(),
        Some(r#"{"dedup":"b","n":"\u00e9"}"#)
    );
    back_to_schema_9(backend, &before).await;
    let store = backend.open().await;
    let after = store.events(None, None, 0, 10).await.unwrap();
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&before[..3]).unwrap()
    );
    // The provider retries the request: the same events, the undated one dated by this receipt.
    let retried_at = at(200, 987_654_321);
    let mut retry = layout_request(retried_at);
    retry.body = b"[]".to_vec();
    let outcome = store.ingest(retry).await.unwrap();
    assert_eq!((outcome.stored, outcome.duplicates), (0, 3));
    // New events are stored in the new layout and read back whole; their positions follow.
    let mut fresh = event("m5", "new", Status::Sent, at(3, 0), None);
    fresh.body.row = Some(r#"{"dedup":"new"}"#.into());
    let mut request = ingest("env", vec![fresh.clone()]);
    request.body = br#"{"dedup":"new"}"#.to_vec();
    store.ingest(request).await.unwrap();
    let all = store.events(None, None, 0, 10).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all[3].seq > before[3].seq);
    assert_eq!(all[3].event, fresh);
    assert_eq!(all[0].duplicates, 1);
}

conformance! {
    migration_10_keeps_events_and_their_dedup => event_layout_migrates,
}
