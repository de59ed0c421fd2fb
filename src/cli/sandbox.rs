//! `tandem sandbox`: starts the HubSpot and Accelo simulators with seeded data, prints one JSON
//! line (`{"hubspot":{"url","token",…},"accelo":{"url","client_id","client_secret",…},…}`) to
//! stdout, then serves until SIGINT or SIGTERM. Scripts rely on that first line.

use std::io::Write;
use std::net::IpAddr;

use tandem_sandbox::{FaultConfig, RateLimits, Sandbox, SandboxOptions, WebhookTarget};

/// Arguments of `tandem sandbox`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seed of the data generator: the same seed gives the same records and credentials.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Companies per system.
    #[arg(long, default_value_t = 50)]
    pub companies: usize,
    /// Contacts per system.
    #[arg(long, default_value_t = 200)]
    pub contacts: usize,
    /// Port of the HubSpot simulator (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    pub hubspot_port: u16,
    /// Port of the Accelo simulator (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    pub accelo_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Where the HubSpot simulator delivers webhooks (also settable later through
    /// `POST /_sandbox/webhooks`).
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Secret that signs HubSpot webhooks (default: the simulated app's client secret).
    #[arg(long)]
    pub webhook_secret: Option<String>,
    /// Rate limits: `off`, or `hubspot=190,window=10,daily=625000,search=5,accelo=5000`
    /// (`0` = unlimited).
    #[arg(long)]
    pub rate_limit: Option<String>,
    /// Faults on both simulators: JSON as for `POST /_sandbox/faults`, or
    /// `500=0.05,429=0.05,latency=20,jitter=10,drop=0.01,drop_after=0.01,storm=20,
    /// webhook_loss=0.1,webhook_duplicate=0.1,webhook_reorder=0.2,search_lag=2000,seed=3`
    /// (`search_lag`: milliseconds before HubSpot search finds a write; `only=POST
    /// /api/v0/companies|…`: the endpoints that see the faults, all when absent).
    #[arg(long)]
    pub faults: Option<String>,
}

/// Builds the options from the arguments (a located message on bad input).
pub fn options(args: &Args) -> Result<SandboxOptions, String> {
    let rate_limits = match &args.rate_limit {
        Some(s) => RateLimits::parse(s).map_err(|e| format!("--rate-limit: {e}"))?,
        None => RateLimits::default(),
    };
    let faults = match &args.faults {
        Some(s) => FaultConfig::parse(s).map_err(|e| format!("--faults: {e}"))?,
        None => FaultConfig::default(),
    };
    let hubspot_webhook = match &args.webhook_url {
        Some(url) => {
            reqwest::Url::parse(url).map_err(|e| format!("--webhook-url: `{url}`: {e}"))?;
            let mut t = WebhookTarget::new(url.clone());
            t.secret = args.webhook_secret.clone();
            Some(t)
        }
        None if args.webhook_secret.is_some() => {
            return Err("--webhook-secret needs --webhook-url".into());
        }
        None => None,
    };
    Ok(SandboxOptions {
        seed: args.seed,
        companies: args.companies,
        contacts: args.contacts,
        hubspot_port: args.hubspot_port,
        accelo_port: args.accelo_port,
        host: args.host,
        rate_limits,
        faults,
        hubspot_webhook,
        ..Default::default()
    })
}

/// Runs the sandbox until SIGINT/SIGTERM.
pub fn run(args: Args) -> super::common::Exit {
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return super::common::Exit::Invalid;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return super::common::Exit::Failures;
        }
    };
    rt.block_on(async move {
        let sb = match Sandbox::start(opts).await {
            Ok(sb) => sb,
            Err(e) => {
                eprintln!("{:?}", miette::Report::new(e));
                return super::common::Exit::Invalid;
            }
        };
        let line = sb.info().to_string();
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        tracing::info!(
            hubspot = sb.hubspot_url(),
            accelo = sb.accelo_url(),
            "sandbox serving; stop with Ctrl-C"
        );
        super::common::wait_for_signal().await;
        sb.shutdown().await;
        super::common::Exit::Ok
    })
}
