//! What the integration tests share: connectors to a sandbox with quick retries, full reads, the
//! shipped rules, a closed port; the sandbox's admin API over HTTP ([`admin`]); headless Chromium
//! driven over WebDriver ([`browser`]); `tandem serve` with console users and an API client
//! signed in to it ([`console`]); the executor and command tests' world and project
//! ([`exec`]); an API checked against its OpenAPI document ([`schemathesis`]); and the serve
//! tests' in-process server and waiting with a deadline ([`serve`]).

pub mod admin;
pub mod browser;
pub mod console;
pub mod exec;
pub mod schemathesis;
pub mod serve;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::TryStreamExt;
use tandem_core::compile::{Program, load};
use tandem_core::model::{Object, Record};
use tandem_core::rules::Paths;
use tandem_engine::connect::accelo::{Accelo, AcceloSettings};
use tandem_engine::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use tandem_engine::connect::{Connector, RetryPolicy, Scan, Secret};
use tandem_sandbox::{Sandbox, SandboxOptions};

/// Quick retries: the sandbox's faults are seeded, the waits need not be long.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        retries: 12,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
        max_server_wait: Duration::from_millis(50),
    }
}

/// A sandbox with seeded data and the simulators' default rate limits.
pub async fn seeded_sandbox(seed: u64, companies: usize, contacts: usize) -> Sandbox {
    Sandbox::start(SandboxOptions {
        seed,
        companies,
        contacts,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

/// The HubSpot connector to `sb`, with [`fast_retry`].
pub fn hubspot_connector(sb: &Sandbox) -> HubSpot {
    let mut s = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::Token(Secret::new(sb.hubspot_token())),
    );
    s.retry = fast_retry();
    HubSpot::new(s).expect("hubspot connector")
}

/// The Accelo connector to `sb`, with [`fast_retry`].
pub fn accelo_connector(sb: &Sandbox) -> Accelo {
    let mut s = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new(sb.accelo_client_secret()),
    );
    s.retry = fast_retry();
    Accelo::new(s).expect("accelo connector")
}

/// [`hubspot_connector`] as the executor takes it.
pub fn hubspot(sb: &Sandbox) -> Arc<dyn Connector> {
    Arc::new(hubspot_connector(sb))
}

/// [`accelo_connector`] as the executor takes it.
pub fn accelo(sb: &Sandbox) -> Arc<dyn Connector> {
    Arc::new(accelo_connector(sb))
}

/// Every record of `object` (with `props`, for HubSpot), all pages.
pub async fn read_all(c: &dyn Connector, object: Object, props: &[String]) -> Vec<Record> {
    let pages: Vec<Vec<Record>> = c
        .scan(object, Scan::All, props)
        .try_collect()
        .await
        .expect("scan");
    pages.into_iter().flatten().collect()
}

/// The shipped rules (rules/), loaded once per test binary.
pub fn program() -> Arc<Program> {
    static P: OnceLock<Arc<Program>> = OnceLock::new();
    P.get_or_init(|| {
        load(&Paths::resolve(Some("rules/tandem.yaml".into()), None))
            .expect("the shipped rules load")
            .program
    })
    .clone()
}

/// A loopback port nothing listens on: picked by the OS, then closed again.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Requests counted under `METHOD /route` in a `/_sandbox/stats` answer.
pub fn requests(stats: &serde_json::Value, key: &str) -> u64 {
    stats["requests"][key].as_u64().unwrap_or(0)
}
