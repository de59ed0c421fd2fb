//! `tandem test [--config FILE] [--rules DIR]`: runs every rule file's test cases (B19) through
//! the real check → compile → plan path and prints pass/fail per case, with a diff of expected
//! and actual actions for failures. Exit 0 when all pass, 1 when one fails, 2 when the rules
//! are invalid.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;

use super::common::Exit;
use tandem_core::compile::load;
pub use tandem_core::plan::cases::{CaseOutcome, run_case};
use tandem_core::rules::Paths;
use tandem_core::rules::set::TestCase;

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
