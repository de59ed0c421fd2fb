//! HTTP plumbing shared by both connectors: rate limiting before sending (governor, retuned and
//! paused by the systems' rate-limit headers), retries with exponential backoff (backon) that
//! honour `Retry-After` / `X-RateLimit-Reset`, classification of answers into "done", "retry",
//! "re-authenticate", "refused" and "outcome unknown", and the bearer-token source.
//!
//! Every duration or instant computed from what a system sends (`Retry-After`,
//! `X-RateLimit-Reset`, `X-HubSpot-RateLimit-Interval-Milliseconds`, a token's `expires_in`) is
//! bounded before it is used: waits by [`RetryPolicy::max_server_wait`], token lifetimes by
//! [`MAX_TOKEN_LIFETIME`], reported windows by [`MAX_REPORTED_INTERVAL`], and instants are formed
//! with `checked_add`. A hostile or broken header can slow Tandem down, never panic it.
//!
//! Accelo's 429s come in two kinds, told apart by what the answers before said
//! ([`BudgetSeen`]): an exhausted hourly budget — the last answers reported only a few requests
//! left, or 429s keep coming — pauses every request until the announced reset; a single 429
//! while plenty of budget remained is transient: that request alone is retried, after its
//! `Retry-After` when it has one, else after the usual short backoff. A successful answer that
//! reports `X-RateLimit-Remaining: 0` pauses until the reset as well.
//!
//! The one rule that shapes this module: a request that is not idempotent (a create) is repeated
//! only when the system certainly did not process it — no connection was made, or it answered
//! 429 / 423. A timeout, a dropped connection or a 5xx on a create yields
//! [`ConnectError::OutcomeUnknown`], and the connector settles it by a lookup.
//!
//! Two things a person at a terminal sees: every retry is announced as an event of the
//! [`NOTICE_TARGET`] target ("accelo is not answering (connection failed), retry 3 of 9 in
//! 8 s"), which the command line prints; and a system that has never answered and whose
//! address refuses connections, or whose host name does not resolve, is not retried at all —
//! the error says at once which setting gave that address ([`Transport::with_origin`]).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use tokio::time::Instant;

use super::error::ConnectError;
use tandem_core::model::System;

/// The `tracing` target of the events meant for the person running a command: retries and
/// waits, in words. The command line prints them plainly on a terminal.
pub const NOTICE_TARGET: &str = "tandem::notice";

/// API requests sent, by `system`, `route` (method and path, ids as `{id}`) and `status` (the
/// HTTP status, or `unreachable` when no answer came).
pub const API_REQUESTS: &str = "tandem_api_requests_total";
/// The requests left in a system's current budget window, as its last answer reported them, by
/// `system`.
pub const API_BUDGET_REMAINING: &str = "tandem_api_budget_remaining";

/// `POST /api/v0/companies/{id}/addresses`: the route of a call, ids left out.
fn route(call: &Call) -> String {
    if let Some(shown) = &call.shown {
        return shown.clone();
    }
    let path: Vec<&str> = call
        .path
        .split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect();
    format!("{} {}", call.method, path.join("/"))
}
use tandem_core::secret::Secret;

/// The longest lifetime a token is trusted for, whatever its `expires_in` says.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// The longest rate-limit window a system may report; longer reports are ignored.
pub(crate) const MAX_REPORTED_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The longest replenish period of a budget (governor cannot represent more than 584 years).
const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

/// An Accelo budget reported this low (requests left) means a 429 is the budget running out.
pub(crate) const LOW_BUDGET: u64 = 10;
/// This many 429s in a row, with no other answer between them, mean the budget is exhausted
/// whatever the earlier answers said.
pub(crate) const EXHAUSTED_STREAK: u32 = 3;

/// What the answers so far said about Accelo's hourly budget.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetSeen {
    /// `X-RateLimit-Remaining` of the last answer that was not a 429.
    pub remaining: Option<u64>,
    /// 429s since the last other answer.
    pub streak: u32,
}

impl BudgetSeen {
    /// Counts a 429; true when it means the budget is exhausted (not a transient refusal).
    pub(crate) fn throttled(&mut self) -> bool {
        self.streak = self.streak.saturating_add(1);
        self.remaining.is_some_and(|r| r <= LOW_BUDGET) || self.streak >= EXHAUSTED_STREAK
    }

    /// Counts an answer that was not a 429.
    pub(crate) fn answered(&mut self, remaining: Option<u64>) {
        self.streak = 0;
        if remaining.is_some() {
            self.remaining = remaining;
        }
    }
}

/// `now + d`, or `now + MAX_PERIOD` when `d` is longer, never an overflow.
pub(crate) fn instant_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_PERIOD)).unwrap_or(now)
}

/// A request budget: `requests` per `per`, as a burst that refills evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

impl RateLimit {
    /// HubSpot private apps (Professional / Enterprise): 190 requests per rolling 10 seconds.
    pub const HUBSPOT_BURST: RateLimit = RateLimit {
        requests: 190,
        per: Duration::from_secs(10),
    };
    /// HubSpot search: 5 requests per second.
    pub const HUBSPOT_SEARCH: RateLimit = RateLimit {
        requests: 5,
        per: Duration::from_secs(1),
    };
    /// Accelo: 5000 requests per hour per deployment.
    pub const ACCELO: RateLimit = RateLimit {
        requests: 5000,
        per: Duration::from_secs(3600),
    };

    /// The GCRA quota enforcing this budget.
    ///
    /// - `Window::Rolling` (HubSpot: "N per rolling window"): no burst, one request every
    ///   `per / (N - 1)`, so that no window of length `per` ever holds more than N requests —
    ///   a full burst followed by the refill rate would put up to 2N in one window.
    /// - `Window::Fixed` (Accelo: an hourly budget with a reset time): the whole budget as a
    ///   burst, refilled evenly; the `X-RateLimit-Remaining` / `-Reset` headers pause sending when
    ///   the system's own window is used up.
    fn quota(self, window: Window) -> Quota {
        let n = self.requests.max(1);
        let (burst, cells) = match window {
            Window::Rolling => (1, n.saturating_sub(1).max(1)),
            Window::Fixed => (n, n),
        };
        let period = (self.per / cells).clamp(Duration::from_nanos(1), MAX_PERIOD);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period)
            .map(|q| q.allow_burst(burst))
            .unwrap_or_else(|| Quota::per_second(burst))
    }
}

/// How a system counts its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// N requests in any window of the given length (HubSpot).
    Rolling,
    /// N requests per window, reset at a time the system announces (Accelo).
    Fixed,
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff delay (doubles each time, with jitter).
    pub min_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Largest wait a system may impose through `Retry-After` / `X-RateLimit-Reset`.
    pub max_server_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            retries: 8,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_server_wait: Duration::from_secs(15 * 60),
        }
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A rate limiter: a GCRA budget plus a pause that the systems' headers can impose.
pub(crate) struct Limiter {
    window: Window,
    configured: RateLimit,
    current: Mutex<RateLimit>,
    gcra: ArcSwap<DefaultDirectRateLimiter>,
    paused_until: Mutex<Option<Instant>>,
    /// The budget in words (`accelo's hourly budget`), for the notice of a long wait.
    name: String,
    /// Where a long wait is reported, besides the notice (the runs that log it subscribe).
    waits: Option<(System, tokio::sync::broadcast::Sender<BudgetWait>)>,
}

/// A wait on a system's budget that has begun: every request to that system waits until
/// `until` (the system said its budget is spent). Reported once per wait, and only for waits
/// of [`BudgetWait::MIN`] or more, through [`crate::connect::Connector::budget_waits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetWait {
    /// The system waited on.
    pub system: System,
    /// The budget in words: `accelo's hourly budget`.
    pub budget: String,
    /// When requests resume.
    pub until: chrono::DateTime<chrono::Utc>,
    /// How long the wait is, from when it began.
    pub wait: Duration,
}

impl BudgetWait {
    /// The shortest wait reported: shorter ones are the normal pacing of requests.
    pub const MIN: Duration = Duration::from_secs(2);

    /// `waiting for accelo's hourly budget, resumes at 15:02:10 UTC (in 58 min 3 s)`.
    pub fn message(&self) -> String {
        format!(
            "waiting for {}, resumes at {} (in {})",
            self.budget,
            self.until.format("%H:%M:%S UTC"),
            words(self.wait)
        )
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("configured", &self.configured)
            .field("current", &*lock(&self.current))
            .finish_non_exhaustive()
    }
}

impl Limiter {
    pub(crate) fn new(rate: RateLimit, window: Window) -> Limiter {
        Limiter {
            window,
            configured: rate,
            current: Mutex::new(rate),
            gcra: ArcSwap::from_pointee(RateLimiter::direct(rate.quota(window))),
            paused_until: Mutex::new(None),
            name: "the request budget".into(),
            waits: None,
        }
    }

    /// Names the budget for the notice of a long wait.
    pub(crate) fn named(mut self, name: String) -> Limiter {
        self.name = name;
        self
    }

    /// Reports the long waits that begin to `waits` (as well as in the notice).
    pub(crate) fn reporting(
        mut self,
        system: System,
        waits: tokio::sync::broadcast::Sender<BudgetWait>,
    ) -> Limiter {
        self.waits = Some((system, waits));
        self
    }

    /// Waits until a request may be sent (after any pause, then as the budget allows).
    pub(crate) async fn acquire(&self) {
        loop {
            let until = *lock(&self.paused_until);
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        self.gcra.load_full().until_ready().await;
    }

    /// No request before `t`.
    ///
    /// A pause of [`BudgetWait::MIN`] or more that begins now (no pause was in force) is
    /// announced once, with the time it ends: as a notice and to the runs that subscribed. A
    /// pause in force that is only extended is the same wait, not announced again.
    pub(crate) fn pause_until(&self, t: Instant) {
        let now = Instant::now();
        let begins = {
            let mut p = lock(&self.paused_until);
            // A long wait in force was announced when it began.
            let in_force = p.is_some_and(|old| old >= now + BudgetWait::MIN);
            if p.is_none_or(|old| old < t) {
                *p = Some(t);
            }
            !in_force
        };
        let wait = t.saturating_duration_since(now);
        if !begins || wait < BudgetWait::MIN {
            return;
        }
        let until = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let resumes = until.with_timezone(&chrono::Local);
        tracing::info!(
            target: NOTICE_TARGET,
            "waiting for {}, resumes at {} (in {})",
            self.name,
            resumes.format("%H:%M:%S"),
            words(wait)
        );
        if let Some((system, tx)) = &self.waits {
            // Nobody listening (no run logs it) is fine.
            let _ = tx.send(BudgetWait {
                system: *system,
                budget: self.name.clone(),
                until,
                wait,
            });
        }
    }

    /// The system reports its budget: follow it when it is tighter than the configured one (the
    /// configured budget is a cap). Returns whether the budget changed.
    pub(crate) fn retune(&self, reported: RateLimit) -> bool {
        if reported.requests == 0 || reported.per.is_zero() {
            return false;
        }
        let configured_rate = self.configured.requests as f64 / self.configured.per.as_secs_f64();
        let reported_rate = reported.requests as f64 / reported.per.as_secs_f64();
        let target = if reported_rate < configured_rate {
            reported
        } else {
            self.configured
        };
        let mut cur = lock(&self.current);
        if *cur == target {
            return false;
        }
        *cur = target;
        self.gcra
            .store(Arc::new(RateLimiter::direct(target.quota(self.window))));
        true
    }

    /// The budget in force.
    pub(crate) fn current(&self) -> RateLimit {
        *lock(&self.current)
    }
}

/// Which rate-limit headers a system sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderStyle {
    /// `X-HubSpot-RateLimit-{Max,Remaining,Interval-Milliseconds}`.
    HubSpot,
    /// `X-RateLimit-{Limit,Remaining,Reset}` (reset = unix seconds).
    Accelo,
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn header_i64(h: &HeaderMap, name: &str) -> Option<i64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The unix time now, in seconds.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Seconds from `now_unix` until `at_unix` (zero when it is past).
fn secs_until(at_unix: i64, now_unix: i64) -> Duration {
    Duration::from_secs(u64::try_from(at_unix.saturating_sub(now_unix)).unwrap_or(0))
}

/// `Retry-After` as a delay, at most `cap`: delta-seconds (also fractional) or an HTTP date.
/// Values no `Duration` can hold (`1e20`) are the cap; negative, NaN and infinite ones are
/// ignored.
pub(crate) fn retry_after(h: &HeaderMap, now_unix: i64, cap: Duration) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = v.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return None;
        }
        Duration::try_from_secs_f64(secs).unwrap_or(cap)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?.timestamp();
        secs_until(at, now_unix)
    };
    Some(d.min(cap))
}

/// How long a retryable answer asks us to wait, if it says; never more than `cap`.
pub(crate) fn server_wait(
    style: HeaderStyle,
    status: u16,
    h: &HeaderMap,
    now_unix: i64,
    cap: Duration,
) -> Option<Duration> {
    if let Some(d) = retry_after(h, now_unix, cap) {
        return Some(d);
    }
    if style == HeaderStyle::Accelo
        && status == 429
        && let Some(reset) = header_i64(h, "x-ratelimit-reset")
    {
        return Some(secs_until(reset, now_unix).min(cap));
    }
    if status == 423 {
        // HubSpot: the lock lasts 2 s; wait at least that long.
        return Some(Duration::from_secs(2).min(cap));
    }
    None
}

/// What to do with an answer's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand the answer to the caller (2xx, 207, and 4xx that concern the request itself).
    Done,
    /// 401: get a new token and try once more.
    Reauth,
    /// 403: the credentials lack a permission.
    Refused,
    /// Try again after a delay (429, 423, 477; 5xx when idempotent).
    Retry,
    /// A 5xx on a request that is not idempotent: it may or may not have been applied.
    Unknown,
}

/// The retry policy's signature: what each status means for a request.
pub(crate) fn classify(status: u16, idempotent: bool) -> Verdict {
    match status {
        401 => Verdict::Reauth,
        403 => Verdict::Refused,
        423 | 429 | 477 => Verdict::Retry,
        500..=599 if idempotent => Verdict::Retry,
        500..=599 => Verdict::Unknown,
        _ => Verdict::Done,
    }
}

/// The request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// No body.
    None,
    /// A JSON body (HubSpot).
    Json(serde_json::Value),
    /// A form body (Accelo writes, token requests).
    Form(Vec<(String, String)>),
}

/// Which budget a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// The general budget.
    General,
    /// HubSpot search's own 5/s budget.
    Search,
}

/// One request to send.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    pub idempotent: bool,
    pub lane: Lane,
    /// Whether the token source's bearer token goes with the request (not for HubSpot's
    /// developer API, which takes its key as `hapikey`).
    pub bearer: bool,
    /// The request's name when its path holds a secret (`GET /oauth/v1/access-tokens/{token}`).
    pub shown: Option<String>,
}

impl Call {
    pub(crate) fn get(path: impl Into<String>) -> Call {
        Call {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
            idempotent: true,
            lane: Lane::General,
            bearer: true,
            shown: None,
        }
    }

    pub(crate) fn new(method: Method, path: impl Into<String>, body: Body) -> Call {
        let idempotent = method != Method::POST;
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body,
            idempotent,
            lane: Lane::General,
            bearer: true,
            shown: None,
        }
    }

    pub(crate) fn query(mut self, k: impl Into<String>, v: impl Into<String>) -> Call {
        self.query.push((k.into(), v.into()));
        self
    }

    /// Marks a POST that only reads or that may safely be repeated (batch read, search,
    /// association create).
    pub(crate) fn idempotent(mut self) -> Call {
        self.idempotent = true;
        self
    }

    pub(crate) fn lane(mut self, lane: Lane) -> Call {
        self.lane = lane;
        self
    }

    /// Sends no bearer token (the credentials travel in the query or the body).
    pub(crate) fn without_bearer(mut self) -> Call {
        self.bearer = false;
        self
    }

    /// Names the request `METHOD template` in errors, logs and metrics, for a path that holds a
    /// secret.
    pub(crate) fn shown_as(mut self, template: &str) -> Call {
        self.shown = Some(format!("{} {template}", self.method));
        self
    }

    /// `METHOD /path`, the request's name in errors and logs (never the query or body).
    pub(crate) fn label(&self) -> String {
        match &self.shown {
            Some(s) => s.clone(),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

/// A received answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Where bearer tokens come from.
#[async_trait]
pub(crate) trait TokenSource: Send + Sync + std::fmt::Debug {
    /// A token valid for the next request (fetching or refreshing as needed).
    async fn token(&self, transport: &Transport) -> Result<Secret, ConnectError>;
    /// A request with `token` was refused with 401. Forget it if it is still the current one;
    /// returns true when a fresh token may help.
    async fn refused(&self, token: &Secret) -> bool;
}

/// A fixed token (HubSpot private app).
#[derive(Debug)]
pub(crate) struct StaticToken(pub Secret);

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(&self, _transport: &Transport) -> Result<Secret, ConnectError> {
        Ok(self.0.clone())
    }
    async fn refused(&self, _token: &Secret) -> bool {
        false
    }
}

/// A token with its expiry, as the OAuth sources cache it.
#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub token: Secret,
    pub expires_at: Instant,
    pub lifetime: Duration,
}

impl CachedToken {
    /// A token obtained at `now` that the system says lives `expires_in` seconds (`default`
    /// when it does not say): at least 1 second, at most [`MAX_TOKEN_LIFETIME`].
    pub(crate) fn new(
        token: Secret,
        expires_in: Option<u64>,
        default: Duration,
        now: Instant,
    ) -> CachedToken {
        let lifetime = expires_in
            .map_or(default, Duration::from_secs)
            .clamp(Duration::from_secs(1), MAX_TOKEN_LIFETIME);
        CachedToken {
            token,
            expires_at: instant_after(now, lifetime),
            lifetime,
        }
    }

    /// True while the token can still be used: it is refreshed `margin` ahead of its expiry (at
    /// most half its lifetime ahead, so very short-lived tokens are still used).
    pub(crate) fn usable(&self, now: Instant, margin: Duration) -> bool {
        let margin = margin.min(self.lifetime / 2);
        now.checked_add(margin).is_some_and(|t| t < self.expires_at)
    }
}

/// The token endpoint's answer (both systems, RFC 6749).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenAnswer {
    pub access_token: Secret,
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    #[serde(default, deserialize_with = "de_opt_u64")]
    pub expires_in: Option<u64>,
}

fn de_opt_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        U(u64),
        S(String),
        F(f64),
    }
    Ok(match Option::<N>::deserialize(d)? {
        None => None,
        Some(N::U(n)) => Some(n),
        Some(N::S(s)) => s.trim().parse().ok(),
        Some(N::F(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Some(N::F(_)) => None,
    })
}

/// The (category, message) of an error body in any of the shapes the two systems use:
/// HubSpot `{category, message}`, Accelo `{meta: {status, message}}`, OAuth
/// `{error, error_description}`. Falls back to a short prefix of the text.
pub(crate) fn describe_error(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        let s =
            |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        if let Some(meta) = v.get("meta")
            && let Some(c) = s(meta, "status")
        {
            return (c, s(meta, "message").unwrap_or_default());
        }
        if let Some(m) = s(&v, "message") {
            let c = s(&v, "category")
                .or_else(|| s(&v, "status"))
                .unwrap_or_default();
            return (c, m);
        }
        if let Some(c) = s(&v, "error") {
            return (c, s(&v, "error_description").unwrap_or_default());
        }
    }
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    (String::new(), short.trim().to_string())
}

/// One attempt's failure, as the retry loop sees it.
#[derive(Debug)]
enum Failure {
    /// Try again (after the server's wait if it gave one).
    Retry {
        err: ConnectError,
        wait: Option<Duration>,
    },
    /// Try again at once with a fresh token.
    Reauth,
    /// Give up with this error.
    Stop(ConnectError),
}

/// A connector's HTTP side: one client, its budgets, its retry policy and its token source.
#[derive(Debug)]
pub(crate) struct Transport {
    pub system: System,
    base: String,
    client: reqwest::Client,
    pub retry: RetryPolicy,
    general: Limiter,
    search: Limiter,
    auth: Arc<dyn TokenSource>,
    style: HeaderStyle,
    /// Where the base URL was configured, for errors (`TANDEM_ACCELO_URL`, …).
    origin: Option<String>,
    /// Whether the system ever answered (any HTTP status): until then a refused connection or
    /// an unknown host name is final.
    answered: AtomicBool,
    budget: Mutex<BudgetSeen>,
    /// Where both limiters report the long waits that begin ([`Transport::budget_waits`]).
    waits: tokio::sync::broadcast::Sender<BudgetWait>,
    /// The budget windows as the last answers' rate headers reported them.
    windows: Mutex<Vec<BudgetWindow>>,
    /// How far the system's clock was ahead of this machine's (ms; negative: behind) by the
    /// `Date` header of the last answer that had one.
    clock_offset: Mutex<Option<i64>>,
}

/// One request budget as the system's rate headers last reported it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BudgetWindow {
    /// The window in words: `10 seconds`, `day`, `hour`.
    pub window: String,
    /// Requests allowed in the window, when reported.
    pub limit: Option<u64>,
    /// Requests left in the window, when reported.
    pub remaining: Option<u64>,
    /// When the window starts again, when reported.
    pub resets_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the answer that reported it arrived.
    pub seen_at: chrono::DateTime<chrono::Utc>,
}

impl Transport {
    #[allow(
        clippy::too_many_arguments,
        reason = "a transport's settings, given once by each connector"
    )]
    pub(crate) fn new(
        system: System,
        base_url: &str,
        timeout: Duration,
        retry: RetryPolicy,
        general: RateLimit,
        search: RateLimit,
        auth: Arc<dyn TokenSource>,
        style: HeaderStyle,
    ) -> Result<Transport, ConnectError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConnectError::Invalid {
                system,
                message: format!("the base url `{base}` must start with `http://` or `https://`"),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectError::Unreachable {
                system,
                url: base.clone(),
                reason: format!("cannot build the http client: {e}"),
            })?;
        let window = match style {
            HeaderStyle::HubSpot => Window::Rolling,
            HeaderStyle::Accelo => Window::Fixed,
        };
        let (waits, _) = tokio::sync::broadcast::channel(16);
        Ok(Transport {
            system,
            base,
            client,
            retry,
            general: Limiter::new(general, window)
                .named(match style {
                    HeaderStyle::Accelo => format!("{system}'s hourly budget"),
                    HeaderStyle::HubSpot => format!("{system}'s request budget"),
                })
                .reporting(system, waits.clone()),
            search: Limiter::new(search, window)
                .named(format!("{system}'s search budget"))
                .reporting(system, waits.clone()),
            auth,
            style,
            origin: None,
            answered: AtomicBool::new(false),
            budget: Mutex::new(BudgetSeen::default()),
            waits,
            windows: Mutex::new(Vec::new()),
            clock_offset: Mutex::new(None),
        })
    }

    /// How far the system's clock is ahead of this machine's (negative: behind), by the `Date`
    /// header of the last answer that had one; `None` before such an answer. HTTP dates have
    /// whole seconds, so the figure is good to about a second.
    pub(crate) fn clock_offset(&self) -> Option<chrono::TimeDelta> {
        (*lock(&self.clock_offset)).map(chrono::TimeDelta::milliseconds)
    }

    fn note_date(&self, h: &HeaderMap) {
        let Some(date) = h
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v.trim()).ok())
        else {
            return;
        };
        let local = chrono::Utc::now();
        // The header has whole seconds: compare it with the middle of the local second.
        let offset = date.timestamp_millis() + 500 - local.timestamp_millis();
        *lock(&self.clock_offset) = Some(offset);
    }

    /// The long waits on this system's budgets that begin from now on.
    pub(crate) fn budget_waits(&self) -> tokio::sync::broadcast::Receiver<BudgetWait> {
        self.waits.subscribe()
    }

    /// The budget windows as the last answers reported them (none before the first answer).
    pub(crate) fn budget_windows(&self) -> Vec<BudgetWindow> {
        lock(&self.windows).clone()
    }

    fn note_window(&self, w: BudgetWindow) {
        let mut all = lock(&self.windows);
        match all.iter_mut().find(|o| o.window == w.window) {
            Some(o) => *o = w,
            None => all.push(w),
        }
    }

    /// Keeps what an answer's rate headers say about each budget window.
    fn note_windows(&self, h: &HeaderMap) {
        let now = chrono::Utc::now();
        match self.style {
            HeaderStyle::HubSpot => {
                let remaining = header_u64(h, "x-hubspot-ratelimit-remaining");
                let limit = header_u64(h, "x-hubspot-ratelimit-max");
                if remaining.is_some() || limit.is_some() {
                    let secs = header_u64(h, "x-hubspot-ratelimit-interval-milliseconds")
                        .map_or(10, |ms| (ms / 1000).max(1));
                    self.note_window(BudgetWindow {
                        window: format!("{secs} seconds"),
                        limit,
                        remaining,
                        resets_at: None,
                        seen_at: now,
                    });
                }
                let daily = header_u64(h, "x-hubspot-ratelimit-daily");
                let daily_left = header_u64(h, "x-hubspot-ratelimit-daily-remaining");
                if daily.is_some() || daily_left.is_some() {
                    self.note_window(BudgetWindow {
                        window: "day".into(),
                        limit: daily,
                        remaining: daily_left,
                        resets_at: None,
                        seen_at: now,
                    });
                }
            }
            HeaderStyle::Accelo => {
                let remaining = header_u64(h, "x-ratelimit-remaining");
                let limit = header_u64(h, "x-ratelimit-limit");
                if remaining.is_some() || limit.is_some() {
                    let resets_at = header_i64(h, "x-ratelimit-reset")
                        .and_then(|t| chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0));
                    self.note_window(BudgetWindow {
                        window: "hour".into(),
                        limit,
                        remaining,
                        resets_at,
                        seen_at: now,
                    });
                }
            }
        }
    }

    /// Names where the base URL was configured (`TANDEM_ACCELO_URL`, `` `accelo.url` in
    /// tandem.yaml``), for the error of an address that cannot work.
    pub(crate) fn with_origin(mut self, origin: Option<String>) -> Transport {
        self.origin = origin;
        self
    }

    /// A connection failure that retrying cannot cure, before the system ever answered: the
    /// error, naming the address's origin.
    fn hopeless(&self, e: &reqwest::Error) -> Option<ConnectError> {
        if self.answered.load(Ordering::SeqCst) {
            return None;
        }
        let why = hopeless_connect(e)?;
        let from = match &self.origin {
            Some(o) => format!("; the address comes from {o}"),
            None => String::new(),
        };
        Some(ConnectError::Unreachable {
            system: self.system,
            url: self.base.clone(),
            reason: format!("{why}{from}"),
        })
    }

    /// Announces a retry to the person running the command.
    fn announce(&self, err: &ConnectError, attempt: u32, delay: Duration) {
        let what = match err {
            ConnectError::Unavailable { status: 429, .. } => {
                // Pacing is normal; only a wait worth noticing is announced.
                if delay < Duration::from_secs(2) {
                    return;
                }
                format!("{} asks Tandem to slow down", self.system)
            }
            ConnectError::Unavailable { status, .. } => {
                format!("{} answered {status}", self.system)
            }
            ConnectError::Unreachable { reason, .. } => {
                let short = reason.split(':').next().unwrap_or(reason).trim();
                format!("{} is not answering ({short})", self.system)
            }
            _ => return,
        };
        tracing::info!(
            target: NOTICE_TARGET,
            "{what}, retry {attempt} of {} in {}",
            self.retry.retries,
            words(delay)
        );
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn limiter(&self, lane: Lane) -> &Limiter {
        match lane {
            Lane::General => &self.general,
            Lane::Search => &self.search,
        }
    }

    /// The general budget in force (after any retuning by headers).
    pub(crate) fn general_rate(&self) -> RateLimit {
        self.general.current()
    }

    /// Sends `call` with rate limiting, authentication and retries. Returns the answer for 2xx
    /// and for 4xx other than 401/403/423/429 (the caller reads those error bodies); everything
    /// else becomes a [`ConnectError`].
    pub(crate) async fn send(&self, call: &Call) -> Result<Answer, ConnectError> {
        let attempts = AtomicU32::new(0);
        let reauthed = AtomicBool::new(false);
        let policy = self.retry;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.retries as usize)
            .with_jitter();
        if policy.min_delay.is_zero() {
            backoff = backoff.with_min_delay(Duration::from_millis(1));
        }
        let label = call.label();
        let result = (|| self.attempt(call, &attempts, &reauthed))
            .retry(backoff)
            .when(|f: &Failure| matches!(f, Failure::Retry { .. } | Failure::Reauth))
            .adjust(|f: &Failure, d: Option<Duration>| {
                let d = d?;
                Some(match f {
                    Failure::Reauth => Duration::ZERO,
                    // Already capped at `max_server_wait` by `server_wait`.
                    Failure::Retry { wait: Some(w), .. } => *w,
                    _ => d,
                })
            })
            .notify(|f: &Failure, d: Duration| {
                if let Failure::Retry { err, .. } = f {
                    tracing::debug!(request = %label, error = %err, delay_ms = d.as_millis() as u64, "retrying");
                    self.announce(err, attempts.load(Ordering::SeqCst), d);
                }
            })
            .await;
        result.map_err(|f| match f {
            Failure::Retry { err, .. } | Failure::Stop(err) => err,
            Failure::Reauth => ConnectError::Credentials {
                system: self.system,
                status: 401,
                message: "the token was refused".into(),
            },
        })
    }

    async fn attempt(
        &self,
        call: &Call,
        attempts: &AtomicU32,
        reauthed: &AtomicBool,
    ) -> Result<Answer, Failure> {
        let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        self.limiter(call.lane).acquire().await;
        let token = self.auth.token(self).await.map_err(Failure::Stop)?;
        let mut rb = self
            .client
            .request(call.method.clone(), self.url(&call.path));
        if !call.query.is_empty() {
            rb = rb.query(&call.query);
        }
        rb = match &call.body {
            Body::None => rb,
            Body::Json(v) => rb.json(v),
            Body::Form(f) => rb.form(f),
        };
        if call.bearer {
            rb = rb.bearer_auth(token.expose());
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!(API_REQUESTS, "system" => self.system.as_str(),
                    "route" => route(call), "status" => "unreachable")
                .increment(1);
                return Err(self.transport_failure(call, &e, n));
            }
        };
        self.answered.store(true, Ordering::SeqCst);
        let status = resp.status().as_u16();
        metrics::counter!(API_REQUESTS, "system" => self.system.as_str(),
            "route" => route(call), "status" => status.to_string())
        .increment(1);
        let headers = resp.headers().clone();
        self.note_date(&headers);
        let accelo_429 = self.style == HeaderStyle::Accelo && status == 429;
        if !accelo_429 {
            self.observe(&headers);
        }
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return Err(self.transport_failure(call, &e, n)),
        };
        match classify(status, call.idempotent) {
            Verdict::Done => Ok(Answer { status, body }),
            Verdict::Reauth => {
                if !reauthed.swap(true, Ordering::SeqCst) && self.auth.refused(&token).await {
                    Err(Failure::Reauth)
                } else {
                    let (_, message) = describe_error(&body);
                    Err(Failure::Stop(ConnectError::Credentials {
                        system: self.system,
                        status,
                        message,
                    }))
                }
            }
            Verdict::Refused => {
                let (_, message) = describe_error(&body);
                Err(Failure::Stop(ConnectError::Credentials {
                    system: self.system,
                    status,
                    message,
                }))
            }
            Verdict::Retry => Err(Failure::Retry {
                wait: if accelo_429 {
                    self.accelo_throttled(&headers, unix_now())
                } else {
                    server_wait(
                        self.style,
                        status,
                        &headers,
                        unix_now(),
                        self.retry.max_server_wait,
                    )
                },
                err: ConnectError::Unavailable {
                    system: self.system,
                    request: call.label(),
                    status,
                    attempts: n,
                },
            }),
            Verdict::Unknown => Err(Failure::Stop(ConnectError::OutcomeUnknown {
                system: self.system,
                request: call.label(),
                reason: format!("answered {status}"),
            })),
        }
    }

    fn transport_failure(&self, call: &Call, e: &reqwest::Error, attempt: u32) -> Failure {
        let reason = transport_reason(e);
        if let Some(err) = self.hopeless(e) {
            return Failure::Stop(err);
        }
        if e.is_connect() {
            // Nothing reached the system: always safe to try again.
            return Failure::Retry {
                wait: None,
                err: ConnectError::Unreachable {
                    system: self.system,
                    url: self.base.clone(),
                    reason: format!("{reason} (after {attempt} attempts)"),
                },
            };
        }
        if call.idempotent {
            Failure::Retry {
                wait: None,
                err: ConnectError::Unreachable {
                    system: self.system,
                    url: self.base.clone(),
                    reason: format!("{reason} on `{}` (after {attempt} attempts)", call.label()),
                },
            }
        } else {
            Failure::Stop(ConnectError::OutcomeUnknown {
                system: self.system,
                request: call.label(),
                reason,
            })
        }
    }

    /// An Accelo 429: how long this request waits before it is sent again. An exhausted budget
    /// ([`BudgetSeen::throttled`]) pauses every request until the reset (or the `Retry-After`);
    /// a transient 429 delays only this request, by its `Retry-After` or, without one, by the
    /// usual backoff (`None`).
    pub(crate) fn accelo_throttled(&self, h: &HeaderMap, now_unix: i64) -> Option<Duration> {
        let cap = self.retry.max_server_wait;
        let after = retry_after(h, now_unix, cap);
        let exhausted = lock(&self.budget).throttled();
        if !exhausted {
            tracing::debug!(
                target: "tandem::connect",
                "accelo answered 429 with budget left: retrying this request only"
            );
            return after;
        }
        let wait = after.or_else(|| {
            header_i64(h, "x-ratelimit-reset").map(|reset| secs_until(reset, now_unix).min(cap))
        });
        if let Some(wait) = wait {
            tracing::debug!(
                target: "tandem::connect",
                wait_s = wait.as_secs(),
                "accelo's hourly budget is used up: pausing every request until it resets"
            );
            self.general
                .pause_until(instant_after(Instant::now(), wait));
        }
        wait
    }

    /// Follows the rate-limit headers of an answer.
    fn observe(&self, h: &HeaderMap) {
        self.note_windows(h);
        let remaining = match self.style {
            HeaderStyle::HubSpot => header_u64(h, "x-hubspot-ratelimit-remaining"),
            HeaderStyle::Accelo => header_u64(h, "x-ratelimit-remaining"),
        };
        if let Some(n) = remaining {
            metrics::gauge!(API_BUDGET_REMAINING, "system" => self.system.as_str()).set(n as f64);
        }
        match self.style {
            HeaderStyle::HubSpot => {
                // A window of zero or longer than a day is not believable: ignored.
                let interval = header_u64(h, "x-hubspot-ratelimit-interval-milliseconds")
                    .map(Duration::from_millis)
                    .filter(|d| !d.is_zero() && *d <= MAX_REPORTED_INTERVAL);
                if let (Some(max), Some(per)) = (header_u64(h, "x-hubspot-ratelimit-max"), interval)
                {
                    let requests = u32::try_from(max).unwrap_or(u32::MAX);
                    if self.general.retune(RateLimit { requests, per }) {
                        tracing::debug!(
                            requests,
                            per_ms = per.as_millis() as u64,
                            "hubspot budget retuned"
                        );
                    }
                }
                if header_u64(h, "x-hubspot-ratelimit-remaining") == Some(0) {
                    // The window is full. Tandem spaces its own requests evenly, so the oldest
                    // one leaves the window within about one slot: wait that long. If others
                    // share the budget and the window stays full, the 429s that follow are
                    // retried with exponential backoff.
                    let cur = self.general.current();
                    let slot = (interval.unwrap_or(cur.per) / cur.requests.max(1)).clamp(
                        Duration::from_millis(1),
                        self.retry.max_server_wait.max(Duration::from_millis(1)),
                    );
                    self.general
                        .pause_until(instant_after(Instant::now(), slot));
                }
            }
            HeaderStyle::Accelo => {
                lock(&self.budget).answered(header_u64(h, "x-ratelimit-remaining"));
                if let Some(limit) = header_u64(h, "x-ratelimit-limit") {
                    let requests = u32::try_from(limit).unwrap_or(u32::MAX);
                    let per = self.general.configured.per;
                    self.general.retune(RateLimit { requests, per });
                }
                if header_u64(h, "x-ratelimit-remaining") == Some(0)
                    && let Some(reset) = header_i64(h, "x-ratelimit-reset")
                {
                    let wait = secs_until(reset, unix_now()).min(self.retry.max_server_wait);
                    self.general
                        .pause_until(instant_after(Instant::now(), wait));
                }
            }
        }
    }

    /// The token the next request would carry (obtained or refreshed as needed).
    pub(crate) async fn token(&self) -> Result<Secret, ConnectError> {
        self.auth.token(self).await
    }

    /// Posts a form to a token endpoint (outside the rate limits), retrying while the endpoint
    /// cannot be reached or answers 429 / 5xx. Token requests may be repeated safely.
    pub(crate) async fn token_request(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &Secret)>,
    ) -> Result<TokenAnswer, ConnectError> {
        let policy = self.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay.max(Duration::from_millis(1)))
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.retries as usize)
            .with_jitter();
        let attempts = AtomicU32::new(0);
        let once = || async {
            let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let mut rb = self.client.post(self.url(path)).form(form);
            if let Some((user, pass)) = basic {
                rb = rb.basic_auth(user, Some(pass.expose()));
            }
            let resp = rb.send().await.map_err(|e| match self.hopeless(&e) {
                Some(err) => Failure::Stop(err),
                None => Failure::Retry {
                    wait: None,
                    err: ConnectError::Unreachable {
                        system: self.system,
                        url: self.base.clone(),
                        reason: format!("{} (after {n} attempts)", transport_reason(&e)),
                    },
                },
            })?;
            self.answered.store(true, Ordering::SeqCst);
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| Failure::Retry {
                wait: None,
                err: ConnectError::Unreachable {
                    system: self.system,
                    url: self.base.clone(),
                    reason: format!("{} (after {n} attempts)", transport_reason(&e)),
                },
            })?;
            match status {
                200..=299 => serde_json::from_slice::<TokenAnswer>(&body).map_err(|e| {
                    Failure::Stop(ConnectError::Protocol {
                        system: self.system,
                        request: format!("POST {path}"),
                        message: format!("the token answer does not parse: {e}"),
                    })
                }),
                429 | 500..=599 => Err(Failure::Retry {
                    wait: server_wait(
                        self.style,
                        status,
                        &headers,
                        unix_now(),
                        policy.max_server_wait,
                    ),
                    err: ConnectError::Unavailable {
                        system: self.system,
                        request: format!("POST {path}"),
                        status,
                        attempts: n,
                    },
                }),
                _ => {
                    let (category, message) = describe_error(&body);
                    let message = match (category.is_empty(), message.is_empty()) {
                        (false, false) => format!("{category}: {message}"),
                        (false, true) => category,
                        _ => message,
                    };
                    Err(Failure::Stop(ConnectError::Credentials {
                        system: self.system,
                        status,
                        message,
                    }))
                }
            }
        };
        once.retry(backoff)
            .when(|f: &Failure| matches!(f, Failure::Retry { .. }))
            .adjust(|f: &Failure, d: Option<Duration>| {
                let d = d?;
                Some(match f {
                    Failure::Retry { wait: Some(w), .. } => *w,
                    _ => d,
                })
            })
            .notify(|f: &Failure, d: Duration| {
                if let Failure::Retry { err, .. } = f {
                    self.announce(err, attempts.load(Ordering::SeqCst), d);
                }
            })
            .await
            .map_err(|f| match f {
                Failure::Retry { err, .. } | Failure::Stop(err) => err,
                Failure::Reauth => ConnectError::Credentials {
                    system: self.system,
                    status: 401,
                    message: "the token endpoint refused the request".into(),
                },
            })
    }
}

/// A transport error in words, without the URL (which reqwest would otherwise append).
/// Why a connection could not be opened, when trying again cannot help: nothing listens at the
/// address, or its host name does not resolve.
fn hopeless_connect(e: &reqwest::Error) -> Option<&'static str> {
    if !e.is_connect() {
        return None;
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some("nothing is listening at this address (connection refused)");
        }
        let text = s.to_string().to_lowercase();
        if text.contains("dns error")
            || text.contains("failed to lookup address")
            || text.contains("name or service not known")
            || text.contains("no such host")
        {
            return Some("its host name does not resolve");
        }
        src = s.source();
    }
    None
}

/// A wait in words: `8 s`, `2 min 5 s`, `250 ms`.
fn words(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{} ms", d.as_millis())
    } else if secs < 60 {
        format!("{secs} s")
    } else if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "the connection was lost"
    };
    let mut detail = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const HOUR: Duration = Duration::from_secs(3600);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_retry_policy_signature() {
        // Reads and updates: every transient status is retried.
        for s in [423, 429, 477, 500, 502, 503, 504] {
            assert_eq!(classify(s, true), Verdict::Retry, "{s}");
        }
        // Creates: throttling is retried (nothing was applied), a 5xx is an unknown outcome.
        for s in [423, 429] {
            assert_eq!(classify(s, false), Verdict::Retry, "{s}");
        }
        for s in [500, 502, 503, 504] {
            assert_eq!(classify(s, false), Verdict::Unknown, "{s}");
        }
        assert_eq!(classify(401, true), Verdict::Reauth);
        assert_eq!(classify(403, false), Verdict::Refused);
        for s in [200, 201, 204, 207, 400, 404, 409] {
            assert_eq!(classify(s, false), Verdict::Done, "{s}");
            assert_eq!(classify(s, true), Verdict::Done, "{s}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = 1_700_000_000;
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now, HOUR),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")]), now, HOUR),
            Some(Duration::from_millis(500))
        );
        // 2023-11-14T22:13:30Z is now + 10 s.
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:30 GMT")]),
                now,
                HOUR
            ),
            Some(Duration::from_secs(10))
        );
        // A date in the past means "now".
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:00 GMT")]),
                now,
                HOUR
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "soon")]), now, HOUR),
            None
        );
        assert_eq!(retry_after(&HeaderMap::new(), now, HOUR), None);
    }

    #[test]
    fn hostile_retry_after_values_are_capped_or_ignored() {
        let now = 1_700_000_000;
        let cap = Duration::from_secs(60);
        for huge in [
            "1e20",
            "1e300",
            "18446744073709551616",
            "99999999999999999999.5",
        ] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", huge)]), now, cap),
                Some(cap),
                "{huge}"
            );
        }
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", &u64::MAX.to_string())]),
                now,
                cap
            ),
            Some(cap)
        );
        for junk in ["NaN", "nan", "inf", "-inf", "-1", "-0.5", "1e400"] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", junk)]), now, cap),
                None,
                "{junk}"
            );
        }
        // A date far in the future is the cap; through server_wait as well.
        let far = headers(&[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")]);
        assert_eq!(retry_after(&far, now, cap), Some(cap));
        assert_eq!(
            server_wait(HeaderStyle::HubSpot, 429, &far, now, cap),
            Some(cap)
        );
        // An Accelo reset at the end of time, or before the epoch.
        let reset = headers(&[("x-ratelimit-reset", &i64::MAX.to_string())]);
        assert_eq!(
            server_wait(HeaderStyle::Accelo, 429, &reset, now, cap),
            Some(cap)
        );
        let reset = headers(&[("x-ratelimit-reset", &i64::MIN.to_string())]);
        assert_eq!(
            server_wait(HeaderStyle::Accelo, 429, &reset, now, cap),
            Some(Duration::ZERO)
        );
        // The 2-second lock wait is capped too (tests use tiny caps).
        assert_eq!(
            server_wait(
                HeaderStyle::HubSpot,
                423,
                &HeaderMap::new(),
                now,
                Duration::from_millis(5)
            ),
            Some(Duration::from_millis(5))
        );
    }

    fn transport(style: HeaderStyle, retry: RetryPolicy) -> Transport {
        Transport::new(
            System::HubSpot,
            "http://127.0.0.1:9",
            Duration::from_secs(1),
            retry,
            RateLimit::HUBSPOT_BURST,
            RateLimit::HUBSPOT_SEARCH,
            Arc::new(StaticToken(Secret::new("t"))),
            style,
        )
        .unwrap()
    }

    #[test]
    fn hostile_rate_limit_headers_never_panic_and_pause_at_most_the_cap() {
        let retry = RetryPolicy {
            max_server_wait: Duration::from_secs(30),
            ..RetryPolicy::default()
        };
        let paused = |t: &Transport| *lock(&t.general.paused_until);
        let hs = transport(HeaderStyle::HubSpot, retry);
        let start = Instant::now();
        for (interval, max) in [
            (u64::MAX.to_string(), "1"),
            (u64::MAX.to_string(), "0"),
            ("18446744073709551615".to_string(), "4294967296"),
            ((MAX_REPORTED_INTERVAL.as_millis() + 1).to_string(), "1"),
            ("0".to_string(), "1"),
        ] {
            hs.observe(&headers(&[
                ("x-hubspot-ratelimit-interval-milliseconds", &interval),
                ("x-hubspot-ratelimit-max", max),
                ("x-hubspot-ratelimit-remaining", "0"),
            ]));
            // Unbelievable windows are ignored: the budget stays the configured one.
            assert_eq!(
                hs.general_rate(),
                RateLimit::HUBSPOT_BURST,
                "{interval}/{max}"
            );
            let until = paused(&hs).unwrap();
            assert!(
                until <= Instant::now() + retry.max_server_wait,
                "{interval}"
            );
            assert!(until >= start);
        }
        // A believable tight window is followed, and its slot pauses at most the cap.
        hs.observe(&headers(&[
            ("x-hubspot-ratelimit-interval-milliseconds", "86400000"),
            ("x-hubspot-ratelimit-max", "1"),
            ("x-hubspot-ratelimit-remaining", "0"),
        ]));
        assert_eq!(hs.general_rate().requests, 1);
        assert!(paused(&hs).unwrap() <= Instant::now() + retry.max_server_wait);

        let ac = transport(HeaderStyle::Accelo, retry);
        for reset in [i64::MAX.to_string(), i64::MIN.to_string(), "-1".to_string()] {
            ac.observe(&headers(&[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ]));
            assert!(paused(&ac).unwrap() <= Instant::now() + retry.max_server_wait);
        }
        ac.observe(&headers(&[("x-ratelimit-limit", &u64::MAX.to_string())]));
        ac.observe(&headers(&[("x-ratelimit-limit", "0")]));
        // Even an absurd configured wait cannot overflow an instant.
        let ac = transport(
            HeaderStyle::Accelo,
            RetryPolicy {
                max_server_wait: Duration::MAX,
                ..RetryPolicy::default()
            },
        );
        ac.observe(&headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &i64::MAX.to_string()),
        ]));
        assert!(paused(&ac).unwrap() <= Instant::now() + MAX_PERIOD);
    }

    #[test]
    fn accelo_tells_a_transient_429_from_an_exhausted_budget() {
        let retry = RetryPolicy {
            max_server_wait: Duration::from_secs(3600),
            ..RetryPolicy::default()
        };
        let paused = |t: &Transport| *lock(&t.general.paused_until);
        let now = unix_now();
        let reset = (now + 60).to_string();
        let answer = |remaining: &str| {
            headers(&[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", remaining),
                ("x-ratelimit-reset", &reset),
            ])
        };
        // What the simulator's injected 429 (and a proxy's) looks like: nothing left, reset in
        // a minute.
        let throttled = answer("0");
        let ac = transport(HeaderStyle::Accelo, retry);
        ac.observe(&answer("4000"));
        // Plenty was left: this request alone is retried after the usual backoff.
        assert_eq!(ac.accelo_throttled(&throttled, now), None);
        assert_eq!(paused(&ac), None);
        // Its Retry-After is honoured, for it alone.
        ac.observe(&answer("3999"));
        let mut with_after = answer("0");
        with_after.insert("retry-after", "2".parse().unwrap());
        assert_eq!(
            ac.accelo_throttled(&with_after, now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(paused(&ac), None);
        // 429s that keep coming are the budget, whatever was left before: everything waits
        // for the reset.
        ac.observe(&answer("3998"));
        assert_eq!(ac.accelo_throttled(&throttled, now), None);
        assert_eq!(ac.accelo_throttled(&throttled, now), None);
        let wait = ac.accelo_throttled(&throttled, now).unwrap();
        assert!(wait > Duration::from_secs(55) && wait <= Duration::from_secs(60));
        assert!(paused(&ac).is_some());
        // A budget reported nearly used up: the first 429 pauses everything.
        let ac = transport(HeaderStyle::Accelo, retry);
        ac.observe(&answer("3"));
        assert!(ac.accelo_throttled(&throttled, now).is_some());
        assert!(paused(&ac).is_some());
        // A success that reports nothing left pauses too (the budget is used up).
        let ac = transport(HeaderStyle::Accelo, retry);
        ac.observe(&answer("0"));
        assert!(paused(&ac).is_some());
    }

    #[test]
    fn budgets_with_absurd_windows_still_build() {
        // governor panics on periods over 584 years; the period is clamped.
        for per in [Duration::MAX, Duration::from_secs(u64::MAX)] {
            for window in [Window::Rolling, Window::Fixed] {
                let l = Limiter::new(RateLimit { requests: 1, per }, window);
                assert_eq!(l.current().per, per);
                l.retune(RateLimit {
                    requests: 1,
                    per: Duration::MAX,
                });
                l.retune(RateLimit {
                    requests: u32::MAX,
                    per: Duration::from_nanos(1),
                });
            }
        }
    }

    #[test]
    fn hostile_token_lifetimes_are_clamped() {
        let now = Instant::now();
        let default = Duration::from_secs(1800);
        for huge in [u64::MAX, u64::MAX / 1000, 10_000_000_000_000] {
            let t = CachedToken::new(Secret::new("t"), Some(huge), default, now);
            assert_eq!(t.lifetime, MAX_TOKEN_LIFETIME, "{huge}");
            assert!(t.expires_at <= now + MAX_TOKEN_LIFETIME);
            assert!(t.usable(now, Duration::from_secs(300)));
        }
        let zero = CachedToken::new(Secret::new("t"), Some(0), default, now);
        assert_eq!(zero.lifetime, Duration::from_secs(1));
        let none = CachedToken::new(Secret::new("t"), None, default, now);
        assert_eq!(none.lifetime, default);
        assert_eq!(none.expires_at, now + default);
        // An absurd margin is no overflow either (it is at most half the lifetime).
        assert!(none.usable(now, Duration::MAX));
        assert!(!none.usable(now + default / 2, Duration::MAX));
        // `expires_in` as the token endpoint may send it: huge numbers, floats, junk.
        for body in [
            r#"{"access_token":"x","expires_in":1e300}"#,
            r#"{"access_token":"x","expires_in":18446744073709551615}"#,
            r#"{"access_token":"x","expires_in":"99999999999999999999999"}"#,
            r#"{"access_token":"x","expires_in":-5}"#,
        ] {
            let a: TokenAnswer = serde_json::from_str(body).unwrap();
            let t = CachedToken::new(a.access_token, a.expires_in, default, now);
            assert!(t.lifetime <= MAX_TOKEN_LIFETIME, "{body}");
        }
    }

    #[test]
    fn server_wait_sources() {
        let now = 1_700_000_000;
        let reset = headers(&[
            ("x-ratelimit-reset", "1700000042"),
            ("x-ratelimit-remaining", "0"),
        ]);
        assert_eq!(
            server_wait(HeaderStyle::Accelo, 429, &reset, now, HOUR),
            Some(Duration::from_secs(42))
        );
        // HubSpot does not send X-RateLimit-Reset; it is not read for it.
        assert_eq!(
            server_wait(HeaderStyle::HubSpot, 429, &reset, now, HOUR),
            None
        );
        // Retry-After wins over the reset.
        let both = headers(&[("x-ratelimit-reset", "1700000042"), ("retry-after", "3")]);
        assert_eq!(
            server_wait(HeaderStyle::Accelo, 429, &both, now, HOUR),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            server_wait(HeaderStyle::HubSpot, 423, &HeaderMap::new(), now, HOUR),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            server_wait(HeaderStyle::HubSpot, 503, &HeaderMap::new(), now, HOUR),
            None
        );
    }

    #[test]
    fn limiter_follows_tighter_reported_budgets_only() {
        let l = Limiter::new(RateLimit::HUBSPOT_BURST, Window::Rolling);
        // Free tier: 100 per 10 s is tighter — followed.
        assert!(l.retune(RateLimit {
            requests: 100,
            per: Duration::from_secs(10)
        }));
        assert_eq!(l.current().requests, 100);
        // Same report again: no change.
        assert!(!l.retune(RateLimit {
            requests: 100,
            per: Duration::from_secs(10)
        }));
        // A larger reported budget brings back the configured cap, never more.
        assert!(l.retune(RateLimit {
            requests: 250,
            per: Duration::from_secs(10)
        }));
        assert_eq!(l.current(), RateLimit::HUBSPOT_BURST);
        assert!(!l.retune(RateLimit {
            requests: 0,
            per: Duration::from_secs(10)
        }));
    }

    #[tokio::test]
    async fn limiter_pause_holds_requests() {
        let l = Limiter::new(
            RateLimit {
                requests: 1000,
                per: Duration::from_secs(1),
            },
            Window::Fixed,
        );
        let start = Instant::now();
        l.pause_until(start + Duration::from_millis(120));
        // An earlier pause never shortens a later one.
        l.pause_until(start + Duration::from_millis(10));
        l.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(120));
    }

    #[tokio::test]
    async fn fixed_window_limiter_spends_the_burst_then_spaces() {
        let l = Limiter::new(
            RateLimit {
                requests: 4,
                per: Duration::from_millis(200),
            },
            Window::Fixed,
        );
        let start = Instant::now();
        for _ in 0..6 {
            l.acquire().await;
        }
        // 4 at once, then one every 50 ms: the 6th waits at least ~100 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn rolling_window_limiter_never_exceeds_the_budget_in_any_window() {
        let rate = RateLimit {
            requests: 5,
            per: Duration::from_millis(200),
        };
        let l = Limiter::new(rate, Window::Rolling);
        let mut sent = Vec::new();
        for _ in 0..12 {
            l.acquire().await;
            sent.push(std::time::Instant::now());
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .filter(|u| u.duration_since(*t) < rate.per)
                .count();
            assert!(in_window <= 5, "{in_window} requests within one window");
        }
    }

    #[test]
    fn token_refresh_ahead_of_expiry() {
        let now = Instant::now();
        let t = CachedToken {
            token: Secret::new("t"),
            expires_at: now + Duration::from_secs(1800),
            lifetime: Duration::from_secs(1800),
        };
        let margin = Duration::from_secs(300);
        assert!(t.usable(now, margin));
        assert!(t.usable(now + Duration::from_secs(1499), margin));
        assert!(!t.usable(now + Duration::from_secs(1500), margin));
        // A 2-second token is used for its first second, not refreshed on every request.
        let short = CachedToken {
            token: Secret::new("t"),
            expires_at: now + Duration::from_secs(2),
            lifetime: Duration::from_secs(2),
        };
        assert!(short.usable(now, margin));
        assert!(!short.usable(now + Duration::from_secs(1), margin));
    }

    #[test]
    fn error_bodies_of_both_systems() {
        let hs = br#"{"status":"error","message":"Property values were not valid","category":"VALIDATION_ERROR"}"#;
        assert_eq!(
            describe_error(hs),
            (
                "VALIDATION_ERROR".into(),
                "Property values were not valid".into()
            )
        );
        let ac = br#"{"meta":{"status":"invalid_request","message":"Invalid company id"},"response":null}"#;
        assert_eq!(
            describe_error(ac),
            ("invalid_request".into(), "Invalid company id".into())
        );
        let oauth = br#"{"error":"invalid_client","error_description":"bad secret"}"#;
        assert_eq!(
            describe_error(oauth),
            ("invalid_client".into(), "bad secret".into())
        );
        let html = "<html>".repeat(100);
        let (c, m) = describe_error(html.as_bytes());
        assert!(c.is_empty());
        assert!(m.chars().count() <= 201);
    }

    #[test]
    fn token_answers_parse_with_numbers_or_strings() {
        let a: TokenAnswer = serde_json::from_str(
            r#"{"access_token":"x","expires_in":"1800","token_type":"bearer"}"#,
        )
        .unwrap();
        assert_eq!(a.expires_in, Some(1800));
        assert_eq!(format!("{:?}", a.access_token), "***");
        let b: TokenAnswer =
            serde_json::from_str(r#"{"access_token":"x","refresh_token":"r","expires_in":1800}"#)
                .unwrap();
        assert_eq!(b.expires_in, Some(1800));
        assert!(b.refresh_token.is_some());
    }
}
