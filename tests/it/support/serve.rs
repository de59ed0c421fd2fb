//! Helpers of the `serve_*` tests: a sandbox, connectors to it, its admin API, the shipped
//! rules, `tandem serve` running in-process, and waiting for a condition with a deadline (never
//! a sleep).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tandem_sandbox::{Sandbox, SandboxOptions};

pub use super::admin::{edit, records, stats};
pub use super::{accelo, hubspot, program};

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A sandbox started with `options`.
pub async fn sandbox(options: SandboxOptions) -> Sandbox {
    Sandbox::start(options).await.expect("sandbox starts")
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
                store: None,
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
