//! The suppression list, on every backend: what suppresses and what lifts, the cause kept with
//! each entry, manual records, and the same list whatever the order, the repetition and the
//! number of instances ingesting at once.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use tidings_core::Channel;
use tidings_core::suppression::{Fact, Kind, Policy, Reason, Signal, classify, evaluate, fact_key};
use tidings_core::{Event, Failure, Status};
use tidings_store::{ManualRecord, Store, Suppression, SuppressionQuery};

use crate::conformance;
use crate::support::{Backend, Rng, at, event, ingest};

fn to(recipient: &str, mut event: Event) -> Event {
    event.recipient = Some(recipient.to_owned());
    event
}

/// A request that feeds the list (it was authenticated).
async fn send(store: &Store, env: &str, events: Vec<Event>) {
    let mut request = ingest(env, events);
    request.feeds_suppressions = true;
    store.ingest(request).await.unwrap();
}

/// The entry as of a day after the test events' times (they are from 2023: their temporary
/// suppressions have lapsed by today's date).
async fn entry(store: &Store, env: &str, recipient: &str) -> Option<Suppression> {
    store
        .suppression(env, recipient, at(86_400, 0))
        .await
        .unwrap()
}

async fn all(store: &Store, env: &str, now: DateTime<Utc>) -> Vec<Suppression> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .suppressions(&SuppressionQuery {
                environment_id: env.to_owned(),
                after: after.clone(),
                limit: 3,
                reason: None,
                channel: None,
                since: None,
                now,
            })
            .await
            .unwrap();
        out.extend(page.data);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

async fn what_suppresses_and_what_lifts(backend: &Backend) {
    let store = backend.open().await;
    let env = "prod";
    let mut bounce = to(
        "Hard <Hard@Example.com>",
        event(
            "m-hard",
            "hard",
            Status::Bounced,
            at(100, 0),
            Some(Failure::Permanent),
        ),
    );
    bounce.code = Some("5.1.1".into());
    bounce.body.response = Some("550 5.1.1 user unknown".into());
    send(
        &store,
        env,
        vec![
            bounce,
            to(
                "complains@example.com",
                event("m-spam", "spam", Status::Complaint, at(50, 0), None),
            ),
            to(
                "gone@example.com",
                event("m-unsub", "unsub", Status::Unsubscribed, at(60, 0), None),
            ),
            // A delivery older than the bounce lifts nothing.
            to(
                "hard@example.com",
                event("m-old", "old-delivery", Status::Delivered, at(10, 0), None),
            ),
            // Deferrals are the provider's own retries: they never count.
            to(
                "slow@example.com",
                event("m-d", "deferred", Status::Deferred, at(1, 0), None),
            ),
        ],
    )
    .await;
    let hard = entry(&store, env, "hard@example.com").await.unwrap();
    assert_eq!(hard.reason, Reason::PermanentFailure);
    assert_eq!(hard.channel, Channel::Email);
    assert_eq!(hard.first_at, at(100, 0));
    assert_eq!(hard.cause.kind, Kind::PermanentFailure);
    assert_eq!(hard.cause.code.as_deref(), Some("5.1.1"));
    assert_eq!(
        hard.cause.response.as_deref(),
        Some("550 5.1.1 user unknown")
    );
    assert_eq!(hard.cause.message_id.as_deref(), Some("m-hard"));
    assert_eq!(hard.cause.integration.as_deref(), Some("sendgrid"));
    let stored = store
        .events(Some(env), Some("m-hard"), 0, 10)
        .await
        .unwrap();
    assert_eq!(hard.cause.event_seq, Some(stored[0].seq));
    assert_eq!(
        entry(&store, env, "complains@example.com")
            .await
            .unwrap()
            .reason,
        Reason::Complaint
    );
    assert_eq!(
        entry(&store, env, "gone@example.com").await.unwrap().reason,
        Reason::Unsubscribed
    );
    assert!(entry(&store, env, "slow@example.com").await.is_none());
    // Another environment sees none of it.
    assert!(entry(&store, "staging", "hard@example.com").await.is_none());

    // Temporary failures: two within the window do not suppress, the third does.
    let soft = |n: i64| {
        to(
            "soft@example.com",
            event(
                &format!("m-soft-{n}"),
                &format!("soft-{n}"),
                Status::Bounced,
                at(n * 3600, 0),
                Some(Failure::Temporary),
            ),
        )
    };
    send(&store, env, vec![soft(1), soft(2)]).await;
    assert!(entry(&store, env, "soft@example.com").await.is_none());
    // A replay of the same two adds nothing.
    send(&store, env, vec![soft(2), soft(1)]).await;
    assert!(entry(&store, env, "soft@example.com").await.is_none());
    send(&store, env, vec![soft(3)]).await;
    let suppressed = entry(&store, env, "soft@example.com").await.unwrap();
    assert_eq!(suppressed.reason, Reason::TemporaryFailures);
    assert_eq!(suppressed.temporary_failures, 3);
    assert_eq!(suppressed.cause.message_id.as_deref(), Some("m-soft-1"));
    assert_eq!(
        suppressed.expires_at,
        Some(at(3 * 3600, 0) + Policy::default().temporary_expiry)
    );
    // A delivery older than the failures changes nothing; a later one lifts it.
    send(
        &store,
        env,
        vec![to(
            "soft@example.com",
            event("m-d1", "d1", Status::Delivered, at(0, 0), None),
        )],
    )
    .await;
    assert!(entry(&store, env, "soft@example.com").await.is_some());
    send(
        &store,
        env,
        vec![to(
            "soft@example.com",
            event("m-d2", "d2", Status::Delivered, at(4 * 3600, 0), None),
        )],
    )
    .await;
    assert!(entry(&store, env, "soft@example.com").await.is_none());
    // Failures after the delivery count afresh: a late one from before it does not.
    send(&store, env, vec![soft(5), soft(6)]).await;
    assert!(entry(&store, env, "soft@example.com").await.is_none());
    send(&store, env, vec![soft(7)]).await;
    assert!(entry(&store, env, "soft@example.com").await.is_some());

    // A temporary suppression lapses; permanent ones never do.
    let later = at(7 * 3600, 0) + Policy::default().temporary_expiry + Duration::seconds(1);
    let listed: Vec<String> = all(&store, env, later)
        .await
        .into_iter()
        .map(|s| s.recipient)
        .collect();
    assert_eq!(
        listed,
        [
            "complains@example.com",
            "gone@example.com",
            "hard@example.com"
        ]
    );
    let now: Vec<String> = all(&store, env, at(8 * 3600, 0))
        .await
        .into_iter()
        .map(|s| s.recipient)
        .collect();
    assert_eq!(
        now,
        [
            "complains@example.com",
            "gone@example.com",
            "hard@example.com",
            "soft@example.com"
        ]
    );
}

async fn unauthenticated_requests_feed_nothing(backend: &Backend) {
    let store = backend.open().await;
    let request = ingest(
        "prod",
        vec![to(
            "victim@example.com",
            event("m", "forged", Status::Complaint, at(0, 0), None),
        )],
    );
    assert!(!request.feeds_suppressions);
    store.ingest(request).await.unwrap();
    assert!(entry(&store, "prod", "victim@example.com").await.is_none());
    assert!(
        store
            .suppression_history("prod", "victim@example.com")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn manual_records_add_and_lift(backend: &Backend) {
    let store = backend.open().await;
    let env = "prod";
    let now = Utc::now();
    let manual = |kind: Kind, note: &str| ManualRecord {
        environment_id: env.into(),
        recipient: "+447700900000".into(),
        channel: Channel::Sms,
        kind,
        at: Utc::now(),
        note: Some(note.into()),
    };
    store
        .record_suppression(manual(Kind::Manual, "asked by phone"))
        .await
        .unwrap();
    let added = entry(&store, env, "+447700900000").await.unwrap();
    assert_eq!(added.reason, Reason::Manual);
    assert_eq!(added.cause.note.as_deref(), Some("asked by phone"));
    assert_eq!(added.cause.event_seq, None);
    store
        .record_suppression(manual(Kind::Removed, "wrong number"))
        .await
        .unwrap();
    assert!(entry(&store, env, "+447700900000").await.is_none());
    // A failure from before the removal does not suppress again; a later one does.
    let failure = |key: &str, date| {
        to(
            "447700900000",
            event(
                key,
                key,
                Status::Undelivered,
                date,
                Some(Failure::Permanent),
            ),
        )
    };
    send(
        &store,
        env,
        vec![failure("before", now - Duration::minutes(5))],
    )
    .await;
    assert!(entry(&store, env, "+447700900000").await.is_none());
    send(
        &store,
        env,
        vec![failure("after", Utc::now() + Duration::minutes(5))],
    )
    .await;
    let again = entry(&store, env, "+447700900000").await.unwrap();
    assert_eq!(again.reason, Reason::PermanentFailure);
    assert_eq!(again.cause.message_id.as_deref(), Some("after"));
    let history: Vec<Kind> = store
        .suppression_history(env, "+447700900000")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        history,
        [
            Kind::PermanentFailure,
            Kind::PermanentFailure,
            Kind::Removed,
            Kind::Manual
        ]
    );
}

const RECIPIENTS: [&str; 5] = [
    "a@example.com",
    "b@example.com",
    "c@example.com",
    "d@example.com",
    "e@example.com",
];

/// Random facts and deliveries for a few recipients: the seed events (one temporary failure per
/// recipient, earliest of all, so every recipient has a row before any delivery) and the rest.
fn scenario(seed: u64) -> (Vec<Event>, Vec<Event>) {
    let mut rng = Rng::new(seed);
    let first: Vec<Event> = RECIPIENTS
        .iter()
        .map(|r| {
            to(
                r,
                event(
                    &format!("seed-{r}"),
                    &format!("seed-{r}"),
                    Status::Failed,
                    at(0, 0),
                    Some(Failure::Temporary),
                ),
            )
        })
        .collect();
    let kinds: [(Status, Option<Failure>); 6] = [
        (Status::Bounced, Some(Failure::Temporary)),
        (Status::Bounced, Some(Failure::Temporary)),
        (Status::Delivered, None),
        (Status::Delivered, None),
        (Status::Bounced, Some(Failure::Permanent)),
        (Status::Complaint, None),
    ];
    let mut rest = Vec::new();
    for n in 0..40 {
        let recipient = RECIPIENTS[rng.below(RECIPIENTS.len())];
        // Rare permanent ones, so that thresholds and resets are exercised too.
        let (status, failure) = kinds[if rng.below(6) == 0 {
            4 + rng.below(2)
        } else {
            rng.below(4)
        }];
        let date = at(86_400 + rng.below(10) as i64 * 86_400, 0);
        let key = format!("e{seed}-{n}");
        rest.push(to(recipient, event(&key, &key, status, date, failure)));
    }
    (first, rest)
}

/// The entries the core fold gives for these events: (recipient, reason, cause message).
fn expected(events: &[Event]) -> BTreeMap<String, (Reason, String)> {
    let policy = Policy::default();
    let mut out = BTreeMap::new();
    for recipient in RECIPIENTS {
        let mine: Vec<&Event> = events
            .iter()
            .filter(|e| e.recipient.as_deref() == Some(recipient))
            .collect();
        let mut keys = Vec::new();
        let mut delivered = None;
        for e in &mine {
            match classify(e) {
                Some(Signal::Fact(kind)) => keys.push((
                    kind,
                    e.body.date,
                    fact_key(kind, &e.dedup_key, "sendgrid", &e.id),
                )),
                Some(Signal::Delivered) => delivered = delivered.max(Some(e.body.date)),
                None => {}
            }
        }
        let facts: Vec<Fact<'_>> = keys
            .iter()
            .map(|(kind, at, key)| Fact {
                kind: *kind,
                at: *at,
                key,
            })
            .collect();
        let verdict = evaluate(
            &facts,
            delivered,
            policy.threshold(Channel::Email),
            Duration::days(365 * 1000),
        );
        if let Some(v) = verdict {
            let key = facts[v.cause].key;
            let cause = key
                .trim_start_matches("test:")
                .trim_start_matches("message:sendgrid:")
                .to_owned();
            out.insert(recipient.to_owned(), (v.reason, cause));
        }
    }
    out
}

async fn listed(store: &Store, env: &str) -> BTreeMap<String, (Reason, String)> {
    // Long ago: nothing has lapsed, so the comparison is about the fold alone.
    all(store, env, at(0, 0))
        .await
        .into_iter()
        .map(|s| (s.recipient, (s.reason, s.cause.message_id.unwrap())))
        .collect()
}

/// Any order, any repetition, several instances at once: the same list, equal to the core fold.
async fn order_replay_and_instances_do_not_matter(backend: &Backend) {
    let (one, two) = backend.pair().await;
    let mut reasons = std::collections::BTreeSet::new();
    for seed in 1..=4 {
        let env = format!("env-{seed}");
        let (first, rest) = scenario(seed);
        let mut all_events = first.clone();
        all_events.extend(rest.iter().cloned());
        let want = expected(&all_events);
        reasons.extend(want.values().map(|(reason, _)| *reason));
        send(&one, &env, first.clone()).await;
        // Each event once or twice, shuffled, in requests of one to three, alternately sent
        // to both instances, several at once.
        let mut rng = Rng::new(seed * 7);
        let mut deliveries = rest.clone();
        for e in &rest {
            if rng.below(3) == 0 {
                deliveries.push(e.clone());
            }
        }
        rng.shuffle(&mut deliveries);
        let mut tasks = Vec::new();
        for (i, chunk) in deliveries.chunks(1 + rng.below(3)).enumerate() {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let (env, chunk) = (env.clone(), chunk.to_vec());
            tasks.push(tokio::spawn(async move { send(&store, &env, chunk).await }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(listed(&one, &env).await, want, "seed {seed}");
        assert_eq!(listed(&two, &env).await, want, "seed {seed}");
        // Replaying everything in reverse changes nothing.
        let mut reversed = all_events.clone();
        reversed.reverse();
        send(&two, &env, reversed).await;
        assert_eq!(listed(&one, &env).await, want, "seed {seed} replayed");
    }
    // The scenarios exercise thresholds and immediate suppressions alike.
    assert!(reasons.contains(&Reason::TemporaryFailures), "{reasons:?}");
    assert!(reasons.len() >= 2, "{reasons:?}");
}

async fn lists_filter_and_page(backend: &Backend) {
    let store = backend.open().await;
    let env = "prod";
    let mut events = Vec::new();
    for n in 0..7 {
        let status = if n % 2 == 0 {
            Status::Complaint
        } else {
            Status::Unsubscribed
        };
        events.push(to(
            &format!("user{n}@example.com"),
            event(&format!("m{n}"), &format!("k{n}"), status, at(n, 0), None),
        ));
    }
    send(&store, env, events).await;
    let complaints = store
        .suppressions(&SuppressionQuery {
            environment_id: env.into(),
            after: None,
            limit: 100,
            reason: Some(Reason::Complaint),
            channel: Some(Channel::Email),
            since: Some(at(2, 0)),
            now: Utc::now(),
        })
        .await
        .unwrap();
    let names: Vec<&str> = complaints
        .data
        .iter()
        .map(|s| s.recipient.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "user2@example.com",
            "user4@example.com",
            "user6@example.com"
        ]
    );
    assert_eq!(complaints.next, None);
    let sms = store
        .suppressions(&SuppressionQuery {
            environment_id: env.into(),
            after: None,
            limit: 100,
            reason: None,
            channel: Some(Channel::Sms),
            since: None,
            now: Utc::now(),
        })
        .await
        .unwrap();
    assert!(sms.data.is_empty());
    assert_eq!(all(&store, env, Utc::now()).await.len(), 7);
}

async fn outlive_event_retention(backend: &Backend) {
    let store = backend.open().await;
    send(
        &store,
        "prod",
        vec![to(
            "kept@example.com",
            event("m-kept", "kept", Status::Complaint, at(0, 0), None),
        )],
    )
    .await;
    let before = entry(&store, "prod", "kept@example.com").await.unwrap();
    let pruned = store
        .prune(Utc::now() + Duration::days(1), 100)
        .await
        .unwrap();
    assert_eq!(pruned.events, 1);
    assert!(store.events(None, None, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        entry(&store, "prod", "kept@example.com").await,
        Some(before)
    );
}

conformance! {
    suppressions_outlive_event_retention => outlive_event_retention,
    suppressions_what_suppresses_and_what_lifts => what_suppresses_and_what_lifts,
    suppressions_unauthenticated_requests_feed_nothing => unauthenticated_requests_feed_nothing,
    suppressions_manual_records_add_and_lift => manual_records_add_and_lift,
    suppressions_order_replay_and_instances_do_not_matter => order_replay_and_instances_do_not_matter,
    suppressions_lists_filter_and_page => lists_filter_and_page,
}
