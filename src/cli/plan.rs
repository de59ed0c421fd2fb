//! `tandem plan pull|push [--company ID | --contact ID] [--only KINDS] [--object OBJECT] [--json]
//! [--out FILE]` (+ `--config`, `--rules`, `--store`): the dry run. Reads both systems and the store's links, plans exactly as a
//! real run would, prints the plan, and writes nothing to either system or to the store (a
//! missing store is not created). `--out FILE` also saves the plan with the fingerprint of the
//! data it was made from, for `tandem apply FILE`.
//!
//! Output: the human form (a summary line of counts, one block per action — those `--only` and
//! `--object` select — and the summary again; colours only on a terminal) or `--json` (the contract of issue 4 item 4, stable order) on stdout; errors on
//! stderr. Exit 0 with a plan; 2 for invalid arguments, config, rules or an id that does not
//! exist; 3 when a system or the store cannot be reached or refuses the credentials.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::common::Exit;
use super::common::{ConfigArgs, Reported};
use tandem_core::model::{Direction, Object};
use tandem_core::plan::{Mode, Op, SavedPlan, Scope, plan, render};
use tandem_engine::runtime::{Options, Runtime, RuntimeError};

/// `pull` or `push`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectionArg {
    /// HubSpot → Accelo (HubSpot's values win).
    Pull,
    /// Accelo → HubSpot (Accelo's values win).
    Push,
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Direction {
        match d {
            DirectionArg::Pull => Direction::Pull,
            DirectionArg::Push => Direction::Push,
        }
    }
}

/// An action kind, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OpArg {
    /// Records to create.
    Create,
    /// Linked records whose fields change.
    Update,
    /// Records linked to a duplicate found on the other side.
    Link,
    /// Records already the same on both sides (`noop` in the JSON form).
    #[value(alias = "noop")]
    Unchanged,
    /// Records not synced, with the reason.
    Skip,
}

impl From<OpArg> for Op {
    fn from(o: OpArg) -> Op {
        match o {
            OpArg::Create => Op::Create,
            OpArg::Update => Op::Update,
            OpArg::Link => Op::Link,
            OpArg::Unchanged => Op::Noop,
            OpArg::Skip => Op::Skip,
        }
    }
}

/// Company or contact, for `--object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectArg {
    /// Companies.
    Company,
    /// Contacts.
    Contact,
}

impl From<ObjectArg> for Object {
    fn from(o: ObjectArg) -> Object {
        match o {
            ObjectArg::Company => Object::Company,
            ObjectArg::Contact => Object::Contact,
        }
    }
}

/// Arguments of `tandem plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// `pull` (HubSpot → Accelo) or `push` (Accelo → HubSpot).
    #[arg(value_enum)]
    pub direction: DirectionArg,
    /// Only this company and all its contacts: an id of the direction's source system
    /// (HubSpot on pull, Accelo on push).
    #[arg(long, value_name = "ID", conflicts_with = "contact")]
    pub company: Option<String>,
    /// Only this contact, bypassing the sync criteria: an id of the direction's source.
    #[arg(long, value_name = "ID")]
    pub contact: Option<String>,
    /// Show only these kinds of action, comma-separated: create, update, link, unchanged,
    /// skip (e.g. `--only skip,create`). The summary still counts the whole plan.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KINDS")]
    pub only: Vec<OpArg>,
    /// Show only the actions about companies, or only those about contacts.
    #[arg(long, value_enum, value_name = "OBJECT")]
    pub object: Option<ObjectArg>,
    /// Print the plan as JSON instead of text (with `--only`/`--object`: only the actions
    /// shown; the summary still counts the whole plan).
    #[arg(long)]
    pub json: bool,
    /// Also save the plan, with a fingerprint of the data it was made from, for
    /// `tandem apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Config and rules.
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl Args {
    /// True when `--only` and `--object` let `action` through.
    pub fn shows(&self, action: &tandem_core::plan::Action) -> bool {
        (self.only.is_empty() || self.only.iter().any(|o| Op::from(*o) == action.op))
            && self.object.is_none_or(|o| Object::from(o) == action.object)
    }

    /// The scope the flags ask for.
    pub fn scope(&self) -> Result<Scope, RuntimeError> {
        let id = |flag: &str, v: &str| {
            let v = v.trim();
            if v.is_empty() {
                Err(RuntimeError::Invalid(format!("`--{flag}` needs an id")))
            } else {
                Ok(v.to_string())
            }
        };
        match (&self.company, &self.contact) {
            (Some(_), Some(_)) => Err(RuntimeError::Invalid(
                "`--company` and `--contact` cannot be used together".into(),
            )),
            (Some(c), None) => Ok(Scope::Company {
                id: id("company", c)?,
            }),
            (None, Some(c)) => Ok(Scope::Contact {
                id: id("contact", c)?,
            }),
            (None, None) => Ok(Scope::All),
        }
    }
}

/// What `tandem plan` prints, and how it exits (callable from tests).
#[derive(Debug, Clone)]
pub struct Output {
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
    /// The exit code.
    pub exit: Exit,
}

/// Runs the plan with `options` (the config, rules and environment to use; `args.config` is
/// ignored) and renders it without printing (`color` = ANSI colours in the text form).
pub async fn render(args: &Args, options: Options, color: bool) -> Output {
    match make(args, options, color).await {
        Ok((stdout, stderr)) => Output {
            stdout,
            stderr,
            exit: Exit::Ok,
        },
        Err(e) => Output {
            stdout: String::new(),
            stderr: e.render(color),
            exit: e.exit(),
        },
    }
}

async fn make(
    args: &Args,
    options: Options,
    color: bool,
) -> Result<(String, String), RuntimeError> {
    let scope = args.scope()?;
    let direction = Direction::from(args.direction);
    let rt = Runtime::load(options)?;
    let snapshot = rt.read(direction, &scope).await?;
    let p = plan(&rt.program, &snapshot.input(Mode::Bulk));
    let stdout = if args.json {
        let shown = tandem_core::plan::Plan {
            actions: p
                .actions
                .iter()
                .filter(|a| args.shows(a))
                .cloned()
                .collect(),
            ..p.clone()
        };
        render::json(&shown)
    } else {
        render::text_where(&p, |a| args.shows(a), color)
    };
    let mut stderr = String::new();
    if let Some(path) = &args.out {
        let saved = SavedPlan::new(p, scope, snapshot.basis());
        save(path, &saved.to_json())?;
        stderr.push_str(&format!(
            "saved the plan to `{}` (fingerprint {}); apply it with `tandem apply {}`\n",
            path.display(),
            &saved.fingerprint[..12],
            path.display()
        ));
    }
    Ok((stdout, stderr))
}

/// Writes `text` to `path` through a temporary file in the same directory, so that a reader never
/// sees half a plan.
fn save(path: &Path, text: &str) -> Result<(), RuntimeError> {
    let fail = |e: std::io::Error| {
        RuntimeError::Invalid(format!(
            "cannot write the plan to `{}`: {e}",
            path.display()
        ))
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

/// Runs `tandem plan`.
pub fn run(args: Args) -> Exit {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let options = args.config.options();
    super::common::block_on(async move {
        let out = render(&args, options, color).await;
        let _ = std::io::stdout().write_all(out.stdout.as_bytes());
        let _ = std::io::stderr().write_all(out.stderr.as_bytes());
        out.exit
    })
}
