//! Measures what the connectors cost: requests per operation (from the sandbox's
//! `/_sandbox/stats` counters) and wall time, for full reads, changed-since scans, reads by id,
//! lookups, creates and updates on both systems. Prints a Markdown table (docs/PERFORMANCE.md).
//!
//! ```sh
//! cargo run --example connect_requests -- 1000 5000     # sizes: records per object
//! ```
//!
//! The sandbox runs without rate limits here so that the time measured is the connectors' and
//! the simulators' own; against the real services the documented budgets bound it (HubSpot
//! 190 requests / 10 s, search 5 / s; Accelo 5000 / h).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measurement program: failing loudly is right"
)]

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use serde_json::Value;
use tandem_core::model::{Object, Record};
use tandem_engine::connect::accelo::{Accelo, AcceloSettings};
use tandem_engine::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use tandem_engine::connect::{
    Connector, CreateInput, Lookup, RateLimit, Scan, Secret, UpdateInput,
};
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};

fn unlimited() -> RateLimit {
    RateLimit {
        requests: 1_000_000,
        per: Duration::from_secs(1),
    }
}

fn total(stats: &Value) -> u64 {
    stats["total"].as_u64().unwrap_or(0)
}

fn routes(before: &Value, after: &Value) -> String {
    let mut out = Vec::new();
    if let Some(m) = after["requests"].as_object() {
        for (k, v) in m {
            let n = v.as_u64().unwrap_or(0) - before["requests"][k].as_u64().unwrap_or(0);
            if n > 0 {
                out.push(format!("`{k}` ×{n}"));
            }
        }
    }
    out.join(", ")
}

struct Row {
    op: String,
    records: usize,
    requests: u64,
    detail: String,
    elapsed: Duration,
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

async fn measure<F, Fut>(
    rows: &mut Vec<Row>,
    stats: impl Fn() -> Value,
    op: &str,
    f: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<usize, Box<dyn std::error::Error>>>,
{
    let before = stats();
    let t = Instant::now();
    let records = f().await?;
    let elapsed = t.elapsed();
    let after = stats();
    rows.push(Row {
        op: op.to_string(),
        records,
        requests: total(&after) - total(&before),
        detail: routes(&before, &after),
        elapsed,
    });
    Ok(())
}

async fn scan_count(
    c: &dyn Connector,
    object: Object,
    scan: Scan,
    props: &[String],
) -> Result<usize, Box<dyn std::error::Error>> {
    let mut n = 0;
    let mut pages = c.scan(object, scan, props);
    while let Some(page) = pages.try_next().await? {
        n += page.len();
    }
    Ok(n)
}

async fn run(n: usize) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let sb = Sandbox::start(SandboxOptions {
        seed: 42,
        companies: n,
        contacts: n,
        rate_limits: RateLimits::unlimited(),
        ..Default::default()
    })
    .await?;
    let mut hs_settings = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::Token(Secret::new(sb.hubspot_token())),
    );
    hs_settings.rate_limit = unlimited();
    hs_settings.search_rate_limit = unlimited();
    let hs = HubSpot::new(hs_settings)?;
    let mut ac_settings = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new(sb.accelo_client_secret()),
    );
    ac_settings.rate_limit = unlimited();
    let ac = Accelo::new(ac_settings)?;
    let hs_stats = || sb.hubspot_stats();
    let ac_stats = || sb.accelo_stats();
    let company_props: Vec<String> = [
        "name",
        "domain",
        "phone",
        "city",
        "state",
        "country",
        "lifecyclestage",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let contact_props: Vec<String> = [
        "email",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "jobtitle",
        "lifecyclestage",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rows = Vec::new();

    measure(&mut rows, hs_stats, "HubSpot: scan companies", || {
        scan_count(&hs, Object::Company, Scan::All, &company_props)
    })
    .await?;
    measure(
        &mut rows,
        hs_stats,
        "HubSpot: scan contacts (+ primary company)",
        || scan_count(&hs, Object::Contact, Scan::All, &contact_props),
    )
    .await?;
    measure(
        &mut rows,
        hs_stats,
        "HubSpot: changed since (all contacts)",
        || scan_count(&hs, Object::Contact, Scan::ChangedSince(0), &contact_props),
    )
    .await?;
    measure(&mut rows, ac_stats, "Accelo: scan companies", || {
        scan_count(&ac, Object::Company, Scan::All, &[])
    })
    .await?;
    measure(
        &mut rows,
        ac_stats,
        "Accelo: scan contacts (+ affiliation, company)",
        || scan_count(&ac, Object::Contact, Scan::All, &[]),
    )
    .await?;
    measure(
        &mut rows,
        ac_stats,
        "Accelo: changed since (all contacts)",
        || scan_count(&ac, Object::Contact, Scan::ChangedSince(0), &[]),
    )
    .await?;

    let all_hs: Vec<Record> = hs
        .scan(Object::Contact, Scan::All, &contact_props)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    let ids: Vec<String> = all_hs.iter().take(1000).map(|r| r.id.clone()).collect();
    measure(
        &mut rows,
        hs_stats,
        "HubSpot: get contacts by id",
        || async { Ok(hs.get(Object::Contact, &ids, &contact_props).await?.len()) },
    )
    .await?;
    let emails: Vec<String> = all_hs
        .iter()
        .filter_map(|r| r.get("email"))
        .take(20)
        .collect();
    measure(
        &mut rows,
        hs_stats,
        "HubSpot: find contact by email (×20)",
        || async {
            let mut n = 0;
            for e in &emails {
                n += hs
                    .find(Object::Contact, &Lookup::new("email", e.clone()), &[])
                    .await?
                    .len();
            }
            Ok(n)
        },
    )
    .await?;
    let all_ac: Vec<Record> = ac
        .scan(Object::Contact, Scan::All, &[])
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    let ids: Vec<String> = all_ac.iter().take(1000).map(|r| r.id.clone()).collect();
    measure(
        &mut rows,
        ac_stats,
        "Accelo: get contacts by id",
        || async { Ok(ac.get(Object::Contact, &ids, &[]).await?.len()) },
    )
    .await?;

    let m = 1000.min(n);
    let creates: Vec<CreateInput> = (0..m)
        .map(|i| CreateInput {
            changes: [
                ("name".to_string(), Some(format!("Bench {i}"))),
                ("domain".to_string(), Some(format!("bench{i}.example.org"))),
            ]
            .into_iter()
            .collect(),
            company_id: None,
            lookup: Some(Lookup::new("domain", format!("bench{i}.example.org"))),
        })
        .collect();
    let mut created_ids = Vec::new();
    measure(&mut rows, hs_stats, "HubSpot: create companies", || async {
        let out = hs.create(Object::Company, creates).await?;
        created_ids = out
            .into_iter()
            .filter_map(Result::ok)
            .map(|w| w.id)
            .collect();
        Ok(created_ids.len())
    })
    .await?;
    let updates: Vec<UpdateInput> = created_ids
        .iter()
        .map(|id| UpdateInput {
            id: id.clone(),
            changes: [("city".to_string(), Some("Benchville".to_string()))]
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .collect();
    measure(&mut rows, hs_stats, "HubSpot: update companies", || async {
        Ok(hs
            .update(Object::Company, updates)
            .await?
            .into_iter()
            .filter(Result::is_ok)
            .count())
    })
    .await?;

    let k = 200.min(n);
    let company = all_ac
        .iter()
        .find_map(|r| r.company_id.clone())
        .ok_or("no accelo company")?;
    let creates: Vec<CreateInput> = (0..k)
        .map(|i| CreateInput {
            changes: [
                ("firstname".to_string(), Some("Bench".to_string())),
                ("surname".to_string(), Some(format!("N{i}"))),
                (
                    "affiliation.email".to_string(),
                    Some(format!("bench{i}@example.org")),
                ),
                (
                    "affiliation.position".to_string(),
                    Some("Tester".to_string()),
                ),
            ]
            .into_iter()
            .collect(),
            company_id: Some(company.clone()),
            lookup: Some(Lookup::new(
                "affiliation.email",
                format!("bench{i}@example.org"),
            )),
        })
        .collect();
    let mut created = Vec::new();
    measure(
        &mut rows,
        ac_stats,
        "Accelo: create contacts (4 at a time)",
        || async {
            let out = ac.create(Object::Contact, creates).await?;
            created = out.into_iter().filter_map(Result::ok).collect::<Vec<_>>();
            Ok(created.len())
        },
    )
    .await?;
    let updates: Vec<UpdateInput> = created
        .iter()
        .map(|w| UpdateInput {
            id: w.id.clone(),
            changes: [
                ("surname".to_string(), Some("Benched".to_string())),
                (
                    "affiliation.phone".to_string(),
                    Some("+61 2 5550 1234".to_string()),
                ),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        })
        .collect();
    measure(
        &mut rows,
        ac_stats,
        "Accelo: update contacts (contact + affiliation, no cached record)",
        || async {
            Ok(ac
                .update(Object::Contact, updates)
                .await?
                .into_iter()
                .filter(Result::is_ok)
                .count())
        },
    )
    .await?;
    sb.shutdown().await;
    Ok(rows)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![1000] } else { sizes };
    println!(
        "| N per object | operation | records | requests | requests by route | time | records/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        for r in run(n).await? {
            let secs = r.elapsed.as_secs_f64();
            println!(
                "| {n} | {} | {} | {} | {} | {:.0} ms | {:.0} |",
                r.op,
                r.records,
                r.requests,
                r.detail,
                secs * 1000.0,
                r.records as f64 / secs.max(1e-9)
            );
        }
    }
    if let Some(kib) = peak_rss_kib() {
        println!(
            "\npeak RSS of the whole process (sandbox included): {} MiB",
            kib / 1024
        );
    }
    Ok(())
}
