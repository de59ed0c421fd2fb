//! What the webhook receivers and the jobs they queue share: the [`Receiver`] state (store,
//! rules, secrets, limits), the `record` job payload, and refusing a request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::reload::Reloader;
use crate::store::{JobKind, NewJob, Store};
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
    pub(crate) replays: ReplayGuard,
}

impl Receiver {
    /// A receiver writing to `store`, filtering with `rules`.
    pub fn new(store: Arc<dyn Store>, rules: Rules, config: ReceiverConfig) -> Receiver {
        Receiver {
            store,
            rules,
            config,
            replays: ReplayGuard::default(),
        }
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
pub fn key(system: System, object: Object, id: impl Into<String>) -> RecordKey {
    RecordKey {
        system,
        object,
        id: id.into(),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Refuses a webhook request from `source` (`hubspot`, `accelo`): counted under `outcome`,
/// answered with `{"error": message}`. Nothing of a refused request is stored.
pub fn refuse(
    source: &'static str,
    status: StatusCode,
    outcome: &'static str,
    message: &str,
) -> Response {
    ::metrics::counter!(super::metrics::WEBHOOK_REQUESTS, "source" => source, "outcome" => outcome)
        .increment(1);
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

/// The body of a webhook request from `source`, or its refusal: 413 when it is larger than
/// `max_body`, the extractor's 4xx when it could not be read.
pub fn webhook_body(
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

/// Remembers the signed requests seen within the signature's validity (5 minutes), so that
/// the same request sent again is refused. Per process; across restarts and processes the
/// event deduplication still makes a replay queue nothing.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: Mutex<HashMap<String, i64>>,
}

impl ReplayGuard {
    /// True the first time `signature` is seen (within its validity), false for a replay.
    pub fn first_time(&self, signature: &str, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        if seen.len() > 10_000 {
            seen.retain(|_, expires| *expires > now);
        }
        match seen.get(signature) {
            Some(expires) if *expires > now => false,
            _ => {
                // Valid for 5 minutes either side of its timestamp.
                seen.insert(
                    signature.to_string(),
                    now + 2 * super::signature::MAX_AGE_MS,
                );
                true
            }
        }
    }

    /// Forgets `signature`: its request was refused after the check (its events could not be
    /// stored), so the same request sent again is not a replay.
    pub fn forget(&self, signature: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(signature);
        }
    }
}
