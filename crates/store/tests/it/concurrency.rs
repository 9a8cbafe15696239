//! Two handles (for PostgreSQL: two instances) ingesting the same deliveries at once end in the
//! state one instance reaches alone.

use tidings_store::{Store, StoreOptions};

use crate::conformance;
use crate::fold::{assert_folded, deliveries, send};
use crate::support::Backend;

async fn two_handles_match_one(backend: &Backend) {
    let (facts, events) = deliveries(42, 25);

    let reference_dir = tempfile::tempdir().unwrap();
    let reference = Store::open(
        &format!("sqlite://{}", reference_dir.path().join("one.db").display()),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    send(std::slice::from_ref(&reference), "env", &events, 1, 1).await;

    let (a, b) = backend.pair().await;
    // Every delivery goes to both instances, concurrently: each event is raced twice.
    let both = [a.clone(), b.clone()];
    let reversed = [b.clone(), a.clone()];
    tokio::join!(
        send(&both, "env", &events, 2, 6),
        send(&reversed, "env", &events, 3, 6),
    );

    assert_folded(&a, "env", &facts).await;
    let expected = reference.messages(Some("env"), None).await.unwrap();
    for store in [&a, &b] {
        let got = store.messages(Some("env"), None).await.unwrap();
        let got: Vec<_> = got.iter().map(|m| (&m.id, &m.state, m.events)).collect();
        let want: Vec<_> = expected
            .iter()
            .map(|m| (&m.id, &m.state, m.events))
            .collect();
        assert_eq!(got, want);
    }
    // Every event once; the duplicates counted are every delivery beyond the first, twice over.
    let stored = a.events(Some("env"), None, 0, 10_000).await.unwrap();
    let distinct: usize = facts.values().map(Vec::len).sum();
    assert_eq!(stored.len(), distinct);
    let duplicates: i64 = stored.iter().map(|e| e.duplicates).sum();
    assert_eq!(duplicates as usize, 2 * events.len() - distinct);
    let mut keys: Vec<_> = stored.iter().map(|e| e.dedup_key.clone()).collect();
    keys.dedup();
    assert_eq!(keys.len(), distinct);
}

conformance! {
    concurrent_ingests_from_two_handles_end_as_one => two_handles_match_one,
}
