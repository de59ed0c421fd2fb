//! The runtime glue every command that talks to the two systems starts from: resolve the config
//! and rules paths, load + check + compile, apply the `TANDEM_*` environment overrides, build
//! both connectors from the config and the secrets, and open the store when (and only when) it
//! is needed.
//!
//! Nothing here talks to a remote system or creates a file: [`Runtime::load`] only reads the
//! config and rule files and the environment. The store is opened lazily — read-only commands
//! such as `tandem plan` use [`Runtime::existing_store`], which never creates one (a missing
//! SQLite file means "no links yet"); commands that write use [`Runtime::store`].
//!
//! Errors say what kind of failure they are ([`RuntimeError::kind`]): invalid config, rules,
//! secrets or arguments; a system or database that cannot be reached or refuses the
//! credentials; anything else. The command line turns the kind into its exit code.
//!
//! Tests build the same runtime with [`Options`] carrying an explicit environment ([`Env::Map`]),
//! so they never mutate the process environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::connect::accelo::{Accelo, AcceloSettings};
use crate::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use crate::connect::{ConnectError, Connector, HubSpotApp, RetryPolicy, Secret, Systems};
use crate::exec::worker::FailKind;
use crate::store::{self, OpenOptions, Store, StoreError};
use tandem_core::compile::{Program, load};
use tandem_core::model::{Link, Object, System};
use tandem_core::rules::config::{self, Config, SecretError};
use tandem_core::rules::{Paths, Report};

/// Where environment variables come from. `Debug` shows variable names, never values (they
/// hold secrets).
#[derive(Clone, Default)]
pub enum Env {
    /// The process environment (production).
    #[default]
    Process,
    /// An explicit map (tests): nothing else is visible.
    Map(BTreeMap<String, String>),
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Env::Process => f.write_str("Process"),
            Env::Map(m) => f
                .debug_tuple("Map")
                .field(&m.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl Env {
    /// An explicit environment from pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(key).ok(),
            Env::Map(m) => m.get(key).cloned(),
        }
    }
}

/// How to build a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--config` (else `TANDEM_CONFIG` from [`Options::env`], else `rules/tandem.yaml`).
    pub config: Option<PathBuf>,
    /// `--rules` (else the config file's directory).
    pub rules: Option<PathBuf>,
    /// Where `TANDEM_*` overrides and secrets are read from.
    pub env: Env,
    /// Retry policy for both connectors (default: [`RetryPolicy::default`]). Tests shorten it.
    pub retry: Option<RetryPolicy>,
    /// `--store URL`: wins over `TANDEM_STORE` and `store.url` in tandem.yaml.
    pub store: Option<String>,
}

/// Why a runtime could not be built or used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RuntimeError {
    /// The config or the rules are invalid (every diagnostic is in the report).
    #[error("the configuration or the rules are invalid: {}", .0.summary())]
    #[diagnostic(
        code(tandem::runtime::rules),
        help("run `tandem check` for the details")
    )]
    Rules(Report),
    /// A secret could not be resolved.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Secret(#[from] SecretError),
    /// A connection setting is unusable (a malformed URL, …).
    #[error("invalid {system} connection settings: {message}")]
    #[diagnostic(
        code(tandem::runtime::connection),
        help("check `{system}` in tandem.yaml and its `TANDEM_*` environment overrides")
    )]
    Connection {
        /// The system.
        system: System,
        /// What is wrong.
        message: String,
    },
    /// A remote system failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Connect(#[from] ConnectError),
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    /// Reading a scope or a saved plan failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Read(crate::snapshot::ReadError),
    /// The command line asks for something that does not exist or makes no sense.
    #[error("{0}")]
    #[diagnostic(code(tandem::runtime::invalid))]
    Invalid(String),
}

impl From<crate::snapshot::ReadError> for RuntimeError {
    fn from(e: crate::snapshot::ReadError) -> RuntimeError {
        use crate::snapshot::ReadError;
        match e {
            ReadError::Connect(e) => RuntimeError::Connect(e),
            ReadError::Store(e) => RuntimeError::Store(e),
            other => RuntimeError::Read(other),
        }
    }
}

impl RuntimeError {
    /// What kind of failure this is (the command line's exit code follows from it).
    pub fn kind(&self) -> FailKind {
        match self {
            RuntimeError::Rules(_)
            | RuntimeError::Secret(_)
            | RuntimeError::Connection { .. }
            | RuntimeError::Read(_)
            | RuntimeError::Invalid(_) => FailKind::Invalid,
            RuntimeError::Connect(e) if e.is_unreachable() => FailKind::Unreachable,
            RuntimeError::Connect(ConnectError::Invalid { .. } | ConnectError::NotFound { .. }) => {
                FailKind::Invalid
            }
            RuntimeError::Connect(_) => FailKind::Other,
            RuntimeError::Store(e) if e.is_unreachable() => FailKind::Unreachable,
            RuntimeError::Store(StoreError::Open { .. } | StoreError::Missing { .. }) => {
                FailKind::Invalid
            }
            RuntimeError::Store(_) => FailKind::Other,
        }
    }

    /// The error rendered for stderr: invalid rules as `tandem check` shows them, everything
    /// else through miette.
    pub fn render(&self, color: bool) -> String {
        match self {
            RuntimeError::Rules(report) => {
                let mut s = report.render_human(color);
                if !s.ends_with('\n') {
                    s.push('\n');
                }
                s.push_str(&format!("error: {self}\n"));
                s
            }
            other => {
                let handler = if color {
                    miette::GraphicalReportHandler::new()
                } else {
                    miette::GraphicalReportHandler::new_themed(
                        miette::GraphicalTheme::unicode_nocolor(),
                    )
                };
                let mut s = String::new();
                if handler.render_report(&mut s, other).is_err() {
                    s = format!("error: {other}\n");
                }
                s
            }
        }
    }
}

/// Everything a command that talks to both systems needs, built once.
pub struct Runtime {
    /// The config and rules paths in use.
    pub paths: Paths,
    /// The compiled rules.
    pub program: Arc<Program>,
    /// The configuration with the `TANDEM_*` overrides applied.
    pub config: Config,
    /// Warnings found while checking (no errors: those stop [`Runtime::load`]).
    pub warnings: Report,
    /// Both connectors (no request made yet).
    pub systems: Systems,
    env: Env,
    retry: Option<RetryPolicy>,
    store: OnceCell<Arc<dyn Store>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("paths", &self.paths)
            .field("rules_hash", &self.program.rules_hash())
            .field("hubspot_url", &self.config.hubspot.url)
            .field("accelo_url", &self.config.accelo.url)
            .field(
                "store_url",
                &crate::store::redact::scrub(&self.config.store.url),
            )
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Resolves the paths, loads, checks and compiles the config and rules, applies the
    /// environment overrides, resolves the secrets (registering them with
    /// [`store::redact::register_secret`]) and builds both connectors. Reads files and the
    /// environment only: no request is made and no file is created.
    pub fn load(options: Options) -> Result<Runtime, RuntimeError> {
        let env = options.env.clone();
        let paths = Paths::resolve_with(options.config.clone(), options.rules.clone(), |k| {
            env.get(k)
        });
        let loaded = load(&paths).map_err(RuntimeError::Rules)?;
        let mut config = loaded.config;
        config.apply_env(|k| env.get(k));
        config
            .apply_email_env(|k| env.get(k))
            .map_err(RuntimeError::Invalid)?;
        if let Some(url) = options.store.as_ref().filter(|u| !u.trim().is_empty()) {
            config.store.url = url.clone();
        }
        let secrets = config.secrets(|k| env.get(k))?;
        let origin = |var: &str, key: &str| {
            if env.get(var).is_some_and(|v| !v.is_empty()) {
                format!("the environment variable `{var}`")
            } else {
                format!("`{key}` in {}", paths.config.display())
            }
        };
        let origins = [
            origin("TANDEM_HUBSPOT_URL", "hubspot.url"),
            origin("TANDEM_ACCELO_URL", "accelo.url"),
        ];
        let systems = connectors(&config, secrets, options.retry, origins)?;
        register_url_password(&config.store.url);
        Ok(Runtime {
            paths,
            program: loaded.program,
            config,
            warnings: loaded.report,
            systems,
            env,
            retry: options.retry,
            store: OnceCell::new(),
        })
    }

    /// The client of the HubSpot app's webhook settings (the webhooks v3 API), when
    /// `hubspot.app_id` and a developer API key (`hubspot.developer_api_key_env` or
    /// `TANDEM_HUBSPOT_DEVELOPER_API_KEY`) are both configured; `None` when either is absent.
    /// The key is registered as a secret. Makes no request.
    pub fn hubspot_app(&self) -> Result<Option<HubSpotApp>, RuntimeError> {
        let key = self.config.developer_api_key(|k| self.env.get(k))?;
        let (Some(app_id), Some(key)) = (self.config.hubspot.app_id, key) else {
            return Ok(None);
        };
        store::redact::register_secret(key.expose());
        let url = self.config.hubspot.url.trim().trim_end_matches('/');
        HubSpotApp::new(url, app_id, key, self.retry)
            .map(Some)
            .map_err(|e| RuntimeError::Connection {
                system: System::HubSpot,
                message: e.to_string(),
            })
    }

    /// The connector of `system`.
    pub fn connector(&self, system: System) -> &Arc<dyn Connector> {
        self.systems.get(system)
    }

    /// An environment variable as this runtime sees it.
    pub fn env(&self, key: &str) -> Option<String> {
        self.env.get(key)
    }

    /// The store location: `TANDEM_STORE`, else `store.url` in tandem.yaml (a SQLite path,
    /// relative to the working directory, or a `postgres://` URL).
    pub fn store_url(&self) -> &str {
        &self.config.store.url
    }

    /// The store, opened (and for SQLite created) on first use and kept for later calls.
    pub async fn store(&self) -> Result<Arc<dyn Store>, RuntimeError> {
        let url = self.store_url().to_string();
        let store = self
            .store
            .get_or_try_init(|| async move { store::open(&url).await })
            .await?;
        Ok(store.clone())
    }

    /// The store if it exists, never creating it: `None` when the SQLite file is missing (no
    /// run has written links yet). For commands that write nothing, such as `tandem plan`.
    pub async fn existing_store(&self) -> Result<Option<Arc<dyn Store>>, RuntimeError> {
        if let Some(s) = self.store.get() {
            return Ok(Some(s.clone()));
        }
        let options = OpenOptions {
            create: false,
            max_connections: Some(2),
        };
        match store::open_with(self.store_url(), &options).await {
            Ok(s) => {
                // Keep it: later calls (and `store()`) use the same pool.
                let _ = self.store.set(s.clone());
                Ok(Some(s))
            }
            Err(StoreError::Missing { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every link of `object` in the existing store (none when there is no store yet).
    pub async fn links(&self, object: Object) -> Result<Vec<Link>, RuntimeError> {
        match self.existing_store().await? {
            Some(s) => Ok(s.links(object).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Reads `scope` for a run in `direction` (links from the existing store; none when there is
    /// no store yet). See [`crate::snapshot`].
    pub async fn read(
        &self,
        direction: tandem_core::model::Direction,
        scope: &tandem_core::plan::Scope,
    ) -> Result<crate::snapshot::Snapshot, RuntimeError> {
        let store = self.existing_store().await?;
        Ok(crate::snapshot::read(
            &self.systems,
            &self.program,
            store.as_deref(),
            direction,
            scope,
        )
        .await?)
    }

    /// Reads a saved plan's scope again and says what changed since it was made (B18).
    pub async fn check_saved(
        &self,
        saved: &tandem_core::plan::SavedPlan,
    ) -> Result<crate::snapshot::Check, RuntimeError> {
        let store = self.existing_store().await?;
        Ok(
            crate::snapshot::check_saved(&self.systems, &self.program, store.as_deref(), saved)
                .await?,
        )
    }

    /// One authenticated request to each system: fails with the exit-3 kind of error when one
    /// cannot be reached or refuses the credentials.
    pub async fn check_systems(&self) -> Result<(), RuntimeError> {
        self.systems.hubspot.check().await?;
        self.systems.accelo.check().await?;
        Ok(())
    }
}

/// Waits for a request to stop: SIGINT (Ctrl-C) or SIGTERM (Ctrl-C elsewhere).
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Builds both connectors from the config and the resolved secrets. `origins` say where the
/// HubSpot and the Accelo URL were configured, for the error of an address that cannot work.
pub fn connectors(
    config: &Config,
    secrets: config::Secrets,
    retry: Option<RetryPolicy>,
    origins: [String; 2],
) -> Result<Systems, RuntimeError> {
    match &secrets.hubspot {
        HubSpotAuth::Token(t) => store::redact::register_secret(t.expose()),
        HubSpotAuth::OAuth {
            client_secret,
            refresh_token,
            ..
        } => {
            store::redact::register_secret(client_secret.expose());
            store::redact::register_secret(refresh_token.expose());
        }
    }
    let hs_auth = secrets.hubspot;
    store::redact::register_secret(secrets.accelo_client_secret.expose());

    let url = |system: System, url: &str| -> Result<String, RuntimeError> {
        let url = url.trim().trim_end_matches('/');
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                Ok(url.to_string())
            }
            Ok(_) => Err(RuntimeError::Connection {
                system,
                message: format!("`{url}` is not an http(s) URL"),
            }),
            Err(e) => Err(RuntimeError::Connection {
                system,
                message: format!("`{url}` is not a URL: {e}"),
            }),
        }
    };

    let [hs_origin, ac_origin] = origins;
    let mut hs = HubSpotSettings::new(url(System::HubSpot, &config.hubspot.url)?, hs_auth);
    hs.url_origin = Some(hs_origin);
    if let Some(n) = config.hubspot.requests_per_10_seconds.filter(|n| *n > 0) {
        hs.rate_limit = crate::connect::RateLimit {
            requests: n,
            per: std::time::Duration::from_secs(10),
        };
    }
    if config.accelo.client_id.trim().is_empty() {
        return Err(RuntimeError::Connection {
            system: System::Accelo,
            message: "`accelo.client_id` is empty".into(),
        });
    }
    let mut ac = AcceloSettings::new(
        url(System::Accelo, &config.accelo.url)?,
        config.accelo.client_id.trim(),
        Secret::new(secrets.accelo_client_secret.expose()),
    );
    ac.url_origin = Some(ac_origin);
    if let Some(n) = config.accelo.requests_per_hour.filter(|n| *n > 0) {
        ac.rate_limit = crate::connect::RateLimit {
            requests: n,
            per: std::time::Duration::from_secs(3600),
        };
    }
    ac.write_concurrency = usize::try_from(config.sync.accelo_concurrency.max(1)).unwrap_or(1);
    if let Some(r) = retry {
        hs.retry = r;
        ac.retry = r;
    }
    let hubspot = HubSpot::new(hs).map_err(|e| RuntimeError::Connection {
        system: System::HubSpot,
        message: e.to_string(),
    })?;
    let accelo = Accelo::new(ac).map_err(|e| RuntimeError::Connection {
        system: System::Accelo,
        message: e.to_string(),
    })?;
    Ok(Systems {
        hubspot: Arc::new(hubspot),
        accelo: Arc::new(accelo),
    })
}

/// Registers the password of a database URL as a secret.
fn register_url_password(url: &str) {
    if let Ok(u) = reqwest::Url::parse(url)
        && let Some(p) = u.password()
    {
        let decoded = percent_encoding::percent_decode_str(p).decode_utf8_lossy();
        store::redact::register_secret(&decoded);
        store::redact::register_secret(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &std::path::Path, extra: &str) -> PathBuf {
        let path = dir.join("tandem.yaml");
        std::fs::write(
            &path,
            format!(
                "hubspot:\n  url: https://api.hubapi.com\n  token_env: HS_TOKEN\n\
                 accelo:\n  url: https://demo.api.accelo.com\n  client_id: app\n  client_secret_env: AC_SECRET\n{extra}"
            ),
        )
        .unwrap_or_else(|e| panic!("write config: {e}"));
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        for f in ["companies.yaml", "contacts.yaml"] {
            std::fs::copy(shipped.join(f), dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        path
    }

    fn options(config: PathBuf, env: &[(&str, &str)]) -> Options {
        Options {
            config: Some(config),
            rules: None,
            env: Env::from_pairs(env.iter().copied()),
            retry: None,
            store: None,
        }
    }

    #[test]
    fn overrides_and_secrets_come_from_the_given_environment() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = write_config(dir.path(), "");
        let rt = Runtime::load(options(
            config,
            &[
                ("HS_TOKEN", "pat-na1-from-file-var"),
                ("AC_SECRET", "accelo-secret-1"),
                ("TANDEM_HUBSPOT_URL", "http://127.0.0.1:9"),
                ("TANDEM_ACCELO_URL", "http://127.0.0.1:10/"),
                ("TANDEM_ACCELO_CLIENT_ID", "other-app"),
                ("TANDEM_STORE", "/tmp/x/tandem.db"),
            ],
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rt.config.hubspot.url, "http://127.0.0.1:9");
        assert_eq!(rt.config.accelo.client_id, "other-app");
        assert_eq!(rt.store_url(), "/tmp/x/tandem.db");
        assert_eq!(rt.connector(System::HubSpot).system(), System::HubSpot);
        assert_eq!(rt.connector(System::Accelo).system(), System::Accelo);
        // The secrets are registered: the store scrubs them from the sync log.
        assert_eq!(
            store::redact::scrub_registered("x accelo-secret-1 y"),
            "x [redacted] y"
        );
        let shown = format!("{rt:?}");
        assert!(!shown.contains("accelo-secret-1"), "{shown}");
        assert!(!shown.contains("pat-na1-from-file-var"), "{shown}");
    }

    #[test]
    fn a_missing_secret_is_invalid_input_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = write_config(dir.path(), "");
        let e = Runtime::load(options(config, &[("HS_TOKEN", "pat-na1-abcdef")]))
            .err()
            .unwrap_or_else(|| panic!("loads without the accelo secret"));
        assert_eq!(e.kind(), FailKind::Invalid);
        assert!(e.to_string().contains("`AC_SECRET`"), "{e}");
    }

    #[test]
    fn invalid_rules_and_bad_urls_are_exit_2() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = write_config(dir.path(), "");
        std::fs::write(
            dir.path().join("companies.yaml"),
            "object: company\nfields:\n  - hubspot: name\n    accelo: $.name\n    transform: {pull: 'value +'}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = Runtime::load(options(
            config.clone(),
            &[
                ("HS_TOKEN", "pat-na1-abcdef"),
                ("AC_SECRET", "secret-abcdef"),
            ],
        ))
        .err()
        .unwrap_or_else(|| panic!("invalid rules load"));
        assert!(matches!(e, RuntimeError::Rules(_)), "{e:?}");
        assert_eq!(e.kind(), FailKind::Invalid);
        assert!(
            e.render(false).contains("companies.yaml"),
            "{}",
            e.render(false)
        );

        std::fs::remove_file(dir.path().join("companies.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let e = Runtime::load(options(
            config,
            &[
                ("HS_TOKEN", "pat-na1-abcdef"),
                ("AC_SECRET", "secret-abcdef"),
                ("TANDEM_HUBSPOT_URL", "not a url"),
            ],
        ))
        .err()
        .unwrap_or_else(|| panic!("a bad url loads"));
        assert_eq!(e.kind(), FailKind::Invalid);
        assert!(e.to_string().contains("`not a url`"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_store_is_no_links_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = write_config(dir.path(), "");
        let db = dir.path().join("state").join("tandem.db");
        let rt = Runtime::load(options(
            config,
            &[
                ("HS_TOKEN", "pat-na1-abcdef"),
                ("AC_SECRET", "secret-abcdef"),
                ("TANDEM_STORE", db.to_str().unwrap_or_default()),
            ],
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            rt.existing_store()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
        assert!(
            rt.links(Object::Company)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
        assert!(!db.exists() && !db.parent().is_some_and(|p| p.exists()));
        // A writing command creates it.
        let s = rt.store().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(db.exists());
        s.upsert_link(&Link {
            object: Object::Company,
            hubspot_id: "1".into(),
            accelo_id: "2".into(),
            affiliation_id: None,
            last_synced: BTreeMap::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rt.links(Object::Company)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn an_unreachable_system_is_exit_3() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = write_config(dir.path(), "");
        // A port nothing listens on: bind one, then drop it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut o = options(
            config,
            &[
                ("HS_TOKEN", "pat-na1-abcdef"),
                ("AC_SECRET", "secret-abcdef"),
                ("TANDEM_HUBSPOT_URL", &format!("http://127.0.0.1:{port}")),
            ],
        );
        o.retry = Some(RetryPolicy {
            retries: 1,
            min_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(2),
            max_server_wait: std::time::Duration::from_millis(2),
        });
        let rt = Runtime::load(o).unwrap_or_else(|e| panic!("{e}"));
        let e = rt
            .check_systems()
            .await
            .err()
            .unwrap_or_else(|| panic!("reached"));
        assert_eq!(e.kind(), FailKind::Unreachable, "{e}");
    }
}
