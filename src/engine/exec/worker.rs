//! The job runner: [`Worker`] claims jobs from the store's queue under short leases, keeps the
//! lease alive with heartbeats, dispatches each job by kind to a [`JobHandler`], and ends it:
//! a `run_finished` sync-log entry with the job's counts, the job finished (or released when
//! interrupted), and the push-completion email for bulk pushes (B2, never for other kinds, B13).
//!
//! `tandem pull`/`push`/`apply` enqueue a job and run it in-process through
//! [`Worker::run_claimed`]; `tandem serve`/`tandem worker` run [`Worker::run`], a loop that
//! claims any job of the kinds it has handlers for. Handlers are added with
//! [`Worker::handle`] (the automatic sync adds its `record` kind this way).
//!
//! Leases are short (15 s by default) and renewed every third of that; a worker that dies
//! stops renewing, and its job becomes claimable once the lease expires — or at once when the
//! owner is provably dead (same host, process gone: see [`super::owner`]), through
//! [`Store::take_over`]. A resumed job keeps its id: its log continues under it, and its
//! counts are those of its last entry per record across attempts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::error::ExecError;
use super::executor::{JobLease, Report};
use super::owner;
use super::progress::{Progress, Silent};
use crate::notify::{PushSummary, SmtpSettings};
use crate::store::{
    Counts, Job, JobEnd, JobId, JobKind, JobState, LogBody, LogQuery, NewLogEntry, Notice,
    NoticeLevel, Outcome, RunFinished, RunStarted, Store, StoreError,
};
use tandem_core::model::{Direction, System};

/// Why a job failed, as far as the command line cares (its exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// Bad input: arguments, payload, rules, a stale saved plan (exit 2).
    Invalid,
    /// A remote system or the store could not be reached (exit 3).
    Unreachable,
    /// A guardrail stopped it (exit 1).
    Guardrail,
    /// Given up: every one of its attempts was interrupted, up to the limit (exit 4).
    GaveUp,
    /// Anything else (exit 1).
    Other,
}

impl FailKind {
    /// Its name in the sync log (`RunFinished::failure`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailKind::Invalid => "invalid",
            FailKind::Unreachable => "unreachable",
            FailKind::Guardrail => "guardrail",
            FailKind::GaveUp => "gave_up",
            FailKind::Other => "other",
        }
    }

    /// From its name (unknown names are `Other`).
    pub fn parse(name: &str) -> FailKind {
        match name {
            "invalid" => FailKind::Invalid,
            "unreachable" => FailKind::Unreachable,
            "guardrail" => FailKind::Guardrail,
            "gave_up" => FailKind::GaveUp,
            _ => FailKind::Other,
        }
    }
}

/// Why a handler could not finish its job.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum JobError {
    /// The executor stopped.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Exec(#[from] ExecError),
    /// The job cannot run as asked (bad payload, invalid rules, a stale saved plan).
    #[error("{0}")]
    #[diagnostic(code(tandem::job::invalid))]
    Invalid(String),
    /// A remote system could not be reached or refused the credentials.
    #[error("{0}")]
    #[diagnostic(code(tandem::job::unreachable))]
    Unreachable(String),
    /// Every attempt of the job was interrupted (its process killed, or its lease lost) until
    /// the worker's limit, so it was stopped rather than started once more.
    #[error(
        "gave up on {kind} job {job} after {interrupted} interrupted attempts: each one ended \
         without finishing (its process was killed or stopped, or lost touch with the store). \
         See how far they got with `tandem log --job {job}`, fix what keeps stopping the run \
         (a memory or time limit that kills the process, a machine that restarts), then run the \
         same command again: it starts a new job, planned from the data as it is now"
    )]
    #[diagnostic(code(tandem::job::gave_up))]
    GaveUp {
        /// The job's kind.
        kind: JobKind,
        /// The job.
        job: JobId,
        /// How many attempts were interrupted.
        interrupted: u32,
    },
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> JobError {
        JobError::Exec(ExecError::Store(e))
    }
}

impl JobError {
    /// The kind of failure.
    pub fn kind(&self) -> FailKind {
        match self {
            JobError::Invalid(_) => FailKind::Invalid,
            JobError::Unreachable(_) => FailKind::Unreachable,
            JobError::GaveUp { .. } => FailKind::GaveUp,
            JobError::Exec(ExecError::Guardrail(_)) => FailKind::Guardrail,
            JobError::Exec(e) if e.is_unreachable() => FailKind::Unreachable,
            JobError::Exec(_) => FailKind::Other,
        }
    }
}

/// One claimed job, as a handler sees it.
pub struct JobRun {
    /// The job as claimed (its `attempts` counts this claim).
    pub job: Job,
    /// The lease.
    pub lease: JobLease,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Cancelled on shutdown or when the lease is lost: stop between two records.
    pub cancel: CancellationToken,
    /// Where to show progress.
    pub progress: Arc<dyn Progress>,
}

impl JobRun {
    /// True when an earlier attempt of this job was interrupted.
    pub fn resumed(&self) -> bool {
        self.job.attempts > 1
    }

    /// Logs the run's start: `run_started` the first time, a notice on a resumed attempt (whose
    /// job already has its `run_started`).
    pub async fn started(&self, started: RunStarted) -> Result<(), StoreError> {
        let already = self.resumed()
            && self
                .store
                .log(&LogQuery {
                    job: Some(self.job.id),
                    limit: Some(5),
                    ..LogQuery::default()
                })
                .await?
                .iter()
                .any(|e| matches!(e.body, LogBody::RunStarted(_)));
        let body = if already {
            LogBody::Notice(Notice {
                level: NoticeLevel::Info,
                message: format!(
                    "{} job {} resumed after an interruption (attempt {}); {} actions in the new \
                     plan",
                    self.job.kind,
                    self.job.id,
                    self.job.attempts,
                    started.total.unwrap_or(0)
                ),
            })
        } else {
            LogBody::RunStarted(started)
        };
        self.store
            .append_log(&NewLogEntry {
                job: Some(self.job.id),
                body,
            })
            .await?;
        Ok(())
    }
}

/// What a handler reports about a run it completed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Which way data moved.
    pub direction: Option<Direction>,
    /// The system whose values won.
    pub initiator: Option<System>,
    /// What the run covered when not everything (`accelo:company:12`).
    pub subject: Option<String>,
    /// What this attempt did.
    pub report: Report,
}

/// Runs the jobs of one or more kinds.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Runs `run.job` to its end. `Err` stops the job (failed), except an
    /// [`ExecError::Interrupted`], which gives the job back to the queue.
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError>;
}

/// How a job ended, for the caller that ran it.
#[derive(Debug)]
pub struct Finished {
    /// The job.
    pub job: JobId,
    /// Its kind.
    pub kind: JobKind,
    /// `succeeded` or `failed`; `queued` when it was given back (interrupted), `running` when
    /// its lease was lost to another worker.
    pub state: JobState,
    /// The job's records per outcome, across attempts.
    pub counts: Counts,
    /// What the last attempt reported (partial writes).
    pub summary: Option<RunSummary>,
    /// Why it failed.
    pub error: Option<JobError>,
}

impl Finished {
    /// True when the job ran through with no failed record.
    pub fn is_clean(&self) -> bool {
        self.state == JobState::Succeeded
            && self.counts.failed == 0
            && self
                .summary
                .as_ref()
                .is_none_or(|s| !s.report.has_failures())
    }
}

/// Claims and runs jobs. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    owner: String,
    handlers: HashMap<JobKind, Arc<dyn JobHandler>>,
    lease: Duration,
    idle: Duration,
    max_attempts: u32,
    email: Option<SmtpSettings>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("owner", &self.owner)
            .field("kinds", &self.kinds())
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Default lease: short, so that a crashed worker's job comes back quickly.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Default number of claims after which a job that keeps dying is failed (a poison job).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Runs ended, by `kind` (`pull`, `push`, `record`, …) and `outcome` (`succeeded`, `failed`,
/// `interrupted`).
pub const RUNS: &str = "tandem_runs_total";
/// Records of ended runs, by `kind` and `outcome` (`created`, `updated`, `linked`, `noop`,
/// `skipped`, `failed`).
pub const RECORDS: &str = "tandem_records_total";

/// Counts an ended run and its records in [`RUNS`] and [`RECORDS`].
fn count_run(kind: JobKind, outcome: &'static str, counts: &Counts) {
    metrics::counter!(RUNS, "kind" => kind.as_str(), "outcome" => outcome).increment(1);
    for (what, n) in [
        ("created", counts.created),
        ("updated", counts.updated),
        ("linked", counts.linked),
        ("noop", counts.noop),
        ("skipped", counts.skipped),
        ("failed", counts.failed),
    ] {
        if n > 0 {
            metrics::counter!(RECORDS, "kind" => kind.as_str(), "outcome" => what).increment(n);
        }
    }
}

/// How long a stopped job may take to reach its next record before it is dropped where it
/// waits.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

impl Worker {
    /// A worker with no handlers, a fresh owner id, the default lease and no email.
    pub fn new(store: Arc<dyn Store>) -> Worker {
        Worker {
            store,
            owner: owner::new_owner(),
            handlers: HashMap::new(),
            lease: DEFAULT_LEASE,
            idle: Duration::from_secs(1),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            email: None,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Runs jobs of `kind` with `handler` (replacing an earlier one).
    pub fn handle(mut self, kind: JobKind, handler: Arc<dyn JobHandler>) -> Worker {
        self.handlers.insert(kind, handler);
        self
    }

    /// Sets the lease length (heartbeats every third of it).
    pub fn lease(mut self, lease: Duration) -> Worker {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// Sets how long [`Worker::run`] waits between two looks at an empty queue.
    pub fn idle_poll(mut self, every: Duration) -> Worker {
        self.idle = every;
        self
    }

    /// Sets the number of claims after which a job is given up.
    pub fn max_attempts(mut self, n: u32) -> Worker {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the SMTP settings of the push-completion email (`None`: not configured).
    pub fn email(mut self, email: Option<SmtpSettings>) -> Worker {
        self.email = email;
        self
    }

    /// The lease-owner id of this worker.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The kinds this worker has handlers for, sorted.
    pub fn kinds(&self) -> Vec<JobKind> {
        let mut k: Vec<JobKind> = self.handlers.keys().copied().collect();
        k.sort();
        k
    }

    /// Wakes [`Worker::run`] when it waits on an empty queue (a job was just queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Claims and runs jobs until `shutdown` is cancelled; a job running then is stopped
    /// between two records and given back to the queue.
    ///
    /// `record` jobs (the automatic sync of one record, seconds each) run in a lane of their
    /// own, beside the lane of every other kind (bulk runs, minutes to hours): a webhook's
    /// change never waits behind a bulk pull. A store failure in either lane stops both.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let (record, bulk): (Vec<JobKind>, Vec<JobKind>) = self
            .kinds()
            .into_iter()
            .partition(|k| *k == JobKind::Record);
        if record.is_empty() || bulk.is_empty() {
            return self.run_lane(&[record, bulk].concat(), &shutdown).await;
        }
        let stop = shutdown.child_token();
        let lane = |kinds: Vec<JobKind>| {
            let stop = stop.clone();
            async move {
                let ended = self.run_lane(&kinds, &stop).await;
                if ended.is_err() {
                    stop.cancel();
                }
                ended
            }
        };
        let (a, b) = tokio::join!(lane(record), lane(bulk));
        a.and(b)
    }

    /// [`Worker::run`] for the jobs of `kinds`, one at a time.
    async fn run_lane(
        &self,
        kinds: &[JobKind],
        shutdown: &CancellationToken,
    ) -> Result<(), StoreError> {
        if kinds.is_empty() {
            return Ok(());
        }
        let shutdown = shutdown.clone();
        let kinds = kinds.to_vec();
        while !shutdown.is_cancelled() {
            match self
                .store
                .claim_next(&self.owner, &kinds, self.lease)
                .await?
            {
                Some(job) => {
                    self.run_claimed(job, Arc::new(Silent), &shutdown).await?;
                }
                None => {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(self.idle) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Claims job `id` for this worker: when it is queued, or running under an expired lease,
    /// or running under a lease whose owner is provably dead. `None` when someone else runs it
    /// (or it has ended).
    pub async fn claim(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        if let Some(job) = self.store.claim(id, &self.owner, self.lease).await? {
            return Ok(Some(job));
        }
        let Some(job) = self.store.job(id).await? else {
            return Ok(None);
        };
        match (&job.state, job.lease_owner.as_deref()) {
            (JobState::Running, Some(holder)) if owner::is_dead(holder) => {
                self.store
                    .take_over(id, holder, &self.owner, self.lease)
                    .await
            }
            _ => Ok(None),
        }
    }

    /// Runs a job this worker has claimed, to its end (see the module docs). `shutdown`
    /// interrupts it. Fails only when the store fails while ending the job.
    pub async fn run_claimed(
        &self,
        job: Job,
        progress: Arc<dyn Progress>,
        shutdown: &CancellationToken,
    ) -> Result<Finished, StoreError> {
        let started = Instant::now();
        let lease = JobLease {
            job: job.id,
            owner: self.owner.clone(),
        };
        let cancel = shutdown.child_token();
        let lost = CancellationToken::new();
        let beat = self.heartbeat(lease.clone(), cancel.clone(), lost.clone());
        let run = JobRun {
            job: job.clone(),
            lease: lease.clone(),
            store: self.store.clone(),
            cancel: cancel.clone(),
            progress,
        };
        let result = if job.attempts > self.max_attempts {
            Err(JobError::GaveUp {
                kind: job.kind,
                job: job.id,
                interrupted: job.attempts.saturating_sub(1),
            })
        } else {
            match self.handlers.get(&job.kind) {
                Some(h) => {
                    // Every log line of the run carries the job (and, for a record job, the
                    // record): `TANDEM_LOG_FORMAT=json` prints them as fields.
                    let span = tracing::info_span!(
                        "job",
                        job = %job.id,
                        kind = %job.kind,
                        record = job.coalesce_key.as_deref().unwrap_or("")
                    );
                    tracing::Instrument::instrument(Self::until_stopped(h.run(&run), &cancel), span)
                        .await
                }
                None => Err(JobError::Invalid(format!(
                    "this worker has no handler for `{}` jobs",
                    job.kind
                ))),
            }
        };
        beat.cancel();
        if lost.is_cancelled() {
            // Another worker holds the job now: touch nothing.
            return Ok(Finished {
                job: job.id,
                kind: job.kind,
                state: JobState::Running,
                counts: Counts::default(),
                summary: result.ok(),
                error: None,
            });
        }
        if let Err(JobError::Exec(ExecError::Interrupted(_))) = &result {
            let next = self.store.release(job.id, &self.owner, None).await;
            return match next {
                Ok(_) | Err(StoreError::LeaseLost { .. }) => {
                    let counts = job_counts(self.store.as_ref(), job.id).await?;
                    count_run(job.kind, "interrupted", &Counts::default());
                    Ok(Finished {
                        job: job.id,
                        kind: job.kind,
                        state: JobState::Queued,
                        counts,
                        summary: None,
                        error: result.err(),
                    })
                }
                Err(e) => Err(e),
            };
        }
        let counts = job_counts(self.store.as_ref(), job.id).await?;
        count_run(
            job.kind,
            if result.is_ok() {
                "succeeded"
            } else {
                "failed"
            },
            &counts,
        );
        let (state, end, summary, error) = match result {
            Ok(s) => (JobState::Succeeded, JobEnd::Succeeded, Some(s), None),
            Err(e) => (
                JobState::Failed,
                JobEnd::Failed(e.to_string()),
                None,
                Some(e),
            ),
        };
        let total_ms = job
            .started_at
            .and_then(|t| (chrono::Utc::now() - t).to_std().ok())
            .unwrap_or_else(|| started.elapsed())
            .as_millis() as u64;
        let (direction, initiator, subject) = summary
            .as_ref()
            .map(|s| (s.direction, s.initiator, s.subject.clone()))
            .unwrap_or((None, None, None));
        self.store
            .append_log(&NewLogEntry {
                job: Some(job.id),
                body: LogBody::RunFinished(RunFinished {
                    job_kind: job.kind,
                    direction,
                    initiator,
                    subject,
                    state,
                    counts,
                    duration_ms: total_ms,
                    error: error.as_ref().map(ToString::to_string),
                    failure: error.as_ref().map(|e| e.kind().as_str().to_string()),
                    interrupted: job.attempts.saturating_sub(1),
                    problems: summary.as_ref().map_or(0, |s| s.report.problems),
                    guardrail: match &error {
                        Some(JobError::Exec(ExecError::Guardrail(b))) => {
                            Some(crate::store::GuardrailStop {
                                threshold: b.threshold.to_string(),
                                would: b.would.clone(),
                                limit: b.limit.clone(),
                            })
                        }
                        _ => None,
                    },
                }),
            })
            .await?;
        match self.store.finish(job.id, &self.owner, &end).await {
            Ok(()) => {}
            Err(StoreError::LeaseLost { .. }) => {
                return Ok(Finished {
                    job: job.id,
                    kind: job.kind,
                    state: JobState::Running,
                    counts,
                    summary,
                    error,
                });
            }
            Err(e) => return Err(e),
        }
        if crate::notify::sends_email(job.kind) {
            let push = PushSummary::from_log(self.store.as_ref(), job.id).await?;
            if let Err(e) =
                crate::notify::push_completed(self.store.as_ref(), self.email.as_ref(), &push).await
            {
                tracing::warn!(job = %job.id, error = %e, "could not record the email notice");
            }
        }
        Ok(Finished {
            job: job.id,
            kind: job.kind,
            state,
            counts,
            summary,
            error,
        })
    }

    /// Runs a job's handler; once `cancel` fires, the handler has [`STOP_GRACE`] to stop at its
    /// next record, after which it is dropped where it waits (a request in flight, a budget
    /// pause, a retry's backoff). Dropping is as safe as a crash, which every write is built to
    /// survive: each record's outcome is one transaction, and a create in flight keeps its
    /// open intent, settled by lookup when the job continues.
    async fn until_stopped(
        work: impl std::future::Future<Output = Result<RunSummary, JobError>>,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, JobError> {
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r,
            () = async {
                cancel.cancelled().await;
                tokio::time::sleep(STOP_GRACE).await;
            } => Err(JobError::Exec(ExecError::Interrupted(
                "stopped while waiting on a system; the job continues where it stopped".into(),
            ))),
        }
    }

    /// Renews the lease every third of its length until the returned token is cancelled. When
    /// the lease is lost, `lost` and `cancel` are cancelled (the run stops).
    fn heartbeat(
        &self,
        lease: JobLease,
        cancel: CancellationToken,
        lost: CancellationToken,
    ) -> CancellationToken {
        let stop = CancellationToken::new();
        let store = self.store.clone();
        let every = self.lease / 3;
        let length = self.lease;
        let stop_task = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop_task.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                match store.heartbeat(lease.job, &lease.owner, length).await {
                    Ok(()) => {}
                    Err(StoreError::LeaseLost { .. }) => {
                        lost.cancel();
                        cancel.cancel();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(job = %lease.job, error = %e, "heartbeat failed");
                    }
                }
            }
        });
        stop
    }
}

/// A job's records per outcome across its attempts: the last record entry per source record,
/// except that a record created or linked earlier in the job and updated or found in step later
/// counts as created or linked.
pub async fn job_counts(store: &dyn Store, job: JobId) -> Result<Counts, StoreError> {
    let entries = store
        .log(&LogQuery {
            job: Some(job),
            ..LogQuery::default()
        })
        .await?;
    let mut last: HashMap<_, (Outcome, Vec<tandem_core::plan::Change>)> = HashMap::new();
    for e in entries {
        if let LogBody::Record(r) = e.body {
            let key = (r.object, r.source.system, r.source.id.clone());
            // A record created (or linked) by an earlier attempt and completed by a later one
            // (its missing fields written, or found in step) counts as created (linked), with
            // the changes its link wrote.
            let entry = match last.remove(&key) {
                Some((prev @ (Outcome::Created | Outcome::Linked), changes))
                    if matches!(r.outcome, Outcome::Updated | Outcome::Noop) =>
                {
                    (prev, changes)
                }
                _ => (r.outcome, r.changes),
            };
            last.insert(key, entry);
        }
    }
    let mut counts = Counts::default();
    for (outcome, changes) in last.into_values() {
        counts.add(outcome);
        if outcome == Outcome::Linked {
            counts.add_link_changes(&changes);
        }
    }
    Ok(counts)
}
