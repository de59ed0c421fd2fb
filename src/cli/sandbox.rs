//! `tandem sandbox`: starts the HubSpot and Accelo simulators with seeded data, prints one JSON
//! line (`{"hubspot":{"url","token",…},"accelo":{"url","client_id","client_secret",…},…}`) to
//! stdout, then serves until SIGINT or SIGTERM. Scripts rely on that first line. On a terminal,
//! stderr also shows the `export TANDEM_…` lines that point the other commands at it.
//!
//! `tandem sandbox --env …` instead starts the same sandbox in the background (a new process
//! group, detached from the terminal's Ctrl-C) and prints only shell `export` lines for the
//! `TANDEM_*` variables the other commands read, plus `TANDEM_SANDBOX_PID`, then exits: so
//! `eval "$(tandem sandbox --env)"` sets up a shell, as `eval "$(ssh-agent -s)"` does.
//!
//! The sandbox also runs an SMTP mailbox (plain SMTP on loopback, `mail` in the JSON line) that
//! keeps the push-completion email; `--env` exports the `TANDEM_SMTP_*` variables that turn the
//! email on and send it there (server, `tls` none, sender, recipient, a login).
//!
//! The JSON line's `examples` lists a few record ids of each system and object; `--env` and
//! the terminal print them as `#` comments. `--accelo-webhook-url` / `--accelo-webhook-secret`
//! make the Accelo simulator deliver its webhooks (and `--env` exports the secret).

use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;

use serde_json::Value;

use tandem_sandbox::{
    AcceloWebhook, FaultConfig, RateLimits, Sandbox, SandboxOptions, WebhookTarget,
};

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
    /// Port of the SMTP mailbox (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    pub mail_port: u16,
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
    /// Where the Accelo simulator delivers its webhooks (`create_company`, `update_company`,
    /// `create_contact`, `update_contact`), as real Accelo does for subscribed events: e.g.
    /// `http://127.0.0.1:8080/webhooks/accelo` for `tandem serve`.
    #[arg(long, requires = "accelo_webhook_secret")]
    pub accelo_webhook_url: Option<String>,
    /// Secret that signs the Accelo webhooks (`X-Hub-Signature`); `--env` exports it as
    /// `TANDEM_ACCELO_WEBHOOK_SECRET`.
    #[arg(long, requires = "accelo_webhook_url")]
    pub accelo_webhook_secret: Option<String>,
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
    /// The scopes the HubSpot tokens are granted, comma-separated (default: read and write of
    /// companies and contacts), e.g. `crm.objects.companies.read,crm.objects.contacts.read`.
    /// Token introspection reports them and the CRM object endpoints answer 403 without them.
    #[arg(long, value_name = "LIST")]
    pub hubspot_scopes: Option<String>,
    /// Seconds both simulators' clocks run ahead of this machine's (negative: behind), as their
    /// `Date` headers and HubSpot's webhook timestamps show it.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub clock_skew: i64,
    /// Start the sandbox in the background and print `export TANDEM_…=…` lines for a shell
    /// instead of the JSON line: `eval "$(tandem sandbox --env)"`. Stop it with
    /// `kill $TANDEM_SANDBOX_PID`.
    #[arg(long)]
    pub env: bool,
}

/// The `TANDEM_*` variables that point the other commands at a sandbox, from its JSON line
/// (`info`) and the HubSpot webhook secret it signs with (`webhook_secret`, default: the
/// simulated app's client secret).
pub fn env_vars(info: &Value, webhook_secret: Option<&str>) -> Vec<(&'static str, String)> {
    env_vars_with(info, webhook_secret, None)
}

/// [`env_vars`], plus `TANDEM_ACCELO_WEBHOOK_SECRET` when the sandbox signs Accelo webhooks
/// with `accelo_webhook_secret`.
pub fn env_vars_with(
    info: &Value,
    webhook_secret: Option<&str>,
    accelo_webhook_secret: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut vars = base_vars(info, webhook_secret);
    if let Some(secret) = accelo_webhook_secret {
        vars.push(("TANDEM_ACCELO_WEBHOOK_SECRET", secret.to_string()));
    }
    vars
}

fn base_vars(info: &Value, webhook_secret: Option<&str>) -> Vec<(&'static str, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let hs = &info["hubspot"];
    let ac = &info["accelo"];
    let mut vars = vec![
        ("TANDEM_HUBSPOT_URL", s(&hs["url"])),
        ("TANDEM_HUBSPOT_TOKEN", s(&hs["token"])),
        (
            "TANDEM_HUBSPOT_WEBHOOK_SECRET",
            webhook_secret.map_or_else(|| s(&hs["client_secret"]), str::to_string),
        ),
        ("TANDEM_ACCELO_URL", s(&ac["url"])),
        ("TANDEM_ACCELO_CLIENT_ID", s(&ac["client_id"])),
        ("TANDEM_ACCELO_CLIENT_SECRET", s(&ac["client_secret"])),
    ];
    if let Some(app_id) = hs["app_id"].as_u64() {
        vars.push(("TANDEM_HUBSPOT_APP_ID", app_id.to_string()));
    }
    if hs["developer_api_key"].is_string() {
        vars.push((
            "TANDEM_HUBSPOT_DEVELOPER_API_KEY",
            s(&hs["developer_api_key"]),
        ));
    }
    let mail = &info["mail"];
    if mail["server"].is_string() {
        vars.extend([
            ("TANDEM_SMTP_SERVER", s(&mail["server"])),
            ("TANDEM_SMTP_TLS", "none".to_string()),
            ("TANDEM_SMTP_FROM", SANDBOX_MAIL_FROM.to_string()),
            ("TANDEM_SMTP_TO", SANDBOX_MAIL_TO.to_string()),
            ("TANDEM_SMTP_USERNAME", s(&mail["username"])),
            ("TANDEM_SMTP_PASSWORD", s(&mail["password"])),
        ]);
    }
    vars
}

/// The sender `--env` gives the push-completion email sent to the sandbox mailbox.
pub const SANDBOX_MAIL_FROM: &str = "Tandem <tandem@sandbox.invalid>";
/// The recipient `--env` gives it (the mailbox keeps every message, whatever the recipient).
pub const SANDBOX_MAIL_TO: &str = "crm-admins@sandbox.invalid";

/// `value` quoted for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// `export NAME='value'` lines for `vars`.
pub fn export_lines(vars: &[(&str, String)]) -> String {
    vars.iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

/// `tandem sandbox --env`: starts `tandem sandbox` with the same arguments (without `--env`)
/// as a background process, reads its JSON line and prints the export lines.
fn run_detached(args: &Args) -> super::common::Exit {
    use super::common::Exit;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find the tandem program to start in the background: {e}");
            return Exit::Failures;
        }
    };
    let forwarded: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--env")
        .collect();
    let mut command = std::process::Command::new(exe);
    command
        .args(forwarded)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: Ctrl-C in this terminal later does not stop it.
        command.process_group(0);
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start the sandbox in the background: {e}");
            return Exit::Failures;
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let info: Value = match serde_json::from_str(line.trim()) {
        Ok(v) => v,
        Err(_) => {
            let status = child.wait().ok().and_then(|s| s.code());
            eprintln!(
                "error: the sandbox did not start (exit code {}); run `tandem sandbox` without \
                 `--env` to see why",
                status.map_or_else(|| "unknown".into(), |c| c.to_string())
            );
            return Exit::Failures;
        }
    };
    let mut text = format!(
        "# Tandem sandbox (seed {}): HubSpot {}, Accelo {}, mailbox {}\n",
        info["seed"],
        info["hubspot"]["url"].as_str().unwrap_or_default(),
        info["accelo"]["url"].as_str().unwrap_or_default(),
        info["mail"]["server"].as_str().unwrap_or_default()
    );
    text.push_str(&export_lines(&env_vars_with(
        &info,
        args.webhook_secret.as_deref(),
        args.accelo_webhook_secret.as_deref(),
    )));
    text.push_str(&format!("export TANDEM_SANDBOX_PID={}\n", child.id()));
    text.push_str(&export_lines(&example_vars(&info)));
    text.push_str(&example_lines(&info));
    text.push_str("# stop it with: kill $TANDEM_SANDBOX_PID\n");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Exit::Ok
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
    let accelo_webhook = match (&args.accelo_webhook_url, &args.accelo_webhook_secret) {
        (Some(url), Some(secret)) => {
            reqwest::Url::parse(url).map_err(|e| format!("--accelo-webhook-url: `{url}`: {e}"))?;
            Some(AcceloWebhook {
                url: url.clone(),
                secret: secret.clone(),
                events: Vec::new(),
            })
        }
        (None, None) => None,
        _ => {
            return Err(
                "--accelo-webhook-url and --accelo-webhook-secret go together (Tandem refuses \
                 unsigned Accelo webhooks)"
                    .into(),
            );
        }
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
        accelo_webhook,
        mail_port: args.mail_port,
        hubspot_scopes: args.hubspot_scopes.as_ref().map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        }),
        clock_skew_seconds: args.clock_skew,
        ..Default::default()
    })
}

/// How many ids of each kind [`examples`] lists.
const EXAMPLES: usize = 3;

/// A few record ids of each system and object to try commands with (`examples` in the JSON
/// line): `{"hubspot":{"company":[…],"contact":[…]},"accelo":{…}}`, read through the admin API.
async fn examples(sb: &Sandbox) -> Value {
    let mut out = serde_json::json!({});
    for (system, base) in [("hubspot", sb.hubspot_url()), ("accelo", sb.accelo_url())] {
        for (object, resource) in [("company", "companies"), ("contact", "contacts")] {
            let url = format!("{base}/_sandbox/records/{resource}");
            let records: Vec<Value> = match reqwest::get(&url).await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            let mut ids: Vec<String> = records
                .iter()
                .filter_map(|r| match &r["id"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            ids.sort_by_key(|id| (id.len(), id.clone()));
            let ids: Vec<Value> = ids.into_iter().take(EXAMPLES).map(Value::String).collect();
            out[system][object] = Value::Array(ids);
        }
    }
    out
}

/// `TANDEM_SANDBOX_HUBSPOT_COMPANY` … `TANDEM_SANDBOX_ACCELO_CONTACT`: the first id of each
/// system and object in the JSON line's `examples`, for the documented commands.
pub fn example_vars(info: &Value) -> Vec<(&'static str, String)> {
    let mut vars = Vec::new();
    for (name, system, object) in [
        ("TANDEM_SANDBOX_HUBSPOT_COMPANY", "hubspot", "company"),
        ("TANDEM_SANDBOX_HUBSPOT_CONTACT", "hubspot", "contact"),
        ("TANDEM_SANDBOX_ACCELO_COMPANY", "accelo", "company"),
        ("TANDEM_SANDBOX_ACCELO_CONTACT", "accelo", "contact"),
    ] {
        if let Some(id) = info["examples"][system][object][0].as_str() {
            vars.push((name, id.to_string()));
        }
    }
    vars
}

/// `# ids to try: …` comment lines from the JSON line's `examples`.
pub fn example_lines(info: &Value) -> String {
    let mut text = String::new();
    for system in ["hubspot", "accelo"] {
        for object in ["company", "contact"] {
            let ids: Vec<&str> = info["examples"][system][object]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !ids.is_empty() {
                text.push_str(&format!(
                    "# {system} {object} ids to try: {}\n",
                    ids.join(", ")
                ));
            }
        }
    }
    if let Some(id) = info["examples"]["hubspot"]["company"][0].as_str() {
        text.push_str(&format!("#   e.g. tandem why hubspot company {id}\n"));
    }
    if let Some(url) = info["mail"]["messages"].as_str() {
        text.push_str(&format!(
            "# the push-completion email lands in the sandbox mailbox: curl -s {url}\n"
        ));
    }
    text
}

/// Runs the sandbox until SIGINT/SIGTERM (with `--env`: in the background, see the module docs).
pub fn run(args: Args) -> super::common::Exit {
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return super::common::Exit::Invalid;
        }
    };
    if args.env {
        return run_detached(&args);
    }
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
        let mut info = sb.info();
        info["examples"] = examples(&sb).await;
        let line = info.to_string();
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if std::io::stderr().is_terminal() {
            eprint!(
                "To use it from another shell, paste these lines there (or start the sandbox \
                 with `eval \"$(tandem sandbox --env)\"` instead):\n{}",
                export_lines(&env_vars_with(
                    &info,
                    args.webhook_secret.as_deref(),
                    args.accelo_webhook_secret.as_deref()
                ))
            );
            eprint!("{}", example_lines(&info));
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
