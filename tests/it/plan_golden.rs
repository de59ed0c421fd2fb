//! Golden plans: ONE fixture world (tests/fixtures/world/world.yaml) plus small per-test
//! overlays, planned with the shipped rules and snapshotted as text and JSON
//! (tests/it/snapshots/plan/). Each test also asserts the behaviour it is about, so a snapshot
//! accepted by mistake does not hide a broken rule: B3 precedence (and per-field overrides), B4
//! blanks, B5 criteria, B6 duplicates (domain, name, email; ambiguity), B7 no company, B8 one
//! company, B9 one contact, B10 create or update, B15 statuses, and the incremental mode with its
//! conflicts and harmless echoes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tandem_core::compile::{Program, load};
use tandem_core::model::{Direction, Link, Object, Record, System};
use tandem_core::plan::{Action, Mode, Op, Plan, PlanInput, plan, render};
use tandem_core::rules::Paths;

use crate::support::program;

// ---------------------------------------------------------------------------------------------
// The world

#[derive(Debug, Clone)]
struct World {
    hubspot: Vec<Record>,
    accelo: Vec<Record>,
    links: Vec<Link>,
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).expect("valid YAML")
}

/// Scalars as the connectors deliver them: strings.
fn strings(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), strings(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(strings).collect()),
        other => other.clone(),
    }
}

fn id(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn records(system: System, side: &Value) -> Vec<Record> {
    let mut out = Vec::new();
    for (key, object) in [
        ("companies", Object::Company),
        ("contacts", Object::Contact),
    ] {
        for r in side[key].as_array().into_iter().flatten() {
            let mut rec = Record::new(system, object, id(&r["id"]));
            rec.doc = strings(&r["values"])
                .as_object()
                .cloned()
                .unwrap_or_default();
            rec.updated_at = r["updated_at"].as_i64();
            rec.company_id = r.get("company").filter(|c| !c.is_null()).map(id);
            out.push(rec);
        }
    }
    out
}

fn links(v: &Value) -> Vec<Link> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|l| Link {
            object: l["object"].as_str().unwrap().parse().unwrap(),
            hubspot_id: id(&l["hubspot"]),
            accelo_id: id(&l["accelo"]),
            affiliation_id: l.get("affiliation").filter(|a| !a.is_null()).map(id),
            last_synced: l["last_synced"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), id(v))).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// The fixture world, with `overlay` (same shape) merged in: a record with the id of an
/// existing one changes it (each given value replaces the old one, `null` removes it; a given
/// `updated_at` replaces the old one), a new id adds a record; a link with the HubSpot id of an
/// existing one replaces it.
fn world(overlay: &str) -> World {
    let base = yaml(
        &std::fs::read_to_string("tests/fixtures/world/world.yaml").expect("the fixture world"),
    );
    let mut w = World {
        hubspot: records(System::HubSpot, &base["hubspot"]),
        accelo: records(System::Accelo, &base["accelo"]),
        links: links(&base["links"]),
    };
    if overlay.trim().is_empty() {
        return w;
    }
    let over = yaml(overlay);
    for (system, key) in [(System::HubSpot, "hubspot"), (System::Accelo, "accelo")] {
        for (k, object) in [
            ("companies", Object::Company),
            ("contacts", Object::Contact),
        ] {
            for r in over[key][k].as_array().into_iter().flatten() {
                let rid = id(&r["id"]);
                let side = match system {
                    System::HubSpot => &mut w.hubspot,
                    System::Accelo => &mut w.accelo,
                };
                let pos = side.iter().position(|x| x.object == object && x.id == rid);
                let rec = match pos {
                    Some(p) => &mut side[p],
                    None => {
                        side.push(Record::new(system, object, rid));
                        side.last_mut().unwrap()
                    }
                };
                for (f, v) in strings(&r["values"]).as_object().into_iter().flatten() {
                    if v.is_null() {
                        rec.doc.remove(f);
                    } else {
                        rec.doc.insert(f.clone(), v.clone());
                    }
                }
                if let Some(t) = r["updated_at"].as_i64() {
                    rec.updated_at = Some(t);
                }
                if let Some(c) = r.get("company") {
                    rec.company_id = (!c.is_null()).then(|| id(c));
                }
            }
        }
    }
    for l in links(&over["links"]) {
        w.links
            .retain(|x| !(x.object == l.object && x.hubspot_id == l.hubspot_id));
        w.links.push(l);
    }
    w
}

/// The shipped rules with `edit` applied to companies.yaml (for per-field overrides).
fn program_with(edit: impl Fn(String) -> String) -> Arc<Program> {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tandem.yaml", "contacts.yaml"] {
        std::fs::copy(Path::new("rules").join(f), dir.path().join(f)).unwrap();
    }
    let companies = std::fs::read_to_string("rules/companies.yaml").unwrap();
    let edited = edit(companies.clone());
    assert_ne!(edited, companies, "the edit applies");
    std::fs::write(dir.path().join("companies.yaml"), edited).unwrap();
    load(&Paths {
        config: dir.path().join("tandem.yaml"),
        rules_dir: dir.path().to_path_buf(),
    })
    .unwrap_or_else(|r| panic!("{}", r.render_human(false)))
    .program
}

/// What to plan: every source record, or only some (a scope), with or without the criteria.
struct Run<'a> {
    direction: Direction,
    mode: Mode,
    initiator: Option<System>,
    only: Option<&'a dyn Fn(&Record) -> bool>,
    bypass_criteria: bool,
}

impl Run<'_> {
    fn bulk(direction: Direction) -> Run<'static> {
        Run {
            direction,
            mode: Mode::Bulk,
            initiator: None,
            only: None,
            bypass_criteria: false,
        }
    }

    fn incremental(direction: Direction) -> Run<'static> {
        Run {
            mode: Mode::Incremental,
            ..Run::bulk(direction)
        }
    }
}

fn run_with(program: &Program, w: &World, run: &Run<'_>) -> Plan {
    let (source, target) = match run.direction {
        Direction::Pull => (&w.hubspot, &w.accelo),
        Direction::Push => (&w.accelo, &w.hubspot),
    };
    let source: Vec<Record> = source
        .iter()
        .filter(|r| run.only.is_none_or(|f| f(r)))
        .cloned()
        .collect();
    plan(
        program,
        &PlanInput {
            direction: run.direction,
            initiator: run.initiator.unwrap_or(run.direction.source()),
            mode: run.mode,
            source: &source,
            target,
            links: &w.links,
            bypass_criteria: run.bypass_criteria,
        },
    )
}

fn run(w: &World, r: &Run<'_>) -> Plan {
    run_with(&program(), w, r)
}

/// Snapshots the plan as text and JSON (the rules hash redacted: it changes with any rule edit).
fn golden(name: &str, p: &Plan) {
    let json = render::json(p).replace(&p.rules_hash, "[rules_hash]");
    insta::with_settings!({snapshot_path => "snapshots/plan", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(format!("{name}.txt"), render::text(p, false));
        insta::assert_snapshot!(format!("{name}.json"), json);
    });
    // Whatever the snapshot says, the contract holds.
    assert_eq!(p.summary, tandem_core::plan::Summary::of(&p.actions));
    for (i, a) in p.actions.iter().enumerate() {
        assert_eq!(a.seq as usize, i + 1);
        if let Some(d) = a.depends_on {
            assert!(d < a.seq);
        }
        if a.op == Op::Skip {
            assert!(a.last_synced.is_none(), "a skip changes no link");
        }
        if matches!(a.op, Op::Create | Op::Link | Op::Update) {
            assert!(a.last_synced.is_some(), "{a:?}");
        }
    }
    let back: Plan = serde_json::from_str(&render::json(p)).unwrap();
    assert_eq!(&back, p, "the JSON reads back");
}

fn action<'p>(p: &'p Plan, system: System, object: Object, id: &str) -> &'p Action {
    p.actions
        .iter()
        .find(|a| {
            a.source.system == system && a.object == object && a.source.id.as_deref() == Some(id)
        })
        .unwrap_or_else(|| panic!("no action for {system} {object} {id}: {p:#?}"))
}

fn changes(a: &Action) -> BTreeMap<&str, (Option<&str>, Option<&str>)> {
    a.changes
        .iter()
        .map(|c| (c.field.as_str(), (c.from.as_deref(), c.to.as_deref())))
        .collect()
}

use Object::{Company, Contact};
use System::{Accelo, HubSpot};

// ---------------------------------------------------------------------------------------------
// Bulk

#[test]
fn bulk_pull() {
    let p = run(&world(""), &Run::bulk(Direction::Pull));
    golden("bulk_pull", &p);

    // B10: linked and in step → no-op, with the link already right.
    let acme = action(&p, HubSpot, Company, "101");
    assert_eq!((acme.op, acme.target.id.as_deref()), (Op::Noop, Some("12")));
    assert_eq!(
        acme.last_synced, None,
        "the recorded last-synced values are the current ones"
    );
    // B6 by domain, by normalised name; ambiguity is never guessed.
    let globex = action(&p, HubSpot, Company, "102");
    assert_eq!(
        (globex.op, globex.target.id.as_deref()),
        (Op::Link, Some("13"))
    );
    assert_eq!(globex.reason, "matched by domain `globex.com`");
    // B3: HubSpot started the pull, so its name wins.
    assert_eq!(
        changes(globex)["name"],
        (Some("Globex Corporation"), Some("Globex"))
    );
    let vandelay = action(&p, HubSpot, Company, "108");
    assert_eq!(
        (vandelay.op, vandelay.target.id.as_deref()),
        (Op::Link, Some("18"))
    );
    let initech = action(&p, HubSpot, Company, "103");
    assert_eq!(initech.op, Op::Skip);
    assert_eq!(
        initech.reason,
        "ambiguous match by name `initech`: accelo companies `14`, `15`"
    );
    // B5.
    let news = action(&p, HubSpot, Company, "104");
    assert_eq!(news.op, Op::Skip);
    assert!(news.reason.starts_with("criteria not met (pull:"));
    // B10 + B15: created with its status, the name trimmed by the transform.
    let stark = action(&p, HubSpot, Company, "105");
    assert_eq!(stark.op, Op::Create);
    assert_eq!(changes(stark)["name"], (None, Some("Stark Industries")));
    assert_eq!(changes(stark)["status"], (None, Some("Active")));
    // B4: HubSpot's blank phone leaves Accelo's alone; the name differs and HubSpot wins.
    let umbrella = action(&p, HubSpot, Company, "106");
    assert_eq!(umbrella.op, Op::Update);
    assert!(!changes(umbrella).contains_key("phone"));
    assert_eq!(
        changes(umbrella)["name"],
        (Some("Umbrella Corp"), Some("Umbrella Corporation"))
    );
    // B15: `other` → Inactive replaces Active (HubSpot wins).
    assert_eq!(
        changes(umbrella)["status"],
        (Some("Active"), Some("Inactive"))
    );
    // B15: `opportunity` already maps to Prospect: nothing to do.
    assert_eq!(action(&p, HubSpot, Company, "107").op, Op::Noop);

    // Contacts come after companies; B7; a new contact depends on its new company.
    assert_eq!(
        action(&p, HubSpot, Contact, "202").reason,
        "contact has no company"
    );
    let pepper = action(&p, HubSpot, Contact, "203");
    assert_eq!(pepper.op, Op::Create);
    assert_eq!(pepper.depends_on, Some(stark.seq));
    assert_eq!(pepper.target_company_id, None);
    assert_eq!(
        changes(pepper)["affiliation.email"],
        (None, Some("pepper@stark.example"))
    );
    let bill = action(&p, HubSpot, Contact, "204");
    assert_eq!(bill.reason, "company hubspot `103` is not synced");
    let hank = action(&p, HubSpot, Contact, "206");
    assert_eq!((hank.op, hank.target.id.as_deref()), (Op::Link, Some("8")));
    assert_eq!(
        hank.target_company_id.as_deref(),
        Some("13"),
        "its company is linked in this plan"
    );
    assert_eq!(hank.affiliation_id.as_deref(), Some("32"));
    let ann = action(&p, HubSpot, Contact, "207");
    assert_eq!(ann.op, Op::Create);
    assert_eq!(ann.target_company_id.as_deref(), Some("16"));
    assert_eq!(ann.depends_on, None);
}

#[test]
fn bulk_push() {
    let p = run(&world(""), &Run::bulk(Direction::Push));
    golden("bulk_push", &p);
    // B3: Accelo wins on push.
    let umbrella = action(&p, Accelo, Company, "16");
    assert_eq!(umbrella.op, Op::Update);
    assert_eq!(
        changes(umbrella)["name"],
        (Some("Umbrella Corporation"), Some("Umbrella Corp"))
    );
    // B4 the other way: HubSpot's blank phone is filled.
    assert_eq!(changes(umbrella)["phone"], (None, Some("555-0199")));
    // B5.
    assert!(
        action(&p, Accelo, Company, "19")
            .reason
            .starts_with("criteria not met (push:")
    );
    // A created company gets a HubSpot domain from its website (push-only mapping).
    let wayne = action(&p, Accelo, Company, "20");
    assert_eq!(wayne.op, Op::Create);
    assert_eq!(changes(wayne)["domain"], (None, Some("wayne.example")));
    assert_eq!(changes(wayne)["lifecyclestage"], (None, Some("customer")));
    let dana = action(&p, Accelo, Contact, "10");
    assert_eq!((dana.op, dana.depends_on), (Op::Create, Some(wayne.seq)));
    // The inactive contact stays out of a bulk push.
    assert!(
        action(&p, Accelo, Contact, "9")
            .reason
            .starts_with("criteria not met")
    );
    // Linked and in step.
    assert_eq!(action(&p, Accelo, Contact, "7").op, Op::Noop);
}

#[test]
fn push_one_company_with_all_its_contacts() {
    // B8: Accelo company 12 and every contact of it (7, and 9 — whose criteria still apply).
    let only = |r: &Record| match r.object {
        Company => r.id == "12",
        Contact => r.company_id.as_deref() == Some("12"),
    };
    let p = run(
        &world(""),
        &Run {
            only: Some(&only),
            ..Run::bulk(Direction::Push)
        },
    );
    golden("push_company_12", &p);
    let ids: Vec<(Object, &str)> = p
        .actions
        .iter()
        .map(|a| (a.object, a.source.id.as_deref().unwrap()))
        .collect();
    assert_eq!(ids, [(Company, "12"), (Contact, "7"), (Contact, "9")]);
    assert_eq!(action(&p, Accelo, Contact, "9").op, Op::Skip);
}

#[test]
fn push_one_contact_bypasses_the_criteria() {
    // B9: the inactive contact 9, pushed on its own, is created under its linked company.
    let only = |r: &Record| r.object == Contact && r.id == "9";
    let p = run(
        &world(""),
        &Run {
            only: Some(&only),
            bypass_criteria: true,
            ..Run::bulk(Direction::Push)
        },
    );
    golden("push_contact_9", &p);
    assert_eq!(p.actions.len(), 1);
    let ex = &p.actions[0];
    assert_eq!(ex.op, Op::Create);
    assert_eq!(ex.target_company_id.as_deref(), Some("101"));
    assert_eq!(changes(ex)["hs_lead_status"], (None, Some("UNQUALIFIED")));
}

#[test]
fn per_field_precedence_and_blank_clear() {
    // B3 overrides: Accelo's phone always wins; a blank HubSpot description clears Accelo's.
    let program = program_with(|s| {
        s.replace(
            "  - hubspot: phone\n    accelo: $.phone\n",
            "  - hubspot: phone\n    accelo: $.phone\n    precedence: accelo\n",
        )
        .replace(
            "  - hubspot: description\n    accelo: $.comments\n",
            "  - hubspot: description\n    accelo: $.comments\n    blank: clear\n",
        )
    });
    let w = world(
        "hubspot:\n  companies:\n    - {id: 106, values: {phone: '555-0106'}}\n\
         accelo:\n  companies:\n    - {id: 16, values: {comments: 'Do not call'}}\n",
    );
    let p = run_with(&program, &w, &Run::bulk(Direction::Pull));
    golden("precedence_overrides", &p);
    let umbrella = action(&p, HubSpot, Company, "106");
    let c = changes(umbrella);
    assert!(
        !c.contains_key("phone"),
        "Accelo's phone wins even on pull: {c:?}"
    );
    assert_eq!(
        c["comments"],
        (Some("Do not call"), None),
        "the blank clears"
    );
    // Without a value on the other side, the override still fills a blank.
    let w = world(
        "hubspot:\n  companies:\n    - {id: 106, values: {phone: '555-0106'}}\n\
         accelo:\n  companies:\n    - {id: 16, values: {phone: null}}\n",
    );
    let p = run_with(&program, &w, &Run::bulk(Direction::Pull));
    assert_eq!(
        changes(action(&p, HubSpot, Company, "106"))["phone"],
        (None, Some("555-0106"))
    );
}

// ---------------------------------------------------------------------------------------------
// Incremental (the automatic sync)

#[test]
fn incremental_without_changes_is_all_noops() {
    // The synced pairs: nothing changed on either side since the last sync.
    let only = |r: &Record| matches!(r.id.as_str(), "101" | "201");
    let p = run(
        &world(""),
        &Run {
            only: Some(&only),
            ..Run::incremental(Direction::Pull)
        },
    );
    golden("incremental_in_step", &p);
    for a in &p.actions {
        assert_eq!(a.op, Op::Noop);
        assert_eq!(a.reason, "neither side changed since the last sync");
        assert_eq!(a.last_synced, None);
    }
}

#[test]
fn incremental_writes_each_change_to_the_other_side() {
    // HubSpot changed the company's phone; Accelo changed the contact's position. A pull started
    // by HubSpot writes the phone to Accelo and the position back to HubSpot.
    let w = world(
        "hubspot:\n  companies:\n    - {id: 101, updated_at: 1700000100000, values: {phone: +61 2 9999 1111}}\n\
         accelo:\n  contacts:\n    - {id: 7, updated_at: 1700000200000, values: {affiliation: {id: 31, email: jo@acme.com, phone: '555-0100', position: Chief Executive}}}\n",
    );
    let only = |r: &Record| matches!(r.id.as_str(), "101" | "201");
    let p = run(
        &w,
        &Run {
            only: Some(&only),
            ..Run::incremental(Direction::Pull)
        },
    );
    golden("incremental_both_ways", &p);
    let acme = action(&p, HubSpot, Company, "101");
    assert_eq!(acme.op, Op::Update);
    assert_eq!(
        acme.reason,
        "linked; changed in hubspot since the last sync: phone"
    );
    assert_eq!(
        changes(acme),
        BTreeMap::from([("phone", (Some("+61 2 9999 0000"), Some("+61 2 9999 1111")))])
    );
    let ls = acme.last_synced.as_ref().unwrap();
    assert_eq!(ls["hubspot:phone"], "+61 2 9999 1111");
    assert_eq!(ls["accelo:phone"], "+61 2 9999 1111");
    // The contact's change goes against the plan's direction: Accelo → HubSpot.
    let jo = action(&p, Accelo, Contact, "7");
    assert_eq!(
        (jo.op, jo.target.system, jo.target.id.as_deref()),
        (Op::Update, HubSpot, Some("201"))
    );
    assert_eq!(
        jo.reason,
        "linked; changed in accelo since the last sync: jobtitle"
    );
    assert_eq!(
        changes(jo),
        BTreeMap::from([("jobtitle", (Some("CEO"), Some("Chief Executive")))])
    );
    assert_eq!(
        jo.last_synced.as_ref().unwrap()["hubspot:jobtitle"],
        "Chief Executive"
    );
}

#[test]
fn incremental_pair_changed_on_both_sides() {
    // Different fields changed on each side of the same pair: two actions, the second depends on
    // the first and carries the combined last-synced values.
    let w = world(
        "hubspot:\n  companies:\n    - {id: 101, updated_at: 1700000100000, values: {phone: +61 2 9999 1111}}\n\
         accelo:\n  companies:\n    - {id: 12, updated_at: 1700000200000, values: {name: Acme Group}}\n",
    );
    let only = |r: &Record| r.id == "101";
    let p = run(
        &w,
        &Run {
            only: Some(&only),
            ..Run::incremental(Direction::Pull)
        },
    );
    golden("incremental_two_actions", &p);
    assert_eq!(p.actions.len(), 2);
    let (fwd, rev) = (&p.actions[0], &p.actions[1]);
    assert_eq!((fwd.source.system, fwd.op), (HubSpot, Op::Update));
    assert_eq!(
        (rev.source.system, rev.op, rev.depends_on),
        (Accelo, Op::Update, Some(1))
    );
    assert_eq!(
        changes(rev)["name"],
        (Some("Acme Pty Ltd"), Some("Acme Group"))
    );
    // If only the first succeeds, the name keeps its old last-synced values (to be retried).
    let first = fwd.last_synced.as_ref().unwrap();
    assert_eq!(first["hubspot:name"], "Acme Pty Ltd");
    assert_eq!(first["accelo:name"], "Acme Pty Ltd");
    assert_eq!(first["accelo:phone"], "+61 2 9999 1111");
    let both = rev.last_synced.as_ref().unwrap();
    assert_eq!(both["hubspot:name"], "Acme Group");
    assert_eq!(both["accelo:name"], "Acme Group");
    assert_eq!(both["accelo:phone"], "+61 2 9999 1111");
}

#[test]
fn incremental_conflicts_go_to_the_newer_edit() {
    let conflict = |h_at: i64, a_at: i64| {
        world(&format!(
            "hubspot:\n  companies:\n    - {{id: 101, updated_at: {h_at}, values: {{name: Acme Holdings}}}}\n\
             accelo:\n  companies:\n    - {{id: 12, updated_at: {a_at}, values: {{name: Acme Group}}}}\n"
        ))
    };
    let only = |r: &Record| r.id == "101" || r.id == "12";
    // HubSpot edited last.
    let p = run(
        &conflict(1700000300000, 1700000200000),
        &Run {
            only: Some(&only),
            ..Run::incremental(Direction::Pull)
        },
    );
    golden("incremental_conflict_hubspot_newer", &p);
    assert_eq!(p.actions.len(), 1);
    assert_eq!(
        p.actions[0].reason,
        "linked; conflict on name: both changed, hubspot edit newer"
    );
    assert_eq!(
        changes(&p.actions[0])["name"],
        (Some("Acme Group"), Some("Acme Holdings"))
    );
    // Accelo edited last: its name goes to HubSpot, even in a plan HubSpot started.
    let p = run(
        &conflict(1700000200000, 1700000300000),
        &Run {
            only: Some(&only),
            ..Run::incremental(Direction::Pull)
        },
    );
    golden("incremental_conflict_accelo_newer", &p);
    assert_eq!(p.actions.len(), 1);
    let a = &p.actions[0];
    assert_eq!((a.source.system, a.target.system), (Accelo, HubSpot));
    assert_eq!(
        a.reason,
        "linked; conflict on name: both changed, accelo edit newer"
    );
    // The same time: the initiator wins (here Accelo, seen by the poller).
    let p = run(
        &conflict(1700000300000, 1700000300000),
        &Run {
            only: Some(&only),
            ..Run::incremental(Direction::Push)
        },
    );
    golden("incremental_conflict_tie", &p);
    assert_eq!(
        p.actions[0].reason,
        "linked; conflict on name: both changed at the same time, accelo started the sync"
    );
    assert_eq!(
        changes(&p.actions[0])["name"],
        (Some("Acme Holdings"), Some("Acme Group"))
    );
}

#[test]
fn incremental_echoes_are_harmless() {
    // Tandem wrote the phone to Accelo and recorded it; the poll then sees Accelo "changed"
    // (its modification time moved) — but every value is its last-synced value: nothing to do.
    let w = world(
        "hubspot:\n  companies:\n    - {id: 101, updated_at: 1700000100000, values: {phone: +61 2 9999 1111}}\n\
         accelo:\n  companies:\n    - {id: 12, updated_at: 1700000100500, values: {phone: +61 2 9999 1111}}\n",
    );
    let mut w = w;
    for l in &mut w.links {
        if l.hubspot_id == "101" {
            l.last_synced
                .insert("hubspot:phone".into(), "+61 2 9999 1111".into());
            l.last_synced
                .insert("accelo:phone".into(), "+61 2 9999 1111".into());
        }
    }
    let only = |r: &Record| r.id == "12";
    let p = run(
        &w,
        &Run {
            only: Some(&only),
            ..Run::incremental(Direction::Push)
        },
    );
    assert_eq!(p.actions.len(), 1);
    assert_eq!(p.actions[0].op, Op::Noop);
    assert_eq!(
        p.actions[0].reason,
        "neither side changed since the last sync"
    );
    // The same values in bulk mode are in step too.
    let p = run(
        &w,
        &Run {
            only: Some(&only),
            ..Run::bulk(Direction::Push)
        },
    );
    assert_eq!(p.actions[0].op, Op::Noop);
}

#[test]
fn incremental_without_last_synced_values_falls_back_to_the_bulk_rule() {
    // Umbrella (106 ↔ 16) was linked before last-synced values were recorded.
    let only = |r: &Record| r.id == "106";
    let bulk = run(
        &world(""),
        &Run {
            only: Some(&only),
            ..Run::bulk(Direction::Pull)
        },
    );
    let inc = run(
        &world(""),
        &Run {
            only: Some(&only),
            ..Run::incremental(Direction::Pull)
        },
    );
    assert_eq!(inc.actions[0].changes, bulk.actions[0].changes);
    assert_eq!(
        inc.actions[0].reason,
        "linked; not synced before, hubspot value wins: name, status"
    );
    assert_eq!(inc.actions[0].last_synced, bulk.actions[0].last_synced);
}
