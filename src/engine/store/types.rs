//! The values the store takes and returns: jobs, sync-log entries, intents, echoes, events.
//!
//! The sync-log types are also the JSON contract of `tandem log --json` (one [`LogEntry`] per
//! line; docs/operations.md shows the shape): extend them, never rename.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use tandem_core::model::{Direction, Link, Object, RecordKey, System};
use tandem_core::plan::{Change, Op, RecordRef};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().parse::<i64>() {
                    Ok(n) if n > 0 => Ok($name(n)),
                    _ => Err(format!(concat!("`{}` is not a ", $what, " (a positive number)"), s)),
                }
            }
        }
    };
}

id_type!(
    /// A job's id: positive, increasing in creation order.
    JobId,
    "job id"
);
id_type!(
    /// A sync-log entry's id: positive, increasing in commit order.
    LogId,
    "log entry id"
);
id_type!(
    /// An intent's id.
    IntentId,
    "intent id"
);
id_type!(
    /// A stored event's id.
    EventId,
    "event id"
);

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $s)] $variant,)+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lower-case name used in the store, the command line and JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => {
                        let expected: Vec<String> =
                            [$($s),+].iter().map(|s| format!("`{s}`")).collect();
                        Err(format!(
                            concat!("unknown ", $what, " `{}` (expected {})"),
                            other,
                            expected.join(", ")
                        ))
                    }
                }
            }
        }
    };
}

str_enum!(
    /// What a job does.
    JobKind, "job kind" {
        /// Bulk HubSpot → Accelo (B1).
        Pull = "pull",
        /// Bulk Accelo → HubSpot (B2).
        Push = "push",
        /// One Accelo company and its contacts → HubSpot (B8).
        PushCompany = "push_company",
        /// One Accelo contact → HubSpot (B9).
        PushContact = "push_contact",
        /// A saved plan (B18).
        Apply = "apply",
        /// Automatic sync of one record after a webhook or poll (B12).
        Record = "record",
    }
);

str_enum!(
    /// Where a job is in its life.
    JobState, "job state" {
        /// Waiting for a worker.
        Queued = "queued",
        /// Leased to a worker.
        Running = "running",
        /// Ended; every record was handled (some may have failed, see the log).
        Succeeded = "succeeded",
        /// Ended with an error that stopped the run.
        Failed = "failed",
        /// Cancelled before it ended.
        Cancelled = "cancelled",
    }
);

impl JobState {
    /// Succeeded, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What the job does.
    pub kind: JobKind,
    /// Its parameters, read by the executor (e.g. `{"company": "12"}` for `push_company`).
    pub payload: Value,
    /// Jobs with the same key coalesce while queued (e.g. `hubspot:company:5` for automatic
    /// sync of one record).
    pub coalesce_key: Option<String>,
    /// Not claimable before this time.
    pub run_after: Option<DateTime<Utc>>,
}

impl NewJob {
    /// A job with no coalescing key, claimable now.
    pub fn new(kind: JobKind, payload: Value) -> NewJob {
        NewJob {
            kind,
            payload,
            coalesce_key: None,
            run_after: None,
        }
    }

    /// Sets the coalescing key.
    pub fn coalesce(mut self, key: impl Into<String>) -> NewJob {
        self.coalesce_key = Some(key.into());
        self
    }
}

/// The result of [`Store::enqueue`](super::Store::enqueue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job that will do the work.
    pub id: JobId,
    /// False when an already queued job with the same coalescing key was returned.
    pub created: bool,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What it does.
    pub kind: JobKind,
    /// Its parameters.
    pub payload: Value,
    /// Where it is.
    pub state: JobState,
    /// How many times it was claimed.
    pub attempts: u32,
    /// The worker holding the lease (running jobs).
    pub lease_owner: Option<String>,
    /// When the lease ends unless extended.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Progress: units done.
    pub progress_done: u64,
    /// Progress: units in all, when known.
    pub progress_total: Option<u64>,
    /// Its coalescing key.
    pub coalesce_key: Option<String>,
    /// The last checkpoint saved by a worker.
    pub checkpoint: Option<Value>,
    /// Why it failed (failed jobs) or was superseded (cancelled ones).
    pub error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Not claimable before this time.
    pub run_after: DateTime<Utc>,
    /// When it was first claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which jobs [`Store::jobs`](super::Store::jobs) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only these states (all when empty).
    pub states: Vec<JobState>,
    /// Only these kinds (all when empty).
    pub kinds: Vec<JobKind>,
    /// At most this many (newest first).
    pub limit: Option<u32>,
}

/// How a running job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// The run went through (record failures are in the log, not here).
    Succeeded,
    /// The run stopped with this error.
    Failed(String),
}

// ----- sync log ---------------------------------------------------------------------------

/// One sync-log entry as read back. Its JSON form is one line of `tandem log --json`:
/// `{"id":…,"at":"<RFC 3339>","job":…,"kind":"record",…}` with the fields of the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Increasing in commit order.
    pub id: LogId,
    /// When it was written (UTC).
    pub at: DateTime<Utc>,
    /// The job it belongs to.
    pub job: Option<JobId>,
    /// What happened.
    #[serde(flatten)]
    pub body: LogBody,
}

/// What a sync-log entry says; `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogBody {
    /// A run began.
    RunStarted(RunStarted),
    /// A run's progress.
    RunProgress(RunProgress),
    /// A run ended.
    RunFinished(RunFinished),
    /// What happened to one record.
    Record(RecordEntry),
    /// Anything else worth telling (no email sent, a rule reload, …).
    Notice(Notice),
}

impl LogBody {
    /// The `kind` value.
    pub fn kind(&self) -> &'static str {
        match self {
            LogBody::RunStarted(_) => "run_started",
            LogBody::RunProgress(_) => "run_progress",
            LogBody::RunFinished(_) => "run_finished",
            LogBody::Record(_) => "record",
            LogBody::Notice(_) => "notice",
        }
    }

    /// The same body with every text field scrubbed of secrets (see [`super::redact`]).
    pub fn scrubbed(&self) -> LogBody {
        use super::redact::{scrub, scrub_registered};
        let s = |t: &str| scrub(t).into_owned();
        let opt = |t: &Option<String>| t.as_deref().map(|t| scrub(t).into_owned());
        // Field values are customer data: only exact registered secrets are removed from them,
        // never pattern matches (a company may well be called "Bearer Holdings").
        let val = |t: &Option<String>| t.as_deref().map(|t| scrub_registered(t).into_owned());
        match self {
            LogBody::RunStarted(r) => LogBody::RunStarted(RunStarted {
                subject: opt(&r.subject),
                ..r.clone()
            }),
            LogBody::RunProgress(p) => LogBody::RunProgress(p.clone()),
            LogBody::RunFinished(r) => LogBody::RunFinished(RunFinished {
                error: opt(&r.error),
                subject: opt(&r.subject),
                ..r.clone()
            }),
            LogBody::Record(r) => LogBody::Record(RecordEntry {
                reason: s(&r.reason),
                error: opt(&r.error),
                changes: r
                    .changes
                    .iter()
                    .map(|c| Change {
                        field: c.field.clone(),
                        from: val(&c.from),
                        to: val(&c.to),
                    })
                    .collect(),
                ..r.clone()
            }),
            LogBody::Notice(n) => LogBody::Notice(Notice {
                level: n.level,
                message: s(&n.message),
            }),
        }
    }
}

/// A run began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    /// The job's kind.
    pub job_kind: JobKind,
    /// Which way data moves.
    pub direction: Option<Direction>,
    /// The system whose values win (B3).
    pub initiator: Option<System>,
    /// What the run covers when not everything, e.g. `accelo:company:12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Planned actions, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// A run's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Actions done.
    pub done: u64,
    /// Actions in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// A run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFinished {
    /// The job's kind.
    pub job_kind: JobKind,
    /// Which way data moved.
    pub direction: Option<Direction>,
    /// The system whose values won.
    pub initiator: Option<System>,
    /// What the run covered when not everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `succeeded`, `failed` or `cancelled`.
    pub state: JobState,
    /// Records per outcome.
    pub counts: Counts,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Why the run stopped, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kind of that failure, when it failed: `invalid` (exit 2), `unreachable` (exit 3),
    /// `gave_up` (exit 4: every attempt was interrupted, up to the limit), `guardrail` or
    /// `other` (exit 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Records written only in part in the last attempt (exit 1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub problems: u64,
    /// Earlier attempts of the job that were interrupted before it ended (its process killed or
    /// stopped, its lease lost); 0 for a run that went through in one go.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub interrupted: u32,
    /// The safety limit that stopped the run before any write, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<GuardrailStop>,
}

/// A safety limit (`sync.guardrails`) that stopped a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailStop {
    /// The setting: `max_create`, `max_update`, `max_clear` or `max_share`.
    pub threshold: String,
    /// What the run would have done, in words (`create 6000 records`).
    pub would: String,
    /// The configured limit, in words (`5000`, `50.0%`).
    pub limit: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Records per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Created on the target.
    pub created: u64,
    /// Updated on the target.
    pub updated: u64,
    /// Linked to an existing target record.
    pub linked: u64,
    /// Already in step.
    pub noop: u64,
    /// Left alone on purpose.
    pub skipped: u64,
    /// Failed.
    pub failed: u64,
    /// Of the linked, those whose fields were changed as they were linked.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub linked_with_changes: u64,
    /// Values those links replaced with another value (filling an empty field is not counted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link_overwrites: u64,
}

impl Counts {
    /// Counts one more record with `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Linked => self.linked += 1,
            Outcome::Noop => self.noop += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed => self.failed += 1,
        }
    }

    /// Counts one more record linked with `changes` written to it.
    pub fn add_link_changes(&mut self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        self.linked_with_changes += 1;
        self.link_overwrites += changes
            .iter()
            .filter(|c| tandem_core::plan::Effect::of(c) == tandem_core::plan::Effect::Overwrite)
            .count() as u64;
    }

    /// The counts in words, as a run's summary line says them: `3 created, 0 updated, 69
    /// linked (12 of them with fields changed, 15 values overwritten), 40 unchanged, 2 skipped,
    /// 0 failed`.
    pub fn text(&self) -> String {
        format!(
            "{} created, {} updated, {} linked{}, {} unchanged, {} skipped, {} failed",
            self.created,
            self.updated,
            self.linked,
            tandem_core::plan::link_detail(
                self.linked_with_changes as usize,
                self.link_overwrites as usize,
                false
            ),
            self.noop,
            self.skipped,
            self.failed
        )
    }

    /// All records counted.
    pub fn total(&self) -> u64 {
        self.created + self.updated + self.linked + self.noop + self.skipped + self.failed
    }
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Created on the target and linked.
    Created,
    /// Updated on the target.
    Updated,
    /// Linked to an existing target record found by a dedup key.
    Linked,
    /// Already in step.
    Noop,
    /// Left alone on purpose (`reason` says why).
    Skipped,
    /// Failed (`error` says why).
    Failed,
}

impl Outcome {
    /// The outcome of a plan action that went through.
    pub fn of(op: Op) -> Outcome {
        match op {
            Op::Create => Outcome::Created,
            Op::Update => Outcome::Updated,
            Op::Link => Outcome::Linked,
            Op::Noop => Outcome::Noop,
            Op::Skip => Outcome::Skipped,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Linked => "linked",
            Outcome::Noop => "noop",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(s.to_string())).map_err(|_| {
            format!(
                "unknown outcome `{s}` (expected `created`, `updated`, `linked`, `noop`, \
                 `skipped` or `failed`)"
            )
        })
    }
}

/// One record's entry: what happened, why, and field by field `from → to` (B14).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEntry {
    /// Company or contact.
    pub object: Object,
    /// The record read from.
    pub source: RecordRef,
    /// The record written to (`id` is `None` when a create failed).
    pub target: RecordRef,
    /// What happened.
    pub outcome: Outcome,
    /// Why, in words (`matched by domain`, `criteria not met: …`).
    #[serde(default)]
    pub reason: String,
    /// Field changes written to the target.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The error, for a failed record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RecordEntry {
    /// Whether `key` is this entry's source or target.
    pub fn concerns(&self, key: &RecordKey) -> bool {
        self.object == key.object
            && [&self.source, &self.target]
                .iter()
                .any(|r| r.system == key.system && r.id.as_deref() == Some(key.id.as_str()))
    }
}

/// How loud a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeLevel {
    /// For information.
    Info,
    /// Something did not happen that a user may expect.
    Warn,
    /// Something failed.
    Error,
}

/// A free-form entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// How loud.
    pub level: NoticeLevel,
    /// What to tell.
    pub message: String,
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLogEntry {
    /// The job it belongs to (must exist).
    pub job: Option<JobId>,
    /// What happened.
    pub body: LogBody,
}

/// What to do with a record's link when its outcome is written.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkChange {
    /// Leave links alone.
    Keep,
    /// Insert or replace this link (new last-synced values of a pair, or a pair settled by
    /// recovery).
    Upsert(Link),
    /// A new pair (a create or a link planned while the record was unlinked): written only if
    /// neither record is linked to another one and no other open intent is creating either of
    /// them; otherwise the outcome fails with [`StoreError::LinkConflict`](super::StoreError).
    /// The same pair already linked only gets the new last-synced values.
    Insert(Link),
    /// Delete the link of this object whose id on this system's side is this id.
    Remove(System, String),
}

/// One record's outcome with the link change that goes with it: see
/// [`Store::record_outcome`](super::Store::record_outcome).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOutcome {
    /// The job it belongs to (must exist).
    pub job: Option<JobId>,
    /// The log entry.
    pub entry: RecordEntry,
    /// The link change.
    pub link: LinkChange,
    /// The create intent this outcome settles: resolved with `entry.target.id` when that is
    /// set, abandoned otherwise.
    pub resolve_intent: Option<IntentId>,
}

/// Which entries [`Store::log`](super::Store::log) returns. Filters combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only this job's entries.
    pub job: Option<JobId>,
    /// Only record entries whose source or target is this record.
    pub record: Option<RecordKey>,
    /// Only entries written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries after this id (following the log).
    pub after: Option<LogId>,
    /// Only the first this-many matches.
    pub limit: Option<u32>,
    /// Only the last this-many matches (wins over `limit`).
    pub last: Option<u32>,
    /// Only entries before this id (paging back from the newest, with `last`).
    pub before: Option<LogId>,
    /// Only record entries about this object.
    pub object: Option<Object>,
    /// Only record entries whose source or target is in this system.
    pub system: Option<System>,
    /// Only record entries with one of these outcomes (all when empty).
    pub outcomes: Vec<Outcome>,
    /// Only entries mentioning this text: a record id equal to it, or the text anywhere in the
    /// entry (names, emails, values, reasons), ignoring case.
    pub text: Option<String>,
}

/// A saved version of a rule file or tandem.yaml (the console keeps every one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleVersion {
    /// The version's id.
    pub id: i64,
    /// The file, as the console names it (`companies.yaml`, `tandem.yaml`).
    pub file: String,
    /// Its whole text.
    pub text: String,
    /// Who saved it.
    pub saved_by: String,
    /// When.
    pub saved_at: DateTime<Utc>,
}

/// What the console's health panel counts for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHealth {
    /// Company or contact.
    pub object: Object,
    /// Linked pairs (in step as of their last sync).
    pub linked: u64,
    /// Records whose last attempt failed.
    pub failing: u64,
}

// ----- intents ----------------------------------------------------------------------------

/// A create about to happen.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntent {
    /// The job creating.
    pub job: Option<JobId>,
    /// The record being copied.
    pub source: RecordKey,
    /// The system the record is created in.
    pub target: System,
    /// How to find the record if the create happened (dedup lookups, e.g.
    /// `{"domain": "acme.com"}`), as the executor understands them.
    pub dedup: Value,
}

/// Where an intent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentState {
    /// The create may or may not have happened.
    Open,
    /// The record was created.
    Resolved,
    /// The record was not created.
    Abandoned,
}

impl IntentState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Open => "open",
            IntentState::Resolved => "resolved",
            IntentState::Abandoned => "abandoned",
        }
    }
}

/// An intent as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    /// Its id.
    pub id: IntentId,
    /// The job that opened it.
    pub job: Option<JobId>,
    /// The record being copied (its object is the intent's object).
    pub source: RecordKey,
    /// The system the record is created in.
    pub target: System,
    /// The dedup lookups.
    pub dedup: Value,
    /// Where it is.
    pub state: IntentState,
    /// The created record's id, once resolved.
    pub created_id: Option<String>,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was settled.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// What [`Store::open_intent`](super::Store::open_intent) found.
#[derive(Debug, Clone, PartialEq)]
pub enum IntentOpened {
    /// The intent is open: the create may go ahead.
    Opened(IntentId),
    /// The source record was linked meanwhile (by another run): creating would duplicate it.
    Linked(Link),
    /// Another intent to create this record in this system is open (another run is creating
    /// it, or an earlier create's outcome is still unknown): creating would risk a duplicate.
    Held(Intent),
}

impl IntentOpened {
    /// The intent's id, when it was opened.
    pub fn opened(&self) -> Option<IntentId> {
        match self {
            IntentOpened::Opened(id) => Some(*id),
            _ => None,
        }
    }
}

// ----- echoes -----------------------------------------------------------------------------

/// A value of one field of one record (written by Tandem, or seen changing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Echo {
    /// The system written to.
    pub system: System,
    /// Company or contact.
    pub object: Object,
    /// The record id in that system.
    pub id: String,
    /// The field: a write key (HubSpot property name or Accelo dotted path).
    pub field: String,
    /// The value (`None` = cleared).
    pub value: Option<String>,
}

impl Echo {
    /// SHA-256 (hex) of the value, distinguishing a cleared field from any string. Only the hash
    /// is stored.
    pub fn value_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        match &self.value {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update(v.as_bytes());
            }
        }
        hex::encode(h.finalize())
    }
}

// ----- events -----------------------------------------------------------------------------

/// A received event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Who sent it.
    pub source: System,
    /// Identifies redeliveries of the same event (e.g. HubSpot's `eventId`).
    pub dedup_key: String,
    /// The object concerned, when known.
    pub object: Option<Object>,
    /// The record concerned, when known.
    pub record_id: Option<String>,
    /// The event as received.
    pub payload: Value,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// Who sent it.
    pub source: System,
    /// Its dedup key.
    pub dedup_key: String,
    /// The object concerned.
    pub object: Option<Object>,
    /// The record concerned.
    pub record_id: Option<String>,
    /// The event as received.
    pub payload: Value,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
    /// The job it was coalesced into.
    pub job: Option<JobId>,
    /// When its job ended.
    pub processed_at: Option<DateTime<Utc>>,
}

/// The result of [`Store::accept_event`](super::Store::accept_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedEvent {
    /// The stored event (the earlier one for a redelivery).
    pub id: EventId,
    /// False for a redelivery (nothing was stored or queued).
    pub new: bool,
    /// The job that will process it, when one was queued or joined.
    pub job: Option<Enqueued>,
}
