//! Replays: one raw request per distinct body per integration (repeats counted), and signed
//! one-time values (nonces) refused with another body, atomically with the commit, on every
//! backend and across two instances.

use chrono::{Duration, Utc};
use tidings_core::Status;
use tidings_store::{Ingest, NonceRecord};

use crate::conformance;
use crate::support::{Backend, at, event, ingest};

/// A request with this body hash carrying one event.
fn with_body(hash: &[u8], dedup: &str) -> Ingest {
    Ingest {
        body_hash: hash.to_vec(),
        ..ingest(
            "env",
            vec![event("m1", dedup, Status::Delivered, at(10, 0), None)],
        )
    }
}

async fn one_raw_request_per_distinct_body(backend: &Backend) {
    let store = backend.open().await;
    let first = store.ingest(with_body(b"body-a", "a")).await.unwrap();
    assert!(!first.repeat);
    for _ in 0..3 {
        let again = store.ingest(with_body(b"body-a", "a")).await.unwrap();
        assert!(again.repeat);
        assert_eq!(again.request_seq, first.request_seq, "the same raw request");
        assert_eq!((again.stored, again.duplicates), (0, 1));
    }
    // Another integration's identical body is its own request.
    let other = store
        .ingest(Ingest {
            integration_id: "other".into(),
            ..with_body(b"body-a", "a2")
        })
        .await
        .unwrap();
    assert!(!other.repeat);
    store.ingest(with_body(b"body-b", "b")).await.unwrap();
    assert_eq!(store.raw_request_count().await.unwrap(), 3);
}

async fn a_repeated_body_is_found_through_its_events(backend: &Backend) {
    let store = backend.open().await;
    // Without events, the body's hash alone finds the earlier request.
    let bare = || Ingest {
        body_hash: b"bare".to_vec(),
        ..ingest("env", Vec::new())
    };
    let first = store.ingest(bare()).await.unwrap();
    let again = store.ingest(bare()).await.unwrap();
    assert!(!first.repeat);
    assert!(again.repeat);
    assert_eq!(again.request_seq, first.request_seq);
    // Two events, one of them already stored by another request: a new body, stored.
    let two = |hash: &[u8]| Ingest {
        body_hash: hash.to_vec(),
        ..ingest(
            "env",
            vec![
                event("m2", "x", Status::Delivered, at(10, 0), None),
                event("m2", "y", Status::Opened, at(11, 0), None),
            ],
        )
    };
    store.ingest(with_body(b"only-x", "x")).await.unwrap();
    let both = store.ingest(two(b"x-and-y")).await.unwrap();
    assert!(!both.repeat);
    assert_eq!((both.stored, both.duplicates), (1, 1));
    // Its retry: every event a duplicate, the first one's from another request; the request
    // that stored the second had this body.
    let retry = store.ingest(two(b"x-and-y")).await.unwrap();
    assert!(retry.repeat);
    assert_eq!(retry.request_seq, both.request_seq);
    // The same events under another body: stored as a request of its own.
    let other = store.ingest(two(b"x-and-y, reformatted")).await.unwrap();
    assert!(!other.repeat);
    assert_eq!((other.stored, other.duplicates), (0, 2));
    assert_eq!(store.raw_request_count().await.unwrap(), 4);
}

fn with_nonce(hash: &[u8], nonce: &str, scope: &str, dedup: &str) -> Ingest {
    Ingest {
        nonce: Some(NonceRecord {
            scope: scope.into(),
            value: nonce.into(),
            expires_at: Utc::now() + Duration::minutes(15),
        }),
        ..with_body(hash, dedup)
    }
}

async fn a_nonce_reused_with_another_body_is_refused(backend: &Backend) {
    let (a, b) = backend.pair().await;
    let first = a
        .ingest(with_nonce(b"body-1", "token-1", "key-1", "e1"))
        .await
        .unwrap();
    assert!(!first.nonce_reused);
    // The provider's retry: the same body, on the other instance.
    let retry = b
        .ingest(with_nonce(b"body-1", "token-1", "key-1", "e1"))
        .await
        .unwrap();
    assert!(!retry.nonce_reused);
    assert_eq!((retry.stored, retry.duplicates), (0, 1));
    // A replay of the signature with another body: nothing of it is stored.
    let replay = b
        .ingest(with_nonce(b"body-2", "token-1", "key-1", "e2"))
        .await
        .unwrap();
    assert!(replay.nonce_reused);
    assert_eq!(a.raw_request_count().await.unwrap(), 1);
    assert_eq!(a.events(Some("env"), None, 0, 100).await.unwrap().len(), 1);
    // Scoped to the signing key: after a rotation the same token value is new.
    let rotated = a
        .ingest(with_nonce(b"body-3", "token-1", "key-2", "e3"))
        .await
        .unwrap();
    assert!(!rotated.nonce_reused);
    // An expired use no longer counts.
    let mut expired = with_nonce(b"body-4", "token-2", "key-1", "e4");
    if let Some(nonce) = &mut expired.nonce {
        nonce.expires_at = Utc::now() - Duration::minutes(1);
    }
    assert!(!a.ingest(expired).await.unwrap().nonce_reused);
    let later = a
        .ingest(with_nonce(b"body-5", "token-2", "key-1", "e5"))
        .await
        .unwrap();
    assert!(!later.nonce_reused, "the earlier use had expired");
}

async fn racing_replays_store_one_body(backend: &Backend) {
    let (a, b) = backend.pair().await;
    // Two bodies under one token at once, on two instances: exactly one is accepted.
    let (x, y) = tokio::join!(
        a.ingest(with_nonce(b"body-x", "token-r", "key-1", "x")),
        b.ingest(with_nonce(b"body-y", "token-r", "key-1", "y")),
    );
    let refused = [x.unwrap(), y.unwrap()]
        .iter()
        .filter(|o| o.nonce_reused)
        .count();
    assert_eq!(refused, 1);
    assert_eq!(a.raw_request_count().await.unwrap(), 1);
}

conformance! {
    replays_one_raw_request_per_distinct_body => one_raw_request_per_distinct_body,
    replays_a_repeated_body_is_found_through_its_events => a_repeated_body_is_found_through_its_events,
    replays_a_nonce_reused_with_another_body_is_refused => a_nonce_reused_with_another_body_is_refused,
    replays_racing_replays_store_one_body => racing_replays_store_one_body,
}
