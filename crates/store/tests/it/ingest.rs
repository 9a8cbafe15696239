//! Every request stored raw; events stored once per (environment, dedup key); duplicates counted.

use tidings_core::Status;

use crate::conformance;
use crate::support::{Backend, at, event, ingest};

async fn dedup_and_duplicate_counts(backend: &Backend) {
    let store = backend.open().await;
    let delivered = event("m1", "a", Status::Delivered, at(10, 0), None);
    let opened = event("m1", "b", Status::Opened, at(20, 0), None);

    let first = store
        .ingest(ingest("env", vec![delivered.clone(), opened.clone()]))
        .await
        .unwrap();
    assert_eq!((first.stored, first.duplicates), (2, 0));
    // A provider retry, reordered, with one event twice in the same body.
    let retry = store
        .ingest(ingest(
            "env",
            vec![opened.clone(), delivered.clone(), delivered.clone()],
        ))
        .await
        .unwrap();
    assert_eq!((retry.stored, retry.duplicates), (0, 3));
    assert!(retry.request_seq > first.request_seq);
    // Dedup keys are scoped per environment.
    let other = store
        .ingest(ingest("other", vec![delivered.clone()]))
        .await
        .unwrap();
    assert_eq!((other.stored, other.duplicates), (1, 0));

    assert_eq!(store.raw_request_count().await.unwrap(), 3);
    let events = store.events(Some("env"), None, 0, 100).await.unwrap();
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.dedup_key.as_str(), e.duplicates, e.event.body.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("test:a", 2, Status::Delivered),
            ("test:b", 1, Status::Opened)
        ]
    );
    assert!(events[0].seq < events[1].seq);
    assert_eq!(events[0].id, "m1");
    assert_eq!(events[0].event, delivered);
    // Paging with the sequence as a cursor.
    let page = store
        .events(Some("env"), None, events[0].seq, 100)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].dedup_key, "test:b");
    assert_eq!(store.events(None, None, 0, 100).await.unwrap().len(), 3);
    assert_eq!(
        store
            .events(None, Some("nope"), 0, 100)
            .await
            .unwrap()
            .len(),
        0
    );

    let messages = store.messages(Some("env"), None).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].id, "m1");
    assert_eq!(messages[0].events, 2);
    assert_eq!(messages[0].state.status, Status::Opened);
    assert_eq!(messages[0].state.first_at[&Status::Delivered], at(10, 0));
    assert_eq!(store.messages(None, Some("m1")).await.unwrap().len(), 2);
    store.ping().await.unwrap();
}

async fn a_request_without_events_is_still_stored(backend: &Backend) {
    let store = backend.open().await;
    let outcome = store.ingest(ingest("env", Vec::new())).await.unwrap();
    assert_eq!((outcome.stored, outcome.duplicates), (0, 0));
    assert_eq!(store.raw_request_count().await.unwrap(), 1);
    assert!(store.messages(None, None).await.unwrap().is_empty());
}

async fn a_request_cancelled_before_it_joins_a_group_is_not_committed(backend: &Backend) {
    let store = backend.open().await;
    let gone = ingest(
        "env",
        vec![event("m1", "gone", Status::Delivered, at(10, 0), None)],
    );
    // Its client went away while it waited in the queue.
    assert!(gone.admission.cancel());
    let result = store.ingest(gone).await;
    assert!(
        matches!(result, Err(tidings_store::Error::Cancelled)),
        "{result:?}"
    );
    assert_eq!(store.raw_request_count().await.unwrap(), 0);
    assert!(store.events(None, None, 0, 100).await.unwrap().is_empty());
    // A request the writer answered can no longer be cancelled: it was committed.
    let kept = ingest(
        "env",
        vec![event("m1", "kept", Status::Delivered, at(10, 0), None)],
    );
    let admission = kept.admission.clone();
    store.ingest(kept).await.unwrap();
    assert!(admission.is_answered());
    assert!(!admission.cancel());
    assert_eq!(store.raw_request_count().await.unwrap(), 1);
}

conformance! {
    ingest_dedup_and_duplicate_counts => dedup_and_duplicate_counts,
    ingest_keeps_requests_without_events => a_request_without_events_is_still_stored,
    ingest_skips_a_request_cancelled_in_the_queue => a_request_cancelled_before_it_joins_a_group_is_not_committed,
}
