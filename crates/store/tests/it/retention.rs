//! Retention deletes old raw requests, events and idempotency records in batches; message states
//! stay.

use chrono::{Duration, Utc};
use tidings_core::Status;

use crate::conformance;
use crate::support::{Backend, at, event, ingest_at, options, record};

async fn seed(store: &tidings_store::Store) {
    let old = Utc::now() - Duration::days(40);
    for (i, received_at) in [old, old, Utc::now()].into_iter().enumerate() {
        let mut request = ingest_at(
            "env",
            vec![
                event(
                    &format!("m{i}"),
                    &format!("{i}a"),
                    Status::Sent,
                    at(1, 0),
                    None,
                ),
                event(
                    &format!("m{i}"),
                    &format!("{i}b"),
                    Status::Delivered,
                    at(2, 0),
                    None,
                ),
            ],
            received_at,
        );
        request.idempotency = record(&format!("k{i}"), b"h", b"[]");
        store.ingest(request).await.unwrap();
    }
}

async fn deletes_old_records(backend: &Backend) {
    let store = backend.open().await;
    seed(&store).await;
    // A batch of one: every step loops.
    let pruned = store
        .prune(Utc::now() - Duration::days(30), 1)
        .await
        .unwrap();
    assert_eq!(
        (pruned.raw_requests, pruned.events, pruned.idempotency),
        (2, 4, 2)
    );
    assert_eq!(store.raw_request_count().await.unwrap(), 1);
    let events = store.events(None, None, 0, 100).await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.id == "m2"));
    assert!(
        store
            .idempotent_response("env", "sendgrid", "k0")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .idempotent_response("env", "sendgrid", "k2")
            .await
            .unwrap()
            .is_some()
    );
    // Message states are kept.
    assert_eq!(store.messages(None, None).await.unwrap().len(), 3);
    // Nothing left to delete; ingest goes on.
    let again = store
        .prune(Utc::now() - Duration::days(30), 1000)
        .await
        .unwrap();
    assert_eq!(again.total(), 0);
    seed(&store).await;
}

async fn runs_in_the_background(backend: &Backend) {
    let mut options = options();
    options.retention = Some(Duration::days(30));
    options.retention_interval = std::time::Duration::from_millis(50);
    let store = backend.open_with(options).await;
    seed(&store).await;
    for _ in 0..100 {
        if store.raw_request_count().await.unwrap() == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the retention task did not delete the old requests");
}

conformance! {
    retention_deletes_old_records_in_batches => deletes_old_records,
    retention_runs_in_the_background => runs_in_the_background,
}
