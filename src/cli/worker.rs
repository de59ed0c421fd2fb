//! `tandem worker`: a worker alone — no HTTP server, no poller — claiming jobs from the shared
//! store's queue, so that several processes (on PostgreSQL, several machines) share the work.
//! Rules are hot-reloaded as in `tandem serve`. SIGTERM / SIGINT: the running job is finished or
//! given back to the queue, then the process exits 0.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::common::ConfigArgs;
use super::common::Exit;
use super::common::wait_for_signal;
use super::serve::{common, worker};
use tandem_engine::runtime::Env;

/// Arguments of `tandem worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The config and rules.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs `tandem worker` until SIGTERM / SIGINT.
pub fn run(args: Args) -> Exit {
    super::common::block_on(async move {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            on_signal.cancel();
        });
        work(args, Env::Process, shutdown).await
    })
}

/// `tandem worker` with an explicit environment, stopping when `shutdown` is cancelled.
pub async fn work(args: Args, env: Env, shutdown: CancellationToken) -> Exit {
    let common = match common(&args.config, env).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let worker = worker(&common);
    tracing::info!(target: "tandem::worker", owner = worker.owner(), kinds = ?worker.kinds(), "worker started");
    let reload_log = tokio::spawn({
        let reloader = Arc::clone(&common.reloader);
        let store = Arc::clone(&common.store);
        let stop = shutdown.clone();
        async move { tandem_engine::server::serve::announce_reloads(reloader, store, stop).await }
    });
    let result = worker.run(shutdown.clone()).await;
    shutdown.cancel();
    let _ = reload_log.await;
    common.store.close().await;
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            let exit = if e.is_unreachable() {
                Exit::Unreachable
            } else {
                Exit::Failures
            };
            eprintln!("{:?}", miette::Report::new(e));
            exit
        }
    }
}
