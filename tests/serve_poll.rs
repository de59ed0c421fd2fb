//! The poller against the sandbox over real HTTP: a fresh store starts following changes from
//! its first round; HubSpot and Accelo edits (an Accelo affiliation included) queue one coalesced
//! record job each; a round with no new change queues nothing; cursors advance only with jobs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod serve_support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use serve_support::*;
use tandem::model::{Object, System};
use tandem::sandbox::SandboxOptions;
use tandem::server::Rules;
use tandem::server::poll::{PollOptions, Poller, cursor_name};
use tandem::store::testing::TestStore;
use tandem::store::{JobFilter, JobKind};

async fn queued(store: &dyn tandem::store::Store) -> BTreeSet<String> {
    store
        .jobs(&JobFilter {
            kinds: vec![JobKind::Record],
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter_map(|j| j.coalesce_key)
        .collect()
}

#[tokio::test]
async fn edits_on_both_sides_are_found_once_and_queued() {
    let sb = sandbox(SandboxOptions {
        seed: 11,
        companies: 20,
        contacts: 40,
        ..Default::default()
    })
    .await;
    let ts = TestStore::sqlite().await;
    let store = ts.store.clone();
    let poller = Poller::new(
        store.clone(),
        Rules::Fixed(shipped_program()),
        hubspot(&sb),
        accelo(&sb),
        PollOptions {
            overlap: Duration::from_secs(60),
            job_delay: Duration::ZERO,
        },
    );

    // A fresh store: the first round only marks where to start.
    let first = poller.poll_once().await.unwrap();
    assert_eq!(first.queued(), 0);
    for system in [System::HubSpot, System::Accelo] {
        for object in Object::ALL {
            assert!(
                store
                    .cursor(&cursor_name(system, object))
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }
    assert!(queued(store.as_ref()).await.is_empty());

    // A person edits a HubSpot company (a custom-looking property no webhook reports), an Accelo
    // company, and an Accelo contact's affiliation (which fires no Accelo webhook at all).
    let hs_company = &records(sb.hubspot_url(), "companies").await[0];
    let hs_id = hs_company["id"].as_str().unwrap().to_string();
    edit(
        sb.hubspot_url(),
        "companies",
        Some(&hs_id),
        json!({"description": "polled"}),
    )
    .await;
    let ac_company = &records(sb.accelo_url(), "companies").await[0];
    let ac_id = ac_company["id"].as_str().unwrap().to_string();
    edit(
        sb.accelo_url(),
        "companies",
        Some(&ac_id),
        json!({"comments": "polled"}),
    )
    .await;
    let affiliation = &records(sb.accelo_url(), "affiliations").await[0];
    let contact_id = affiliation["contact_id"]
        .as_str()
        .map(str::to_string)
        .or_else(|| affiliation["contact"].as_str().map(str::to_string))
        .unwrap();
    let aff_id = affiliation["id"].as_str().unwrap().to_string();
    edit(
        sb.accelo_url(),
        "affiliations",
        Some(&aff_id),
        json!({"position": "Chief Poller"}),
    )
    .await;

    let round = poller.poll_once().await.unwrap();
    let expected: BTreeSet<String> = [
        format!("hubspot:company:{hs_id}"),
        format!("accelo:company:{ac_id}"),
        format!("accelo:contact:{contact_id}"),
    ]
    .into();
    let got = queued(store.as_ref()).await;
    assert!(expected.is_subset(&got), "{expected:?} ⊄ {got:?}");
    let total = round.queued();
    assert!(total >= 3, "{round:?}");

    // Nothing changed since: nothing queued again (the overlap re-reads, the cursor remembers).
    let again = poller.poll_once().await.unwrap();
    assert_eq!(again.queued(), 0, "{again:?}");
    let jobs = store.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len() as u64, total);

    // A second edit of the same record is a new change: queued again (joining the queued job).
    edit(
        sb.hubspot_url(),
        "companies",
        Some(&hs_id),
        json!({"description": "polled twice"}),
    )
    .await;
    let third = poller.poll_once().await.unwrap();
    assert_eq!(third.queued(), 1, "{third:?}");
    assert_eq!(
        store.jobs(&JobFilter::default()).await.unwrap().len() as u64,
        total
    );

    sb.shutdown().await;
    ts.cleanup().await;
}
