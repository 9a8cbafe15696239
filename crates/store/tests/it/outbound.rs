//! Outbound delivery progress: the head lease and its fencing epoch, rows in retry claimed by
//! one instance at a time, dead letters and redrive, lag.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use tidings_core::Status;
use tidings_store::{Cursor, DeliveryState, EventQuery, FailedAttempt, Fence};

use crate::conformance;
use crate::support::{Backend, at, event, ingest};

conformance! {
    the_head_lease_fences_off_a_former_holder => head_lease,
    failed_attempts_are_rows_claimed_by_one_instance_at_a_time => retry_rows,
    dead_letters_are_listed_and_redriven => dead_letters,
    redrive_since_rewinds_to_the_first_event_received_then => redrive_since,
    lag_counts_the_events_after_the_cursor => lag,
    concurrent_claims_never_share_a_row => concurrent_claims,
    retention_keeps_what_an_enabled_endpoint_has_not_had => retention,
}

fn failed(seq: i64, attempts: u32, state: DeliveryState) -> FailedAttempt {
    let now = Utc::now();
    FailedAttempt {
        position: Cursor { xid: 0, seq },
        webhook_id: format!("msg_{seq}"),
        payload: format!("{{\"n\":{seq}}}").into_bytes(),
        attempts,
        state,
        next_attempt_at: (state != DeliveryState::Dead).then(|| now - Duration::seconds(1)),
        attempted_at: now,
        status: Some(503),
        answer: "HTTP 503: busy".into(),
    }
}

async fn head_lease(backend: &Backend) {
    let store = backend.open().await;
    let now = Utc::now();
    store
        .outbound_register("hooks", "prod", true, Cursor::START, now)
        .await
        .unwrap();
    let a = store
        .outbound_acquire("hooks", "a", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .expect("a free head is taken");
    assert_eq!(a.cursor, Cursor::START);
    assert!(
        store
            .outbound_acquire("hooks", "b", now + Duration::seconds(30), now)
            .await
            .unwrap()
            .is_none(),
        "a held head is not taken"
    );
    // The holder may take it again (after an error): a new epoch fences its former tasks.
    let a_again = store
        .outbound_acquire("hooks", "a", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .expect("its holder takes it again");
    assert!(a_again.epoch > a.epoch);
    assert!(
        !store
            .outbound_advance("hooks", a.epoch, Cursor { xid: 0, seq: 1 }, 1, None)
            .await
            .unwrap()
    );
    let a = a_again;
    let moved = Cursor { xid: 0, seq: 5 };
    assert!(
        store
            .outbound_advance("hooks", a.epoch, moved, 5, Some(now))
            .await
            .unwrap()
    );
    // Registering again (a restart) keeps the progress.
    store
        .outbound_register("hooks", "prod", true, Cursor::START, now)
        .await
        .unwrap();
    // a stalls past its lease; b takes over with a new epoch and a's writes are refused.
    let later = now + Duration::seconds(31);
    let b = store
        .outbound_acquire("hooks", "b", later + Duration::seconds(30), later)
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert!(b.epoch > a.epoch);
    assert_eq!(b.cursor, moved);
    assert!(
        !store
            .outbound_advance("hooks", a.epoch, Cursor { xid: 0, seq: 9 }, 4, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .outbound_fail(
                "hooks",
                &Fence::Epoch(a.epoch),
                &failed(6, 1, DeliveryState::Hold)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .outbound_renew("hooks", "a", a.epoch, later + Duration::seconds(60))
            .await
            .unwrap()
    );
    assert!(
        store
            .outbound_renew("hooks", "b", b.epoch, later + Duration::seconds(60))
            .await
            .unwrap()
    );
    // The cursor never goes back, even for the holder.
    assert!(
        !store
            .outbound_advance("hooks", b.epoch, Cursor { xid: 0, seq: 2 }, 0, None)
            .await
            .unwrap()
    );
    let progress = store.outbound_endpoints().await.unwrap();
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].cursor, moved);
    assert_eq!(progress[0].delivered, 5);
    assert_eq!(progress[0].lease_owner.as_deref(), Some("b"));
    assert!(
        store
            .outbound_delivery("hooks", Cursor { xid: 0, seq: 6 })
            .await
            .unwrap()
            .is_none()
    );
    store.outbound_release("hooks", "b", b.epoch).await.unwrap();
    assert!(
        store
            .outbound_acquire("hooks", "c", now, now)
            .await
            .unwrap()
            .is_some(),
        "a released head is free at once"
    );
}

async fn retry_rows(backend: &Backend) {
    let (first, second) = backend.pair().await;
    let now = Utc::now();
    first
        .outbound_register("hooks", "prod", true, Cursor::START, now)
        .await
        .unwrap();
    let head = first
        .outbound_acquire("hooks", "a", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .unwrap();
    let attempt = failed(3, 1, DeliveryState::Retry);
    assert!(
        first
            .outbound_fail("hooks", &Fence::Epoch(head.epoch), &attempt)
            .await
            .unwrap()
    );
    let row = first
        .outbound_delivery("hooks", attempt.position)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.payload, attempt.payload);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_status, Some(503));
    assert!(first.outbound_next_due("hooks").await.unwrap().unwrap() <= now);
    let claimed = first
        .outbound_claim_due("hooks", "x", now + Duration::seconds(60), now, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].webhook_id, "msg_3");
    assert!(
        second
            .outbound_claim_due("hooks", "y", now + Duration::seconds(60), now, 10)
            .await
            .unwrap()
            .is_empty(),
        "a leased row is not claimed twice"
    );
    // Only the claimant records the row's attempts.
    assert!(
        !second
            .outbound_fail(
                "hooks",
                &Fence::Owner("y".into()),
                &failed(3, 2, DeliveryState::Retry)
            )
            .await
            .unwrap()
    );
    assert!(
        !second
            .outbound_succeed("hooks", &Fence::Owner("y".into()), attempt.position, now)
            .await
            .unwrap()
    );
    let mut next = failed(3, 2, DeliveryState::Retry);
    next.next_attempt_at = Some(now + Duration::seconds(5));
    assert!(
        first
            .outbound_fail("hooks", &Fence::Owner("x".into()), &next)
            .await
            .unwrap()
    );
    assert!(
        second
            .outbound_claim_due("hooks", "y", now + Duration::seconds(60), now, 10)
            .await
            .unwrap()
            .is_empty(),
        "a row is claimed once it is due"
    );
    let later = now + Duration::seconds(6);
    let claimed = second
        .outbound_claim_due("hooks", "y", later + Duration::seconds(60), later, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 2);
    assert_eq!(claimed[0].payload, attempt.payload, "the payload is kept");
    // An instance that dies mid-attempt: its lease expires and another takes the row.
    let after_lease = later + Duration::seconds(61);
    let retaken = first
        .outbound_claim_due(
            "hooks",
            "x",
            after_lease + Duration::seconds(60),
            after_lease,
            10,
        )
        .await
        .unwrap();
    assert_eq!(retaken.len(), 1);
    assert!(
        first
            .outbound_succeed("hooks", &Fence::Owner("x".into()), attempt.position, now)
            .await
            .unwrap()
    );
    assert!(
        first
            .outbound_deliveries(None, false)
            .await
            .unwrap()
            .is_empty()
    );
    let progress = first.outbound_endpoints().await.unwrap();
    assert_eq!(progress[0].delivered, 1);
    assert!(progress[0].last_success_at.is_some());
    assert_eq!(progress[0].last_error.as_deref(), Some("HTTP 503: busy"));
}

async fn dead_letters(backend: &Backend) {
    let store = backend.open().await;
    let now = Utc::now();
    store
        .outbound_register("hooks", "prod", true, Cursor::START, now)
        .await
        .unwrap();
    let head = store
        .outbound_acquire("hooks", "a", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .unwrap();
    let fence = Fence::Epoch(head.epoch);
    for (seq, state) in [
        (1, DeliveryState::Dead),
        (2, DeliveryState::Retry),
        (4, DeliveryState::Dead),
    ] {
        assert!(
            store
                .outbound_fail("hooks", &fence, &failed(seq, 8, state))
                .await
                .unwrap()
        );
    }
    let all = store
        .outbound_deliveries(Some("hooks"), false)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let dead = store
        .outbound_deliveries(Some("hooks"), true)
        .await
        .unwrap();
    assert_eq!(
        dead.iter().map(|d| d.position.seq).collect::<Vec<_>>(),
        vec![1, 4]
    );
    assert!(dead.iter().all(|d| d.next_attempt_at.is_none()));
    assert!(
        store
            .outbound_deliveries(Some("other"), false)
            .await
            .unwrap()
            .is_empty()
    );
    let progress = store.outbound_endpoints().await.unwrap();
    assert_eq!((progress[0].retrying, progress[0].dead), (1, 2));
    // Dead rows are never claimed until redriven.
    let claimed = store
        .outbound_claim_due("hooks", "x", now + Duration::seconds(60), now, 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|d| d.position.seq).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(store.outbound_redrive_dead("hooks", now).await.unwrap(), 2);
    assert!(
        store
            .outbound_deliveries(None, true)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store
        .outbound_claim_due("hooks", "x", now + Duration::seconds(60), now, 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|d| d.position.seq).collect::<Vec<_>>(),
        vec![1, 4]
    );
    assert!(claimed.iter().all(|d| d.attempts == 0));
}

async fn redrive_since(backend: &Backend) {
    let store = backend.open().await;
    let now = Utc::now();
    let early = now - Duration::hours(2);
    let late = now - Duration::minutes(10);
    let mut positions = Vec::new();
    for (n, received) in [(0, early), (1, early), (2, late), (3, late)] {
        store
            .ingest(crate::support::ingest_at(
                "prod",
                vec![event(
                    &format!("m{n}"),
                    &format!("e{n}"),
                    Status::Delivered,
                    at(n, 0),
                    None,
                )],
                received,
            ))
            .await
            .unwrap();
    }
    let end = wait_for(&store, 4).await;
    for e in &end {
        positions.push(e.position);
    }
    store
        .outbound_register("hooks", "prod", true, Cursor::START, now)
        .await
        .unwrap();
    let head = store
        .outbound_acquire("hooks", "a", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .outbound_advance("hooks", head.epoch, positions[3], 4, Some(now))
            .await
            .unwrap()
    );
    let mut dead = failed(positions[3].seq, 8, DeliveryState::Dead);
    dead.position = positions[3];
    let mut old_dead = failed(positions[0].seq, 8, DeliveryState::Dead);
    old_dead.position = positions[0];
    for row in [&dead, &old_dead] {
        assert!(
            store
                .outbound_fail("hooks", &Fence::Epoch(head.epoch), row)
                .await
                .unwrap()
        );
    }
    let rewound = store
        .outbound_redrive_since("hooks", now - Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert!(
        rewound < positions[2] && rewound >= positions[1],
        "{rewound:?}"
    );
    // The holder is fenced off and the rows the head delivers again are gone.
    assert!(
        !store
            .outbound_advance("hooks", head.epoch, positions[3], 0, None)
            .await
            .unwrap()
    );
    let rows = store.outbound_deliveries(None, false).await.unwrap();
    assert_eq!(
        rows.iter().map(|d| d.position).collect::<Vec<_>>(),
        vec![positions[0]]
    );
    let again = store
        .outbound_acquire("hooks", "a", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.cursor, rewound);
    // Never forward: a later time leaves the cursor where it is.
    let same = store
        .outbound_redrive_since("hooks", now + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(same, Some(rewound));
    assert!(
        store
            .outbound_redrive_since("nope", now)
            .await
            .unwrap()
            .is_none()
    );
}

/// Waits until `n` events of `prod` are visible, and returns them.
async fn wait_for(store: &tidings_store::Store, n: usize) -> Vec<tidings_store::StoredEvent> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = store
            .read_events(&EventQuery::new("prod", Cursor::START, 100))
            .await
            .unwrap();
        if page.events.len() >= n || std::time::Instant::now() > deadline {
            return page.events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn lag(backend: &Backend) {
    let store = backend.open().await;
    for n in 0..3 {
        store
            .ingest(ingest(
                "prod",
                vec![event(
                    &format!("m{n}"),
                    &format!("e{n}"),
                    Status::Sent,
                    at(n, 0),
                    None,
                )],
            ))
            .await
            .unwrap();
    }
    store
        .ingest(ingest(
            "other",
            vec![event("x", "x", Status::Sent, at(0, 0), None)],
        ))
        .await
        .unwrap();
    let events = wait_for(&store, 3).await;
    let lag = store.outbound_lag("prod", Cursor::START).await.unwrap();
    assert_eq!(lag.events, 3);
    assert!(lag.oldest_received_at.is_some());
    let lag = store
        .outbound_lag("prod", events[0].position)
        .await
        .unwrap();
    assert_eq!(lag.events, 2);
    let none = store
        .outbound_lag("prod", events[2].position)
        .await
        .unwrap();
    assert_eq!(none.events, 0);
    assert!(none.oldest_received_at.is_none());
    let found = store.event_at(events[1].position).await.unwrap().unwrap();
    assert_eq!(found.dedup_key, events[1].dedup_key);
    assert!(
        store
            .event_at(Cursor {
                xid: 0,
                seq: 1_000_000
            })
            .await
            .unwrap()
            .is_none()
    );
}

async fn concurrent_claims(backend: &Backend) {
    let (first, second) = backend.pair().await;
    let now = Utc::now();
    first
        .outbound_register("hooks", "prod", true, Cursor::START, now)
        .await
        .unwrap();
    let head = first
        .outbound_acquire("hooks", "a", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .unwrap();
    for seq in 1..=200 {
        assert!(
            first
                .outbound_fail(
                    "hooks",
                    &Fence::Epoch(head.epoch),
                    &failed(seq, 1, DeliveryState::Retry)
                )
                .await
                .unwrap()
        );
    }
    // Every row is due by then, however long writing them took.
    let now = Utc::now() + Duration::minutes(1);
    let mut tasks = Vec::new();
    for (n, store) in [first.clone(), second.clone(), first, second]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let owner = format!("instance-{n}");
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .outbound_claim_due("hooks", &owner, now + Duration::seconds(60), now, 7)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|d| d.position.seq));
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for task in tasks {
        let mine = task.await.unwrap();
        total += mine.len();
        seen.extend(mine);
    }
    assert_eq!(total, 200, "each row claimed exactly once");
    assert_eq!(seen.len(), 200);
}

async fn retention(backend: &Backend) {
    let store = backend.open().await;
    let old = Utc::now() - Duration::days(40);
    for n in 0..3 {
        let mut request = crate::support::ingest_at(
            "prod",
            vec![event(
                &format!("m{n}"),
                &format!("r{n}"),
                Status::Sent,
                at(n, 0),
                None,
            )],
            old,
        );
        // The event's row is a slice of its request's body, which is then kept with the event.
        request.body = format!("[{{\"dedup\":\"r{n}\"}}]").into_bytes();
        store.ingest(request).await.unwrap();
    }
    store
        .ingest(crate::support::ingest_at(
            "other",
            vec![event("x", "rx", Status::Sent, at(0, 0), None)],
            old,
        ))
        .await
        .unwrap();
    let events = wait_for(&store, 3).await;
    let now = Utc::now();
    store
        .outbound_register("hooks", "prod", true, Cursor::START, now)
        .await
        .unwrap();
    let cutoff = now - Duration::days(30);
    // Only the other environment's event goes: the endpoint has had none of prod's, and their
    // requests stay, since their rows are read from them.
    assert_eq!(store.prune(cutoff, 10).await.unwrap().events, 1);
    let kept = store.events(Some("prod"), None, 0, 10).await.unwrap();
    assert_eq!(kept.len(), 3);
    for (n, kept) in kept.iter().enumerate() {
        assert_eq!(
            kept.event.body.row.as_deref(),
            Some(format!("{{\"dedup\":\"r{n}\"}}").as_str())
        );
    }
    let head = store
        .outbound_acquire("hooks", "a", now + Duration::seconds(30), now)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .outbound_advance("hooks", head.epoch, events[0].position, 1, Some(now))
            .await
            .unwrap()
    );
    assert_eq!(store.prune(cutoff, 10).await.unwrap().events, 1);
    // A disabled endpoint holds nothing back.
    store
        .outbound_register("hooks", "prod", false, Cursor::START, now)
        .await
        .unwrap();
    assert_eq!(store.prune(cutoff, 10).await.unwrap().events, 2);
    assert_eq!(store.raw_request_count().await.unwrap(), 0);
}
