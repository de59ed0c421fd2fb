//! Webhook receiver benchmark: how fast `POST /webhooks/hubspot` answers (HubSpot gives up after
//! 5 s and retries), and how many events per second one `tandem serve` process stores, on SQLite
//! and PostgreSQL. Prints a Markdown table (docs/PERFORMANCE.md keeps the results and method).
//!
//! Run: `cargo bench --bench serve_webhooks` (release build; PostgreSQL from
//! `TANDEM_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`). `-- --quick`
//! runs a tenth of the work. `cargo test --all-targets` also runs it (cargo passes no `--bench`
//! then) at the quick scale, as a check that it still works, not as a measurement.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: failing loudly is right"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tandem_core::compile;
use tandem_core::rules::Paths;
use tandem_core::rules::config::Secret;
use tandem_engine::server::signature::sign_v3;
use tandem_engine::server::{Receiver, ReceiverConfig, Rules, router};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{JobFilter, Store};

const SECRET: &str = "bench-webhook-secret-0123456789";
/// HubSpot's default number of requests in flight per account.
const CONCURRENCY: usize = 10;

struct Row {
    backend: String,
    scenario: String,
    requests: usize,
    events: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

static EVENT_ID: AtomicU64 = AtomicU64::new(1);

/// A batch of `n` events over `records` distinct companies: property changes of triggering
/// properties (every one goes through the echo check), with a creation every tenth event.
fn batch(n: usize, first_record: u64, records: u64) -> Value {
    let events: Vec<Value> = (0..n as u64)
        .map(|i| {
            let id = EVENT_ID.fetch_add(1, Ordering::Relaxed);
            let object = 10_000 + first_record + (id % records);
            if i % 10 == 0 {
                json!({"eventId": id, "subscriptionId": 1, "portalId": 62515, "appId": 1,
                    "occurredAt": 1_700_000_000_000_u64 + id, "subscriptionType": "company.creation",
                    "attemptNumber": 0, "objectId": object, "changeFlag": "NEW",
                    "changeSource": "CRM_UI"})
            } else {
                json!({"eventId": id, "subscriptionId": 2, "portalId": 62515, "appId": 1,
                    "occurredAt": 1_700_000_000_000_u64 + id,
                    "subscriptionType": "company.propertyChange", "attemptNumber": 0,
                    "objectId": object, "propertyName": "name",
                    "propertyValue": format!("Company {id}"), "changeSource": "CRM_UI"})
            }
        })
        .collect();
    Value::Array(events)
}

async fn send_all(url: &str, bodies: Vec<Vec<u8>>) -> (Duration, Vec<Duration>) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(bodies)
        .map(|body| {
            let client = client.clone();
            let url = url.to_string();
            async move {
                let ts = chrono::Utc::now().timestamp_millis().to_string();
                let sig = sign_v3(SECRET.as_bytes(), "POST", &url, &body, &ts);
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-hubspot-signature-v3", sig)
                    .header("x-hubspot-request-timestamp", ts)
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                assert!(r.status().is_success(), "{}", r.status());
                let _ = r.bytes().await;
                t.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    (started.elapsed(), latencies)
}

async fn bench(ts: &TestStore, scale: usize, rows: &mut Vec<Row>) {
    let store: Arc<dyn Store> = ts.store.clone();
    let paths = Paths {
        config: PathBuf::from("rules/tandem.yaml"),
        rules_dir: PathBuf::from("rules"),
    };
    let program = compile::load(&paths).expect("shipped rules").program;
    let receiver = Arc::new(Receiver::new(
        store.clone(),
        Rules::Fixed(program),
        ReceiverConfig {
            hubspot_secret: Some(Secret::new(SECRET)),
            ..ReceiverConfig::default()
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/hubspot", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router(receiver)).await });
    let backend = store.backend().to_string();

    // Full batches of 100 over 1000 records (coalescing into ≤ 1000 jobs).
    let requests = 20 * scale;
    let bodies: Vec<Vec<u8>> = (0..requests)
        .map(|_| serde_json::to_vec(&batch(100, 0, 1000)).unwrap())
        .collect();
    let redelivered = bodies.clone();
    let (elapsed, latencies) = send_all(&url, bodies).await;
    rows.push(Row {
        backend: backend.clone(),
        scenario: "batches of 100 events, new".into(),
        requests,
        events: requests * 100,
        elapsed,
        latencies,
    });
    // The same batches again (HubSpot redelivers): all duplicates.
    let (elapsed, latencies) = send_all(&url, redelivered).await;
    rows.push(Row {
        backend: backend.clone(),
        scenario: "batches of 100 events, redelivered".into(),
        requests,
        events: requests * 100,
        elapsed,
        latencies,
    });
    // One event per request (a quiet portal).
    let requests = 100 * scale;
    let bodies: Vec<Vec<u8>> = (0..requests)
        .map(|i| serde_json::to_vec(&batch(1, 5_000 + i as u64, 1)).unwrap())
        .collect();
    let (elapsed, latencies) = send_all(&url, bodies).await;
    rows.push(Row {
        backend,
        scenario: "one event per request".into(),
        requests,
        events: requests,
        elapsed,
        latencies,
    });
    let jobs = store.jobs(&JobFilter::default()).await.unwrap();
    assert!(!jobs.is_empty());
    server.abort();
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let quick = !measuring || args.iter().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 10 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    rt.block_on(async {
        for pg in [false, true] {
            let ts = if pg {
                TestStore::postgres().await
            } else {
                TestStore::sqlite().await
            };
            bench(&ts, scale, &mut rows).await;
            ts.cleanup().await;
        }
    });
    println!(
        "| backend | scenario | requests | events | events/s | p50 | p99 | max |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for mut r in rows {
        r.latencies.sort();
        let rate = r.events as f64 / r.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms |",
            r.backend,
            r.scenario,
            r.requests,
            r.events,
            rate,
            pct(&r.latencies, 0.5).as_secs_f64() * 1e3,
            pct(&r.latencies, 0.99).as_secs_f64() * 1e3,
            r.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3,
        );
    }
}
