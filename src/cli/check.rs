//! `tandem check [--config FILE] [--rules DIR] [--format human|json]`: loads, checks and compiles
//! the config and every rule file and reports every problem. Exit 0 when clean (warnings
//! allowed), 2 on any error.
//!
//! Human output (miette, with file names and carets) goes to stderr; `--format json` prints
//! `{"diagnostics":[{"file","line","column","severity","code","message"}]}` on stdout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::common::Exit;
use tandem_core::rules::{Paths, Report, check};

/// Output format of diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Rendered for people: snippets with carets.
    #[default]
    Human,
    /// One JSON document for tools.
    Json,
}

/// Arguments of `tandem check`.
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
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// What `tandem check` prints, and how it exits (callable from tests).
#[derive(Debug, Clone)]
pub struct Output {
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
    /// The exit code.
    pub exit: Exit,
}

/// Runs the check and renders its result without printing (`color` = ANSI colours in the human
/// form).
pub fn render(args: &Args, color: bool) -> Output {
    let paths = Paths::resolve(args.config.clone(), args.rules.clone());
    let checked = check(&paths);
    let exit = if checked.report.has_errors() {
        Exit::Invalid
    } else {
        Exit::Ok
    };
    let (stdout, stderr) = match args.format {
        Format::Json => (json(&checked.report), String::new()),
        Format::Human => (String::new(), checked.report.render_human(color)),
    };
    Output {
        stdout,
        stderr,
        exit,
    }
}

fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
    s.push('\n');
    s
}

/// Runs `tandem check`.
pub fn run(args: Args) -> Exit {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let out = render(&args, color);
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    out.exit
}
