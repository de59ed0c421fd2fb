//! The [`Store`] trait every backend implements, which [`Backend`] a store is, and the
//! [`OpenOptions`] it is opened with.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use tandem_core::model::{Link, Object, System};

use super::error::StoreError;
use super::types::*;

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

    /// Deletes the link of `object` between HubSpot `hubspot_id` and Accelo `accelo_id`, only
    /// if that exact pair is linked (a link another run has replaced meanwhile is left alone);
    /// true if it was.
    async fn delete_link_pair(
        &self,
        object: Object,
        hubspot_id: &str,
        accelo_id: &str,
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

    /// Per object: how many pairs are linked and how many records' last attempt failed.
    async fn health(&self) -> Result<Vec<ObjectHealth>, StoreError>;

    /// Per object: how many of `job`'s record entries are `skipped` with a reason containing
    /// `reason` (case-sensitive), counted by the store without reading the entries.
    async fn count_skipped(
        &self,
        job: JobId,
        reason: &str,
    ) -> Result<Vec<(Object, u64)>, StoreError>;

    // ----- rule versions ------------------------------------------------------------------

    /// Keeps a saved version of a rule file (or tandem.yaml); returns its id.
    async fn save_rule_version(
        &self,
        file: &str,
        text: &str,
        saved_by: &str,
    ) -> Result<i64, StoreError>;

    /// The saved versions of `file`, newest first, at most `limit`.
    async fn rule_versions(&self, file: &str, limit: u32) -> Result<Vec<RuleVersion>, StoreError>;

    /// One saved version.
    async fn rule_version(&self, id: i64) -> Result<Option<RuleVersion>, StoreError>;

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

    /// When the newest event from `source` still kept was received.
    async fn last_event_at(&self, source: System) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Deletes processed events received before `before`; returns how many.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
