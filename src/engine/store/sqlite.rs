//! The embedded store: one SQLite file in WAL mode (`synchronous = NORMAL`: a committed
//! transaction survives the process being killed; `busy_timeout` makes concurrent writers wait
//! instead of failing; foreign keys on).
//!
//! Write transactions begin with `BEGIN IMMEDIATE`, taking the write lock up front: a deferred
//! transaction that reads and then writes fails at once with `SQLITE_BUSY` when another
//! connection writes meanwhile, without waiting for the busy timeout. Writers are serialised, so
//! job claims are exclusive and sync-log ids are in commit order with no extra locking.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::api::{Backend, OpenOptions};
use super::error::StoreError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("store/migrations/sqlite");

/// How often opening a store tries the migrations again when another process ran them at the
/// same moment.
const MIGRATE_ATTEMPTS: u32 = 10;

/// Whether a failed migration is another process's migration of the same file at the same time.
fn concurrent_migration(e: &sqlx::migrate::MigrateError) -> bool {
    let text = e.to_string();
    text.contains("already exists")
        || text.contains("database is locked")
        || text.contains("UNIQUE constraint failed")
}

/// How long a writer waits for another writer's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A store in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    location: String,
}

impl SqliteStore {
    /// Opens (and unless `options.create` is off, creates) the store at `path`, then migrates it.
    pub async fn open(path: &Path, options: &OpenOptions) -> Result<SqliteStore, StoreError> {
        let location = path.display().to_string();
        let fail = |message: String| StoreError::Open {
            location: location.clone(),
            message,
        };
        if !options.create && !path.exists() {
            return Err(StoreError::Missing { location });
        }
        if options.create
            && let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                fail(format!(
                    "cannot create the directory `{}`: {e}",
                    parent.display()
                ))
            })?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(options.create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(4).max(1))
            .connect_with(connect)
            .await
            .map_err(|e| fail(e.to_string()))?;
        // Two processes opening a new file at once (a serve and a worker started together, a
        // command and `tandem log`) both see it unmigrated and race on the first migration: the
        // one that loses finds the table there and tries again, and then sees it applied.
        let mut attempt = 0u32;
        loop {
            match MIGRATOR.run(&pool).await {
                Ok(()) => break,
                Err(e) if attempt < MIGRATE_ATTEMPTS && concurrent_migration(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt)))
                        .await;
                }
                Err(e) => return Err(fail(format!("cannot migrate the schema: {e}"))),
            }
        }
        Ok(SqliteStore { pool, location })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Nothing to do: `BEGIN IMMEDIATE` already serialises writers.
    async fn lock_log(_conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// `$1` kinds (JSON array), `$2` owner, `$3` lease expiry, `$4` now.
    const CLAIM_NEXT: &'static str = concat!(
        claim_set!(),
        "WHERE id = (SELECT id FROM jobs WHERE ",
        claimable!(),
        " AND kind IN (SELECT value FROM json_each($1)) ORDER BY id LIMIT 1) AND ",
        claimable!(),
        " RETURNING ",
        job_columns!()
    );

    /// `$1` system, `$2` object, `$3` record id, `$4` field, `$5` value hash, `$6` now.
    const CONSUME_ECHO: &'static str = "DELETE FROM echoes WHERE id = (SELECT id FROM echoes \
         WHERE system = $1 AND object = $2 AND record_id = $3 AND field = $4 \
         AND value_hash = $5 AND expires_at > $6 ORDER BY id LIMIT 1) RETURNING id";
}

impl_store!(SqliteStore, Sqlite, SqliteConnection, Backend::Sqlite);
