//! `tandem demo`: the first command a newcomer runs. Starts the HubSpot and Accelo simulators
//! in-process on free loopback ports with seeded data (overlapping companies and contacts,
//! duplicates in different spellings, contacts without a company), writes a temporary project
//! (a `tandem.yaml` pointing at the simulators and the shipped rules, built into the binary),
//! then walks through the guide's story with the real commands' code paths: the pull plan, a
//! pull, a push, an edit in Accelo pushed for one company, a second pull (the contacts of the
//! companies the push linked) and a third that has nothing left to do. The push emails its
//! summary to the sandbox's SMTP mailbox (the email turned on by the `TANDEM_SMTP_*` variables
//! the demo passes), and the demo shows the subject it received. Prints the outcome and where
//! the sync log and the store are (both are kept, so
//! `tandem log --store …` works afterwards), and exits 0. No credentials, no network.
//!
//! Sandbox settings: the seeded sizes (300 companies and 2,000 contacts per system by default),
//! HubSpot's real rate limits (190 requests per 10 s, 5 searches per second) and Accelo's hourly
//! budget raised from 5,000 to 50,000 requests: the demo's pull writes a few thousand Accelo
//! requests in a few seconds, which against the real limit would pause for the rest of the hour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use super::common::Exit;
use super::pull::{Output, run_job_with};
use tandem_core::model::{Direction, Object};
use tandem_core::plan::{Mode, Op, Plan, Scope, render};
use tandem_core::rules::config::Role;
use tandem_engine::exec::jobs;
use tandem_engine::exec::progress::ProgressMode;
use tandem_engine::runtime::{Env, Options, Runtime};
use tandem_engine::store::JobKind;
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};

/// The shipped rules, built in so that the demo runs from anywhere.
const COMPANIES_YAML: &str = include_str!("../../rules/companies.yaml");
const CONTACTS_YAML: &str = include_str!("../../rules/contacts.yaml");

/// Arguments of `tandem demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Seed of the generated data.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Companies per system.
    #[arg(long, default_value_t = 300, hide = true)]
    pub companies: usize,
    /// Contacts per system.
    #[arg(long, default_value_t = 2000, hide = true)]
    pub contacts: usize,
    /// Where to write the demo project and its store [default: a new directory under the
    /// system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Show plain progress lines even on a terminal.
    #[arg(long, hide = true)]
    pub plain: bool,
    /// After the walkthrough, keep the simulators running and open the browser console on
    /// them (`tandem serve`), with a one-time operator password; stop with Ctrl-C.
    #[arg(long)]
    pub console: bool,
    /// Where the console listens, with `--console` (port 0 = any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
}

/// Runs `tandem demo`.
pub fn run(args: Args) -> Exit {
    super::common::block_on(async move {
        match demo(&args).await {
            Ok(()) => Exit::Ok,
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Failures
            }
        }
    })
}

/// A fresh directory for the demo project.
fn project_dir(args: &Args) -> Result<PathBuf, String> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            std::env::temp_dir().join(format!("tandem-demo-{stamp}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// A few actions of each kind of `plan`, as `tandem plan` shows them, and a line saying that
/// this is an excerpt.
fn sample(plan: &Plan, per_op: usize) -> String {
    let mut shown: BTreeMap<Op, usize> = BTreeMap::new();
    let actions: Vec<&tandem_core::plan::Action> = plan
        .actions
        .iter()
        .filter(|a| {
            let n = shown.entry(a.op).or_default();
            *n += 1;
            *n <= per_op && a.op != Op::Noop
        })
        .collect();
    let mut out: String = render::blocks(actions.iter().copied(), false)
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    out.push_str(&format!(
        "\n   {} of {} actions shown; `tandem plan pull` shows all\n",
        render::thousands(actions.len()),
        render::thousands(plan.actions.len())
    ));
    out
}

fn step(n: u32, title: &str, command: &str) {
    println!("\n{n}. {title}  ($ {command})");
}

fn show(out: &Output) -> Result<(), String> {
    print!("   {}", out.stdout);
    if out.exit != Exit::Ok {
        return Err(format!(
            "the run ended with exit code {}: {}",
            out.exit.code(),
            out.stderr.trim()
        ));
    }
    Ok(())
}

async fn admin_edit(base: &str, object: &str, id: &str, fields: Value) -> Result<(), String> {
    let r = reqwest::Client::new()
        .post(format!("{base}/_sandbox/edit"))
        .json(&json!({"object": object, "id": id, "fields": fields}))
        .send()
        .await
        .map_err(|e| format!("the sandbox did not take the edit: {e}"))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("the sandbox refused the edit ({})", r.status()))
    }
}

/// The subject of the newest message in the sandbox mailbox at `url` (`/_sandbox/mail`).
async fn last_mail_subject(url: &str) -> Option<String> {
    let list: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    list.as_array()?
        .last()?
        .get("subject")?
        .as_str()
        .map(str::to_string)
}

fn requests(stats: &Value) -> (u64, u64) {
    (
        stats["total"].as_u64().unwrap_or(0),
        stats["writes"].as_u64().unwrap_or(0),
    )
}

async fn demo(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let limits = RateLimits {
        accelo_per_hour: Some(50_000),
        ..RateLimits::default()
    };
    let sb = Sandbox::start(SandboxOptions {
        seed: args.seed,
        companies: args.companies,
        contacts: args.contacts,
        rate_limits: limits,
        ..SandboxOptions::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let result = match walk(args, &sb, started).await {
        Ok(project) if args.console => console(args, &sb, &project).await,
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    sb.shutdown().await;
    result
}

/// `--console`: an operator with a one-time password, then `tandem serve` on the demo's project
/// and simulators until Ctrl-C.
async fn console(args: &Args, sb: &Sandbox, project: &Path) -> Result<(), String> {
    let config = project.join("tandem.yaml");
    let password = super::user::add(&config, "operator", Role::Operator, None)?
        .ok_or("no password was made")?;
    let listener = tokio::net::TcpListener::bind(args.listen.as_str())
        .await
        .map_err(|e| {
            format!(
                "cannot listen on `{}`: {e} (choose another with --listen)",
                args.listen
            )
        })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("\nThe console, on the same simulators and store:");
    println!("  open      http://{addr}/");
    println!("  sign in   operator / {password}   (a one-time password: only its hash is kept)");
    println!(
        "  more users: tandem user add NAME --role viewer --config {}",
        config.display()
    );
    println!("Ctrl-C stops the console and the simulators.");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let serve_args = super::serve::Args {
        config: super::common::ConfigArgs {
            config: Some(config),
            rules: None,
            store: None,
        },
        listen: None,
        poll_interval: Some(30),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        super::common::wait_for_signal().await;
        on_signal.cancel();
    });
    match super::serve::serve_on(serve_args, sandbox_env(sb), listener, shutdown).await {
        Exit::Ok => Ok(()),
        other => Err(format!("the console stopped ({other:?})")),
    }
}

/// The environment the demo's commands run with: the simulators' addresses and credentials,
/// and the email settings that send the push's email to the sandbox's mailbox.
fn sandbox_env(sb: &Sandbox) -> Env {
    let mail_server = sb.mail_server();
    Env::from_pairs([
        ("TANDEM_HUBSPOT_URL", sb.hubspot_url()),
        ("TANDEM_ACCELO_URL", sb.accelo_url()),
        ("TANDEM_ACCELO_CLIENT_ID", sb.accelo_client_id()),
        ("DEMO_HUBSPOT_TOKEN", sb.hubspot_token()),
        ("DEMO_ACCELO_SECRET", sb.accelo_client_secret()),
        ("TANDEM_SMTP_SERVER", mail_server.as_str()),
        ("TANDEM_SMTP_TLS", "none"),
        ("TANDEM_SMTP_FROM", super::sandbox::SANDBOX_MAIL_FROM),
        ("TANDEM_SMTP_TO", super::sandbox::SANDBOX_MAIL_TO),
    ])
}

async fn walk(args: &Args, sb: &Sandbox, started: Instant) -> Result<PathBuf, String> {
    let dir = project_dir(args)?;
    let store = dir.join("tandem.db");
    write(&dir.join("companies.yaml"), COMPANIES_YAML)?;
    write(&dir.join("contacts.yaml"), CONTACTS_YAML)?;
    write(
        &dir.join("tandem.yaml"),
        &format!(
            "# Written by `tandem demo`: the simulators' addresses come from the environment the\n\
             # demo passes (TANDEM_HUBSPOT_URL, …); secrets by variable name as always.\n\
             hubspot:\n  token_env: DEMO_HUBSPOT_TOKEN\n\
             accelo:\n  url: http://127.0.0.1\n  client_id: demo\n  client_secret_env: DEMO_ACCELO_SECRET\n\
             store:\n  url: {}\n\
             sync:\n  guardrails:\n    max_create: 10000\n    max_update: 10000\n    max_clear: 100\n",
            store.display()
        ),
    )?;
    let env = sandbox_env(sb);
    let rt = Runtime::load(Options {
        config: Some(dir.join("tandem.yaml")),
        rules: None,
        env,
        retry: None,
        store: None,
    })
    .map_err(|e| e.render(false))?;
    let progress = if args.plain {
        ProgressMode::Lines
    } else {
        ProgressMode::Auto
    };

    println!(
        "Tandem demo: HubSpot and Accelo simulators with seeded data (seed {}).",
        args.seed
    );
    println!(
        "  HubSpot  {}  {} companies, {} contacts",
        sb.hubspot_url(),
        args.companies,
        args.contacts
    );
    println!(
        "  Accelo   {}  {} companies, {} contacts (40% of them the same as in HubSpot, spelled \
         differently; 10% of HubSpot contacts have no company)",
        sb.accelo_url(),
        args.companies,
        args.contacts
    );
    println!(
        "  project  {} (tandem.yaml + the shipped rules)",
        dir.display()
    );

    step(1, "What a pull would do", "tandem plan pull");
    let snapshot = rt
        .read(Direction::Pull, &Scope::All)
        .await
        .map_err(|e| e.render(false))?;
    let plan = tandem_core::plan::plan(&rt.program, &snapshot.input(Mode::Bulk));
    println!("   {}", render::summary_line(&plan));
    print!("{}", sample(&plan, 2));

    step(
        2,
        "Pull: HubSpot → Accelo, HubSpot's values win",
        "tandem pull",
    );
    show(
        &run_job_with(
            &rt,
            JobKind::Pull,
            jobs::payload(JobKind::Pull, None, false),
            progress,
        )
        .await,
    )?;

    step(
        3,
        "Push: Accelo → HubSpot, Accelo's values win",
        "tandem push",
    );
    show(
        &run_job_with(
            &rt,
            JobKind::Push,
            jobs::payload(JobKind::Push, None, false),
            progress,
        )
        .await,
    )?;
    let mailbox = format!("{}/_sandbox/mail", sb.hubspot_url());
    if let Some(subject) = last_mail_subject(&mailbox).await {
        println!("   the push emailed its summary to the sandbox mailbox: \"{subject}\"");
    }

    // Someone edits a company and one of its contacts in Accelo.
    let store_handle = rt.store().await.map_err(|e| e.render(false))?;
    let company = store_handle
        .links(Object::Company)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no company was linked")?;
    let contact = snapshot
        .accelo
        .iter()
        .find(|r| {
            r.object == Object::Contact && r.company_id.as_deref() == Some(&company.accelo_id)
        })
        .map(|r| r.id.clone());
    admin_edit(
        sb.accelo_url(),
        "companies",
        &company.accelo_id,
        json!({"phone": "+61 2 5550 0199"}),
    )
    .await?;
    if let Some(c) = &contact {
        admin_edit(
            sb.accelo_url(),
            "contacts",
            c,
            json!({"position": "Head of Partnerships"}),
        )
        .await?;
    }
    step(
        4,
        &format!(
            "Someone edits Accelo company {} (phone{}); push that company and its contacts",
            company.accelo_id,
            if contact.is_some() {
                ", and a contact's position"
            } else {
                ""
            }
        ),
        &format!("tandem push company {}", company.accelo_id),
    );
    show(
        &run_job_with(
            &rt,
            JobKind::PushCompany,
            jobs::payload(JobKind::PushCompany, Some(&company.accelo_id), false),
            progress,
        )
        .await,
    )?;

    step(
        5,
        "Pull again: the contacts of companies the push linked now have a company to go to",
        "tandem pull",
    );
    let pull = || jobs::payload(JobKind::Pull, None, false);
    show(&run_job_with(&rt, JobKind::Pull, pull(), progress).await)?;

    let writes = || {
        (
            requests(&sb.hubspot_stats()).1,
            requests(&sb.accelo_stats()).1,
        )
    };
    let before = writes();
    step(
        6,
        "And once more: everything is unchanged, nothing is written",
        "tandem pull",
    );
    show(&run_job_with(&rt, JobKind::Pull, pull(), progress).await)?;
    let after = writes();
    println!(
        "   write requests during this pull: HubSpot {}, Accelo {}",
        after.0 - before.0,
        after.1 - before.1
    );
    if after != before {
        return Err("the last pull wrote: the two systems did not converge".into());
    }

    let (hs_total, hs_writes) = requests(&sb.hubspot_stats());
    let (ac_total, ac_writes) = requests(&sb.accelo_stats());
    let links = |o: Object| {
        let s = store_handle.clone();
        async move { s.links(o).await.map(|l| l.len()).unwrap_or(0) }
    };
    println!("\nOutcome");
    println!(
        "  linked pairs   {} companies, {} contacts",
        links(Object::Company).await,
        links(Object::Contact).await
    );
    println!("  HubSpot        {hs_total} requests ({hs_writes} writes)");
    println!("  Accelo         {ac_total} requests ({ac_writes} writes)");
    println!(
        "  took           {}",
        tandem_engine::notify::human_duration(started.elapsed())
    );
    println!("\nThe sync log, every run and every record field by field:");
    println!("  tandem log --store {}", store.display());
    println!("  tandem log --store {} --job 2", store.display());
    println!("The store (SQLite) is kept at {}.", store.display());
    if !args.console {
        println!("To see all of it in the browser console: tandem demo --console");
    }
    Ok(dir)
}
