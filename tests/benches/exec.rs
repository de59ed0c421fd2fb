//! Executor benchmark: whole runs through the job runner (settle intents, read both sides, plan,
//! execute, log) against the in-process sandbox with rate limits off, on a SQLite store: a first
//! pull, a second pull with nothing to do, a push, a second push. Prints a Markdown table of
//! wall time, actions per second, requests and write requests per system, and the process's
//! peak memory (docs/PERFORMANCE.md keeps the results and method).
//!
//! Run: `cargo bench --bench exec` (release; `-- --companies N --contacts N` to change the
//! sizes, default 1000 and 5000 per system). `cargo test --all-targets` also runs it at a tiny
//! scale, as a check that it still works, not as a measurement.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: failing loudly is right"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tandem_core::compile::load;
use tandem_core::rules::Paths;
use tandem_engine::connect::Systems;
use tandem_engine::connect::accelo::{Accelo, AcceloSettings};
use tandem_engine::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use tandem_engine::connect::{RateLimit, Secret};
use tandem_engine::exec::ExecOptions;
use tandem_engine::exec::jobs::{self, fixed};
use tandem_engine::exec::progress::Silent;
use tandem_engine::store::JobKind;
use tandem_engine::store::testing::TestStore;
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn counters(stats: &Value) -> (u64, u64) {
    (
        stats["total"].as_u64().unwrap_or(0),
        stats["writes"].as_u64().unwrap_or(0),
    )
}

/// Peak resident memory of this process (sandbox included), in MiB.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let benching = std::env::args().any(|a| a == "--bench");
    let (companies, contacts) = if benching {
        (arg("--companies", 1000), arg("--contacts", 5000))
    } else {
        (20, 60)
    };
    let sb = Sandbox::start(SandboxOptions {
        seed: 42,
        companies,
        contacts,
        rate_limits: RateLimits::unlimited(),
        ..SandboxOptions::default()
    })
    .await
    .unwrap();
    let ts = TestStore::sqlite().await;
    let program = load(&Paths::resolve(Some("rules/tandem.yaml".into()), None))
        .expect("rules")
        .program;
    // The connectors' own budgets off too: this measures Tandem, not the APIs' limits.
    let unlimited = RateLimit {
        requests: 1_000_000,
        per: Duration::from_secs(1),
    };
    let mut hs = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::Token(Secret::new(sb.hubspot_token())),
    );
    hs.rate_limit = unlimited;
    hs.search_rate_limit = unlimited;
    let mut ac = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new(sb.accelo_client_secret()),
    );
    ac.rate_limit = unlimited;
    let systems = Systems {
        hubspot: Arc::new(HubSpot::new(hs).unwrap()),
        accelo: Arc::new(Accelo::new(ac).unwrap()),
    };
    let worker = jobs::worker(
        systems,
        fixed(program),
        ts.store.clone(),
        ExecOptions::default(),
        None,
    );
    println!(
        "{companies} companies and {contacts} contacts per system, SQLite store, rate limits off\n"
    );
    println!(
        "| run | actions | wall | actions/s | HubSpot requests (writes) | Accelo requests (writes) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, kind) in [
        ("pull (first)", JobKind::Pull),
        ("pull (again, in step)", JobKind::Pull),
        ("push (first)", JobKind::Push),
        ("push (again, in step)", JobKind::Push),
    ] {
        let (h0, a0) = (counters(&sb.hubspot_stats()), counters(&sb.accelo_stats()));
        let start = Instant::now();
        let ran = jobs::run_here(
            &worker,
            kind,
            jobs::payload(kind, None, false),
            Arc::new(Silent),
        )
        .await
        .unwrap();
        let wall = start.elapsed();
        let (h1, a1) = (counters(&sb.hubspot_stats()), counters(&sb.accelo_stats()));
        let actions = ran.counts.total();
        println!(
            "| {label} | {actions} | {} | {:.0} | {} ({}) | {} ({}) |",
            fmt(wall),
            actions as f64 / wall.as_secs_f64(),
            h1.0 - h0.0,
            h1.1 - h0.1,
            a1.0 - a0.0,
            a1.1 - a0.1
        );
        assert_eq!(ran.counts.failed, 0, "{ran:?}");
    }
    if let Some(mib) = peak_mib() {
        println!("\npeak resident memory of the process (sandbox included): {mib:.0} MiB");
    }
    sb.shutdown().await;
    ts.cleanup().await;
}

fn fmt(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}
