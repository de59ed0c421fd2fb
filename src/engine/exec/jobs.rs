//! The manual runs as jobs: the handler of `pull`, `push`, `push_company`, `push_contact` and
//! `apply` jobs ([`SyncJobs`]), and [`run_here`], which the commands use to queue a job and run
//! it in this process (or follow it when another process runs it).
//!
//! Job payloads (the queue's JSON, read back by whichever worker runs the job):
//! - `pull`, `push`: `{}` — every record (B1, B2);
//! - `push_company`: `{"company": "ID"}` — one Accelo company and its contacts (B8);
//! - `push_contact`: `{"contact": "ID"}` — one Accelo contact, criteria bypassed (B9);
//! - `apply`: `{"plan": <saved plan>, "file": "…"}` — a saved plan, executed exactly when the data
//!   it was made from has not changed, refused otherwise (B18);
//! - any of them may carry `"force": true` (run past the guardrails).
//!
//! A run: settle open create intents → read the scope → plan (bulk mode) → log the start →
//! execute. A resumed job (an earlier attempt was interrupted) does the same: the fresh plan
//! makes what was applied a no-op. A resumed `apply` cannot re-check its fingerprint (its own
//! first attempt changed the data): it re-plans its scope like the other kinds, and says so in
//! the log.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::executor::{ExecOptions, Executor, RunContext};
use super::progress::Progress;
use super::recover;
use super::worker::{FailKind, Finished, JobError, JobHandler, JobRun, RunSummary, Worker};
use crate::connect::Systems;
use crate::notify::SmtpSettings;
use crate::snapshot::{self, ReadError, Snapshot};
use crate::store::{
    JobFilter, JobId, JobKind, JobState, LogBody, LogQuery, NewJob, NewLogEntry, Notice,
    NoticeLevel, RunStarted, Store,
};
use tandem_core::compile::Program;
use tandem_core::model::{Direction, Object};
use tandem_core::plan::saved::{SavedPlan, Scope};
use tandem_core::plan::{Mode, Plan};

/// Where a handler gets the rules it runs with (the current ones, when `tandem serve`
/// hot-reloads them).
pub type ProgramSource = Arc<dyn Fn() -> Arc<Program> + Send + Sync>;

/// A program source that always gives `program`.
pub fn fixed(program: Arc<Program>) -> ProgramSource {
    Arc::new(move || program.clone())
}

/// The kinds [`SyncJobs`] runs.
pub const KINDS: [JobKind; 5] = [
    JobKind::Pull,
    JobKind::Push,
    JobKind::PushCompany,
    JobKind::PushContact,
    JobKind::Apply,
];

/// The handler of the manual runs.
#[derive(Clone)]
pub struct SyncJobs {
    systems: Systems,
    program: ProgramSource,
    store: Arc<dyn Store>,
    options: ExecOptions,
}

impl std::fmt::Debug for SyncJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncJobs")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SyncJobs {
    /// A handler writing through `systems` and `store`.
    pub fn new(
        systems: Systems,
        program: ProgramSource,
        store: Arc<dyn Store>,
        options: ExecOptions,
    ) -> SyncJobs {
        SyncJobs {
            systems,
            program,
            store,
            options,
        }
    }

    /// `worker` with this handler for every kind in [`KINDS`].
    pub fn install(self, mut worker: Worker) -> Worker {
        let me = Arc::new(self);
        for kind in KINDS {
            worker = worker.handle(kind, me.clone());
        }
        worker
    }

    fn executor(&self, force: bool) -> Executor {
        let mut options = self.options.clone();
        options.force |= force;
        Executor::new(
            self.store.clone(),
            self.systems.hubspot.clone(),
            self.systems.accelo.clone(),
            options,
        )
    }
}

/// What a job asks for, from its kind and payload.
struct Request {
    direction: Direction,
    scope: Scope,
    saved: Option<SavedPlan>,
    force: bool,
}

fn id_in(payload: &Value, key: &str, kind: JobKind) -> Result<String, JobError> {
    match payload.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(JobError::Invalid(format!(
            "a `{kind}` job needs `{key}` (an id) in its payload"
        ))),
    }
}

fn request(kind: JobKind, payload: &Value) -> Result<Request, JobError> {
    let force = payload
        .get("force")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (direction, scope, saved) = match kind {
        JobKind::Pull => (Direction::Pull, Scope::All, None),
        JobKind::Push => (Direction::Push, Scope::All, None),
        JobKind::PushCompany => (
            Direction::Push,
            Scope::Company {
                id: id_in(payload, "company", kind)?,
            },
            None,
        ),
        JobKind::PushContact => (
            Direction::Push,
            Scope::Contact {
                id: id_in(payload, "contact", kind)?,
            },
            None,
        ),
        JobKind::Apply => {
            let text = payload
                .get("plan")
                .map(Value::to_string)
                .ok_or_else(|| JobError::Invalid("an `apply` job needs `plan`".into()))?;
            let saved = SavedPlan::from_json(&text)
                .map_err(|e| JobError::Invalid(format!("the saved plan is unusable: {e}")))?;
            (saved.plan.direction, saved.scope.clone(), Some(saved))
        }
        JobKind::Record => {
            return Err(JobError::Invalid(
                "`record` jobs belong to the automatic sync (`tandem serve`)".into(),
            ));
        }
    };
    Ok(Request {
        direction,
        scope,
        saved,
        force,
    })
}

/// `accelo:company:12` for a one-record scope.
pub fn subject(direction: Direction, scope: &Scope) -> Option<String> {
    let source = direction.source();
    match scope {
        Scope::All => None,
        Scope::Company { id } => Some(format!("{source}:{}:{id}", Object::Company)),
        Scope::Contact { id } => Some(format!("{source}:{}:{id}", Object::Contact)),
        Scope::Record { system, object, id } => Some(format!("{system}:{object}:{id}")),
    }
}

fn read_error(e: ReadError) -> JobError {
    match e {
        ReadError::Connect(c) if c.is_unreachable() => JobError::Unreachable(c.to_string()),
        ReadError::Store(s) => s.into(),
        other => JobError::Invalid(other.to_string()),
    }
}

#[async_trait]
impl JobHandler for SyncJobs {
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError> {
        let req = request(run.job.kind, &run.job.payload)?;
        let exec = self.executor(req.force);
        let _waits = super::waits::WaitLog::start(&exec, run.job.id);
        let program = (self.program)();
        let progress = run.progress.as_ref();
        let settled = recover::settle(&exec, Some(run.job.id)).await?;
        if settled.recovered + settled.abandoned > 0 {
            progress.message(&format!(
                "settled {} interrupted create(s): {} found and linked, {} to create again",
                settled.recovered + settled.abandoned,
                settled.recovered,
                settled.abandoned
            ));
        }
        progress.message(&format!(
            "reading {}…",
            subject(req.direction, &req.scope)
                .unwrap_or_else(|| "every company and contact of both systems".into())
        ));
        let store = Some(self.store.as_ref());
        let t_read = Instant::now();
        let (snap, plan): (Snapshot, Plan) = match &req.saved {
            Some(saved) if !run.resumed() => {
                let check = snapshot::check_saved(&self.systems, &program, store, saved)
                    .await
                    .map_err(read_error)?;
                if !check.is_fresh() {
                    let mut text = String::from(
                        "the data changed since the plan was made; nothing was written. \
                         What changed:",
                    );
                    for c in &check.changes {
                        text.push_str("\n  - ");
                        text.push_str(c);
                    }
                    text.push_str("\nmake a new plan with `tandem plan … --out FILE`");
                    return Err(JobError::Invalid(text));
                }
                if check.rules_changed {
                    self.notice(
                        run,
                        NoticeLevel::Warn,
                        "the rules changed since the plan was made; the saved plan is applied \
                         as it was reviewed",
                    )
                    .await?;
                }
                (check.snapshot, saved.plan.clone())
            }
            _ => {
                let snap =
                    snapshot::read(&self.systems, &program, store, req.direction, &req.scope)
                        .await
                        .map_err(read_error)?;
                if req.saved.is_some() {
                    self.notice(
                        run,
                        NoticeLevel::Info,
                        "resuming an interrupted apply: its scope is planned again from the data \
                         as it is now (what was applied is now unchanged)",
                    )
                    .await?;
                }
                tracing::info!(job = %run.job.id, ms = t_read.elapsed().as_millis() as u64, "read");
                let t_plan = Instant::now();
                let plan = tandem_core::plan::plan(&program, &snap.input(Mode::Bulk));
                tracing::info!(job = %run.job.id, ms = t_plan.elapsed().as_millis() as u64, "planned");
                (snap, plan)
            }
        };
        run.started(RunStarted {
            job_kind: run.job.kind,
            direction: Some(plan.direction),
            initiator: Some(plan.initiator),
            subject: subject(req.direction, &req.scope),
            total: Some(plan.actions.len() as u64),
        })
        .await?;
        progress.message(&format!("plan: {}", plan.summary.text()));
        let cost = super::cost::estimate(&plan, exec.connector(plan.direction.target()).as_ref());
        if let Some(sentence) = cost.sentence(&run.job.kind.to_string()) {
            progress.message(&sentence);
            self.notice(run, NoticeLevel::Info, &sentence).await?;
            progress.at_least(cost.duration());
        }
        let t_exec = Instant::now();
        let report = exec
            .execute(
                &plan,
                &snap.input(Mode::Bulk),
                &RunContext {
                    lease: Some(&run.lease),
                    cancel: run.cancel.clone(),
                    progress,
                    bulk: req.scope == Scope::All,
                    resume: run.resumed(),
                },
            )
            .await?;
        tracing::info!(job = %run.job.id, ms = t_exec.elapsed().as_millis() as u64, "executed");
        Ok(RunSummary {
            direction: Some(plan.direction),
            initiator: Some(plan.initiator),
            subject: subject(req.direction, &req.scope),
            report,
        })
    }
}

impl SyncJobs {
    async fn notice(&self, run: &JobRun, level: NoticeLevel, text: &str) -> Result<(), JobError> {
        self.store
            .append_log(&NewLogEntry {
                job: Some(run.job.id),
                body: LogBody::Notice(Notice {
                    level,
                    message: text.to_string(),
                }),
            })
            .await?;
        Ok(())
    }
}

/// How a command's job ended, for its exit code and summary line.
#[derive(Debug)]
pub struct Ran {
    /// The job.
    pub job: JobId,
    /// Whether this process ran it (false: it followed another worker's run).
    pub here: bool,
    /// How it ended.
    pub state: JobState,
    /// Records per outcome across the job's attempts.
    pub counts: crate::store::Counts,
    /// Partly written records of the last attempt.
    pub problems: u64,
    /// Why it failed, and the kind of failure.
    pub error: Option<(FailKind, String)>,
    /// Wall time in this process.
    pub elapsed: std::time::Duration,
}

/// Finds the job a command should run: an unfinished job of the same kind and payload
/// (resumable: interrupted, or queued and not yet claimed), else a new one.
/// Queues a job of `kind` with `payload`, or finds the unfinished one of the same kind and payload
/// (`force` aside), which a later run continues: what every command and the console queue with.
pub async fn queue(store: &dyn Store, kind: JobKind, payload: &Value) -> Result<JobId, JobError> {
    let same = |p: &Value| {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("force");
            }
            v
        };
        strip(p) == strip(payload)
    };
    let unfinished = store
        .jobs(&JobFilter {
            states: vec![JobState::Running, JobState::Queued],
            kinds: vec![kind],
            limit: None,
        })
        .await?;
    // Oldest first: the one interrupted longest ago.
    if let Some(j) = unfinished.iter().rev().find(|j| same(&j.payload)) {
        return Ok(j.id);
    }
    Ok(store.enqueue(&NewJob::new(kind, payload.clone())).await?.id)
}

/// Queues a job of `kind` with `payload` (or takes over an unfinished one of the same kind and
/// payload) and runs it here; when another live worker runs it, follows it to its end. Ctrl-C
/// stops the run between two records and gives the job back to the queue.
pub async fn run_here(
    worker: &Worker,
    kind: JobKind,
    payload: Value,
    progress: Arc<dyn Progress>,
) -> Result<Ran, JobError> {
    let start = Instant::now();
    let store = worker.store().clone();
    let id = queue(store.as_ref(), kind, &payload).await?;
    let mut announced = false;
    let mut job = loop {
        if let Some(job) = worker.claim(id).await? {
            break job;
        }
        if !announced {
            progress.message(&format!(
                "{kind} job {id} is running in another process; following it (Ctrl-C stops \
                 following, not the job)"
            ));
            announced = true;
        }
        // Followed to its end, or until its worker stopped renewing the lease (then take it).
        if let Some(ran) = follow(worker, id, progress.as_ref(), start).await? {
            return Ok(ran);
        }
        progress.message(&format!(
            "the process running {kind} job {id} stopped; taking the job over"
        ));
    };
    // `--force` on this command counts for the job it resumes, which may have been queued
    // without it (the guardrails stopped it: the user now goes ahead).
    if payload.get("force") == Some(&Value::Bool(true))
        && let Some(m) = job.payload.as_object_mut()
    {
        m.insert("force".into(), Value::Bool(true));
    }
    if job.attempts > 1 {
        progress.message(&format!(
            "resuming {kind} job {id} (attempt {}), interrupted earlier",
            job.attempts
        ));
    } else {
        progress.message(&format!("{kind} job {id} started"));
    }
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    let told = progress.clone();
    let signal = tokio::spawn(async move {
        crate::runtime::stop_signal().await;
        told.message("stopping: the job is saved and can be continued");
        on_signal.cancel();
    });
    let finished = worker.run_claimed(job, progress, &shutdown).await;
    signal.abort();
    let f: Finished = finished?;
    Ok(Ran {
        job: f.job,
        here: true,
        state: f.state,
        counts: f.counts,
        problems: f.summary.as_ref().map_or(0, |s| s.report.problems),
        error: f.error.map(|e| (e.kind(), e.to_string())),
        elapsed: start.elapsed(),
    })
}

/// Watches job `id` until it ends, showing its progress: `Some` with how it ended, or `None`
/// when its lease ran out or its owner died (the caller takes it over).
async fn follow(
    worker: &Worker,
    id: JobId,
    progress: &dyn Progress,
    start: Instant,
) -> Result<Option<Ran>, JobError> {
    let store = worker.store().as_ref();
    let mut shown_total = None;
    loop {
        let Some(job) = store.job(id).await? else {
            return Err(JobError::Invalid(format!("job {id} disappeared")));
        };
        if let Some(total) = job.progress_total
            && shown_total != Some(total)
        {
            progress.start(job.kind.as_str(), total);
            shown_total = Some(total);
        }
        progress.set(job.progress_done);
        if job.state.is_terminal() {
            progress.finish();
            let finished = store
                .log(&LogQuery {
                    job: Some(id),
                    last: Some(20),
                    ..LogQuery::default()
                })
                .await?
                .into_iter()
                .rev()
                .find_map(|e| match e.body {
                    LogBody::RunFinished(f) => Some(f),
                    _ => None,
                });
            let counts = finished.as_ref().map(|f| f.counts).unwrap_or_default();
            let kind = finished
                .as_ref()
                .and_then(|f| f.failure.as_deref())
                .map_or(FailKind::Other, FailKind::parse);
            return Ok(Some(Ran {
                job: id,
                here: false,
                state: job.state,
                counts,
                problems: finished.as_ref().map_or(0, |f| f.problems),
                error: job.error.map(|e| (kind, e)),
                elapsed: start.elapsed(),
            }));
        }
        let now = chrono::Utc::now();
        let claimable = match job.state {
            JobState::Queued => job.run_after <= now,
            _ => {
                job.lease_expires_at.is_some_and(|t| t <= now)
                    || job
                        .lease_owner
                        .as_deref()
                        .is_some_and(super::owner::is_dead)
            }
        };
        if claimable {
            return Ok(None);
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
            r = tokio::signal::ctrl_c() => {
                if r.is_ok() {
                    return Err(JobError::Exec(super::error::ExecError::Interrupted(format!(
                        "stopped following job {id}; it goes on (`tandem log --follow --job {id}`)"
                    ))));
                }
            }
        }
    }
}

/// A worker for the manual runs, from the loaded runtime's parts.
pub fn worker(
    systems: Systems,
    program: ProgramSource,
    store: Arc<dyn Store>,
    options: ExecOptions,
    email: Option<SmtpSettings>,
) -> Worker {
    SyncJobs::new(systems, program, store.clone(), options).install(Worker::new(store).email(email))
}

/// The payload of a manual run.
pub fn payload(kind: JobKind, id: Option<&str>, force: bool) -> Value {
    let mut p = match (kind, id) {
        (JobKind::PushCompany, Some(id)) => json!({"company": id}),
        (JobKind::PushContact, Some(id)) => json!({"contact": id}),
        _ => json!({}),
    };
    if force && let Some(m) = p.as_object_mut() {
        m.insert("force".into(), Value::Bool(true));
    }
    p
}
