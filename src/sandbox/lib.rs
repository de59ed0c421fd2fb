//! The sandbox: faithful simulators of the HubSpot CRM API and the Accelo API, served over real
//! HTTP on loopback, with seeded data, fault injection and an admin API, plus an SMTP mailbox
//! that keeps the email sent to it (`mail.rs`). Used by `tandem
//! sandbox`, `tandem demo`, every other module's integration tests and the benchmarks.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tandem_sandbox::SandboxError> {
//! let sb = tandem_sandbox::Sandbox::start(tandem_sandbox::SandboxOptions {
//!     seed: 7, companies: 50, contacts: 200, ..Default::default()
//! }).await?;
//! let _ = (sb.hubspot_url(), sb.hubspot_token(), sb.accelo_url());
//! sb.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The simulators are written from the API notes alone and share no code with `connect/`
//! (independent implementations catch each other's mistakes).

// Handlers build their error responses early and return them through `Result<_, Response>`;
// boxing every one of them would only add noise on paths that end the request anyway.
#![allow(
    clippy::result_large_err,
    reason = "handlers return their early error responses through Result<_, Response>"
)]

mod accelo;
mod common;
mod data;
mod gate;
mod hubspot;
mod mail;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::Request;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::Layer;

pub use common::FaultConfig;
pub use data::SeedData;
pub use mail::DEFAULT_MAX_BYTES as DEFAULT_MAIL_MAX_BYTES;

/// Errors starting the sandbox.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SandboxError {
    /// A listener could not be bound.
    #[error("cannot listen for the {system} simulator on `{addr}`: {source}")]
    #[diagnostic(help("pick another port, or 0 to let the system choose one"))]
    Bind {
        /// `hubspot`, `accelo` or `mail`.
        system: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An option is invalid.
    #[error("invalid sandbox option: {0}")]
    Invalid(String),
}

/// Rate limits of both simulators (`None` = unlimited).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// HubSpot requests per rolling window (HubSpot Professional private app: 190 per 10 s).
    pub hubspot_per_window: Option<u32>,
    /// The HubSpot rolling window (10 s).
    pub hubspot_window: Duration,
    /// HubSpot requests per day (Professional: 625,000).
    pub hubspot_daily: Option<u32>,
    /// HubSpot search requests per search window (5).
    pub hubspot_search_per_second: Option<u32>,
    /// The search window (1 s).
    pub hubspot_search_window: Duration,
    /// Accelo requests per hour (5,000).
    pub accelo_per_hour: Option<u32>,
    /// The window `accelo_per_hour` counts over (an hour; shorter in tests that need the
    /// budget to come back).
    pub accelo_window: Duration,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            hubspot_per_window: Some(190),
            hubspot_window: Duration::from_secs(10),
            hubspot_daily: Some(625_000),
            hubspot_search_per_second: Some(5),
            hubspot_search_window: Duration::from_secs(1),
            accelo_per_hour: Some(5_000),
            accelo_window: Duration::from_secs(3600),
        }
    }
}

impl RateLimits {
    /// No limits at all (benchmarks).
    pub fn unlimited() -> RateLimits {
        RateLimits {
            hubspot_per_window: None,
            hubspot_window: Duration::from_secs(10),
            hubspot_daily: None,
            hubspot_search_per_second: None,
            hubspot_search_window: Duration::from_secs(1),
            accelo_per_hour: None,
            accelo_window: Duration::from_secs(3600),
        }
    }

    /// Parses `--rate-limit`: `off`, or `hubspot=N,window=SECS,daily=N,search=N,accelo=N`
    /// (each value `0` or `off` = unlimited; unnamed keys keep their defaults).
    pub fn parse(s: &str) -> Result<RateLimits, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
            return Ok(RateLimits::unlimited());
        }
        let mut r = RateLimits::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!(
                    "invalid rate limit `{part}`: expected `name=value`"
                ));
            };
            let limit = || -> Result<Option<u32>, String> {
                let v = v.trim();
                if v == "0" || v.eq_ignore_ascii_case("off") {
                    return Ok(None);
                }
                v.parse::<u32>()
                    .map(Some)
                    .map_err(|_| format!("invalid value `{v}` for rate limit `{k}`"))
            };
            match k.trim() {
                "hubspot" => r.hubspot_per_window = limit()?,
                "daily" => r.hubspot_daily = limit()?,
                "search" => r.hubspot_search_per_second = limit()?,
                "accelo" => r.accelo_per_hour = limit()?,
                "window" => {
                    let secs: u64 = v
                        .trim()
                        .parse()
                        .map_err(|_| format!("invalid window `{v}` (seconds)"))?;
                    if secs == 0 {
                        return Err("the window must be at least 1 second".into());
                    }
                    r.hubspot_window = Duration::from_secs(secs);
                }
                other => {
                    return Err(format!(
                        "unknown rate limit `{other}` (expected hubspot, window, daily, search \
                         or accelo)"
                    ));
                }
            }
        }
        Ok(r)
    }
}

/// Where the HubSpot simulator delivers webhooks.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// Target URL.
    pub url: String,
    /// Signing secret (default: the HubSpot client secret).
    pub secret: Option<String>,
    /// Subscriptions (`contact.creation`, `company.propertyChange:name`, …); default: the
    /// trigger lists of the default rules plus deletion and association changes.
    pub subscriptions: Option<Vec<String>>,
    /// How long events gather into one batch.
    pub batch_wait: Duration,
    /// First retry delay (doubles per attempt).
    pub retry_base: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl WebhookTarget {
    /// A target with default settings (50 ms batching, 10 retries from 500 ms, 5 s timeout).
    pub fn new(url: impl Into<String>) -> WebhookTarget {
        WebhookTarget {
            url: url.into(),
            secret: None,
            subscriptions: None,
            batch_wait: Duration::from_millis(50),
            retry_base: Duration::from_millis(500),
            max_retries: 10,
            timeout: Duration::from_secs(5),
        }
    }
}

/// An Accelo webhook subscription configured at start.
#[derive(Debug, Clone)]
pub struct AcceloWebhook {
    /// Target URL.
    pub url: String,
    /// Signing secret (empty = unsigned).
    pub secret: String,
    /// Event types (default: all four).
    pub events: Vec<String>,
}

/// How to start the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Seed of the data generator (and of the credentials).
    pub seed: u64,
    /// Companies per system.
    pub companies: usize,
    /// Contacts per system.
    pub contacts: usize,
    /// HubSpot port (0 = pick one).
    pub hubspot_port: u16,
    /// Accelo port (0 = pick one).
    pub accelo_port: u16,
    /// Listen address (default 127.0.0.1).
    pub host: IpAddr,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Faults applied to both simulators from the start.
    pub faults: FaultConfig,
    /// HubSpot webhook delivery.
    pub hubspot_webhook: Option<WebhookTarget>,
    /// Accelo webhook subscriptions.
    pub accelo_webhook: Option<AcceloWebhook>,
    /// Lifetime of HubSpot OAuth access tokens (30 minutes).
    pub hubspot_access_token_ttl: Duration,
    /// Maximum lifetime of Accelo tokens (30 days).
    pub accelo_token_ttl: Duration,
    /// Port of the SMTP mailbox (0 = pick one).
    pub mail_port: u16,
    /// The mailbox refuses a message larger than this (bytes; 10 MiB).
    pub mail_max_bytes: usize,
    /// The scopes the HubSpot tokens are granted (what token introspection reports and what
    /// the CRM object endpoints require); `None` = [`hubspot::DEFAULT_SCOPES`].
    pub hubspot_scopes: Option<Vec<String>>,
    /// Seconds both simulators' clocks are ahead (negative: behind) of this machine's, as their
    /// `Date` headers and HubSpot's webhook timestamps show it (0 = in step).
    pub clock_skew_seconds: i64,
}

impl Default for SandboxOptions {
    fn default() -> SandboxOptions {
        SandboxOptions {
            seed: 1,
            companies: 50,
            contacts: 200,
            hubspot_port: 0,
            accelo_port: 0,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rate_limits: RateLimits::default(),
            faults: FaultConfig::default(),
            hubspot_webhook: None,
            accelo_webhook: None,
            hubspot_access_token_ttl: Duration::from_secs(1800),
            accelo_token_ttl: Duration::from_secs(30 * 24 * 3600),
            mail_port: 0,
            mail_max_bytes: mail::DEFAULT_MAX_BYTES,
            hubspot_scopes: None,
            clock_skew_seconds: 0,
        }
    }
}

/// A running sandbox: both simulators on their own listeners.
#[derive(Debug)]
pub struct Sandbox {
    hs: Arc<hubspot::Hs>,
    ac: Arc<accelo::Ac>,
    cancel: CancellationToken,
    servers: Vec<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    seed: u64,
    counts: (usize, usize),
    accelo_client_id: String,
    accelo_client_secret: String,
    mailbox: Arc<mail::Mailbox>,
    mail_addr: SocketAddr,
    mail_password: String,
}

/// Sets the `Date` header (RFC 7231) from this machine's clock moved by `skew_seconds`, as a
/// server whose clock is off would send it.
async fn date_header(
    mut resp: axum::response::Response,
    skew_seconds: i64,
) -> axum::response::Response {
    let now = chrono::Utc::now()
        + chrono::TimeDelta::seconds(skew_seconds.clamp(-1_000_000_000, 1_000_000_000));
    let v = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
        resp.headers_mut().insert(axum::http::header::DATE, v);
    }
    resp
}

fn credential(rng: &mut ChaCha8Rng, groups: &[usize]) -> String {
    groups
        .iter()
        .map(|n| {
            (0..*n)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

async fn bind(host: IpAddr, port: u16, system: &'static str) -> Result<TcpListener, SandboxError> {
    let addr = SocketAddr::new(host, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| SandboxError::Bind {
            system,
            addr,
            source,
        })
}

impl Sandbox {
    /// Generates the seeded data and starts both simulators.
    pub async fn start(opts: SandboxOptions) -> Result<Sandbox, SandboxError> {
        opts.faults.validate().map_err(SandboxError::Invalid)?;
        let hs_listener = bind(opts.host, opts.hubspot_port, "hubspot").await?;
        let ac_listener = bind(opts.host, opts.accelo_port, "accelo").await?;
        let mail_listener = bind(opts.host, opts.mail_port, "mail").await?;
        let mail_addr = mail_listener
            .local_addr()
            .map_err(|source| SandboxError::Bind {
                system: "mail",
                addr: SocketAddr::new(opts.host, opts.mail_port),
                source,
            })?;
        let url_of = |l: &TcpListener, system: &'static str| {
            l.local_addr()
                .map(|a| format!("http://{a}"))
                .map_err(|source| SandboxError::Bind {
                    system,
                    addr: SocketAddr::new(opts.host, 0),
                    source,
                })
        };
        let hs_url = url_of(&hs_listener, "hubspot")?;
        let ac_url = url_of(&ac_listener, "accelo")?;

        let spec = data::SeedSpec {
            seed: opts.seed,
            companies: opts.companies,
            contacts: opts.contacts,
        };
        let seed = tokio::task::spawn_blocking(move || spec.generate())
            .await
            .map_err(|e| SandboxError::Invalid(format!("data generation failed: {e}")))?;

        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x7461_6e64_656d_5342);
        let hs_creds = hubspot::Credentials {
            token: format!("pat-na1-{}", credential(&mut rng, &[8, 4, 4, 4, 12])),
            client_id: credential(&mut rng, &[8, 4, 4, 4, 12]),
            client_secret: credential(&mut rng, &[8, 4, 4, 4, 12]),
            refresh_token: format!("na1-{}", credential(&mut rng, &[4, 4, 4, 4, 12])),
            portal_id: rng.random_range(1_000_000..100_000_000),
        };
        let app_id = rng.random_range(100_000..10_000_000);
        let mut key_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x6465_766b_6579_3031);
        let developer_api_key = credential(&mut key_rng, &[8, 4, 4, 4, 12]);
        let scopes = match &opts.hubspot_scopes {
            Some(list) => {
                let mut v: Vec<String> = list
                    .iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                v.sort();
                v.dedup();
                v
            }
            None => hubspot::DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let ac_creds = accelo::Credentials {
            client_id: format!("{}@sandbox.api.accelo.com", credential(&mut rng, &[10])),
            client_secret: credential(&mut rng, &[32]),
            deployment: "sandbox".into(),
        };

        // A separate generator: the credentials above stay what they were before the mailbox.
        let mut mail_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x6d61_696c_626f_7831);
        let mail_password = format!("mail-{}", credential(&mut mail_rng, &[16]));

        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut servers = Vec::new();

        // The SMTP mailbox.
        let mailbox = Arc::new(mail::Mailbox::new(opts.mail_max_bytes));
        servers.push(tokio::spawn(mail::serve(
            mail_listener,
            mailbox.clone(),
            cancel.clone(),
        )));

        // HubSpot.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let pending = Arc::new(AtomicU64::new(0));
        let sink = hubspot::store::ChangeSink::new(tx, pending.clone());
        let wh = opts.hubspot_webhook.clone();
        let subscriptions = match wh.as_ref().and_then(|w| w.subscriptions.clone()) {
            Some(list) => {
                hubspot::webhooks::parse_subscriptions(&list).map_err(SandboxError::Invalid)?
            }
            None => hubspot::webhooks::default_subscriptions(),
        };
        let defaults = WebhookTarget::new("");
        let wt = wh.as_ref().unwrap_or(&defaults);
        let settings = hubspot::webhooks::WebhookSettings {
            url: wh.as_ref().map(|w| w.url.clone()).filter(|u| !u.is_empty()),
            secret: wt
                .secret
                .clone()
                .unwrap_or_else(|| hs_creds.client_secret.clone()),
            subscriptions,
            portal_id: hs_creds.portal_id,
            app_id,
            batch_wait: wt.batch_wait,
            retry_base: wt.retry_base,
            max_retries: wt.max_retries,
            timeout: wt.timeout,
            concurrency: 10,
            clock_skew_ms: opts.clock_skew_seconds.saturating_mul(1000),
        };
        let hs = Arc::new(hubspot::Hs::new(
            spec,
            &seed.hubspot,
            hs_creds,
            hubspot::Limits {
                per_window: opts.rate_limits.hubspot_per_window,
                window: opts.rate_limits.hubspot_window,
                daily: opts.rate_limits.hubspot_daily,
                search_per_second: opts.rate_limits.hubspot_search_per_second,
                search_window: opts.rate_limits.hubspot_search_window,
                access_token_ttl: opts.hubspot_access_token_ttl,
            },
            opts.faults.clone(),
            settings,
            sink,
            hubspot::webhooks::WebhookStats {
                pending,
                ..Default::default()
            },
            hs_url,
            hubspot::App {
                developer_api_key,
                scopes,
            },
        ));
        tasks.push(tokio::spawn(hubspot::webhooks::run(
            hs.webhooks.clone(),
            hs.faults.clone(),
            hs.clock.clone(),
            rx,
        )));
        let skew = opts.clock_skew_seconds;
        let app = hubspot::router(hs.clone())
            .merge(mail::router(mailbox.clone()))
            .layer(axum::middleware::map_response(move |r| {
                date_header(r, skew)
            }));
        let c = cancel.clone();
        servers.push(tokio::spawn(async move {
            let _ = axum::serve(hs_listener, app)
                .with_graceful_shutdown(async move { c.cancelled().await })
                .await;
        }));

        // Accelo.
        let (atx, arx) = tokio::sync::mpsc::unbounded_channel();
        let hooks = Arc::new(accelo::webhooks::Hooks::default());
        if let Some(w) = &opts.accelo_webhook {
            let events: Vec<String> = if w.events.is_empty() {
                accelo::webhooks::EVENT_TYPES
                    .iter()
                    .map(|(e, _)| (*e).to_string())
                    .collect()
            } else {
                w.events.clone()
            };
            for e in events {
                if !accelo::webhooks::EVENT_TYPES.iter().any(|(x, _)| *x == e) {
                    return Err(SandboxError::Invalid(format!("unknown Accelo event `{e}`")));
                }
                hooks.subscribe(&e, &w.url, "application/json", &w.secret);
            }
        }
        let ac = Arc::new(accelo::Ac::new(
            spec,
            &seed.accelo,
            ac_creds.clone(),
            accelo::Limits {
                per_hour: opts.rate_limits.accelo_per_hour,
                window: opts.rate_limits.accelo_window,
                token_ttl: opts.accelo_token_ttl,
            },
            opts.faults.clone(),
            hooks.clone(),
            atx,
            ac_url.clone(),
        ));
        tasks.push(tokio::spawn(accelo::webhooks::run(
            hooks,
            ac.faults.clone(),
            ac_url,
            arx,
        )));
        let app = tower::util::MapRequestLayer::new(accelo::method_override).layer(
            accelo::router(ac.clone())
                .merge(mail::router(mailbox.clone()))
                .layer(axum::middleware::map_response(move |r| {
                    date_header(r, skew)
                })),
        );
        let c = cancel.clone();
        servers.push(tokio::spawn(async move {
            let _ = axum::serve(
                ac_listener,
                axum::ServiceExt::<Request>::into_make_service(app),
            )
            .with_graceful_shutdown(async move { c.cancelled().await })
            .await;
        }));

        Ok(Sandbox {
            hs,
            ac,
            cancel,
            servers,
            tasks,
            seed: opts.seed,
            counts: (opts.companies, opts.contacts),
            accelo_client_id: ac_creds.client_id,
            accelo_client_secret: ac_creds.client_secret,
            mailbox,
            mail_addr,
            mail_password,
        })
    }

    /// The HubSpot API root, e.g. `http://127.0.0.1:PORT`.
    pub fn hubspot_url(&self) -> &str {
        &self.hs.base_url
    }

    /// The private-app access token.
    pub fn hubspot_token(&self) -> &str {
        &self.hs.creds.token
    }

    /// The OAuth client id.
    pub fn hubspot_client_id(&self) -> &str {
        &self.hs.creds.client_id
    }

    /// The OAuth client secret (the default webhook signing secret too).
    pub fn hubspot_client_secret(&self) -> &str {
        &self.hs.creds.client_secret
    }

    /// A valid OAuth refresh token.
    pub fn hubspot_refresh_token(&self) -> &str {
        &self.hs.creds.refresh_token
    }

    /// The portal (hub) id.
    pub fn hubspot_portal_id(&self) -> u64 {
        self.hs.creds.portal_id
    }

    /// The HubSpot app's id (`appId` in webhook events and the webhooks API's paths).
    pub fn hubspot_app_id(&self) -> u64 {
        common::lock(&self.hs.webhooks.settings).app_id
    }

    /// The developer API key (`hapikey`) that the webhooks API accepts for the app.
    pub fn hubspot_developer_api_key(&self) -> &str {
        &self.hs.app.developer_api_key
    }

    /// The app's webhook subscriptions, as `eventType` or `eventType:propertyName`, each with
    /// whether it is active, in id order.
    pub fn hubspot_subscriptions(&self) -> Vec<(String, bool)> {
        common::lock(&self.hs.webhooks.settings)
            .subscriptions
            .iter()
            .map(|s| (s.label(), s.active))
            .collect()
    }

    /// The Accelo root: `/oauth2/v0/token`, `/api/v0/…`.
    pub fn accelo_url(&self) -> &str {
        &self.ac.base_url
    }

    /// The Accelo service application's client id.
    pub fn accelo_client_id(&self) -> &str {
        &self.accelo_client_id
    }

    /// The Accelo service application's client secret.
    pub fn accelo_client_secret(&self) -> &str {
        &self.accelo_client_secret
    }

    /// The Accelo deployment name.
    pub fn accelo_deployment(&self) -> &str {
        &self.ac.creds.deployment
    }

    /// The SMTP mailbox's `host:port` (plain SMTP, no TLS).
    pub fn mail_server(&self) -> String {
        self.mail_addr.to_string()
    }

    /// A user name and password for the mailbox's `AUTH` (it accepts any; these are what
    /// `tandem sandbox --env` exports).
    pub fn mail_login(&self) -> (&str, &str) {
        ("tandem", &self.mail_password)
    }

    /// How many messages the mailbox holds (`GET /_sandbox/mail` lists them).
    pub fn mail_count(&self) -> usize {
        self.mailbox.count()
    }

    /// The JSON line `tandem sandbox` prints.
    pub fn info(&self) -> Value {
        json!({
            "hubspot": {
                "url": self.hubspot_url(),
                "token": self.hubspot_token(),
                "client_id": self.hubspot_client_id(),
                "client_secret": self.hubspot_client_secret(),
                "refresh_token": self.hubspot_refresh_token(),
                "portal_id": self.hubspot_portal_id(),
                "app_id": self.hubspot_app_id(),
                "developer_api_key": self.hubspot_developer_api_key(),
            },
            "accelo": {
                "url": self.accelo_url(),
                "client_id": self.accelo_client_id(),
                "client_secret": self.accelo_client_secret(),
                "deployment": self.accelo_deployment(),
            },
            "mail": {
                "server": self.mail_server(),
                "tls": "none",
                "username": self.mail_login().0,
                "password": self.mail_login().1,
                "messages": format!("{}/_sandbox/mail", self.hubspot_url()),
            },
            "seed": self.seed,
            "companies": self.counts.0,
            "contacts": self.counts.1,
        })
    }

    /// `GET /_sandbox/stats` of the HubSpot simulator, in-process.
    pub fn hubspot_stats(&self) -> Value {
        let mut v = self.hs.stats.to_json();
        v["webhooks"] = self.hs.webhooks.stats.to_json();
        v
    }

    /// `GET /_sandbox/stats` of the Accelo simulator, in-process.
    pub fn accelo_stats(&self) -> Value {
        let mut v = self.ac.stats.to_json();
        v["webhooks"] = self.ac.hooks.stats_json();
        v
    }

    /// Webhook events emitted by HubSpot and not yet delivered or given up.
    pub fn hubspot_webhooks_pending(&self) -> u64 {
        hubspot::pending_webhooks(&self.hs)
    }

    /// Points HubSpot webhook delivery at `url` (`None` stops delivery), optionally changing the
    /// signing secret.
    pub fn set_hubspot_webhook(&self, url: Option<&str>, secret: Option<&str>) {
        let mut s = common::lock(&self.hs.webhooks.settings);
        s.url = url.map(str::to_string);
        if let Some(secret) = secret {
            s.secret = secret.to_string();
        }
    }

    /// Subscribes `url` to the Accelo webhook `event` (`create_company`, `update_company`,
    /// `create_contact`, `update_contact`), JSON bodies signed with `secret` (empty = unsigned),
    /// as `POST /api/v0/webhooks/subscriptions` would.
    pub fn subscribe_accelo_webhook(
        &self,
        event: &str,
        url: &str,
        secret: &str,
    ) -> Result<(), SandboxError> {
        if !accelo::webhooks::EVENT_TYPES
            .iter()
            .any(|(e, _)| *e == event)
        {
            return Err(SandboxError::Invalid(format!(
                "unknown Accelo event `{event}`"
            )));
        }
        self.ac
            .hooks
            .subscribe(event, url, "application/json", secret);
        Ok(())
    }

    /// Replaces the fault settings of both simulators (as `POST /_sandbox/faults` on each).
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), SandboxError> {
        faults.validate().map_err(SandboxError::Invalid)?;
        self.hs.faults.set(faults.clone());
        self.ac.faults.set(faults);
        Ok(())
    }

    /// Both simulators back to the seeded state (`POST /_sandbox/reset` on each); the world is
    /// regenerated from the seed (about a second at 100k records per side).
    pub async fn reset(&self) {
        let spec = self.hs.spec;
        if let Ok(seed) = tokio::task::spawn_blocking(move || spec.generate()).await {
            hubspot::reset(&self.hs, &seed.hubspot);
            accelo::reset(&self.ac, &seed.accelo);
        }
    }

    /// The seeded data both simulators started from (regenerated from the seed).
    pub fn seed_data(&self) -> SeedData {
        self.hs.spec.generate()
    }

    /// Stops both simulators and their webhook tasks.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for s in self.servers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}
