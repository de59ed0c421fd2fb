//! `tandem why SYSTEM OBJECT ID [--json]` (+ `--config`, `--rules`, `--store`): one record's
//! story — what a pull and what a push would do with it right now, and why; its twin on the
//! other side (the link); and its last sync-log entries. Reads both systems and the store,
//! writes nothing.
//!
//! Each decision is the one the bulk run would make (`tandem pull` / `tandem push`: criteria
//! applied, the direction's source winning), planned from the record, its link and twin, its
//! company and its duplicate candidates. A direction whose source is the other system is
//! planned from the twin; without a twin that direction only reaches the record if a record on
//! the other side is found to be its duplicate, and the output says so.
//!
//! Exit codes: 0 shown; 2 invalid arguments, config or rules, or a record that does not exist;
//! 3 a system or the store cannot be reached or refuses the credentials.

use std::io::Write;

use serde_json::{Value, json};

use super::common::{ConfigArgs, Exit, Reported};
use tandem_core::model::{Direction, Object, RecordKey};
use tandem_core::plan::Action;
use tandem_engine::explain;
pub use tandem_engine::explain::Story;
use tandem_engine::runtime::{Options, Runtime, RuntimeError};

/// Arguments of `tandem why`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// `hubspot` or `accelo` (or the whole record as `SYSTEM:OBJECT:ID`, as `tandem log
    /// --record` takes it).
    #[arg(value_name = "SYSTEM")]
    pub system: String,
    /// `company` or `contact`.
    #[arg(value_name = "OBJECT")]
    pub object: Option<String>,
    /// The record's id in that system.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Print one JSON document instead of text: `record`, `name`, `twin`, `pull`, `push` (each
    /// the plan action as `tandem plan --json` prints it, or `null`), `notes`, `log` and
    /// `log_total`.
    #[arg(long)]
    pub json: bool,
    /// Config, rules and store.
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl Args {
    /// The record the arguments name.
    pub fn record(&self) -> Result<RecordKey, RuntimeError> {
        let invalid = RuntimeError::Invalid;
        match (&self.object, &self.id) {
            (None, None) => self.system.trim().parse().map_err(invalid),
            (Some(object), Some(id)) => {
                let id = id.trim();
                if id.is_empty() {
                    return Err(invalid("the record id is empty".into()));
                }
                Ok(RecordKey {
                    system: self.system.trim().parse().map_err(invalid)?,
                    object: object.trim().parse().map_err(invalid)?,
                    id: id.to_string(),
                })
            }
            _ => Err(invalid(
                "name the record as SYSTEM OBJECT ID, e.g. `tandem why hubspot contact 5101`"
                    .into(),
            )),
        }
    }
}

/// What `tandem why` prints, and how it exits (callable from tests).
#[derive(Debug, Clone)]
pub struct Output {
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
    /// The exit code.
    pub exit: Exit,
}

/// Finds the story of the record `args` names, with `options` (`args.config` is ignored), and
/// renders it without printing.
pub async fn render(args: &Args, options: Options) -> Output {
    match story(args, options).await {
        Ok(s) => Output {
            stdout: if args.json { json_form(&s) } else { text(&s) },
            stderr: String::new(),
            exit: Exit::Ok,
        },
        Err(e) => Output {
            stdout: String::new(),
            stderr: e.render(false),
            exit: e.exit(),
        },
    }
}

/// Reads and plans the record in both directions.
pub async fn story(args: &Args, options: Options) -> Result<Story, RuntimeError> {
    let record = args.record()?;
    let rt = Runtime::load(options)?;
    let store = rt.existing_store().await?;
    explain::story(&rt.systems, &rt.program, store.as_deref(), &record)
        .await?
        .ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "there is no {} {} `{}`",
                record.system, record.object, record.id
            ))
        })
}

fn side(r: &tandem_core::plan::RecordRef, object: Object) -> String {
    match &r.id {
        Some(id) => format!("{} {object} {id}", r.system),
        None => format!("{} (new {object})", r.system),
    }
}

/// One action in a sentence: `update accelo contact 55`, `skip`, `unchanged (accelo contact 7)`.
fn what(a: &Action) -> String {
    use tandem_core::plan::Op;
    match a.op {
        Op::Skip => "skip".into(),
        Op::Noop => format!("unchanged ({})", side(&a.target, a.object)),
        Op::Create => format!("create {}", side(&a.target, a.object)),
        op => format!("{} {}", op.label(), side(&a.target, a.object)),
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(s) => Value::String(s.clone()).to_string(),
        None => "(blank)".into(),
    }
}

/// The text form.
pub fn text(s: &Story) -> String {
    let r = &s.record;
    let mut out = match &s.name {
        Some(n) => format!("{} {} {} ({n})\n", r.system, r.object, r.id),
        None => format!("{} {} {}\n", r.system, r.object, r.id),
    };
    match &s.twin {
        Some(t) => out.push_str(&format!(
            "  linked to: {} {} {}\n",
            t.system, t.object, t.id
        )),
        None => out.push_str(&format!(
            "  linked to: nothing yet (no {} {} is linked to it)\n",
            r.system.other(),
            r.object
        )),
    }
    for direction in [Direction::Pull, Direction::Push] {
        let head = format!(
            "  {direction} ({} → {})",
            direction.source(),
            direction.target()
        );
        let action = match direction {
            Direction::Pull => &s.pull,
            Direction::Push => &s.push,
        };
        match action {
            Some(a) => {
                out.push_str(&format!("{head}: {}\n", what(a)));
                let width = a
                    .changes
                    .iter()
                    .map(|c| c.field.chars().count())
                    .max()
                    .unwrap_or(0);
                for c in &a.changes {
                    out.push_str(&format!(
                        "      {}{}  {} → {}\n",
                        c.field,
                        " ".repeat(width - c.field.chars().count()),
                        show(&c.from),
                        show(&c.to)
                    ));
                }
                out.push_str(&format!("      reason: {}\n", a.reason));
                for (d, f) in &s.first {
                    if *d == direction {
                        out.push_str(&format!(
                            "      first, its company: {} {} ({})\n",
                            f.op.label(),
                            side(&f.source, f.object),
                            f.reason
                        ));
                    }
                }
            }
            None => {
                let note = s
                    .notes
                    .iter()
                    .find(|(d, _)| *d == direction)
                    .map(|(_, n)| n.as_str())
                    .unwrap_or("nothing to do");
                out.push_str(&format!("{head}: nothing\n      {note}\n"));
            }
        }
    }
    let key = r.to_string();
    if s.log_total == 0 {
        out.push_str("  sync log: no entries about this record yet\n");
    } else {
        out.push_str(&format!(
            "  sync log: the last {} of {} entries (all of them: tandem log --record {key})\n",
            s.log.len(),
            s.log_total
        ));
        for e in &s.log {
            for line in super::log::render_text(e).lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

/// The JSON form (one document, pretty).
pub fn json_form(s: &Story) -> String {
    let key = |k: &RecordKey| json!({"system": k.system, "object": k.object, "id": k.id});
    let notes: Vec<Value> = s
        .notes
        .iter()
        .map(|(d, n)| json!({"direction": d, "note": n}))
        .collect();
    let v = json!({
        "record": key(&s.record),
        "name": s.name,
        "twin": s.twin.as_ref().map(key),
        "pull": s.pull,
        "push": s.push,
        "notes": notes,
        "log": s.log,
        "log_total": s.log_total,
    });
    let mut out = serde_json::to_string_pretty(&v).unwrap_or_default();
    out.push('\n');
    out
}

/// Runs `tandem why`.
pub fn run(args: Args) -> Exit {
    let options = args.config.options();
    super::common::block_on(async move {
        let out = render(&args, options).await;
        let _ = std::io::stdout().write_all(out.stdout.as_bytes());
        let _ = std::io::stderr().write_all(out.stderr.as_bytes());
        out.exit
    })
}
