//! Pieces both simulators share: the monotonic clock, request counters (`/_sandbox/stats`),
//! rolling-window rate limiters, fault injection (seeded), and small HTTP helpers.
//!
//! Nothing here knows about HubSpot or Accelo wire shapes; each simulator renders its own
//! error bodies and headers from the decisions taken here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Locks a mutex, recovering the data if a previous holder panicked (the simulators never
/// leave their state half-changed across a panic point, so the data is still consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A wall clock that never goes backwards: every reading is ≥ the previous one, so ordering
/// records by their modification time is stable.
#[derive(Debug, Default)]
pub struct Clock {
    last_ms: AtomicI64,
}

impl Clock {
    /// Milliseconds since the Unix epoch, never less than the previous reading.
    pub fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let prev = self.last_ms.fetch_max(wall, Ordering::SeqCst);
        prev.max(wall)
    }

    /// Seconds since the Unix epoch (Accelo's resolution), never less than the previous reading.
    pub fn now_s(&self) -> i64 {
        self.now_ms() / 1000
    }
}

/// Formats epoch milliseconds the way HubSpot does: `2024-01-02T03:04:05.678Z`.
pub fn iso_ms(ms: i64) -> String {
    match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// Parses HubSpot date input: epoch milliseconds, ISO-8601 date-time or `YYYY-MM-DD`.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Request counters

/// Request counters of one simulator, served by `GET /_sandbox/stats`.
///
/// What counts:
/// - `requests`: every request that reached the API (not `/_sandbox/…`), keyed by method and
///   route template (`"GET /crm/v3/objects/companies"`, `"PUT /api/v0/affiliations/{id}"`),
///   whatever its outcome (including 401, 429 and injected faults). Requests to unknown routes
///   are keyed `"<METHOD> (unmatched)"`.
/// - `total`: the sum of `requests`.
/// - `writes`: requests that may change data: every method other than GET/HEAD/OPTIONS, except
///   token requests (`/oauth…`) and read-only POSTs (HubSpot search and batch reads, v4
///   association batch reads, Accelo POSTs overridden with `_method=get`). Counted when received,
///   whether or not they succeed.
/// - `throttled`: responses with status 429 (rate limits and injected storms/errors).
/// - `faults`: injected faults by kind.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsInner>,
}

#[derive(Debug, Default, Clone)]
struct StatsInner {
    requests: BTreeMap<String, u64>,
    total: u64,
    writes: u64,
    throttled: u64,
    faults: BTreeMap<String, u64>,
}

impl Stats {
    /// Counts one request under `key`; `write` says whether it counts as a write.
    pub fn count(&self, key: String, write: bool) {
        let mut s = lock(&self.inner);
        *s.requests.entry(key).or_insert(0) += 1;
        s.total += 1;
        if write {
            s.writes += 1;
        }
    }

    /// Counts one 429 response.
    pub fn throttled(&self) {
        lock(&self.inner).throttled += 1;
    }

    /// Counts one injected fault of `kind`.
    pub fn fault(&self, kind: &str) {
        *lock(&self.inner)
            .faults
            .entry(kind.to_string())
            .or_insert(0) += 1;
    }

    /// Forgets every count.
    pub fn reset(&self) {
        *lock(&self.inner) = StatsInner::default();
    }

    /// The JSON document of `GET /_sandbox/stats` (without simulator-specific extras).
    pub fn to_json(&self) -> Value {
        let s = lock(&self.inner).clone();
        json!({
            "requests": s.requests,
            "total": s.total,
            "writes": s.writes,
            "throttled": s.throttled,
            "faults": s.faults,
        })
    }
}

/// Route-template segments replaced by the concrete value in stats keys, so that
/// `/crm/v3/objects/{objectType}` is counted as `/crm/v3/objects/companies`.
const CONCRETE_SEGMENTS: &[&str] = &[
    "{objectType}",
    "{toObjectType}",
    "{fromObjectType}",
    "{action}",
];

/// Builds the stats key `"METHOD /template"` from the matched route template and the actual
/// path: object-type segments take their concrete (canonical) value, ids stay templated.
pub fn route_key(method: &Method, template: Option<&str>, path: &str) -> String {
    let Some(template) = template else {
        return format!("{method} (unmatched)");
    };
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    let mut out = Vec::with_capacity(t.len());
    for (i, seg) in t.iter().enumerate() {
        if CONCRETE_SEGMENTS.contains(seg) {
            let actual = p.get(i).copied().unwrap_or(seg);
            out.push(canonical_object(actual).to_string());
        } else {
            out.push((*seg).to_string());
        }
    }
    format!("{method} {}", out.join("/"))
}

/// HubSpot object type ids and singular names map to the plural names.
pub fn canonical_object(s: &str) -> &str {
    match s {
        "0-1" | "contact" => "contacts",
        "0-2" | "company" => "companies",
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

/// A sliding-log rate limiter: at most `max` admitted requests in any `window`.
#[derive(Debug)]
pub struct RollingWindow {
    max: Option<u32>,
    window: Duration,
    admitted: Mutex<VecDeque<Instant>>,
}

/// The outcome of asking a [`RollingWindow`] to admit a request.
#[derive(Debug, Clone, Copy)]
pub struct WindowDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests left in the current window after this one.
    pub remaining: u32,
    /// When the oldest admitted request leaves the window.
    pub reset_in: Duration,
}

impl RollingWindow {
    /// A limiter admitting `max` requests per `window` (`None` = unlimited).
    pub fn new(max: Option<u32>, window: Duration) -> RollingWindow {
        RollingWindow {
            max,
            window,
            admitted: Mutex::new(VecDeque::new()),
        }
    }

    /// Admits one request if the window has room, recording it.
    pub fn admit(&self) -> WindowDecision {
        let Some(max) = self.max else {
            return WindowDecision {
                allowed: true,
                remaining: u32::MAX,
                reset_in: Duration::ZERO,
            };
        };
        let now = Instant::now();
        let mut q = lock(&self.admitted);
        while let Some(front) = q.front() {
            if now.duration_since(*front) >= self.window {
                q.pop_front();
            } else {
                break;
            }
        }
        let reset_in = q
            .front()
            .map(|f| self.window.saturating_sub(now.duration_since(*f)))
            .unwrap_or(self.window);
        if (q.len() as u32) < max {
            q.push_back(now);
            WindowDecision {
                allowed: true,
                remaining: max - q.len() as u32,
                reset_in,
            }
        } else {
            WindowDecision {
                allowed: false,
                remaining: 0,
                reset_in,
            }
        }
    }

    /// Forgets every admitted request.
    pub fn reset(&self) {
        lock(&self.admitted).clear();
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.window
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

/// Fault injection settings of one simulator (`POST /_sandbox/faults`, `--faults`).
///
/// Every random decision comes from a ChaCha8 generator seeded with `seed`, so a run with the
/// same request sequence sees the same faults. Injected faults are decided before the request
/// reaches its handler: a request failed by a fault never changes any state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the fault generator.
    #[serde(default)]
    pub seed: u64,
    /// Probability (0–1) of answering with each HTTP status instead of serving the request,
    /// e.g. `{"429":0.05,"500":0.05,"502":0.02,"503":0.02}`.
    #[serde(default)]
    pub errors: BTreeMap<u16, f64>,
    /// Fixed extra latency before every API response, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Random extra latency (uniform 0..=jitter) added to `latency_ms`.
    #[serde(default)]
    pub latency_jitter_ms: u64,
    /// Probability of closing the connection without any response, before the request is
    /// served (nothing changes).
    #[serde(default)]
    pub drop_rate: f64,
    /// Probability of serving the request and then closing the connection without sending the
    /// response: the change happened but the client cannot know (tests idempotent retries).
    #[serde(default)]
    pub drop_after_rate: f64,
    /// The next N API requests are all answered 429 (a "429 storm").
    #[serde(default)]
    pub storm_429: u64,
    /// Probability that a webhook event is never delivered.
    #[serde(default)]
    pub webhook_loss: f64,
    /// Probability that a webhook event is delivered twice (in a later batch).
    #[serde(default)]
    pub webhook_duplicate: f64,
    /// Probability that a webhook batch is shuffled (events out of order) and held back behind
    /// the next one.
    #[serde(default)]
    pub webhook_reorder: f64,
    /// HubSpot only: search is eventually consistent. A record created or updated less than
    /// this many milliseconds ago (by the simulator's clock) is not yet found by
    /// `POST …/search`; GET, lists and batch reads see it at once. Deterministic: no randomness.
    #[serde(default)]
    pub search_lag_ms: u64,
    /// Only requests to these endpoints see the error, drop and latency faults, named as the
    /// request counters name them (`POST /api/v0/companies`, `POST
    /// /crm/v3/objects/contacts/batch/create`); empty: every API request. Lets a test lose the
    /// answer of exactly the creates and nothing else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
}

impl FaultConfig {
    /// Parses `--faults`: either the JSON form of `POST /_sandbox/faults`, or a compact
    /// comma-separated form `500=0.1,429=0.05,latency=20,jitter=5,drop=0.01,drop_after=0.01,storm=10,
    /// webhook_loss=0.1,webhook_duplicate=0.1,webhook_reorder=0.2,search_lag=2000,seed=3`, with
    /// `only=POST /api/v0/companies|POST /api/v0/contacts` for endpoints separated by `|`.
    pub fn parse(s: &str) -> Result<FaultConfig, String> {
        let s = s.trim();
        if s.starts_with('{') {
            let cfg: FaultConfig =
                serde_json::from_str(s).map_err(|e| format!("invalid faults JSON: {e}"))?;
            cfg.validate()?;
            return Ok(cfg);
        }
        let mut cfg = FaultConfig::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("invalid fault `{part}`: expected `name=value`"));
            };
            let (k, v) = (k.trim(), v.trim());
            let float = || {
                v.parse::<f64>()
                    .map_err(|_| format!("invalid value `{v}` for fault `{k}`"))
            };
            let int = || {
                v.parse::<u64>()
                    .map_err(|_| format!("invalid value `{v}` for fault `{k}`"))
            };
            match k {
                "latency" | "latency_ms" => cfg.latency_ms = int()?,
                "jitter" | "latency_jitter_ms" => cfg.latency_jitter_ms = int()?,
                "drop" | "drop_rate" => cfg.drop_rate = float()?,
                "drop_after" | "drop_after_rate" => cfg.drop_after_rate = float()?,
                "storm" | "storm_429" => cfg.storm_429 = int()?,
                "webhook_loss" => cfg.webhook_loss = float()?,
                "webhook_duplicate" => cfg.webhook_duplicate = float()?,
                "webhook_reorder" => cfg.webhook_reorder = float()?,
                "search_lag" | "search_lag_ms" => cfg.search_lag_ms = int()?,
                "seed" => cfg.seed = int()?,
                "only" => cfg.only = v.split('|').map(|e| e.trim().to_string()).collect(),
                status => {
                    let code: u16 = status.parse().map_err(|_| {
                        format!(
                            "unknown fault `{status}` (expected an HTTP status, `latency`, \
                             `jitter`, `drop`, `drop_after`, `storm`, `webhook_loss`, \
                             `webhook_duplicate`, `webhook_reorder`, `search_lag`, `only` or `seed`)"
                        )
                    })?;
                    cfg.errors.insert(code, float()?);
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that probabilities are within 0–1 and statuses are errors.
    pub fn validate(&self) -> Result<(), String> {
        let prob = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(format!("fault `{name}` must be between 0 and 1, got `{p}`"))
            }
        };
        for (code, p) in &self.errors {
            if !(400..=599).contains(code) {
                return Err(format!(
                    "fault status `{code}` is not an HTTP error status (400–599)"
                ));
            }
            prob(&code.to_string(), *p)?;
        }
        let total: f64 = self.errors.values().sum::<f64>() + self.drop_rate + self.drop_after_rate;
        if total > 1.0 {
            return Err(format!(
                "error and drop probabilities add up to `{total}`, more than 1"
            ));
        }
        prob("drop_rate", self.drop_rate)?;
        prob("drop_after_rate", self.drop_after_rate)?;
        prob("webhook_loss", self.webhook_loss)?;
        prob("webhook_duplicate", self.webhook_duplicate)?;
        prob("webhook_reorder", self.webhook_reorder)?;
        Ok(())
    }
}

/// What the fault injector decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Serve the request normally.
    Pass,
    /// Answer with this status instead (`storm` tells a 429 storm from a random 429).
    Status(u16),
    /// Close the connection without a response.
    Drop,
    /// Serve the request, then close the connection without the response.
    DropAfter,
}

/// The live fault state of one simulator.
#[derive(Debug)]
pub struct Faults {
    inner: Mutex<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    config: FaultConfig,
    storm_left: u64,
    rng: ChaCha8Rng,
}

impl Faults {
    /// Faults as configured.
    pub fn new(config: FaultConfig) -> Faults {
        Faults {
            inner: Mutex::new(FaultState {
                storm_left: config.storm_429,
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                config,
            }),
        }
    }

    /// Replaces the configuration and re-seeds the generator.
    pub fn set(&self, config: FaultConfig) {
        *lock(&self.inner) = FaultState {
            storm_left: config.storm_429,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
        };
    }

    /// The current configuration, with `storm_429` showing the requests left in the storm.
    pub fn config(&self) -> FaultConfig {
        let s = lock(&self.inner);
        let mut c = s.config.clone();
        c.storm_429 = s.storm_left;
        c
    }

    /// How long a HubSpot write stays invisible to search (`search_lag_ms`).
    pub fn search_lag_ms(&self) -> u64 {
        lock(&self.inner).config.search_lag_ms
    }

    /// Decides the fate of one API request, and the latency to add before answering.
    #[cfg(test)]
    pub fn decide(&self) -> (FaultAction, Duration) {
        self.decide_for("")
    }

    /// [`Faults::decide`] for a request to `route` (its counter name): requests outside a
    /// non-empty `only` list pass untouched, without drawing from the generator.
    pub fn decide_for(&self, route: &str) -> (FaultAction, Duration) {
        let mut s = lock(&self.inner);
        if !s.config.only.is_empty() && !s.config.only.iter().any(|o| o == route) {
            return (FaultAction::Pass, Duration::ZERO);
        }
        let latency = if s.config.latency_jitter_ms > 0 {
            let j = s.config.latency_jitter_ms;
            s.config
                .latency_ms
                .saturating_add(s.rng.random_range(0..=j))
        } else {
            s.config.latency_ms
        };
        let latency = Duration::from_millis(latency);
        if s.storm_left > 0 {
            s.storm_left -= 1;
            return (FaultAction::Status(429), latency);
        }
        if s.config.errors.is_empty()
            && s.config.drop_rate <= 0.0
            && s.config.drop_after_rate <= 0.0
        {
            return (FaultAction::Pass, latency);
        }
        let roll: f64 = s.rng.random();
        let mut acc = s.config.drop_rate;
        if roll < acc {
            return (FaultAction::Drop, latency);
        }
        acc += s.config.drop_after_rate;
        if roll < acc {
            return (FaultAction::DropAfter, latency);
        }
        let errors: Vec<(u16, f64)> = s.config.errors.iter().map(|(k, v)| (*k, *v)).collect();
        for (code, p) in errors {
            acc += p;
            if roll < acc {
                return (FaultAction::Status(code), latency);
            }
        }
        (FaultAction::Pass, latency)
    }

    /// Draws a webhook-delivery decision: `(lose, duplicate, reorder)` for one event/batch.
    pub fn webhook_roll(&self) -> (bool, bool, bool) {
        let mut s = lock(&self.inner);
        let (l, d, r) = (
            s.config.webhook_loss,
            s.config.webhook_duplicate,
            s.config.webhook_reorder,
        );
        let lose = l > 0.0 && s.rng.random::<f64>() < l;
        let dup = d > 0.0 && s.rng.random::<f64>() < d;
        let reorder = r > 0.0 && s.rng.random::<f64>() < r;
        (lose, dup, reorder)
    }

    /// A seeded shuffle for reordering a webhook batch.
    pub fn shuffle<T>(&self, items: &mut [T]) {
        use rand::seq::SliceRandom;
        let mut s = lock(&self.inner);
        items.shuffle(&mut s.rng);
    }

    /// A uniform draw in `0..n` from the fault generator (used for retry jitter).
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        lock(&self.inner).rng.random_range(0..n)
    }
}

/// A response whose body fails before anything is written, so hyper closes the connection
/// without sending a status line: the client sees a dropped connection.
pub fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "sandbox fault: connection dropped",
        ))
    });
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = StatusCode::OK;
    r
}

/// The HTML page a gateway in front of the API answers with for 502/503/504 (not JSON: clients
/// must cope with error bodies they cannot parse).
pub fn gateway_html(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} \
         {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json;charset=utf-8")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Parses a raw query string into ordered key/value pairs (repeated keys kept).
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
        .unwrap_or_default()
}

/// A JSON scalar as the string HubSpot/Accelo would store (`null` = empty); `None` for
/// arrays and objects.
pub fn value_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// A correlation id for error bodies (random; it identifies a response, never a record).
pub fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_use_concrete_object_types() {
        assert_eq!(
            route_key(
                &Method::GET,
                Some("/crm/v3/objects/{objectType}/{id}"),
                "/crm/v3/objects/0-2/123"
            ),
            "GET /crm/v3/objects/companies/{id}"
        );
        assert_eq!(
            route_key(
                &Method::POST,
                Some("/crm/v3/objects/{objectType}/batch/{action}"),
                "/crm/v3/objects/contacts/batch/update"
            ),
            "POST /crm/v3/objects/contacts/batch/update"
        );
        assert_eq!(route_key(&Method::GET, None, "/x"), "GET (unmatched)");
    }

    #[test]
    fn compact_fault_syntax_parses_and_validates() {
        let f = FaultConfig::parse("500=0.1,429=0.05,latency=20,drop=0.01,storm=3,seed=9").unwrap();
        assert_eq!(f.errors.get(&500), Some(&0.1));
        assert_eq!(f.errors.get(&429), Some(&0.05));
        assert_eq!(f.latency_ms, 20);
        assert_eq!(f.storm_429, 3);
        assert_eq!(f.seed, 9);
        assert!(FaultConfig::parse("500=1.5").is_err());
        assert!(FaultConfig::parse("200=0.1").is_err());
        assert!(FaultConfig::parse("bogus=1").is_err());
        let j = FaultConfig::parse(r#"{"errors":{"503":0.5},"seed":1}"#).unwrap();
        assert_eq!(j.errors.get(&503), Some(&0.5));
        assert_eq!(j.search_lag_ms, 0, "no lag unless asked");
        assert_eq!(
            FaultConfig::parse("search_lag=1500").unwrap().search_lag_ms,
            1500
        );
        assert_eq!(
            FaultConfig::parse(r#"{"search_lag_ms":250}"#)
                .unwrap()
                .search_lag_ms,
            250
        );
    }

    #[test]
    fn faults_are_reproducible_from_the_seed() {
        let cfg = FaultConfig::parse("500=0.3,503=0.2,drop=0.1,seed=42").unwrap();
        let a = Faults::new(cfg.clone());
        let b = Faults::new(cfg);
        let seq_a: Vec<_> = (0..200).map(|_| a.decide().0).collect();
        let seq_b: Vec<_> = (0..200).map(|_| b.decide().0).collect();
        assert_eq!(seq_a, seq_b);
        let errors = seq_a.iter().filter(|x| **x != FaultAction::Pass).count();
        assert!(
            errors > 60 && errors < 140,
            "about 60% faulted, got {errors}"
        );
    }

    #[test]
    fn storm_answers_the_next_n_requests_429() {
        let f = Faults::new(FaultConfig {
            storm_429: 3,
            ..Default::default()
        });
        let seq: Vec<_> = (0..5).map(|_| f.decide().0).collect();
        assert_eq!(
            seq,
            vec![
                FaultAction::Status(429),
                FaultAction::Status(429),
                FaultAction::Status(429),
                FaultAction::Pass,
                FaultAction::Pass
            ]
        );
    }

    #[test]
    fn rolling_window_admits_max_then_refuses() {
        let w = RollingWindow::new(Some(3), Duration::from_secs(60));
        assert!(w.admit().allowed);
        assert!(w.admit().allowed);
        let third = w.admit();
        assert!(third.allowed);
        assert_eq!(third.remaining, 0);
        assert!(!w.admit().allowed);
        w.reset();
        assert!(w.admit().allowed);
    }

    #[test]
    fn time_parsing_accepts_hubspot_forms() {
        assert_eq!(parse_time_ms("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(
            parse_time_ms("2024-01-02T03:04:05.678Z"),
            Some(1_704_164_645_678)
        );
        assert_eq!(parse_time_ms("2024-01-02"), Some(1_704_153_600_000));
        assert_eq!(iso_ms(1_704_164_645_678), "2024-01-02T03:04:05.678Z");
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
