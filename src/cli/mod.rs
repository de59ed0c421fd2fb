//! The command line: argument parsing (clap), one file per command, typed exit codes.
//!
//! Every command is a library function taking its typed `Args` and returning an [`Exit`], so
//! tests can call commands directly; `main.rs` only calls [`main`]. The command-line forms are a
//! public contract (DESIGN.md §6): extend them, never rename.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod check;
mod common;
pub mod demo;
pub mod doctor;
pub mod hubspot;
pub mod links;
pub mod log;
pub mod plan;
pub mod pull;
pub mod push;
pub mod sandbox;
pub mod schema;
pub mod serve;
pub mod test;
pub mod user;
pub mod why;
pub mod worker;

pub use common::{ConfigArgs, Exit, Reported, block_on};

/// The `--help` footer of a command that talks to both systems: the environment variables it
/// reads, plus the lines given.
macro_rules! env_help {
    ($($extra:expr),* $(,)?) => {
        concat!(
            "Environment variables (each wins over tandem.yaml; `--config`/`--store` win over them):\n",
            "  TANDEM_CONFIG                  the config file [default: rules/tandem.yaml]\n",
            "  TANDEM_STORE                   the store (`store.url`)\n",
            "  TANDEM_HUBSPOT_URL             HubSpot's API address (`hubspot.url`)\n",
            "  TANDEM_HUBSPOT_TOKEN           HubSpot access token (else the variable `hubspot.token_env` names)\n",
            "  TANDEM_ACCELO_URL              Accelo's API address (`accelo.url`)\n",
            "  TANDEM_ACCELO_CLIENT_ID        Accelo application id (`accelo.client_id`)\n",
            "  TANDEM_ACCELO_CLIENT_SECRET    Accelo client secret (else the variable `accelo.client_secret_env` names)\n",
            $($extra,)*
            "  TANDEM_LOG                     log detail on stderr (`info`, `debug`) [default: warn]\n",
            "Against `tandem sandbox`: eval \"$(tandem sandbox --env)\" sets them all."
        )
    };
}

/// The email lines of [`env_help`].
macro_rules! smtp_env {
    () => {
        concat!(
            "  TANDEM_SMTP_SERVER             the push-completion email's server (`notify.email.server`)\n",
            "  TANDEM_SMTP_TLS                its security: none, starttls or tls (`notify.email.tls`)\n",
            "  TANDEM_SMTP_FROM               its sender (`notify.email.from`)\n",
            "  TANDEM_SMTP_TO                 its recipients, comma-separated (`notify.email.to`); with\n",
            "                                 TANDEM_SMTP_SERVER, turns the email on without `notify.email`\n",
            "  TANDEM_SMTP_USERNAME           its user name (else the variable `notify.email.username_env` names)\n",
            "  TANDEM_SMTP_PASSWORD           its password (else the variable `notify.email.password_env` names)\n",
        )
    };
}

/// The webhook lines of [`env_help`].
macro_rules! webhook_env {
    () => {
        concat!(
            "  TANDEM_HUBSPOT_WEBHOOK_SECRET  HubSpot webhook signing secret (else `server.webhook_secret_env`)\n",
            "  TANDEM_ACCELO_WEBHOOK_SECRET   Accelo webhook secret (else `server.accelo_webhook_secret_env`)\n",
        )
    };
}

/// The HubSpot app lines of [`env_help`] (`doctor`, `hubspot subscriptions --apply`).
macro_rules! app_env {
    () => {
        concat!(
            "  TANDEM_HUBSPOT_APP_ID          the HubSpot public app's id (`hubspot.app_id`)\n",
            "  TANDEM_HUBSPOT_DEVELOPER_API_KEY  its developer API key (else `hubspot.developer_api_key_env`)\n",
        )
    };
}

/// Tandem keeps the companies and contacts of HubSpot and Accelo in step.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `--help` footer of `tandem push company|contact`.
pub const PUSH_ONE_ENV_HELP: &str = env_help!();

/// The commands (DESIGN.md §6).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the sandbox with seeded data and walk through pull, push and push-one; exits 0.
    Demo(demo::Args),
    /// Run the HubSpot and Accelo simulators with seeded data, and an SMTP mailbox for the push
    /// email; prints one JSON line with their URLs and credentials, then serves until
    /// SIGINT/SIGTERM.
    Sandbox(sandbox::Args),
    /// Show what a pull or push would do, without writing anything (a dry run); `--out` saves
    /// the plan for `tandem apply`.
    #[command(after_help = env_help!())]
    Plan(plan::Args),
    /// Import every qualifying HubSpot company and contact into Accelo (HubSpot's values win);
    /// runs as a job, resumable, progress in the sync log.
    #[command(after_help = env_help!())]
    Pull(pull::Args),
    /// Export every qualifying Accelo company and contact to HubSpot (Accelo's values win) and
    /// email the summary; or `push company ID` / `push contact ID` for one record.
    #[command(after_help = env_help!(smtp_env!()))]
    Push(push::Args),
    /// Execute a plan saved with `tandem plan … --out FILE`, refused when its data changed.
    #[command(after_help = env_help!())]
    Apply(apply::Args),
    /// Show the sync log: runs with counts and duration, and per record what happened and why,
    /// field by field.
    Log(log::Args),
    /// Why one record syncs the way it does: what a pull and a push would do with it and why,
    /// its linked twin, and its last sync-log entries (`tandem why hubspot contact 5101`).
    #[command(after_help = env_help!())]
    Why(why::Args),
    /// The pairs of twins the store remembers: `links list`, `links show SYSTEM OBJECT ID`,
    /// `links remove SYSTEM OBJECT ID` (or `--all`, to start over, or `--all-missing`).
    #[command(after_help = env_help!())]
    Links(links::Args),
    /// Validate the config and rule files; exit 2 with located diagnostics.
    Check(check::Args),
    /// Write the JSON Schemas of tandem.yaml and the rule files into schemas/ (or --check them).
    Schema(schema::Args),
    /// Run the rule files' own test cases.
    Test(test::Args),
    /// The automatic sync: webhook receivers, a worker, the polling safety net and hot-reloaded
    /// rules in one process, until SIGTERM / SIGINT.
    #[command(after_help = env_help!(webhook_env!(), smtp_env!()))]
    Serve(serve::Args),
    /// A worker alone (no HTTP, no poller), sharing the store's job queue with other processes.
    #[command(after_help = env_help!(smtp_env!()))]
    Worker(worker::Args),
    /// Check the configuration against the real systems: reachable, credentials accepted, the
    /// token's scopes, the mapped properties and statuses present, the app's webhook
    /// subscriptions, the clocks, the store up to date; says what to fix.
    #[command(after_help = env_help!(
        "  TANDEM_HUBSPOT_WEBHOOK_SECRET  set: the automatic sync is on, its webhook scopes are checked\n",
        app_env!()
    ))]
    Doctor(doctor::Args),
    /// Set up the HubSpot app: `tandem hubspot subscriptions` prints the webhook subscriptions
    /// the rules need; `--apply` creates the missing ones through HubSpot's webhooks API.
    #[command(name = "hubspot")]
    HubSpot(hubspot::Args),
    /// The console's users: `user add NAME --role operator`, `user list`, `user remove NAME`
    /// (only a hash of each password is kept in tandem.yaml).
    User(user::Args),
}

/// Parses the process arguments, sets up logging and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Invalid.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    init_tracing();
    run(cli).into()
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Exit {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Pull(args) => pull::run(args),
        Command::Push(args) => push::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Log(args) => log::run(args),
        Command::Why(args) => why::run(args),
        Command::Links(args) => links::run(args),
        Command::Check(args) => check::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Test(args) => test::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Worker(args) => worker::run(args),
        Command::HubSpot(args) => hubspot::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::User(args) => user::run(args),
    }
}

/// Logs go to stderr, filtered by `TANDEM_LOG` (default `warn`), so stdout stays for output that
/// scripts read. The connectors' notices for the person running the command (a system not
/// answering, a retry and its wait) always go to stderr too, as plain lines.
fn init_tracing() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let notice = tandem_engine::connect::NOTICE_TARGET;
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // `TANDEM_LOG_FORMAT=json`: one JSON object per line — the notices included — with the job
    // and record of the run that logged it (its span). Otherwise the notices are plain lines.
    let json = std::env::var("TANDEM_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let notice_level = if json { "info" } else { "off" };
    if let Ok(d) = format!("{notice}={notice_level}").parse() {
        filter = filter.add_directive(d);
    }
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    let notices = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .without_time()
            .with_target(false)
            .with_level(false)
            .with_writer(std::io::stderr)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(notice, tracing::Level::INFO),
            )
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(notices)
        .try_init();
}
