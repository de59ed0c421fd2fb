//! `tandem hubspot subscriptions [--format table|api|project] [--target-url URL]`: the HubSpot
//! webhook subscriptions the rules' trigger lists need, in the forms HubSpot's app
//! configuration takes — a table to type into the app's webhook settings, the bodies of the
//! webhooks API (`POST /webhooks/v3/{appId}/subscriptions`, legacy public apps), or the
//! `webhooks-hsmeta.json` file of a developer-platform project. Reads the rules only, except
//! with `--apply`: then it lists the app's subscriptions through the webhooks v3 API (with
//! `hubspot.app_id` and the developer API key), creates the missing ones, activates paused ones,
//! and reports what it did — a second run does nothing.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::common::Exit;
use tandem_core::compile::load;
use tandem_core::compile::subscriptions::{MAX_SUBSCRIPTIONS, Subscription};
use tandem_core::rules::Paths;
use tandem_engine::connect::{ConnectError, HubSpotApp};
use tandem_engine::doctor::compare_subscriptions;

/// Arguments of `tandem hubspot`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: HubSpotCommand,
}

/// The `tandem hubspot` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HubSpotCommand {
    /// Print the webhook subscriptions the rules need (creation and every trigger property of
    /// companies and contacts, plus the deletion, merge and association events the automatic
    /// sync handles).
    Subscriptions(SubscriptionsArgs),
}

/// The forms of the subscription list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table to follow in the app's webhook settings.
    #[default]
    Table,
    /// A JSON array of webhooks API bodies (`eventType`, `propertyName`, `active`).
    Api,
    /// The `webhooks-hsmeta.json` of a HubSpot developer-platform project.
    Project,
}

/// Arguments of `tandem hubspot subscriptions`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubscriptionsArgs {
    /// The config file [default: $TANDEM_CONFIG, else rules/tandem.yaml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory of rule files [default: the config file's directory].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// The store: accepted like on every command, not used by this one.
    #[arg(long, value_name = "URL", hide = true)]
    pub store: Option<String>,
    /// The form to print.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The URL HubSpot sends webhooks to, for `--format project` [default: `server.public_url`
    /// + `/webhooks/hubspot`].
    #[arg(long, value_name = "URL")]
    pub target_url: Option<String>,
    /// Create the missing subscriptions (and activate paused ones) in the HubSpot app through
    /// the webhooks API: needs `hubspot.app_id` and `hubspot.developer_api_key_env` (or
    /// TANDEM_HUBSPOT_APP_ID and TANDEM_HUBSPOT_DEVELOPER_API_KEY). Idempotent.
    #[arg(long, conflicts_with_all = ["format", "target_url"])]
    pub apply: bool,
}

/// What the command prints, and how it exits (callable from tests).
#[derive(Debug, Clone)]
pub struct Output {
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
    /// The exit code.
    pub exit: Exit,
}

/// Renders `tandem hubspot …` without printing.
pub fn render(args: &Args) -> Output {
    match &args.command {
        HubSpotCommand::Subscriptions(a) => subscriptions(a),
    }
}

fn subscriptions(args: &SubscriptionsArgs) -> Output {
    let paths = Paths::resolve(args.config.clone(), args.rules.clone());
    let loaded = match load(&paths) {
        Ok(l) => l,
        Err(report) => {
            return Output {
                stdout: String::new(),
                stderr: report.render_human(false),
                exit: Exit::Invalid,
            };
        }
    };
    let subs = loaded.program.hubspot_subscriptions();
    if args.apply {
        return apply(loaded.config, &subs);
    }
    let mut stderr = String::new();
    if subs.len() > MAX_SUBSCRIPTIONS {
        stderr.push_str(&format!(
            "warning: {} subscriptions are more than the {MAX_SUBSCRIPTIONS} HubSpot allows \
             one app; shorten the trigger lists\n",
            subs.len()
        ));
    }
    let stdout = match args.format {
        Format::Table => table(&subs),
        Format::Api => pretty(&Value::Array(subs.iter().map(api_body).collect())),
        Format::Project => {
            let target = args.target_url.clone().or_else(|| {
                loaded
                    .config
                    .server
                    .public_url
                    .as_ref()
                    .map(|u| format!("{}/webhooks/hubspot", u.trim_end_matches('/')))
            });
            if target.is_none() {
                stderr.push_str(
                    "note: no `server.public_url` in tandem.yaml and no --target-url: replace \
                     `targetUrl` with the address HubSpot reaches Tandem at\n",
                );
            }
            pretty(&project(
                &subs,
                &target.unwrap_or_else(|| "https://YOUR-TANDEM-HOST/webhooks/hubspot".into()),
            ))
        }
    };
    Output {
        stdout,
        stderr,
        exit: Exit::Ok,
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// One body of `POST /webhooks/v3/{appId}/subscriptions`.
fn api_body(s: &Subscription) -> Value {
    let mut v = json!({"eventType": s.event_type(), "active": true});
    if let Some(p) = &s.property {
        v["propertyName"] = json!(p);
    }
    v
}

/// The project file: the record events as `legacyCrmObjects` (the event names Tandem's receiver
/// reads), a contact's privacy deletion as a `hubEvents` entry.
fn project(subs: &[Subscription], target: &str) -> Value {
    let entry = |s: &Subscription| {
        let mut v = json!({"subscriptionType": s.event_type(), "active": true});
        if let Some(p) = &s.property {
            v["propertyName"] = json!(p);
        }
        v
    };
    let (hub, crm): (Vec<&Subscription>, Vec<&Subscription>) =
        subs.iter().partition(|s| s.event == "privacyDeletion");
    json!({
        "uid": "tandem_webhooks",
        "type": "webhooks",
        "config": {
            "settings": {"targetUrl": target, "maxConcurrentRequests": 10},
            "subscriptions": {
                "legacyCrmObjects": crm.into_iter().map(entry).collect::<Vec<_>>(),
                "hubEvents": hub.into_iter().map(entry).collect::<Vec<_>>(),
            }
        }
    })
}

fn table(subs: &[Subscription]) -> String {
    let width = |f: &dyn Fn(&Subscription) -> usize| subs.iter().map(f).max().unwrap_or(0);
    let ew = width(&|s| s.event_type().len()).max("event".len());
    let pw = width(&|s| s.property.as_deref().map_or(0, str::len)).max("property".len());
    let mut out = format!("{:ew$}  {:pw$}  why\n", "event", "property");
    for s in subs {
        out.push_str(&format!(
            "{:ew$}  {:pw$}  {}\n",
            s.event_type(),
            s.property.as_deref().unwrap_or(""),
            s.purpose()
        ));
    }
    let changes = subs.iter().filter(|s| s.property.is_some()).count();
    out.push_str(&format!(
        "\n{} subscriptions ({changes} property changes). In the HubSpot app's webhook settings, \
         create each one and make it active; `--format api` or `--format project` gives the \
         same list as JSON.\n",
        subs.len()
    ));
    out
}

/// `--apply`: creates what the app lacks of `subs`, activates what is paused.
fn apply(mut config: tandem_core::rules::config::Config, subs: &[Subscription]) -> Output {
    let env = |k: &str| std::env::var(k).ok();
    config.apply_env(env);
    let fail = |stderr: String, exit: Exit| Output {
        stdout: String::new(),
        stderr,
        exit,
    };
    let key = match config.developer_api_key(env) {
        Ok(k) => k,
        Err(e) => return fail(format!("error: {e}\n"), Exit::Invalid),
    };
    let (Some(app_id), Some(key)) = (config.hubspot.app_id, key) else {
        return fail(
            "error: `--apply` needs the HubSpot app's id and a developer API key: set \
             `hubspot.app_id` and `hubspot.developer_api_key_env` in tandem.yaml (or \
             TANDEM_HUBSPOT_APP_ID and TANDEM_HUBSPOT_DEVELOPER_API_KEY). A private app's \
             subscriptions cannot be created through the API: create them in its settings, as \
             `tandem hubspot subscriptions` lists them.\n"
                .into(),
            Exit::Invalid,
        );
    };
    tandem_engine::store::redact::register_secret(key.expose());
    let url = config.hubspot.url.trim().trim_end_matches('/').to_string();
    let app = match HubSpotApp::new(&url, app_id, key, None) {
        Ok(a) => a,
        Err(e) => return fail(format!("error: {e}\n"), Exit::Invalid),
    };
    let connect_fail = |e: ConnectError| {
        let exit = if e.is_unreachable() {
            Exit::Unreachable
        } else {
            Exit::Failures
        };
        fail(format!("error: {e}\n"), exit)
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("error: cannot start: {e}\n"), Exit::Failures),
    };
    rt.block_on(async move {
        let have = match app.subscriptions().await {
            Ok(h) => h,
            Err(e) => return connect_fail(e),
        };
        let (missing, paused) = compare_subscriptions(subs, &have);
        let mut stdout = String::new();
        let mut created = 0usize;
        for s in &missing {
            match app.create(&s.event_type(), s.property.as_deref()).await {
                Ok(c) => {
                    created += 1;
                    stdout.push_str(&format!(
                        "created    {}{} (id {})\n",
                        c.event_type,
                        c.property.map(|p| format!(" {p}")).unwrap_or_default(),
                        c.id
                    ));
                }
                Err(e) => {
                    let mut out = connect_fail(e);
                    out.stdout = format!(
                        "{stdout}\n{created} created before the error; run the command again to \
                         create the rest\n"
                    );
                    return out;
                }
            }
        }
        let ids: Vec<String> = paused.iter().map(|(id, _)| id.clone()).collect();
        let activated = match app.activate(&ids).await {
            Ok(a) => a.len(),
            Err(e) => {
                let mut out = connect_fail(e);
                out.stdout = stdout;
                return out;
            }
        };
        for (_, name) in &paused {
            stdout.push_str(&format!("activated  {name}\n"));
        }
        let kept = subs.len() - missing.len() - paused.len();
        stdout.push_str(&format!(
            "\napp {app_id}: {created} subscription{} created, {activated} activated, {kept} \
             already in place ({} needed)\n",
            if created == 1 { "" } else { "s" },
            subs.len()
        ));
        Output {
            stdout,
            stderr: String::new(),
            exit: Exit::Ok,
        }
    })
}

/// Runs `tandem hubspot …`.
pub fn run(args: Args) -> Exit {
    let out = render(&args);
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    out.exit
}
