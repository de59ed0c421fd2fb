//! The serve loop: one process running the HTTP server, the worker, the poller and the rule
//! reloader, and stopping them in the order that loses nothing.
//!
//! Shutdown (SIGTERM / SIGINT, or the caller's token):
//! 1. the HTTP server stops accepting connections and finishes the requests in flight — every
//!    event it answered 2xx is already stored with its job;
//! 2. the poller stops (a round cut short has not moved its cursor: the next start repeats it);
//! 3. the worker stops between two records and gives its job back to the queue
//!    ([`Store::release`]), or finishes it;
//! 4. the reload announcements stop.
//!
//! Housekeeping runs at start and then hourly: expired echoes are purged and processed webhook
//! events older than [`KEEP_EVENTS`] (well past HubSpot's redelivery window) are pruned, so
//! neither table grows without bound.
//!
//! The worker is passed in as a task (`tandem serve` runs `exec::Worker` with the `record`
//! handler), so this loop knows nothing about how jobs run.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::poll::Poller;
use super::{Receiver, router};
use crate::reload::{ReloadEvent, ReloadOutcome, Reloader};
use crate::store::{LogBody, NewLogEntry, Notice, NoticeLevel, Store};

/// How long processed webhook events are kept for deduplicating redeliveries (HubSpot retries
/// a failed delivery for up to a day).
pub const KEEP_EVENTS: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often housekeeping runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Purges expired echoes and prunes processed events received more than `keep_events` ago;
/// returns (echoes, events) removed.
pub async fn housekeep(
    store: &dyn Store,
    keep_events: Duration,
) -> Result<(u64, u64), crate::store::StoreError> {
    let echoes = store.purge_expired_echoes().await?;
    let before = chrono::Duration::from_std(keep_events)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let events = store.prune_events(before).await?;
    Ok((echoes, events))
}

async fn housekeeping(store: Arc<dyn Store>, stop: CancellationToken) {
    loop {
        match housekeep(store.as_ref(), KEEP_EVENTS).await {
            Ok((echoes, events)) => tracing::debug!(
                target: "tandem::server",
                echoes, events, "housekeeping: expired echoes and old events removed"
            ),
            Err(e) => tracing::warn!(target: "tandem::server", "housekeeping failed: {e}"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
        }
    }
}

/// A background task started with its own stop token (the worker).
pub type Task = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// Everything one `tandem serve` process runs.
pub struct Service {
    /// Where the HTTP server listens (already bound).
    pub listener: TcpListener,
    /// The webhook receivers' state.
    pub receiver: Arc<Receiver>,
    /// The HTTP server's connection limit and header read timeout.
    pub limits: super::http::Limits,
    /// The poller and its interval (`None`: off).
    pub poller: Option<(Poller, Duration)>,
    /// The worker.
    pub worker: Option<Task>,
    /// The rule reloader, whose outcomes go to the sync log.
    pub reloader: Option<Arc<Reloader>>,
    /// The browser console and its API, served beside the webhooks.
    pub console: Option<Arc<super::console::Console>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("listener", &self.listener.local_addr().ok())
            .field("poller", &self.poller.as_ref().map(|p| p.1))
            .field("worker", &self.worker.is_some())
            .finish_non_exhaustive()
    }
}

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ServeError {
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}

async fn stop(task: Option<JoinHandle<()>>, token: &CancellationToken, what: &str) {
    token.cancel();
    if let Some(t) = task
        && let Err(e) = t.await
    {
        tracing::error!(target: "tandem::server", "the {what} stopped abnormally: {e}");
    }
}

impl Service {
    /// Runs everything until `shutdown` is cancelled, then stops in order (see the module docs).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServeError> {
        let store = Arc::clone(&self.receiver.store);
        let http_stop = CancellationToken::new();
        let poll_stop = CancellationToken::new();
        let work_stop = CancellationToken::new();
        let reload_stop = CancellationToken::new();

        let mut app = router(Arc::clone(&self.receiver));
        let console_stop = self.console.as_ref().map(|c| c.stop.clone());
        if let Some(c) = self.console {
            app = app.merge(super::console::router(c));
        }
        let hs = http_stop.clone();
        let limits = self.limits;
        let http =
            tokio::spawn(async move { super::http::serve(self.listener, app, limits, hs).await });
        let poller = self.poller.map(|(p, every)| {
            let t = poll_stop.clone();
            tokio::spawn(async move { p.run(every, t).await })
        });
        let worker = self.worker.map(|w| tokio::spawn(w(work_stop.clone())));
        let keep_stop = CancellationToken::new();
        let keeper = tokio::spawn(housekeeping(Arc::clone(&store), keep_stop.clone()));
        let reloads = self.reloader.map(|r| {
            let t = reload_stop.clone();
            let store = Arc::clone(&store);
            tokio::spawn(async move { announce_reloads(r, store, t).await })
        });

        // Serve until asked to stop, or until the HTTP server dies on its own.
        let mut http = Some(http);
        let mut failure = None;
        if let Some(h) = http.as_mut() {
            tokio::select! {
                () = shutdown.cancelled() => {}
                ended = h => {
                    http = None;
                    failure = match ended {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(ServeError::Http(e)),
                        Err(e) => Some(ServeError::Http(std::io::Error::other(e.to_string()))),
                    };
                }
            }
        }
        tracing::info!(target: "tandem::server", "shutting down: no new requests");
        // Live streams end first, so that the open connections can drain.
        if let Some(t) = &console_stop {
            t.cancel();
        }
        http_stop.cancel();
        if let Some(h) = http {
            match h.await {
                Ok(Err(e)) => failure = failure.or(Some(ServeError::Http(e))),
                Err(e) => {
                    tracing::error!(target: "tandem::server", "the HTTP server stopped abnormally: {e}")
                }
                Ok(Ok(())) => {}
            }
        }
        stop(poller, &poll_stop, "poller").await;
        tracing::info!(target: "tandem::server", "shutting down: finishing or releasing the running job");
        stop(worker, &work_stop, "worker").await;
        stop(reloads, &reload_stop, "reload watcher").await;
        stop(Some(keeper), &keep_stop, "housekeeping").await;
        tracing::info!(target: "tandem::server", "stopped");
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Writes every reload outcome to the sync log: a new rule set, or an invalid edit with its
/// diagnostics (the previous rules keep running).
pub async fn announce_reloads(
    reloader: Arc<Reloader>,
    store: Arc<dyn Store>,
    stop: CancellationToken,
) {
    let mut rx = reloader.subscribe();
    rx.mark_unchanged();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
        let event: ReloadEvent = rx.borrow_and_update().clone();
        let notice = match &event.outcome {
            ReloadOutcome::Started { .. } => continue,
            ReloadOutcome::Reloaded {
                rules_hash,
                rules_changed,
                config_changed,
                ..
            } => {
                let mut parts = Vec::new();
                if *rules_changed {
                    parts.push(format!(
                        "rules reloaded: the next jobs use rules `{}`",
                        short(rules_hash)
                    ));
                }
                if *config_changed {
                    parts.push(
                        "tandem.yaml changed: its connection, store, server and sync settings \
                         apply at the next start of tandem serve"
                            .to_string(),
                    );
                }
                if parts.is_empty() {
                    continue;
                }
                Notice {
                    level: NoticeLevel::Info,
                    message: parts.join("; "),
                }
            }
            ReloadOutcome::Rejected { report } => {
                let mut lines = vec![format!(
                    "rules changed but are invalid ({}); the running rules `{}` stay",
                    report.summary(),
                    short(reloader.current().rules_hash())
                )];
                for d in report.diagnostics() {
                    let (line, col) = report.position(d);
                    lines.push(format!("{}:{line}:{col}: {} {}", d.file, d.code, d.message));
                }
                Notice {
                    level: NoticeLevel::Warn,
                    message: lines.join("\n"),
                }
            }
        };
        if let Err(e) = store
            .append_log(&NewLogEntry {
                job: None,
                body: LogBody::Notice(notice),
            })
            .await
        {
            tracing::warn!(target: "tandem::reload", "could not log a rule reload: {e}");
        }
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
