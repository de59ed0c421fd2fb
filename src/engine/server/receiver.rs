//! What the webhook receivers and the jobs they queue share: the [`Receiver`] state (store,
//! rules, secrets, limits), the `record` job payload, refusing a request, and [`guard`], which
//! reads a webhook request's body within the size and time limits before its handler runs.

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

/// Most events one HubSpot request may carry (HubSpot sends at most 100).
pub const MAX_EVENTS: usize = 100;

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
    /// Largest body accepted (413 above; at once when the request announces a larger
    /// `Content-Length`).
    pub max_body: usize,
    /// Time allowed for receiving a request's body ([`super::http::DEFAULT_BODY_TIMEOUT`]):
    /// a client that has not sent it all by then gets 408 and is disconnected.
    pub body_timeout: Duration,
    /// Most events in one HubSpot request ([`MAX_EVENTS`]; 413 above, nothing stored).
    pub max_events: usize,
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
            body_timeout: super::http::DEFAULT_BODY_TIMEOUT,
            max_events: MAX_EVENTS,
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

/// `response` with `Connection: close`: the request's body was not (all) read, so the
/// connection cannot carry another request.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Why a body could not be read.
enum BodyFailure {
    TooLarge,
    Broken,
}

/// Reads `body` up to `max` bytes.
async fn read_body(body: axum::body::Body, max: usize) -> Result<axum::body::Bytes, BodyFailure> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyFailure::Broken)?;
        if buf.len() + chunk.len() > max {
            return Err(BodyFailure::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(axum::body::Bytes::from(buf))
}

/// The middleware of the webhook routes: a request that announces a body over the limit is
/// refused with 413 before any of it is read; the body is then read within
/// [`ReceiverConfig::body_timeout`] (408 and the connection closed when the client is too
/// slow) and the limit (413), and handed to the handler in one piece.
pub async fn guard(
    axum::extract::State(rx): axum::extract::State<Arc<Receiver>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let source = if request.uri().path().ends_with("/accelo") {
        "accelo"
    } else {
        "hubspot"
    };
    let max = rx.config.max_body;
    let too_large = || {
        closing(refuse(
            source,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("the body is larger than {max} bytes"),
        ))
    };
    if let Some(length) = request.headers().get(axum::http::header::CONTENT_LENGTH) {
        match length
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(n) if n > max as u64 => return too_large(),
            Some(_) => {}
            None => {
                return closing(refuse(
                    source,
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    "the Content-Length header is not a number",
                ));
            }
        }
    }
    let (parts, body) = request.into_parts();
    let timeout = rx.config.body_timeout;
    let bytes = match tokio::time::timeout(timeout, read_body(body, max)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(BodyFailure::TooLarge)) => return too_large(),
        Ok(Err(BodyFailure::Broken)) => {
            return closing(refuse(
                source,
                StatusCode::BAD_REQUEST,
                "malformed",
                "the body could not be read",
            ));
        }
        Err(_) => {
            tracing::warn!(
                target: "tandem::server",
                "refused a {source} webhook request: its body did not arrive within {} ms",
                timeout.as_millis()
            );
            return closing(refuse(
                source,
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                &format!(
                    "the body did not arrive within {} ms; send the request again",
                    timeout.as_millis()
                ),
            ));
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Whether the request's `Content-Type` is one of `accepted` (media types, compared without
/// parameters such as `charset`, case-insensitively).
pub fn content_type_is(headers: &axum::http::HeaderMap, accepted: &[&str]) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|media| accepted.contains(&media.as_str()))
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
