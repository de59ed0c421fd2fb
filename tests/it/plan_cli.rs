//! `tandem plan` end to end against the in-process sandbox over real HTTP: pull and push plans
//! checked against the simulators' own records (read through their admin API, not the
//! connectors), zero write requests, the same plan under 429s and 5xx on 10 % of requests,
//! single-company and single-contact scopes, saved plans that go stale when the data changes,
//! exit codes, and the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tandem::cli::ConfigArgs;
use tandem::cli::Exit;
use tandem::cli::plan::{Args, DirectionArg, render};
use tandem_core::model::{Direction, Object, System};
use tandem_core::plan::{Op, Plan, SavedPlan, Scope};
use tandem_engine::connect::RetryPolicy;
use tandem_engine::runtime::{Env, Options, Runtime};
use tandem_sandbox::Sandbox;

use crate::support::admin::{self, delta, records, requests};
use crate::support::seeded_sandbox;

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        retries: 12,
        min_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(50),
        max_server_wait: Duration::from_millis(50),
    }
}

fn env(sb: &Sandbox, store: &Path) -> Env {
    Env::from_pairs([
        ("TANDEM_HUBSPOT_URL", sb.hubspot_url().to_string()),
        ("TANDEM_HUBSPOT_TOKEN", sb.hubspot_token().to_string()),
        ("TANDEM_ACCELO_URL", sb.accelo_url().to_string()),
        ("TANDEM_ACCELO_CLIENT_ID", sb.accelo_client_id().to_string()),
        (
            "TANDEM_ACCELO_CLIENT_SECRET",
            sb.accelo_client_secret().to_string(),
        ),
        ("TANDEM_STORE", store.display().to_string()),
    ])
}

fn options(sb: &Sandbox, store: &Path) -> Options {
    Options {
        config: Some(PathBuf::from("rules/tandem.yaml")),
        rules: None,
        env: env(sb, store),
        retry: Some(fast_retry()),
        store: None,
    }
}

fn args(direction: DirectionArg) -> Args {
    Args {
        direction,
        company: None,
        contact: None,
        only: vec![],
        object: None,
        json: true,
        out: None,
        config: ConfigArgs::default(),
    }
}

async fn plan_json(sb: &Sandbox, store: &Path, a: &Args) -> (Plan, String) {
    let out = render(a, options(sb, store), false).await;
    assert_eq!(out.exit, Exit::Ok, "stderr: {}", out.stderr);
    let plan: Plan = serde_json::from_str(&out.stdout).expect("the JSON is a plan");
    (plan, out.stdout)
}

async fn writes(sb: &Sandbox) -> (u64, u64) {
    let h = admin::stats(sb.hubspot_url()).await;
    let a = admin::stats(sb.accelo_url()).await;
    (
        h["writes"].as_u64().expect("writes"),
        a["writes"].as_u64().expect("writes"),
    )
}

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A web domain as the dedup key compares it: host without `www.`, lower case.
fn host(url: &str) -> Option<String> {
    let s = url.trim().to_lowercase();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(&s);
    let s = s.split(['/', '?', '#']).next().unwrap_or("");
    let s = s.strip_prefix("www.").unwrap_or(s);
    (!s.is_empty()).then(|| s.to_string())
}

/// What the simulators hold, read through their admin API.
struct Truth {
    hs_companies: BTreeMap<String, Value>,
    hs_contacts: BTreeMap<String, Value>,
    ac_companies: BTreeMap<String, Value>,
    ac_contacts: BTreeMap<String, Value>,
}

impl Truth {
    async fn read(sb: &Sandbox) -> Truth {
        let by_id = |v: Vec<Value>| -> BTreeMap<String, Value> {
            v.into_iter()
                .map(|r| (text(&r["id"]).expect("id"), r))
                .collect()
        };
        Truth {
            hs_companies: by_id(records(sb.hubspot_url(), "companies").await),
            hs_contacts: by_id(records(sb.hubspot_url(), "contacts").await),
            ac_companies: by_id(records(sb.accelo_url(), "companies").await),
            ac_contacts: by_id(records(sb.accelo_url(), "contacts").await),
        }
    }

    /// Normalised emails → ids, per side.
    fn emails(&self, system: System) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let (map, field) = match system {
            System::HubSpot => (&self.hs_contacts, "email"),
            System::Accelo => (&self.ac_contacts, "email"),
        };
        for (id, r) in map {
            let v = match system {
                System::HubSpot => text(&r["properties"][field]),
                System::Accelo => text(&r[field]),
            };
            if let Some(e) = v {
                out.entry(e.to_lowercase()).or_default().insert(id.clone());
            }
        }
        out
    }

    /// Company web domains → ids, per side.
    fn domains(&self, system: System) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        match system {
            System::HubSpot => {
                for (id, r) in &self.hs_companies {
                    let p = &r["properties"];
                    if let Some(d) = text(&p["domain"])
                        .and_then(|d| host(&d))
                        .or_else(|| text(&p["website"]).and_then(|w| host(&w)))
                    {
                        out.entry(d).or_default().insert(id.clone());
                    }
                }
            }
            System::Accelo => {
                for (id, r) in &self.ac_companies {
                    if let Some(d) = text(&r["website"]).and_then(|w| host(&w)) {
                        out.entry(d).or_default().insert(id.clone());
                    }
                }
            }
        }
        out
    }
}

/// Checks a bulk plan against the simulators' records: every source record planned once, no
/// duplicate created for a record whose email or domain exists on the other side (each such
/// record is linked to that twin, or skipped with a reason), no contact without a company
/// pulled (B7), companies before contacts.
fn check_bulk(plan: &Plan, truth: &Truth) {
    let d = plan.direction;
    let (src, tgt) = (d.source(), d.target());
    let (companies, contacts) = match src {
        System::HubSpot => (&truth.hs_companies, &truth.hs_contacts),
        System::Accelo => (&truth.ac_companies, &truth.ac_contacts),
    };
    let planned = |o: Object| -> BTreeSet<String> {
        plan.actions
            .iter()
            .filter(|a| a.object == o)
            .map(|a| a.source.id.clone().unwrap())
            .collect()
    };
    assert_eq!(
        planned(Object::Company),
        companies.keys().cloned().collect()
    );
    assert_eq!(planned(Object::Contact), contacts.keys().cloned().collect());
    assert_eq!(
        plan.actions.len(),
        companies.len() + contacts.len(),
        "each source record once"
    );
    let first_contact = plan
        .actions
        .iter()
        .position(|a| a.object == Object::Contact)
        .unwrap_or(plan.actions.len());
    assert!(
        plan.actions[first_contact..]
            .iter()
            .all(|a| a.object == Object::Contact)
    );

    let their_emails = truth.emails(tgt);
    let my_emails = truth.emails(src);
    let their_domains = truth.domains(tgt);
    let my_domains = truth.domains(src);
    let mut linked = 0;
    for a in &plan.actions {
        let id = a.source.id.as_deref().unwrap();
        let twins: Option<&BTreeSet<String>> = match a.object {
            Object::Contact => my_emails
                .iter()
                .find(|(_, ids)| ids.contains(id))
                .and_then(|(e, _)| their_emails.get(e)),
            Object::Company => my_domains
                .iter()
                .find(|(_, ids)| ids.contains(id))
                .and_then(|(dom, _)| their_domains.get(dom)),
        };
        if let Some(twins) = twins {
            assert_ne!(
                a.op,
                Op::Create,
                "{} {id} has a twin {twins:?} on {tgt} but is created: {}",
                a.object,
                a.reason
            );
            if a.op == Op::Link {
                linked += 1;
                assert!(
                    twins.contains(a.target.id.as_deref().unwrap()),
                    "{} {id} linked to {:?}, not one of its twins {twins:?}",
                    a.object,
                    a.target.id
                );
            }
        }
        if d == Direction::Pull && a.object == Object::Contact {
            let has_company =
                text(&truth.hs_contacts[id]["properties"]["associatedcompanyid"]).is_some();
            if !has_company {
                assert_eq!(a.op, Op::Skip, "contact {id} has no company: {}", a.reason);
            }
        }
        if a.op == Op::Skip {
            assert!(!a.reason.is_empty());
        }
        if let Some(dep) = a.depends_on {
            assert!(dep < a.seq);
        }
    }
    assert!(linked > 0, "the seeded overlap links records");
    assert!(
        plan.summary.create > 0 && plan.summary.skip > 0,
        "{:?}",
        plan.summary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_and_push_plans_are_right_and_write_nothing() {
    let sb = seeded_sandbox(11, 40, 120).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state").join("tandem.db");
    let truth = Truth::read(&sb).await;

    let before = (
        requests(sb.hubspot_url()).await,
        requests(sb.accelo_url()).await,
    );
    let (pull, _) = plan_json(&sb, &store, &args(DirectionArg::Pull)).await;
    // Reading N records costs ceil(N/100) list requests per object and side (Accelo: a short
    // page ends a scan, so floor(N/100) + 1), plus one affiliation read per Accelo contact page.
    let after = (
        requests(sb.hubspot_url()).await,
        requests(sb.accelo_url()).await,
    );
    assert_eq!(
        delta(&before.0, &after.0),
        BTreeMap::from([
            ("GET /crm/v3/objects/companies".to_string(), 1), // 40
            ("GET /crm/v3/objects/contacts".to_string(), 2),  // 120
        ])
    );
    assert_eq!(
        delta(&before.1, &after.1),
        BTreeMap::from([
            ("GET /api/v0/companies".to_string(), 1),
            ("GET /api/v0/contacts".to_string(), 2),
            ("GET /api/v0/affiliations".to_string(), 2),
            ("POST /oauth2/v0/token".to_string(), 1),
        ])
    );
    assert_eq!(pull.direction, Direction::Pull);
    assert_eq!(pull.initiator, System::HubSpot);
    check_bulk(&pull, &truth);
    // B7: the seed has contacts without a company; they are all skipped.
    let no_company = pull
        .actions
        .iter()
        .filter(|a| a.reason == "contact has no company")
        .count();
    assert!(no_company > 0);

    let (push, _) = plan_json(&sb, &store, &args(DirectionArg::Push)).await;
    assert_eq!(push.initiator, System::Accelo);
    check_bulk(&push, &truth);

    // The text form: a summary line with the counts, one block per action.
    let mut a = args(DirectionArg::Pull);
    a.json = false;
    let out = render(&a, options(&sb, &store), false).await;
    assert_eq!(out.exit, Exit::Ok);
    let s = pull.summary;
    assert!(out.stdout.starts_with(&format!(
        "pull plan (hubspot → accelo, hubspot wins): {} to create, {} to update, {} to link",
        s.create, s.update, s.link
    )));
    assert!(
        out.stdout
            .lines()
            .next()
            .is_some_and(|l| l.ends_with(&format!("{} unchanged, {} skipped", s.noop, s.skip)))
    );
    assert_eq!(
        out.stdout.matches("\n    reason: ").count(),
        pull.actions.len()
    );

    assert_eq!(writes(&sb).await, (0, 0), "tandem plan writes nothing");
    assert!(
        !store.exists() && !store.parent().unwrap().exists(),
        "no store created"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_do_not_change_the_plan() {
    let sb = seeded_sandbox(12, 30, 90).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tandem.db");
    let (_, pull) = plan_json(&sb, &store, &args(DirectionArg::Pull)).await;
    let (_, push) = plan_json(&sb, &store, &args(DirectionArg::Push)).await;
    let mut company = args(DirectionArg::Push);
    company.company = Some("3".into());
    let (_, one) = plan_json(&sb, &store, &company).await;

    // 429s and 5xx on 10 % of requests.
    let faults = serde_json::from_value(json!({
        "seed": 5, "errors": {"429": 0.04, "500": 0.02, "502": 0.02, "503": 0.02}
    }))
    .unwrap();
    sb.set_faults(faults).unwrap();
    let injected = |s: &Value| {
        s["faults"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
            .unwrap_or(0)
    };
    // Faults are seeded, so the rounds are deterministic; plan until both simulators have
    // failed some requests (and at least twice).
    let mut rounds = 0;
    loop {
        rounds += 1;
        let (_, pull2) = plan_json(&sb, &store, &args(DirectionArg::Pull)).await;
        let (_, push2) = plan_json(&sb, &store, &args(DirectionArg::Push)).await;
        let (_, one2) = plan_json(&sb, &store, &company).await;
        assert_eq!(pull, pull2, "round {rounds}");
        assert_eq!(push, push2, "round {rounds}");
        assert_eq!(one, one2, "round {rounds}");
        let h = admin::stats(sb.hubspot_url()).await;
        let a = admin::stats(sb.accelo_url()).await;
        if rounds >= 2 && injected(&h) > 0 && injected(&a) > 0 {
            break;
        }
        assert!(rounds < 10, "no faults were injected: {h} {a}");
    }
    assert_eq!(writes(&sb).await, (0, 0));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_company_and_one_contact() {
    let sb = seeded_sandbox(13, 20, 80).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tandem.db");
    let affiliations = records(sb.accelo_url(), "affiliations").await;
    let contacts = records(sb.accelo_url(), "contacts").await;
    // The contacts of Accelo company 2 (by their default affiliation).
    let default_company: BTreeMap<String, String> = contacts
        .iter()
        .filter_map(|c| {
            let aff = text(&c["default_affiliation"])?;
            let a = affiliations
                .iter()
                .find(|a| text(&a["id"]).as_deref() == Some(&aff))?;
            Some((text(&c["id"])?, text(&a["company"])?))
        })
        .collect();
    let (company, id) = (1..=20)
        .map(|c| c.to_string())
        .map(|c| {
            let n = default_company.values().filter(|v| **v == c).count();
            (c, n)
        })
        .max_by_key(|(_, n)| *n)
        .unwrap();
    assert!(id > 0);
    let mut a = args(DirectionArg::Push);
    a.company = Some(company.clone());
    let (p, _) = plan_json(&sb, &store, &a).await;
    let sources: BTreeSet<(Object, String)> = p
        .actions
        .iter()
        .map(|a| (a.object, a.source.id.clone().unwrap()))
        .collect();
    let mut expected: BTreeSet<(Object, String)> = default_company
        .iter()
        .filter(|(_, c)| **c == company)
        .map(|(id, _)| (Object::Contact, id.clone()))
        .collect();
    expected.insert((Object::Company, company.clone()));
    assert_eq!(sources, expected, "B8: the company and all its contacts");
    assert_eq!(p.actions[0].object, Object::Company);

    // B9: one contact bypasses the criteria — an inactive Accelo contact is pushed anyway.
    let inactive = contacts
        .iter()
        .find(|c| text(&c["standing"]).as_deref() == Some("inactive"))
        .and_then(|c| text(&c["id"]))
        .expect("the seed has inactive contacts");
    let (bulk, _) = plan_json(&sb, &store, &args(DirectionArg::Push)).await;
    let in_bulk = bulk
        .actions
        .iter()
        .find(|a| a.object == Object::Contact && a.source.id.as_deref() == Some(&inactive))
        .unwrap();
    assert_eq!(in_bulk.op, Op::Skip);
    assert!(
        in_bulk.reason.starts_with("criteria not met"),
        "{}",
        in_bulk.reason
    );
    let mut a = args(DirectionArg::Push);
    a.contact = Some(inactive.clone());
    let (one, _) = plan_json(&sb, &store, &a).await;
    assert_eq!(one.actions.len(), 1);
    assert_eq!(one.actions[0].source.id.as_deref(), Some(inactive.as_str()));
    assert!(
        !one.actions[0].reason.starts_with("criteria"),
        "{}",
        one.actions[0].reason
    );

    // Ids that do not exist, and both flags: invalid input.
    let mut a = args(DirectionArg::Pull);
    a.company = Some("424242".into());
    let out = render(&a, options(&sb, &store), false).await;
    assert_eq!(out.exit, Exit::Invalid);
    assert!(
        out.stderr.contains("there is no hubspot company `424242`"),
        "{}",
        out.stderr
    );
    a.company = Some("1".into());
    a.contact = Some("2".into());
    let out = render(&a, options(&sb, &store), false).await;
    assert_eq!(out.exit, Exit::Invalid);
    assert_eq!(writes(&sb).await, (0, 0));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_goes_stale_when_its_data_changes() {
    let sb = seeded_sandbox(14, 15, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tandem.db");
    let file = dir.path().join("pull.plan.json");
    let mut a = args(DirectionArg::Pull);
    a.out = Some(file.clone());
    let (p, stdout) = plan_json(&sb, &store, &a).await;
    let saved = tandem_engine::snapshot::read_saved_plan(&file).unwrap();
    assert_eq!(saved.plan, p);
    assert_eq!(saved.scope, Scope::All);
    // The saved file holds the same plan JSON keys as `--json`.
    let file_json: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    for (k, v) in printed.as_object().unwrap() {
        assert_eq!(&file_json[k], v, "{k}");
    }

    let rt = Runtime::load(options(&sb, &store)).unwrap();
    let check = rt.check_saved(&saved).await.unwrap();
    assert!(check.is_fresh(), "{:?}", check.changes);
    assert!(!check.rules_changed);

    // Someone edits a HubSpot company in the UI: the plan is stale and says which record.
    let id = saved
        .plan
        .actions
        .iter()
        .find(|a| a.object == Object::Company)
        .and_then(|a| a.source.id.clone())
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/edit", sb.hubspot_url()))
        .json(&json!({"object": "companies", "id": id, "fields": {"phone": "+1 555 0100"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let check = rt.check_saved(&saved).await.unwrap();
    assert!(!check.is_fresh());
    assert_eq!(check.changes.len(), 1, "{:?}", check.changes);
    assert!(
        check.changes[0].starts_with(&format!("hubspot company `{id}` changed (modified ")),
        "{:?}",
        check.changes
    );

    // A link written since (another run synced a pair) makes it stale too.
    let store_handle = rt.store().await.unwrap();
    store_handle
        .upsert_link(&tandem_core::model::Link {
            object: Object::Company,
            hubspot_id: id.clone(),
            accelo_id: "1".into(),
            affiliation_id: None,
            last_synced: BTreeMap::new(),
        })
        .await
        .unwrap();
    let check = rt.check_saved(&saved).await.unwrap();
    assert!(
        check
            .changes
            .iter()
            .any(|c| c == &format!("company hubspot `{id}` ↔ accelo `1` was linked since")),
        "{:?}",
        check.changes
    );

    // A file that is not a saved plan, or was edited, is refused with a clear message.
    std::fs::write(&file, "{\"direction\": \"pull\"}").unwrap();
    let e = tandem_engine::snapshot::read_saved_plan(&file).unwrap_err();
    assert!(e.to_string().contains("no `format` key"), "{e}");
    let edited = saved
        .to_json()
        .replace("\"op\": \"skip\"", "\"op\": \"create\"");
    std::fs::write(&file, edited).unwrap();
    let e = tandem_engine::snapshot::read_saved_plan(&file).unwrap_err();
    assert!(e.to_string().contains("the file was edited"), "{e}");
    assert_eq!(writes(&sb).await, (0, 0));
    let _ = SavedPlan::from_json(&saved.to_json()).unwrap();
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_plans_against_the_sandbox() {
    let sb = seeded_sandbox(15, 10, 30).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tandem.db");
    let Env::Map(vars) = env(&sb, &store) else {
        unreachable!()
    };
    let run = |extra: &[&str], vars: &BTreeMap<String, String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("plan")
            .args(extra)
            .env_clear()
            .envs(vars)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let vars = vars.clone();
        move || run(&["pull", "--json"], &vars)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let p: Plan = serde_json::from_str(&stdout).unwrap();
    assert_eq!(p.summary, tandem_core::plan::Summary::of(&p.actions));
    assert!(!p.actions.is_empty());

    let (code, _, stderr) = tokio::task::spawn_blocking({
        let vars = vars.clone();
        move || run(&["push", "--company", "1", "--contact", "2"], &vars)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(2), "{stderr}");

    // Refused credentials: exit 3, and the token is not in the message.
    let mut bad = vars.clone();
    bad.insert(
        "TANDEM_HUBSPOT_TOKEN".into(),
        "pat-na1-not-the-right-token".into(),
    );
    let (code, _, stderr) = tokio::task::spawn_blocking(move || run(&["pull"], &bad))
        .await
        .unwrap();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(!stderr.contains("pat-na1-not-the-right-token"), "{stderr}");
    assert_eq!(writes(&sb).await, (0, 0));
    assert!(!store.exists());
    sb.shutdown().await;
}
