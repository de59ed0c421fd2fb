//! The poller against the sandbox over real HTTP: a fresh store starts following changes from
//! its first round; HubSpot and Accelo edits (an Accelo affiliation included) queue one coalesced
//! record job each; a round with no new change queues nothing; cursors advance only with jobs.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tandem_core::model::{Object, System};
use tandem_engine::server::Rules;
use tandem_engine::server::poll::{PollOptions, Poller, cursor_name};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{JobFilter, JobKind};
use tandem_sandbox::SandboxOptions;

use crate::support::serve::*;

async fn queued(store: &dyn tandem_engine::store::Store) -> BTreeSet<String> {
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
        Rules::Fixed(program()),
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
    let contact_id = affiliation["contact"].as_str().unwrap().to_string();
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

/// The `last_synced` map of a HubSpot record as a sync would leave it (every value that flows
/// from HubSpot, keyed `hubspot:<property>`).
fn synced_map(
    program: &tandem_core::compile::Program,
    record: &tandem_core::model::Record,
) -> std::collections::BTreeMap<String, String> {
    let rules = program.object(record.object).unwrap();
    let mut map = std::collections::BTreeMap::new();
    for m in &rules.mappings {
        map.insert(
            format!("hubspot:{}", m.hubspot),
            m.read(record).unwrap_or_default(),
        );
    }
    if let Some(s) = &rules.status {
        map.insert(
            format!("hubspot:{}", s.hubspot),
            s.read(record).unwrap_or_default(),
        );
    }
    map
}

#[tokio::test]
async fn a_change_that_is_only_tandems_own_write_is_not_queued() {
    let sb = sandbox(SandboxOptions {
        seed: 12,
        companies: 10,
        contacts: 10,
        ..Default::default()
    })
    .await;
    let ts = TestStore::sqlite().await;
    let store = ts.store.clone();
    let program = program();
    let hs = hubspot(&sb);
    let poller = Poller::new(
        store.clone(),
        Rules::Fixed(program.clone()),
        hs.clone(),
        accelo(&sb),
        PollOptions {
            overlap: Duration::from_secs(60),
            job_delay: Duration::ZERO,
        },
    );
    poller.poll_once().await.unwrap();

    // Tandem wrote a name into a linked company (the sandbox records it as an API change), and
    // the link remembers exactly the values now there.
    let id = records(sb.hubspot_url(), "companies").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    edit(
        sb.hubspot_url(),
        "companies",
        Some(&id),
        json!({"name": "Written By Tandem"}),
    )
    .await;
    let props = program.read_properties(Object::Company);
    let record = hs
        .get(Object::Company, std::slice::from_ref(&id), &props)
        .await
        .unwrap()
        .remove(0);
    store
        .upsert_link(&tandem_core::model::Link {
            object: Object::Company,
            hubspot_id: id.clone(),
            accelo_id: "999".into(),
            affiliation_id: None,
            last_synced: synced_map(&program, &record),
        })
        .await
        .unwrap();
    let round = poller.poll_once().await.unwrap();
    assert_eq!(round.queued(), 0, "{round:?}");
    assert_eq!(
        round.counts[&(System::HubSpot, Object::Company)].2,
        1,
        "{round:?}"
    );
    assert!(queued(store.as_ref()).await.is_empty());

    // A person then changes a synced field: queued.
    edit(
        sb.hubspot_url(),
        "companies",
        Some(&id),
        json!({"phone": "+1 555 0100"}),
    )
    .await;
    let round = poller.poll_once().await.unwrap();
    assert_eq!(round.queued(), 1, "{round:?}");
    assert_eq!(
        queued(store.as_ref()).await,
        [format!("hubspot:company:{id}")].into()
    );
    sb.shutdown().await;
    ts.cleanup().await;
}
