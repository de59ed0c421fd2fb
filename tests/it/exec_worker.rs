//! The job runner on SQLite and PostgreSQL: dispatch by kind, the run's start and end in the
//! sync log with counts across attempts, leases kept alive by heartbeats, a lost lease stops the
//! run, shutdown gives the job back, a dead owner's job is taken over at once, a job that keeps
//! dying is given up, and only bulk pushes get the completion notice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tandem_core::model::{Direction, Object, System};
use tandem_core::plan::RecordRef;
use tandem_engine::exec::progress::Silent;
use tandem_engine::exec::worker::{JobError, job_counts};
use tandem_engine::exec::{ExecError, JobHandler, JobRun, RunSummary, Worker};
use tandem_engine::store::testing::for_each_store;
use tandem_engine::store::{
    JobKind, JobState, LinkChange, LogBody, LogQuery, NewJob, Outcome, RecordEntry, RecordOutcome,
    RunStarted, Store,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Logs one record outcome per `ids` entry, as a run would.
async fn log_records(run: &JobRun, ids: &[(&str, Outcome)]) {
    for (id, outcome) in ids {
        run.store
            .record_outcome(&RecordOutcome {
                job: Some(run.job.id),
                entry: RecordEntry {
                    object: Object::Company,
                    source: RecordRef {
                        system: System::HubSpot,
                        id: Some(id.to_string()),
                    },
                    target: RecordRef {
                        system: System::Accelo,
                        id: None,
                    },
                    outcome: *outcome,
                    reason: String::new(),
                    changes: Vec::new(),
                    error: None,
                },
                link: LinkChange::Keep,
                resolve_intent: None,
            })
            .await
            .unwrap();
    }
}

fn started(kind: JobKind) -> RunStarted {
    RunStarted {
        job_kind: kind,
        direction: Some(Direction::Pull),
        initiator: Some(System::HubSpot),
        subject: None,
        total: Some(2),
    }
}

/// Logs two records and succeeds.
struct Simple;

#[async_trait]
impl JobHandler for Simple {
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError> {
        run.started(started(run.job.kind)).await?;
        log_records(run, &[("1", Outcome::Created), ("2", Outcome::Noop)]).await;
        Ok(RunSummary {
            direction: Some(Direction::Pull),
            initiator: Some(System::HubSpot),
            ..RunSummary::default()
        })
    }
}

fn kinds(log: &[tandem_engine::store::LogEntry]) -> Vec<&'static str> {
    log.iter().map(|e| e.body.kind()).collect()
}

#[tokio::test]
async fn a_job_runs_to_its_end_with_start_and_finish_in_the_log() {
    for_each_store(|store| async move {
        let worker = Worker::new(store.clone()).handle(JobKind::Pull, Arc::new(Simple));
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({})))
            .await
            .unwrap()
            .id;
        let job = worker.claim(id).await.unwrap().unwrap();
        assert_eq!(job.lease_owner.as_deref(), Some(worker.owner()));
        let done = worker
            .run_claimed(job, Arc::new(Silent), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(done.state, JobState::Succeeded);
        assert!(done.is_clean());
        assert_eq!((done.counts.created, done.counts.noop), (1, 1));
        let job = store.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Succeeded);
        let log = store
            .log(&LogQuery {
                job: Some(id),
                ..LogQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            kinds(&log),
            ["run_started", "record", "record", "run_finished"]
        );
        let LogBody::RunFinished(f) = &log[3].body else {
            panic!()
        };
        assert_eq!(
            (f.state, f.counts.created, f.counts.noop),
            (JobState::Succeeded, 1, 1)
        );
        assert_eq!(f.direction, Some(Direction::Pull));
        // A pull sends no email and says nothing about it (B13 and B2: pushes only).
        assert!(!log.iter().any(|e| matches!(e.body, LogBody::Notice(_))));
    })
    .await;
}

#[tokio::test]
async fn a_bulk_push_ends_with_the_email_notice() {
    for_each_store(|store| async move {
        let worker = Worker::new(store.clone()).handle(JobKind::Push, Arc::new(Simple));
        let id = store
            .enqueue(&NewJob::new(JobKind::Push, json!({})))
            .await
            .unwrap()
            .id;
        let job = worker.claim(id).await.unwrap().unwrap();
        worker
            .run_claimed(job, Arc::new(Silent), &CancellationToken::new())
            .await
            .unwrap();
        let log = store
            .log(&LogQuery {
                job: Some(id),
                ..LogQuery::default()
            })
            .await
            .unwrap();
        let LogBody::Notice(n) = &log.last().unwrap().body else {
            panic!("{:?}", kinds(&log))
        };
        assert!(
            n.message.contains("email is not configured"),
            "{}",
            n.message
        );
    })
    .await;
}

/// Fails the first attempt like a crash would (logs, then the lease is never renewed); the
/// second attempt logs the same records again plus one more.
struct CrashOnce {
    attempts: AtomicU32,
}

#[async_trait]
impl JobHandler for CrashOnce {
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError> {
        run.started(started(run.job.kind)).await?;
        if self.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            log_records(run, &[("1", Outcome::Failed)]).await;
            return Err(JobError::Exec(ExecError::Interrupted("stopped".into())));
        }
        log_records(run, &[("1", Outcome::Created), ("2", Outcome::Created)]).await;
        Ok(RunSummary::default())
    }
}

#[tokio::test]
async fn an_interrupted_job_is_given_back_and_resumes_under_the_same_id() {
    for_each_store(|store| async move {
        let worker = Worker::new(store.clone()).handle(
            JobKind::Pull,
            Arc::new(CrashOnce {
                attempts: AtomicU32::new(0),
            }),
        );
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({})))
            .await
            .unwrap()
            .id;
        let job = worker.claim(id).await.unwrap().unwrap();
        let first = worker
            .run_claimed(job, Arc::new(Silent), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(first.state, JobState::Queued);
        assert_eq!(
            store.job(id).await.unwrap().unwrap().state,
            JobState::Queued
        );

        let job = worker.claim(id).await.unwrap().unwrap();
        assert_eq!(job.attempts, 2);
        let second = worker
            .run_claimed(job, Arc::new(Silent), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(second.state, JobState::Succeeded);
        // The last entry per record counts: record 1 failed, then was created.
        assert_eq!((second.counts.created, second.counts.failed), (2, 0));
        let log = store
            .log(&LogQuery {
                job: Some(id),
                ..LogQuery::default()
            })
            .await
            .unwrap();
        // One run_started; the resumed attempt says so in a notice.
        assert_eq!(
            kinds(&log),
            [
                "run_started",
                "record",
                "notice",
                "record",
                "record",
                "run_finished"
            ]
        );
        assert_eq!(job_counts(store.as_ref(), id).await.unwrap().created, 2);
    })
    .await;
}

/// Runs until cancelled, heart-beating through the worker.
struct UntilCancelled {
    started: Arc<Notify>,
}

#[async_trait]
impl JobHandler for UntilCancelled {
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError> {
        self.started.notify_one();
        run.cancel.cancelled().await;
        Err(JobError::Exec(ExecError::Interrupted("cancelled".into())))
    }
}

#[tokio::test]
async fn heartbeats_keep_the_lease_and_a_lost_lease_stops_the_run() {
    for_each_store(|store| async move {
        let started = Arc::new(Notify::new());
        let worker = Worker::new(store.clone())
            .lease(Duration::from_millis(600))
            .handle(
                JobKind::Pull,
                Arc::new(UntilCancelled {
                    started: started.clone(),
                }),
            );
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({})))
            .await
            .unwrap()
            .id;
        let job = worker.claim(id).await.unwrap().unwrap();
        let w = worker.clone();
        let task = tokio::spawn(async move {
            w.run_claimed(job, Arc::new(Silent), &CancellationToken::new())
                .await
        });
        started.notified().await;
        // Several lease lengths later, the lease is still held: heartbeats renew it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let first_expiry = store
            .job(id)
            .await
            .unwrap()
            .unwrap()
            .lease_expires_at
            .unwrap();
        loop {
            let j = store.job(id).await.unwrap().unwrap();
            assert_eq!(j.lease_owner.as_deref(), Some(worker.owner()));
            if j.lease_expires_at.unwrap() > first_expiry + chrono::Duration::milliseconds(1200) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lease was never renewed"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            store
                .claim(id, "intruder", Duration::from_secs(5))
                .await
                .unwrap()
                .is_none()
        );
        // Cancelling the job in the store: the next heartbeat loses the lease; the run stops and
        // the worker touches the job no more.
        assert!(store.cancel(id).await.unwrap());
        let done = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the run stops")
            .unwrap()
            .unwrap();
        assert_eq!(done.state, JobState::Running, "lost lease: {done:?}");
        assert_eq!(
            store.job(id).await.unwrap().unwrap().state,
            JobState::Cancelled
        );
    })
    .await;
}

#[tokio::test]
async fn shutdown_gives_the_running_job_back() {
    for_each_store(|store| async move {
        let started = Arc::new(Notify::new());
        let worker = Worker::new(store.clone()).handle(
            JobKind::Push,
            Arc::new(UntilCancelled {
                started: started.clone(),
            }),
        );
        let id = store
            .enqueue(&NewJob::new(JobKind::Push, json!({})))
            .await
            .unwrap()
            .id;
        let shutdown = CancellationToken::new();
        let w = worker.clone();
        let s = shutdown.clone();
        let task = tokio::spawn(async move { w.run(s).await });
        started.notified().await;
        assert_eq!(
            store.job(id).await.unwrap().unwrap().state,
            JobState::Running
        );
        shutdown.cancel();
        task.await.unwrap().unwrap();
        let j = store.job(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Queued);
        assert!(j.lease_owner.is_none());
    })
    .await;
}

#[tokio::test]
async fn a_dead_owners_job_is_taken_over_at_once() {
    for_each_store(|store| async move {
        let worker = Worker::new(store.clone()).handle(JobKind::Pull, Arc::new(Simple));
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({})))
            .await
            .unwrap()
            .id;
        // A process of this host that has exited holds a long lease.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let host = tandem_engine::exec::owner::hostname();
        let dead = format!("tandem@{host}:{pid}:1:deadbeef");
        store
            .claim(id, &dead, Duration::from_secs(3600))
            .await
            .unwrap()
            .unwrap();
        // A live owner's job is not taken.
        let other = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({"other": true})))
            .await
            .unwrap()
            .id;
        let me = tandem_engine::exec::owner::new_owner();
        store
            .claim(other, &format!("{me}x"), Duration::from_secs(3600))
            .await
            .unwrap()
            .unwrap();
        assert!(worker.claim(other).await.unwrap().is_none());

        let job = worker.claim(id).await.unwrap().expect("taken over");
        assert_eq!(job.attempts, 2);
        assert_eq!(job.lease_owner.as_deref(), Some(worker.owner()));
        // The store's take-over only works while the dead owner still holds the lease.
        assert!(
            store
                .take_over(id, &dead, "someone", Duration::from_secs(5))
                .await
                .unwrap()
                .is_none()
        );
        let done = worker
            .run_claimed(job, Arc::new(Silent), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(done.state, JobState::Succeeded);
    })
    .await;
}

#[tokio::test]
async fn a_job_that_keeps_dying_is_given_up() {
    for_each_store(|store| async move {
        let worker = Worker::new(store.clone())
            .max_attempts(2)
            .handle(JobKind::Pull, Arc::new(Simple));
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({})))
            .await
            .unwrap()
            .id;
        for n in 0..2 {
            // Claimed by workers that died: their leases expired at once.
            store
                .claim(id, &format!("gone-{n}"), Duration::ZERO)
                .await
                .unwrap()
                .unwrap();
        }
        let job = worker.claim(id).await.unwrap().unwrap();
        assert_eq!(job.attempts, 3);
        let done = worker
            .run_claimed(job, Arc::new(Silent), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(done.state, JobState::Failed);
        // Its own kind of failure, not invalid input.
        assert_eq!(
            done.error.as_ref().map(JobError::kind),
            Some(tandem_engine::exec::worker::FailKind::GaveUp)
        );
        let j = store.job(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Failed);
        let error = j.error.unwrap();
        assert!(
            error.contains(&format!(
                "gave up on pull job {id} after 2 interrupted attempts"
            )),
            "{error}"
        );
        assert!(error.contains(&format!("tandem log --job {id}")), "{error}");
        // The sync log counts the interrupted attempts.
        let finished = store
            .log(&LogQuery {
                job: Some(id),
                ..LogQuery::default()
            })
            .await
            .unwrap()
            .into_iter()
            .find_map(|e| match e.body {
                LogBody::RunFinished(f) => Some(f),
                _ => None,
            })
            .unwrap();
        assert_eq!(finished.failure.as_deref(), Some("gave_up"));
        assert_eq!(finished.interrupted, 2);
    })
    .await;
}

#[tokio::test]
async fn a_kind_without_handler_fails_and_the_loop_claims_only_its_kinds() {
    for_each_store(|store| async move {
        let worker = Worker::new(store.clone()).handle(JobKind::Pull, Arc::new(Simple));
        let record = store
            .enqueue(&NewJob::new(JobKind::Record, json!({})))
            .await
            .unwrap()
            .id;
        let pull = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({})))
            .await
            .unwrap()
            .id;
        let shutdown = CancellationToken::new();
        let w = worker.clone();
        let s = shutdown.clone();
        let task = tokio::spawn(async move { w.run(s).await });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while store.job(pull).await.unwrap().unwrap().state != JobState::Succeeded {
            assert!(tokio::time::Instant::now() < deadline);
            worker.wake();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(
            store.job(record).await.unwrap().unwrap().state,
            JobState::Queued
        );

        // Run directly, an unknown kind fails the job.
        let job = worker.claim(record).await.unwrap().unwrap();
        let done = worker
            .run_claimed(job, Arc::new(Silent), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(done.state, JobState::Failed);
        assert!(
            done.error
                .unwrap()
                .to_string()
                .contains("no handler for `record`")
        );
        let _: &dyn Store = store.as_ref();
    })
    .await;
}

/// Waits for its gate, then fails as if HubSpot could not be reached.
struct FailsWhenOpened(Arc<Notify>);

#[async_trait]
impl JobHandler for FailsWhenOpened {
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError> {
        run.started(started(run.job.kind)).await?;
        self.0.notified().await;
        Err(JobError::Unreachable("hubspot cannot be reached".into()))
    }
}

/// A display that says when its command started following another process's run.
struct Following(Arc<Notify>);

impl tandem_engine::exec::progress::Progress for Following {
    fn start(&self, _: &str, _: u64) {}
    fn set(&self, _: u64) {}
    fn message(&self, text: &str) {
        if text.contains("following it") {
            self.0.notify_one();
        }
    }
    fn finish(&self) {}
}

#[tokio::test]
async fn a_command_following_another_process_run_gets_its_failure_kind() {
    for_each_store(|store| async move {
        let gate = Arc::new(Notify::new());
        let runner = Worker::new(store.clone())
            .handle(JobKind::Pull, Arc::new(FailsWhenOpened(gate.clone())));
        let payload = tandem_engine::exec::jobs::payload(JobKind::Pull, None, false);
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, payload.clone()))
            .await
            .unwrap()
            .id;
        let job = runner.claim(id).await.unwrap().unwrap();
        let running = tokio::spawn(async move {
            runner
                .run_claimed(job, Arc::new(Silent), &CancellationToken::new())
                .await
        });
        // Another process runs the same command: it follows the running job…
        let follower = Worker::new(store.clone()).handle(JobKind::Pull, Arc::new(Simple));
        let watching = Arc::new(Notify::new());
        let display = Arc::new(Following(watching.clone()));
        let followed = tokio::spawn(async move {
            tandem_engine::exec::jobs::run_here(&follower, JobKind::Pull, payload, display).await
        });
        // …which then fails: the follower reports the failure's kind (exit 3), not "other".
        watching.notified().await;
        gate.notify_one();
        running.await.unwrap().unwrap();
        let ran = followed.await.unwrap().unwrap();
        assert_eq!(
            (ran.job, ran.here, ran.state),
            (id, false, JobState::Failed)
        );
        let (kind, text) = ran.error.unwrap();
        assert_eq!(kind, tandem_engine::exec::worker::FailKind::Unreachable);
        assert!(text.contains("cannot be reached"), "{text}");
    })
    .await;
}

/// Runs until its gate opens (a long bulk run).
struct Long(Arc<Notify>);

#[async_trait]
impl JobHandler for Long {
    async fn run(&self, run: &JobRun) -> Result<RunSummary, JobError> {
        run.started(started(run.job.kind)).await?;
        self.0.notified().await;
        Ok(RunSummary::default())
    }
}

#[tokio::test]
async fn record_jobs_do_not_wait_behind_a_bulk_run() {
    for_each_store(|store| async move {
        let gate = Arc::new(Notify::new());
        let worker = Worker::new(store.clone())
            .handle(JobKind::Pull, Arc::new(Long(gate.clone())))
            .handle(JobKind::Record, Arc::new(Simple))
            .idle_poll(Duration::from_millis(20));
        let pull = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({})))
            .await
            .unwrap()
            .id;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let looping = tokio::spawn(async move { worker.run(stop).await });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let wait = |id, state| {
            let store = store.clone();
            async move {
                loop {
                    if store.job(id).await.unwrap().unwrap().state == state {
                        return;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "job {id} never {state:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        wait(pull, JobState::Running).await;
        // A webhook's record job, queued while the pull runs, is done while the pull still is.
        let record = store
            .enqueue(&NewJob::new(
                JobKind::Record,
                json!({"record": "hubspot:company:1"}),
            ))
            .await
            .unwrap()
            .id;
        wait(record, JobState::Succeeded).await;
        assert_eq!(
            store.job(pull).await.unwrap().unwrap().state,
            JobState::Running
        );
        gate.notify_one();
        wait(pull, JobState::Succeeded).await;
        shutdown.cancel();
        looping.await.unwrap().unwrap();
    })
    .await;
}
