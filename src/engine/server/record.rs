//! The `record` job (B12): sync one record after a webhook or a poll found it changed.
//!
//! 1. Re-read the record now (never trust the event's value; a record that no longer exists is
//!    logged and left alone) with what a plan of it needs ([`crate::snapshot`], scope `Record`):
//!    its link, its twin on the other side, for a contact its company (linked, or read so that it
//!    is created first), and — for a record not linked yet — duplicate candidates.
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

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::metrics as m;
use super::receiver::{Rules, record_of_job};
use crate::connect::Connector;
use crate::connect::Systems;
use crate::exec::worker::JobError;
use crate::exec::{ExecError, Executor, JobHandler, JobRun, Report, RunContext, RunSummary};
use crate::snapshot::{self, ReadError, Snapshot};
use crate::store::{JobKind, LogBody, NewJob, NewLogEntry, Notice, NoticeLevel, RunStarted, Store};
use tandem_core::compile::Program;
use tandem_core::model::{Direction, RecordKey, System};
use tandem_core::plan::saved::Scope;
use tandem_core::plan::{Mode, Plan, PlanInput, Summary, plan};

/// Retries of a record job whose systems could not be reached, before it fails.
pub const MAX_RETRIES: u32 = 10;

/// How long after a run that left a create to another run the record is synced again.
const DEFERRAL_DELAY: Duration = Duration::from_secs(5);

/// Runs `record` jobs.
#[derive(Debug, Clone)]
pub struct RecordHandler {
    rules: Rules,
    executor: Executor,
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

    /// Reads what a plan of `key` needs ([`crate::snapshot`], scope `Record`); `None` when the
    /// record no longer exists.
    pub async fn snapshot(
        &self,
        program: &Program,
        key: &RecordKey,
    ) -> Result<Option<Snapshot>, ReadError> {
        let systems = Systems {
            hubspot: Arc::clone(self.connector(System::HubSpot)),
            accelo: Arc::clone(self.connector(System::Accelo)),
        };
        let scope = Scope::Record {
            system: key.system,
            object: key.object,
            id: key.id.clone(),
        };
        let direction = Direction::from_source(key.system);
        let snap = snapshot::read(
            &systems,
            program,
            Some(self.store().as_ref()),
            direction,
            &scope,
        )
        .await?;
        Ok(snap
            .record(key.system, key.object, &key.id)
            .is_some()
            .then_some(snap))
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
        let queued = self
            .queue_again(
                key,
                json!({"record": key.to_string(), "retry": retry + 1}),
                delay,
            )
            .await?;
        self.notice(
            run,
            NoticeLevel::Warn,
            format!(
                "{why}; `{key}` will be synced again in {} s (job {})",
                delay.as_secs(),
                queued
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

impl RecordHandler {
    /// Queues a `record` job for `key` with `payload`, runnable after `delay` (coalescing with
    /// one already queued).
    async fn queue_again(
        &self,
        key: &RecordKey,
        payload: serde_json::Value,
        delay: Duration,
    ) -> Result<crate::store::JobId, JobError> {
        let mut job = NewJob::new(JobKind::Record, payload).coalesce(key.to_string());
        job.run_after = chrono::Duration::from_std(delay)
            .ok()
            .map(|d| chrono::Utc::now() + d);
        Ok(self.store().enqueue(&job).await?.id)
    }

    /// After a run that left creates to another run (it was creating the same record): syncs
    /// the record again a little later, when that run has linked it, so that this change is
    /// not lost. At most [`MAX_RETRIES`] times in a row.
    async fn after_deferral(&self, run: &JobRun, key: &RecordKey) -> Result<(), JobError> {
        let deferrals = run
            .job
            .payload
            .get("deferred")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        if deferrals >= MAX_RETRIES {
            return self
                .notice(
                    run,
                    NoticeLevel::Warn,
                    format!(
                        "`{key}` was left to another run {MAX_RETRIES} times in a row; the poller \
                         or its next change syncs it"
                    ),
                )
                .await;
        }
        let queued = self
            .queue_again(
                key,
                json!({"record": key.to_string(), "deferred": deferrals + 1}),
                DEFERRAL_DELAY,
            )
            .await?;
        self.notice(
            run,
            NoticeLevel::Info,
            format!(
                "another run was creating part of `{key}`; it is synced again in {} s (job {queued})",
                DEFERRAL_DELAY.as_secs()
            ),
        )
        .await
    }
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
    let make = |direction: Direction, mut actions: Vec<tandem_core::plan::Action>| {
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

/// Counts the outcomes of one part of a record job, by the system written to.
fn count(target: System, report: &Report) {
    let c = &report.counts;
    for (n, outcome) in [
        (c.created, "created"),
        (c.updated, "updated"),
        (c.linked, "linked"),
        (c.noop, "noop"),
        (c.skipped, "skipped"),
        (c.failed, "failed"),
    ] {
        if n > 0 {
            metrics::counter!(m::RECORD_ACTIONS, "system" => target.as_str(), "outcome" => outcome)
                .increment(n);
        }
    }
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
    total.deferred += part.deferred;
}

#[async_trait]
impl JobHandler for RecordHandler {
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError> {
        let key = record_of_job(&run.job.payload).map_err(JobError::Invalid)?;
        let _waits = crate::exec::waits::WaitLog::start(&self.executor, run.job.id);
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
            Err(ReadError::Connect(e)) => {
                return Err(JobError::Invalid(format!("reading `{key}`: {e}")));
            }
            Err(ReadError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(JobError::Invalid(e.to_string())),
        };
        let input = PlanInput {
            initiator: key.system,
            ..snap.input(Mode::Incremental)
        };
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
            Ok(r) => {
                count(forward.direction.target(), &r);
                r
            }
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
                    Ok(r) => {
                        count(back.direction.target(), &r);
                        add(&mut report, &r);
                    }
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
        if report.deferred > 0 {
            self.after_deferral(run, &key).await?;
        }
        metrics::counter!(m::RECORD_JOBS, "outcome" => "succeeded").increment(1);
        Ok(summary(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_core::plan::{Action, Change, Op, RecordRef};

    fn action(seq: u32, from: System, depends_on: Option<u32>) -> Action {
        Action {
            seq,
            object: tandem_core::model::Object::Company,
            op: Op::Update,
            source: RecordRef {
                system: from,
                id: Some(format!("{from}-1")),
            },
            target: RecordRef {
                system: from.other(),
                id: Some(format!("{}-1", from.other())),
            },
            changes: vec![Change {
                field: "name".into(),
                from: None,
                to: Some("x".into()),
            }],
            reason: String::new(),
            depends_on,
            last_synced: None,
            target_company_id: None,
            affiliation_id: None,
            replaces_twin: None,
        }
    }

    #[test]
    fn a_plan_splits_into_its_forward_part_and_its_write_back() {
        let actions = vec![
            action(1, System::HubSpot, None),
            action(2, System::Accelo, Some(1)),
        ];
        let whole = Plan {
            direction: Direction::Pull,
            initiator: System::HubSpot,
            rules_hash: "h".into(),
            mode: Mode::Incremental,
            summary: Summary::of(&actions),
            actions,
        };
        let (forward, back) = split(&whole);
        assert_eq!(forward.direction, Direction::Pull);
        assert_eq!(forward.actions.len(), 1);
        assert_eq!(forward.summary.update, 1);
        let back = back.unwrap();
        assert_eq!(back.direction, Direction::Push);
        assert_eq!(back.initiator, System::HubSpot);
        assert_eq!(back.actions[0].target.system, System::HubSpot);
        // Its dependency is the forward part, which runs (and must succeed) first.
        assert_eq!(back.actions[0].depends_on, None);

        let only_forward = Plan {
            actions: vec![action(1, System::HubSpot, None)],
            ..whole
        };
        assert!(split(&only_forward).1.is_none());
    }
}
