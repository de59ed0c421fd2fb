//! The scale-out store: PostgreSQL, same schema and behaviour as SQLite, shared by many
//! `tandem worker` processes.
//!
//! Workers claim jobs with `FOR UPDATE SKIP LOCKED`, so concurrent claimers skip each other's
//! rows instead of queueing behind them. A transaction that appends to the sync log first takes
//! `LOCK TABLE sync_log IN EXCLUSIVE MODE` (readers are not blocked): identity values are handed
//! out at insert time, not at commit, so without it a follower reading "entries after id N"
//! could pass over an entry that commits late with a smaller id.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Postgres, Transaction};

use super::api::{Backend, OpenOptions};
use super::error::StoreError;
use super::redact;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("store/migrations/postgres");

/// How long to wait for a connection from the pool (or for the server) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(15);

/// A store in a PostgreSQL database (optionally in one schema of it).
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    location: String,
}

/// The URL's password, when it has one, so that it can be kept out of messages.
fn register_password(url: &str) {
    if let Ok(parsed) = reqwest::Url::parse(url)
        && let Some(password) = parsed.password()
    {
        let decoded = percent_encoding::percent_decode_str(password).decode_utf8_lossy();
        redact::register_secret(&decoded);
        redact::register_secret(password);
    }
}

fn open_error(location: &str, message: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        location: location.to_string(),
        message: redact::scrub(&message.to_string()).into_owned(),
    }
}

/// A failure to connect: the server is down, unreachable or refuses us.
fn connect_error(location: &str, e: sqlx::Error) -> StoreError {
    StoreError::Connect {
        location: location.to_string(),
        message: redact::scrub(&e.to_string()).into_owned(),
    }
}

/// Whether `schema` is a plain lower-case SQL identifier (it is spliced into DDL).
fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63
}

impl PgStore {
    /// Connects to the database at `url` and migrates it (in the schema the connection's
    /// `search_path` selects, `public` by default).
    pub async fn open(url: &str, options: &OpenOptions) -> Result<PgStore, StoreError> {
        register_password(url);
        let location = redact::url_without_password(url);
        let connect: PgConnectOptions = url.parse().map_err(|e| open_error(&location, e))?;
        Self::connect(connect, location, options).await
    }

    /// Like [`PgStore::open`], with every table in `schema` (created when missing). Used by the
    /// tests (a fresh schema each) and by deployments that keep several stores in one database.
    pub async fn open_in_schema(
        url: &str,
        schema: &str,
        options: &OpenOptions,
    ) -> Result<PgStore, StoreError> {
        register_password(url);
        let location = format!("{} (schema `{schema}`)", redact::url_without_password(url));
        if !valid_schema(schema) {
            return Err(open_error(
                &location,
                format!("`{schema}` is not a valid schema name (a-z, 0-9, _)"),
            ));
        }
        let connect: PgConnectOptions = url.parse().map_err(|e| open_error(&location, e))?;
        let mut conn = PgConnection::connect_with(&connect)
            .await
            .map_err(|e| connect_error(&location, e))?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| open_error(&location, e))?;
        let _ = conn.close().await;
        let connect = connect.options([("search_path", schema)]);
        Self::connect(connect, location, options).await
    }

    /// Drops `schema` and everything in it.
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        let location = redact::url_without_password(url);
        if !valid_schema(schema) {
            return Err(open_error(
                &location,
                format!("`{schema}` is not a valid schema name"),
            ));
        }
        let connect: PgConnectOptions = url.parse().map_err(|e| open_error(&location, e))?;
        let mut conn = PgConnection::connect_with(&connect)
            .await
            .map_err(|e| connect_error(&location, e))?;
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&mut conn)
        .await
        .map_err(|source| StoreError::Query {
            op: "dropping a schema",
            source,
        })?;
        let _ = conn.close().await;
        Ok(())
    }

    async fn connect(
        connect: PgConnectOptions,
        location: String,
        options: &OpenOptions,
    ) -> Result<PgStore, StoreError> {
        let connect = connect.application_name("tandem");
        // One direct attempt first: the pool would retry until its acquire timeout, and a
        // server that is down or refuses the credentials should be reported at once.
        let probe = PgConnection::connect_with(&connect)
            .await
            .map_err(|e| connect_error(&location, e))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(8).max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(connect)
            .await
            .map_err(|e| connect_error(&location, e))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| open_error(&location, format!("cannot migrate the schema: {e}")))?;
        Ok(PgStore { pool, location })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Serialises sync-log appends until commit, so that ids are in commit order.
    async fn lock_log(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("LOCK TABLE sync_log IN EXCLUSIVE MODE")
            .execute(conn)
            .await
            .map(|_| ())
    }

    /// `$1` kinds (jsonb array), `$2` owner, `$3` lease expiry, `$4` now.
    const CLAIM_NEXT: &'static str = concat!(
        claim_set!(),
        "WHERE id = (SELECT id FROM jobs WHERE ",
        claimable!(),
        " AND kind IN (SELECT jsonb_array_elements_text($1)) ORDER BY id LIMIT 1 \
         FOR UPDATE SKIP LOCKED) AND ",
        claimable!(),
        " RETURNING ",
        job_columns!()
    );

    /// `$1` system, `$2` object, `$3` record id, `$4` field, `$5` value hash, `$6` now.
    const CONSUME_ECHO: &'static str = "DELETE FROM echoes WHERE id = (SELECT id FROM echoes \
         WHERE system = $1 AND object = $2 AND record_id = $3 AND field = $4 \
         AND value_hash = $5 AND expires_at > $6 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING id";
}

impl_store!(PgStore, Postgres, PgConnection, Backend::Postgres);
