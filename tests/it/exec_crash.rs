//! Crash safety (B20) with the real binary: `tandem pull` (Accelo writes one by one, four in
//! flight) and `tandem push` (HubSpot batches of 100) are killed with SIGKILL at several points —
//! while reading (the job claimed, nothing logged yet) and then each time a few dozen more
//! records were logged, polled from the store — and started again until they finish. The end
//! state equals that of an uninterrupted run on an identical sandbox, with no duplicate on
//! either side, every intent settled, and the whole run under one job id.

use std::time::Duration;

use tandem_core::model::{Object, Record};
use tandem_engine::store::{JobFilter, JobKind, JobState, LogBody, LogQuery, Store};
use tandem_sandbox::{FaultConfig, Sandbox};
use tokio::time::Instant;

use crate::support::exec::*;

const SEED: u64 = 31;
const COMPANIES: usize = 150;
const CONTACTS: usize = 500;

/// The content of one side, ids left out (they depend on creation order): one line per record.
fn content(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|r| {
            let mut doc = r.doc.clone();
            for k in [
                "id",
                "date_modified",
                "date_created",
                "hs_object_id",
                "createdate",
                "lastmodifieddate",
                "hs_lastmodifieddate",
                "associatedcompanyid",
            ] {
                doc.remove(k);
            }
            for nested in ["affiliation", "postal_address", "company", "status"] {
                if let Some(serde_json::Value::Object(m)) = doc.get_mut(nested) {
                    m.remove("id");
                    m.remove("date_modified");
                }
            }
            format!("{}:{}", r.object, serde_json::Value::Object(doc))
        })
        .collect();
    out.sort();
    out
}

async fn sandbox_with_latency() -> Sandbox {
    let sb = sandbox(SEED, COMPANIES, CONTACTS).await;
    // A little latency keeps several writes in flight when the process dies.
    sb.set_faults(FaultConfig {
        latency_ms: 2,
        ..FaultConfig::default()
    })
    .unwrap();
    sb
}

/// Record entries of `job` so far.
async fn logged(store: &dyn Store, job: tandem_engine::store::JobId) -> usize {
    store
        .log(&LogQuery {
            job: Some(job),
            ..LogQuery::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(e.body, LogBody::Record(_)))
        .count()
}

/// The job of `kind`, once the child has created it.
async fn the_job(store: &dyn Store, kind: JobKind, deadline: Instant) -> tandem_engine::store::Job {
    loop {
        let jobs = store
            .jobs(&JobFilter {
                kinds: vec![kind],
                ..JobFilter::default()
            })
            .await
            .unwrap();
        if let Some(j) = jobs.into_iter().next() {
            return j;
        }
        assert!(Instant::now() < deadline, "the {kind} job never appeared");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_pull_at_several_points_ends_like_an_uninterrupted_run() {
    kill_again_and_again(JobKind::Pull, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_push_at_several_points_ends_like_an_uninterrupted_run() {
    kill_again_and_again(JobKind::Push, 100).await;
}

/// Runs `kind` uninterrupted on one sandbox, and on an identical one kills it after every
/// `step` more logged records until it finishes; compares the two.
async fn kill_again_and_again(kind: JobKind, step: usize) {
    let command = kind.as_str();
    let direction = match kind {
        JobKind::Pull => tandem_core::model::Direction::Pull,
        _ => tandem_core::model::Direction::Push,
    };
    // The reference: one uninterrupted run.
    let reference = sandbox_with_latency().await;
    let rp = Project::new(&reference, "");
    let out = rp.command(&[command]).output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let program = program();
    let ref_store = rp.store().await;
    let want = World::read(
        &program,
        &*hubspot(&reference),
        &*accelo(&reference),
        ref_store.as_ref(),
    )
    .await;

    // The same, killed again and again.
    let sb = sandbox_with_latency().await;
    let p = Project::new(&sb, "");
    let deadline = Instant::now() + Duration::from_secs(240);
    // The store exists before the first run (the test reads it while the runs write it).
    let store = p.store().await;
    let mut kills = Vec::new();
    let mut job_id = None;
    let mut finished = false;
    // Kill points: the job running but nothing logged yet; then every `step` more records.
    for point in 0..6 {
        let mut child = p.command(&[command]).spawn().unwrap();
        let job = the_job(store.as_ref(), kind, deadline).await;
        job_id.get_or_insert(job.id);
        assert_eq!(Some(job.id), job_id, "a rerun must take over the same job");
        let start = logged(store.as_ref(), job.id).await;
        let target = if point == 0 { 0 } else { start + step };
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let j = store.job(job.id).await.unwrap().unwrap();
            let running_here = j.state == JobState::Running
                && j.lease_owner
                    .as_deref()
                    .is_some_and(|o| o.contains(&format!(":{}:", child.id().unwrap_or(0))));
            if running_here && logged(store.as_ref(), job.id).await >= target {
                break None;
            }
            assert!(Instant::now() < deadline, "no progress");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        match exited {
            Some(status) => {
                // It finished before the kill point: no more kills.
                assert_eq!(status.code(), Some(0));
                finished = true;
                break;
            }
            None => {
                child.kill().await.unwrap(); // SIGKILL
                // The run may have finished its job between the check and the kill: then it
                // ended before the kill point (a new run would rightly start a new job).
                let j = store.job(job.id).await.unwrap().unwrap();
                if j.state == JobState::Succeeded {
                    finished = true;
                    break;
                }
                let open = store.open_intents().await.unwrap().len();
                kills.push((logged(store.as_ref(), job.id).await, open));
            }
        }
    }
    assert!(kills.len() >= 3, "killed only at {kills:?}");
    // Then run to the end (unless the last start did).
    if !finished {
        let out = p.command(&[command]).output().await.unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with(&format!("{command} job {} finished", job_id.unwrap())),
            "{stdout}"
        );
    }
    eprintln!("killed at (record entries, open intents): {kills:?}");

    let got = World::read(&program, &*hubspot(&sb), &*accelo(&sb), store.as_ref()).await;
    // Same records on both sides, same number of links.
    for (system, g, w) in [
        ("hubspot", content(&got.hubspot), content(&want.hubspot)),
        ("accelo", content(&got.accelo), content(&want.accelo)),
    ] {
        assert_eq!(
            g.len(),
            w.len(),
            "a duplicate or a missing record in {system}"
        );
        assert_eq!(g, w, "{system}");
    }
    for object in Object::ALL {
        let n = |links: &[tandem_core::model::Link]| {
            links.iter().filter(|l| l.object == object).count()
        };
        assert_eq!(n(&got.links), n(&want.links), "{object} links");
    }
    assert!(store.open_intents().await.unwrap().is_empty());
    // One job, succeeded, the whole run logged under it; nothing left to do.
    let jobs = store.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Succeeded);
    assert!(jobs[0].attempts as usize > kills.len());
    let plan = got.plan(&program, direction);
    assert_eq!(
        plan.summary.create + plan.summary.update + plan.summary.link,
        0
    );
    let finished = store
        .log(&LogQuery {
            job: job_id,
            ..LogQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            LogBody::RunFinished(f) => Some(f),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(finished.len(), 1);
    let ref_counts = ref_store
        .log(&LogQuery::default())
        .await
        .unwrap()
        .into_iter()
        .find_map(|e| match e.body {
            LogBody::RunFinished(f) => Some(f.counts),
            _ => None,
        })
        .unwrap();
    // Created + linked across the attempts = those of the uninterrupted run.
    let c = finished[0].counts;
    assert_eq!(
        (c.created + c.linked, c.failed),
        (ref_counts.created + ref_counts.linked, 0),
        "{c:?} vs {ref_counts:?}"
    );
    reference.shutdown().await;
    sb.shutdown().await;
}
