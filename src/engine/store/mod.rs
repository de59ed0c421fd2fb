//! The store: everything Tandem remembers between runs — links between HubSpot and Accelo
//! records with their last-synced values, the job queue, the sync log, create intents, echoes of
//! our own writes, poll cursors and received webhook events.
//!
//! One trait, [`Store`], used as `Arc<dyn Store>`; two implementations with the same schema
//! (migrations under `src/store/migrations/{sqlite,postgres}/`, run on open) and the same tests:
//! an embedded SQLite file (default) and PostgreSQL (scale-out: many workers share one queue).
//! All SQL lives in this module: the statements both dialects share are in `sql.rs`, the few
//! that differ in `sqlite.rs` / `postgres.rs`.
//!
//! Guarantees callers rely on:
//! - [`Store::record_outcome`] writes a record's link change, the resolution of its create
//!   intent and its sync-log entry in one transaction: all or nothing.
//! - A job is leased to one worker at a time; a lease that expires makes the job claimable again;
//!   every call that changes a running job checks the lease and fails with
//!   [`StoreError::LeaseLost`] once the worker no longer holds it.
//! - Sync-log ids increase in commit order, so following the log by id misses nothing.
//! - Text written to the sync log is scrubbed of secrets first (see [`redact`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use tandem_core::model::{Link, Object, System};

#[macro_use]
mod sql;
mod rows;

pub mod postgres;
pub mod redact;
pub mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod types;

pub use types::*;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StoreError {
    /// The store could not be opened, created or migrated (a bad path or URL, a file that
    /// cannot be created, a schema from a newer Tandem).
    #[error("cannot open the store at `{location}`: {message}")]
    #[diagnostic(
        code(tandem::store::open),
        help("set the store with `--store`, `TANDEM_STORE` or `store.url` in tandem.yaml")
    )]
    Open {
        /// The store's location, with any password removed.
        location: String,
        /// What went wrong, with any password removed.
        message: String,
    },
    /// The database server could not be reached or refused the connection.
    #[error("cannot connect to the store at `{location}`: {message}")]
    #[diagnostic(
        code(tandem::store::connect),
        help("check that the database is running and that the URL and credentials are right")
    )]
    Connect {
        /// The store's URL, with any password removed.
        location: String,
        /// What went wrong, with any password removed.
        message: String,
    },
    /// The SQLite file does not exist and the caller asked not to create it.
    #[error("there is no store at `{location}`")]
    #[diagnostic(
        code(tandem::store::missing),
        help("run `tandem pull` or `tandem push` first, or point `--store` at an existing store")
    )]
    Missing {
        /// The path that was looked at.
        location: String,
    },
    /// A statement failed.
    #[error("store error while {op}: {source}")]
    #[diagnostic(code(tandem::store::query))]
    Query {
        /// What the store was doing.
        op: &'static str,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
    /// A value read from the store is not what this version of Tandem wrote.
    #[error("the store holds an unreadable value: {0}")]
    #[diagnostic(code(tandem::store::corrupt))]
    Corrupt(String),
    /// A link would pair a record that is already linked to another record.
    #[error("cannot link {object} hubspot `{hubspot_id}` ↔ accelo `{accelo_id}`: {existing}")]
    #[diagnostic(code(tandem::store::link_conflict))]
    LinkConflict {
        /// Company or contact.
        object: Object,
        /// The HubSpot id of the rejected link.
        hubspot_id: String,
        /// The Accelo id of the rejected link.
        accelo_id: String,
        /// The link that is in the way, in words.
        existing: String,
    },
    /// The job does not exist.
    #[error("there is no job `{0}`")]
    #[diagnostic(code(tandem::store::no_job))]
    NoSuchJob(JobId),
    /// The worker no longer holds the job's lease (it expired and another worker claimed the
    /// job, or the job was cancelled or finished). The worker must stop working on it.
    #[error("job `{job}` is no longer leased to `{owner}` (it is {state})")]
    #[diagnostic(code(tandem::store::lease_lost))]
    LeaseLost {
        /// The job.
        job: JobId,
        /// The worker that thought it held the lease.
        owner: String,
        /// What the job is now, in words (`cancelled`, `running under worker-b`, …).
        state: String,
    },
    /// The caller passed something the store cannot accept.
    #[error("invalid store request: {0}")]
    #[diagnostic(code(tandem::store::invalid))]
    Invalid(String),
}

impl StoreError {
    /// True when the error means the database could not be reached (as opposed to bad data or
    /// a bad request): the CLI maps it to exit code 3.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Query { source, .. } => matches!(
                source,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// How [`open_with`] opens a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the SQLite file (and its parent directories) when it does not exist. Read-only
    /// commands such as `tandem log` turn this off so that a mistyped path is an error rather
    /// than a new empty store.
    pub create: bool,
    /// Upper bound of the connection pool (default: 8 for PostgreSQL, 4 for SQLite).
    pub max_connections: Option<u32>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: true,
            max_connections: None,
        }
    }
}

/// Opens (creating and migrating as needed) the store at `url`: a `postgres://` or
/// `postgresql://` URL opens PostgreSQL; anything else is a SQLite file path (an optional
/// `sqlite://` or `sqlite:` prefix is accepted).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, &OpenOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(url: &str, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PgStore::open(url, options).await?;
        Ok(Arc::new(store))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(StoreError::Open {
                location: url.to_string(),
                message: "the store location is empty".into(),
            });
        }
        let store = sqlite::SqliteStore::open(std::path::Path::new(path), options).await?;
        Ok(Arc::new(store))
    }
}

/// Everything Tandem keeps between runs. See the module docs for the guarantees.
///
/// Times are taken from the local clock of the process calling the store (workers sharing a
/// PostgreSQL store need clocks in step to well within a lease).
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Where the store is (file path or URL without password), for messages.
    fn location(&self) -> &str;

    /// Closes the connection pool; later calls fail.
    async fn close(&self);

    // ----- links --------------------------------------------------------------------------

    /// The link of the `object` whose id on `system`'s side is `id`.
    async fn link(
        &self,
        object: Object,
        system: System,
        id: &str,
    ) -> Result<Option<Link>, StoreError>;

    /// Every link of `object`, ordered by HubSpot id.
    async fn links(&self, object: Object) -> Result<Vec<Link>, StoreError>;

    /// Inserts the link or replaces the one with the same HubSpot id. Fails with
    /// [`StoreError::LinkConflict`] when the Accelo id is already linked to another HubSpot id.
    async fn upsert_link(&self, link: &Link) -> Result<(), StoreError>;

    /// Deletes the link of the `object` whose id on `system`'s side is `id`; true if there was
    /// one.
    async fn delete_link(
        &self,
        object: Object,
        system: System,
        id: &str,
    ) -> Result<bool, StoreError>;

    // ----- jobs ---------------------------------------------------------------------------

    /// Queues a job. With a coalescing key that a queued job already has, nothing is added and
    /// that job's id is returned (`created == false`).
    async fn enqueue(&self, job: &NewJob) -> Result<Enqueued, StoreError>;

    /// One job.
    async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// Jobs matching `filter`, newest first.
    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;

    /// Claims the oldest claimable job of one of `kinds` (all kinds when empty) for `owner`:
    /// a queued job whose `run_after` has passed, or a running job whose lease has expired
    /// (its worker died). The job becomes `running`, leased to `owner` for `lease`, with
    /// `attempts` incremented. Two claimers never get the same job. A job that keeps killing
    /// its workers comes back each time its lease expires: callers give up on one whose
    /// `attempts` exceeds their limit by finishing it as failed.
    async fn claim_next(
        &self,
        owner: &str,
        kinds: &[JobKind],
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;

    /// Claims one particular job if it is claimable (queued, or running with an expired lease).
    async fn claim(
        &self,
        id: JobId,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;

    /// Takes a running job over from `dead_owner`, a worker known to be gone (its process no
    /// longer exists), without waiting for its lease to expire: like [`Store::claim`], but only
    /// while `dead_owner` still holds the lease. `None` when it does not (the job ended, or
    /// another worker took it first).
    async fn take_over(
        &self,
        id: JobId,
        dead_owner: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;

    /// Extends `owner`'s lease on a running job to `lease` from now.
    async fn heartbeat(&self, id: JobId, owner: &str, lease: Duration) -> Result<(), StoreError>;

    /// Records progress of a running job.
    async fn set_progress(
        &self,
        id: JobId,
        owner: &str,
        done: u64,
        total: Option<u64>,
    ) -> Result<(), StoreError>;

    /// Saves the resumable checkpoint of a running job (replacing the previous one). A job
    /// claimed again after a crash or a release carries its last checkpoint.
    async fn save_checkpoint(
        &self,
        id: JobId,
        owner: &str,
        checkpoint: &Value,
    ) -> Result<(), StoreError>;

    /// Gives a running job back to the queue (graceful shutdown, or a retry later), keeping its
    /// checkpoint; `retry_after` delays the next claim. When another queued job already has the
    /// same coalescing key, that job covers this one: this one is cancelled and its events move
    /// over. Returns the job that will run.
    async fn release(
        &self,
        id: JobId,
        owner: &str,
        retry_after: Option<Duration>,
    ) -> Result<JobId, StoreError>;

    /// Ends a running job. Its events are marked processed.
    async fn finish(&self, id: JobId, owner: &str, end: &JobEnd) -> Result<(), StoreError>;

    /// Cancels a queued or running job (a running job's worker finds out at its next heartbeat);
    /// false if the job had already ended.
    async fn cancel(&self, id: JobId) -> Result<bool, StoreError>;

    // ----- sync log -----------------------------------------------------------------------

    /// Appends one entry (run started / progress / finished, notice, or a record outcome with
    /// no link change). Text is scrubbed of secrets first.
    async fn append_log(&self, entry: &NewLogEntry) -> Result<LogId, StoreError>;

    /// Writes one record's outcome: its link change, the resolution of its create intent and its
    /// log entry, in one transaction.
    async fn record_outcome(&self, outcome: &RecordOutcome) -> Result<LogId, StoreError>;

    /// [`Store::record_outcome`] for many records in one transaction (a HubSpot batch): all are
    /// written or none.
    async fn record_outcomes(&self, outcomes: &[RecordOutcome]) -> Result<Vec<LogId>, StoreError>;

    /// Log entries matching `query`, oldest first.
    async fn log(&self, query: &LogQuery) -> Result<Vec<LogEntry>, StoreError>;

    // ----- intents ------------------------------------------------------------------------

    /// Records that a create is about to happen — unless, checked in the same transaction, the
    /// source record is linked by now ([`IntentOpened::Linked`]) or another intent to create it
    /// in the same system is open ([`IntentOpened::Held`]). Concurrent runs therefore never
    /// both create the same record (at most one open intent per source record and target
    /// system, enforced by a unique index too).
    async fn open_intent(&self, intent: &NewIntent) -> Result<IntentOpened, StoreError>;

    /// Settles an open intent: `Some(id)` = the record was created with that id, `None` = it was
    /// not created (abandoned). False if the intent was not open.
    async fn resolve_intent(
        &self,
        id: IntentId,
        created_id: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Open intents, oldest first (after a crash: creates that may or may not have happened).
    async fn open_intents(&self) -> Result<Vec<Intent>, StoreError>;

    // ----- echoes -------------------------------------------------------------------------

    /// Remembers values about to be written, for `ttl`.
    async fn remember_echoes(&self, echoes: &[Echo], ttl: Duration) -> Result<(), StoreError>;

    /// Whether `echo` is a value Tandem wrote and has not yet seen come back; a match is
    /// consumed (each remembered write excuses one observed change).
    async fn consume_echo(&self, echo: &Echo) -> Result<bool, StoreError>;

    /// Deletes expired echoes; returns how many.
    async fn purge_expired_echoes(&self) -> Result<u64, StoreError>;

    // ----- cursors ------------------------------------------------------------------------

    /// A named poll watermark.
    async fn cursor(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Sets a named poll watermark.
    async fn set_cursor(&self, name: &str, value: &str) -> Result<(), StoreError>;

    // ----- events -------------------------------------------------------------------------

    /// Stores a received event unless one with the same source and dedup key was stored
    /// before, and (when new and `job` is given) queues or joins the job that will process it,
    /// in one transaction.
    async fn accept_event(
        &self,
        event: &NewEvent,
        job: Option<&NewJob>,
    ) -> Result<AcceptedEvent, StoreError>;

    /// [`Store::accept_event`] for a batch (HubSpot delivers up to 100 events per request), in
    /// one transaction: all are stored or none. A redelivery within the batch is reported as
    /// not new, like one across batches.
    async fn accept_events(
        &self,
        events: &[(NewEvent, Option<NewJob>)],
    ) -> Result<Vec<AcceptedEvent>, StoreError>;

    /// Marks events that were stored without a job (ignored, or recognised as echoes of
    /// Tandem's own writes) as processed: they were kept only so that a redelivery is
    /// recognised. Events attached to a job are left alone. Returns how many were marked.
    async fn settle_events(&self, ids: &[EventId]) -> Result<u64, StoreError>;

    /// The events coalesced into `job`.
    async fn events_for_job(&self, job: JobId) -> Result<Vec<Event>, StoreError>;

    /// Events not yet processed, oldest first, at most `limit`.
    async fn unprocessed_events(&self, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// Deletes processed events received before `before`; returns how many.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
