//! Opening a SQLite store that must already exist, for the commands that only read it: no file,
//! directory or table is created and no migration runs, so a read in the wrong directory says
//! so instead of leaving an empty store behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use super::{MIGRATIONS, ReaderPool, SqliteStore};
use crate::{CommitStats, Error, Result};

impl SqliteStore {
    /// Opens an existing, fully migrated database read-only. A missing file (or one no Tidings
    /// server has set up) is [`Error::NoStore`]; a schema older or newer than this build's is
    /// an error rather than a migration. Writes through the returned store answer
    /// [`Error::Unavailable`]. Works while a server has the database open.
    pub fn open_existing(path: &Path) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(Error::NoStore {
                path: shown,
                reason: "the file does not exist".into(),
            });
        }
        let conn = open_read_only(path)?;
        let version: usize = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| Error::Open {
                path: shown.clone(),
                reason: format!("not a readable SQLite database ({e})"),
            })?;
        check_version(&shown, version, MIGRATIONS.len())?;
        // Everything committed so far is visible; a running server's later commits are too
        // through the administrator's reads (`events`, `messages`), which the commands use.
        let highest: i64 =
            conn.query_row("SELECT COALESCE(max(seq), 0) FROM events", [], |r| r.get(0))?;
        // No writer: the channel's receiver is dropped, so an ingest answers Unavailable.
        let (writer, _) = mpsc::channel(1);
        let reader = Arc::new(Mutex::new(conn));
        Ok(SqliteStore {
            writer,
            pruner: Arc::clone(&reader),
            reader,
            // The read API's pool starts with a read-only connection (and, used one read at a
            // time as the commands do, never opens another).
            readers: Arc::new(ReaderPool {
                path: path.to_path_buf(),
                synchronous_full: false,
                idle: Mutex::new(vec![open_read_only(path)?]),
            }),
            durable: Arc::new(tokio::sync::watch::Sender::new(highest)),
            stats: Arc::new(Mutex::new(CommitStats::default())),
            readiness: Arc::default(),
            claims: Arc::new(Mutex::new(BTreeMap::new())),
            claim_timeout: chrono::Duration::seconds(30),
            suppression_settings: Default::default(),
        })
    }
}

/// A read-only connection: SQLite never creates or changes the file. In WAL mode it still
/// shares the `-shm` index with a running server, so it sees every committed row.
fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Whether a store at schema `version` can be read by this build, which knows `known`.
pub(crate) fn check_version(path: &str, version: usize, known: usize) -> Result<()> {
    if version == 0 {
        Err(Error::NoStore {
            path: path.to_owned(),
            reason: "no Tidings tables in it (`tidings serve` creates them)".into(),
        })
    } else if version < known {
        Err(Error::Open {
            path: path.to_owned(),
            reason: format!(
                "its schema is version {version}, older than this build's {known}; start `tidings serve` once to upgrade it"
            ),
        })
    } else if version > known {
        Err(Error::Open {
            path: path.to_owned(),
            reason: format!(
                "its schema is version {version}, made by a newer Tidings than this one (which knows {known})"
            ),
        })
    } else {
        Ok(())
    }
}
