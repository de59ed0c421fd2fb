//! Shared helpers of the `serve_*` integration tests: the sandbox, connectors to it, its admin
//! API, the shipped rules, and waiting for a condition with a deadline (never a sleep).

#![allow(dead_code)] // each test module uses a subset

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::compile::{self, Program};
use tandem_core::rules::Paths;
use tandem_engine::connect::accelo::{Accelo, AcceloSettings};
use tandem_engine::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use tandem_engine::connect::{Connector, RetryPolicy, Secret};
use tandem_sandbox::{Sandbox, SandboxOptions};

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        retries: 12,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
        max_server_wait: Duration::from_millis(50),
    }
}

pub async fn sandbox(options: SandboxOptions) -> Sandbox {
    Sandbox::start(options).await.expect("sandbox starts")
}

pub fn hubspot(sb: &Sandbox) -> Arc<dyn Connector> {
    let mut s = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::Token(Secret::new(sb.hubspot_token())),
    );
    s.retry = fast_retry();
    Arc::new(HubSpot::new(s).expect("hubspot connector"))
}

pub fn accelo(sb: &Sandbox) -> Arc<dyn Connector> {
    let mut s = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new(sb.accelo_client_secret()),
    );
    s.retry = fast_retry();
    Arc::new(Accelo::new(s).expect("accelo connector"))
}

/// The shipped rules (rules/).
pub fn shipped_program() -> Arc<Program> {
    let paths = Paths {
        config: PathBuf::from("rules/tandem.yaml"),
        rules_dir: PathBuf::from("rules"),
    };
    compile::load(&paths).unwrap().program
}

/// `POST /_sandbox/edit` on `base` (a simulator's URL): creates (`id` None) or changes a record
/// as a person would; answers the record.
pub async fn edit(base: &str, object: &str, id: Option<&str>, fields: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/_sandbox/edit"))
        .json(&json!({"object": object, "id": id, "fields": fields}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "edit {object} {id:?}: {status} {body}");
    body
}

/// `GET /_sandbox/records/{object}` on `base`.
pub async fn records(base: &str, object: &str) -> Vec<Value> {
    reqwest::get(format!("{base}/_sandbox/records/{object}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /_sandbox/stats` on `base`.
pub async fn stats(base: &str) -> Value {
    reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`] with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A HubSpot record's property (`properties.<name>` in the admin listing).
pub fn prop<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    record["properties"][name].as_str()
}

/// The HubSpot webhook secret the serve tests use.
pub const WEBHOOK_SECRET: &str = "serve-test-webhook-secret-42";
/// The Accelo webhook secret the serve tests use.
pub const ACCELO_WEBHOOK_SECRET: &str = "serve-test-accelo-secret-43";

/// A `tandem serve` running in-process against a sandbox, with its own rules directory and
/// SQLite store in a temporary directory.
pub struct Serving {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The rules directory (edit it to test hot reload).
    pub rules: PathBuf,
    /// The store URL (a SQLite file).
    pub store_url: String,
    /// A second handle on the store, for the test's own checks.
    pub store: Arc<dyn tandem_engine::store::Store>,
    shutdown: tokio_util::sync::CancellationToken,
    handle: Option<tokio::task::JoinHandle<tandem::cli::Exit>>,
    _dir: tempfile::TempDir,
}

/// The environment `tandem serve` gets in the tests: connections and secrets of the sandbox.
pub fn serve_env(sb: &Sandbox, store_url: &str) -> Vec<(String, String)> {
    [
        ("TANDEM_HUBSPOT_URL", sb.hubspot_url()),
        ("TANDEM_HUBSPOT_TOKEN", sb.hubspot_token()),
        ("TANDEM_ACCELO_URL", sb.accelo_url()),
        ("TANDEM_ACCELO_CLIENT_ID", sb.accelo_client_id()),
        ("TANDEM_ACCELO_CLIENT_SECRET", sb.accelo_client_secret()),
        ("TANDEM_STORE", store_url),
        ("TANDEM_HUBSPOT_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("TANDEM_ACCELO_WEBHOOK_SECRET", ACCELO_WEBHOOK_SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Copies the shipped rules into `dir`, then lets `edit` change them (file name → text).
pub fn rules_dir(dir: &std::path::Path, edit: impl Fn(&str, String) -> String) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for f in ["tandem.yaml", "companies.yaml", "contacts.yaml"] {
        let text = std::fs::read_to_string(PathBuf::from("rules").join(f)).unwrap();
        std::fs::write(rules.join(f), edit(f, text)).unwrap();
    }
    rules
}

impl Serving {
    /// Starts `tandem serve` (poller every `poll` seconds, 0 = off) and points the sandbox's
    /// HubSpot webhooks at it.
    pub async fn start(sb: &Sandbox, poll: u64, edit: impl Fn(&str, String) -> String) -> Serving {
        let dir = tempfile::tempdir().unwrap();
        let rules = rules_dir(dir.path(), edit);
        let store_url = dir.path().join("tandem.db").display().to_string();
        let env = tandem_engine::runtime::Env::from_pairs(serve_env(sb, &store_url));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let args = tandem::cli::serve::Args {
            config: tandem::cli::ConfigArgs {
                config: Some(rules.join("tandem.yaml")),
                rules: Some(rules.clone()),
            },
            listen: None,
            poll_interval: Some(poll),
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        let handle = tokio::spawn(tandem::cli::serve::serve_on(
            args,
            env,
            listener,
            shutdown.clone(),
        ));
        // Ready when /healthz answers (the store exists by then).
        let health = format!("{url}/healthz");
        wait_for("tandem serve to answer /healthz", || {
            let health = health.clone();
            async move {
                match reqwest::get(&health).await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        let store = tandem_engine::store::open(&store_url).await.unwrap();
        sb.set_hubspot_webhook(
            Some(&format!("{url}/webhooks/hubspot")),
            Some(WEBHOOK_SECRET),
        );
        Serving {
            url,
            rules,
            store_url,
            store,
            shutdown,
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Stops it as SIGTERM would and returns its exit code.
    pub async fn stop(mut self) -> tandem::cli::Exit {
        self.shutdown.cancel();
        let h = self.handle.take().unwrap();
        tokio::time::timeout(DEADLINE, h).await.unwrap().unwrap()
    }

    /// Waits until nothing is left to do: every HubSpot webhook delivered and every job ended.
    pub async fn settle(&self, sb: &Sandbox) {
        let store = self.store.clone();
        wait_for("the sync to settle", || {
            let store = store.clone();
            let pending = sb.hubspot_webhooks_pending();
            async move {
                let open = store
                    .jobs(&tandem_engine::store::JobFilter {
                        states: vec![
                            tandem_engine::store::JobState::Queued,
                            tandem_engine::store::JobState::Running,
                        ],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                (pending == 0 && open.is_empty()).then_some(())
            }
        })
        .await;
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The record of `object` on `base` (a simulator) whose `field` (top-level, or HubSpot
/// property) equals `value`.
pub async fn find_record(base: &str, object: &str, field: &str, value: &str) -> Option<Value> {
    records(base, object).await.into_iter().find(|r| {
        r["properties"][field].as_str() == Some(value) || r[field].as_str() == Some(value)
    })
}
