//! `tandem worker`: a worker alone (no HTTP, no poller) takes the jobs others queue in the shared
//! store — a bulk pull and record jobs — and two workers sharing one store do each job once and
//! never both create the same record.

use std::time::Duration;

use serde_json::json;
use tandem::cli::ConfigArgs;
use tandem::cli::Exit;
use tandem_core::model::{Object, RecordKey, System};
use tandem_engine::runtime::Env;
use tandem_engine::store::{JobFilter, JobKind, JobState, NewJob};
use tandem_sandbox::SandboxOptions;
use tokio_util::sync::CancellationToken;

use crate::support::serve::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_alone_take_the_queued_jobs_each_once() {
    let sb = sandbox(SandboxOptions {
        seed: 61,
        companies: 6,
        contacts: 6,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), |_, t| t);
    let store_url = dir.path().join("tandem.db").display().to_string();
    let store = tandem_engine::store::open(&store_url).await.unwrap();
    let args = tandem::cli::worker::Args {
        config: ConfigArgs {
            config: Some(rules.join("tandem.yaml")),
            rules: Some(rules.clone()),
            store: None,
        },
    };
    let shutdown = CancellationToken::new();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(tandem::cli::worker::work(
                args.clone(),
                Env::from_pairs(serve_env(&sb, &store_url)),
                shutdown.clone(),
            ))
        })
        .collect();

    // A bulk pull queued by someone else.
    let pull = store
        .enqueue(&NewJob::new(JobKind::Pull, json!({})))
        .await
        .unwrap();
    let done = wait_for("the pull to end", || {
        let store = store.clone();
        async move {
            store
                .job(pull.id)
                .await
                .unwrap()
                .filter(|j| j.state.is_terminal())
        }
    })
    .await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert!(!store.links(Object::Company).await.unwrap().is_empty());

    // Record jobs for new HubSpot companies (as a webhook receiver elsewhere would queue them).
    let mut ids = Vec::new();
    for i in 0..4 {
        let c = edit(
            sb.hubspot_url(),
            "companies",
            None,
            json!({"name": format!("Worker {i} Ltd"), "domain": format!("worker{i}.example"),
                   "lifecyclestage": "customer"}),
        )
        .await;
        let id = c["id"].as_str().unwrap().to_string();
        let key = RecordKey {
            system: System::HubSpot,
            object: Object::Company,
            id: id.clone(),
        };
        store
            .enqueue(&tandem_engine::server::record_job(&key, Duration::ZERO))
            .await
            .unwrap();
        ids.push(id);
    }
    wait_for("every record job to end", || {
        let store = store.clone();
        async move {
            let jobs = store.jobs(&JobFilter::default()).await.unwrap();
            jobs.iter().all(|j| j.state.is_terminal()).then_some(())
        }
    })
    .await;
    let accelo = records(sb.accelo_url(), "companies").await;
    for (i, id) in ids.iter().enumerate() {
        assert!(
            store
                .link(Object::Company, System::HubSpot, id)
                .await
                .unwrap()
                .is_some()
        );
        let name = format!("Worker {i} Ltd");
        let n = accelo
            .iter()
            .filter(|r| r["name"].as_str() == Some(name.as_str()))
            .count();
        assert_eq!(n, 1, "{name}");
    }
    let jobs = store.jobs(&JobFilter::default()).await.unwrap();
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:#?}"
    );
    // Each job claimed once: no attempt was repeated between the two workers.
    assert!(jobs.iter().all(|j| j.attempts == 1), "{jobs:#?}");

    // A new company with three contacts: its job and each contact's job (each of which creates
    // the company first when it is not linked yet) run on both workers at once. One Accelo
    // company, one Accelo contact each: a run that finds another creating the company leaves
    // it to that run and syncs its record again once it is linked.
    let company = edit(
        sb.hubspot_url(),
        "companies",
        None,
        json!({"name": "Shared Tandem Ltd", "domain": "shared-tandem.example",
               "lifecyclestage": "customer"}),
    )
    .await;
    let company_id = company["id"].as_str().unwrap().to_string();
    let mut keys = vec![RecordKey {
        system: System::HubSpot,
        object: Object::Company,
        id: company_id.clone(),
    }];
    for i in 0..3 {
        let c = edit(
            sb.hubspot_url(),
            "contacts",
            None,
            json!({"firstname": format!("Shared{i}"), "lastname": "Person",
                   "email": format!("shared{i}@shared-tandem.example"),
                   "lifecyclestage": "customer", "associatedcompanyid": company_id}),
        )
        .await;
        keys.push(RecordKey {
            system: System::HubSpot,
            object: Object::Contact,
            id: c["id"].as_str().unwrap().to_string(),
        });
    }
    // Contacts first, so that their jobs race to create the company; slow answers keep both
    // workers' creates in flight together.
    sb.set_faults(tandem_sandbox::FaultConfig {
        latency_ms: 20,
        ..Default::default()
    })
    .unwrap();
    for key in keys.iter().rev() {
        store
            .enqueue(&tandem_engine::server::record_job(key, Duration::ZERO))
            .await
            .unwrap();
    }
    wait_for("every contact to be linked", || {
        let store = store.clone();
        let keys = keys.clone();
        async move {
            for k in &keys {
                store.link(k.object, k.system, &k.id).await.unwrap()?;
            }
            let jobs = store.jobs(&JobFilter::default()).await.unwrap();
            jobs.iter().all(|j| j.state.is_terminal()).then_some(())
        }
    })
    .await;
    let named = |records: &[serde_json::Value], field: &str, value: &str| {
        records
            .iter()
            .filter(|r| r[field].as_str() == Some(value))
            .count()
    };
    let accelo = records(sb.accelo_url(), "companies").await;
    assert_eq!(named(&accelo, "name", "Shared Tandem Ltd"), 1);
    let affiliations = records(sb.accelo_url(), "affiliations").await;
    for i in 0..3 {
        let email = format!("shared{i}@shared-tandem.example");
        assert_eq!(named(&affiliations, "email", &email), 1, "{email}");
    }
    let jobs = store.jobs(&JobFilter::default()).await.unwrap();
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:#?}"
    );

    shutdown.cancel();
    for w in workers {
        assert_eq!(w.await.unwrap(), Exit::Ok);
    }
    sb.shutdown().await;
}
