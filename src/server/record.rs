//! The `record` job (B12): sync one record after a webhook or a poll found it changed.
//!
//! 1. Re-read the record now (never trust the event's value; a record that no longer exists is
//!    logged and left alone), with what a plan of it needs: its link, its twin on the other side,
//!    for a contact its company (linked, or read so that it is created first), and — for a
//!    record not linked yet — the other side's records that its duplicate-detection lookups find.
//! 2. Plan it with the record's system as the initiator, in incremental mode: per field, the
//!    side that changed since the last sync wins, in either direction; a field neither side
//!    changed is left alone (an echo of Tandem's own write writes nothing, B17); when both changed
//!    the newer edit wins (the reason in the sync log says so). Unlinked → criteria → create when
//!    satisfied, company before contact.
//! 3. Apply it through the executor, every step in the sync log; no email (B13). Actions that
//!    write back onto the record's own side (the other side changed too) run second, and only
//!    when the first part went through.
//!
//! A system that cannot be reached does not fail the change: the job queues its own retry
//! (30 s, doubling, at most an hour apart) and ends; after [`MAX_RETRIES`] it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::{Rules, metrics as m, record_of_job};
use crate::compile::Program;
use crate::connect::{Changes, ConnectError, Connector};
use crate::exec::executor::lookups_for;
use crate::exec::worker::JobError;
use crate::exec::{ExecError, Executor, JobHandler, JobRun, Report, RunContext, RunSummary};
use crate::model::{Direction, Link, Object, Record, RecordKey, System};
use crate::plan::{Mode, Op, Plan, PlanInput, Summary, plan};
use crate::store::{JobKind, LogBody, NewJob, NewLogEntry, Notice, NoticeLevel, RunStarted, Store};

/// Retries of a record job whose systems could not be reached, before it fails.
pub const MAX_RETRIES: u32 = 10;

/// Runs `record` jobs.
#[derive(Debug, Clone)]
pub struct RecordHandler {
    rules: Rules,
    executor: Executor,
}

/// What a plan of one record is made from.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Records of the initiator's side (the record, and a contact's unlinked company).
    pub source: Vec<Record>,
    /// Records of the other side (twins and duplicate candidates).
    pub target: Vec<Record>,
    /// The links of all of them.
    pub links: Vec<Link>,
}

impl RecordHandler {
    /// A handler planning with the running `rules` and writing through `executor`.
    pub fn new(rules: Rules, executor: Executor) -> RecordHandler {
        RecordHandler { rules, executor }
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.executor.store()
    }

    fn connector(&self, system: System) -> &Arc<dyn Connector> {
        self.executor.connector(system)
    }

    async fn notice(
        &self,
        run: &JobRun,
        level: NoticeLevel,
        message: String,
    ) -> Result<(), JobError> {
        self.store()
            .append_log(&NewLogEntry {
                job: Some(run.job.id),
                body: LogBody::Notice(Notice { level, message }),
            })
            .await?;
        Ok(())
    }

    /// Reads what a plan of `key` needs; `None` when the record no longer exists.
    pub async fn snapshot(
        &self,
        program: &Program,
        key: &RecordKey,
    ) -> Result<Option<Snapshot>, ReadError> {
        let store = self.store();
        let src_sys = key.system;
        let tgt_sys = src_sys.other();
        let mut snap = Snapshot::default();
        let Some(record) = self.get(program, src_sys, key.object, &key.id).await? else {
            return Ok(None);
        };
        let mut links: BTreeMap<(Object, String), Link> = BTreeMap::new();
        if let Some(l) = store.link(key.object, src_sys, &key.id).await? {
            links.insert((l.object, l.hubspot_id.clone()), l);
        }
        // A contact's company: its link, or the company itself so that it is created first.
        let company = match (key.object, &record.company_id) {
            (Object::Contact, Some(cid)) => {
                match store.link(Object::Company, src_sys, cid).await? {
                    Some(l) => {
                        links.insert((l.object, l.hubspot_id.clone()), l);
                        None
                    }
                    None => self.get(program, src_sys, Object::Company, cid).await?,
                }
            }
            _ => None,
        };
        snap.source.push(record);
        snap.source.extend(company);

        // Twins of the linked ones.
        let mut twins: BTreeMap<Object, Vec<String>> = BTreeMap::new();
        for r in &snap.source {
            if let Some(l) = links
                .values()
                .find(|l| l.object == r.object && l.id_on(src_sys) == r.id)
            {
                twins
                    .entry(r.object)
                    .or_default()
                    .push(l.id_on(tgt_sys).to_string());
            }
        }
        for (object, ids) in twins {
            let props = program.read_properties(object);
            let found = self
                .connector(tgt_sys)
                .get(object, &ids, &props)
                .await
                .map_err(ReadError::Connect)?;
            snap.target.extend(found);
        }
        snap.links = links.into_values().collect();

        // Unlinked records: find the other side's candidates by the values a create would write
        // (the same lookups the executor settles lost creates with), then link what they hit.
        let direction = Direction::from_source(src_sys);
        let first = plan(program, &self.input(&snap, direction, src_sys));
        let mut seen: BTreeSet<(Object, String)> = snap
            .target
            .iter()
            .map(|r| (r.object, r.id.clone()))
            .collect();
        for a in first.actions.iter().filter(|a| a.op == Op::Create) {
            let changes: Changes = a
                .changes
                .iter()
                .map(|c| (c.field.clone(), c.to.clone()))
                .collect();
            let props = program.read_properties(a.object);
            for lookup in lookups_for(tgt_sys, a.object, &changes) {
                let found = self
                    .connector(tgt_sys)
                    .find(a.object, &lookup, &props)
                    .await
                    .map_err(ReadError::Connect)?;
                for r in found {
                    if seen.insert((r.object, r.id.clone())) {
                        if let Some(l) = store.link(r.object, tgt_sys, &r.id).await?
                            && !snap.links.contains(&l)
                        {
                            snap.links.push(l);
                        }
                        snap.target.push(r);
                    }
                }
            }
        }
        Ok(Some(snap))
    }

    async fn get(
        &self,
        program: &Program,
        system: System,
        object: Object,
        id: &str,
    ) -> Result<Option<Record>, ReadError> {
        let props = program.read_properties(object);
        let mut found = self
            .connector(system)
            .get(object, &[id.to_string()], &props)
            .await
            .map_err(ReadError::Connect)?;
        Ok(found.pop())
    }

    fn input<'a>(
        &self,
        snap: &'a Snapshot,
        direction: Direction,
        initiator: System,
    ) -> PlanInput<'a> {
        PlanInput {
            direction,
            initiator,
            mode: Mode::Incremental,
            source: &snap.source,
            target: &snap.target,
            links: &snap.links,
            bypass_criteria: false,
        }
    }

    /// Queues this job's retry after an outage, or gives up after [`MAX_RETRIES`].
    async fn retry_later(
        &self,
        run: &JobRun,
        key: &RecordKey,
        why: &str,
    ) -> Result<RunSummary, JobError> {
        let retry = run
            .job
            .payload
            .get("retry")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        if retry >= MAX_RETRIES {
            return Err(JobError::Unreachable(format!(
                "{why}; gave up on `{key}` after {MAX_RETRIES} retries"
            )));
        }
        let delay = Duration::from_secs(30u64.saturating_mul(1 << retry.min(7)).min(3600));
        let mut job = NewJob::new(
            JobKind::Record,
            json!({"record": key.to_string(), "retry": retry + 1}),
        )
        .coalesce(key.to_string());
        job.run_after = chrono::Duration::from_std(delay)
            .ok()
            .map(|d| chrono::Utc::now() + d);
        let queued = self.store().enqueue(&job).await?;
        self.notice(
            run,
            NoticeLevel::Warn,
            format!(
                "{why}; `{key}` will be synced again in {} s (job {})",
                delay.as_secs(),
                queued.id
            ),
        )
        .await?;
        metrics::counter!(m::RECORD_JOBS, "outcome" => "retried").increment(1);
        Ok(RunSummary {
            direction: Some(Direction::from_source(key.system)),
            initiator: Some(key.system),
            subject: Some(key.to_string()),
            report: Report::default(),
        })
    }
}

/// Why reading a record failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A system failed.
    #[error(transparent)]
    Connect(ConnectError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Splits an incremental plan into the part written onto the plan's target and the part written
/// back onto its source (the other side changed too), each a plan of its own direction.
pub fn split(plan: &Plan) -> (Plan, Option<Plan>) {
    let target = plan.direction.target();
    let (forward, reverse): (Vec<_>, Vec<_>) = plan
        .actions
        .iter()
        .cloned()
        .partition(|a| a.target.system == target);
    let make = |direction: Direction, mut actions: Vec<crate::plan::Action>| {
        let seqs: BTreeSet<u32> = actions.iter().map(|a| a.seq).collect();
        for a in &mut actions {
            // A dependency on the other part is met: that part runs first and must succeed.
            if a.depends_on.is_some_and(|d| !seqs.contains(&d)) {
                a.depends_on = None;
            }
        }
        Plan {
            direction,
            initiator: plan.initiator,
            rules_hash: plan.rules_hash.clone(),
            mode: plan.mode,
            summary: Summary::of(&actions),
            actions,
        }
    };
    let back = (!reverse.is_empty()).then(|| {
        let direction = match plan.direction {
            Direction::Pull => Direction::Push,
            Direction::Push => Direction::Pull,
        };
        make(direction, reverse)
    });
    (make(plan.direction, forward), back)
}

fn add(total: &mut Report, part: &Report) {
    let (t, p) = (&mut total.counts, &part.counts);
    t.created += p.created;
    t.updated += p.updated;
    t.linked += p.linked;
    t.noop += p.noop;
    t.skipped += p.skipped;
    t.failed += p.failed;
    total.problems += part.problems;
}

#[async_trait]
impl JobHandler for RecordHandler {
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError> {
        let key = record_of_job(&run.job.payload).map_err(JobError::Invalid)?;
        let program = self.rules.current();
        let direction = Direction::from_source(key.system);
        let summary = |report: Report| RunSummary {
            direction: Some(direction),
            initiator: Some(key.system),
            subject: Some(key.to_string()),
            report,
        };
        run.started(RunStarted {
            job_kind: JobKind::Record,
            direction: Some(direction),
            initiator: Some(key.system),
            subject: Some(key.to_string()),
            total: None,
        })
        .await?;
        if program.object(key.object).is_none() {
            self.notice(
                run,
                NoticeLevel::Info,
                format!(
                    "no rules for {}: `{key}` is not synced",
                    key.object.plural()
                ),
            )
            .await?;
            return Ok(summary(Report::default()));
        }
        if run.resumed() {
            // An earlier attempt died: settle the creates it may have sent before planning.
            match crate::exec::recover::settle(&self.executor, Some(run.job.id)).await {
                Ok(_) => {}
                Err(ExecError::Unreachable(e)) => {
                    return self
                        .retry_later(run, &key, &format!("a system cannot be reached: {e}"))
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let snap = match self.snapshot(&program, &key).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                self.notice(
                    run,
                    NoticeLevel::Info,
                    format!("`{key}` no longer exists; nothing to sync"),
                )
                .await?;
                return Ok(summary(Report::default()));
            }
            Err(ReadError::Connect(e)) if e.is_unreachable() => {
                return self
                    .retry_later(run, &key, &format!("a system cannot be reached: {e}"))
                    .await;
            }
            Err(ReadError::Connect(e)) => return Err(JobError::Exec(ExecError::Unreachable(e))),
            Err(ReadError::Store(e)) => return Err(e.into()),
        };
        let input = self.input(&snap, direction, key.system);
        let whole = plan(&program, &input);
        let (forward, back) = split(&whole);
        let ctx = RunContext {
            lease: Some(&run.lease),
            cancel: run.cancel.clone(),
            progress: run.progress.as_ref(),
            bulk: false,
            resume: run.resumed(),
        };
        let mut report = match self.executor.execute(&forward, &input, &ctx).await {
            Ok(r) => r,
            Err(ExecError::Unreachable(e)) => {
                return self
                    .retry_later(run, &key, &format!("a system cannot be reached: {e}"))
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(back) = back {
            if report.counts.failed == 0 {
                let reversed = PlanInput {
                    direction: back.direction,
                    ..input
                };
                match self.executor.execute(&back, &reversed, &ctx).await {
                    Ok(r) => add(&mut report, &r),
                    Err(ExecError::Unreachable(e)) => {
                        return self
                            .retry_later(run, &key, &format!("a system cannot be reached: {e}"))
                            .await;
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                self.notice(
                    run,
                    NoticeLevel::Warn,
                    format!(
                        "`{key}`: {} change(s) from {} not written back because the write to {} \
                         failed; the next sync retries",
                        back.actions.len(),
                        key.system.other(),
                        key.system.other()
                    ),
                )
                .await?;
            }
        }
        metrics::counter!(m::RECORD_JOBS, "outcome" => "succeeded").increment(1);
        Ok(summary(report))
    }
}
