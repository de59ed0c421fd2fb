//! The HubSpot simulator: CRM v3 objects (companies, contacts) with batch and search, v4
//! associations, v3 properties, OAuth token refresh and private-app bearer auth, HubSpot's error
//! shapes, the rolling 10-second and search per-second rate limits with their headers (the
//! daily ones only for the private-app token: HubSpot does not send them for OAuth), and
//! signed webhook delivery — plus the `/_sandbox/` admin API (outside auth, limits and counters).
//!
//! Written from reference/hubspot-api-notes.md only; it shares no code with `connect/`.

pub mod api;
pub mod apps;
pub mod assoc;
pub mod props;
pub mod search;
pub mod store;
pub mod webhooks;

use std::future::Future;

use crate::data::SeedData;
use crate::gate::{self, Simulator};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use serde_json::{Value, json};

use self::store::{HsStore, Kind, StoreError};
use self::webhooks::{WebhookSettings, Webhooks};
use crate::common::{
    Clock, FaultConfig, Faults, RollingWindow, Stats, correlation_id, gateway_html, json_response,
    lock, route_key,
};
use crate::data::{HsSeed, SeedSpec};

/// Credentials of the simulated portal.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Private-app access token.
    pub token: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (also the webhook signing secret unless another one is given).
    pub client_secret: String,
    /// A valid OAuth refresh token.
    pub refresh_token: String,
    /// Portal (hub) id.
    pub portal_id: u64,
}

/// The scopes the sandbox's tokens have unless told otherwise: read and write of companies and
/// contacts.
pub const DEFAULT_SCOPES: &[&str] = &[
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
];

/// The app behind the tokens: its developer API key (for the webhooks API) and the scopes its
/// tokens were granted.
#[derive(Debug, Clone)]
pub struct App {
    /// The developer API key (`hapikey`).
    pub developer_api_key: String,
    /// Granted scopes, sorted.
    pub scopes: Vec<String>,
}

/// Rate limit settings of the HubSpot simulator.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per rolling window (`None` = unlimited). HubSpot Professional: 190.
    pub per_window: Option<u32>,
    /// The rolling window (10 s).
    pub window: Duration,
    /// Requests per day (`None` = unlimited). Professional: 625,000.
    pub daily: Option<u32>,
    /// Search requests per search window (`None` = unlimited). HubSpot: 5.
    pub search_per_second: Option<u32>,
    /// The search window (HubSpot: 1 s).
    pub search_window: Duration,
    /// Lifetime of OAuth access tokens (HubSpot: 30 minutes).
    pub access_token_ttl: Duration,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Hs {
    /// The portal's data.
    pub store: RwLock<HsStore>,
    /// What the data was generated from (for reset).
    pub spec: SeedSpec,
    /// Monotonic clock.
    pub clock: Arc<Clock>,
    /// Request counters.
    pub stats: Stats,
    /// Fault injection.
    pub faults: Arc<Faults>,
    /// The fault configuration at start (restored by reset).
    pub initial_faults: FaultConfig,
    /// Credentials.
    pub creds: Credentials,
    /// Rate limits.
    pub limits: Limits,
    ten_secondly: RollingWindow,
    secondly: RollingWindow,
    daily: RollingWindow,
    /// OAuth access tokens issued → expiry.
    access_tokens: Mutex<HashMap<String, Instant>>,
    /// Refresh tokens accepted.
    refresh_tokens: Mutex<HashSet<String>>,
    /// Webhook delivery.
    pub webhooks: Arc<Webhooks>,
    /// The feed to webhook delivery (re-attached to the store on reset).
    pub sink: store::ChangeSink,
    /// This simulator's base URL.
    pub base_url: String,
    /// The app: developer key and granted scopes.
    pub app: App,
}

impl Hs {
    /// Builds the simulator state around seeded data.
    #[allow(
        clippy::too_many_arguments,
        reason = "the simulator's parts, each given once at start-up"
    )]
    pub fn new(
        spec: SeedSpec,
        seed: &HsSeed,
        creds: Credentials,
        limits: Limits,
        faults: FaultConfig,
        webhook_settings: WebhookSettings,
        sink: store::ChangeSink,
        webhooks_stats: webhooks::WebhookStats,
        base_url: String,
        app: App,
    ) -> Hs {
        let store = HsStore::from_seed(seed, Some(sink.clone()));
        Hs {
            store: RwLock::new(store),
            spec,
            clock: Arc::new(Clock::default()),
            stats: Stats::default(),
            faults: Arc::new(Faults::new(faults.clone())),
            initial_faults: faults,
            ten_secondly: RollingWindow::new(limits.per_window, limits.window),
            secondly: RollingWindow::new(limits.search_per_second, limits.search_window),
            daily: RollingWindow::new(limits.daily, Duration::from_secs(86_400)),
            access_tokens: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashSet::from([creds.refresh_token.clone()])),
            creds,
            limits,
            webhooks: Arc::new(Webhooks {
                settings: Mutex::new(webhook_settings),
                stats: webhooks_stats,
            }),
            sink,
            base_url,
            app,
        }
    }

    /// Reads the store.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, HsStore> {
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the store.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, HsStore> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The simulator's router: the API behind the gate, the admin API beside it.
pub fn router(hs: Arc<Hs>) -> Router {
    let objects = "/crm/v3/objects/{objectType}";
    let api = Router::new()
        .route(objects, get(api::list).post(api::create))
        .route(
            &format!("{objects}/{{objectId}}"),
            get(api::get_one).patch(api::update).delete(api::archive),
        )
        .route(&format!("{objects}/batch/{{action}}"), post(api::batch))
        .route(&format!("{objects}/search"), post(search::search))
        .route(
            "/crm/v3/properties/{objectType}",
            get(api::list_properties).post(api::create_property),
        )
        .route(
            "/crm/v3/properties/{objectType}/{propertyName}",
            get(api::get_property),
        )
        .route(
            "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/{toObjectType}/{toObjectId}",
            put(assoc::put_default),
        )
        .route(
            "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/{toObjectType}/{toObjectId}",
            put(assoc::put_labelled).delete(assoc::delete_pair),
        )
        .route(
            "/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/{toObjectType}",
            get(assoc::list),
        )
        .route(
            "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/associate/default",
            post(assoc::batch_default),
        )
        .route(
            "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/labels/archive",
            post(assoc::batch_archive_labels),
        )
        .route(
            "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/{action}",
            post(assoc::batch),
        )
        .route(
            "/crm/v4/associations/{fromObjectType}/{toObjectType}/labels",
            get(assoc::labels),
        )
        .route("/oauth/v1/token", post(oauth_token))
        .route("/oauth/v3/token", post(oauth_token))
        .route("/oauth/v1/access-tokens/{token}", get(access_token_info))
        .route(
            "/oauth/v2/private-apps/get/access-token-info",
            post(private_app_token_info),
        )
        .route(
            "/webhooks/v3/{appId}/subscriptions",
            get(apps::list).post(apps::create),
        )
        .route(
            "/webhooks/v3/{appId}/subscriptions/batch/update",
            post(apps::batch_update),
        )
        .route_layer(middleware::from_fn_with_state(hs.clone(), gate::gate::<Hs>));
    let admin = Router::new()
        .route("/_sandbox/edit", post(admin_edit))
        .route("/_sandbox/records/{object}", get(admin_records))
        .route("/_sandbox/stats", get(gate::admin_stats::<Hs>))
        .route("/_sandbox/reset", post(gate::admin_reset::<Hs>))
        .route(
            "/_sandbox/revoke_tokens",
            post(gate::admin_revoke_tokens::<Hs>),
        )
        .route(
            "/_sandbox/faults",
            get(gate::admin_get_faults::<Hs>).post(gate::admin_set_faults::<Hs>),
        )
        .route(
            "/_sandbox/webhooks",
            get(admin_get_webhooks).post(admin_set_webhooks),
        );
    Router::new()
        .merge(api)
        .merge(admin)
        .fallback(any(unmatched))
        .with_state(hs)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A HubSpot error response: `{status, message, correlationId, category, …}`.
pub fn error(status: StatusCode, category: &str, message: impl Into<String>) -> Response {
    json_response(
        status,
        &json!({
            "status": "error",
            "message": message.into(),
            "correlationId": correlation_id(),
            "category": category,
        }),
    )
}

/// The response for a store error.
pub fn store_error(e: &StoreError) -> Response {
    let message = e.message();
    match e {
        StoreError::Validation(errs) => {
            let details: Vec<Value> = errs
                .iter()
                .map(|pe| {
                    json!({
                        "message": pe.message,
                        "code": pe.code,
                        "context": {"propertyName": [pe.name]},
                    })
                })
                .collect();
            json_response(
                StatusCode::BAD_REQUEST,
                &json!({
                    "status": "error",
                    "message": message,
                    "correlationId": correlation_id(),
                    "category": "VALIDATION_ERROR",
                    "errors": details,
                }),
            )
        }
        StoreError::Conflict { .. } => error(StatusCode::CONFLICT, "CONFLICT", message),
        StoreError::NotFound(_) => error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message),
        StoreError::Invalid(_) => error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message),
    }
}

/// 400 for a malformed JSON body, in HubSpot's words.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice::<T>(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Invalid input JSON on line {}, column {}: {}",
                e.line(),
                e.column(),
                e
            ),
        )
    })
}

/// 404 for an object type the portal does not have.
pub fn unknown_object(s: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!("Unable to infer object type from: {s}"),
    )
}

async fn unmatched(State(hs): State<Arc<Hs>>, method: Method, uri: axum::http::Uri) -> Response {
    if !uri.path().starts_with("/_sandbox/") {
        let write = is_write(&method, uri.path());
        hs.stats.count(route_key(&method, None, uri.path()), write);
    }
    error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        format!(
            "No route for {method} (the sandbox implements the CRM v3/v4 object, search, association and property endpoints, OAuth token info and the webhooks v3 subscriptions)"
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// The gate: counting, faults, auth, rate limits

/// Whether a request counts as a write (see [`crate::common::Stats`]): any method
/// but GET/HEAD/OPTIONS, except token requests, search and batch reads.
fn is_write(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !path.starts_with("/oauth/")
        && !path.ends_with("/search")
        && !path.ends_with("/batch/read")
}

/// Auth, rate limits and the handler (the part of the gate a `drop_after` fault still runs).
async fn pass(hs: &Hs, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path.starts_with("/oauth/") {
        return next.run(req).await;
    }
    if path.starts_with("/webhooks/v3/") {
        // The developer API: the `hapikey` query parameter, not a bearer token; its own limits.
        let key = crate::common::query_pairs(req.uri().query())
            .into_iter()
            .find(|(k, _)| k == "hapikey")
            .map(|(_, v)| v);
        if key.as_deref() != Some(hs.app.developer_api_key.as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "The API key provided is invalid. View or manage your API key here: \
                 https://app.hubspot.com/l/api-key/",
            );
        }
        return next.run(req).await;
    }
    let token = match authenticate(hs, req.headers()) {
        Ok(kind) => kind,
        Err(resp) => return resp,
    };
    if let Some(scope) = required_scope(&method, &path)
        && !hs.app.scopes.contains(&scope)
    {
        return missing_scopes(&scope);
    }
    // The daily headers are not sent for OAuth tokens (hubspot-api-notes §8).
    let daily_header = |remaining: u32| (token == TokenKind::PrivateApp).then_some(remaining);
    let is_search = method == Method::POST && path.ends_with("/search");
    if is_search {
        if !hs.secondly.admit().allowed {
            hs.stats.throttled();
            return rate_limited("You have reached your secondly limit.", "SECONDLY");
        }
        return next.run(req).await;
    }
    let burst = hs.ten_secondly.admit();
    if !burst.allowed {
        hs.stats.throttled();
        let mut r = rate_limited(
            "You have reached your ten_secondly_rolling limit.",
            "TEN_SECONDLY_ROLLING",
        );
        add_limit_headers(hs, r.headers_mut(), 0, None);
        return r;
    }
    let day = hs.daily.admit();
    if !day.allowed {
        hs.stats.throttled();
        let mut r = rate_limited("You have reached your daily limit.", "DAILY");
        add_limit_headers(hs, r.headers_mut(), burst.remaining, daily_header(0));
        return r;
    }
    let mut resp = next.run(req).await;
    add_limit_headers(
        hs,
        resp.headers_mut(),
        burst.remaining,
        daily_header(day.remaining),
    );
    resp
}

/// The scope a CRM object request needs: `crm.objects.{companies|contacts}.read` to read
/// (GET, search, batch read), `.write` for everything else.
fn required_scope(method: &Method, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/crm/v3/objects/")?;
    let object = rest.split('/').next()?;
    let object = match object {
        "companies" | "company" | "0-2" => "companies",
        "contacts" | "contact" | "0-1" => "contacts",
        _ => return None,
    };
    let read = matches!(*method, Method::GET | Method::HEAD)
        || path.ends_with("/search")
        || path.ends_with("/batch/read");
    Some(format!(
        "crm.objects.{object}.{}",
        if read { "read" } else { "write" }
    ))
}

/// HubSpot's 403 for a token without the scope a call needs.
fn missing_scopes(scope: &str) -> Response {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call. \
                        Read more about required scopes here: https://developers.hubspot.com/scopes.",
            "correlationId": correlation_id(),
            "errors": [{
                "message": "One or more of the following scopes are required.",
                "context": {"requiredScopes": [scope]},
            }],
            "category": "MISSING_SCOPES",
        }),
    )
}

fn add_limit_headers(hs: &Hs, h: &mut HeaderMap, remaining: u32, daily_remaining: Option<u32>) {
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    if let Some(max) = hs.limits.per_window {
        set(
            "x-hubspot-ratelimit-interval-milliseconds",
            hs.ten_secondly.window().as_millis().to_string(),
        );
        set("x-hubspot-ratelimit-max", max.to_string());
        set("x-hubspot-ratelimit-remaining", remaining.to_string());
    }
    if let (Some(daily), Some(rem)) = (hs.limits.daily, daily_remaining) {
        set("x-hubspot-ratelimit-daily", daily.to_string());
        set("x-hubspot-ratelimit-daily-remaining", rem.to_string());
    }
}

fn rate_limited(message: &str, policy: &str) -> Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": policy,
            "requestId": correlation_id(),
        }),
    )
}

fn injected(hs: &Hs, code: u16) -> Response {
    match code {
        429 => {
            hs.stats.throttled();
            let mut r = rate_limited(
                "You have reached your ten_secondly_rolling limit.",
                "TEN_SECONDLY_ROLLING",
            );
            add_limit_headers(hs, r.headers_mut(), 0, None);
            r
        }
        502..=504 => gateway_html(code),
        423 => error(
            StatusCode::LOCKED,
            "LOCKED",
            "The resource is locked by another request; retry after 2 seconds.",
        ),
        c => {
            let status = StatusCode::from_u16(c).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let category = if c >= 500 {
                "INTERNAL_ERROR"
            } else {
                "BAD_REQUEST"
            };
            error(
                status,
                category,
                "internal error (injected by the sandbox fault settings)",
            )
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    /// The private app's static access token.
    PrivateApp,
    /// An OAuth access token from `/oauth/v1/token`.
    OAuth,
}

fn authenticate(hs: &Hs, headers: &HeaderMap) -> Result<TokenKind, Response> {
    let not_found = || {
        error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication \
             and you can find more details at \
             https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    };
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(not_found());
    };
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    else {
        return Err(not_found());
    };
    let token = token.trim();
    if token == hs.creds.token {
        return Ok(TokenKind::PrivateApp);
    }
    let tokens = lock(&hs.access_tokens);
    match tokens.get(token) {
        Some(exp) if *exp > Instant::now() => Ok(TokenKind::OAuth),
        Some(exp) => Err(error(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            format!(
                "The OAuth token used to make this call expired {} second(s) ago.",
                Instant::now().duration_since(*exp).as_secs()
            ),
        )),
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 \
             authentication and you can find more details at \
             https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth

fn oauth_error(status: &str, message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"status": status, "message": message, "correlationId": correlation_id()}),
    )
}

async fn oauth_token(
    State(hs): State<Arc<Hs>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let mut params: HashMap<String, String> = HashMap::new();
    if is_form || !body.is_empty() {
        for (k, v) in
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap_or_default()
        {
            params.insert(k, v);
        }
    }
    for (k, v) in crate::common::query_pairs(q.as_deref()) {
        params.entry(k).or_insert(v);
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    match get("grant_type") {
        "refresh_token" => {}
        "" => return oauth_error("BAD_GRANT_TYPE", "missing grant_type"),
        other => {
            return oauth_error(
                "BAD_GRANT_TYPE",
                &format!("unsupported grant_type {other} (the sandbox supports refresh_token)"),
            );
        }
    }
    if get("client_id") != hs.creds.client_id {
        return oauth_error("BAD_CLIENT_ID", "missing or unknown client id");
    }
    if get("client_secret") != hs.creds.client_secret {
        return oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret");
    }
    if !lock(&hs.refresh_tokens).contains(get("refresh_token")) {
        return oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
    }
    let token = format!("CO{}", uuid::Uuid::new_v4().simple());
    lock(&hs.access_tokens).insert(token.clone(), Instant::now() + hs.limits.access_token_ttl);
    json_response(
        StatusCode::OK,
        &json!({
            "token_type": "bearer",
            "refresh_token": get("refresh_token"),
            "access_token": token,
            "expires_in": hs.limits.access_token_ttl.as_secs(),
            "hub_id": hs.creds.portal_id,
            "token_use": "access_token",
        }),
    )
}

async fn access_token_info(State(hs): State<Arc<Hs>>, Path(token): Path<String>) -> Response {
    let tokens = lock(&hs.access_tokens);
    match tokens.get(&token) {
        Some(exp) if *exp > Instant::now() => json_response(
            StatusCode::OK,
            &json!({
                "token": token,
                "hub_id": hs.creds.portal_id,
                "app_id": lock(&hs.webhooks.settings).app_id,
                "expires_in": exp.duration_since(Instant::now()).as_secs(),
                "scopes": hs.app.scopes,
                "token_type": "access",
                "user_id": 1_000_001,
                "user": "sandbox-admin@example.com",
                "hub_domain": "sandbox.hubspot.example",
            }),
        ),
        _ => oauth_error("BAD_ACCESS_TOKEN", "missing or unknown access token"),
    }
}

/// `POST /oauth/v2/private-apps/get/access-token-info` with `{"tokenKey": …}`: the private
/// app token's portal, app and scopes.
async fn private_app_token_info(State(hs): State<Arc<Hs>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Input {
        token_key: String,
    }
    let input: Input = match parse_body(&body) {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    if input.token_key.trim() != hs.creds.token {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "The access token provided is invalid or has been revoked.",
        );
    }
    json_response(
        StatusCode::OK,
        &json!({
            "userId": 1_000_001,
            "hubId": hs.creds.portal_id,
            "appId": lock(&hs.webhooks.settings).app_id,
            "scopes": hs.app.scopes,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Admin API

fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({"error": message.into()}))
}

async fn admin_edit(State(hs): State<Arc<Hs>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Edit {
        object: String,
        #[serde(default)]
        id: Option<Value>,
        #[serde(default)]
        fields: serde_json::Map<String, Value>,
        #[serde(default)]
        delete: bool,
    }
    let edit: Edit = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid edit: {e}")),
    };
    let Some(kind) = Kind::parse(&edit.object) else {
        return admin_error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown object `{}` (expected `companies` or `contacts`)",
                edit.object
            ),
        );
    };
    let id = match &edit.id {
        None | Some(Value::Null) => None,
        Some(v) => match crate::common::value_to_string(v).and_then(|s| s.parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return admin_error(StatusCode::BAD_REQUEST, format!("invalid id `{v}`")),
        },
    };
    let mut input = Vec::new();
    for (k, v) in &edit.fields {
        match crate::common::value_to_string(v) {
            Some(s) => input.push((k.clone(), s)),
            None => {
                return admin_error(
                    StatusCode::BAD_REQUEST,
                    format!("field `{k}` must be a string, number, boolean or null"),
                );
            }
        }
    }
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    if edit.delete {
        let Some(id) = id else {
            return admin_error(StatusCode::BAD_REQUEST, "`delete` needs an `id`");
        };
        if !store.archive(kind, id, store::Source::Ui, now) {
            return admin_error(
                StatusCode::NOT_FOUND,
                format!("no {} `{id}`", kind.singular()),
            );
        }
        return json_response(StatusCode::OK, &api::render_full(&store, kind, id));
    }
    if let Some(id) = id
        && store.obj(kind).live(id).is_none()
    {
        return admin_error(
            StatusCode::NOT_FOUND,
            format!("no {} `{id}`", kind.singular()),
        );
    }
    match store.admin_edit(kind, id, input, now) {
        Ok(id) => json_response(StatusCode::OK, &api::render_full(&store, kind, id)),
        Err(e) => {
            let resp = store_error(&e);
            let status = resp.status();
            admin_error(status, e.message())
        }
    }
}

async fn admin_records(State(hs): State<Arc<Hs>>, Path(object): Path<String>) -> Response {
    let Some(kind) = Kind::parse(&object) else {
        return admin_error(
            StatusCode::NOT_FOUND,
            format!("unknown object `{object}` (expected `companies` or `contacts`)"),
        );
    };
    let store = hs.read();
    let all: Vec<Value> = store
        .obj(kind)
        .records
        .values()
        .filter(|r| r.archived_ms.is_none())
        .map(|r| api::render_full(&store, kind, r.id))
        .collect();
    json_response(StatusCode::OK, &Value::Array(all))
}

impl Simulator for Hs {
    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn is_write(method: &Method, path: &str) -> bool {
        is_write(method, path)
    }

    fn pass(&self, req: Request, next: Next) -> impl Future<Output = Response> + Send {
        pass(self, req, next)
    }

    fn injected(&self, code: u16) -> Response {
        injected(self, code)
    }

    fn revoke_tokens(&self) -> usize {
        let mut tokens = lock(&self.access_tokens);
        let n = tokens.len();
        tokens.clear();
        n
    }

    fn more_stats(&self, o: &mut serde_json::Map<String, Value>) {
        o.insert("webhooks".into(), self.webhooks.stats.to_json());
        let store = self.read();
        o.insert(
            "records".into(),
            json!({
                "companies": store.companies.records.values().filter(|r| r.archived_ms.is_none()).count(),
                "contacts": store.contacts.records.values().filter(|r| r.archived_ms.is_none()).count(),
            }),
        );
    }

    fn spec(&self) -> SeedSpec {
        self.spec
    }

    fn reset_to(&self, seed: &SeedData) {
        reset(self, &seed.hubspot);
    }
}

/// Restores the seeded data (`seed` = the spec's HubSpot world), the start-up faults, and
/// clears counters and rate windows.
pub fn reset(hs: &Hs, seed: &HsSeed) {
    let fresh = HsStore::from_seed(seed, Some(hs.sink.clone()));
    *hs.write() = fresh;
    hs.stats.reset();
    hs.faults.set(hs.initial_faults.clone());
    hs.ten_secondly.reset();
    hs.secondly.reset();
    hs.daily.reset();
}

async fn admin_get_webhooks(State(hs): State<Arc<Hs>>) -> Response {
    json_response(
        StatusCode::OK,
        &webhooks::settings_json(&lock(&hs.webhooks.settings)),
    )
}

async fn admin_set_webhooks(State(hs): State<Arc<Hs>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Set {
        #[serde(default)]
        url: Option<Option<String>>,
        #[serde(default)]
        secret: Option<String>,
        #[serde(default)]
        subscriptions: Option<Vec<String>>,
        #[serde(default)]
        batch_wait_ms: Option<u64>,
        #[serde(default)]
        retry_base_ms: Option<u64>,
        #[serde(default)]
        max_retries: Option<u32>,
        #[serde(default)]
        timeout_ms: Option<u64>,
    }
    let set: Set = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                format!("invalid webhook settings: {e}"),
            );
        }
    };
    let subs = match set
        .subscriptions
        .as_deref()
        .map(webhooks::parse_subscriptions)
    {
        Some(Err(e)) => return admin_error(StatusCode::BAD_REQUEST, e),
        Some(Ok(s)) => Some(s),
        None => None,
    };
    if let Some(Some(url)) = &set.url
        && reqwest::Url::parse(url).is_err()
    {
        return admin_error(StatusCode::BAD_REQUEST, format!("invalid url `{url}`"));
    }
    let mut s = lock(&hs.webhooks.settings);
    if let Some(url) = set.url {
        s.url = url;
    }
    if let Some(secret) = set.secret {
        s.secret = secret;
    }
    if let Some(subs) = subs {
        s.subscriptions = subs;
    }
    if let Some(ms) = set.batch_wait_ms {
        s.batch_wait = Duration::from_millis(ms);
    }
    if let Some(ms) = set.retry_base_ms {
        s.retry_base = Duration::from_millis(ms);
    }
    if let Some(n) = set.max_retries {
        s.max_retries = n;
    }
    if let Some(ms) = set.timeout_ms {
        s.timeout = Duration::from_millis(ms);
    }
    json_response(StatusCode::OK, &webhooks::settings_json(&s))
}

/// Pending webhook events (emitted, not yet delivered or given up).
pub fn pending_webhooks(hs: &Hs) -> u64 {
    hs.webhooks.stats.pending.load(Ordering::SeqCst)
}

impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        store_error(&self)
    }
}
