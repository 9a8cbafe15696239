//! Re-parse: a request's freshly parsed events supersede what an older mapping stored, the
//! messages they touch are folded again from scratch, and applying the same events again
//! changes nothing.

use tidings_core::Status;
use tidings_store::{RawRequestFilter, Reparsed};

use crate::conformance;
use crate::support::{Backend, at, event, ingest};

async fn reparse_supersedes_and_refolds(backend: &Backend) {
    let store = backend.open().await;
    // An older mapping read this request as one wrong bounce and ignored the rest.
    let wrong = event("m1", "k-processed", Status::Bounced, at(10, 0), None);
    let first = store.ingest(ingest("env", vec![wrong])).await.unwrap();
    store
        .ingest(ingest(
            "env",
            vec![event("m9", "k-other", Status::Sent, at(5, 0), None)],
        ))
        .await
        .unwrap();
    let before = store
        .message("env", "sendgrid", "m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.state.status, Status::Bounced);

    let requests = store
        .raw_requests(
            &RawRequestFilter {
                environment_id: Some("env".into()),
                ..RawRequestFilter::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(requests.len(), 2);
    let request = &requests[0];
    assert_eq!(request.seq, first.request_seq);
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url.as_deref(),
        Some("/v2/inbound-webhooks/delivery-providers/env/sendgrid")
    );
    let old_position = store.events(Some("env"), Some("m1"), 0, 10).await.unwrap()[0].seq;

    // Today's parser: the same dedup key is a `sent`, and two events it used to ignore.
    let reparsed = Reparsed {
        request_seq: request.seq,
        environment_id: "env".into(),
        integration_id: "sendgrid".into(),
        provider: "sendgrid".into(),
        received_at: request.received_at,
        authentication: request.authentication.clone(),
        events: vec![
            event("m1", "k-processed", Status::Sent, at(10, 0), None),
            event("m1", "k-delivered", Status::Delivered, at(20, 0), None),
            event("m2", "k-open", Status::Opened, at(30, 0), None),
        ],
    };
    // A dry run says what would change and writes nothing.
    let dry = store.supersede(reparsed.clone(), true).await.unwrap();
    assert_eq!(dry.added, [Status::Delivered, Status::Opened]);
    assert_eq!(dry.replaced, [(Status::Bounced, Status::Sent)]);
    let still = store
        .message("env", "sendgrid", "m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.state.status, Status::Bounced);

    let applied = store.supersede(reparsed.clone(), false).await.unwrap();
    assert_eq!(applied, dry);
    assert_eq!(applied.refolded, 2);
    // Folded from scratch: the wrong bounce is gone, not outranked.
    let m1 = store
        .message("env", "sendgrid", "m1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m1.state.status, Status::Delivered);
    assert_eq!(m1.events, 2);
    assert!(!m1.state.first_at.contains_key(&Status::Bounced));
    let m2 = store
        .message("env", "sendgrid", "m2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m2.state.status, Status::Opened);
    // The changed event has a new position, after everything stored before.
    let events = store.events(Some("env"), Some("m1"), 0, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.seq > old_position));
    // The other message is untouched.
    let m9 = store
        .message("env", "sendgrid", "m9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m9.state.status, Status::Sent);

    // Again: nothing changes.
    let again = store.supersede(reparsed, false).await.unwrap();
    assert!(!again.changed(), "{again:?}");
    assert_eq!((again.unchanged, again.refolded), (3, 0));
    assert_eq!(
        store.events(Some("env"), None, 0, 10).await.unwrap().len(),
        4
    );
}

async fn raw_requests_filter_by_integration_and_time(backend: &Backend) {
    let store = backend.open().await;
    let old = crate::support::ingest_at("env", Vec::new(), at(0, 0));
    store.ingest(old).await.unwrap();
    let new = crate::support::ingest_at("env", Vec::new(), at(100, 0));
    let new_seq = store.ingest(new).await.unwrap().request_seq;
    let since = RawRequestFilter {
        since: Some(at(50, 0)),
        ..RawRequestFilter::default()
    };
    let found = store.raw_requests(&since, 0, 10).await.unwrap();
    assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), [new_seq]);
    let other = RawRequestFilter {
        integration_id: Some("other".into()),
        ..RawRequestFilter::default()
    };
    assert!(store.raw_requests(&other, 0, 10).await.unwrap().is_empty());
    // Paging: after the last seq there is nothing.
    assert!(
        store
            .raw_requests(&RawRequestFilter::default(), new_seq, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Events are keyed by their time and their dedup key: a parser fix that reads another time for
/// the same key still replaces the stored event (found among its message's events), and rows
/// that are slices of the request body read back whole, unchanged by a second run.
async fn reparse_follows_a_changed_time(backend: &Backend) {
    let store = backend.open().await;
    let mut old = event("m1", "k", Status::Sent, at(10, 0), None);
    old.body.row = Some(r#"{"k":1}"#.into());
    let mut request = ingest("env", vec![old]);
    request.body = br#"[{"k":1}]"#.to_vec();
    let first = store.ingest(request).await.unwrap();
    let stored = store
        .raw_requests(&RawRequestFilter::default(), 0, 10)
        .await
        .unwrap();
    let mut fixed = event("m1", "k", Status::Sent, at(5000, 0), None);
    fixed.body.row = Some(r#"{"k":1}"#.into());
    let reparsed = Reparsed {
        request_seq: first.request_seq,
        environment_id: "env".into(),
        integration_id: "sendgrid".into(),
        provider: "sendgrid".into(),
        received_at: stored[0].received_at,
        authentication: stored[0].authentication.clone(),
        events: vec![fixed.clone()],
    };
    let applied = store.supersede(reparsed.clone(), false).await.unwrap();
    assert_eq!(applied.replaced, [(Status::Sent, Status::Sent)]);
    assert!(applied.added.is_empty());
    let events = store.events(Some("env"), Some("m1"), 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, fixed);
    let again = store.supersede(reparsed, false).await.unwrap();
    assert_eq!((again.unchanged, again.changed()), (1, false));
}

conformance! {
    reparse_follows_a_changed_time_of_one_key => reparse_follows_a_changed_time,
    reparse_supersedes_and_refolds_messages => reparse_supersedes_and_refolds,
    reparse_raw_requests_filter_by_integration_and_time => raw_requests_filter_by_integration_and_time,
}
