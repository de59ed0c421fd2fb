//! What every command shares: how a command ends ([`Exit`], the exit codes of the command-line
//! contract, and [`Reported`] for runtime failures), the `--config`/`--rules`/`--store` options
//! ([`ConfigArgs`]), running an async command body ([`block_on`]) and waiting for a stop signal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use tandem_engine::exec::worker::FailKind;
use tandem_engine::runtime::{Env, Options, RuntimeError};

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
    /// 130: stopped by Ctrl-C or SIGTERM; the job is saved and the same command continues it.
    Interrupted,
    /// 4: the job was given up: every attempt was interrupted (killed, stopped, lease lost),
    /// up to the limit.
    GaveUp,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failures => 1,
            Exit::Invalid => 2,
            Exit::Unreachable => 3,
            Exit::Interrupted => 130,
            Exit::GaveUp => 4,
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
            FailKind::GaveUp => Exit::GaveUp,
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

/// The `--config` / `--rules` / `--store` options every command that loads the rules shares
/// (`#[command(flatten)]` it into a command's `Args`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// The config file [default: $TANDEM_CONFIG, else rules/tandem.yaml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory of rule files [default: the config file's directory].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// The store: a SQLite file or a `postgres://` URL [default: $TANDEM_STORE, else
    /// `store.url` in the config, else .tandem/tandem.db].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

impl ConfigArgs {
    /// Runtime options from these flags, reading the process environment.
    pub fn options(&self) -> Options {
        Options {
            config: self.config.clone(),
            rules: self.rules.clone(),
            env: Env::Process,
            retry: None,
            store: self.store.clone(),
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

/// Waits for SIGINT or SIGTERM (Ctrl-C elsewhere).
pub(crate) async fn wait_for_signal() {
    tandem_engine::runtime::stop_signal().await;
}
