//! One server per SQLite database: `serve` holds an exclusive advisory lock (flock) on a file
//! beside the database, holding its PID, for as long as it runs. A second server on the same
//! file fails at start and names the holder. Readers take no lock (SQLite's own locking lets
//! them read while the server writes); SQLite's exclusive locking mode is not used because it
//! would lock them out.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The held lock. Dropping it (or the process ending, however it ends) releases it.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    path: PathBuf,
}

impl StoreLock {
    /// The lock file beside `database`: `<database>.lock`.
    pub fn path_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock for `database` (whose directory must exist) and writes this process's
    /// PID into it; [`Error::Locked`] with the holder's PID when another process has it.
    pub fn acquire(database: &Path) -> Result<StoreLock> {
        super::files::create_private(database)?;
        let path = StoreLock::path_for(database);
        let failed = |e: std::io::Error| Error::Open {
            path: path.display().to_string(),
            reason: format!("cannot take the lock file: {e}"),
        };
        // Not truncated on open: until the lock is ours, the file holds the holder's PID.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Locked {
                    path: database.display().to_string(),
                    holder: if holder.is_empty() {
                        "another process".into()
                    } else {
                        format!("process {holder}")
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(failed(e)),
        }
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        file.sync_data().map_err(failed)?;
        Ok(StoreLock { _file: file, path })
    }

    /// Where the lock file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
