//! Killing a writer with SIGKILL leaves the store with whole transactions only, and with every
//! transaction the writer saw committed (B20 at the store's level), on SQLite and PostgreSQL.
//!
//! This file has its own `main` (`harness = false`): run normally it is the test; run with
//! `--child URL` it is the writer the test kills. The writer opens an intent, then writes the
//! record's outcome (link + log entry + intent resolution) in one transaction, and prints the
//! number of each record once its transaction has committed. Each writer first settles the
//! intents a killed predecessor left open, as the executor does on restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::json;
use tandem_core::model::{Link, Object, RecordKey, System};
use tandem_core::plan::{Change, RecordRef};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{
    IntentState, JobKind, LinkChange, LogBody, LogQuery, NewIntent, NewJob, Outcome, RecordEntry,
    RecordOutcome,
};

async fn child(url: &str) {
    let store = tandem_engine::store::open(url).await.unwrap();
    let job = store
        .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
        .await
        .unwrap()
        .id;
    // Recovery as the executor does it: an intent left open by a killed writer is settled
    // from what the store knows (here the link; the executor also asks the target system).
    for intent in store.open_intents().await.unwrap() {
        let link = store
            .link(intent.source.object, System::HubSpot, &intent.source.id)
            .await
            .unwrap();
        let created = link.map(|l| l.accelo_id);
        store
            .resolve_intent(intent.id, created.as_deref())
            .await
            .unwrap();
    }
    let mut out = std::io::stdout();
    for n in 0u64.. {
        let h = n.to_string();
        let intent = store
            .open_intent(&NewIntent {
                job: Some(job),
                source: RecordKey {
                    system: System::HubSpot,
                    object: Object::Company,
                    id: h.clone(),
                },
                target: System::Accelo,
                dedup: json!({ "name": format!("Company {n}") }),
            })
            .await
            .unwrap();
        // Linked by a predecessor: nothing to create.
        let Some(intent) = intent.opened() else {
            continue;
        };
        let a = format!("a{n}");
        let outcome = RecordOutcome {
            job: Some(job),
            entry: RecordEntry {
                object: Object::Company,
                source: RecordRef {
                    system: System::HubSpot,
                    id: Some(h.clone()),
                },
                target: RecordRef {
                    system: System::Accelo,
                    id: Some(a.clone()),
                },
                outcome: Outcome::Created,
                reason: "qualifies".into(),
                changes: vec![Change {
                    field: "name".into(),
                    from: None,
                    to: Some(format!("Company {n}")),
                }],
                error: None,
            },
            link: LinkChange::Upsert(Link {
                object: Object::Company,
                hubspot_id: h,
                accelo_id: a,
                affiliation_id: None,
                last_synced: [("name".to_string(), format!("Company {n}"))].into(),
            }),
            resolve_intent: Some(intent),
        };
        store.record_outcome(&outcome).await.unwrap();
        writeln!(out, "{n}").unwrap();
        out.flush().unwrap();
    }
}

/// Starts the writer, kills it once it has reported `after` commits, and checks the store.
async fn kill_and_check(ts: &TestStore, after: u64) {
    let mut writer = Command::new(std::env::current_exe().unwrap())
        .arg("--child")
        .arg(&ts.url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    let mut last_reported = None;
    for line in lines {
        let n: u64 = line.unwrap().trim().parse().unwrap();
        last_reported = Some(n);
        if n >= after {
            // SIGKILL: no destructor, no rollback, no flush runs.
            writer.kill().unwrap();
            break;
        }
    }
    writer.wait().unwrap();
    let last_reported = last_reported.expect("the writer reported no commit");

    let store = &ts.store;
    let linked: BTreeSet<u64> = store
        .links(Object::Company)
        .await
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l.accelo_id, format!("a{}", l.hubspot_id));
            l.hubspot_id.parse().unwrap()
        })
        .collect();
    let logged: BTreeSet<u64> = store
        .log(&LogQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            LogBody::Record(r) => r.source.id.map(|id| id.parse().unwrap()),
            _ => None,
        })
        .collect();
    // Whole transactions only: every link has its log entry and every entry its link.
    assert_eq!(linked, logged);
    // Every commit the writer reported survived, and nothing beyond the one in flight exists.
    let expected: BTreeSet<u64> = (0..=last_reported).collect();
    let extra: Vec<_> = linked.difference(&expected).collect();
    assert!(
        expected.is_subset(&linked),
        "lost commits: reported up to {last_reported}"
    );
    assert!(extra.len() <= 1, "unexpected records {extra:?}");
    // Intents: each linked record's intent is resolved with its id; at most the record in
    // flight has an open intent, and that record is not linked.
    let open = store.open_intents().await.unwrap();
    assert!(open.len() <= 1, "{open:?}");
    for i in &open {
        assert_eq!(i.state, IntentState::Open);
        let n: u64 = i.source.id.parse().unwrap();
        assert!(
            !linked.contains(&n),
            "record {n} is linked but its intent is open"
        );
    }
}

async fn parent() {
    for ts in [TestStore::sqlite().await, TestStore::postgres().await] {
        // Several kills at different points, the store reopened in between by the next writer.
        for after in [5, 40, 90] {
            kill_and_check(&ts, after).await;
        }
        println!("store_crash: {} store ok", ts.store.backend());
        ts.cleanup().await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.iter().position(|a| a == "--child") {
        Some(i) => runtime.block_on(child(&args[i + 1])),
        None => runtime.block_on(parent()),
    }
}
