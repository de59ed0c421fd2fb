//! The real `tandem serve` binary killed with SIGKILL while accepted events are still being
//! processed, then started again on the same store and port: every accepted event is processed
//! exactly once in effect — each HubSpot company created exactly once in Accelo, every stored
//! event processed — with HubSpot redelivering and duplicating events all along.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tandem_core::model::{Object, System};
use tandem_engine::store::{JobFilter, JobState, Store};
use tandem_sandbox::{FaultConfig, Sandbox, SandboxOptions, WebhookTarget};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::serve::*;

struct Process {
    child: Child,
    url: String,
}

async fn spawn(
    sb: &Sandbox,
    dir: &std::path::Path,
    rules: &std::path::Path,
    store_url: &str,
    listen: &str,
    run: usize,
) -> Process {
    let log = std::fs::File::create(dir.join(format!("serve-{run}.log"))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("serve")
        .arg("--config")
        .arg(rules.join("tandem.yaml"))
        .arg("--rules")
        .arg(rules)
        .args(["--listen", listen, "--poll-interval", "0"])
        .env_clear()
        .envs(serve_env(sb, store_url))
        .env("TANDEM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("tandem serve prints its address")
        .unwrap()
        .expect("a line");
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line `{line}`"))
        .to_string();
    Process { child, url }
}

async fn open_jobs(store: &dyn Store) -> usize {
    store
        .jobs(&JobFilter {
            states: vec![JobState::Queued, JobState::Running],
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_pending_events_then_restart_processes_each_event_once() {
    let mut hook = WebhookTarget::new("");
    hook.secret = Some(WEBHOOK_SECRET.into());
    hook.retry_base = Duration::from_millis(200);
    let sb = sandbox(SandboxOptions {
        seed: 31,
        companies: 4,
        contacts: 4,
        hubspot_webhook: Some(hook),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), |_, t| t);
    let store_url = dir.path().join("tandem.db").display().to_string();

    let mut first = spawn(&sb, dir.path(), &rules, &store_url, "127.0.0.1:0", 1).await;
    let addr = first.url.trim_start_matches("http://").to_string();
    sb.set_hubspot_webhook(
        Some(&format!("{}/webhooks/hubspot", first.url)),
        Some(WEBHOOK_SECRET),
    );
    let store = tandem_engine::store::open(&store_url).await.unwrap();
    // Slow Accelo down so that the kill lands while work is pending, and let HubSpot deliver
    // some events twice and out of order.
    sb.set_faults(FaultConfig {
        seed: 5,
        latency_ms: 60,
        webhook_duplicate: 0.3,
        webhook_reorder: 0.2,
        ..FaultConfig::default()
    })
    .unwrap();

    const N: usize = 12;
    let mut names = BTreeMap::new();
    for i in 0..N {
        let name = format!("Crash Test {i:02} Ltd");
        let c = edit(
            sb.hubspot_url(),
            "companies",
            None,
            json!({"name": name, "domain": format!("crash{i:02}.example"),
                   "lifecyclestage": "customer"}),
        )
        .await;
        names.insert(c["id"].as_str().unwrap().to_string(), name);
    }

    // Kill once some companies are synced and others are still pending.
    wait_for("some records synced and some pending", || {
        let store = store.clone();
        async move {
            let done = store.links(Object::Company).await.unwrap().len();
            let open = open_jobs(store.as_ref()).await;
            (done >= 2 && open >= 1).then_some(())
        }
    })
    .await;
    first.child.start_kill().unwrap();
    let status = first.child.wait().await.unwrap();
    assert!(!status.success(), "killed: {status:?}");
    let pending_at_kill = open_jobs(store.as_ref()).await;
    eprintln!(
        "at kill: {} linked, {pending_at_kill} jobs open",
        store.links(Object::Company).await.unwrap().len()
    );
    assert!(pending_at_kill >= 1);

    // Started again on the same port (HubSpot's retries go there) and the same store.
    let second = spawn(&sb, dir.path(), &rules, &store_url, &addr, 2).await;
    assert_eq!(second.url, first.url);
    let deadline = Duration::from_secs(90);
    let settled = tokio::time::timeout(deadline, async {
        loop {
            let links = store.links(Object::Company).await.unwrap().len();
            let open = open_jobs(store.as_ref()).await;
            if links >= N && open == 0 && sb.hubspot_webhooks_pending() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if settled.is_err() {
        for run in [1, 2] {
            let log = std::fs::read_to_string(dir.path().join(format!("serve-{run}.log")))
                .unwrap_or_default();
            eprintln!("--- serve run {run} ---\n{log}");
        }
        panic!("the restarted server did not finish within {deadline:?}");
    }

    // Exactly once in effect: every company once in Accelo, linked; every event processed.
    let accelo = records(sb.accelo_url(), "companies").await;
    for (hs_id, name) in &names {
        let copies: Vec<_> = accelo
            .iter()
            .filter(|r| r["name"].as_str() == Some(name.as_str()))
            .collect();
        assert_eq!(copies.len(), 1, "{name}: {copies:?}");
        let link = store
            .link(Object::Company, System::HubSpot, hs_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(copies[0]["id"].as_str(), Some(link.accelo_id.as_str()));
    }
    assert!(store.unprocessed_events(1000).await.unwrap().is_empty());
    assert!(store.open_intents().await.unwrap().is_empty());

    let mut second = second;
    second.child.start_kill().unwrap();
    let _ = second.child.wait().await;
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_or_releases_the_running_job_and_loses_nothing() {
    let mut hook = WebhookTarget::new("");
    hook.secret = Some(WEBHOOK_SECRET.into());
    hook.retry_base = Duration::from_millis(200);
    let sb = sandbox(SandboxOptions {
        seed: 32,
        companies: 4,
        contacts: 4,
        hubspot_webhook: Some(hook),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), |_, t| t);
    let store_url = dir.path().join("tandem.db").display().to_string();
    let mut first = spawn(&sb, dir.path(), &rules, &store_url, "127.0.0.1:0", 1).await;
    let addr = first.url.trim_start_matches("http://").to_string();
    sb.set_hubspot_webhook(
        Some(&format!("{}/webhooks/hubspot", first.url)),
        Some(WEBHOOK_SECRET),
    );
    let store = tandem_engine::store::open(&store_url).await.unwrap();
    sb.set_faults(FaultConfig {
        latency_ms: 150,
        ..FaultConfig::default()
    })
    .unwrap();
    const N: usize = 6;
    let mut names = Vec::new();
    for i in 0..N {
        let name = format!("Term Test {i:02} Ltd");
        edit(
            sb.hubspot_url(),
            "companies",
            None,
            json!({"name": name, "domain": format!("term{i:02}.example"),
                   "lifecyclestage": "customer"}),
        )
        .await;
        names.push(name);
    }
    wait_for("a job running", || {
        let store = store.clone();
        async move {
            let running = store
                .jobs(&JobFilter {
                    states: vec![JobState::Running],
                    ..JobFilter::default()
                })
                .await
                .unwrap();
            (!running.is_empty()).then_some(())
        }
    })
    .await;
    let pid = first.child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(DEADLINE, first.child.wait())
        .await
        .expect("tandem serve stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    // Nothing is left running under the stopped process, and every stored event is either
    // processed or waits in a queued job.
    let jobs = store.jobs(&JobFilter::default()).await.unwrap();
    assert!(
        jobs.iter().all(|j| j.state != JobState::Running),
        "{jobs:#?}"
    );
    for e in store.unprocessed_events(1000).await.unwrap() {
        let job = store.job(e.job.unwrap()).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued, "{e:?}");
    }

    // Started again, it finishes the work: every company exactly once.
    let mut second = spawn(&sb, dir.path(), &rules, &store_url, &addr, 2).await;
    wait_for("the restarted server to finish", || {
        let store = store.clone();
        let pending = sb.hubspot_webhooks_pending();
        async move {
            let links = store.links(Object::Company).await.unwrap().len();
            let open = open_jobs(store.as_ref()).await;
            (links >= N && open == 0 && pending == 0).then_some(())
        }
    })
    .await;
    let accelo = records(sb.accelo_url(), "companies").await;
    for name in &names {
        let n = accelo
            .iter()
            .filter(|r| r["name"].as_str() == Some(name.as_str()))
            .count();
        assert_eq!(n, 1, "{name}");
    }
    second.child.start_kill().unwrap();
    let _ = second.child.wait().await;
    sb.shutdown().await;
}

#[tokio::test]
async fn configuration_errors_exit_2_and_name_the_problem() {
    let sb = sandbox(SandboxOptions {
        seed: 33,
        companies: 1,
        contacts: 1,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(dir.path(), |_, t| t);
    let store_url = dir.path().join("tandem.db").display().to_string();
    let run = |env: Vec<(String, String)>, listen: &'static str| {
        let rules = rules.clone();
        async move {
            Command::new(env!("CARGO_BIN_EXE_tandem"))
                .arg("serve")
                .arg("--config")
                .arg(rules.join("tandem.yaml"))
                .args(["--listen", listen, "--poll-interval", "0"])
                .env_clear()
                .envs(env)
                .output()
                .await
                .unwrap()
        }
    };
    // The webhook secret's variable (named in tandem.yaml) is not set.
    let mut env = serve_env(&sb, &store_url);
    env.retain(|(k, _)| k != "TANDEM_HUBSPOT_WEBHOOK_SECRET");
    let out = run(env, "127.0.0.1:0").await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HUBSPOT_WEBHOOK_SECRET"), "{err}");
    // An address that cannot be listened on.
    let out = run(serve_env(&sb, &store_url), "not-an-address").await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on `not-an-address`"), "{err}");
    // Secrets never appear in what it prints.
    assert!(!err.contains(WEBHOOK_SECRET) && !err.contains(sb.hubspot_token()));
    sb.shutdown().await;
}
