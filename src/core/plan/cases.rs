//! Running the rule files' own test cases: each case's records and links go through the real
//! planner, and the actions it plans are compared with the case's expectations. `tandem test`
//! and the console's **Run tests** both call [`run_case`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use similar::TextDiff;

use super::{Action, PlanInput, plan};
use crate::compile::Program;
use crate::model::{Object, System};
use crate::rules::set::{Expected, TestCase};

/// The result of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    /// The rule file.
    pub file: String,
    /// The case's name.
    pub name: String,
    /// True when the plan matched the expectations.
    pub passed: bool,
    /// Unified diff (expected → actual) when it failed.
    pub diff: Option<String>,
}

/// Runs one case through the planner and compares.
pub fn run_case(program: &Program, case: &TestCase) -> CaseOutcome {
    let (source, target) = match case.direction.source() {
        System::HubSpot => (&case.hubspot, &case.accelo),
        System::Accelo => (&case.accelo, &case.hubspot),
    };
    let input = PlanInput {
        direction: case.direction,
        initiator: case.initiator,
        mode: super::Mode::Bulk,
        source,
        target,
        links: &case.links,
        bypass_criteria: case.bypass_criteria,
    };
    let plan = plan(program, &input);
    let (expected, actual) = compare(&case.expect, &plan.actions, case);
    let passed = expected == actual;
    let diff = (!passed).then(|| {
        TextDiff::from_lines(&expected, &actual)
            .unified_diff()
            .context_radius(3)
            .header("expected", "actual")
            .to_string()
    });
    CaseOutcome {
        file: case.file.clone(),
        name: case.name.clone(),
        passed,
        diff,
    }
}

fn rank(o: Object) -> u8 {
    match o {
        Object::Company => 0,
        Object::Contact => 1,
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(s) => serde_json::Value::String(s.clone()).to_string(),
        None => "(cleared)".into(),
    }
}

/// An expectation and the actual action for one source record.
type Pair<'a> = (Option<&'a Expected>, Option<&'a Action>);

/// Renders expectations and actual actions in one canonical text form each; the actual form
/// shows only what the expectation checks, so equal texts mean a pass.
fn compare(expect: &[Expected], actions: &[Action], case: &TestCase) -> (String, String) {
    let source_sys = case.direction.source();
    let target_sys = case.direction.target();
    let mut keys: BTreeMap<(u8, String, String), Pair<'_>> = BTreeMap::new();
    let sort_id = |id: &str| {
        // A sortable form of the id that keeps numeric order.
        if id.bytes().all(|c| c.is_ascii_digit()) {
            format!("0{:0>40}", id.trim_start_matches('0'))
        } else {
            format!("1{id}")
        }
    };
    for e in expect {
        keys.entry((rank(e.object), sort_id(&e.source), e.source.clone()))
            .or_default()
            .0 = Some(e);
    }
    for a in actions {
        let id = a.source.id.clone().unwrap_or_default();
        keys.entry((rank(a.object), sort_id(&id), id))
            .or_default()
            .1 = Some(a);
    }
    let mut exp = String::new();
    let mut act = String::new();
    for ((_, _, id), (e, a)) in &keys {
        if let Some(e) = e {
            let _ = writeln!(exp, "{} {source_sys} {id}: {}", e.object, e.op.as_str());
            if let Some(t) = &e.target {
                let _ = writeln!(exp, "  target {target_sys} {t}");
            }
            if let Some(changes) = &e.changes {
                write_changes(&mut exp, changes);
            }
            if let Some(r) = &e.reason {
                let _ = writeln!(exp, "  reason contains {}", show(&Some(r.clone())));
            }
        }
        if let Some(a) = a {
            let _ = writeln!(act, "{} {source_sys} {id}: {}", a.object, a.op.as_str());
            // Unexpected actions, and actions whose operation differs, are shown in full so
            // the diff says why.
            let full = e.is_none_or(|e| e.op != a.op);
            if (full || e.is_some_and(|e| e.target.is_some()))
                && let Some(t) = &a.target.id
            {
                let _ = writeln!(act, "  target {target_sys} {t}");
            }
            if full || e.is_some_and(|e| e.changes.is_some()) {
                let changes: BTreeMap<String, Option<String>> = a
                    .changes
                    .iter()
                    .map(|c| (c.field.clone(), c.to.clone()))
                    .collect();
                if full && changes.is_empty() {
                    // Nothing to show.
                } else {
                    write_changes(&mut act, &changes);
                }
            }
            match e.and_then(|e| e.reason.as_ref()) {
                Some(want) if !full && a.reason.contains(want.as_str()) => {
                    let _ = writeln!(act, "  reason contains {}", show(&Some(want.clone())));
                }
                Some(_) => {
                    let _ = writeln!(act, "  reason is {}", show(&Some(a.reason.clone())));
                }
                _ if full => {
                    let _ = writeln!(act, "  reason is {}", show(&Some(a.reason.clone())));
                }
                None => {}
            }
        }
    }
    (exp, act)
}

fn write_changes(out: &mut String, changes: &BTreeMap<String, Option<String>>) {
    if changes.is_empty() {
        let _ = writeln!(out, "  no changes");
    }
    for (field, to) in changes {
        let _ = writeln!(out, "  {field} = {}", show(to));
    }
}
