//! `tandem serve` end to end, in-process, against the sandbox over real HTTP both ways: the
//! sandbox delivers signed HubSpot webhooks to the server, the worker syncs, the poller catches
//! what webhooks do not report. Every wait is a condition with a deadline.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::model::{Object, System};
use tandem_engine::server::Rules;
use tandem_engine::server::poll::{PollOptions, Poller};
use tandem_sandbox::{SandboxOptions, WebhookTarget};

use crate::support::serve::*;

fn options(seed: u64) -> SandboxOptions {
    let mut hook = WebhookTarget::new("");
    hook.secret = Some(WEBHOOK_SECRET.into());
    hook.retry_base = Duration::from_millis(200);
    SandboxOptions {
        seed,
        companies: 8,
        contacts: 16,
        hubspot_webhook: Some(hook),
        ..Default::default()
    }
}

fn writes(stats: &Value) -> u64 {
    stats["writes"].as_u64().unwrap()
}

/// Creates a qualifying company (and a contact of it) in HubSpot as a person would; answers
/// their ids.
async fn create_in_hubspot(sb: &tandem_sandbox::Sandbox, tag: &str) -> (String, String) {
    let company = edit(
        sb.hubspot_url(),
        "companies",
        None,
        json!({"name": format!("{tag} Widgets"), "domain": format!("{}.example", tag.to_lowercase()),
               "lifecyclestage": "customer", "phone": "+1 555 0100"}),
    )
    .await;
    let company_id = company["id"].as_str().unwrap().to_string();
    let contact = edit(
        sb.hubspot_url(),
        "contacts",
        None,
        json!({"firstname": "Ada", "lastname": format!("{tag}son"),
               "email": format!("ada@{}.example", tag.to_lowercase()),
               "associatedcompanyid": company_id}),
    )
    .await;
    (company_id, contact["id"].as_str().unwrap().to_string())
}

/// Waits until the Accelo record linked to HubSpot `object` `id` exists; answers its id.
async fn accelo_twin(serving: &Serving, object: Object, hubspot_id: &str) -> String {
    let store = serving.store.clone();
    wait_for(
        &format!("hubspot {object} {hubspot_id} to be linked"),
        || {
            let store = store.clone();
            async move {
                store
                    .link(object, System::HubSpot, hubspot_id)
                    .await
                    .unwrap()
                    .map(|l| l.accelo_id)
            }
        },
    )
    .await
}

async fn accelo_field(
    sb: &tandem_sandbox::Sandbox,
    object: &str,
    id: &str,
    field: &str,
) -> Option<String> {
    records(sb.accelo_url(), object)
        .await
        .into_iter()
        .find(|r| r["id"].as_str() == Some(id))
        .and_then(|r| r[field].as_str().map(str::to_string))
}

async fn hubspot_prop(
    sb: &tandem_sandbox::Sandbox,
    object: &str,
    id: &str,
    prop_name: &str,
) -> Option<String> {
    records(sb.hubspot_url(), object)
        .await
        .into_iter()
        .find(|r| r["id"].as_str() == Some(id))
        .and_then(|r| prop(&r, prop_name).map(str::to_string))
}

#[tokio::test]
async fn hubspot_creations_and_edits_reach_accelo_by_webhook_without_echo_writes() {
    let sb = sandbox(options(21)).await;
    let serving = Serving::start(&sb, 0, |_, t| t).await;

    // A qualifying company with a contact, created in HubSpot: both created in Accelo, the
    // contact on its company.
    let (company, contact) = create_in_hubspot(&sb, "Webhook").await;
    let ac_company = accelo_twin(&serving, Object::Company, &company).await;
    let ac_contact = accelo_twin(&serving, Object::Contact, &contact).await;
    assert_eq!(
        accelo_field(&sb, "companies", &ac_company, "name")
            .await
            .as_deref(),
        Some("Webhook Widgets")
    );
    let aff = records(sb.accelo_url(), "affiliations")
        .await
        .into_iter()
        .find(|a| a["contact"].as_str() == Some(ac_contact.as_str()))
        .unwrap();
    assert_eq!(aff["company"].as_str(), Some(ac_company.as_str()));
    assert_eq!(aff["email"].as_str(), Some("ada@webhook.example"));
    serving.settle(&sb).await;

    // Editing the linked company's name updates the Accelo company within seconds.
    let hs_writes = writes(&stats(sb.hubspot_url()).await);
    edit(
        sb.hubspot_url(),
        "companies",
        Some(&company),
        json!({"name": "Webhook Widgets Renamed"}),
    )
    .await;
    let renamed = wait_for("the new name in Accelo", || {
        let sb = &sb;
        let id = ac_company.clone();
        async move {
            accelo_field(sb, "companies", &id, "name")
                .await
                .filter(|n| n == "Webhook Widgets Renamed")
        }
    })
    .await;
    assert_eq!(renamed, "Webhook Widgets Renamed");
    serving.settle(&sb).await;

    // No echo: the rename went to Accelo only, nothing came back to HubSpot.
    assert_eq!(writes(&stats(sb.hubspot_url()).await), hs_writes);

    // Poll rounds then read back every record Tandem wrote. What they may still sync is state
    // that never went the other way — the HubSpot contact's `company` (its Accelo company's
    // name, a push-only mapping) and the status Accelo gave the new contact — once. Never a
    // write to the HubSpot company (that would be the rename echoing back), and then quiet.
    let poller = Poller::new(
        serving.store.clone(),
        Rules::Fixed(program()),
        hubspot(&sb),
        accelo(&sb),
        PollOptions {
            overlap: Duration::from_secs(3600),
            job_delay: Duration::ZERO,
        },
    );
    for _ in 0..2 {
        poller.poll_once().await.unwrap();
        serving.settle(&sb).await;
    }
    let hs_stats = stats(sb.hubspot_url()).await;
    let company_writes: u64 = hs_stats["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            k.contains("/objects/companies")
                && !k.starts_with("GET")
                && !k.contains("search")
                && !k.contains("batch/read")
        })
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(company_writes, 0, "{hs_stats}");
    let quiet = (writes(&hs_stats), writes(&stats(sb.accelo_url()).await));
    for _ in 0..2 {
        let round = poller.poll_once().await.unwrap();
        assert_eq!(round.queued(), 0, "{round:?}");
        serving.settle(&sb).await;
    }
    assert_eq!(
        (
            writes(&stats(sb.hubspot_url()).await),
            writes(&stats(sb.accelo_url()).await)
        ),
        quiet,
        "writes after everything was in step"
    );

    // Each record job logs each progress count once (it logged `progress 1/1` twice).
    let entries = serving
        .store
        .log(&tandem_engine::store::LogQuery::default())
        .await
        .unwrap();
    let mut progress: std::collections::BTreeMap<_, Vec<u64>> = Default::default();
    for e in &entries {
        if let tandem_engine::store::LogBody::RunProgress(p) = &e.body {
            progress.entry(e.job).or_default().push(p.done);
        }
    }
    assert!(!progress.is_empty());
    for (job, done) in &progress {
        assert!(
            done.windows(2).all(|w| w[0] < w[1]),
            "job {job:?}: {done:?}"
        );
    }

    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_property_outside_the_trigger_list_is_synced_by_the_poller_only() {
    let sb = sandbox(options(22)).await;
    // These rules map `phone` but do not list it as a trigger.
    let serving = Serving::start(&sb, 0, |file, text| {
        if file == "companies.yaml" {
            text.replacen("numberofemployees, phone,", "numberofemployees,", 1)
        } else {
            text
        }
    })
    .await;
    let program = tandem_core::compile::load(&tandem_core::rules::Paths {
        config: serving.rules.join("tandem.yaml"),
        rules_dir: serving.rules.clone(),
    })
    .unwrap()
    .program;
    assert!(!program.triggers(Object::Company, "phone"));
    assert!(program.triggers(Object::Company, "name"));

    let poller = Poller::new(
        serving.store.clone(),
        Rules::Fixed(program.clone()),
        hubspot(&sb),
        accelo(&sb),
        PollOptions {
            overlap: Duration::from_secs(3600),
            job_delay: Duration::ZERO,
        },
    );
    // The first round on a fresh store marks where polling starts.
    assert_eq!(poller.poll_once().await.unwrap().queued(), 0);

    let (company, _) = create_in_hubspot(&sb, "Trigger").await;
    let ac_company = accelo_twin(&serving, Object::Company, &company).await;
    serving.settle(&sb).await;
    let delivered = |sb: &tandem_sandbox::Sandbox| {
        sb.hubspot_stats()["webhooks"]["delivered_events"]
            .as_u64()
            .unwrap()
    };
    let before = delivered(&sb);

    // HubSpot reports the phone change (its subscriptions still include it) …
    edit(
        sb.hubspot_url(),
        "companies",
        Some(&company),
        json!({"phone": "+1 555 0199"}),
    )
    .await;
    wait_for("the phone change to be delivered", || {
        let n = delivered(&sb);
        async move { (n > before).then_some(()) }
    })
    .await;
    serving.settle(&sb).await;
    // … it is stored, and triggers nothing.
    let events = serving.store.unprocessed_events(100).await.unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(
        accelo_field(&sb, "companies", &ac_company, "phone")
            .await
            .as_deref(),
        Some("+1 555 0100")
    );

    // The poller sees the record changed and its job syncs the mapped phone.
    let round = poller.poll_once().await.unwrap();
    assert!(round.queued() >= 1, "{round:?}");
    wait_for("the phone in Accelo", || {
        let sb = &sb;
        let id = ac_company.clone();
        async move {
            accelo_field(sb, "companies", &id, "phone")
                .await
                .filter(|p| p == "+1 555 0199")
        }
    })
    .await;
    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
}

#[tokio::test]
async fn accelo_edits_reach_hubspot_through_the_poller_and_the_echo_is_dropped() {
    let sb = sandbox(options(23)).await;
    let serving = Serving::start(&sb, 1, |_, t| t).await;
    let (company, _) = create_in_hubspot(&sb, "Poller").await;
    let ac_company = accelo_twin(&serving, Object::Company, &company).await;
    serving.settle(&sb).await;

    // A person edits the company in Accelo: the poller finds it, HubSpot gets it (Accelo
    // initiates).
    edit(
        sb.accelo_url(),
        "companies",
        Some(&ac_company),
        json!({"comments": "Edited in Accelo"}),
    )
    .await;
    wait_for("the Accelo edit in HubSpot", || {
        let sb = &sb;
        let id = company.clone();
        async move {
            hubspot_prop(sb, "companies", &id, "description")
                .await
                .filter(|d| d == "Edited in Accelo")
        }
    })
    .await;
    serving.settle(&sb).await;

    // HubSpot's webhook for Tandem's own write came back (settle waited for every delivery)
    // and was recognised as an echo: stored, settled, no job for the HubSpot record.
    let rows = serving.store.unprocessed_events(100).await.unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    let key = format!("hubspot:company:{company}");
    let echo = serving
        .store
        .jobs(&tandem_engine::store::JobFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|j| j.coalesce_key.as_deref() == Some(key.as_str()))
        .count();
    // One job for the creation; none for the echo of the description Tandem wrote.
    assert_eq!(echo, 1);

    // Quiet afterwards: poll rounds see the records Tandem wrote and queue nothing.
    let (hs, ac) = (
        writes(&stats(sb.hubspot_url()).await),
        writes(&stats(sb.accelo_url()).await),
    );
    let poller = Poller::new(
        serving.store.clone(),
        Rules::Fixed(program()),
        hubspot(&sb),
        accelo(&sb),
        PollOptions {
            overlap: Duration::from_secs(3600),
            job_delay: Duration::ZERO,
        },
    );
    for _ in 0..2 {
        let round = poller.poll_once().await.unwrap();
        assert_eq!(round.queued(), 0, "{round:?}");
    }
    serving.settle(&sb).await;
    assert_eq!(writes(&stats(sb.hubspot_url()).await), hs);
    assert_eq!(writes(&stats(sb.accelo_url()).await), ac);
    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
}

#[tokio::test]
async fn accelo_webhooks_sync_accelo_edits_without_the_poller() {
    let sb = sandbox(options(24)).await;
    let serving = Serving::start(&sb, 0, |_, t| t).await;
    sb.subscribe_accelo_webhook(
        "update_company",
        &format!("{}/webhooks/accelo", serving.url),
        ACCELO_WEBHOOK_SECRET,
    )
    .unwrap();
    let (company, _) = create_in_hubspot(&sb, "Hooked").await;
    let ac_company = accelo_twin(&serving, Object::Company, &company).await;
    serving.settle(&sb).await;

    edit(
        sb.accelo_url(),
        "companies",
        Some(&ac_company),
        json!({"comments": "Signed by Accelo"}),
    )
    .await;
    wait_for("the Accelo edit in HubSpot", || {
        let sb = &sb;
        let id = company.clone();
        async move {
            hubspot_prop(sb, "companies", &id, "description")
                .await
                .filter(|d| d == "Signed by Accelo")
        }
    })
    .await;
    serving.settle(&sb).await;
    let jobs = serving
        .store
        .jobs(&tandem_engine::store::JobFilter::default())
        .await
        .unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.coalesce_key.as_deref() == Some(&format!("accelo:company:{ac_company}"))),
        "{jobs:#?}"
    );
    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
}

/// `(object:target id, field=value)` of each change.
type Writes = std::collections::BTreeSet<(String, String)>;

/// A bulk pull against a fresh sandbox of `seed` under `tandem serve`, with the sandbox's Accelo
/// webhooks on or off. Answers what record jobs wrote afterwards (the webhooks the pull's own
/// Accelo writes caused), and what a bulk push planned right after them would change.
async fn pull_under_serve(seed: u64, accelo_hooks: bool) -> (Writes, Writes) {
    use tandem_engine::store::{JobKind, LogBody, LogQuery};
    let sb = sandbox(SandboxOptions {
        seed,
        companies: 20,
        contacts: 80,
        rate_limits: tandem_sandbox::RateLimits::unlimited(),
        ..Default::default()
    })
    .await;
    let serving = Serving::start(&sb, 0, |_, t| t).await;
    if accelo_hooks {
        for event in [
            "create_company",
            "update_company",
            "create_contact",
            "update_contact",
        ] {
            sb.subscribe_accelo_webhook(
                event,
                &format!("{}/webhooks/accelo", serving.url),
                ACCELO_WEBHOOK_SECRET,
            )
            .unwrap();
        }
    }
    let store_url = serving
        .rules
        .parent()
        .unwrap()
        .join("tandem.db")
        .display()
        .to_string();
    let options = tandem_engine::runtime::Options {
        config: Some(serving.rules.join("tandem.yaml")),
        rules: Some(serving.rules.clone()),
        env: tandem_engine::runtime::Env::from_pairs(serve_env(&sb, &store_url)),
        retry: None,
        store: None,
    };
    let out = tandem::cli::pull::run_job(
        options.clone(),
        JobKind::Pull,
        tandem_engine::exec::jobs::payload(JobKind::Pull, None, false),
        tandem_engine::exec::progress::ProgressMode::Silent,
    )
    .await;
    assert_eq!(out.exit, tandem::cli::Exit::Ok, "{}", out.stderr);
    wait_for("the Accelo webhooks to be delivered", || {
        let pending = sb.accelo_stats()["webhooks"]["pending"].as_u64();
        async move { (pending == Some(0)).then_some(()) }
    })
    .await;
    serving.settle(&sb).await;
    let jobs = serving.store.jobs(&Default::default()).await.unwrap();
    let record_jobs: Vec<_> = jobs
        .iter()
        .filter(|j| j.kind == JobKind::Record)
        .map(|j| j.id)
        .collect();
    let mut written = Writes::new();
    for e in serving.store.log(&LogQuery::default()).await.unwrap() {
        if let LogBody::Record(r) = &e.body
            && e.job.is_some_and(|j| record_jobs.contains(&j))
        {
            for c in &r.changes {
                written.insert((
                    format!("{}:{}", r.object, r.target.id.clone().unwrap_or_default()),
                    format!("{}={:?}", c.field, c.to),
                ));
            }
        }
    }
    let rt = tandem_engine::runtime::Runtime::load(options).unwrap();
    let snap = rt
        .read(
            tandem_core::model::Direction::Push,
            &tandem_core::plan::Scope::All,
        )
        .await
        .unwrap();
    let plan = tandem_core::plan::plan(&rt.program, &snap.input(tandem_core::plan::Mode::Bulk));
    let mut bulk = Writes::new();
    for a in &plan.actions {
        for c in &a.changes {
            bulk.insert((
                format!("{}:{}", a.object, a.target.id.clone().unwrap_or_default()),
                format!("{}={:?}", c.field, c.to),
            ));
        }
    }
    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
    (written, bulk)
}

/// The Accelo webhooks a pull's own writes cause make record jobs write to HubSpot only what a
/// bulk push would write on the same data (e.g. a contact's `company` text showing the Accelo
/// company's name, as the rules say): never a value of Tandem's own write bounced back. Without
/// the webhooks nothing is written after the pull.
#[tokio::test]
async fn webhooks_caused_by_a_pulls_own_writes_write_only_what_a_push_would() {
    let (after_hooks, _) = pull_under_serve(8, true).await;
    let (after_none, bulk) = pull_under_serve(8, false).await;
    assert!(after_none.is_empty(), "{after_none:?}");
    assert!(
        !after_hooks.is_empty(),
        "the webhooks caused no write: the test no longer covers the case"
    );
    let beyond: Vec<_> = after_hooks.difference(&bulk).collect();
    assert!(
        beyond.is_empty(),
        "record jobs wrote what a bulk push would not: {beyond:?}"
    );
}
