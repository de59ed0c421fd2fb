//! `tandem.yaml`: connections to HubSpot and Accelo, the store, email notification, the server
//! and sync options — the source of `schemas/tandem.schema.json`.
//!
//! Secrets never live in the file: it names the environment variables that hold them, and
//! [`Config::secrets`] reads those at run time with errors that name the variable, never the
//! value. The `TANDEM_*` overrides that scripts rely on are applied by [`Config::apply_env`].

use schemars::JsonSchema;
use serde::Deserialize;
use thiserror::Error;

pub use crate::secret::Secret;

/// The Tandem configuration file (`rules/tandem.yaml` by default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(
    deny_unknown_fields,
    title = "Tandem configuration",
    extend("required" = ["accelo"])
)]
pub struct Config {
    /// The HubSpot portal.
    pub hubspot: HubSpotConfig,
    /// The Accelo deployment.
    pub accelo: AcceloConfig,
    /// Where links, the job queue and the sync log live.
    pub store: StoreConfig,
    /// Notifications (the push-completion email).
    pub notify: NotifyConfig,
    /// The webhook receiver and console (`tandem serve`).
    pub server: ServerConfig,
    /// Sync options and guardrails.
    pub sync: SyncConfig,
    /// The browser console of `tandem serve`: who may sign in, and with which role.
    pub console: ConsoleConfig,
}

/// The console's users and sessions.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// The people who may sign in. Add one with `tandem user add NAME --role operator`, which
    /// stores only a hash of the password. No users: the console asks you to add one.
    pub users: Vec<ConsoleUser>,
    /// Hours a sign-in lasts without activity (default 12).
    pub session_hours: u64,
    /// Mark the session cookie `Secure` even when requests arrive over plain HTTP (behind a
    /// proxy that terminates HTTPS but does not send `X-Forwarded-Proto`). Default `false`:
    /// the cookie is `Secure` whenever the request came over HTTPS or through such a proxy.
    pub secure_cookies: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            users: Vec::new(),
            session_hours: 12,
            secure_cookies: false,
        }
    }
}

/// One console user.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ConsoleUser {
    /// The name to sign in with.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The password's Argon2 hash (`$argon2id$…`), as `tandem user add` writes it; never the
    /// password itself.
    pub password_hash: String,
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page: status, the sync log, records, plans and rules.
    Viewer,
    /// Also runs syncs (pull, push, one record, a saved plan) and edits the rules.
    Operator,
}

impl Role {
    /// `viewer` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            other => Err(format!(
                "unknown role `{other}`: use `viewer` (reads) or `operator` (runs syncs, edits rules)"
            )),
        }
    }
}

/// Connection to HubSpot. Set either `token_env` (a private app) or `oauth`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct HubSpotConfig {
    /// API root (default `https://api.hubapi.com`).
    pub url: String,
    /// Private app: the environment variable holding the access token.
    pub token_env: Option<String>,
    /// OAuth app: client id and the environment variables holding the secrets.
    pub oauth: Option<HubSpotOAuth>,
    /// Requests HubSpot allows the app per 10 seconds (default 190: a private app on a
    /// Professional or Enterprise portal; 100 on Free and Starter; 250 with the API limit
    /// increase). Tandem starts at this pace and follows the rate headers HubSpot sends.
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_10_seconds: Option<u32>,
    /// The HubSpot app's id (a public app's, in its developer account): with
    /// `developer_api_key_env`, `tandem doctor` compares the app's webhook subscriptions with
    /// the trigger lists and `tandem hubspot subscriptions --apply` creates the missing ones.
    /// Private apps cannot manage webhooks through the API: leave both out.
    pub app_id: Option<u64>,
    /// The environment variable holding the developer account's API key (`hapikey`), which the
    /// webhooks API takes.
    pub developer_api_key_env: Option<String>,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        HubSpotConfig {
            url: "https://api.hubapi.com".into(),
            token_env: None,
            oauth: None,
            requests_per_10_seconds: None,
            app_id: None,
            developer_api_key_env: None,
        }
    }
}

/// HubSpot OAuth credentials (by environment-variable name).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HubSpotOAuth {
    /// The app's client id (not a secret).
    pub client_id: String,
    /// The environment variable holding the client secret.
    pub client_secret_env: String,
    /// The environment variable holding the refresh token.
    pub refresh_token_env: String,
}

/// Connection to Accelo (a service application, client-credentials grant).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AcceloConfig {
    /// The deployment URL, e.g. `https://example.api.accelo.com`.
    pub url: String,
    /// The service application's client id (not a secret).
    pub client_id: String,
    /// The environment variable holding the client secret.
    pub client_secret_env: String,
    /// Requests the deployment allows per hour (default 5000, Accelo's published limit).
    /// Tandem paces its requests and estimates a run's time with it.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000000))]
    pub requests_per_hour: Option<u32>,
}

/// The store.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct StoreConfig {
    /// A SQLite file path (default `.tandem/tandem.db`) or a `postgres://` URL.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: ".tandem/tandem.db".into(),
        }
    }
}

/// Notifications.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Email over SMTP; absent = no email (the sync log says so).
    pub email: Option<EmailConfig>,
}

/// SMTP settings.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EmailConfig {
    /// `host:port` of the SMTP server.
    pub server: String,
    /// Transport security (default `starttls`).
    #[serde(default)]
    pub tls: TlsMode,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// The environment variable holding the SMTP user name, if the server needs one.
    #[serde(default)]
    pub username_env: Option<String>,
    /// The environment variable holding the SMTP password, if the server needs one.
    #[serde(default)]
    pub password_env: Option<String>,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (only for a server on a trusted network).
    None,
    /// Upgrade with STARTTLS.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ServerConfig {
    /// `address:port` to listen on (default `127.0.0.1:8080`).
    pub listen: String,
    /// The environment variable holding the HubSpot app's client secret, used to verify
    /// webhook signatures.
    pub webhook_secret_env: Option<String>,
    /// Also accept HubSpot's older v1 signatures (default `false`: v3 only).
    pub accept_v1_signatures: bool,
    /// The public base URL HubSpot calls (e.g. `https://sync.example.com`) when Tandem runs
    /// behind a proxy that changes the scheme or host: v3 signatures cover the full URL HubSpot
    /// called. Absent = `http://` + the request's `Host` header.
    pub public_url: Option<String>,
    /// The environment variable holding the secret of the Accelo webhook subscriptions
    /// (`X-Hub-Signature`); absent = `POST /webhooks/accelo` is off.
    pub accelo_webhook_secret_env: Option<String>,
    /// Seconds a client may take to send a request's headers (default 10); a connection that
    /// sends none in that time, idle ones included, is closed.
    pub header_timeout_seconds: u64,
    /// Seconds a client may take to send a request's body (default 30); a slower one gets 408
    /// and is disconnected, and nothing of its request is stored.
    pub body_timeout_seconds: u64,
    /// Connections open at once at most (default 256); one more is answered 503 and closed.
    pub max_connections: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            webhook_secret_env: None,
            accept_v1_signatures: false,
            public_url: None,
            accelo_webhook_secret_env: None,
            header_timeout_seconds: 10,
            body_timeout_seconds: 30,
            max_connections: 256,
        }
    }
}

/// Sync options.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct SyncConfig {
    /// Seconds between incremental polls of both systems (default 300).
    pub poll_interval_seconds: u64,
    /// Limits that stop a run before it writes.
    pub guardrails: Guardrails,
    /// Concurrent Accelo writes (default 4).
    pub accelo_concurrency: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            poll_interval_seconds: 300,
            guardrails: Guardrails::default(),
            accelo_concurrency: 4,
        }
    }
}

/// Guardrails: a run that would exceed any of these stops before writing and says why.
/// Absent = no limit.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Guardrails {
    /// Most records one run may create.
    pub max_create: Option<u64>,
    /// Most existing records one run may overwrite or clear a value of. Filling an empty field
    /// loses nothing and is not counted.
    pub max_update: Option<u64>,
    /// Most field values one run may clear.
    pub max_clear: Option<u64>,
    /// Largest share (0–1) of the target's existing records one bulk run may overwrite or clear a
    /// value of (filling empty fields is not counted); creates are `max_create`'s business.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_share: Option<f64>,
}

/// A secret that could not be resolved. Names the variable, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Error, miette::Diagnostic)]
pub enum SecretError {
    /// The variable is unset or empty.
    #[error("{}", missing_text(.var, .what, .key, *.env_override))]
    #[diagnostic(code(tandem::config::secret_missing))]
    Missing {
        /// The variable.
        var: String,
        /// What it is for.
        what: &'static str,
        /// The tandem.yaml key that names the variable.
        key: &'static str,
        /// The `TANDEM_*` variable that may hold the value instead, when there is one.
        env_override: Option<&'static str>,
    },
    /// The config names no variable for a secret that is needed.
    #[error("`{key}` is not configured in tandem.yaml")]
    #[diagnostic(code(tandem::config::secret_unconfigured))]
    Unconfigured {
        /// The config key that should name the variable.
        key: &'static str,
    },
}

/// The message of [`SecretError::Missing`]: the variable, what it holds, the config key naming
/// it and the `TANDEM_*` alternative.
fn missing_text(var: &str, what: &str, key: &str, env_override: Option<&str>) -> String {
    let mut s = format!(
        "environment variable `{var}` ({what}; named by `{key}` in tandem.yaml) is not set"
    );
    if let Some(o) = env_override {
        s.push_str(&format!(": set `{var}`, or set `{o}` instead"));
    }
    s
}

/// How Tandem authenticates to HubSpot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubSpotAuth {
    /// A private-app (static) access token.
    Token(Secret),
    /// OAuth 2: access tokens obtained with a refresh token and refreshed ahead of expiry.
    OAuth {
        /// The app's client id.
        client_id: String,
        /// The app's client secret.
        client_secret: Secret,
        /// The installation's refresh token.
        refresh_token: Secret,
    },
}

/// The secrets Tandem needs to talk to both systems.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// HubSpot authentication.
    pub hubspot: HubSpotAuth,
    /// Accelo client secret.
    pub accelo_client_secret: Secret,
}

/// Overrides applied by [`Config::apply_env`] (names are a public contract).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("TANDEM_HUBSPOT_URL", "hubspot.url"),
    ("TANDEM_HUBSPOT_APP_ID", "hubspot.app_id"),
    ("TANDEM_ACCELO_URL", "accelo.url"),
    ("TANDEM_ACCELO_CLIENT_ID", "accelo.client_id"),
    ("TANDEM_STORE", "store.url"),
    ("TANDEM_SMTP_SERVER", "notify.email.server"),
    ("TANDEM_SMTP_TLS", "notify.email.tls"),
    ("TANDEM_SMTP_FROM", "notify.email.from"),
    ("TANDEM_SMTP_TO", "notify.email.to"),
];

/// Secret values that may be given directly in the environment, overriding the variables the
/// config names (`TANDEM_HUBSPOT_TOKEN`, `TANDEM_ACCELO_CLIENT_SECRET`).
pub const ENV_HUBSPOT_TOKEN: &str = "TANDEM_HUBSPOT_TOKEN";
/// See [`ENV_HUBSPOT_TOKEN`].
pub const ENV_ACCELO_CLIENT_SECRET: &str = "TANDEM_ACCELO_CLIENT_SECRET";
/// The HubSpot developer API key given directly (wins over `hubspot.developer_api_key_env`).
pub const ENV_HUBSPOT_DEVELOPER_API_KEY: &str = "TANDEM_HUBSPOT_DEVELOPER_API_KEY";
/// The HubSpot webhook signing secret given directly (wins over `server.webhook_secret_env`).
pub const ENV_HUBSPOT_WEBHOOK_SECRET: &str = "TANDEM_HUBSPOT_WEBHOOK_SECRET";
/// The Accelo webhook secret given directly (wins over `server.accelo_webhook_secret_env`).
pub const ENV_ACCELO_WEBHOOK_SECRET: &str = "TANDEM_ACCELO_WEBHOOK_SECRET";
/// The SMTP user name given directly (wins over `notify.email.username_env`).
pub const ENV_SMTP_USERNAME: &str = "TANDEM_SMTP_USERNAME";
/// The SMTP password given directly (wins over `notify.email.password_env`).
pub const ENV_SMTP_PASSWORD: &str = "TANDEM_SMTP_PASSWORD";
/// The SMTP server (`host` or `host:port`), overriding `notify.email.server`.
pub const ENV_SMTP_SERVER: &str = "TANDEM_SMTP_SERVER";
/// The SMTP transport security (`none`, `starttls`, `tls`), overriding `notify.email.tls`.
pub const ENV_SMTP_TLS: &str = "TANDEM_SMTP_TLS";
/// The email's sender, overriding `notify.email.from`.
pub const ENV_SMTP_FROM: &str = "TANDEM_SMTP_FROM";
/// The email's recipients (comma-separated), overriding `notify.email.to`. With
/// [`ENV_SMTP_SERVER`] it turns the email on when tandem.yaml has no `notify.email`.
pub const ENV_SMTP_TO: &str = "TANDEM_SMTP_TO";
/// The sender of an email turned on by the environment alone, without `TANDEM_SMTP_FROM`.
pub const DEFAULT_SMTP_FROM: &str = "tandem@localhost";

impl Config {
    /// Applies the `TANDEM_*` overrides of [`ENV_OVERRIDES`] read through `env` (pass
    /// `|k| std::env::var(k).ok()` in production). Empty values are ignored.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        if let Some(v) = get("TANDEM_HUBSPOT_URL") {
            self.hubspot.url = v;
        }
        if let Some(v) = get("TANDEM_HUBSPOT_APP_ID")
            && let Ok(id) = v.trim().parse::<u64>()
        {
            self.hubspot.app_id = Some(id);
        }
        if let Some(v) = get("TANDEM_ACCELO_URL") {
            self.accelo.url = v;
        }
        if let Some(v) = get("TANDEM_ACCELO_CLIENT_ID") {
            self.accelo.client_id = v;
        }
        if let Some(v) = get("TANDEM_STORE") {
            self.store.url = v;
        }
        if let (Some(v), Some(email)) = (get(ENV_SMTP_SERVER), self.notify.email.as_mut()) {
            email.server = v;
        }
    }

    /// Applies the email overrides `TANDEM_SMTP_TLS`, `TANDEM_SMTP_FROM` and `TANDEM_SMTP_TO`
    /// (after [`Config::apply_env`], which applies `TANDEM_SMTP_SERVER`). When tandem.yaml has
    /// no `notify.email`, the email is turned on only when both `TANDEM_SMTP_SERVER` and
    /// `TANDEM_SMTP_TO` are set: the environment names the server and the recipients, so nobody
    /// receives an email they did not name (the server alone turns nothing on). An unknown
    /// `TANDEM_SMTP_TLS` or an empty recipient list is an error naming the variable.
    pub fn apply_email_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let tls = match get(ENV_SMTP_TLS) {
            None => None,
            Some(v) => Some(match v.trim().to_ascii_lowercase().as_str() {
                "none" => TlsMode::None,
                "starttls" => TlsMode::Starttls,
                "tls" => TlsMode::Tls,
                _ => {
                    return Err(format!(
                        "the environment variable `{ENV_SMTP_TLS}` is `{v}`: expected `none`, \
                         `starttls` or `tls`"
                    ));
                }
            }),
        };
        let to = match get(ENV_SMTP_TO) {
            None => None,
            Some(v) => {
                let list: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect();
                if list.is_empty() {
                    return Err(format!(
                        "the environment variable `{ENV_SMTP_TO}` names no recipient"
                    ));
                }
                Some(list)
            }
        };
        if self.notify.email.is_none()
            && let (Some(server), Some(to)) = (get(ENV_SMTP_SERVER), to.clone())
        {
            self.notify.email = Some(EmailConfig {
                server,
                tls: TlsMode::default(),
                from: DEFAULT_SMTP_FROM.to_string(),
                to,
                username_env: None,
                password_env: None,
            });
        }
        if let Some(email) = self.notify.email.as_mut() {
            if let Some(tls) = tls {
                email.tls = tls;
            }
            if let Some(from) = get(ENV_SMTP_FROM) {
                email.from = from.trim().to_string();
            }
            if let Some(to) = to {
                email.to = to;
            }
        }
        Ok(())
    }

    /// Resolves the connection secrets through `env`. `TANDEM_HUBSPOT_TOKEN` and
    /// `TANDEM_ACCELO_CLIENT_SECRET` win over the variables named in the file.
    pub fn secrets(&self, env: impl Fn(&str) -> Option<String>) -> Result<Secrets, SecretError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let read = |var: &str, what: &'static str, key: &'static str, o: Option<&'static str>| {
            get(var)
                .map(Secret::new)
                .ok_or_else(|| SecretError::Missing {
                    var: var.to_string(),
                    what,
                    key,
                    env_override: o,
                })
        };
        let hubspot = if let Some(t) = get(ENV_HUBSPOT_TOKEN) {
            HubSpotAuth::Token(Secret::new(t))
        } else if let Some(var) = &self.hubspot.token_env {
            HubSpotAuth::Token(read(
                var,
                "HubSpot access token",
                "hubspot.token_env",
                Some(ENV_HUBSPOT_TOKEN),
            )?)
        } else if let Some(o) = &self.hubspot.oauth {
            HubSpotAuth::OAuth {
                client_id: o.client_id.clone(),
                client_secret: read(
                    &o.client_secret_env,
                    "HubSpot client secret",
                    "hubspot.oauth.client_secret_env",
                    None,
                )?,
                refresh_token: read(
                    &o.refresh_token_env,
                    "HubSpot refresh token",
                    "hubspot.oauth.refresh_token_env",
                    None,
                )?,
            }
        } else {
            return Err(SecretError::Unconfigured {
                key: "hubspot.token_env",
            });
        };
        let accelo_client_secret = if let Some(s) = get(ENV_ACCELO_CLIENT_SECRET) {
            Secret::new(s)
        } else if self.accelo.client_secret_env.is_empty() {
            return Err(SecretError::Unconfigured {
                key: "accelo.client_secret_env",
            });
        } else {
            read(
                &self.accelo.client_secret_env,
                "Accelo client secret",
                "accelo.client_secret_env",
                Some(ENV_ACCELO_CLIENT_SECRET),
            )?
        };
        Ok(Secrets {
            hubspot,
            accelo_client_secret,
        })
    }

    /// The HubSpot webhook signing secret: `TANDEM_HUBSPOT_WEBHOOK_SECRET`, else the variable
    /// named by `server.webhook_secret_env`; `None` when neither is configured.
    pub fn webhook_secret(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, SecretError> {
        optional_secret(
            &env,
            ENV_HUBSPOT_WEBHOOK_SECRET,
            self.server.webhook_secret_env.as_deref(),
            "HubSpot webhook signing secret",
            "server.webhook_secret_env",
        )
    }

    /// The HubSpot developer API key: `TANDEM_HUBSPOT_DEVELOPER_API_KEY`, else the variable named
    /// by `hubspot.developer_api_key_env`; `None` when neither is configured.
    pub fn developer_api_key(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, SecretError> {
        optional_secret(
            &env,
            ENV_HUBSPOT_DEVELOPER_API_KEY,
            self.hubspot.developer_api_key_env.as_deref(),
            "HubSpot developer API key",
            "hubspot.developer_api_key_env",
        )
    }

    /// The Accelo webhook secret (`X-Hub-Signature`): `TANDEM_ACCELO_WEBHOOK_SECRET`, else the
    /// variable named by `server.accelo_webhook_secret_env`; `None` when neither is configured.
    pub fn accelo_webhook_secret(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, SecretError> {
        if let Some(v) = env(ENV_ACCELO_WEBHOOK_SECRET).filter(|v| !v.is_empty()) {
            return Ok(Some(Secret::new(v)));
        }
        match &self.server.accelo_webhook_secret_env {
            None => Ok(None),
            Some(var) => env(var)
                .filter(|v| !v.is_empty())
                .map(|v| Some(Secret::new(v)))
                .ok_or_else(|| SecretError::Missing {
                    var: var.clone(),
                    what: "Accelo webhook secret",
                    key: "server.accelo_webhook_secret_env",
                    env_override: Some(ENV_ACCELO_WEBHOOK_SECRET),
                }),
        }
    }

    /// SMTP credentials (user name, password) when the email config names them:
    /// `TANDEM_SMTP_USERNAME` / `TANDEM_SMTP_PASSWORD` win over the variables
    /// `notify.email.username_env` / `password_env` name (and give a login when the config
    /// names none).
    pub fn smtp_credentials(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(Secret, Secret)>, SecretError> {
        let Some(email) = &self.notify.email else {
            return Ok(None);
        };
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let one = |direct: &'static str,
                   named: &Option<String>,
                   what: &'static str,
                   key: &'static str|
         -> Result<Option<Secret>, SecretError> {
            if let Some(v) = get(direct) {
                return Ok(Some(Secret::new(v)));
            }
            match named {
                None => Ok(None),
                Some(var) => {
                    get(var)
                        .map(|v| Some(Secret::new(v)))
                        .ok_or_else(|| SecretError::Missing {
                            var: var.clone(),
                            what,
                            key,
                            env_override: Some(direct),
                        })
                }
            }
        };
        let user = one(
            ENV_SMTP_USERNAME,
            &email.username_env,
            "SMTP user name",
            "notify.email.username_env",
        )?;
        let password = one(
            ENV_SMTP_PASSWORD,
            &email.password_env,
            "SMTP password",
            "notify.email.password_env",
        )?;
        match (user, password) {
            (Some(u), Some(p)) => Ok(Some((u, p))),
            _ => Ok(None),
        }
    }
}

/// An optional secret: the `TANDEM_*` override, else the variable the config names (an error
/// naming both when that variable is not set), else `None`.
fn optional_secret(
    env: &impl Fn(&str) -> Option<String>,
    env_override: &'static str,
    var: Option<&str>,
    what: &'static str,
    key: &'static str,
) -> Result<Option<Secret>, SecretError> {
    if let Some(v) = env(env_override).filter(|v| !v.is_empty()) {
        return Ok(Some(Secret::new(v)));
    }
    match var {
        None => Ok(None),
        Some(var) => env(var)
            .filter(|v| !v.is_empty())
            .map(|v| Some(Secret::new(v)))
            .ok_or_else(|| SecretError::Missing {
                var: var.to_string(),
                what,
                key,
                env_override: Some(env_override),
            }),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn config() -> Config {
        let mut c = Config::default();
        c.hubspot.token_env = Some("HS_TOKEN".into());
        c.accelo.client_secret_env = "ACCELO_SECRET".into();
        c
    }

    #[test]
    fn secrets_resolve_and_never_print() {
        let s = config()
            .secrets(env(&[
                ("HS_TOKEN", "pat-na1-xyz"),
                ("ACCELO_SECRET", "s3cr3t"),
            ]))
            .unwrap();
        assert_eq!(s.hubspot, HubSpotAuth::Token(Secret::new("pat-na1-xyz")));
        assert_eq!(s.accelo_client_secret.expose(), "s3cr3t");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("pat-na1-xyz") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn missing_secret_names_the_variable() {
        let e = config()
            .secrets(env(&[("HS_TOKEN", "pat-na1-xyz")]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable `ACCELO_SECRET` (Accelo client secret; named by \
             `accelo.client_secret_env` in tandem.yaml) is not set: set `ACCELO_SECRET`, or set \
             `TANDEM_ACCELO_CLIENT_SECRET` instead"
        );
        assert!(!e.to_string().contains("pat-na1-xyz"));
    }

    #[test]
    fn email_turns_on_from_the_environment_only_with_server_and_recipients() {
        let vars = [
            ("TANDEM_SMTP_SERVER", "127.0.0.1:2525"),
            ("TANDEM_SMTP_TLS", "none"),
            ("TANDEM_SMTP_TO", "a@example.com, b@example.com"),
        ];
        let mut c = config();
        c.apply_env(env(&vars[..2]));
        c.apply_email_env(env(&vars[..2])).unwrap();
        assert_eq!(c.notify.email, None, "the server alone turns nothing on");
        c.apply_env(env(&vars));
        c.apply_email_env(env(&vars)).unwrap();
        let e = c.notify.email.clone().unwrap();
        assert_eq!(e.server, "127.0.0.1:2525");
        assert_eq!(e.tls, TlsMode::None);
        assert_eq!(e.from, DEFAULT_SMTP_FROM);
        assert_eq!(e.to, vec!["a@example.com", "b@example.com"]);
        let err = c
            .apply_email_env(env(&[("TANDEM_SMTP_TLS", "ssl")]))
            .unwrap_err();
        assert!(err.contains("`TANDEM_SMTP_TLS`"), "{err}");
    }

    #[test]
    fn env_overrides_win() {
        let mut c = config();
        c.apply_env(env(&[
            ("TANDEM_HUBSPOT_URL", "http://127.0.0.1:9"),
            ("TANDEM_STORE", "postgres://x/y"),
        ]));
        assert_eq!(c.hubspot.url, "http://127.0.0.1:9");
        assert_eq!(c.store.url, "postgres://x/y");
        let s = c
            .secrets(env(&[
                ("TANDEM_HUBSPOT_TOKEN", "direct"),
                ("TANDEM_ACCELO_CLIENT_SECRET", "direct2"),
            ]))
            .unwrap();
        assert_eq!(s.hubspot, HubSpotAuth::Token(Secret::new("direct")));
        assert_eq!(s.accelo_client_secret.expose(), "direct2");
    }
}
