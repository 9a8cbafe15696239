//! Opening an existing store to read it: nothing created, nothing migrated, writes refused; and
//! the lock that keeps a second server off a SQLite file.

use tidings_core::Status;
use tidings_store::{Error, Store, StoreLock};

use crate::conformance;
use crate::support::{Backend, at, event, ingest, options};

async fn a_missing_store_is_not_created(backend: &Backend) {
    let error = Store::open_existing(&backend.url(), &options())
        .await
        .err()
        .expect("no store yet");
    assert!(matches!(error, Error::NoStore { .. }), "{error}");
    // Still nothing: the next attempt finds nothing either, and so does a file check.
    if let Backend::Sqlite(dir) = backend {
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
    assert!(matches!(
        Store::open_existing(&backend.url(), &options()).await,
        Err(Error::NoStore { .. })
    ));
    // The server's open creates and migrates it; then it can be read.
    let store = backend.open().await;
    store
        .ingest(ingest(
            "env",
            vec![event("m1", "a", Status::Delivered, at(10, 0), None)],
        ))
        .await
        .unwrap();
    let reader = Store::open_existing(&backend.url(), &options())
        .await
        .unwrap();
    assert_eq!(reader.events(None, None, 0, 10).await.unwrap().len(), 1);
    assert_eq!(reader.messages(None, None).await.unwrap().len(), 1);
    // A reader does not write.
    let refused = reader
        .ingest(ingest(
            "env",
            vec![event("m2", "b", Status::Sent, at(11, 0), None)],
        ))
        .await;
    assert!(matches!(refused, Err(Error::Unavailable)), "{refused:?}");
    assert_eq!(store.events(None, None, 0, 10).await.unwrap().len(), 1);
}

conformance! {
    a_missing_store_is_not_created_and_an_existing_one_is_read => a_missing_store_is_not_created,
}

#[test]
fn one_process_holds_the_lock_of_a_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data").join("t.db");
    let lock = StoreLock::acquire(&db).unwrap();
    assert_eq!(
        std::fs::read_to_string(lock.path()).unwrap().trim(),
        std::process::id().to_string()
    );
    // flock locks belong to the open file: a second open, even in this process, is refused.
    let error = StoreLock::acquire(&db).unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("in use by process {}", std::process::id())),
        "{error}"
    );
    drop(lock);
    let again = StoreLock::acquire(&db).unwrap();
    drop(again);
}
