//! `tandem push [--force]`, `tandem push company ID`, `tandem push contact ID` (+ `--config`,
//! `--rules`): the bulk export of every qualifying Accelo company and contact to HubSpot,
//! Accelo's values winning, with the completion email (B2, B3, B10); one Accelo company and all
//! its contacts (B8); one Accelo contact, bypassing the sync criteria (B9). Runs as a job like
//! `tandem pull` (see [`super::pull`] for the queue, resuming, output and exit codes). Only the
//! bulk push sends the email. The id of `push company|contact` is checked first (a number, and
//! an Accelo record that exists): a bad one is exit 2 and queues no job.

use clap::Subcommand;

use super::common::ConfigArgs;
use super::common::{Exit, Reported};
use super::pull::{print, run_job, run_job_with};
use tandem_core::model::Object;
use tandem_engine::exec::jobs;
use tandem_engine::exec::progress::ProgressMode;
use tandem_engine::runtime::Runtime;
use tandem_engine::store::JobKind;

/// Arguments of `tandem push`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Push one company or one contact instead of everything.
    #[command(subcommand)]
    pub what: Option<What>,
    /// Run even when a guardrail (`sync.guardrails` in tandem.yaml) would stop the run.
    #[arg(long)]
    pub force: bool,
    /// Config and rules.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// What to push when not everything.
#[derive(Debug, Clone, Subcommand)]
pub enum What {
    /// One Accelo company and all its contacts.
    #[command(after_help = crate::cli::PUSH_ONE_ENV_HELP)]
    Company(One),
    /// One Accelo contact, bypassing the sync criteria.
    #[command(after_help = crate::cli::PUSH_ONE_ENV_HELP)]
    Contact(One),
}

/// Arguments of `tandem push company|contact`.
#[derive(Debug, Clone, clap::Args)]
pub struct One {
    /// The Accelo id.
    pub id: String,
    /// Run even when a guardrail would stop the run.
    #[arg(long)]
    pub force: bool,
    /// Config and rules.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The job kind, the record id and the flags the arguments ask for.
pub fn resolve(args: &Args) -> Result<(JobKind, Option<String>, bool, ConfigArgs), String> {
    let merge = |one: &One| ConfigArgs {
        config: one.config.config.clone().or(args.config.config.clone()),
        rules: one.config.rules.clone().or(args.config.rules.clone()),
        store: one.config.store.clone().or(args.config.store.clone()),
    };
    match &args.what {
        None => Ok((JobKind::Push, None, args.force, args.config.clone())),
        Some(What::Company(one) | What::Contact(one)) => {
            let id = one.id.trim();
            if id.is_empty() {
                return Err("the Accelo id is empty".into());
            }
            let kind = match args.what {
                Some(What::Company(_)) => JobKind::PushCompany,
                _ => JobKind::PushContact,
            };
            Ok((
                kind,
                Some(id.to_string()),
                args.force || one.force,
                merge(one),
            ))
        }
    }
}

/// Runs `tandem push`.
pub fn run(args: Args) -> Exit {
    let (kind, id, force, config) = match resolve(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let options = config.options();
    let payload = jobs::payload(kind, id.as_deref(), force);
    let Some(id) = id else {
        return super::common::block_on(async move {
            print(run_job(options, kind, payload, ProgressMode::Auto).await)
        });
    };
    let object = if kind == JobKind::PushCompany {
        Object::Company
    } else {
        Object::Contact
    };
    // An id that cannot be an Accelo id is refused before anything is read or queued.
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        eprintln!(
            "error: `{id}` is not an Accelo {object} id (Accelo ids are numbers, as in \
             `tandem push {object} 12`)"
        );
        return Exit::Invalid;
    }
    super::common::block_on(async move {
        let rt = match Runtime::load(options) {
            Ok(rt) => rt,
            Err(e) => return e.report(),
        };
        // The record must exist before a job is queued for it: a bad id leaves no job behind.
        match rt
            .systems
            .accelo
            .get(object, std::slice::from_ref(&id), &[])
            .await
        {
            Ok(found) if found.iter().any(|r| r.id == id) => {}
            Ok(_) => {
                eprintln!(
                    "error: there is no Accelo {object} `{id}`; ids are Accelo's (see them in \
                     Accelo, or with `tandem plan push --object {object}`)"
                );
                return Exit::Invalid;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return if e.is_unreachable() {
                    Exit::Unreachable
                } else {
                    Exit::Failures
                };
            }
        }
        print(run_job_with(&rt, kind, payload, ProgressMode::Auto).await)
    })
}
