//! Benchmark of the rules pipeline (results and method in docs/PERFORMANCE.md):
//! `tandem check` of the shipped rules, one rule evaluation, planning a large seeded world
//! with the shipped rules, and how long runaway rules take to fail. Run with
//! `cargo bench --bench rules`; `cargo bench --bench rules -- runaway eval` runs only the named
//! sections (`check`, `eval`, `plan`, `incremental`, `runaway`).
//!
//! Plain timing loops (no harness): each measurement reports the median of several runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: a panic is a failure"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};
use tandem_core::compile::load;
use tandem_core::expr::{Expr, RecordValue, Vars};
use tandem_core::model::{Direction, Link, Object, Record, System};
use tandem_core::plan::{PlanInput, plan};
use tandem_core::rules::{Paths, Source, check, check_sources};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

const NAMES: &[&str] = &[
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell",
];
const SUFFIX: &[&str] = &["Pty Ltd", "Inc.", "GmbH", "", "S.A.", "LLC"];
const STAGES: &[&str] = &["lead", "opportunity", "customer", "subscriber", "other"];
const STATUS: &[&str] = &["Active", "Prospect", "Inactive"];

struct World {
    hubspot: Vec<Record>,
    accelo: Vec<Record>,
    links: Vec<Link>,
}

/// `companies` companies and `2 × companies` contacts per side; half of each side linked, a
/// quarter of the rest duplicated across sides by domain / email.
fn world(companies: usize, seed: u64) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hubspot = Vec::new();
    let mut accelo = Vec::new();
    let mut links = Vec::new();
    for i in 0..companies {
        let base = NAMES[rng.random_range(0..NAMES.len())];
        let name = format!("{base} {i} {}", SUFFIX[rng.random_range(0..SUFFIX.len())]);
        let domain = format!("{}{i}.example", base.to_lowercase());
        let mut h = Record::new(
            System::HubSpot,
            Object::Company,
            format!("{}", 10_000_000_000u64 + i as u64),
        );
        h.doc = json!({
            "name": name, "domain": domain, "phone": format!("+61 2 {:04} {:04}", i % 10_000, rng.random_range(0..10_000)),
            "city": "Sydney", "lifecyclestage": STAGES[rng.random_range(0..STAGES.len())],
        })
        .as_object()
        .unwrap()
        .clone();
        let mut a = Record::new(System::Accelo, Object::Company, format!("{}", i + 1));
        let accelo_name = if rng.random_bool(0.5) {
            name.to_uppercase()
        } else {
            format!("Other {i}")
        };
        let accelo_site = if i % 4 == 1 {
            format!("https://www.{domain}/")
        } else {
            format!("https://other{i}.example")
        };
        let title = STATUS[rng.random_range(0..STATUS.len())];
        a.doc = json!({
            "name": accelo_name, "website": accelo_site, "standing": title.to_lowercase(),
            "status": {"id": "1", "title": title, "standing": title.to_lowercase()},
            "postal_address": {"id": format!("{}", 40 + i), "city": "Melbourne"},
        })
        .as_object()
        .unwrap()
        .clone();
        if i % 2 == 0 {
            links.push(Link {
                object: Object::Company,
                hubspot_id: h.id.clone(),
                accelo_id: a.id.clone(),
                affiliation_id: None,
                last_synced: BTreeMap::new(),
            });
        }
        for k in 0..2 {
            let j = i * 2 + k;
            let email = format!("person{j}@{domain}");
            let mut hc = Record::new(
                System::HubSpot,
                Object::Contact,
                format!("{}", 20_000_000_000u64 + j as u64),
            );
            hc.company_id = Some(h.id.clone());
            hc.doc = json!({
                "firstname": format!("First{j}"), "lastname": format!("Last{j}"), "email": email,
                "phone": "555-0100", "jobtitle": "Manager", "hs_lead_status": "OPEN",
            })
            .as_object()
            .unwrap()
            .clone();
            let mut ac = Record::new(System::Accelo, Object::Contact, format!("{}", j + 1));
            ac.company_id = Some(a.id.clone());
            let accelo_email = if j % 4 == 1 {
                email.to_uppercase()
            } else {
                format!("x{j}@other.example")
            };
            let mut doc: Map<String, Value> = json!({
                "firstname": format!("First{j}"), "surname": format!("Last{j}"), "standing": "active",
                "status": {"id": "2", "title": "Prospect", "standing": "prospect"},
                "affiliation": {"id": format!("{}", 90 + j), "email": accelo_email, "phone": "555-0199"},
                "company": {"id": a.id, "name": "Acme"},
            })
            .as_object()
            .unwrap()
            .clone();
            doc.insert("comments".into(), Value::String(String::new()));
            ac.doc = doc;
            if j % 2 == 0 {
                links.push(Link {
                    object: Object::Contact,
                    hubspot_id: hc.id.clone(),
                    accelo_id: ac.id.clone(),
                    affiliation_id: None,
                    last_synced: BTreeMap::new(),
                });
            }
            hubspot.push(hc);
            accelo.push(ac);
        }
        hubspot.push(h);
        accelo.push(a);
    }
    World {
        hubspot,
        accelo,
        links,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then it only makes sure every measurement still works, on tiny sizes.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let only: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let section = |name: &str| only.is_empty() || only.contains(&name);
    let paths = Paths::resolve(Some("rules/tandem.yaml".into()), None);

    // 1. `tandem check` of the shipped rules (read, parse, schema-validate, compile, probe).
    if section("check") {
        let check_runs = if full { 20 } else { 1 };
        let runs: Vec<Duration> = (0..check_runs)
            .map(|_| {
                let t = Instant::now();
                let c = check(&paths);
                assert!(c.is_ok());
                t.elapsed()
            })
            .collect();
        println!(
            "check shipped rules (3 files): median {:?} over {check_runs} runs",
            median(runs)
        );
    }

    let program = load(&paths).unwrap().program;

    if section("eval") {
        evaluation(&program, full);
    }
    if section("plan") {
        planning(&program, full);
    }
    if section("incremental") {
        incremental(&program, full);
    }
    if section("runaway") {
        runaway(full);
    }
    if let Some(kib) = peak_rss_kib() {
        println!(
            "peak resident memory of the benchmark process: {} MiB",
            kib / 1024
        );
    }
}

/// 2. One rule evaluation: prepare a HubSpot contact, evaluate the pull criteria; and the cost
///    of one cheap operation (a counting loop), which the per-operation checks add to.
fn evaluation(program: &tandem_core::compile::Program, full: bool) {
    let w = world(1, 1);
    let contact = w
        .hubspot
        .iter()
        .find(|r| r.object == Object::Contact)
        .unwrap();
    let n = if full { 200_000 } else { 10 };
    let t = Instant::now();
    for _ in 0..n {
        let rv = RecordValue::new(contact);
        assert!(
            program
                .criteria_with(Object::Contact, Direction::Pull, &rv)
                .unwrap()
        );
    }
    let per = t.elapsed() / n;
    println!("prepare record + evaluate contact pull criteria: {per:?} each ({n} runs)");

    // A counting loop (20,000 rounds: about 60,000 operations, under the limit): the cost of
    // one cheap operation, to which the per-operation limit checks add.
    let rounds: i64 = if full { 20_000 } else { 1_000 };
    let counting = Expr::compile(
        &format!("let x = 0; for i in 0..{rounds} {{ x += i; }} x"),
        Vars::Record,
    )
    .expect("compiles");
    let rv = RecordValue::new(contact);
    let runs = if full { 50 } else { 1 };
    let times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let v = counting.eval(&rv, None).unwrap();
            assert_eq!(v.as_int().unwrap(), rounds * (rounds - 1) / 2);
            t.elapsed()
        })
        .collect();
    let d = median(times);
    println!(
        "counting loop of {rounds} rounds: median {d:?} over {runs} runs ({:.1} ns per round)",
        d.as_nanos() as f64 / rounds as f64
    );
}

fn sizes(full: bool) -> &'static [usize] {
    if full {
        &[1_000, 10_000, 50_000]
    } else {
        &[20]
    }
}

/// 3. Planning a seeded world.
fn planning(program: &tandem_core::compile::Program, full: bool) {
    for &companies in sizes(full) {
        let w = world(companies, 7);
        let records = w.hubspot.len() + w.accelo.len();
        for direction in [Direction::Pull, Direction::Push] {
            let (source, target) = match direction {
                Direction::Pull => (&w.hubspot, &w.accelo),
                Direction::Push => (&w.accelo, &w.hubspot),
            };
            let input = PlanInput {
                direction,
                initiator: direction.source(),
                mode: tandem_core::plan::Mode::Bulk,
                source,
                target,
                links: &w.links,
                bypass_criteria: false,
            };
            let reps = if companies >= 50_000 || !full { 1 } else { 3 };
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..reps {
                let t = Instant::now();
                let p = plan(program, &input);
                times.push(t.elapsed());
                last = Some(p);
            }
            let p = last.unwrap();
            let d = median(times);
            println!(
                "plan {direction} {companies} companies + {} contacts per side ({records} records): \
                 {d:?} ({:.0} source records/s) — create {} update {} link {} noop {} skip {}",
                companies * 2,
                source.len() as f64 / d.as_secs_f64(),
                p.summary.create,
                p.summary.update,
                p.summary.link,
                p.summary.noop,
                p.summary.skip,
            );
        }
    }
}

/// 4. Incremental planning (the automatic sync's mode) of the same worlds, after the pull's
///    updates were applied and their last-synced values recorded: every linked field is
///    compared with both sides' remembered values (the steady state: nothing changed).
fn incremental(program: &tandem_core::compile::Program, full: bool) {
    for &companies in sizes(full) {
        let mut w = world(companies, 7);
        let bulk = plan(
            program,
            &PlanInput::bulk(Direction::Pull, &w.hubspot, &w.accelo, &w.links),
        );
        let mut links = w.links.clone();
        let by_hubspot: BTreeMap<(Object, String), usize> = links
            .iter()
            .enumerate()
            .map(|(i, l)| ((l.object, l.hubspot_id.clone()), i))
            .collect();
        let by_accelo: BTreeMap<(Object, String), usize> = w
            .accelo
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.object, r.id.clone()), i))
            .collect();
        for a in &bulk.actions {
            if !matches!(
                a.op,
                tandem_core::plan::Op::Update | tandem_core::plan::Op::Noop
            ) {
                continue;
            }
            let (Some(m), Some(id), Some(tid)) = (&a.last_synced, &a.source.id, &a.target.id)
            else {
                continue;
            };
            if let Some(i) = by_hubspot.get(&(a.object, id.clone())) {
                links[*i].last_synced = m.clone();
            }
            if let Some(i) = by_accelo.get(&(a.object, tid.clone())) {
                for c in &a.changes {
                    let path: Vec<&str> = if c.field == "status" {
                        vec!["status", "title"]
                    } else {
                        c.field.split('.').collect()
                    };
                    let mut cur = &mut w.accelo[*i].doc;
                    for p in &path[..path.len() - 1] {
                        cur = cur
                            .entry(p.to_string())
                            .or_insert_with(|| json!({}))
                            .as_object_mut()
                            .unwrap();
                    }
                    let last = path[path.len() - 1].to_string();
                    match &c.to {
                        Some(v) => cur.insert(last, Value::String(v.clone())),
                        None => cur.remove(&last),
                    };
                }
            }
        }
        let mut input = PlanInput::bulk(Direction::Pull, &w.hubspot, &w.accelo, &links);
        input.mode = tandem_core::plan::Mode::Incremental;
        let reps = if companies >= 50_000 || !full { 1 } else { 3 };
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..reps {
            let t = Instant::now();
            last = Some(plan(program, &input));
            times.push(t.elapsed());
        }
        let p = last.unwrap();
        let d = median(times);
        println!(
            "plan pull incremental {companies} companies + {} contacts per side: {d:?} \
             ({:.0} source records/s) — create {} update {} link {} noop {} skip {}",
            companies * 2,
            w.hubspot.len() as f64 / d.as_secs_f64(),
            p.summary.create,
            p.summary.update,
            p.summary.link,
            p.summary.noop,
            p.summary.skip,
        );
    }
}

/// A string of 256 KiB built by doubling, then `rounds` full-length replacements.
fn expensive_loop(rounds: usize) -> String {
    format!(
        "let s = \"x\"; while s.len() < 262144 {{ s += s; }} \
         let n = 0; while n < {rounds} {{ let t = s; t.replace(\"x\", \"y\"); n += 1; }} n"
    )
}

/// 5. Runaway rules: how long each takes to fail (the time to the error, in one evaluation),
///    and that a normal rule evaluates right after; then `tandem check` of a rule file whose
///    criterion is the expensive loop (the probe runs it once).
fn runaway(full: bool) {
    let cases: Vec<(&str, String)> = vec![
        ("endless loop `loop {}`", "loop { }".into()),
        (
            "growing string `s += s`",
            "let s = \"xxxxxxxx\"; loop { s += s; }".into(),
        ),
        (
            "multiplying replace `t.replace(\"x\", s)` on 256 KiB",
            "let s = \"x\"; while s.len() < 262144 { s += s; } let t = s; t.replace(\"x\", s); t"
                .into(),
        ),
        ("endless recursion", "fn f(x) { f(x) } f(1)".into()),
        (
            "5,000 rounds of the expensive loop (under the operation limit)",
            expensive_loop(5_000),
        ),
        (
            "7,000 rounds of the expensive loop (over the operation limit)",
            expensive_loop(7_000),
        ),
    ];
    let record = RecordValue::new(&Record::new(System::HubSpot, Object::Company, "1"));
    let normal = Expr::compile("lower(\"OK\")", Vars::Record).expect("compiles");
    let runs = if full { 5 } else { 1 };
    for (name, src) in &cases {
        let e = Expr::compile(src, Vars::Record).expect("compiles");
        let mut times = Vec::new();
        let mut message = String::new();
        for _ in 0..runs {
            let t = Instant::now();
            let result = e.eval(&record, None);
            times.push(t.elapsed());
            message = match result {
                Err(err) => err.message,
                Ok(v) => format!("NOT STOPPED: finished with {v}"),
            };
            let ok = normal
                .eval_text(&record, None)
                .expect("the engine still works");
            assert_eq!(ok.as_deref(), Some("ok"));
        }
        let max = times.iter().max().copied().unwrap_or_default();
        println!(
            "runaway {name}: fails after median {:?} (max {max:?}, {runs} runs): {message}",
            median(times)
        );
    }
    let config = Source {
        name: "tandem.yaml".into(),
        text: include_str!("../../rules/tandem.yaml").into(),
    };
    let rules = Source {
        name: "companies.yaml".into(),
        text: format!(
            "object: company\ncriteria:\n  pull: '{}; true'\nfields:\n  - hubspot: name\n    accelo: $.name\n",
            expensive_loop(5_000)
        )
        .into(),
    };
    let times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let c = check_sources(Some(&config), std::slice::from_ref(&rules), "rules");
            assert!(!c.report.has_errors(), "{}", c.report.render_human(false));
            t.elapsed()
        })
        .collect();
    println!(
        "check of a rule file whose criterion is the expensive loop: median {:?} ({runs} runs)",
        median(times)
    );
}
