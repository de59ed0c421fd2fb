//! The executor against the in-process sandbox over HTTP, with plans made by `plan::plan` from
//! live reads: pull and push converge (a re-plan is all no-ops and a second run writes nothing),
//! one edit costs one write, HubSpot writes go in batches of 100, blanks never overwrite,
//! failures stay alone (and fail the contacts that depend on them), guardrails stop before any
//! write, faults and lost answers create no duplicate, and open intents are settled.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde_json::json;
use tandem_core::model::{Direction, Object, RecordKey, System};
use tandem_core::plan::{Change, Op, Plan};
use tandem_core::rules::config::Guardrails;
use tandem_engine::connect::{Connector, CreateInput, Lookup};
use tandem_engine::exec::progress::Silent;
use tandem_engine::exec::recover::{Settled, settle};
use tandem_engine::exec::{ExecError, ExecOptions, Executor, RunContext};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{LogBody, LogQuery, NewIntent, Outcome, Store};
use tandem_sandbox::FaultConfig;
use tokio_util::sync::CancellationToken;

use crate::support::exec::*;

struct Env {
    sb: tandem_sandbox::Sandbox,
    ts: TestStore,
    exec: Executor,
    program: Arc<tandem_core::compile::Program>,
    hs: Arc<dyn Connector>,
    ac: Arc<dyn Connector>,
}

impl Env {
    async fn new(seed: u64, companies: usize, contacts: usize, options: ExecOptions) -> Env {
        let sb = sandbox(seed, companies, contacts).await;
        let ts = TestStore::sqlite().await;
        let (hs, ac) = (hubspot(&sb), accelo(&sb));
        let exec = Executor::new(ts.store.clone(), hs.clone(), ac.clone(), options);
        Env {
            sb,
            ts,
            exec,
            program: program(),
            hs,
            ac,
        }
    }

    fn store(&self) -> &dyn Store {
        self.ts.store.as_ref()
    }

    async fn world(&self) -> World {
        World::read(&self.program, &*self.hs, &*self.ac, self.store()).await
    }

    fn stats(&self) -> serde_json::Value {
        json!({"hubspot": self.sb.hubspot_stats(), "accelo": self.sb.accelo_stats()})
    }

    async fn run(
        &self,
        world: &World,
        plan: &Plan,
    ) -> Result<tandem_engine::exec::Report, ExecError> {
        self.exec
            .execute(
                plan,
                &world.input(plan.direction),
                &RunContext {
                    lease: None,
                    cancel: CancellationToken::new(),
                    progress: &Silent,
                    bulk: true,
                    resume: false,
                },
            )
            .await
    }

    /// As a sync job does: settles the create intents an earlier run left open (a create
    /// whose answer was lost), then plans `direction` from a fresh read and runs it.
    async fn sync(&self, direction: Direction) -> (Plan, tandem_engine::exec::Report) {
        tandem_engine::exec::recover::settle(&self.exec, None)
            .await
            .expect("open intents are settled");
        let world = self.world().await;
        let plan = world.plan(&self.program, direction);
        let report = self.run(&world, &plan).await.expect("the run goes through");
        (plan, report)
    }

    async fn finish(self) {
        self.sb.shutdown().await;
        self.ts.cleanup().await;
    }
}

/// Only `create`, `update` and `link` count as work left.
fn work(plan: &Plan) -> usize {
    plan.summary.create + plan.summary.update + plan.summary.link
}

/// Blank never overwrites (B4): every value a record of `before` had is still there in `after`
/// for the given fields (nested paths by `.`).
fn assert_no_blanking(
    before: &[tandem_core::model::Record],
    after: &[tandem_core::model::Record],
    fields: &[&str],
) {
    let after: BTreeMap<(Object, &str), &tandem_core::model::Record> = after
        .iter()
        .map(|r| ((r.object, r.id.as_str()), r))
        .collect();
    let get = |r: &tandem_core::model::Record, path: &str| -> Option<String> {
        let mut v = serde_json::Value::Object(r.doc.clone());
        for p in path.split('.') {
            v = v.get(p).cloned().unwrap_or(serde_json::Value::Null);
        }
        tandem_core::model::value_as_string(&v)
    };
    for b in before {
        let Some(a) = after.get(&(b.object, b.id.as_str())) else {
            continue;
        };
        for f in fields {
            if get(b, f).is_some() {
                assert!(
                    get(a, f).is_some(),
                    "{} {} lost its `{f}` ({:?})",
                    b.object,
                    b.id,
                    get(b, f)
                );
            }
        }
    }
}

#[tokio::test]
async fn pull_converges_links_duplicates_and_writes_nothing_the_second_time() {
    let env = Env::new(5, 80, 260, ExecOptions::default()).await;
    let before = env.world().await;
    let plan = before.plan(&env.program, Direction::Pull);
    assert!(
        plan.summary.create > 0 && plan.summary.link > 0,
        "{:?}",
        plan.summary
    );
    let report = env.run(&before, &plan).await.unwrap();
    assert_eq!(report.counts.failed, 0, "{report:?}");
    assert_eq!(report.counts.created as usize, plan.summary.create);
    assert_eq!(report.counts.linked as usize, plan.summary.link);
    assert_eq!(report.counts.updated as usize, plan.summary.update);
    assert_eq!(report.counts.total() as usize, plan.actions.len());

    let after = env.world().await;
    // Accelo holds exactly what was there plus the creates: duplicates were linked.
    for object in Object::ALL {
        let creates = plan
            .actions
            .iter()
            .filter(|a| a.object == object && a.op == Op::Create)
            .count();
        assert_eq!(
            after.count(&after.accelo, object),
            before.count(&before.accelo, object) + creates,
            "{object}"
        );
    }
    // Every link points at records that exist, one to one.
    let hs_ids: HashSet<(Object, &str)> = after
        .hubspot
        .iter()
        .map(|r| (r.object, r.id.as_str()))
        .collect();
    let ac_ids: HashSet<(Object, &str)> = after
        .accelo
        .iter()
        .map(|r| (r.object, r.id.as_str()))
        .collect();
    let mut seen = HashSet::new();
    for l in &after.links {
        assert!(hs_ids.contains(&(l.object, l.hubspot_id.as_str())), "{l:?}");
        assert!(ac_ids.contains(&(l.object, l.accelo_id.as_str())), "{l:?}");
        assert!(seen.insert((l.object, l.accelo_id.clone())), "twice: {l:?}");
        if l.object == Object::Contact {
            assert!(l.affiliation_id.is_some(), "{l:?}");
        }
    }
    // No-company contacts (B7) are not imported.
    let linked: HashSet<&str> = after
        .links
        .iter()
        .filter(|l| l.object == Object::Contact)
        .map(|l| l.hubspot_id.as_str())
        .collect();
    let orphans: Vec<_> = before
        .hubspot
        .iter()
        .filter(|r| r.object == Object::Contact && r.company_id.is_none())
        .collect();
    assert!(!orphans.is_empty());
    for o in orphans {
        assert!(
            !linked.contains(o.id.as_str()),
            "no-company contact {} linked",
            o.id
        );
    }
    // Blanks never overwrote Accelo values.
    assert_no_blanking(
        &before.accelo,
        &after.accelo,
        &[
            "name",
            "website",
            "phone",
            "comments",
            "postal_address.city",
            "firstname",
            "surname",
            "affiliation.email",
            "affiliation.phone",
            "affiliation.position",
        ],
    );
    // Converged: the next plan is all no-ops and skips, and running it writes nothing.
    let plan2 = after.plan(&env.program, Direction::Pull);
    assert_eq!(work(&plan2), 0, "{:#?}", plan2.summary);
    let s0 = env.stats();
    env.run(&after, &plan2).await.unwrap();
    assert_eq!(
        total_writes(&env.stats()),
        total_writes(&s0),
        "a second pull wrote"
    );

    // One HubSpot edit → exactly one Accelo write.
    let link = after
        .links
        .iter()
        .find(|l| l.object == Object::Company)
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/edit", env.sb.hubspot_url()))
        .json(&json!({"object": "companies", "id": link.hubspot_id,
                      "fields": {"phone": "+61 2 5550 1234"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let s1 = env.stats();
    let (plan3, report3) = env.sync(Direction::Pull).await;
    assert_eq!(plan3.summary.update, 1, "{:?}", plan3.summary);
    assert_eq!(report3.counts.updated, 1);
    let d = write_routes(&delta(&s1["accelo"], &env.stats()["accelo"]));
    assert_eq!(
        d,
        BTreeMap::from([("PUT /api/v0/companies/{id}".to_string(), 1)]),
        "one edit, one write"
    );
    let ac = env
        .ac
        .get(Object::Company, std::slice::from_ref(&link.accelo_id), &[])
        .await
        .unwrap();
    assert_eq!(ac[0].get("phone").as_deref(), Some("+61 2 5550 1234"));

    // The log has one entry per action of each run, with field changes for the update.
    let log = env.store().log(&LogQuery::default()).await.unwrap();
    let records: Vec<_> = log
        .iter()
        .filter_map(|e| match &e.body {
            LogBody::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(
        records.len(),
        plan.actions.len() + plan2.actions.len() + plan3.actions.len()
    );
    let upd = records
        .iter()
        .find(|r| r.outcome == Outcome::Updated && r.source.id.as_deref() == Some(&link.hubspot_id))
        .unwrap();
    assert_eq!(upd.changes.len(), 1, "{:?}", upd.changes);
    assert_eq!(upd.changes[0].field, "phone");
    assert_eq!(upd.changes[0].to.as_deref(), Some("+61 2 5550 1234"));
    env.finish().await;
}

#[tokio::test]
async fn push_converges_with_hubspot_batches_of_100() {
    let env = Env::new(8, 260, 420, ExecOptions::default()).await;
    let s0 = env.stats();
    let before = env.world().await;
    let plan = before.plan(&env.program, Direction::Push);
    let creates = |object| {
        plan.actions
            .iter()
            .filter(|a| a.object == object && a.op == Op::Create)
            .count() as u64
    };
    let (cc, pc) = (creates(Object::Company), creates(Object::Contact));
    assert!(
        cc > 100 && pc > 100,
        "{cc} {pc}: sizes must need several batches"
    );
    let report = env.run(&before, &plan).await.unwrap();
    assert_eq!(report.counts.failed, 0, "{report:?}");
    let hs = delta(&s0["hubspot"], &env.stats()["hubspot"]);
    assert_eq!(
        hs.get("POST /crm/v3/objects/companies/batch/create")
            .copied(),
        Some(cc.div_ceil(100)),
        "{hs:?}"
    );
    assert_eq!(
        hs.get("POST /crm/v3/objects/contacts/batch/create")
            .copied(),
        Some(pc.div_ceil(100)),
        "{hs:?}"
    );
    let updates = |object| {
        plan.actions
            .iter()
            .filter(|a| a.object == object && !a.changes.is_empty())
            .filter(|a| matches!(a.op, Op::Update | Op::Link))
            .count() as u64
    };
    // HubSpot moves a lifecycle stage back only when it is cleared first: those records get a
    // clearing batch of their own before the update batches.
    const ORDER: &[&str] = &[
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "other",
    ];
    let backward = |object| {
        plan.actions
            .iter()
            .filter(|a| a.object == object)
            .flat_map(|a| &a.changes)
            .filter(|c| c.field == "lifecyclestage")
            .filter(|c| {
                let rank = |v: &Option<String>| {
                    v.as_deref()
                        .and_then(|v| ORDER.iter().position(|x| *x == v))
                };
                matches!((rank(&c.from), rank(&c.to)), (Some(f), Some(t)) if t < f)
            })
            .count() as u64
    };
    for (object, route) in [
        (
            Object::Company,
            "POST /crm/v3/objects/companies/batch/update",
        ),
        (
            Object::Contact,
            "POST /crm/v3/objects/contacts/batch/update",
        ),
    ] {
        assert_eq!(
            hs.get(route).copied().unwrap_or(0),
            updates(object).div_ceil(100) + backward(object).div_ceil(100),
            "{route}: {hs:?}"
        );
    }
    // No single-record writes at all.
    assert!(
        !hs.keys()
            .any(|k| k.starts_with("POST /crm/v3/objects/companies ") || k.starts_with("PATCH")),
        "{hs:?}"
    );

    let after = env.world().await;
    for object in Object::ALL {
        assert_eq!(
            after.count(&after.hubspot, object) as u64,
            before.count(&before.hubspot, object) as u64 + creates(object),
        );
    }
    // Created contacts carry their company.
    let hs_contacts: BTreeMap<&str, &tandem_core::model::Record> = after
        .hubspot
        .iter()
        .filter(|r| r.object == Object::Contact)
        .map(|r| (r.id.as_str(), r))
        .collect();
    let created: HashSet<&str> = plan
        .actions
        .iter()
        .filter(|a| a.object == Object::Contact && a.op == Op::Create)
        .filter_map(|a| a.source.id.as_deref())
        .collect();
    for l in after.links.iter().filter(|l| l.object == Object::Contact) {
        if created.contains(l.accelo_id.as_str()) {
            let r = hs_contacts[l.hubspot_id.as_str()];
            assert!(
                r.company_id.is_some(),
                "created contact {} has no company",
                r.id
            );
        }
    }
    assert_no_blanking(
        &before.hubspot,
        &after.hubspot,
        &[
            "name",
            "domain",
            "phone",
            "city",
            "email",
            "firstname",
            "lastname",
            "jobtitle",
        ],
    );
    let plan2 = after.plan(&env.program, Direction::Push);
    assert_eq!(
        work(&plan2),
        0,
        "{:#?}",
        plan2
            .actions
            .iter()
            .filter(|a| a.op != Op::Noop && a.op != Op::Skip)
            .collect::<Vec<_>>()
    );
    let s1 = env.stats();
    env.run(&after, &plan2).await.unwrap();
    assert_eq!(
        total_writes(&env.stats()),
        total_writes(&s1),
        "a second push wrote"
    );

    // One Accelo edit → one HubSpot batch update request.
    let link = after
        .links
        .iter()
        .find(|l| l.object == Object::Contact)
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/edit", env.sb.accelo_url()))
        .json(&json!({"object": "contacts", "id": link.accelo_id,
                      "fields": {"firstname": "Zebedee"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let s2 = env.stats();
    let (plan3, report3) = env.sync(Direction::Push).await;
    assert_eq!((plan3.summary.update, report3.counts.updated), (1, 1));
    let d = write_routes(&delta(&s2["hubspot"], &env.stats()["hubspot"]));
    assert_eq!(
        d,
        BTreeMap::from([("POST /crm/v3/objects/contacts/batch/update".to_string(), 1)])
    );
    env.finish().await;
}

#[tokio::test]
async fn a_failing_record_fails_alone_and_its_contacts_with_it() {
    let env = Env::new(9, 40, 120, ExecOptions::default()).await;
    let world = env.world().await;
    let mut plan = world.plan(&env.program, Direction::Push);
    // Break one company create that has dependent contacts: HubSpot refuses the property.
    let broken = plan
        .actions
        .iter()
        .filter(|a| a.object == Object::Company && a.op == Op::Create)
        .find(|a| plan.actions.iter().any(|c| c.depends_on == Some(a.seq)))
        .map(|a| a.seq)
        .unwrap();
    let dependents: BTreeSet<u32> = plan
        .actions
        .iter()
        .filter(|c| c.depends_on == Some(broken))
        .map(|c| c.seq)
        .collect();
    plan.actions[broken as usize - 1].changes.push(Change {
        field: "no_such_property_xyz".into(),
        from: None,
        to: Some("x".into()),
    });
    let report = env.run(&world, &plan).await.unwrap();
    assert_eq!(report.counts.failed as usize, 1 + dependents.len());
    assert!(report.has_failures());
    let log = env.store().log(&LogQuery::default()).await.unwrap();
    let mut failed = BTreeMap::new();
    for e in &log {
        if let LogBody::Record(r) = &e.body
            && r.outcome == Outcome::Failed
        {
            failed.insert(r.source.id.clone().unwrap(), r.error.clone().unwrap());
        }
    }
    let broken_src = plan.actions[broken as usize - 1].source.id.clone().unwrap();
    assert!(
        failed[&broken_src].contains("no_such_property_xyz"),
        "{}",
        failed[&broken_src]
    );
    for seq in &dependents {
        let src = plan.actions[*seq as usize - 1].source.id.clone().unwrap();
        assert!(
            failed[&src].contains("its company could not be synced"),
            "{}",
            failed[&src]
        );
    }
    // Everything else went through: the re-plan only retries the failed ones.
    let after = env.world().await;
    let plan2 = after.plan(&env.program, Direction::Push);
    assert_eq!(
        plan2.summary.create,
        1 + dependents.len(),
        "{:?}",
        plan2.summary
    );
    env.finish().await;
}

#[tokio::test]
async fn guardrails_stop_before_any_write_unless_forced() {
    let options = ExecOptions {
        guardrails: Guardrails {
            max_create: Some(3),
            ..Guardrails::default()
        },
        ..ExecOptions::default()
    };
    let env = Env::new(10, 30, 60, options).await;
    let world = env.world().await;
    let plan = world.plan(&env.program, Direction::Pull);
    let s0 = env.stats();
    let err = env.run(&world, &plan).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ExecError::Guardrail(_)), "{err:?}");
    assert!(text.contains("`max_create`"), "{text}");
    assert!(
        text.contains(&format!(
            "create {} records, the limit is 3",
            plan.summary.create
        )),
        "{text}"
    );
    assert_eq!(total_writes(&env.stats()), total_writes(&s0));
    assert!(
        env.store()
            .log(&LogQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(env.store().open_intents().await.unwrap().is_empty());

    let forced = Executor::new(
        env.ts.store.clone(),
        env.hs.clone(),
        env.ac.clone(),
        ExecOptions {
            force: true,
            guardrails: Guardrails {
                max_create: Some(3),
                ..Guardrails::default()
            },
            ..ExecOptions::default()
        },
    );
    let report = forced
        .execute(
            &plan,
            &world.input(Direction::Pull),
            &RunContext {
                lease: None,
                cancel: CancellationToken::new(),
                progress: &Silent,
                bulk: true,
                resume: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(report.counts.created as usize, plan.summary.create);
    env.finish().await;
}

#[tokio::test]
async fn faults_and_lost_answers_create_no_duplicate() {
    let env = Env::new(12, 60, 200, ExecOptions::default()).await;
    let faults = FaultConfig {
        seed: 3,
        errors: BTreeMap::from([(429, 0.05), (500, 0.05), (502, 0.03)]),
        drop_after_rate: 0.05,
        ..FaultConfig::default()
    };
    env.sb.set_faults(faults).unwrap();
    for direction in [Direction::Pull, Direction::Push] {
        let (plan, report) = env.sync(direction).await;
        assert_eq!(
            report.counts.total() as usize,
            plan.actions.len(),
            "{direction}"
        );
    }
    env.sb.set_faults(FaultConfig::default()).unwrap();
    // Whatever failed under faults is picked up by a clean run; then both directions converge.
    env.sync(Direction::Pull).await;
    env.sync(Direction::Push).await;
    let world = env.world().await;
    for direction in [Direction::Pull, Direction::Push] {
        let plan = world.plan(&env.program, direction);
        let pending: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| !matches!(a.op, Op::Noop | Op::Skip))
            .collect();
        assert_eq!(
            work(&plan),
            0,
            "{direction}: {:?}\n{pending:#?}",
            plan.summary
        );
    }
    // Every create whose answer was lost was settled: found and linked, or created again.
    assert_eq!(env.store().open_intents().await.unwrap(), Vec::new());
    // No duplicates: no two records of a side share an email (contacts) or a domain
    // (HubSpot companies) unless the seed already had them.
    let seeded = sandbox(12, 60, 200).await;
    let seeded_world = World::read(
        &env.program,
        &*hubspot(&seeded),
        &*accelo(&seeded),
        env.store(),
    )
    .await;
    let dupes = |records: &[tandem_core::model::Record], key: &str| {
        let mut seen = BTreeMap::<String, usize>::new();
        for r in records {
            let v = if key.contains('.') {
                r.doc
                    .get("affiliation")
                    .and_then(|a| a.get("email"))
                    .and_then(tandem_core::model::value_as_string)
            } else {
                r.get(key)
            };
            if let Some(v) = v {
                *seen.entry(v.to_lowercase()).or_default() += 1;
            }
        }
        seen.into_values().filter(|n| *n > 1).count()
    };
    let contacts = |rs: &[tandem_core::model::Record]| {
        rs.iter()
            .filter(|r| r.object == Object::Contact)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        dupes(&contacts(&world.hubspot), "email"),
        dupes(&contacts(&seeded_world.hubspot), "email")
    );
    assert_eq!(
        dupes(&contacts(&world.accelo), "affiliation.email"),
        dupes(&contacts(&seeded_world.accelo), "affiliation.email")
    );
    seeded.shutdown().await;
    env.finish().await;
}

#[tokio::test]
async fn open_intents_are_settled_by_looking_the_record_up() {
    let env = Env::new(14, 10, 10, ExecOptions::default()).await;
    // A create that happened but whose outcome was never recorded…
    let made = env
        .ac
        .create(
            Object::Company,
            vec![CreateInput {
                changes: BTreeMap::from([
                    (
                        "name".to_string(),
                        Some("Recovered Widgets Pty Ltd".to_string()),
                    ),
                    (
                        "website".to_string(),
                        Some("https://recovered-widgets.example".to_string()),
                    ),
                ]),
                ..CreateInput::default()
            }],
        )
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let open = |id: &str, lookups: Vec<Lookup>| NewIntent {
        job: None,
        source: RecordKey {
            system: System::HubSpot,
            object: Object::Company,
            id: id.to_string(),
        },
        target: System::Accelo,
        dedup: json!({"lookups": lookups, "last_synced": {"name": "Recovered Widgets Pty Ltd"}}),
    };
    let found = env
        .store()
        .open_intent(&open(
            "900001",
            vec![
                Lookup::new("website", "https://recovered-widgets.example"),
                Lookup::new("name", "Recovered Widgets Pty Ltd"),
            ],
        ))
        .await
        .unwrap()
        .opened()
        .unwrap();
    // …and one that never reached Accelo.
    let lost = env
        .store()
        .open_intent(&open(
            "900002",
            vec![Lookup::new("website", "https://never-created.example")],
        ))
        .await
        .unwrap()
        .opened()
        .unwrap();
    let settled = settle(&env.exec, None).await.unwrap();
    assert_eq!(
        settled,
        Settled {
            recovered: 1,
            abandoned: 1,
            left_open: 0
        }
    );
    assert!(env.store().open_intents().await.unwrap().is_empty());
    let link = env
        .store()
        .link(Object::Company, System::HubSpot, "900001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.accelo_id, made.id);
    assert_eq!(link.last_synced["name"], "Recovered Widgets Pty Ltd");
    assert!(
        env.store()
            .link(Object::Company, System::HubSpot, "900002")
            .await
            .unwrap()
            .is_none()
    );
    let log = env.store().log(&LogQuery::default()).await.unwrap();
    let rec = log
        .iter()
        .find_map(|e| match &e.body {
            LogBody::Record(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(rec.outcome, Outcome::Created);
    assert!(
        rec.reason.starts_with("created (recovered)"),
        "{}",
        rec.reason
    );
    let _ = (found, lost);
    env.finish().await;
}

#[tokio::test]
async fn an_incremental_plan_writes_both_ways_and_remembers_echoes() {
    let env = Env::new(15, 30, 60, ExecOptions::default()).await;
    env.sync(Direction::Pull).await;
    let world = env.world().await;
    let link = world
        .links
        .iter()
        .find(|l| l.object == Object::Company && !l.last_synced.is_empty())
        .unwrap()
        .clone();
    // A person edits the phone in HubSpot and the comments in Accelo.
    let http = reqwest::Client::new();
    for (base, object, id, fields) in [
        (
            env.sb.hubspot_url(),
            "companies",
            &link.hubspot_id,
            json!({"phone": "+61 2 5550 7777"}),
        ),
        (
            env.sb.accelo_url(),
            "companies",
            &link.accelo_id,
            json!({"comments": "Edited in Accelo."}),
        ),
    ] {
        let r = http
            .post(format!("{base}/_sandbox/edit"))
            .json(&json!({"object": object, "id": id, "fields": fields}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let world = env.world().await;
    let mut input = world.input(Direction::Pull);
    input.mode = tandem_core::plan::Mode::Incremental;
    let plan = tandem_core::plan::plan(&env.program, &input);
    // The edited pair is written both ways (other pairs may get one-off fills of blanks).
    let pair = (
        Some(link.hubspot_id.as_str()),
        Some(link.accelo_id.as_str()),
    );
    let writes: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.op == Op::Update && a.ids() == pair)
        .collect();
    assert_eq!(writes.len(), 2, "{writes:#?}");
    let updates = plan.actions.iter().filter(|a| a.op == Op::Update).count() as u64;
    assert!(writes.iter().any(|a| a.target.system == System::Accelo));
    assert!(writes.iter().any(|a| a.target.system == System::HubSpot));
    let report = env
        .exec
        .execute(
            &plan,
            &input,
            &RunContext {
                lease: None,
                cancel: CancellationToken::new(),
                progress: &Silent,
                bulk: false,
                resume: false,
            },
        )
        .await
        .unwrap();
    assert_eq!((report.counts.updated, report.counts.failed), (updates, 0));
    let hs = env
        .hs
        .get(
            Object::Company,
            std::slice::from_ref(&link.hubspot_id),
            &["description".to_string()],
        )
        .await
        .unwrap();
    let ac = env
        .ac
        .get(Object::Company, std::slice::from_ref(&link.accelo_id), &[])
        .await
        .unwrap();
    assert_eq!(ac[0].get("phone").as_deref(), Some("+61 2 5550 7777"));
    assert_eq!(
        hs[0].get("description").as_deref(),
        Some("Edited in Accelo.")
    );
    // Both writes are remembered as echoes (each excuses one observed change).
    let echo = |system, id: &str, field: &str, value: &str| tandem_engine::store::Echo {
        system,
        object: Object::Company,
        id: id.to_string(),
        field: field.to_string(),
        value: Some(value.to_string()),
    };
    let store = env.store();
    assert!(
        store
            .consume_echo(&echo(
                System::Accelo,
                &link.accelo_id,
                "phone",
                "+61 2 5550 7777"
            ))
            .await
            .unwrap()
    );
    assert!(
        store
            .consume_echo(&echo(
                System::HubSpot,
                &link.hubspot_id,
                "description",
                "Edited in Accelo."
            ))
            .await
            .unwrap()
    );
    // The link's last_synced moved: the next incremental plan has nothing to do.
    let world = env.world().await;
    let mut input = world.input(Direction::Pull);
    input.mode = tandem_core::plan::Mode::Incremental;
    let again = tandem_core::plan::plan(&env.program, &input);
    assert_eq!(work(&again), 0, "{:?}", again.summary);
    env.finish().await;
}

#[tokio::test]
async fn a_record_another_run_is_creating_or_has_linked_is_not_created_again() {
    let env = Env::new(16, 30, 90, ExecOptions::default()).await;
    let world = env.world().await;
    let plan = world.plan(&env.program, Direction::Pull);
    let creates: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.object == Object::Company && a.op == Op::Create)
        .collect();
    // A company with contacts to create (they depend on it), and a second company.
    let held = creates
        .iter()
        .find(|c| {
            plan.actions
                .iter()
                .any(|a| a.op == Op::Create && a.depends_on == Some(c.seq))
        })
        .copied()
        .expect("a company created with its contacts");
    let linked = creates
        .iter()
        .find(|c| c.seq != held.seq)
        .copied()
        .expect("a second company to create");
    let dependents = plan
        .actions
        .iter()
        .filter(|a| a.depends_on == Some(held.seq))
        .count() as u64;
    // Another run is creating the first company (its intent is open) …
    let other = env
        .store()
        .enqueue(&tandem_engine::store::NewJob::new(
            tandem_engine::store::JobKind::Record,
            json!({"record": "hubspot:company:x"}),
        ))
        .await
        .unwrap()
        .id;
    let held_id = held.source.id.clone().unwrap();
    env.store()
        .open_intent(&NewIntent {
            job: Some(other),
            source: RecordKey {
                system: System::HubSpot,
                object: Object::Company,
                id: held_id.clone(),
            },
            target: System::Accelo,
            dedup: json!({}),
        })
        .await
        .unwrap()
        .opened()
        .unwrap();
    // … and another linked the second one after this plan was made.
    let twin = world
        .accelo
        .iter()
        .find(|r| {
            r.object == Object::Company
                && !world.links.iter().any(|l| l.accelo_id == r.id)
                && !plan
                    .actions
                    .iter()
                    .any(|a| a.target.id.as_deref() == Some(r.id.as_str()))
        })
        .unwrap()
        .id
        .clone();
    let linked_id = linked.source.id.clone().unwrap();
    env.store()
        .upsert_link(&tandem_core::model::Link {
            object: Object::Company,
            hubspot_id: linked_id.clone(),
            accelo_id: twin.clone(),
            affiliation_id: None,
            last_synced: BTreeMap::new(),
        })
        .await
        .unwrap();
    let before = env.sb.accelo_stats();
    let report = env.run(&world, &plan).await.unwrap();
    let after = env.sb.accelo_stats();
    // Neither was created: one create request fewer per deferred record.
    let created_requests =
        requests(&after, "POST /api/v0/companies") - requests(&before, "POST /api/v0/companies");
    assert_eq!(created_requests as usize, creates.len() - 2);
    let failed: Vec<_> = env
        .store()
        .log(&LogQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            LogBody::Record(r) if r.outcome == Outcome::Failed => Some(r),
            _ => None,
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(report.deferred, 2 + dependents, "{report:?}");
    assert_eq!(report.counts.failed, 0, "{report:?}");
    assert!(!report.has_failures());
    // The link made by the other run is untouched, and the log says why.
    assert_eq!(
        env.store()
            .link(Object::Company, System::HubSpot, &linked_id)
            .await
            .unwrap()
            .unwrap()
            .accelo_id,
        twin
    );
    let log = env.store().log(&LogQuery::default()).await.unwrap();
    let reason = |id: &str| {
        log.iter()
            .find_map(|e| match &e.body {
                LogBody::Record(r)
                    if r.object == Object::Company && r.source.id.as_deref() == Some(id) =>
                {
                    Some((r.outcome, r.reason.clone()))
                }
                _ => None,
            })
            .unwrap()
    };
    let (outcome, why) = reason(&held_id);
    assert_eq!(outcome, Outcome::Skipped);
    assert!(
        why.contains(&format!("another run (job {other}) is creating it")),
        "{why}"
    );
    let (outcome, why) = reason(&linked_id);
    assert_eq!(outcome, Outcome::Skipped);
    assert!(
        why.contains(&format!("linked meanwhile to accelo `{twin}`")),
        "{why}"
    );
    // The other run's intent is still its own.
    assert_eq!(env.store().open_intents().await.unwrap().len(), 1);
    env.finish().await;
}

#[tokio::test]
async fn a_fresh_intent_is_not_given_up_while_hubspot_search_lags() {
    let env = Env::new(17, 10, 10, ExecOptions::default()).await;
    // HubSpot's search shows a new record only after a second; the connector knows it may.
    env.sb
        .set_faults(FaultConfig {
            search_lag_ms: 1000,
            ..FaultConfig::default()
        })
        .unwrap();
    let mut settings = tandem_engine::connect::hubspot::HubSpotSettings::new(
        env.sb.hubspot_url(),
        tandem_engine::connect::hubspot::HubSpotAuth::Token(tandem_engine::connect::Secret::new(
            env.sb.hubspot_token(),
        )),
    );
    settings.retry = fast_retry();
    settings.search_index_lag = std::time::Duration::from_millis(1500);
    let hs: Arc<dyn Connector> =
        Arc::new(tandem_engine::connect::hubspot::HubSpot::new(settings).unwrap());
    let exec = Executor::new(
        env.ts.store.clone(),
        hs.clone(),
        env.ac.clone(),
        ExecOptions::default(),
    );
    // A push's create that reached HubSpot just before the process died…
    let made = hs
        .create(
            Object::Company,
            vec![CreateInput {
                changes: BTreeMap::from([
                    (
                        "name".to_string(),
                        Some("Lagging Index Pty Ltd".to_string()),
                    ),
                    (
                        "domain".to_string(),
                        Some("lagging-index.example".to_string()),
                    ),
                ]),
                ..CreateInput::default()
            }],
        )
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    env.store()
        .open_intent(&NewIntent {
            job: None,
            source: RecordKey {
                system: System::Accelo,
                object: Object::Company,
                id: "990001".into(),
            },
            target: System::HubSpot,
            dedup: json!({"lookups": [
                Lookup::new("domain", "lagging-index.example"),
                Lookup::new("name", "Lagging Index Pty Ltd"),
            ]}),
        })
        .await
        .unwrap()
        .opened()
        .unwrap();
    // …is settled at once on restart: the first search finds nothing, but the intent is younger
    // than the index lag, so it is looked up again rather than abandoned (and created twice).
    let settled = settle(&exec, None).await.unwrap();
    assert_eq!(
        settled,
        Settled {
            recovered: 1,
            abandoned: 0,
            left_open: 0
        }
    );
    let link = env
        .store()
        .link(Object::Company, System::Accelo, "990001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.hubspot_id, made.id);
    env.finish().await;
}

/// The updates of an incremental plan made right after a run, besides one kind of real change:
/// a contact's HubSpot `company` text follows its Accelo company's name (a push-only mapping),
/// so where the run renamed a company its contacts' text is rightly sent.
fn edits_to_send(plan: &Plan) -> Vec<(System, Option<String>, String)> {
    plan.actions
        .iter()
        .filter(|a| a.op == Op::Update)
        .filter(|a| !a.changes.iter().all(|c| c.field == "company"))
        .map(|a| (a.target.system, a.target.id.clone(), a.reason.clone()))
        .collect()
}

/// Every create whose answer is lost (the record was made, the connection dropped before the
/// answer) is settled by lookup and then completed: a company's postal address and a contact's
/// mobile — written by separate requests after the create — are written too, the run reports
/// nothing undone, and a fault-free plan made right after has nothing left to write, in bulk or
/// incrementally. The log shows the fields really written.
#[tokio::test]
async fn a_create_whose_answer_was_lost_completes_its_follow_up_writes() {
    let env = Env::new(21, 30, 90, ExecOptions::default()).await;
    let lose_creates = |only: &[&str]| FaultConfig {
        seed: 1,
        drop_after_rate: 1.0,
        only: only.iter().map(|s| s.to_string()).collect(),
        ..FaultConfig::default()
    };
    env.sb
        .set_faults(lose_creates(&[
            "POST /api/v0/companies",
            "POST /api/v0/contacts",
        ]))
        .unwrap();
    let (plan, report) = env.sync(Direction::Pull).await;
    let faults = env.sb.accelo_stats();
    env.sb.set_faults(FaultConfig::default()).unwrap();
    assert!(plan.summary.create > 20, "{:?}", plan.summary);
    // Every create went through the lost-answer path.
    assert!(
        faults["faults"]["drop_after"].as_u64().unwrap() >= plan.summary.create as u64,
        "{faults}"
    );
    // Records without a lookup value cannot be settled and fail; every other one is complete.
    let lookupless = report.counts.failed;
    assert_eq!(report.problems, 0, "{report:?}");
    assert!(report.counts.created > 20, "{report:?}");
    let world = env.world().await;
    let again = world.plan(&env.program, Direction::Pull);
    let updates: Vec<_> = again
        .actions
        .iter()
        .filter(|a| a.op == Op::Update)
        .map(|a| (a.source.id.clone(), a.changes.clone()))
        .collect();
    assert!(updates.is_empty(), "left undone: {updates:#?}");
    assert_eq!(
        again.summary.create as u64, lookupless,
        "{:?}",
        again.summary
    );
    let mut input = world.input(Direction::Pull);
    input.mode = tandem_core::plan::Mode::Incremental;
    let incremental = tandem_core::plan::plan(&env.program, &input);
    let updates = edits_to_send(&incremental);
    assert!(updates.is_empty(), "{updates:#?}");
    // The log lists the address and mobile fields as written, and Accelo has them.
    let log = env.store().log(&LogQuery::default()).await.unwrap();
    let written: BTreeSet<String> = log
        .iter()
        .filter_map(|e| match &e.body {
            LogBody::Record(r) if r.outcome == Outcome::Created => Some(r),
            _ => None,
        })
        .flat_map(|r| r.changes.iter().map(|c| c.field.clone()))
        .collect();
    assert!(written.contains("postal_address.city"), "{written:?}");
    assert!(written.contains("affiliation.mobile"), "{written:?}");
    let with_address = world
        .accelo
        .iter()
        .filter(|r| r.object == Object::Company && r.doc.contains_key("postal_address"))
        .count();
    assert!(with_address > 0);
    env.finish().await;
}

/// Right after a pull creates records in Accelo, the new records' values that Accelo assigned
/// itself (a new company's and contact's default status) are what their links remember: an
/// incremental sync of every pair — what a webhook for an unchanged record runs — writes
/// nothing back to HubSpot. The same holds after a push creates records in HubSpot.
#[tokio::test]
async fn values_the_target_assigns_on_create_are_not_taken_for_edits() {
    let env = Env::new(55, 40, 150, ExecOptions::default()).await;
    for direction in [Direction::Pull, Direction::Push] {
        let (plan, report) = env.sync(direction).await;
        assert!(plan.summary.create > 0, "{direction}: {:?}", plan.summary);
        assert_eq!(report.counts.failed, 0, "{direction}");
        let world = env.world().await;
        for initiated in [Direction::Pull, Direction::Push] {
            let mut input = world.input(initiated);
            input.mode = tandem_core::plan::Mode::Incremental;
            let plan = tandem_core::plan::plan(&env.program, &input);
            let writes = edits_to_send(&plan);
            assert!(
                writes.is_empty(),
                "after {direction}, an incremental {initiated} writes {} records: {:#?}",
                writes.len(),
                &writes[..writes.len().min(5)]
            );
        }
    }
    env.finish().await;
}

/// A follow-up write that fails (a new company's postal address refused) is reported: the run
/// counts the record as only partly written, the log does not list the address fields as
/// written, and the link does not claim them in step — so the next automatic sync of the record
/// writes them.
#[tokio::test]
async fn a_follow_up_write_that_fails_is_reported_and_left_to_the_next_sync() {
    let env = Env::new(21, 30, 0, ExecOptions::default()).await;
    env.sb
        .set_faults(FaultConfig {
            errors: BTreeMap::from([(500, 1.0)]),
            only: vec!["POST /api/v0/companies/{id}/addresses".into()],
            ..FaultConfig::default()
        })
        .unwrap();
    let (plan, report) = env.sync(Direction::Pull).await;
    env.sb.set_faults(FaultConfig::default()).unwrap();
    let with_address: Vec<&tandem_core::plan::Action> = plan
        .actions
        .iter()
        .filter(|a| {
            a.op == Op::Create
                && a.changes
                    .iter()
                    .any(|c| c.field.starts_with("postal_address."))
        })
        .collect();
    assert!(!with_address.is_empty());
    assert_eq!(report.problems as usize, with_address.len(), "{report:?}");
    assert!(report.has_failures());
    let log = env.store().log(&LogQuery::default()).await.unwrap();
    let world = env.world().await;
    for a in &with_address {
        let source = a.source.id.as_deref().unwrap();
        let entry = log
            .iter()
            .find_map(|e| match &e.body {
                LogBody::Record(r) if r.source.id.as_deref() == Some(source) => Some(r),
                _ => None,
            })
            .unwrap();
        assert_eq!(entry.outcome, Outcome::Created);
        assert!(entry.reason.contains("not everything"), "{}", entry.reason);
        assert!(
            entry
                .changes
                .iter()
                .all(|c| !c.field.starts_with("postal_address.")),
            "{:?}",
            entry.changes
        );
        assert!(entry.changes.iter().any(|c| c.field == "name"));
        let link = world.links.iter().find(|l| l.hubspot_id == source).unwrap();
        for c in a
            .changes
            .iter()
            .filter(|c| c.field.starts_with("postal_address."))
        {
            let key = format!("accelo:{}", c.field);
            assert!(
                !link.last_synced.contains_key(&key),
                "{key}: {:?}",
                link.last_synced
            );
        }
    }
    // The next automatic sync of these records writes the address.
    let mut input = world.input(Direction::Pull);
    input.mode = tandem_core::plan::Mode::Incremental;
    let next = tandem_core::plan::plan(&env.program, &input);
    for a in &with_address {
        let update = next
            .actions
            .iter()
            .find(|n| n.op == Op::Update && n.source.id == a.source.id)
            .unwrap_or_else(|| panic!("no update for {:?}", a.source.id));
        assert!(
            update
                .changes
                .iter()
                .any(|c| c.field.starts_with("postal_address."))
        );
    }
    env.finish().await;
}

/// A create whose answer is lost and whose lookup then fails as well has an unknown outcome,
/// not a failed one: the record may exist. It is logged as unknown, its intent stays open, no
/// link is guessed, and the next run settles it by lookup — linking the record the lost create
/// made — so nothing is created twice. Both sides: one Accelo create per call (pull), HubSpot
/// batch creates (push).
#[tokio::test]
async fn a_lost_create_whose_lookup_fails_too_stays_unknown_and_is_settled_next_run() {
    for (direction, target, endpoints) in [
        (
            Direction::Pull,
            System::Accelo,
            ["POST /api/v0/companies", "GET /api/v0/companies"],
        ),
        (
            Direction::Push,
            System::HubSpot,
            [
                "POST /crm/v3/objects/companies/batch/create",
                "POST /crm/v3/objects/companies/search",
            ],
        ),
    ] {
        let env = Env::new(31, 20, 0, ExecOptions::default()).await;
        let count = |records: &[tandem_core::model::Record]| {
            records
                .iter()
                .filter(|r| r.object == Object::Company)
                .count()
        };
        let world = env.world().await;
        let on_target = |w: &World| match target {
            System::Accelo => count(&w.accelo),
            System::HubSpot => count(&w.hubspot),
        };
        let before = on_target(&world);
        let plan = world.plan(&env.program, direction);
        let creates: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| a.object == Object::Company && a.op == Op::Create)
            .collect();
        assert!(creates.len() > 3, "{direction}: {:?}", plan.summary);
        // Every create is made, its answer lost; every lookup's answer is lost too.
        env.sb
            .set_faults(FaultConfig {
                seed: 1,
                drop_after_rate: 1.0,
                only: endpoints.iter().map(|s| s.to_string()).collect(),
                ..FaultConfig::default()
            })
            .unwrap();
        let report = env.run(&world, &plan).await;
        env.sb.set_faults(FaultConfig::default()).unwrap();
        let report = report.unwrap_or_else(|e| panic!("{direction}: {e}"));
        assert_eq!(report.counts.created, 0, "{direction}: {report:?}");
        // The lost creates happened.
        let made = on_target(&env.world().await) - before;
        assert_eq!(made, creates.len(), "{direction}");
        let log = env.store().log(&LogQuery::default()).await.unwrap();
        for a in &creates {
            let entry = log
                .iter()
                .find_map(|e| match &e.body {
                    LogBody::Record(r) if r.source.id == a.source.id => Some(r),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{direction}: no entry for {:?}", a.source.id));
            assert_eq!(entry.outcome, Outcome::Failed, "{direction}: {entry:?}");
            let error = entry.error.as_deref().unwrap_or_default();
            assert!(
                error.contains("whether it was applied is unknown")
                    && error.contains("looking the record up failed too"),
                "{direction}: {error}"
            );
        }
        assert_eq!(
            env.store().open_intents().await.unwrap().len(),
            creates.len(),
            "{direction}: the intents of the unknown creates stay open"
        );
        // The next run settles them: the records the lost creates made are linked, none made
        // again.
        let (_, again) = env.sync(direction).await;
        assert_eq!(again.counts.failed, 0, "{direction}: {again:?}");
        assert!(env.store().open_intents().await.unwrap().is_empty());
        let world = env.world().await;
        assert_eq!(on_target(&world) - before, creates.len(), "{direction}");
        let plan = world.plan(&env.program, direction);
        assert_eq!(work(&plan), 0, "{direction}: {:?}", plan.summary);
        env.finish().await;
    }
}

/// The guide's recommended first runs — a pull, then a push — go through under the shipped
/// guardrails on the default sandbox: the push mostly fills HubSpot fields that were empty,
/// which loses nothing and is counted against no limit. Refused before, by the share of
/// existing records changed.
#[tokio::test]
async fn the_first_pull_and_push_run_under_the_shipped_guardrails() {
    let shipped = tandem_core::compile::load(&tandem_core::rules::Paths::resolve(
        Some("rules/tandem.yaml".into()),
        None,
    ))
    .expect("the shipped rules load")
    .config
    .sync
    .guardrails;
    assert!(shipped.max_share.is_some(), "{shipped:?}");
    let env = Env::new(
        1,
        50,
        200,
        ExecOptions {
            guardrails: shipped.clone(),
            ..ExecOptions::default()
        },
    )
    .await;
    for direction in [Direction::Pull, Direction::Push] {
        let world = env.world().await;
        let plan = world.plan(&env.program, direction);
        let impact = tandem_engine::exec::guardrails::Impact::of(&plan);
        let report = env
            .run(&world, &plan)
            .await
            .unwrap_or_else(|e| panic!("{direction}: {e} ({impact:?})"));
        assert_eq!(report.counts.failed, 0, "{direction}: {report:?}");
        if direction == Direction::Push {
            // Counting every changed record, as before, the push is over the share limit;
            // the ones that only get empty fields filled make the difference.
            let existing = world.hubspot.len() as f64;
            let all_changed = (impact.changed_records + impact.filled_records) as f64;
            let max_share = shipped.max_share.unwrap_or(1.0);
            assert!(
                all_changed / existing > max_share,
                "{impact:?} of {existing}"
            );
            assert!((impact.changed_records as f64) / existing <= max_share);
        }
    }
    env.finish().await;
}

/// The cost said before a run is close to what the run then sends: the requests a pull
/// really makes to Accelo (one record per call, follow-up writes included) and a push to
/// HubSpot (batches of 100).
#[tokio::test]
async fn the_estimated_cost_is_close_to_the_requests_a_run_sends() {
    let env = Env::new(41, 60, 240, ExecOptions::default()).await;
    for (direction, system) in [
        (Direction::Pull, System::Accelo),
        (Direction::Push, System::HubSpot),
    ] {
        let world = env.world().await;
        let plan = world.plan(&env.program, direction);
        let connector = match system {
            System::Accelo => &env.ac,
            System::HubSpot => &env.hs,
        };
        let cost = tandem_engine::exec::cost::estimate(&plan, connector.as_ref());
        let stats = |env: &Env| match system {
            System::Accelo => env.sb.accelo_stats(),
            System::HubSpot => env.sb.hubspot_stats(),
        };
        let before = stats(&env)["total"].as_u64().unwrap();
        let report = env.run(&world, &plan).await.unwrap();
        assert_eq!(report.counts.failed, 0, "{direction}");
        let sent = stats(&env)["total"].as_u64().unwrap() - before;
        assert!(cost.requests > 0, "{direction}");
        let off = (sent as f64 - cost.requests as f64).abs() / sent as f64;
        assert!(
            off <= 0.15,
            "{direction}: estimated {} requests, sent {sent}",
            cost.requests
        );
    }
    env.finish().await;
}
