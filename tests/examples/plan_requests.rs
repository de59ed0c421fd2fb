//! Measures what reading a plan's scope costs (requests per route, from the sandbox's
//! `/_sandbox/stats` counters) and how long reading and planning take, for every scope of
//! `crate::snapshot`: bulk pull / push, one company with its contacts, one contact, and one
//! record of either system (the automatic sync). Prints a Markdown table (docs/PERFORMANCE.md).
//!
//! ```sh
//! cargo run --release --example plan_requests -- 1000 10000   # companies per system (contacts: 3×)
//! ```
//!
//! The sandbox and the connectors run without rate limits, so the times are Tandem's and the
//! simulators' own; against the real services the documented budgets bound them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement program: failing loudly is right"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tandem_core::compile::load;
use tandem_core::model::{Direction, Object, System};
use tandem_core::plan::{Mode, Scope, plan};
use tandem_core::rules::Paths;
use tandem_engine::connect::Systems;
use tandem_engine::connect::accelo::{Accelo, AcceloSettings};
use tandem_engine::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use tandem_engine::connect::{RateLimit, Secret};
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};

fn unlimited() -> RateLimit {
    RateLimit {
        requests: 1_000_000,
        per: Duration::from_secs(1),
    }
}

async fn stats(base: &str) -> Value {
    reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

fn routes(before: &Value, after: &Value) -> (u64, String) {
    let mut out = Vec::new();
    let mut total = 0;
    if let Some(m) = after["requests"].as_object() {
        for (k, v) in m {
            let n = v.as_u64().unwrap_or(0) - before["requests"][k].as_u64().unwrap_or(0);
            if n > 0 && !k.contains("/oauth") {
                total += n;
                out.push(format!("`{k}` ×{n}"));
            }
        }
    }
    (total, out.join(", "))
}

async fn ids(base: &str, object: &str) -> Vec<Value> {
    reqwest::get(format!("{base}/_sandbox/records/{object}"))
        .await
        .expect("records")
        .json::<Vec<Value>>()
        .await
        .expect("records json")
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![1000] } else { sizes };
    let program = load(&Paths::resolve(Some("rules/tandem.yaml".into()), None))
        .map_err(|r| r.render_human(false))?
        .program;
    println!(
        "| companies (contacts) per system | scope | records read | requests (HubSpot + Accelo) | requests by route | read | plan |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        let sb = Sandbox::start(SandboxOptions {
            seed: 42,
            companies: n,
            contacts: 3 * n,
            rate_limits: RateLimits::unlimited(),
            ..Default::default()
        })
        .await?;
        let mut hs = HubSpotSettings::new(
            sb.hubspot_url(),
            HubSpotAuth::Token(Secret::new(sb.hubspot_token())),
        );
        hs.rate_limit = unlimited();
        hs.search_rate_limit = unlimited();
        let mut ac = AcceloSettings::new(
            sb.accelo_url(),
            sb.accelo_client_id(),
            Secret::new(sb.accelo_client_secret()),
        );
        ac.rate_limit = unlimited();
        let systems = Systems {
            hubspot: Arc::new(HubSpot::new(hs)?),
            accelo: Arc::new(Accelo::new(ac)?),
        };

        // The ids the single-record scopes use: the company with the most contacts on each side,
        // a contact of it, and a company.
        let hs_contacts = ids(sb.hubspot_url(), "contacts").await;
        let mut count: std::collections::BTreeMap<String, usize> = Default::default();
        for c in &hs_contacts {
            if let Some(co) = c["properties"]["associatedcompanyid"].as_str() {
                *count.entry(co.to_string()).or_default() += 1;
            }
        }
        let (hs_company, _) = count.iter().max_by_key(|(_, n)| **n).ok_or("no company")?;
        let hs_contact = hs_contacts
            .iter()
            .find(|c| c["properties"]["associatedcompanyid"].as_str() == Some(hs_company))
            .and_then(|c| c["id"].as_str())
            .ok_or("no contact")?
            .to_string();
        let ac_affs = ids(sb.accelo_url(), "affiliations").await;
        let mut count: std::collections::BTreeMap<String, usize> = Default::default();
        for a in &ac_affs {
            if let Some(co) = a["company"].as_str() {
                *count.entry(co.to_string()).or_default() += 1;
            }
        }
        let (ac_company, _) = count.iter().max_by_key(|(_, n)| **n).ok_or("no company")?;
        let ac_contact = ac_affs
            .iter()
            .find(|a| a["company"].as_str() == Some(ac_company))
            .and_then(|a| a["contact"].as_str())
            .ok_or("no contact")?
            .to_string();

        let scopes: Vec<(String, Direction, Scope)> = vec![
            ("bulk pull".into(), Direction::Pull, Scope::All),
            ("bulk push".into(), Direction::Push, Scope::All),
            (
                format!("pull company (HubSpot `{hs_company}`)"),
                Direction::Pull,
                Scope::Company {
                    id: hs_company.clone(),
                },
            ),
            (
                format!("push company (Accelo `{ac_company}`)"),
                Direction::Push,
                Scope::Company {
                    id: ac_company.clone(),
                },
            ),
            (
                "push contact".into(),
                Direction::Push,
                Scope::Contact {
                    id: ac_contact.clone(),
                },
            ),
            (
                "record: HubSpot contact (unlinked company)".into(),
                Direction::Pull,
                Scope::Record {
                    system: System::HubSpot,
                    object: Object::Contact,
                    id: hs_contact.clone(),
                },
            ),
            (
                "record: Accelo company".into(),
                Direction::Push,
                Scope::Record {
                    system: System::Accelo,
                    object: Object::Company,
                    id: ac_company.clone(),
                },
            ),
        ];
        for (label, direction, scope) in scopes {
            let (h0, a0) = (stats(sb.hubspot_url()).await, stats(sb.accelo_url()).await);
            let t = Instant::now();
            let snap =
                tandem_engine::snapshot::read(&systems, &program, None, direction, &scope).await?;
            let read = t.elapsed();
            let t = Instant::now();
            let p = plan(&program, &snap.input(Mode::Bulk));
            let planned = t.elapsed();
            let (h1, a1) = (stats(sb.hubspot_url()).await, stats(sb.accelo_url()).await);
            let (hn, hr) = routes(&h0, &h1);
            let (an, ar) = routes(&a0, &a1);
            println!(
                "| {n} ({}) | {label} | {} | {} ({hn} + {an}) | {} | {} ms | {} ms ({} actions) |",
                3 * n,
                snap.hubspot.len() + snap.accelo.len(),
                hn + an,
                [hr, ar]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(", "),
                read.as_millis(),
                planned.as_millis(),
                p.actions.len()
            );
        }
        sb.shutdown().await;
    }
    if let Some(kib) = peak_rss_kib() {
        println!("\npeak RSS: {} MiB", kib / 1024);
    }
    Ok(())
}
