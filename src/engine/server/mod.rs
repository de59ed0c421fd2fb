//! The automatic-sync side of Tandem (`tandem serve`, `tandem worker`): the HTTP server with the
//! HubSpot and Accelo webhook receivers, `/healthz` and `/metrics`, the polling safety net, the
//! `record` job that syncs one record, and the serve loop that runs them with hot-reloaded rules
//! and shuts down without losing anything.
//!
//! Receivers verify, deduplicate, filter and enqueue; they contain no sync logic. What a record
//! job does is decided by the same planner and executor as every other run.
//!
//! - [`signature`] — HubSpot v3/v1 and Accelo request authentication (pure functions).
//! - [`hubspot`] — `POST /webhooks/hubspot`: signature, replay and size checks, event
//!   classification (trigger lists, echoes, deletions), durable deduplicated storage.
//! - [`accelo`] — `POST /webhooks/accelo`.
//! - [`poll`] — the poller (B16): what changed since the stored cursors, queued as record jobs.
//! - [`metrics`] — the Prometheus recorder and the metric names.

pub mod accelo;
pub mod hubspot;
pub mod metrics;
pub mod poll;
pub mod record;
pub mod serve;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::reload::Reloader;
use crate::store::{JobFilter, JobKind, NewJob, Store};
use tandem_core::compile::Program;
use tandem_core::model::{Object, RecordKey, System};
use tandem_core::rules::config::Secret;

/// Largest webhook body accepted (HubSpot sends at most 100 events, a few tens of KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a record job waits before it may run, so that the burst of events one edit produces
/// (a creation and its property changes, a company and its contacts) coalesces into one job per
/// record and companies are queued before their contacts run.
pub const DEFAULT_JOB_DELAY: Duration = Duration::from_secs(1);

/// Where the running rules come from: fixed, or hot-reloaded from the rules directory.
#[derive(Debug, Clone)]
pub enum Rules {
    /// One program for the whole run.
    Fixed(Arc<Program>),
    /// The program the reloader holds now (it swaps only valid rule sets in).
    Watched(Arc<Reloader>),
}

impl Rules {
    /// The program to use now.
    pub fn current(&self) -> Arc<Program> {
        match self {
            Rules::Fixed(p) => Arc::clone(p),
            Rules::Watched(r) => r.current(),
        }
    }
}

/// What the webhook receivers need to know.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The HubSpot app's client secret; `None` = `POST /webhooks/hubspot` answers 503 (HubSpot
    /// retries, so nothing is lost while the configuration is fixed).
    pub hubspot_secret: Option<Secret>,
    /// Also accept v1 signatures (no timestamp, so no replay protection beyond deduplication).
    pub accept_v1: bool,
    /// The public base URL HubSpot calls (`https://sync.example.com`); `None` = `http://` + the
    /// `Host` header.
    pub public_url: Option<String>,
    /// The Accelo subscriptions' secret; `None` = `POST /webhooks/accelo` is off (404).
    pub accelo_secret: Option<Secret>,
    /// Largest body accepted (413 above).
    pub max_body: usize,
    /// Delay before a queued record job may run ([`DEFAULT_JOB_DELAY`]).
    pub job_delay: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            hubspot_secret: None,
            accept_v1: false,
            public_url: None,
            accelo_secret: None,
            max_body: MAX_BODY,
            job_delay: DEFAULT_JOB_DELAY,
        }
    }
}

/// The state the HTTP handlers share.
#[derive(Debug)]
pub struct Receiver {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) rules: Rules,
    pub(crate) config: ReceiverConfig,
    pub(crate) replays: hubspot::ReplayGuard,
}

impl Receiver {
    /// A receiver writing to `store`, filtering with `rules`.
    pub fn new(store: Arc<dyn Store>, rules: Rules, config: ReceiverConfig) -> Receiver {
        Receiver {
            store,
            rules,
            config,
            replays: hubspot::ReplayGuard::default(),
        }
    }
}

/// The HTTP routes of `tandem serve`: `POST /webhooks/hubspot`, `POST /webhooks/accelo`,
/// `GET /healthz`, `GET /metrics`.
pub fn router(receiver: Arc<Receiver>) -> Router {
    let limit = receiver.config.max_body;
    Router::new()
        .route("/webhooks/hubspot", post(hubspot::receive))
        .route("/webhooks/accelo", post(accelo::receive))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(receiver)
}

async fn healthz(State(rx): State<Arc<Receiver>>) -> Response {
    let probe = JobFilter {
        limit: Some(1),
        ..JobFilter::default()
    };
    match rx.store.jobs(&probe).await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(json!({"status": "ok", "rules_hash": rx.rules.current().rules_hash()})),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(target: "tandem::server", "health check: the store fails: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "store unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics_page() -> Response {
    match metrics::render() {
        Some(text) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// The record job for `key`: payload `{"record": "system:object:id"}`, coalescing key
/// `system:object:id`, runnable after `delay` (see [`DEFAULT_JOB_DELAY`]).
pub fn record_job(key: &RecordKey, delay: Duration) -> NewJob {
    let mut job =
        NewJob::new(JobKind::Record, json!({"record": key.to_string()})).coalesce(key.to_string());
    if !delay.is_zero() {
        job.run_after = chrono::Duration::from_std(delay)
            .ok()
            .map(|d| chrono::Utc::now() + d);
    }
    job
}

/// The record a `record` job is about, read back from its payload.
pub fn record_of_job(payload: &serde_json::Value) -> Result<RecordKey, String> {
    let text = payload
        .get("record")
        .and_then(|v| v.as_str())
        .ok_or_else(|| "the record job has no `record` in its payload".to_string())?;
    text.parse()
}

/// `system:object:id` for a record of `system`.
pub(crate) fn key(system: System, object: Object, id: impl Into<String>) -> RecordKey {
    RecordKey {
        system,
        object,
        id: id.into(),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Refuses a webhook request from `source` (`hubspot`, `accelo`): counted under `outcome`,
/// answered with `{"error": message}`. Nothing of a refused request is stored.
pub(crate) fn refuse(
    source: &'static str,
    status: StatusCode,
    outcome: &'static str,
    message: &str,
) -> Response {
    ::metrics::counter!(metrics::WEBHOOK_REQUESTS, "source" => source, "outcome" => outcome)
        .increment(1);
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

/// The body of a webhook request from `source`, or its refusal: 413 when it is larger than
/// `max_body`, the extractor's 4xx when it could not be read.
pub(crate) fn webhook_body(
    source: &'static str,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    max_body: usize,
) -> Result<axum::body::Bytes, Box<Response>> {
    match body {
        Ok(b) => Ok(b),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Box::new(refuse(
            source,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("the body is larger than {max_body} bytes"),
        ))),
        Err(e) => Err(Box::new(refuse(
            source,
            e.status(),
            "malformed",
            "the body could not be read",
        ))),
    }
}
