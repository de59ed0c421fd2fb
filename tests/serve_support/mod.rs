//! Shared helpers of the `serve_*` integration tests: the sandbox, connectors to it, its admin
//! API, the shipped rules, and waiting for a condition with a deadline (never a sleep).

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a subset; a panic is a failure

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem::compile::{self, Program};
use tandem::connect::accelo::{Accelo, AcceloSettings};
use tandem::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use tandem::connect::{Connector, RetryPolicy, Secret};
use tandem::rules::Paths;
use tandem::sandbox::{Sandbox, SandboxOptions};

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
