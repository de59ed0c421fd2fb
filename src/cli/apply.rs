//! `tandem apply FILE [--force]` (+ `--config`, `--rules`): executes a plan saved by
//! `tandem plan … --out FILE` exactly as it was reviewed (B18) — refused with exit 2 and the
//! list of what changed when the data it was made from is no longer the same (its
//! fingerprint). Runs as a job like `tandem pull` (see [`super::pull`]); the saved plan travels
//! in the job, so any worker can run it. A resumed apply (interrupted half-way) re-plans its
//! scope: its own first writes changed the data.

use std::path::PathBuf;

use serde_json::json;

use super::common::ConfigArgs;
use super::common::Exit;
use super::pull::{Output, print, run_job};
use tandem_engine::exec::progress::ProgressMode;
use tandem_engine::runtime::Options;
use tandem_engine::snapshot::read_saved_plan;
use tandem_engine::store::JobKind;

/// Arguments of `tandem apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The saved plan (`tandem plan pull|push … --out FILE`).
    pub file: PathBuf,
    /// Run even when a guardrail (`sync.guardrails` in tandem.yaml) would stop the run.
    #[arg(long)]
    pub force: bool,
    /// Config and rules.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs `tandem apply` with `options` (tests pass their own environment).
pub async fn apply(args: &Args, options: Options, progress: ProgressMode) -> Output {
    let saved = match read_saved_plan(&args.file) {
        Ok(s) => s,
        Err(e) => {
            return Output {
                stdout: String::new(),
                stderr: format!("error: {e}\n"),
                exit: Exit::Invalid,
                job: None,
            };
        }
    };
    let plan = match serde_json::to_value(&saved) {
        Ok(v) => v,
        Err(e) => {
            return Output {
                stdout: String::new(),
                stderr: format!("error: cannot queue the saved plan: {e}\n"),
                exit: Exit::Invalid,
                job: None,
            };
        }
    };
    let mut payload = json!({"plan": plan, "file": args.file.display().to_string()});
    if args.force {
        payload["force"] = json!(true);
    }
    run_job(options, JobKind::Apply, payload, progress).await
}

/// Runs `tandem apply`.
pub fn run(args: Args) -> Exit {
    let options = args.config.options();
    super::common::block_on(async move { print(apply(&args, options, ProgressMode::Auto).await) })
}
