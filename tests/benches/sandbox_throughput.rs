//! Sandbox throughput over loopback with a plain reqwest client: start-up with a large seeded
//! portal, list paging, batch read/update, search, and Accelo list paging, filters, contact
//! search and lookups by email.
//! Results go to docs/PERFORMANCE.md; this is a benchmark, not a test.
//!
//! Run: `cargo bench --bench sandbox_throughput` (optionally `-- --contacts 80000
//! --companies 20000 --concurrency 8 --probes 20`; `--probes` is the number of requests of the
//! Accelo `_search` and email-filter scenarios). Under `cargo test --all-targets` (no `--bench`
//! argument) it runs a small smoke version so the suite stays fast.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness: failures abort the run"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};

struct Args {
    companies: usize,
    contacts: usize,
    concurrency: usize,
    /// Requests of the Accelo `_search` and email-filter scenarios.
    probes: usize,
}

fn args() -> Args {
    let mut a = Args {
        companies: 20_000,
        contacts: 80_000,
        concurrency: 8,
        probes: 20,
    };
    let argv: Vec<String> = std::env::args().collect();
    if !argv.iter().any(|a| a == "--bench") {
        a.companies = 200;
        a.contacts = 800;
        a.concurrency = 2;
        a.probes = 5;
    }
    let mut i = 1;
    while i < argv.len() {
        let next = || argv.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match argv[i].as_str() {
            "--companies" => a.companies = next().expect("--companies N"),
            "--contacts" => a.contacts = next().expect("--contacts N"),
            "--concurrency" => a.concurrency = next().expect("--concurrency N"),
            "--probes" => a.probes = next().expect("--probes N"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn report(name: &str, requests: usize, records: usize, took: Duration) {
    let s = took.as_secs_f64();
    println!(
        "| {name:<48} | {requests:>7} | {records:>8} | {:>8.2} | {:>9.0} | {:>10.0} | {:>8.2} |",
        s,
        requests as f64 / s,
        records as f64 / s,
        s * 1000.0 / requests.max(1) as f64
    );
}

async fn hs_get(http: &reqwest::Client, sb: &Sandbox, path: &str) -> Value {
    http.get(format!("{}{}", sb.hubspot_url(), path))
        .bearer_auth(sb.hubspot_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn hs_post(http: &reqwest::Client, sb: &Sandbox, path: &str, body: &Value) -> Value {
    let r = http
        .post(format!("{}{}", sb.hubspot_url(), path))
        .bearer_auth(sb.hubspot_token())
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// Resident set size of this process (Linux), MiB.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(a));
}

async fn run(a: Args) {
    println!(
        "sandbox throughput: {} companies + {} contacts per system, concurrency {}, {} CPUs",
        a.companies,
        a.contacts,
        a.concurrency,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let t0 = Instant::now();
    let sb = Arc::new(
        Sandbox::start(SandboxOptions {
            seed: 1,
            companies: a.companies,
            contacts: a.contacts,
            rate_limits: RateLimits::unlimited(),
            ..Default::default()
        })
        .await
        .unwrap(),
    );
    let startup = t0.elapsed();
    println!(
        "start-up (generate {} records on both sides, build both stores, bind): {:.2} s",
        2 * (a.companies + a.contacts),
        startup.as_secs_f64()
    );
    if let Some(rss) = rss_mib() {
        println!("resident memory after start-up: {rss:.0} MiB");
    }
    println!();
    println!(
        "| {:<48} | {:>7} | {:>8} | {:>8} | {:>9} | {:>10} | {:>8} |",
        "scenario", "reqs", "records", "secs", "req/s", "records/s", "ms/req"
    );
    println!(
        "|{:-<50}|{:-<9}|{:-<10}|{:-<10}|{:-<11}|{:-<12}|{:-<10}|",
        "", "", "", "", "", "", ""
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // 1. HubSpot: one client pages through every contact, 100 per page.
    let t = Instant::now();
    let (mut reqs, mut recs) = (0, 0);
    let mut after = String::new();
    let mut ids: Vec<String> = Vec::with_capacity(a.contacts);
    loop {
        let page = hs_get(
            &http,
            &sb,
            &format!("/crm/v3/objects/contacts?limit=100&properties=email,firstname,lastname,phone,lifecyclestage&after={after}"),
        )
        .await;
        reqs += 1;
        let results = page["results"].as_array().unwrap();
        recs += results.len();
        ids.extend(
            results
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
        match page["paging"]["next"]["after"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(recs, a.contacts);
    report(
        "hubspot list contacts, 1 client, limit 100",
        reqs,
        recs,
        t.elapsed(),
    );

    // 2. HubSpot: concurrent list pages (each task scans a slice of the id space).
    let t = Instant::now();
    let per = ids.len().div_ceil(a.concurrency);
    let mut tasks = Vec::new();
    for c in 0..a.concurrency {
        let start_after = if c == 0 {
            String::new()
        } else {
            ids[(c * per).min(ids.len() - 1)].clone()
        };
        let stop = ids.get(((c + 1) * per).min(ids.len()) - 1).cloned();
        let (sb, http) = (sb.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let (mut reqs, mut recs) = (0, 0);
            let mut after = start_after;
            loop {
                let page = hs_get(
                    &http,
                    &sb,
                    &format!("/crm/v3/objects/contacts?limit=100&after={after}"),
                )
                .await;
                reqs += 1;
                let results = page["results"].as_array().unwrap();
                recs += results.len();
                let done = results
                    .iter()
                    .any(|r| Some(r["id"].as_str().unwrap().to_string()) == stop);
                match page["paging"]["next"]["after"].as_str() {
                    Some(n) if !done => after = n.to_string(),
                    _ => break,
                }
            }
            (reqs, recs)
        }));
    }
    let (mut reqs, mut recs) = (0, 0);
    for task in tasks {
        let (q, r) = task.await.unwrap();
        reqs += q;
        recs += r;
    }
    report(
        &format!("hubspot list contacts, {} clients", a.concurrency),
        reqs,
        recs,
        t.elapsed(),
    );

    // 3. HubSpot: batch read, 100 ids per request, concurrent.
    let t = Instant::now();
    let chunks: Vec<Vec<String>> = ids.chunks(100).map(<[String]>::to_vec).collect();
    let n_chunks = chunks.len();
    let chunks = Arc::new(tokio::sync::Mutex::new(chunks));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (sb, http, chunks) = (sb.clone(), http.clone(), chunks.clone());
        tasks.push(tokio::spawn(async move {
            let mut recs = 0;
            loop {
                let Some(chunk) = chunks.lock().await.pop() else {
                    break;
                };
                let inputs: Vec<Value> = chunk.iter().map(|i| json!({"id": i})).collect();
                let r = hs_post(
                    &http,
                    &sb,
                    "/crm/v3/objects/contacts/batch/read",
                    &json!({"inputs": inputs, "properties": ["email", "firstname"]}),
                )
                .await;
                recs += r["results"].as_array().unwrap().len();
            }
            recs
        }));
    }
    let mut recs = 0;
    for task in tasks {
        recs += task.await.unwrap();
    }
    report(
        &format!("hubspot batch/read 100, {} clients", a.concurrency),
        n_chunks,
        recs,
        t.elapsed(),
    );

    // 4. HubSpot: batch update, 100 per request, concurrent (every record changes).
    let t = Instant::now();
    let chunks: Vec<Vec<String>> = ids.chunks(100).take(200).map(<[String]>::to_vec).collect();
    let n_chunks = chunks.len();
    let chunks = Arc::new(tokio::sync::Mutex::new(chunks));
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let (sb, http, chunks) = (sb.clone(), http.clone(), chunks.clone());
        tasks.push(tokio::spawn(async move {
            let mut recs = 0;
            loop {
                let Some(chunk) = chunks.lock().await.pop() else { break };
                let inputs: Vec<Value> = chunk
                    .iter()
                    .map(|i| json!({"id": i, "properties": {"jobtitle": format!("Bench {w}"), "phone": "+1 555 0100"}}))
                    .collect();
                let r = hs_post(&http, &sb, "/crm/v3/objects/contacts/batch/update", &json!({"inputs": inputs})).await;
                recs += r["results"].as_array().unwrap().len();
            }
            recs
        }));
    }
    let mut recs = 0;
    for task in tasks {
        recs += task.await.unwrap();
    }
    report(
        &format!("hubspot batch/update 100, {} clients", a.concurrency),
        n_chunks,
        recs,
        t.elapsed(),
    );

    // 5. HubSpot: search over the whole portal (filter + sort, 200 per page), 20 requests.
    let t = Instant::now();
    let mut recs = 0;
    for i in 0..20 {
        let r = hs_post(
            &http,
            &sb,
            "/crm/v3/objects/contacts/search",
            &json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1700000000000"}]}],
                    "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                    "limit": 200, "after": (i * 200).to_string()}),
        )
        .await;
        recs += r["results"].as_array().unwrap().len();
    }
    report(
        "hubspot search filter+sort, limit 200",
        20,
        recs,
        t.elapsed(),
    );

    // 6. Accelo: token, then one client pages through every contact with the joined fields.
    let tok: Value = http
        .post(format!("{}/oauth2/v0/token", sb.accelo_url()))
        .basic_auth(sb.accelo_client_id(), Some(sb.accelo_client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    let t = Instant::now();
    let (mut reqs, mut recs) = (0, 0);
    // (surname, email) of contacts spread over the deployment, for scenarios 8 and 9.
    let mut probes: Vec<(String, String)> = Vec::new();
    let stride = (a.contacts / 100 / a.probes.max(1)).max(1);
    for page in 0.. {
        let r: Value = http
            .get(format!(
                "{}/api/v0/contacts?_limit=100&_page={page}&_fields=title,standing,date_modified,status(title,standing),default_affiliation(email,phone,mobile,position,company(name))",
                sb.accelo_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reqs += 1;
        let rows = r["response"].as_array().unwrap();
        let n = rows.len();
        recs += n;
        if page % stride == stride / 2
            && let Some(row) = rows.get(page % n.max(1))
            && let (Some(surname), Some(email)) = (
                row["surname"].as_str(),
                row["default_affiliation"]["email"].as_str(),
            )
        {
            probes.push((surname.to_string(), email.to_string()));
        }
        if n < 100 {
            break;
        }
    }
    report(
        "accelo list contacts + affiliation, _limit 100",
        reqs,
        recs,
        t.elapsed(),
    );

    // 7. Accelo: incremental poll (filtered count + first page) over the whole deployment.
    let t = Instant::now();
    let mut recs = 0;
    for _ in 0..10 {
        let r: Value = http
            .get(format!(
                "{}/api/v0/contacts?_limit=100&_filters=date_modified_after(1700000000),order_by_asc(date_modified)&_fields=date_modified",
                sb.accelo_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        recs += r["response"].as_array().unwrap().len();
    }
    report(
        "accelo filter date_modified_after + order",
        10,
        recs,
        t.elapsed(),
    );

    // 8. Accelo: contact `_search` (looks in firstname, surname, mobile and the email of every
    //    affiliation of each contact). By surname: the first page fills after part of the
    //    deployment; by a whole email: nothing else matches, every contact is looked at.
    let probes: Vec<(String, String)> = probes.into_iter().take(a.probes).collect();
    assert!(!probes.is_empty(), "no contacts to probe");
    for (label, by_email) in [
        ("accelo contacts _search=<surname>", false),
        ("accelo contacts _search=<email> (full scan)", true),
    ] {
        let t = Instant::now();
        let mut recs = 0;
        for (surname, email) in &probes {
            let term = if by_email { email } else { surname };
            let r: Value = http
                .get(format!("{}/api/v0/contacts", sb.accelo_url()))
                .query(&[
                    ("_limit", "100"),
                    ("_search", term.as_str()),
                    ("_fields", "date_modified"),
                ])
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let n = r["response"].as_array().unwrap().len();
            assert!(n > 0, "`{term}` found nothing");
            recs += n;
        }
        report(label, probes.len(), recs, t.elapsed());
    }

    // 9. Accelo: contacts by email (`_filters=email(…)`, matched against every affiliation).
    let t = Instant::now();
    let mut recs = 0;
    for (_, email) in &probes {
        let r: Value = http
            .get(format!("{}/api/v0/contacts", sb.accelo_url()))
            .query(&[
                ("_limit", "100".to_string()),
                ("_filters", format!("email({email})")),
                ("_fields", "date_modified".to_string()),
            ])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n = r["response"].as_array().unwrap().len();
        assert_eq!(n, 1, "`{email}`: {r}");
        recs += n;
    }
    report(
        "accelo contacts _filters=email(..)",
        probes.len(),
        recs,
        t.elapsed(),
    );

    if let Some(rss) = rss_mib() {
        println!("\nresident memory at the end: {rss:.0} MiB");
    }
    let sb = Arc::try_unwrap(sb).expect("all tasks finished");
    sb.shutdown().await;
}
