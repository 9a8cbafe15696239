//! The gap-free cursor: a reader that keeps passing `next` back sees every committed event once,
//! in order, with every filter, including events a transaction commits after later ones.

use std::collections::BTreeSet;

use tidings_core::{Failure, Status};
use tidings_store::{Cursor, EventQuery, MessageQuery, Store};

use crate::conformance;
use crate::support::{Backend, at, event, ingest};

/// Reads every page after `after` until `expected` events were seen and a page comes back
/// empty. On PostgreSQL the visible horizon is cluster-wide: a transaction of a test running
/// alongside can hold events back for a moment (never hide them), so the walk waits a little.
async fn walk(store: &Store, template: &EventQuery, expected: usize) -> (Vec<String>, Cursor) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut query = template.clone();
    let mut seen = Vec::new();
    loop {
        let page = store.read_events(&query).await.unwrap();
        assert!(page.next >= query.after, "the cursor never goes back");
        if page.events.is_empty() && page.next == query.after {
            if seen.len() >= expected || std::time::Instant::now() > deadline {
                return (seen, page.next);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        for event in &page.events {
            assert!(event.position > query.after);
            assert!(event.position <= page.next);
            seen.push(event.dedup_key.clone());
        }
        query.after = page.next;
    }
}

async fn every_event_once_in_order_with_filters(backend: &Backend) {
    let store = backend.open().await;
    let mut expected = Vec::new();
    for request in 0..50 {
        let events = (0..4)
            .map(|i| {
                let n = request * 4 + i;
                let status = [
                    Status::Sent,
                    Status::Delivered,
                    Status::Bounced,
                    Status::Opened,
                ][i];
                let mut e = event(
                    &format!("m{}", n % 7),
                    &format!("e{n}"),
                    status,
                    at(n as i64, 0),
                    None,
                );
                if status == Status::Bounced {
                    e.recipient = Some(format!("r{}@example.com", n % 3));
                }
                e
            })
            .collect::<Vec<_>>();
        expected.extend(events.iter().map(|e| e.dedup_key.clone()));
        store.ingest(ingest("env", events)).await.unwrap();
    }
    // Another environment is never visible.
    store
        .ingest(ingest(
            "other",
            vec![event("m0", "x", Status::Sent, at(0, 0), None)],
        ))
        .await
        .unwrap();

    let mut query = EventQuery::new("env", Cursor::START, 7);
    let (seen, end) = walk(&store, &query, expected.len()).await;
    assert_eq!(seen, expected, "every event once, in order");

    // Nothing new: the end position gives an empty page and never goes back. (On PostgreSQL it
    // may move forward: the transaction horizon advances with other sessions' transactions.)
    query.after = end;
    let page = store.read_events(&query).await.unwrap();
    assert!(page.events.is_empty());
    assert!(page.next >= end, "{:?} went back from {end:?}", page.next);
    // New events after the end are seen from it.
    store
        .ingest(ingest(
            "env",
            vec![event("m9", "late", Status::Sent, at(0, 0), None)],
        ))
        .await
        .unwrap();
    let (late, _) = walk(&store, &query, 1).await;
    assert_eq!(late, ["test:late"]);

    // Filters: status, message (sender's or provider's id), recipient, time window.
    let mut bounced = EventQuery::new("env", Cursor::START, 5);
    bounced.statuses = vec![Status::Bounced];
    let (seen, _) = walk(&store, &bounced, 50).await;
    assert_eq!(seen.len(), 50);
    let mut by_message = EventQuery::new("env", Cursor::START, 3);
    by_message.message = Some("ext-m3".into());
    let (seen, _) = walk(&store, &by_message, 0).await;
    let want: Vec<String> = (0..200)
        .filter(|n| n % 7 == 3)
        .map(|n| format!("test:e{n}"))
        .collect();
    assert_eq!(seen, want);
    by_message.message = Some("m3".into());
    assert_eq!(walk(&store, &by_message, 0).await.0, want);
    let mut by_recipient = EventQuery::new("env", Cursor::START, 4);
    by_recipient.recipient = Some("r1@example.com".into());
    let (seen, _) = walk(&store, &by_recipient, 0).await;
    assert!(!seen.is_empty());
    assert!(seen.len() < 50);
    let mut window = EventQuery::new("env", Cursor::START, 10);
    window.since = Some(at(10, 0));
    window.until = Some(at(20, 0));
    assert_eq!(walk(&store, &window, 0).await.0.len(), 10);
    let mut nothing = EventQuery::new("env", Cursor::START, 10);
    nothing.provider = Some("mailgun".into());
    assert!(walk(&store, &nothing, 0).await.0.is_empty());
    nothing.message = Some("unknown".into());
    nothing.provider = None;
    assert!(walk(&store, &nothing, 0).await.0.is_empty());
}

async fn messages_by_integration_and_last_change(backend: &Backend) {
    let store = backend.open().await;
    store
        .ingest(ingest(
            "env",
            vec![event("m1", "a", Status::Sent, at(0, 0), None)],
        ))
        .await
        .unwrap();
    // The same message id from another integration is another message.
    let mut push = ingest(
        "env",
        vec![event("m1", "b", Status::Clicked, at(1, 0), None)],
    );
    push.integration_id = "push-webhook".into();
    push.provider = "push-webhook".into();
    store.ingest(push).await.unwrap();
    store
        .ingest(ingest(
            "env",
            vec![event(
                "m2",
                "c",
                Status::Bounced,
                at(2, 0),
                Some(Failure::Permanent),
            )],
        ))
        .await
        .unwrap();

    let m1 = store
        .message("env", "sendgrid", "m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        m1.state.status,
        Status::Sent,
        "a push event never folds into SendGrid's message"
    );
    assert_eq!(m1.external_id.as_deref(), Some("ext-m1"));
    let by_provider_id = store
        .message("env", "sendgrid", "ext-m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_provider_id.id, "m1");
    assert!(
        store
            .message("env", "sendgrid", "nope")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .message("other", "sendgrid", "m1")
            .await
            .unwrap()
            .is_none()
    );
    let found = store.find_messages("env", "m1").await.unwrap();
    let integrations: BTreeSet<_> = found.iter().map(|m| m.integration_id.as_str()).collect();
    assert_eq!(integrations, BTreeSet::from(["push-webhook", "sendgrid"]));
    let timeline = store.timeline("env", "sendgrid", "m1").await.unwrap();
    assert_eq!(timeline.len(), 1);

    let mut query = MessageQuery {
        environment_id: "env".into(),
        limit: 10,
        statuses: vec![Status::Bounced],
        ..MessageQuery::default()
    };
    let page = list(&store, &query, 1).await;
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].id, "m2");
    query.after = page.next;
    assert!(
        store
            .list_messages(&query)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    // A message that changes again is listed again.
    store
        .ingest(ingest(
            "env",
            vec![event(
                "m2",
                "d",
                Status::Bounced,
                at(3, 0),
                Some(Failure::Permanent),
            )],
        ))
        .await
        .unwrap();
    let again = list(&store, &query, 1).await;
    assert_eq!(again.messages.len(), 1);
    assert_eq!(again.messages[0].events, 2);
}

/// Lists messages, waiting (as [`walk`] does) until at least `expected` are visible.
async fn list(store: &Store, query: &MessageQuery, expected: usize) -> tidings_store::MessagePage {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = store.list_messages(query).await.unwrap();
        if page.messages.len() >= expected || std::time::Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

conformance! {
    cursor_walk_sees_every_event_once_in_order_with_filters => every_event_once_in_order_with_filters,
    messages_belong_to_an_integration_and_are_listed_by_last_change => messages_by_integration_and_last_change,
}

/// On PostgreSQL sequence order is not commit order: an event inserted by a transaction that
/// commits late must still be seen, and nothing seen twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cursor_waits_for_a_transaction_still_open() {
    let Some(backend) = crate::support::postgres_backend().await else {
        return;
    };
    let store = backend.open().await;
    store
        .ingest(ingest(
            "env",
            vec![event("m", "first", Status::Sent, at(0, 0), None)],
        ))
        .await
        .unwrap();
    // A writer that takes its sequence number now and commits last.
    let (mut held, connection) = tokio_postgres::connect(&backend.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tx = held.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO events (environment_id, integration_id, provider, message_id, dedup_key,
           status, date, event, request_seq, received_at, dedup_time, row_at, row_length,
           row_text)
         SELECT environment_id, integration_id, provider, message_id, 'test:held', status, date,
           replace(event, 'test:first', 'test:held'), request_seq, received_at, dedup_time,
           row_at, row_length, row_text
         FROM events WHERE dedup_key = 'test:first'",
        &[],
    )
    .await
    .unwrap();
    for n in 0..5 {
        store
            .ingest(ingest(
                "env",
                vec![event(
                    "m",
                    &format!("after{n}"),
                    Status::Delivered,
                    at(1, 0),
                    None,
                )],
            ))
            .await
            .unwrap();
    }
    let query = EventQuery::new("env", Cursor::START, 100);
    let (before, stopped_at) = walk(&store, &query, 1).await;
    assert_eq!(
        before,
        ["test:first"],
        "nothing past the open transaction is handed out"
    );
    let mut held_back = query.clone();
    held_back.after = stopped_at;
    assert!(
        store
            .read_events(&held_back)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    tx.commit().await.unwrap();
    let mut rest = query.clone();
    rest.after = stopped_at;
    let (after, _) = walk(&store, &rest, 6).await;
    let mut all = before.clone();
    all.extend(after);
    let mut expected = vec!["test:first".to_owned(), "test:held".to_owned()];
    expected.extend((0..5).map(|n| format!("test:after{n}")));
    assert_eq!(
        all, expected,
        "the late commit is seen, in position order, and nothing twice"
    );
    backend.cleanup().await;
}
