//! Store benchmark: throughput of the operations a run and the automatic sync lean on, on SQLite
//! and PostgreSQL. Prints a Markdown table (docs/PERFORMANCE.md keeps the results and method).
//!
//! Run: `cargo bench --bench store` (release build; PostgreSQL from `TANDEM_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`). `-- --quick` runs a tenth of the work.
//! `cargo test --all-targets` also runs it (cargo passes no `--bench` then): at the quick scale,
//! as a check that the benchmark still works, not as a measurement.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: failing loudly is right"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_core::model::{Link, Object, System};
use tandem_core::plan::{Change, RecordRef};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{
    Echo, JobEnd, JobKind, LinkChange, LogQuery, NewEvent, NewJob, Outcome, RecordEntry,
    RecordOutcome,
};

struct Row {
    backend: String,
    what: &'static str,
    n: usize,
    elapsed: Duration,
    unit: &'static str,
}

fn outcome(job: tandem_engine::store::JobId, n: usize) -> RecordOutcome {
    let h = format!("{}", 10_000_000 + n);
    let a = format!("{n}");
    RecordOutcome {
        job: Some(job),
        entry: RecordEntry {
            object: Object::Contact,
            source: RecordRef {
                system: System::HubSpot,
                id: Some(h.clone()),
            },
            target: RecordRef {
                system: System::Accelo,
                id: Some(a.clone()),
            },
            outcome: Outcome::Created,
            reason: "qualifies: lifecyclestage is `customer`".into(),
            changes: vec![
                Change {
                    field: "firstname".into(),
                    from: None,
                    to: Some(format!("First{n}")),
                },
                Change {
                    field: "affiliation.email".into(),
                    from: None,
                    to: Some(format!("person{n}@example.com")),
                },
            ],
            error: None,
        },
        link: LinkChange::Upsert(Link {
            object: Object::Contact,
            hubspot_id: h,
            accelo_id: a,
            affiliation_id: Some(format!("{}", 500_000 + n)),
            last_synced: BTreeMap::from([
                ("firstname".into(), format!("First{n}")),
                ("email".into(), format!("person{n}@example.com")),
            ]),
        }),
        resolve_intent: None,
    }
}

async fn bench(ts: &TestStore, scale: usize, rows: &mut Vec<Row>) {
    let store = &ts.store;
    let backend = store.backend().to_string();
    let mut row = |what, n, elapsed, unit| {
        rows.push(Row {
            backend: backend.clone(),
            what,
            n,
            elapsed,
            unit,
        })
    };
    let job = store
        .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
        .await
        .unwrap()
        .id;

    // One transaction per record (Accelo writes are one by one).
    let n = 200 * scale;
    let t = Instant::now();
    for i in 0..n {
        store.record_outcome(&outcome(job, i)).await.unwrap();
    }
    row(
        "record_outcome, one per transaction",
        n,
        t.elapsed(),
        "records",
    );

    // HubSpot batches of 100.
    let batches = 10 * scale;
    let t = Instant::now();
    for b in 0..batches {
        let batch: Vec<_> = (0..100).map(|i| outcome(job, n + b * 100 + i)).collect();
        store.record_outcomes(&batch).await.unwrap();
    }
    let total_links = n + batches * 100;
    row(
        "record_outcomes, batches of 100",
        batches * 100,
        t.elapsed(),
        "records",
    );

    let t = Instant::now();
    let links = store.links(Object::Contact).await.unwrap();
    assert_eq!(links.len(), total_links);
    row(
        "links: bulk load of one object",
        links.len(),
        t.elapsed(),
        "links",
    );

    let t = Instant::now();
    let lookups = 200 * scale;
    for i in 0..lookups {
        let id = format!("{}", (i * 7919) % total_links);
        assert!(
            store
                .link(Object::Contact, System::Accelo, &id)
                .await
                .unwrap()
                .is_some()
        );
    }
    row(
        "link look-up by accelo id",
        lookups,
        t.elapsed(),
        "look-ups",
    );

    let t = Instant::now();
    let mut seen = 0;
    let mut after = None;
    loop {
        let page = store
            .log(&LogQuery {
                job: Some(job),
                after,
                limit: Some(1000),
                ..LogQuery::default()
            })
            .await
            .unwrap();
        seen += page.len();
        after = page.last().map(|e| e.id);
        if page.len() < 1000 {
            break;
        }
    }
    assert_eq!(seen, total_links);
    row(
        "log: read a job's entries (pages of 1000)",
        seen,
        t.elapsed(),
        "entries",
    );

    let t = Instant::now();
    let queries = 100 * scale;
    for i in 0..queries {
        let key = format!("accelo:contact:{}", (i * 104_729) % total_links);
        let hits = store
            .log(&LogQuery {
                record: Some(key.parse().unwrap()),
                ..LogQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(hits.len(), 1);
    }
    row("log: --record query", queries, t.elapsed(), "queries");

    // The queue: enqueue, claim, finish with one worker, then four.
    let jobs = 200 * scale;
    let t = Instant::now();
    for i in 0..jobs {
        store
            .enqueue(&NewJob::new(JobKind::Record, json!({ "n": i })).coalesce(format!("k{i}")))
            .await
            .unwrap();
    }
    row("enqueue (with coalescing key)", jobs, t.elapsed(), "jobs");
    let t = Instant::now();
    let lease = Duration::from_secs(60);
    // The pull job queued above is first in line.
    let pull = store.claim_next("w", &[], lease).await.unwrap().unwrap();
    store
        .finish(pull.id, "w", &JobEnd::Succeeded)
        .await
        .unwrap();
    for _ in 0..jobs / 2 {
        let j = store.claim_next("w", &[], lease).await.unwrap().unwrap();
        store.finish(j.id, "w", &JobEnd::Succeeded).await.unwrap();
    }
    row("claim + finish, 1 worker", jobs / 2, t.elapsed(), "jobs");
    let mut pools = Vec::new();
    for _ in 0..4 {
        pools.push(tandem_engine::store::open(&ts.url).await.unwrap());
    }
    let t = Instant::now();
    let mut workers = Vec::new();
    for (w, s) in pools.into_iter().enumerate() {
        workers.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut done = 0;
            while let Some(j) = s.claim_next(&owner, &[], lease).await.unwrap() {
                s.finish(j.id, &owner, &JobEnd::Succeeded).await.unwrap();
                done += 1;
            }
            s.close().await;
            done
        }));
    }
    let mut claimed = 0;
    for w in workers {
        claimed += w.await.unwrap();
    }
    assert_eq!(claimed, jobs - jobs / 2);
    row(
        "claim + finish, 4 workers (own pools)",
        claimed,
        t.elapsed(),
        "jobs",
    );

    // Webhook intake: store + coalesce.
    let events = 200 * scale;
    let t = Instant::now();
    for i in 0..events {
        let record = format!("{}", i % 50);
        store
            .accept_event(
                &NewEvent {
                    source: System::HubSpot,
                    dedup_key: format!("ev{i}"),
                    object: Some(Object::Company),
                    record_id: Some(record.clone()),
                    payload: json!({"eventId": i, "objectId": record, "propertyName": "name"}),
                },
                Some(
                    &NewJob::new(JobKind::Record, json!({}))
                        .coalesce(format!("hubspot:company:{record}")),
                ),
            )
            .await
            .unwrap();
    }
    row(
        "accept_event (dedup + coalesce)",
        events,
        t.elapsed(),
        "events",
    );
    let t = Instant::now();
    for b in 0..events / 100 {
        let batch: Vec<_> = (0..100)
            .map(|i| {
                let n = events + b * 100 + i;
                let record = format!("{}", n % 50);
                (
                    NewEvent {
                        source: System::HubSpot,
                        dedup_key: format!("ev{n}"),
                        object: Some(Object::Company),
                        record_id: Some(record.clone()),
                        payload: json!({"eventId": n, "objectId": record}),
                    },
                    Some(
                        NewJob::new(JobKind::Record, json!({}))
                            .coalesce(format!("hubspot:company:{record}")),
                    ),
                )
            })
            .collect();
        store.accept_events(&batch).await.unwrap();
    }
    row(
        "accept_events, batches of 100",
        events / 100 * 100,
        t.elapsed(),
        "events",
    );

    let echoes: Vec<Echo> = (0..100 * scale)
        .map(|i| Echo {
            system: System::Accelo,
            object: Object::Company,
            id: format!("{i}"),
            field: "name".into(),
            value: Some(format!("Company {i}")),
        })
        .collect();
    let t = Instant::now();
    for chunk in echoes.chunks(100) {
        store
            .remember_echoes(chunk, Duration::from_secs(600))
            .await
            .unwrap();
    }
    row(
        "remember_echoes, batches of 100",
        echoes.len(),
        t.elapsed(),
        "echoes",
    );
    let t = Instant::now();
    for e in &echoes {
        assert!(store.consume_echo(e).await.unwrap());
    }
    row("consume_echo", echoes.len(), t.elapsed(), "checks");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let scale = if quick { 1 } else { 10 };
    let mut rows = Vec::new();
    for pg in [false, true] {
        let ts = if pg {
            TestStore::postgres().await
        } else {
            TestStore::sqlite().await
        };
        bench(&ts, scale, &mut rows).await;
        ts.cleanup().await;
    }
    println!("| backend | operation | n | time | rate |");
    println!("|---|---|---:|---:|---:|");
    for r in rows {
        let secs = r.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {} | {:.0} ms | {:.0} {}/s |",
            r.backend,
            r.what,
            r.n,
            secs * 1000.0,
            r.n as f64 / secs,
            r.unit
        );
    }
}
