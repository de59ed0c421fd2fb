//! The Accelo simulator: `/oauth2/v0/token` (client credentials over HTTP Basic) and
//! `/api/v0/` companies, contacts, affiliations, addresses, statuses, progressions and webhook
//! subscriptions, with `_fields`, `_filters`, `_search`, paging, the `{meta, response}`
//! envelope, form-encoded (or JSON) writes, `_method` overrides and the hourly rate limit with
//! its `X-RateLimit-*` headers — plus the `/_sandbox/` admin API.
//!
//! Written from reference/accelo-api-notes.md only; it shares no code with `connect/`.

pub mod api;
pub mod query;
pub mod store;
pub mod webhooks;

use std::future::Future;

use crate::data::SeedData;
use crate::gate::{self, Simulator};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use self::store::{AcEvent, AcStore, Obj};
use crate::common::{
    Clock, FaultConfig, Faults, RollingWindow, Stats, gateway_html, json_response, lock,
    query_pairs, route_key,
};
use crate::data::{AcSeed, SeedSpec};

/// Credentials of the simulated deployment.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Service application client id.
    pub client_id: String,
    /// Service application client secret.
    pub client_secret: String,
    /// Deployment name.
    pub deployment: String,
}

/// Limits of the Accelo simulator.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per hour (`None` = unlimited). Accelo: 5000.
    pub per_hour: Option<u32>,
    /// The window `per_hour` counts over (an hour).
    pub window: Duration,
    /// Default and maximum token lifetime (Accelo default: 30 days).
    pub token_ttl: Duration,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Ac {
    /// The deployment's data.
    pub store: RwLock<AcStore>,
    /// What the data was generated from (for reset).
    pub spec: SeedSpec,
    /// Monotonic clock.
    pub clock: Arc<Clock>,
    /// Request counters.
    pub stats: Stats,
    /// Fault injection.
    pub faults: Arc<Faults>,
    /// Faults at start (restored by reset).
    pub initial_faults: FaultConfig,
    /// Credentials.
    pub creds: Credentials,
    /// Limits.
    pub limits: Limits,
    hourly: RollingWindow,
    /// Failed client authentications at the token endpoint (lockout after 100 in 5 minutes).
    failed_logins: Mutex<Lockout>,
    tokens: Mutex<HashMap<String, Instant>>,
    /// Webhook subscriptions and delivery.
    pub hooks: Arc<webhooks::Hooks>,
    /// The event feed (re-attached on reset).
    pub sink: tokio::sync::mpsc::UnboundedSender<AcEvent>,
    /// This simulator's base URL.
    pub base_url: String,
}

impl Ac {
    /// Builds the simulator state around seeded data.
    #[allow(
        clippy::too_many_arguments,
        reason = "the simulator's parts, each given once at start-up"
    )]
    pub fn new(
        spec: SeedSpec,
        seed: &AcSeed,
        creds: Credentials,
        limits: Limits,
        faults: FaultConfig,
        hooks: Arc<webhooks::Hooks>,
        sink: tokio::sync::mpsc::UnboundedSender<AcEvent>,
        base_url: String,
    ) -> Ac {
        Ac {
            store: RwLock::new(AcStore::from_seed(seed, Some(sink.clone()))),
            spec,
            clock: Arc::new(Clock::default()),
            stats: Stats::default(),
            faults: Arc::new(Faults::new(faults.clone())),
            initial_faults: faults,
            hourly: RollingWindow::new(limits.per_hour, limits.window),
            failed_logins: Mutex::new(Lockout::default()),
            tokens: Mutex::new(HashMap::new()),
            creds,
            limits,
            hooks,
            sink,
            base_url,
        }
    }

    /// Reads the store.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, AcStore> {
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the store.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, AcStore> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Failed logins and the lockout they caused.
#[derive(Debug, Default)]
struct Lockout {
    failures: std::collections::VecDeque<Instant>,
    until: Option<Instant>,
}

/// Failed client authentications that lock the token endpoint.
const LOCKOUT_FAILURES: usize = 100;
/// The lockout window.
const LOCKOUT_WINDOW: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Envelope

const MORE_INFO: &str = "https://api.accelo.com/docs/#status-codes";

/// `{meta: {status: "ok", …}, response}` with HTTP 200.
pub fn ok(response: Value) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "meta": {"status": "ok", "message": "Everything executed as expected.", "more_info": MORE_INFO},
            "response": response,
        }),
    )
}

/// A failed request: `response: null` and the status in `meta`.
pub fn fail(status: StatusCode, meta_status: &str, message: impl Into<String>) -> Response {
    json_response(
        status,
        &json!({
            "meta": {"status": meta_status, "message": message.into(), "more_info": MORE_INFO},
            "response": Value::Null,
        }),
    )
}

/// 400 `invalid_request`.
pub fn invalid(message: impl Into<String>) -> Response {
    fail(StatusCode::BAD_REQUEST, "invalid_request", message)
}

// ---------------------------------------------------------------------------------------------
// Router

/// The simulator's router.
pub fn router(ac: Arc<Ac>) -> Router {
    use api::*;
    let api = Router::new()
        .route("/api/v0/tokeninfo", get(tokeninfo))
        .route(
            "/api/v0/companies",
            get(list_companies).post(create_company),
        )
        .route("/api/v0/companies/count", get(count_companies))
        .route("/api/v0/companies/recent", get(recent_companies))
        .route("/api/v0/companies/newest", get(newest_companies))
        .route("/api/v0/companies/statuses", get(company_statuses))
        .route("/api/v0/companies/statuses/{id}", get(company_status))
        .route(
            "/api/v0/companies/{id}",
            get(get_company).put(update_company).delete(delete_company),
        )
        .route("/api/v0/companies/{id}/status", get(company_status_of))
        .route("/api/v0/companies/{id}/contacts", get(company_contacts))
        .route(
            "/api/v0/companies/{id}/contacts/count",
            get(company_contacts_count),
        )
        .route("/api/v0/companies/{id}/contact", get(company_main_contact))
        .route(
            "/api/v0/companies/{id}/addresses",
            get(company_addresses).post(create_company_address),
        )
        .route(
            "/api/v0/companies/{id}/progressions",
            get(company_progressions),
        )
        .route(
            "/api/v0/companies/{id}/progressions/{progression}/auto",
            post(run_company_progression).put(run_company_progression),
        )
        .route("/api/v0/contacts", get(list_contacts).post(create_contact))
        .route("/api/v0/contacts/count", get(count_contacts))
        .route("/api/v0/contacts/recent", get(recent_contacts))
        .route("/api/v0/contacts/newest", get(newest_contacts))
        .route("/api/v0/contacts/statuses", get(contact_statuses))
        .route("/api/v0/contacts/statuses/{id}", get(contact_status))
        .route(
            "/api/v0/contacts/{id}",
            get(get_contact)
                .put(update_contact)
                .delete(deactivate_contact),
        )
        .route("/api/v0/contacts/{id}/status", get(contact_status_of))
        .route(
            "/api/v0/contacts/{id}/addresses",
            get(contact_addresses).post(create_contact_address),
        )
        .route(
            "/api/v0/contacts/{id}/progressions",
            get(contact_progressions),
        )
        .route(
            "/api/v0/contacts/{id}/progressions/{progression}/auto",
            post(run_contact_progression).put(run_contact_progression),
        )
        .route(
            "/api/v0/affiliations",
            get(list_affiliations).post(create_affiliation),
        )
        .route("/api/v0/affiliations/count", get(count_affiliations))
        .route(
            "/api/v0/affiliations/{id}",
            get(get_affiliation)
                .put(update_affiliation)
                .delete(delete_affiliation),
        )
        .route(
            "/api/v0/addresses",
            get(list_addresses).post(create_address),
        )
        .route("/api/v0/addresses/count", get(count_addresses))
        .route(
            "/api/v0/addresses/{id}",
            get(get_address).put(update_address),
        )
        .route(
            "/api/v0/webhooks/subscriptions",
            get(webhooks::list_subscriptions).post(webhooks::create_subscription),
        )
        .route(
            "/api/v0/webhooks/subscriptions/types",
            get(webhooks::subscription_types),
        )
        .route(
            "/api/v0/webhooks/subscriptions/{id}",
            axum::routing::delete(webhooks::delete_subscription),
        )
        .route("/oauth2/v0/token", post(token))
        .route_layer(middleware::from_fn_with_state(ac.clone(), gate::gate::<Ac>));
    let admin = Router::new()
        .route("/_sandbox/edit", post(api::admin_edit))
        .route("/_sandbox/records/{object}", get(api::admin_records))
        .route("/_sandbox/stats", get(gate::admin_stats::<Ac>))
        .route("/_sandbox/reset", post(gate::admin_reset::<Ac>))
        .route(
            "/_sandbox/revoke_tokens",
            post(gate::admin_revoke_tokens::<Ac>),
        )
        .route(
            "/_sandbox/faults",
            get(gate::admin_get_faults::<Ac>).post(gate::admin_set_faults::<Ac>),
        );
    Router::new()
        .merge(api)
        .merge(admin)
        .fallback(any(unmatched))
        .with_state(ac)
}

/// Applies `_method=get|put|post|delete` before routing (wrap the router with this).
pub fn method_override(mut req: Request) -> Request {
    let wanted = req.uri().query().and_then(|q| {
        query_pairs(Some(q))
            .into_iter()
            .find(|(k, _)| k == "_method")
            .map(|(_, v)| v.to_ascii_uppercase())
    });
    if let Some(m) = wanted.and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        && matches!(m, Method::GET | Method::PUT | Method::POST | Method::DELETE)
    {
        *req.method_mut() = m;
    }
    req
}

async fn unmatched(State(ac): State<Arc<Ac>>, method: Method, uri: Uri) -> Response {
    if !uri.path().starts_with("/_sandbox/") {
        let write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        ac.stats.count(route_key(&method, None, uri.path()), write);
    }
    // Accelo answers unknown URLs with an HTML page, not the envelope.
    let body = format!(
        "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>\
         <p>The requested URL {} was not found on this server.</p></body></html>",
        uri.path()
    );
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header("content-type", "text/html")
        .body(axum::body::Body::from(body))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Gate

/// Auth, rate limits and the handler (the part of the gate a `drop_after` fault still runs).
async fn pass(ac: &Ac, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/oauth2/") {
        return next.run(req).await;
    }
    if let Err(r) = authenticate(ac, req.headers(), req.uri().query()) {
        return r;
    }
    let d = ac.hourly.admit();
    // The unix second by which the oldest request has left the window (rounded up, so that a
    // client waiting until then finds room).
    let reset_at = unix_after(d.reset_in);
    if !d.allowed {
        ac.stats.throttled();
        let mut r = fail(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "Rate limit exceeded for the deployment `{}`: {} requests per hour",
                ac.creds.deployment,
                ac.limits.per_hour.unwrap_or(0)
            ),
        );
        limit_headers(ac, r.headers_mut(), 0, reset_at);
        return r;
    }
    let mut r = next.run(req).await;
    limit_headers(ac, r.headers_mut(), d.remaining, reset_at);
    r
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The first whole unix second at or after `now + d` (at least one second ahead).
fn unix_after(d: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = now.saturating_add(d);
    let secs = at.as_secs() + u64::from(at.subsec_nanos() > 0);
    secs.max(now.as_secs() + 1)
}

fn limit_headers(ac: &Ac, h: &mut HeaderMap, remaining: u32, reset_at: u64) {
    let Some(max) = ac.limits.per_hour else {
        return;
    };
    for (k, v) in [
        ("x-ratelimit-limit", max.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset_at.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

fn injected(ac: &Ac, code: u16) -> Response {
    match code {
        429 => {
            ac.stats.throttled();
            let mut r = fail(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!(
                    "Rate limit exceeded for the deployment `{}`",
                    ac.creds.deployment
                ),
            );
            limit_headers(ac, r.headers_mut(), 0, unix_now() + 60);
            r
        }
        502..=504 => gateway_html(code),
        c => {
            let status = StatusCode::from_u16(c).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let meta = if c >= 500 {
                "server_error"
            } else {
                "invalid_request"
            };
            fail(
                status,
                meta,
                "An unexpected error occurred (injected by the sandbox fault settings)",
            )
        }
    }
}

fn authenticate(ac: &Ac, headers: &HeaderMap, query: Option<&str>) -> Result<(), Response> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    let param = query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "_bearer_token")
        .map(|(_, v)| v);
    let token = match (header, param) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "send the access token either in the Authorization header or as _bearer_token, \
                 not both",
            ));
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "No access token was provided",
            ));
        }
    };
    match lock(&ac.tokens).get(&token) {
        Some(exp) if *exp > Instant::now() => Ok(()),
        Some(_) => Err(fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The access token has expired",
        )),
        None => Err(fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The access token is not valid",
        )),
    }
}

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// `POST /oauth2/v0/token`: client credentials (HTTP Basic, or form fields as some clients
/// send), optional `expires_in` capped at the configured lifetime.
async fn token(State(ac): State<Arc<Ac>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: BTreeMap<String, String> =
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .unwrap_or_default()
            .into_iter()
            .collect();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let (id, secret) = match basic {
        Some(pair) => pair,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    // 100 failed authentications within 5 minutes lock the client out; every attempt during
    // the lockout restarts the 5 minutes.
    {
        let now = Instant::now();
        let mut lo = lock(&ac.failed_logins);
        if lo.until.is_some_and(|u| u > now) {
            lo.until = Some(now + LOCKOUT_WINDOW);
            let mut r = token_error(
                StatusCode::UNAUTHORIZED,
                "too_many_failed_logins",
                "Too many failed authentication attempts; try again in 5 minutes.",
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("300"));
            return r;
        }
        if id != ac.creds.client_id || secret != ac.creds.client_secret {
            while lo
                .failures
                .front()
                .is_some_and(|t| now.duration_since(*t) >= LOCKOUT_WINDOW)
            {
                lo.failures.pop_front();
            }
            lo.failures.push_back(now);
            if lo.failures.len() >= LOCKOUT_FAILURES {
                lo.failures.clear();
                lo.until = Some(now + LOCKOUT_WINDOW);
            }
        }
    }
    if id != ac.creds.client_id || secret != ac.creds.client_secret {
        return token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        );
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The sandbox's service application supports grant_type=client_credentials.",
            );
        }
        None => {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing parameter: grant_type",
            );
        }
    }
    let ttl = match form.get("expires_in") {
        None => ac.limits.token_ttl,
        Some(s) => match s.parse::<u64>() {
            Ok(n) => Duration::from_secs(n).min(ac.limits.token_ttl),
            Err(_) => {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "expires_in must be a number of seconds",
                );
            }
        },
    };
    let token = format!("{}", uuid::Uuid::new_v4().simple());
    lock(&ac.tokens).insert(token.clone(), Instant::now() + ttl);
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": ttl.as_secs(),
            "scope": form.get("scope").cloned().unwrap_or_else(|| "read(all)".into()),
            "deployment": ac.creds.deployment,
            "deployment_name": "Tandem Sandbox",
            "deployment_uri": ac.base_url,
            "account_id": "1",
            "account_details": {"email": "api@sandbox.invalid", "firstname": "Sandbox", "surname": "Service"},
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Admin

impl Simulator for Ac {
    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Any method but GET/HEAD/OPTIONS, except token requests.
    fn is_write(method: &Method, path: &str) -> bool {
        !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            && !path.starts_with("/oauth2/")
    }

    fn pass(&self, req: Request, next: Next) -> impl Future<Output = Response> + Send {
        pass(self, req, next)
    }

    fn injected(&self, code: u16) -> Response {
        injected(self, code)
    }

    fn revoke_tokens(&self) -> usize {
        let mut tokens = lock(&self.tokens);
        let n = tokens.len();
        tokens.clear();
        n
    }

    fn more_stats(&self, o: &mut serde_json::Map<String, Value>) {
        let store = self.read();
        o.insert(
            "records".into(),
            json!({
                "companies": store.companies.len(),
                "contacts": store.contacts.len(),
                "affiliations": store.affiliations().len(),
                "addresses": store.addresses.len(),
            }),
        );
        o.insert("webhooks".into(), self.hooks.stats_json());
    }

    fn spec(&self) -> SeedSpec {
        self.spec
    }

    fn reset_to(&self, seed: &SeedData) {
        reset(self, &seed.accelo);
    }
}

/// Restores the seeded data (`seed` = the spec's Accelo world) and start-up faults; clears
/// counters and the rate window.
pub fn reset(ac: &Ac, seed: &AcSeed) {
    *ac.write() = AcStore::from_seed(seed, Some(ac.sink.clone()));
    ac.stats.reset();
    ac.faults.set(ac.initial_faults.clone());
    ac.hourly.reset();
}

/// Request parameters: the query string merged with a form or JSON body (body wins).
pub fn params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<BTreeMap<String, String>, Response> {
    let mut out: BTreeMap<String, String> = query_pairs(query).into_iter().collect();
    if body.is_empty() {
        return Ok(out);
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("the request body is not valid JSON: {e}")))?;
        let Some(o) = v.as_object() else {
            return Err(invalid("the JSON request body must be an object"));
        };
        for (k, v) in o {
            match crate::common::value_to_string(v) {
                Some(s) => {
                    out.insert(k.clone(), s);
                }
                None => {
                    return Err(invalid(format!("the field `{k}` must be a scalar value")));
                }
            }
        }
    } else {
        let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map_err(|e| invalid(format!("the request body is not valid form data: {e}")))?;
        out.extend(pairs);
    }
    Ok(out)
}

/// Parses a path id; anything else is `invalid_request` as Accelo answers for unknown ids.
pub fn path_id(obj: Obj, raw: &str) -> Result<u64, Response> {
    raw.trim().parse::<u64>().map_err(|_| {
        invalid(format!(
            "`{raw}` is not a valid {} id",
            obj.resource().trim_end_matches('s')
        ))
    })
}
