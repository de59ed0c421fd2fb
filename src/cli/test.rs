//! `tandem test [--config FILE] [--rules DIR]`: runs every rule file's test cases (B19) through
//! the real check → compile → plan path and prints pass/fail per case, with a diff of expected
//! and actual actions for failures. Exit 0 when all pass, 1 when one fails, 2 when the rules
//! are invalid.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;

use similar::TextDiff;

use super::common::Exit;
use tandem_core::compile::{Program, load};
use tandem_core::model::{Object, System};
use tandem_core::plan::{Action, PlanInput, plan};
use tandem_core::rules::Paths;
use tandem_core::rules::set::{Expected, TestCase};

/// Arguments of `tandem test`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// The config file [default: $TANDEM_CONFIG, else rules/tandem.yaml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory of rule files [default: the config file's directory].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// The store: accepted like on every command, not used by this one (it reads no store).
    #[arg(long, value_name = "URL", hide = true)]
    pub store: Option<String>,
}

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
        mode: tandem_core::plan::Mode::Bulk,
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

/// Everything `tandem test` prints and its exit code (callable from tests).
#[derive(Debug, Clone)]
pub struct Output {
    /// The per-case report (stdout).
    pub stdout: String,
    /// Diagnostics when the rules are invalid (stderr).
    pub stderr: String,
    /// The exit code.
    pub exit: Exit,
    /// Every case's outcome.
    pub outcomes: Vec<CaseOutcome>,
}

/// Runs every test case under `args`' paths.
pub fn execute(args: &Args, color: bool) -> Output {
    let paths = Paths::resolve(args.config.clone(), args.rules.clone());
    let loaded = match load(&paths) {
        Ok(l) => l,
        Err(report) => {
            return Output {
                stdout: String::new(),
                stderr: report.render_human(color),
                exit: Exit::Invalid,
                outcomes: Vec::new(),
            };
        }
    };
    let program = &loaded.program;
    let mut cases: Vec<&TestCase> = program.tests().collect();
    cases.sort_by(|a, b| a.file.cmp(&b.file));
    let outcomes: Vec<CaseOutcome> = cases.iter().map(|c| run_case(program, c)).collect();
    let mut out = String::new();
    let mut file = None;
    for o in &outcomes {
        if file != Some(&o.file) {
            let _ = writeln!(out, "{}", o.file);
            file = Some(&o.file);
        }
        if o.passed {
            let _ = writeln!(out, "  ok    {}", o.name);
        } else {
            let _ = writeln!(out, "  FAIL  {}", o.name);
            for line in o.diff.as_deref().unwrap_or("").lines() {
                let _ = writeln!(out, "        {line}");
            }
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    let passed = outcomes.len() - failed;
    let _ = writeln!(
        out,
        "\n{passed} passed, {failed} failed{}",
        if outcomes.is_empty() {
            " (the rule files have no `tests`)"
        } else {
            ""
        }
    );
    Output {
        stdout: out,
        stderr: String::new(),
        exit: if failed > 0 { Exit::Failures } else { Exit::Ok },
        outcomes,
    }
}

/// Runs `tandem test`.
pub fn run(args: Args) -> Exit {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let out = execute(&args, color);
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    out.exit
}
