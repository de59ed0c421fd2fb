//! The command line: argument parsing (clap), one file per command, typed exit codes.
//!
//! Every command is a library function taking its typed `Args` and returning an [`Exit`], so
//! tests can call commands directly; `main.rs` only calls [`main`]. The command-line forms are a
//! public contract (DESIGN.md §6): extend them, never rename.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tandem_engine::exec::worker::FailKind;
use tandem_engine::runtime::{Env, Options, RuntimeError};

pub mod apply;
pub mod check;
pub mod demo;
pub mod log;
pub mod plan;
pub mod pull;
pub mod push;
pub mod sandbox;
pub mod schema;
pub mod serve;
pub mod test;
pub mod worker;

/// How a command ended (DESIGN.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Ok,
    /// 1: the run finished but some records failed (or a check such as `schema --check` failed).
    Failures,
    /// 2: invalid input — arguments, configuration or rules.
    Invalid,
    /// 3: a remote system could not be reached or refused the credentials.
    Unreachable,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failures => 1,
            Exit::Invalid => 2,
            Exit::Unreachable => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

impl From<FailKind> for Exit {
    fn from(k: FailKind) -> Exit {
        match k {
            FailKind::Invalid => Exit::Invalid,
            FailKind::Unreachable => Exit::Unreachable,
            FailKind::Guardrail | FailKind::Other => Exit::Failures,
        }
    }
}

/// How a runtime failure ends a command.
pub trait Reported {
    /// The exit code it ends a command with.
    fn exit(&self) -> Exit;
    /// Prints it to stderr (colours on a terminal) and returns its exit code.
    fn report(&self) -> Exit;
}

impl Reported for RuntimeError {
    fn exit(&self) -> Exit {
        self.kind().into()
    }

    fn report(&self) -> Exit {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        eprint!("{}", self.render(color));
        self.exit()
    }
}

/// The `--config` / `--rules` flags every command that loads the rules shares
/// (`#[command(flatten)]` it into a command's `Args`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// The config file [default: $TANDEM_CONFIG, else rules/tandem.yaml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory of rule files [default: the config file's directory].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

impl ConfigArgs {
    /// Runtime options from these flags, reading the process environment.
    pub fn options(&self) -> Options {
        Options {
            config: self.config.clone(),
            rules: self.rules.clone(),
            env: Env::Process,
            retry: None,
        }
    }
}

/// Runs an async command body on a fresh multi-threaded tokio runtime (two workers) and returns
/// its exit code; a runtime that cannot start is exit 1.
pub fn block_on<F>(future: F) -> Exit
where
    F: std::future::Future<Output = Exit>,
{
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(future),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            Exit::Failures
        }
    }
}

/// Tandem keeps the companies and contacts of HubSpot and Accelo in step.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands (DESIGN.md §6).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the sandbox with seeded data and walk through pull, push and push-one; exits 0.
    Demo(demo::Args),
    /// Run the HubSpot and Accelo simulators with seeded data; prints one JSON line with their
    /// URLs and credentials, then serves until SIGINT/SIGTERM.
    Sandbox(sandbox::Args),
    /// Show what a pull or push would do, without writing anything (a dry run); `--out` saves
    /// the plan for `tandem apply`.
    Plan(plan::Args),
    /// Import every qualifying HubSpot company and contact into Accelo (HubSpot's values win);
    /// runs as a job, resumable, progress in the sync log.
    Pull(pull::Args),
    /// Export every qualifying Accelo company and contact to HubSpot (Accelo's values win) and
    /// email the summary; or `push company ID` / `push contact ID` for one record.
    Push(push::Args),
    /// Execute a plan saved with `tandem plan … --out FILE`, refused when its data changed.
    Apply(apply::Args),
    /// Show the sync log: runs with counts and duration, and per record what happened and why,
    /// field by field.
    Log(log::Args),
    /// Validate the config and rule files; exit 2 with located diagnostics.
    Check(check::Args),
    /// Write the JSON Schemas of tandem.yaml and the rule files into schemas/ (or --check them).
    Schema(schema::Args),
    /// Run the rule files' own test cases.
    Test(test::Args),
    /// The automatic sync: webhook receivers, a worker, the polling safety net and hot-reloaded
    /// rules in one process, until SIGTERM / SIGINT.
    Serve(serve::Args),
    /// A worker alone (no HTTP, no poller), sharing the store's job queue with other processes.
    Worker(worker::Args),
}

/// Parses the process arguments, sets up logging and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Invalid.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    init_tracing();
    run(cli).into()
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Exit {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Pull(args) => pull::run(args),
        Command::Push(args) => push::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Log(args) => log::run(args),
        Command::Check(args) => check::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Test(args) => test::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Worker(args) => worker::run(args),
    }
}

/// Logs go to stderr, filtered by `TANDEM_LOG` (default `warn`), so stdout stays for output that
/// scripts read.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Waits for SIGINT or SIGTERM (Ctrl-C elsewhere).
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
