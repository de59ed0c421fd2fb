//! `tandem serve [--listen ADDR] [--poll-interval SECONDS]`: the automatic sync in one process —
//! the webhook receivers (`/webhooks/hubspot`, `/webhooks/accelo`), `/healthz`, `/metrics`, a
//! worker running every kind of job (`record` jobs among them), the poller, and hot-reloaded
//! rules. SIGTERM / SIGINT: stop accepting, finish or release the running job, exit 0.
//!
//! Prints one line to stdout once listening: `listening on http://ADDR` (scripts and tests read
//! the port from it when `--listen` ends in `:0`).
//!
//! Secrets: the HubSpot webhook secret from `TANDEM_HUBSPOT_WEBHOOK_SECRET`, else the variable
//! named by `server.webhook_secret_env`; the Accelo one from `TANDEM_ACCELO_WEBHOOK_SECRET`, else
//! `server.accelo_webhook_secret_env`. Neither is ever printed or logged.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

use super::common::Exit;
use super::common::{ConfigArgs, Reported};
use tandem_core::rules::config::{Secret, SecretError};
use tandem_engine::exec::{Executor, Worker};
use tandem_engine::reload::Reloader;
use tandem_engine::runtime::{Env, Options, Runtime, RuntimeError};
use tandem_engine::server::poll::{PollOptions, Poller};
use tandem_engine::server::record::RecordHandler;
use tandem_engine::server::serve::Service;
use tandem_engine::server::{
    DEFAULT_JOB_DELAY, MAX_BODY, Receiver, ReceiverConfig, Rules, metrics,
};
use tandem_engine::store::{JobKind, Store};

/// How long the worker waits before starting again after a store failure.
const WORKER_RESTART: Duration = Duration::from_secs(5);

/// Arguments of `tandem serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The config and rules.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on, `address:port` (port 0 = any free port) [default: `server.listen`
    /// in tandem.yaml].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Seconds between two polls of both systems; 0 turns the poller off [default:
    /// `sync.poll_interval_seconds` in tandem.yaml, 300].
    #[arg(long, value_name = "SECONDS")]
    pub poll_interval: Option<u64>,
}

/// Runs `tandem serve` until SIGTERM / SIGINT.
pub fn run(args: Args) -> Exit {
    super::common::block_on(async move {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            super::common::wait_for_signal().await;
            tracing::info!(target: "tandem::server", "signal received: shutting down");
            on_signal.cancel();
        });
        serve(args, Env::Process, shutdown).await
    })
}

/// What `tandem serve` and `tandem worker` both start from.
pub(crate) struct Common {
    pub runtime: Arc<Runtime>,
    pub reloader: Arc<Reloader>,
    pub rules: Rules,
    pub store: Arc<dyn Store>,
    pub executor: Executor,
    /// The push-completion email settings (`None`: not configured).
    pub email: Option<tandem_engine::notify::SmtpSettings>,
}

/// Loads the config and rules, starts the reloader, opens the store, builds the executor.
pub(crate) async fn common(config: &ConfigArgs, env: Env) -> Result<Common, Exit> {
    let runtime = Runtime::load(Options {
        env,
        ..config.options()
    })
    .map_err(|e| e.report())?;
    // A configured email whose login is not set stops the start, as it stops `tandem push`.
    let email = super::pull::smtp_settings(&runtime).map_err(|e| e.report())?;
    for w in runtime.warnings.diagnostics() {
        tracing::warn!(target: "tandem::rules", "{}: {} {}", w.file, w.code, w.message);
    }
    let reloader = Reloader::spawn(runtime.paths.clone()).map_err(|e| {
        eprintln!("{:?}", miette::Report::new(e));
        Exit::Invalid
    })?;
    let reloader = Arc::new(reloader);
    let store = runtime.store().await.map_err(|e| e.report())?;
    let executor = Executor::new(
        Arc::clone(&store),
        Arc::clone(&runtime.systems.hubspot),
        Arc::clone(&runtime.systems.accelo),
        super::pull::exec_options(&runtime),
    );
    Ok(Common {
        rules: Rules::Watched(Arc::clone(&reloader)),
        runtime: Arc::new(runtime),
        reloader,
        store,
        executor,
        email,
    })
}

/// A worker running every kind of job: the manual runs (`exec::jobs`) and `record` jobs, all
/// with the hot-reloaded rules. The push-completion email of a bulk push it runs is sent when
/// configured (its SMTP login was checked at start, as `tandem push` checks it); the automatic
/// sync never sends email.
pub(crate) fn worker(common: &Common) -> Worker {
    let email = common.email.clone();
    let reloader = Arc::clone(&common.reloader);
    let program: tandem_engine::exec::jobs::ProgramSource = Arc::new(move || reloader.current());
    let record = RecordHandler::new(common.rules.clone(), common.executor.clone());
    tandem_engine::exec::jobs::worker(
        common.runtime.systems.clone(),
        program,
        Arc::clone(&common.store),
        common.executor.options().clone(),
        email,
    )
    .handle(JobKind::Record, Arc::new(record))
}

/// `tandem serve` with an explicit environment, stopping when `shutdown` is cancelled.
pub async fn serve(args: Args, env: Env, shutdown: CancellationToken) -> Exit {
    let common = match common(&args.config, env).await {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| common.runtime.config.server.listen.clone());
    match tokio::net::TcpListener::bind(listen.as_str()).await {
        Ok(listener) => serve_with(args, common, listener, shutdown).await,
        Err(e) => {
            eprintln!("error: cannot listen on `{listen}`: {e}");
            Exit::Invalid
        }
    }
}

/// [`serve`] on a listener the caller bound (`--listen` is ignored).
pub async fn serve_on(
    args: Args,
    env: Env,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Exit {
    match common(&args.config, env).await {
        Ok(common) => serve_with(args, common, listener, shutdown).await,
        Err(exit) => exit,
    }
}

async fn serve_with(
    args: Args,
    common: Common,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Exit {
    let config = &common.runtime.config;
    let secret = |r: Result<Option<Secret>, SecretError>| {
        r.inspect(|s| {
            if let Some(s) = s {
                tandem_engine::store::redact::register_secret(s.expose());
            }
        })
        .map_err(|e| RuntimeError::from(e).report())
    };
    let hubspot_secret = match secret(config.webhook_secret(|k| common.runtime.env(k))) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    let accelo_secret = match secret(config.accelo_webhook_secret(|k| common.runtime.env(k))) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    if hubspot_secret.is_none() {
        tracing::warn!(
            target: "tandem::server",
            "no HubSpot webhook secret (TANDEM_HUBSPOT_WEBHOOK_SECRET or server.webhook_secret_env): \
             /webhooks/hubspot answers 503 and only the poller syncs"
        );
    }
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot read the listening address: {e}");
            return Exit::Invalid;
        }
    };
    metrics::install();
    let receiver = Arc::new(Receiver::new(
        Arc::clone(&common.store),
        common.rules.clone(),
        ReceiverConfig {
            hubspot_secret,
            accept_v1: config.server.accept_v1_signatures,
            public_url: config.server.public_url.clone(),
            accelo_secret,
            max_body: MAX_BODY,
            body_timeout: Duration::from_secs(config.server.body_timeout_seconds.max(1)),
            max_events: tandem_engine::server::MAX_EVENTS,
            job_delay: DEFAULT_JOB_DELAY,
        },
    ));
    let every = args
        .poll_interval
        .unwrap_or(config.sync.poll_interval_seconds);
    let poller = (every > 0).then(|| {
        (
            Poller::new(
                Arc::clone(&common.store),
                common.rules.clone(),
                Arc::clone(&common.runtime.systems.hubspot),
                Arc::clone(&common.runtime.systems.accelo),
                PollOptions::default(),
            ),
            Duration::from_secs(every),
        )
    });
    let worker = worker(&common);
    let task: tandem_engine::server::serve::Task = Box::new(move |stop: CancellationToken| {
        async move {
            // A store outage stops the worker's loop; it starts again once the store answers,
            // while the server goes on accepting (or refusing, 500) webhooks.
            while let Err(e) = worker.run(stop.clone()).await {
                tracing::error!(
                    target: "tandem::server",
                    "the worker stopped: {e}; starting it again in {} s",
                    WORKER_RESTART.as_secs()
                );
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(WORKER_RESTART) => {}
                }
            }
        }
        .boxed()
    });
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }
    tracing::info!(
        target: "tandem::server",
        poll_interval_s = every,
        rules = common.reloader.current().rules_hash(),
        "serving on http://{addr}"
    );
    let limits = tandem_engine::server::http::Limits {
        max_connections: usize::try_from(config.server.max_connections.max(1)).unwrap_or(1),
        header_timeout: Duration::from_secs(config.server.header_timeout_seconds.max(1)),
    };
    let mut console = tandem_engine::server::console::Console::new(
        Arc::clone(&common.store),
        common.rules.clone(),
        common.runtime.systems.clone(),
        common.runtime.paths.clone(),
        config.clone(),
    );
    console.exposed = !addr.ip().is_loopback();
    console.doctor = Some(Arc::clone(&common.runtime));
    if console.exposed {
        tracing::warn!(
            target: "tandem::server",
            "listening on {addr}, beyond this computer, without HTTPS: put the console behind an \
             HTTPS proxy, or listen on 127.0.0.1"
        );
    }
    if config.console.users.is_empty() {
        tracing::info!(
            target: "tandem::server",
            "the console at http://{addr}/ has no users yet: add one with \
             `tandem user add NAME --role operator`"
        );
    }
    let service = Service {
        listener,
        receiver,
        limits,
        poller,
        worker: Some(task),
        reloader: Some(Arc::clone(&common.reloader)),
        console: Some(Arc::new(console)),
    };
    let result = service.run(shutdown).await;
    common.store.close().await;
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failures
        }
    }
}
