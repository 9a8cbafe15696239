//! Opening a PostgreSQL store that must already exist, for the commands that only read it: no
//! table is created and no migration runs (a reader may run with a role that cannot create).

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio_postgres::NoTls;

use super::explain::{explain, explain_pool};
use super::{PgOptions, PgStore, migrations, open_error, redact};
use crate::{CommitStats, Error, Result};

impl PgStore {
    /// Connects to a database that a Tidings server has set up, read-only in effect: nothing
    /// is created or migrated. No Tidings tables in the schema is [`Error::NoStore`]; a schema
    /// version other than this build's is an error. Writes through the returned store answer
    /// [`Error::Unavailable`].
    pub async fn open_existing(options: PgOptions) -> Result<PgStore> {
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| open_error(&options.url, explain(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("tidings (read)");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(2)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| open_error(&options.url, e))?;
        let client = pool
            .get()
            .await
            .map_err(|e| open_error(&options.url, explain_pool(&e)))?;
        let row = client
            .query_one(
                "SELECT current_schema()::text, to_regclass('tidings_migrations') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| open_error(&options.url, explain(&e)))?;
        let schema: Option<String> = row.get(0);
        let exists: bool = row.get(1);
        if !exists {
            return Err(Error::NoStore {
                path: redact(&options.url),
                reason: format!(
                    "no Tidings tables in schema `{}` of this database (`tidings serve` creates them)",
                    schema.as_deref().unwrap_or("(none)")
                ),
            });
        }
        let version: i32 = client
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM tidings_migrations",
                &[],
            )
            .await
            .map_err(|e| open_error(&options.url, explain(&e)))?
            .get(0);
        drop(client);
        crate::sqlite::existing::check_version(
            &redact(&options.url),
            usize::try_from(version).unwrap_or(0),
            migrations().len(),
        )?;
        // No committer: the channel's receiver is dropped, so an ingest answers Unavailable.
        let (writer, _) = mpsc::channel(1);
        Ok(PgStore {
            // Read-only: one pool serves everything.
            readers: pool.clone(),
            pool,
            commits: Arc::new(tokio::sync::watch::Sender::new(0)),
            writer,
            stats: Arc::new(Mutex::new(CommitStats::default())),
            readiness: Arc::default(),
            claim_timeout: chrono::Duration::from_std(options.claim_timeout)
                .unwrap_or(chrono::Duration::seconds(30)),
            timeout: options.timeout,
            suppression_settings: Arc::new(options.suppressions.clone()),
        })
    }
}
