//! The store's files are private: a new data directory is created 0700 and a new database file
//! 0600 (SQLite gives its `-wal` and `-shm` files the database file's mode), so raw requests,
//! which hold recipients and provider payloads, are readable by the service's user only.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

use crate::{Error, Result};

/// Creates the database's missing parent directories (0700) and the database file itself (0600,
/// empty: SQLite takes an empty file as a new database). Existing ones are left as they are.
pub(crate) fn create_private(path: &Path) -> Result<()> {
    let failed = |e: std::io::Error| Error::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(failed)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    Ok(())
}
