//! Idempotency keys: claimed once across handles (instances), replayed for the same body,
//! refused for another, abandoned after the claim timeout, forgotten after 24 hours.

use chrono::{Duration, Utc};
use tidings_core::Status;
use tidings_store::Claim;

use crate::conformance;
use crate::support::{Backend, at, event, ingest, record};

async fn claim_replay_mismatch_in_flight(backend: &Backend) {
    let (a, b) = backend.pair().await;
    let now = Utc::now();
    assert_eq!(
        a.claim_idempotency("env", "sendgrid", "k1", b"h1", now)
            .await
            .unwrap(),
        Claim::Claimed
    );
    // The other instance sees the key in flight, whatever the body.
    for hash in [b"h1", b"h2"] {
        assert_eq!(
            b.claim_idempotency("env", "sendgrid", "k1", hash, now)
                .await
                .unwrap(),
            Claim::InFlight
        );
    }
    // Keys are scoped per environment and per integration: a weakly authenticated integration
    // cannot claim another's keys.
    for (env, integration) in [("other", "sendgrid"), ("env", "push-webhook")] {
        assert_eq!(
            b.claim_idempotency(env, integration, "k1", b"h1", now)
                .await
                .unwrap(),
            Claim::Claimed
        );
        b.release_idempotency(env, integration, "k1").await.unwrap();
    }

    let mut request = ingest(
        "env",
        vec![event("m1", "a", Status::Delivered, at(1, 0), None)],
    );
    request.idempotency = record("k1", b"h1", b"[{\"id\":\"m1\"}]");
    a.ingest(request).await.unwrap();
    a.release_idempotency("env", "sendgrid", "k1")
        .await
        .unwrap();

    match b
        .claim_idempotency("env", "sendgrid", "k1", b"h1", now)
        .await
        .unwrap()
    {
        Claim::Replay(stored) => {
            assert_eq!(stored.status, 200);
            assert_eq!(stored.response, b"[{\"id\":\"m1\"}]");
            assert_eq!(stored.body_hash, b"h1");
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(
        b.claim_idempotency("env", "sendgrid", "k1", b"h2", now)
            .await
            .unwrap(),
        Claim::Mismatch
    );
    let stored = a
        .idempotent_response("env", "sendgrid", "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.response, b"[{\"id\":\"m1\"}]");

    // A request that failed releases its key: the retry may claim it.
    assert_eq!(
        a.claim_idempotency("env", "sendgrid", "k2", b"h", now)
            .await
            .unwrap(),
        Claim::Claimed
    );
    a.release_idempotency("env", "sendgrid", "k2")
        .await
        .unwrap();
    assert_eq!(
        b.claim_idempotency("env", "sendgrid", "k2", b"h", now)
            .await
            .unwrap(),
        Claim::Claimed
    );
    b.release_idempotency("env", "sendgrid", "k2")
        .await
        .unwrap();
    assert!(
        a.idempotent_response("env", "sendgrid", "k2")
            .await
            .unwrap()
            .is_none()
    );

    // After 24 hours the record is ignored: the key may be used again, with any body.
    let later = now + Duration::hours(25);
    assert_eq!(
        b.claim_idempotency("env", "sendgrid", "k1", b"h2", later)
            .await
            .unwrap(),
        Claim::Claimed
    );
}

async fn abandoned_claims_expire(backend: &Backend) {
    let (a, b) = backend.pair().await;
    let now = Utc::now();
    assert_eq!(
        a.claim_idempotency("env", "sendgrid", "k", b"h", now)
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        b.claim_idempotency("env", "sendgrid", "k", b"h", now + Duration::seconds(10))
            .await
            .unwrap(),
        Claim::InFlight
    );
    // Older than the claim timeout (30 s here): the instance holding it is taken as gone.
    assert_eq!(
        b.claim_idempotency("env", "sendgrid", "k", b"h", now + Duration::seconds(31))
            .await
            .unwrap(),
        Claim::Claimed
    );
}

async fn claims_race_to_one_winner(backend: &Backend) {
    let (a, b) = backend.pair().await;
    let now = Utc::now();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                store
                    .claim_idempotency("env", "sendgrid", "race", b"h", now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Claim::Claimed => claimed += 1,
            Claim::InFlight => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
}

conformance! {
    idempotency_claim_replay_mismatch_in_flight_across_handles => claim_replay_mismatch_in_flight,
    idempotency_abandoned_claims_expire => abandoned_claims_expire,
    idempotency_concurrent_claims_have_one_winner => claims_race_to_one_winner,
}
