//! The job queue, on SQLite and PostgreSQL: queueing, coalescing, claiming under leases, crash
//! recovery through expired leases, lease fencing, progress, checkpoints, release, cancel, and
//! concurrent claimers that never share a job.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tandem_engine::store::testing::{TestStore, for_each_store};
use tandem_engine::store::{
    JobEnd, JobFilter, JobId, JobKind, JobState, NewEvent, NewJob, Store, StoreError,
};

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn enqueue_then_claim_runs_jobs_in_order() {
    for_each_store(|store| async move {
        let a = store
            .enqueue(&NewJob::new(JobKind::Pull, json!({"objects": ["company"]})))
            .await
            .unwrap();
        let b = store
            .enqueue(&NewJob::new(JobKind::Push, json!(null)))
            .await
            .unwrap();
        assert!(a.created && b.created);
        assert!(b.id > a.id);

        let job = store.job(a.id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.kind, JobKind::Pull);
        assert_eq!(job.payload, json!({"objects": ["company"]}));
        assert_eq!(job.attempts, 0);
        assert!(job.lease_owner.is_none() && job.started_at.is_none());

        let first = store.claim_next("w1", &[], LEASE).await.unwrap().unwrap();
        assert_eq!(first.id, a.id);
        assert_eq!(first.state, JobState::Running);
        assert_eq!(first.lease_owner.as_deref(), Some("w1"));
        assert_eq!(first.attempts, 1);
        assert!(first.started_at.is_some());
        assert!(first.lease_expires_at.unwrap() > chrono::Utc::now());

        let second = store.claim_next("w2", &[], LEASE).await.unwrap().unwrap();
        assert_eq!(second.id, b.id);
        assert!(store.claim_next("w3", &[], LEASE).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn claim_next_only_takes_the_kinds_asked_for() {
    for_each_store(|store| async move {
        let pull = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap();
        let record = store
            .enqueue(&NewJob::new(
                JobKind::Record,
                json!({"key": "hubspot:company:1"}),
            ))
            .await
            .unwrap();
        let got = store
            .claim_next("w", &[JobKind::Record, JobKind::PushContact], LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.id, record.id);
        assert!(
            store
                .claim_next("w", &[JobKind::Record], LEASE)
                .await
                .unwrap()
                .is_none()
        );
        let got = store
            .claim_next("w", &[JobKind::Pull], LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.id, pull.id);
    })
    .await;
}

#[tokio::test]
async fn a_queued_job_absorbs_later_jobs_with_its_key() {
    for_each_store(|store| async move {
        let job = || NewJob::new(JobKind::Record, json!({})).coalesce("hubspot:company:42");
        let first = store.enqueue(&job()).await.unwrap();
        let again = store.enqueue(&job()).await.unwrap();
        assert!(first.created);
        assert!(!again.created);
        assert_eq!(again.id, first.id);

        // Another record's key is a separate job.
        let other = store
            .enqueue(&NewJob::new(JobKind::Record, json!({})).coalesce("hubspot:company:43"))
            .await
            .unwrap();
        assert!(other.created);
        assert_ne!(other.id, first.id);

        // Once the job runs, a new event for the record needs a new job (the running one may
        // already have read the record).
        let claimed = store.claim(first.id, "w", LEASE).await.unwrap().unwrap();
        assert_eq!(claimed.coalesce_key.as_deref(), Some("hubspot:company:42"));
        let after = store.enqueue(&job()).await.unwrap();
        assert!(after.created);
        assert_ne!(after.id, first.id);
        let after_again = store.enqueue(&job()).await.unwrap();
        assert_eq!(after_again.id, after.id);
        assert!(!after_again.created);
    })
    .await;
}

#[tokio::test]
async fn an_expired_lease_makes_the_job_claimable_again_with_its_checkpoint() {
    for_each_store(|store| async move {
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        // Worker 1 claims with a lease that is already over: it "crashed".
        let job = store
            .claim_next("w1", &[], Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        store
            .save_checkpoint(id, "w1", &json!({"done_through": 17}))
            .await
            .unwrap();
        store.set_progress(id, "w1", 17, Some(40)).await.unwrap();
        assert_eq!(job.id, id);

        let again = store.claim_next("w2", &[], LEASE).await.unwrap().unwrap();
        assert_eq!(again.id, id);
        assert_eq!(again.lease_owner.as_deref(), Some("w2"));
        assert_eq!(again.attempts, 2);
        assert_eq!(again.checkpoint, Some(json!({"done_through": 17})));
        assert_eq!((again.progress_done, again.progress_total), (17, Some(40)));
        assert_eq!(again.started_at, job.started_at, "first start is kept");

        // The worker that lost the lease is fenced off from the job.
        for err in [
            store.heartbeat(id, "w1", LEASE).await.unwrap_err(),
            store.set_progress(id, "w1", 18, None).await.unwrap_err(),
            store
                .save_checkpoint(id, "w1", &json!({"done_through": 18}))
                .await
                .unwrap_err(),
            store
                .finish(id, "w1", &JobEnd::Succeeded)
                .await
                .unwrap_err(),
        ] {
            match err {
                StoreError::LeaseLost { job, owner, state } => {
                    assert_eq!(job, id);
                    assert_eq!(owner, "w1");
                    assert_eq!(state, "running under `w2`");
                }
                other => panic!("expected a lost lease, got {other}"),
            }
        }
        let job = store.job(id).await.unwrap().unwrap();
        assert_eq!(job.checkpoint, Some(json!({"done_through": 17})));
        assert_eq!(job.progress_done, 17);

        // A live lease is not taken over.
        assert!(store.claim(id, "w3", LEASE).await.unwrap().is_none());
        store.heartbeat(id, "w2", LEASE).await.unwrap();
        store.finish(id, "w2", &JobEnd::Succeeded).await.unwrap();
        let done = store.job(id).await.unwrap().unwrap();
        assert_eq!(done.state, JobState::Succeeded);
        assert!(done.finished_at.is_some());
        assert!(store.claim_next("w3", &[], LEASE).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn heartbeat_keeps_a_short_lease_alive() {
    for_each_store(|store| async move {
        let id = store
            .enqueue(&NewJob::new(JobKind::Push, json!(null)))
            .await
            .unwrap()
            .id;
        store
            .claim_next("w1", &[], Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        // Expired but not yet taken: the owner may still extend it.
        store.heartbeat(id, "w1", LEASE).await.unwrap();
        assert!(store.claim_next("w2", &[], LEASE).await.unwrap().is_none());
        let job = store.job(id).await.unwrap().unwrap();
        assert!(job.lease_expires_at.unwrap() > chrono::Utc::now() + chrono::Duration::seconds(30));
    })
    .await;
}

#[tokio::test]
async fn finishing_records_failure_and_scrubs_the_error() {
    for_each_store(|store| async move {
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        store.claim(id, "w", LEASE).await.unwrap().unwrap();
        store
            .finish(
                id,
                "w",
                &JobEnd::Failed(
                    "hubspot refused Authorization: Bearer pat-na1-1234567890abcdef".into(),
                ),
            )
            .await
            .unwrap();
        let job = store.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Failed);
        let error = job.error.unwrap();
        assert!(error.starts_with("hubspot refused"), "{error}");
        assert!(!error.contains("pat-na1-1234567890abcdef"), "{error}");
        // Finishing twice is refused.
        assert!(matches!(
            store.finish(id, "w", &JobEnd::Succeeded).await,
            Err(StoreError::LeaseLost { .. })
        ));
        assert!(matches!(
            store.heartbeat(JobId(999_999), "w", LEASE).await,
            Err(StoreError::NoSuchJob(JobId(999_999)))
        ));
    })
    .await;
}

#[tokio::test]
async fn release_requeues_and_delays() {
    for_each_store(|store| async move {
        let id = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        store.claim(id, "w", LEASE).await.unwrap().unwrap();
        store
            .save_checkpoint(id, "w", &json!({"page": 3}))
            .await
            .unwrap();
        // Back to the queue, not claimable for an hour.
        assert_eq!(
            store
                .release(id, "w", Some(Duration::from_secs(3600)))
                .await
                .unwrap(),
            id
        );
        let job = store.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert!(job.lease_owner.is_none());
        assert!(store.claim_next("w", &[], LEASE).await.unwrap().is_none());
        assert!(store.claim(id, "w", LEASE).await.unwrap().is_none());

        let id2 = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        store.claim(id2, "w", LEASE).await.unwrap().unwrap();
        store.release(id2, "w", None).await.unwrap();
        let again = store.claim_next("w2", &[], LEASE).await.unwrap().unwrap();
        assert_eq!(again.id, id2);
        assert_eq!(again.attempts, 2);
        // Releasing someone else's job is refused.
        assert!(matches!(
            store.release(id2, "w", None).await,
            Err(StoreError::LeaseLost { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn releasing_a_job_whose_key_is_queued_again_hands_over_to_that_job() {
    for_each_store(|store| async move {
        let job = || NewJob::new(JobKind::Record, json!({})).coalesce("accelo:contact:9");
        let event = |n: u32| NewEvent {
            source: tandem_core::model::System::HubSpot,
            dedup_key: format!("ev-{n}"),
            object: Some(tandem_core::model::Object::Contact),
            record_id: Some("9".into()),
            payload: json!({"eventId": n}),
        };
        let first = store.accept_event(&event(1), Some(&job())).await.unwrap();
        let running = first.job.unwrap().id;
        store.claim(running, "w", LEASE).await.unwrap().unwrap();
        let second = store.accept_event(&event(2), Some(&job())).await.unwrap();
        let queued = second.job.unwrap().id;
        assert_ne!(queued, running);

        // Shutting down: the running job goes back, but a queued job already covers the record.
        let next = store.release(running, "w", None).await.unwrap();
        assert_eq!(next, queued);
        let old = store.job(running).await.unwrap().unwrap();
        assert_eq!(old.state, JobState::Cancelled);
        assert_eq!(
            old.error.as_deref(),
            Some(&*format!("superseded by job {queued}"))
        );
        let events: Vec<_> = store
            .events_for_job(queued)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.dedup_key)
            .collect();
        assert_eq!(events, ["ev-1", "ev-2"]);
    })
    .await;
}

#[tokio::test]
async fn cancel_stops_queued_and_running_jobs() {
    for_each_store(|store| async move {
        let queued = store
            .enqueue(&NewJob::new(JobKind::Push, json!(null)))
            .await
            .unwrap()
            .id;
        let running = store
            .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
            .await
            .unwrap()
            .id;
        store.claim(running, "w", LEASE).await.unwrap().unwrap();
        assert!(store.cancel(queued).await.unwrap());
        assert!(store.cancel(running).await.unwrap());
        assert!(!store.cancel(running).await.unwrap(), "already over");
        assert!(matches!(
            store.cancel(JobId(424_242)).await,
            Err(StoreError::NoSuchJob(_))
        ));
        assert!(store.claim_next("w2", &[], LEASE).await.unwrap().is_none());
        match store.heartbeat(running, "w", LEASE).await {
            Err(StoreError::LeaseLost { state, .. }) => assert_eq!(state, "cancelled"),
            other => panic!("expected a lost lease, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn jobs_are_listed_newest_first_with_filters() {
    for_each_store(|store| async move {
        let mut ids = Vec::new();
        for kind in [JobKind::Pull, JobKind::Push, JobKind::Pull, JobKind::Record] {
            ids.push(
                store
                    .enqueue(&NewJob::new(kind, json!(null)))
                    .await
                    .unwrap()
                    .id,
            );
        }
        store.claim(ids[2], "w", LEASE).await.unwrap().unwrap();
        let all = store.jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(
            all.iter().map(|j| j.id).collect::<Vec<_>>(),
            ids.iter().rev().copied().collect::<Vec<_>>()
        );
        let pulls = store
            .jobs(&JobFilter {
                kinds: vec![JobKind::Pull],
                states: vec![JobState::Queued, JobState::Running],
                limit: None,
            })
            .await
            .unwrap();
        assert_eq!(
            pulls.iter().map(|j| j.id).collect::<Vec<_>>(),
            [ids[2], ids[0]]
        );
        let running = store
            .jobs(&JobFilter {
                states: vec![JobState::Running],
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(running.len(), 1);
        let newest = store
            .jobs(&JobFilter {
                limit: Some(1),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(newest[0].id, ids[3]);
    })
    .await;
}

/// Several workers, each with its own connection pool (as separate processes would have),
/// claim concurrently: every job is claimed exactly once.
async fn concurrent_claimers_never_share_a_job(ts: TestStore) {
    const JOBS: usize = 120;
    const WORKERS: usize = 6;
    for n in 0..JOBS {
        ts.store
            .enqueue(&NewJob::new(JobKind::Record, json!({ "n": n })))
            .await
            .unwrap();
    }
    let mut handles = Vec::new();
    for w in 0..WORKERS {
        let store: Arc<dyn Store> = tandem_engine::store::open(&ts.url).await.unwrap();
        handles.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            while let Some(job) = store.claim_next(&owner, &[], LEASE).await.unwrap() {
                assert_eq!(job.lease_owner.as_deref(), Some(owner.as_str()));
                mine.push(job.id);
                store
                    .finish(job.id, &owner, &JobEnd::Succeeded)
                    .await
                    .unwrap();
            }
            store.close().await;
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut per_worker = Vec::new();
    for h in handles {
        let mine = h.await.unwrap();
        per_worker.push(mine.len());
        for id in mine {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), JOBS, "claims per worker: {per_worker:?}");
    let left = ts
        .store
        .jobs(&JobFilter {
            states: vec![JobState::Queued, JobState::Running],
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert!(left.is_empty());
    ts.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_job_sqlite() {
    concurrent_claimers_never_share_a_job(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_job_postgres() {
    concurrent_claimers_never_share_a_job(TestStore::postgres().await).await;
}
