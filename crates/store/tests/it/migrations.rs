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
