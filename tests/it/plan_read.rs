//! Reading scopes against the sandbox over real HTTP: the connector lookups the single-record
//! scopes rely on (a company's contacts, text search for duplicate candidates), the record scope
//! of the automatic sync, and the incremental mode on real data — a pair synced by applying its
//! plan with the real connectors re-plans to no-ops (values read back equal what was written),
//! and a later edit on either side plans exactly that one write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::model::{Direction, Link, Object, Record, System};
use tandem_core::plan::{Mode, Op, Plan, Scope, plan};
use tandem_engine::connect::{COMPANY_ID_KEY, Changes, Lookup, RetryPolicy, UpdateInput};
use tandem_engine::runtime::{Env, Options, Runtime};
use tandem_engine::snapshot::Snapshot;
use tandem_sandbox::Sandbox;

use crate::support::admin::{delta, edit, records, requests};
use crate::support::seeded_sandbox;

async fn setup(
    seed: u64,
    companies: usize,
    contacts: usize,
) -> (Sandbox, Runtime, tempfile::TempDir) {
    let sb = seeded_sandbox(seed, companies, contacts).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tandem.db");
    let rt = Runtime::load(Options {
        config: Some(PathBuf::from("rules/tandem.yaml")),
        rules: None,
        env: Env::from_pairs([
            ("TANDEM_HUBSPOT_URL", sb.hubspot_url().to_string()),
            ("TANDEM_HUBSPOT_TOKEN", sb.hubspot_token().to_string()),
            ("TANDEM_ACCELO_URL", sb.accelo_url().to_string()),
            ("TANDEM_ACCELO_CLIENT_ID", sb.accelo_client_id().to_string()),
            (
                "TANDEM_ACCELO_CLIENT_SECRET",
                sb.accelo_client_secret().to_string(),
            ),
            ("TANDEM_STORE", store.display().to_string()),
        ]),
        retry: Some(RetryPolicy {
            retries: 8,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(50),
            max_server_wait: Duration::from_millis(50),
        }),
        store: None,
    })
    .expect("runtime");
    (sb, rt, dir)
}

fn s(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

fn ids(records: &[Record]) -> BTreeSet<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_for_single_record_scopes() {
    let (sb, rt, _dir) = setup(21, 30, 120).await;
    let hs = rt.connector(System::HubSpot);
    let ac = rt.connector(System::Accelo);
    let props = rt.program.read_properties(Object::Contact);

    // HubSpot: the contacts whose primary company is X.
    let hs_contacts = records(sb.hubspot_url(), "contacts").await;
    let mut by_company: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &hs_contacts {
        if let Some(co) = s(&c["properties"]["associatedcompanyid"]) {
            by_company
                .entry(co)
                .or_default()
                .insert(s(&c["id"]).unwrap());
        }
    }
    let (company, expected) = by_company.iter().max_by_key(|(_, v)| v.len()).unwrap();
    let before = requests(sb.hubspot_url()).await;
    let found = hs
        .find(
            Object::Contact,
            &Lookup::new(COMPANY_ID_KEY, company),
            &props,
        )
        .await
        .unwrap();
    assert_eq!(&ids(&found), expected);
    assert!(
        found
            .iter()
            .all(|r| r.company_id.as_deref() == Some(company.as_str()))
    );
    assert_eq!(
        delta(&before, &requests(sb.hubspot_url()).await),
        BTreeMap::from([("POST /crm/v3/objects/contacts/search".to_string(), 1)]),
        "one search for up to 200 contacts"
    );

    // Accelo: the contacts whose default affiliation is with company X.
    let affs = records(sb.accelo_url(), "affiliations").await;
    let ac_contacts = records(sb.accelo_url(), "contacts").await;
    let aff_company: BTreeMap<String, String> = affs
        .iter()
        .map(|a| (s(&a["id"]).unwrap(), s(&a["company"]).unwrap()))
        .collect();
    let mut by_company: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &ac_contacts {
        if let Some(co) = s(&c["default_affiliation"]).and_then(|a| aff_company.get(&a).cloned()) {
            by_company
                .entry(co)
                .or_default()
                .insert(s(&c["id"]).unwrap());
        }
    }
    let (company, expected) = by_company.iter().max_by_key(|(_, v)| v.len()).unwrap();
    let found = ac
        .find(Object::Contact, &Lookup::new(COMPANY_ID_KEY, company), &[])
        .await
        .unwrap();
    assert_eq!(&ids(&found), expected);
    assert!(
        found
            .iter()
            .all(|r| r.company_id.as_deref() == Some(company.as_str()))
    );
    // A company without contacts, and a non-numeric id, find nothing.
    assert!(
        ac.find(Object::Contact, &Lookup::new(COMPANY_ID_KEY, "x1"), &[])
            .await
            .unwrap()
            .is_empty()
    );

    // Text search: a superset that contains the record whose text has the value.
    let hs_companies = records(sb.hubspot_url(), "companies").await;
    let with_domain = hs_companies
        .iter()
        .find(|c| s(&c["properties"]["domain"]).is_some())
        .unwrap();
    let domain = s(&with_domain["properties"]["domain"]).unwrap();
    let found = hs
        .search_text(
            Object::Company,
            &domain.to_uppercase(),
            &rt.program.read_properties(Object::Company),
        )
        .await
        .unwrap();
    assert!(
        ids(&found).contains(&s(&with_domain["id"]).unwrap()),
        "{domain}"
    );
    for r in &found {
        let text = ["name", "domain", "website", "phone"]
            .iter()
            .filter_map(|p| r.get(p))
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        assert!(text.contains(&domain.to_lowercase()), "{text} / {domain}");
    }
    let ac_companies = records(sb.accelo_url(), "companies").await;
    let name = s(&ac_companies[0]["name"]).unwrap();
    let word = name.split_whitespace().next().unwrap().to_lowercase();
    let found = ac.search_text(Object::Company, &word, &[]).await.unwrap();
    assert!(ids(&found).contains(&s(&ac_companies[0]["id"]).unwrap()));
    assert!(found.iter().all(|r| {
        ["name", "website", "phone"]
            .iter()
            .filter_map(|p| r.get(p))
            .any(|v| v.to_lowercase().contains(&word))
    }));
    // Accelo contacts by an affiliation email.
    let aff = affs.iter().find(|a| s(&a["email"]).is_some()).unwrap();
    let email = s(&aff["email"]).unwrap();
    let found = ac.search_text(Object::Contact, &email, &[]).await.unwrap();
    assert!(
        ids(&found).contains(&s(&aff["contact"]).unwrap()),
        "{email}"
    );
    assert!(
        hs.search_text(Object::Contact, "  ", &[])
            .await
            .unwrap()
            .is_empty()
    );
    sb.shutdown().await;
}

/// Applies the link / update actions of `p` with the real connectors and records the links —
/// what the executor does, reduced to what this test needs (no creates).
async fn apply_links(rt: &Runtime, snapshot: &Snapshot, p: &Plan) {
    let store = rt.store().await.unwrap();
    for a in &p.actions {
        if !matches!(a.op, Op::Link | Op::Update | Op::Noop) {
            continue;
        }
        let target = a.target.id.clone().unwrap();
        if !a.changes.is_empty() {
            let changes: Changes = a
                .changes
                .iter()
                .map(|c| (c.field.clone(), c.to.clone()))
                .collect();
            let current = snapshot.record(a.target.system, a.object, &target).cloned();
            let results = rt
                .connector(a.target.system)
                .update(
                    a.object,
                    vec![UpdateInput {
                        id: target.clone(),
                        changes,
                        company_id: None,
                        current,
                    }],
                )
                .await
                .unwrap();
            let w = results.into_iter().next().unwrap().unwrap();
            assert!(w.problems.is_empty(), "{:?}", w.problems);
        }
        if let Some(map) = &a.last_synced {
            let (h, ac) = a.ids();
            store
                .upsert_link(&Link {
                    object: a.object,
                    hubspot_id: h.unwrap().to_string(),
                    accelo_id: ac.unwrap().to_string(),
                    affiliation_id: a.affiliation_id.clone(),
                    last_synced: map.clone(),
                })
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_sync_plans_only_what_changed() {
    let (sb, rt, _dir) = setup(22, 30, 100).await;
    // A HubSpot company that has a twin in Accelo (the pull plan links it).
    let bulk = rt.read(Direction::Pull, &Scope::All).await.unwrap();
    let p = plan(&rt.program, &bulk.input(Mode::Bulk));
    let link = p
        .actions
        .iter()
        .find(|a| a.object == Object::Company && a.op == Op::Link && !a.changes.is_empty())
        .expect("the seed has twin companies");
    let hs_id = link.source.id.clone().unwrap();
    let ac_id = link.target.id.clone().unwrap();

    // Sync that company and its contacts (B8 scope), with the real connectors.
    let scope = Scope::Company { id: hs_id.clone() };
    let snap = rt.read(Direction::Pull, &scope).await.unwrap();
    let first = plan(&rt.program, &snap.input(Mode::Bulk));
    apply_links(&rt, &snap, &first).await;

    // Planned again incrementally from either side: every value reads back as it was written.
    let record = |system: System, id: &str| Scope::Record {
        system,
        object: Object::Company,
        id: id.to_string(),
    };
    for (system, id) in [(System::HubSpot, &hs_id), (System::Accelo, &ac_id)] {
        let d = Direction::from_source(system);
        let snap = rt.read(d, &record(system, id)).await.unwrap();
        assert_eq!(snap.source().len(), 1);
        let p = plan(&rt.program, &snap.input(Mode::Incremental));
        assert_eq!(p.actions.len(), 1, "{:#?}", p.actions);
        assert_eq!(p.actions[0].op, Op::Noop, "{:#?}", p.actions[0]);
        assert_eq!(
            p.actions[0].reason,
            "neither side changed since the last sync"
        );
    }

    // Someone renames the company in HubSpot: the automatic sync writes just the name.
    edit(
        sb.hubspot_url(),
        "companies",
        Some(hs_id.as_str()),
        json!({"name": "Renamed In HubSpot Ltd"}),
    )
    .await;
    let snap = rt
        .read(Direction::Pull, &record(System::HubSpot, &hs_id))
        .await
        .unwrap();
    let p = plan(&rt.program, &snap.input(Mode::Incremental));
    assert_eq!(p.actions.len(), 1, "{:#?}", p.actions);
    let a = &p.actions[0];
    assert_eq!(
        (a.op, a.target.system, a.target.id.as_deref()),
        (Op::Update, System::Accelo, Some(ac_id.as_str()))
    );
    assert_eq!(
        a.reason,
        "linked; changed in hubspot since the last sync: name"
    );
    assert_eq!(a.changes.len(), 1);
    assert_eq!(a.changes[0].field, "name");
    assert_eq!(a.changes[0].to.as_deref(), Some("Renamed In HubSpot Ltd"));
    apply_links(&rt, &snap, &p).await;

    // Someone changes the phone in Accelo: seen from Accelo (the poller), it goes to HubSpot.
    edit(
        sb.accelo_url(),
        "companies",
        Some(ac_id.as_str()),
        json!({"phone": "+61 3 5550 1234"}),
    )
    .await;
    let snap = rt
        .read(Direction::Push, &record(System::Accelo, &ac_id))
        .await
        .unwrap();
    let p = plan(&rt.program, &snap.input(Mode::Incremental));
    assert_eq!(p.actions.len(), 1, "{:#?}", p.actions);
    let a = &p.actions[0];
    assert_eq!((a.op, a.target.system), (Op::Update, System::HubSpot));
    assert_eq!(
        a.reason,
        "linked; changed in accelo since the last sync: phone"
    );
    assert_eq!(
        a.changes
            .iter()
            .map(|c| c.field.as_str())
            .collect::<Vec<_>>(),
        ["phone"]
    );
    apply_links(&rt, &snap, &p).await;

    // The HubSpot record saw Tandem's write (a newer modification time): an echo, nothing to do.
    let snap = rt
        .read(Direction::Pull, &record(System::HubSpot, &hs_id))
        .await
        .unwrap();
    let p = plan(&rt.program, &snap.input(Mode::Incremental));
    assert_eq!(p.actions[0].op, Op::Noop, "{:#?}", p.actions);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_scope_brings_an_unlinked_company_first() {
    let (sb, rt, _dir) = setup(23, 20, 80).await;
    // A HubSpot contact with a company; nothing is linked yet.
    let contacts = records(sb.hubspot_url(), "contacts").await;
    let c = contacts
        .iter()
        .find(|c| {
            s(&c["properties"]["associatedcompanyid"]).is_some()
                && s(&c["properties"]["firstname"]).is_some()
                && s(&c["properties"]["lastname"]).is_some()
                && s(&c["properties"]["lifecyclestage"]).as_deref() != Some("subscriber")
        })
        .unwrap();
    let cid = s(&c["id"]).unwrap();
    let company = s(&c["properties"]["associatedcompanyid"]).unwrap();
    let snap = rt
        .read(
            Direction::Pull,
            &Scope::Record {
                system: System::HubSpot,
                object: Object::Contact,
                id: cid.clone(),
            },
        )
        .await
        .unwrap();
    let sources: BTreeSet<(Object, String)> = snap
        .source()
        .iter()
        .map(|r| (r.object, r.id.clone()))
        .collect();
    assert_eq!(
        sources,
        BTreeSet::from([
            (Object::Company, company.clone()),
            (Object::Contact, cid.clone())
        ])
    );
    let p = plan(&rt.program, &snap.input(Mode::Incremental));
    assert_eq!(p.actions[0].object, Object::Company);
    let contact = p
        .actions
        .iter()
        .find(|a| a.object == Object::Contact)
        .unwrap();
    if p.actions[0].op == Op::Create {
        assert_eq!(
            contact.depends_on,
            Some(p.actions[0].seq),
            "{:#?}",
            p.actions
        );
    }
    // The record scope's direction is the record's system's.
    let e = rt
        .read(
            Direction::Push,
            &Scope::Record {
                system: System::HubSpot,
                object: Object::Contact,
                id: cid,
            },
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("is planned in the `pull` direction"),
        "{e}"
    );
    // A record that is gone plans nothing.
    let snap = rt
        .read(
            Direction::Pull,
            &Scope::Record {
                system: System::HubSpot,
                object: Object::Company,
                id: "1".into(),
            },
        )
        .await
        .unwrap();
    assert!(snap.source().is_empty());
    assert!(
        plan(&rt.program, &snap.input(Mode::Incremental))
            .actions
            .is_empty()
    );
    sb.shutdown().await;
}
