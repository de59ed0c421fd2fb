//! Two-way automatic sync without ping-pong (B17): people edit both systems continuously while
//! `tandem serve` runs its webhooks and its poller; the writes Tandem makes are bounded by the
//! human edits, both sides converge, and once people stop Tandem stops. Concurrent edits of the
//! same field resolve by the documented rule (the newer edit wins), visibly in the sync log.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::model::{Object, System};
use tandem_engine::server::Rules;
use tandem_engine::server::poll::{PollOptions, Poller};
use tandem_engine::store::{LogBody, LogQuery};
use tandem_sandbox::{FaultConfig, Sandbox, SandboxOptions, WebhookTarget};

use crate::support::serve::*;

fn options(seed: u64) -> SandboxOptions {
    let mut hook = WebhookTarget::new("");
    hook.secret = Some(WEBHOOK_SECRET.into());
    hook.retry_base = Duration::from_millis(200);
    SandboxOptions {
        seed,
        companies: 6,
        contacts: 6,
        hubspot_webhook: Some(hook),
        ..Default::default()
    }
}

fn writes(sb: &Sandbox) -> u64 {
    sb.hubspot_stats()["writes"].as_u64().unwrap() + sb.accelo_stats()["writes"].as_u64().unwrap()
}

fn poller(serving: &Serving, sb: &Sandbox) -> Poller {
    Poller::new(
        serving.store.clone(),
        Rules::Fixed(program()),
        hubspot(sb),
        accelo(sb),
        PollOptions {
            overlap: Duration::from_secs(3600),
            job_delay: Duration::ZERO,
        },
    )
}

/// Creates `n` qualifying HubSpot companies and waits until each is linked; answers
/// (HubSpot id, Accelo id) pairs.
async fn linked_companies(
    sb: &Sandbox,
    serving: &Serving,
    tag: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for i in 0..n {
        let c = edit(
            sb.hubspot_url(),
            "companies",
            None,
            json!({"name": format!("{tag} {i} Co"), "domain": format!("{}{i}.example", tag.to_lowercase()),
                   "lifecyclestage": "customer"}),
        )
        .await;
        pairs.push(c["id"].as_str().unwrap().to_string());
    }
    let mut out = Vec::new();
    for hs in pairs {
        let store = serving.store.clone();
        let id = hs.clone();
        let ac = wait_for("a company to be linked", || {
            let store = store.clone();
            let id = id.clone();
            async move {
                store
                    .link(Object::Company, System::HubSpot, &id)
                    .await
                    .unwrap()
                    .map(|l| l.accelo_id)
            }
        })
        .await;
        out.push((hs, ac));
    }
    out
}

async fn by_id(base: &str, object: &str, id: &str) -> Value {
    records(base, object)
        .await
        .into_iter()
        .find(|r| r["id"].as_str() == Some(id))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_edits_on_both_sides_cost_at_most_one_write_each_and_then_stop() {
    let sb = sandbox(options(41)).await;
    let serving = Serving::start(&sb, 1, |_, t| t).await;
    let pairs = linked_companies(&sb, &serving, "Loop", 3).await;
    serving.settle(&sb).await;

    let before = writes(&sb);
    let mut human_edits = 0u64;
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        for (i, (hs, ac)) in pairs.iter().enumerate() {
            edit(
                sb.hubspot_url(),
                "companies",
                Some(hs),
                json!({"phone": format!("+1 555 {round}{i}00")}),
            )
            .await;
            edit(
                sb.accelo_url(),
                "companies",
                Some(ac),
                json!({"comments": format!("round {round} note {i}")}),
            )
            .await;
            human_edits += 2;
        }
    }
    // Both sides converge on the last human values …
    for (i, (hs, ac)) in pairs.iter().enumerate() {
        let last = ROUNDS - 1;
        let (phone, note) = (
            format!("+1 555 {last}{i}00"),
            format!("round {last} note {i}"),
        );
        wait_for("both sides to converge", || {
            let (sb, hs, ac, phone, note) =
                (&sb, hs.clone(), ac.clone(), phone.clone(), note.clone());
            async move {
                let h = by_id(sb.hubspot_url(), "companies", &hs).await;
                let a = by_id(sb.accelo_url(), "companies", &ac).await;
                (prop(&h, "description") == Some(note.as_str())
                    && a["phone"].as_str() == Some(phone.as_str()))
                .then_some(())
            }
        })
        .await;
    }
    serving.settle(&sb).await;
    // … and once people stop, polling and webhooks find nothing left to write.
    let p = poller(&serving, &sb);
    for _ in 0..2 {
        let round = p.poll_once().await.unwrap();
        assert_eq!(round.queued(), 0, "{round:?}");
    }
    serving.settle(&sb).await;
    let tandem_writes = writes(&sb) - before;
    assert!(
        tandem_writes <= human_edits,
        "{tandem_writes} writes for {human_edits} human edits: ping-pong"
    );
    assert!(tandem_writes > 0);
    let after = writes(&sb);
    let round = p.poll_once().await.unwrap();
    assert_eq!(round.queued(), 0);
    serving.settle(&sb).await;
    assert_eq!(writes(&sb), after, "writes after the last human edit");
    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
}

/// Waits until the wall clock is in a later second than `ms` (Accelo keeps edit times in
/// seconds, so "newer" needs a new second).
async fn next_second_after(ms: i64) {
    wait_for("the next second", || async move {
        (chrono::Utc::now().timestamp() > ms.div_euclid(1000)).then_some(())
    })
    .await;
}

fn conflict_reasons(entries: &[tandem_engine::store::LogEntry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| match &e.body {
            LogBody::Record(r) if r.reason.contains("conflict on") => Some(r.reason.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_one_field_go_to_the_newer_edit_and_the_log_says_so() {
    let sb = sandbox(options(42)).await;
    let serving = Serving::start(&sb, 0, |_, t| t).await;
    let p = poller(&serving, &sb);
    p.poll_once().await.unwrap();
    let pairs = linked_companies(&sb, &serving, "Conflict", 2).await;
    serving.settle(&sb).await;

    // A: Accelo first, HubSpot a second later; HubSpot's webhook syncs → HubSpot wins.
    let (hs, ac) = &pairs[0];
    edit(
        sb.accelo_url(),
        "companies",
        Some(ac),
        json!({"name": "Conflict A (Accelo)"}),
    )
    .await;
    next_second_after(chrono::Utc::now().timestamp_millis()).await;
    edit(
        sb.hubspot_url(),
        "companies",
        Some(hs),
        json!({"name": "Conflict A (HubSpot)"}),
    )
    .await;
    wait_for("HubSpot's newer name in Accelo", || {
        let (sb, ac) = (&sb, ac.clone());
        async move {
            (by_id(sb.accelo_url(), "companies", &ac).await["name"].as_str()
                == Some("Conflict A (HubSpot)"))
            .then_some(())
        }
    })
    .await;
    serving.settle(&sb).await;
    assert_eq!(
        prop(&by_id(sb.hubspot_url(), "companies", hs).await, "name"),
        Some("Conflict A (HubSpot)")
    );

    // B: HubSpot first (its webhook lost), Accelo a second later; the poll syncs → Accelo wins.
    let (hs, ac) = &pairs[1];
    let lost = |sb: &Sandbox| {
        sb.hubspot_stats()["webhooks"]["lost_events"]
            .as_u64()
            .unwrap()
    };
    let lost_before = lost(&sb);
    sb.set_faults(FaultConfig {
        webhook_loss: 1.0,
        ..FaultConfig::default()
    })
    .unwrap();
    edit(
        sb.hubspot_url(),
        "companies",
        Some(hs),
        json!({"name": "Conflict B (HubSpot)"}),
    )
    .await;
    wait_for("the HubSpot webhook to be lost", || {
        let n = lost(&sb);
        async move { (n > lost_before).then_some(()) }
    })
    .await;
    sb.set_faults(FaultConfig::default()).unwrap();
    next_second_after(chrono::Utc::now().timestamp_millis()).await;
    edit(
        sb.accelo_url(),
        "companies",
        Some(ac),
        json!({"name": "Conflict B (Accelo)"}),
    )
    .await;
    let round = p.poll_once().await.unwrap();
    assert!(round.queued() >= 1, "{round:?}");
    wait_for("Accelo's newer name in HubSpot", || {
        let (sb, hs) = (&sb, hs.clone());
        async move {
            (prop(&by_id(sb.hubspot_url(), "companies", &hs).await, "name")
                == Some("Conflict B (Accelo)"))
            .then_some(())
        }
    })
    .await;
    serving.settle(&sb).await;
    assert_eq!(
        by_id(sb.accelo_url(), "companies", ac).await["name"].as_str(),
        Some("Conflict B (Accelo)")
    );

    // Both resolutions are in the sync log, with the rule that decided them.
    let log = serving.store.log(&LogQuery::default()).await.unwrap();
    let reasons = conflict_reasons(&log);
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("conflict on name: both changed, hubspot edit newer")),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("conflict on name: both changed, accelo edit newer")),
        "{reasons:#?}"
    );
    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
}
