//! Start-up failures that say what happened and what to check. `tokio_postgres::Error`'s own
//! text is only its kind (`db error`, `error connecting to server`); the cause is underneath.

use std::error::Error as _;

use tokio_postgres::error::SqlState;

/// The server's message (or the connection's cause) and, where the cause is a common set-up
/// mistake, what to check.
pub(crate) fn explain(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("PostgreSQL says: {}", db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        let hint = match db.code() {
            c if *c == SqlState::INVALID_CATALOG_NAME => {
                Some("create the database (`createdb <name>`) or fix its name in the store URL")
            }
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                Some(
                    "check the user and password in the store URL (or TIDINGS_DATABASE_URL) and pg_hba.conf",
                )
            }
            c if *c == SqlState::INSUFFICIENT_PRIVILEGE => Some(
                "the user must be allowed to create tables in the schema (GRANT CREATE ON SCHEMA ...)",
            ),
            c if *c == SqlState::TOO_MANY_CONNECTIONS => {
                Some("lower [store] pool_size or raise the server's max_connections")
            }
            _ => db.hint(),
        };
        if let Some(hint) = hint {
            text.push_str(&format!("; {hint}"));
        }
        return text;
    }
    // Connection-level failures: the kind, then each cause (`Connection refused`, a timeout,
    // a DNS failure).
    let mut text = err.to_string();
    let mut source = err.source();
    let mut refused = false;
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        refused |= cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        source = cause.source();
    }
    if refused {
        text.push_str(
            "; is PostgreSQL running, and listening on the host and port in the store URL?",
        );
    } else if err.is_closed() || text.contains("timed out") || text.contains("timeout") {
        text.push_str("; check that the host and port in the store URL are reachable from here");
    }
    text
}

/// [`explain`] for a pool's error.
pub(crate) fn explain_pool(err: &deadpool_postgres::PoolError) -> String {
    match err {
        deadpool_postgres::PoolError::Backend(e) => explain(e),
        other => other.to_string(),
    }
}
