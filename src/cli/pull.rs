//! `tandem pull [--force]` (+ `--config`, `--rules`): the bulk import of every qualifying HubSpot
//! company and contact into Accelo, HubSpot's values winning (B1, B3, B10). Also the shared
//! driver of every command that runs a job here ([`run_job`]: `pull`, `push`, `push company`,
//! `push contact`, `apply`, and the demo).
//!
//! The run goes through the job queue: the job is queued (or an unfinished one of the same kind
//! and parameters is taken over: a run interrupted by a crash, a kill or Ctrl-C continues where it
//! stopped), claimed by this process and run, so that `tandem log --follow` elsewhere sees it.
//! When another process is running it, this one follows its progress instead.
//!
//! Output: progress on stderr (a bar on a terminal, plain lines otherwise), then one summary
//! line on stdout. Exit codes: 0 every record went through; 1 some records failed, a guardrail
//! stopped the run (nothing written; `--force` to go ahead) or the run was interrupted; 2
//! invalid config, rules, arguments or a stale saved plan; 3 a system or the store could not be
//! reached or refused the credentials.

use std::io::Write;
use std::sync::Arc;

use serde_json::Value;

use super::common::Exit;
use super::common::{ConfigArgs, Reported};
use tandem_core::rules::config::TlsMode;
use tandem_engine::exec::ExecOptions;
use tandem_engine::exec::jobs::{self, Ran, fixed};
use tandem_engine::exec::progress::ProgressMode;
use tandem_engine::exec::worker::FailKind;
use tandem_engine::notify::{SmtpCredentials, SmtpSettings, SmtpTls};
use tandem_engine::runtime::{Options, Runtime, RuntimeError};
use tandem_engine::store::{JobKind, JobState, redact};

/// Arguments of `tandem pull`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Run even when a guardrail (`sync.guardrails` in tandem.yaml) would stop the run.
    #[arg(long)]
    pub force: bool,
    /// Config and rules.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs `tandem pull`.
pub fn run(args: Args) -> Exit {
    let options = args.config.options();
    let payload = jobs::payload(JobKind::Pull, None, args.force);
    super::common::block_on(async move {
        print(run_job(options, JobKind::Pull, payload, ProgressMode::Auto).await)
    })
}

/// What a job command printed and how it exits.
#[derive(Debug, Clone)]
pub struct Output {
    /// For stdout: the summary line.
    pub stdout: String,
    /// For stderr: where the log is, errors.
    pub stderr: String,
    /// The exit code.
    pub exit: Exit,
    /// The job, when one ran.
    pub job: Option<tandem_engine::store::JobId>,
}

impl Output {
    fn error(e: &RuntimeError) -> Output {
        Output {
            stdout: String::new(),
            stderr: e.render(false),
            exit: e.exit(),
            job: None,
        }
    }
}

/// Prints `out` and returns its exit code.
pub fn print(out: Output) -> Exit {
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    out.exit
}

/// The executor's settings from the config.
pub fn exec_options(rt: &Runtime) -> ExecOptions {
    ExecOptions {
        guardrails: rt.config.sync.guardrails.clone(),
        accelo_concurrency: usize::try_from(rt.config.sync.accelo_concurrency.max(1)).unwrap_or(1),
        ..ExecOptions::default()
    }
}

/// The push-completion email settings from the config (`None`: not configured); the SMTP
/// password is registered as a secret.
pub fn smtp_settings(rt: &Runtime) -> Result<Option<SmtpSettings>, RuntimeError> {
    let Some(e) = &rt.config.notify.email else {
        return Ok(None);
    };
    let tls = match e.tls {
        TlsMode::None => SmtpTls::None,
        TlsMode::Starttls => SmtpTls::Starttls,
        TlsMode::Tls => SmtpTls::Tls,
    };
    let mut s = SmtpSettings::new(e.server.clone(), tls, e.from.clone(), e.to.clone());
    if let Some((user, password)) = rt
        .config
        .smtp_credentials(|k| rt.env(k))
        .map_err(RuntimeError::Secret)?
    {
        redact::register_secret(password.expose());
        s.credentials = Some(SmtpCredentials {
            username: user.expose().to_string(),
            password: password.expose().to_string(),
        });
    }
    Ok(Some(s))
}

/// Loads the runtime from `options`, then queues and runs a job of `kind` with `payload` here
/// (see the module docs).
pub async fn run_job(
    options: Options,
    kind: JobKind,
    payload: Value,
    progress: ProgressMode,
) -> Output {
    let rt = match Runtime::load(options) {
        Ok(rt) => rt,
        Err(e) => return Output::error(&e),
    };
    run_job_with(&rt, kind, payload, progress).await
}

/// [`run_job`] with a loaded runtime.
pub async fn run_job_with(
    rt: &Runtime,
    kind: JobKind,
    payload: Value,
    progress: ProgressMode,
) -> Output {
    let email = if kind == JobKind::Push {
        match smtp_settings(rt) {
            Ok(e) => e,
            Err(e) => return Output::error(&e),
        }
    } else {
        None
    };
    let store = match rt.store().await {
        Ok(s) => s,
        Err(e) => return Output::error(&e),
    };
    let worker = jobs::worker(
        rt.systems.clone(),
        fixed(rt.program.clone()),
        store.clone(),
        exec_options(rt),
        email,
    );
    let progress: Arc<dyn tandem_engine::exec::Progress> = Arc::from(progress.build());
    let ran = jobs::run_here(&worker, kind, payload, progress).await;
    let location = store.location().to_string();
    match ran {
        Ok(ran) => outcome(kind, &ran, &location),
        Err(e) => {
            let exit = Exit::from(e.kind());
            Output {
                stdout: String::new(),
                stderr: format!("error: {e}\n"),
                exit,
                job: None,
            }
        }
    }
}

/// The summary and exit code of a finished job.
fn outcome(kind: JobKind, ran: &Ran, store: &str) -> Output {
    let c = &ran.counts;
    let took = tandem_engine::notify::human_duration(ran.elapsed);
    let counts = c.text();
    let job = ran.job;
    let mut stderr = String::new();
    let (stdout, exit) = match (ran.state, &ran.error) {
        (JobState::Succeeded, _) => {
            let exit = if c.failed > 0 || ran.problems > 0 {
                stderr.push_str(&format!(
                    "some records failed; see why with `tandem log --job {job}`\n"
                ));
                Exit::Failures
            } else {
                Exit::Ok
            };
            (
                format!("{kind} job {job} finished in {took}: {counts}\n"),
                exit,
            )
        }
        (JobState::Failed, error) => {
            let (fail, text) = error
                .clone()
                .unwrap_or((FailKind::Other, "the job failed".to_string()));
            stderr.push_str(&format!("error: {text}\n"));
            let exit = Exit::from(fail);
            (
                format!("{kind} job {job} stopped after {took}: {counts}\n"),
                exit,
            )
        }
        (JobState::Queued, _) => {
            stderr.push_str(&format!(
                "interrupted: run the same command again to continue job {job}\n"
            ));
            (
                format!("{kind} job {job} interrupted after {took}: {counts}\n"),
                Exit::Interrupted,
            )
        }
        (state, _) => {
            stderr.push_str(&format!(
                "job {job} is {state}: another worker took it over\n"
            ));
            (String::new(), Exit::Failures)
        }
    };
    stderr.push_str(&format!(
        "sync log: tandem log --job {job} --store {store}\n"
    ));
    Output {
        stdout,
        stderr,
        exit,
        job: Some(job),
    }
}
