//! `tandem links list [--object company|contact] [--json]`, `tandem links show SYSTEM OBJECT ID
//! [--json]` and `tandem links remove SYSTEM OBJECT ID | --all | --all-missing [--only …]` (+
//! `--config`, `--rules`, `--store`): the pairs of twins the store remembers. Reads and writes
//! the store only, except `--all-missing`, which reads both systems to find the dead links.
//!
//! Removing a link makes Tandem forget that two records are twins: the next run treats the
//! record as never synced (criteria, duplicate detection, create). That is how a link to a
//! twin deleted on the other side is dropped by hand, and `remove --all` is how a project
//! starts over against a new sandbox.
//!
//! Exit codes: 0 done (a list may be empty); 2 invalid arguments, config, or a record that has
//! no link; 3 the store cannot be reached.

use std::io::Write;

use serde_json::{Value, json};

use super::common::{ConfigArgs, Exit, Reported};
use tandem_core::model::{Link, Object, RecordKey, System};
use tandem_engine::runtime::{Runtime, RuntimeError};
use tandem_engine::store::Store;

/// Arguments of `tandem links`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// What to do with the links.
    #[command(subcommand)]
    pub what: What,
}

/// The `tandem links` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum What {
    /// Every link: object, HubSpot id, Accelo id (one per line; `--json` for one JSON array).
    List(List),
    /// One record's link: its twin and the values last synced.
    Show(One),
    /// Forget one record's link (or every link with `--all`, or those to records that no
    /// longer exist with `--all-missing`); the next run treats the record as never synced.
    Remove(Remove),
}

/// Arguments of `tandem links list`.
#[derive(Debug, Clone, clap::Args)]
pub struct List {
    /// Only companies or only contacts.
    #[arg(long, value_name = "OBJECT")]
    pub object: Option<String>,
    /// Print one JSON array of `{object, hubspot_id, accelo_id, affiliation_id}`.
    #[arg(long)]
    pub json: bool,
    /// Config, rules and store.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Arguments of `tandem links show`.
#[derive(Debug, Clone, clap::Args)]
pub struct One {
    /// `hubspot` or `accelo` (or the whole record as `SYSTEM:OBJECT:ID`).
    #[arg(value_name = "SYSTEM")]
    pub system: String,
    /// `company` or `contact`.
    #[arg(value_name = "OBJECT")]
    pub object: Option<String>,
    /// The record's id in that system.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Print the link as one JSON object (with `last_synced`).
    #[arg(long)]
    pub json: bool,
    /// Config, rules and store.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Arguments of `tandem links remove`.
#[derive(Debug, Clone, clap::Args)]
pub struct Remove {
    /// `hubspot` or `accelo` (or the whole record as `SYSTEM:OBJECT:ID`).
    #[arg(value_name = "SYSTEM", required_unless_present_any = ["all", "all_missing"])]
    pub system: Option<String>,
    /// `company` or `contact`.
    #[arg(value_name = "OBJECT")]
    pub object: Option<String>,
    /// The record's id in that system.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Forget every link (of `--only` objects): start over, e.g. against a new sandbox.
    #[arg(long, conflicts_with_all = ["system", "all_missing"])]
    pub all: bool,
    /// Forget every link (of `--only` objects) whose HubSpot or Accelo record no longer exists;
    /// reads both systems, and prints each link it removes.
    #[arg(long, conflicts_with = "system")]
    pub all_missing: bool,
    /// With `--all` or `--all-missing`: only companies or only contacts.
    #[arg(long, value_name = "OBJECT")]
    pub only: Option<String>,
    /// Config, rules and store.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The record `system object id` names (or `system` as `SYSTEM:OBJECT:ID`).
fn record(system: &str, object: Option<&str>, id: Option<&str>) -> Result<RecordKey, String> {
    match (object, id) {
        (None, None) => system.trim().parse(),
        (Some(object), Some(id)) => {
            let id = id.trim();
            if id.is_empty() {
                return Err("the record id is empty".into());
            }
            Ok(RecordKey {
                system: system.trim().parse()?,
                object: object.trim().parse()?,
                id: id.to_string(),
            })
        }
        _ => Err(
            "name the record as SYSTEM OBJECT ID, e.g. `tandem links show hubspot company 101`"
                .into(),
        ),
    }
}

fn objects(only: Option<&str>) -> Result<Vec<Object>, String> {
    match only {
        None => Ok(Object::ALL.to_vec()),
        Some(o) => Ok(vec![o.trim().parse()?]),
    }
}

/// A link as JSON (`last_synced` when `full`).
pub fn link_json(l: &Link, full: bool) -> Value {
    let mut v = json!({
        "object": l.object.as_str(),
        "hubspot_id": l.hubspot_id,
        "accelo_id": l.accelo_id,
        "affiliation_id": l.affiliation_id,
    });
    if full && let Some(m) = v.as_object_mut() {
        m.insert("last_synced".into(), json!(l.last_synced));
    }
    v
}

/// Runs `tandem links`.
pub fn run(args: Args) -> Exit {
    let config = match &args.what {
        What::List(a) => &a.config,
        What::Show(a) => &a.config,
        What::Remove(a) => &a.config,
    };
    let options = config.options();
    super::common::block_on(async move {
        let rt = match Runtime::load(options) {
            Ok(rt) => rt,
            Err(e) => return e.report(),
        };
        let store = match rt.store().await {
            Ok(s) => s,
            Err(e) => return e.report(),
        };
        let exit = match links(&rt, store.as_ref(), &args.what).await {
            Ok((out, err)) => {
                let _ = std::io::stdout().write_all(out.as_bytes());
                let _ = std::io::stderr().write_all(err.as_bytes());
                Exit::Ok
            }
            Err(e) => e.report(),
        };
        store.close().await;
        exit
    })
}

/// What the subcommand prints on stdout and stderr.
async fn links(
    rt: &Runtime,
    store: &dyn Store,
    what: &What,
) -> Result<(String, String), RuntimeError> {
    let invalid = RuntimeError::Invalid;
    match what {
        What::List(a) => {
            let mut all = Vec::new();
            for object in objects(a.object.as_deref()).map_err(invalid)? {
                all.extend(store.links(object).await?);
            }
            if a.json {
                let v: Vec<Value> = all.iter().map(|l| link_json(l, false)).collect();
                return Ok((format!("{}\n", Value::Array(v)), String::new()));
            }
            let mut out = String::new();
            for l in &all {
                out.push_str(&format!(
                    "{} hubspot:{} ↔ accelo:{}\n",
                    l.object, l.hubspot_id, l.accelo_id
                ));
            }
            let err = if all.is_empty() {
                format!("no links in {}\n", store.location())
            } else {
                String::new()
            };
            Ok((out, err))
        }
        What::Show(a) => {
            let key = record(&a.system, a.object.as_deref(), a.id.as_deref()).map_err(invalid)?;
            let Some(l) = store.link(key.object, key.system, &key.id).await? else {
                return Err(no_link(&key));
            };
            if a.json {
                return Ok((format!("{}\n", link_json(&l, true)), String::new()));
            }
            let mut out = format!(
                "{} hubspot:{} ↔ accelo:{}\n",
                l.object, l.hubspot_id, l.accelo_id
            );
            if let Some(aff) = &l.affiliation_id {
                out.push_str(&format!("  accelo affiliation {aff}\n"));
            }
            if !l.last_synced.is_empty() {
                out.push_str("  last synced values:\n");
                for (k, v) in &l.last_synced {
                    out.push_str(&format!("    {k} = {v:?}\n"));
                }
            }
            Ok((out, String::new()))
        }
        What::Remove(a) => {
            if a.all_missing {
                return remove_missing(rt, store, a.only.as_deref()).await;
            }
            if a.all {
                let mut n = 0usize;
                for object in objects(a.only.as_deref()).map_err(invalid)? {
                    for l in store.links(object).await? {
                        if store
                            .delete_link_pair(object, &l.hubspot_id, &l.accelo_id)
                            .await?
                        {
                            n += 1;
                        }
                    }
                }
                return Ok((
                    String::new(),
                    format!(
                        "removed {n} link{}; the next run treats those records as never synced\n",
                        if n == 1 { "" } else { "s" }
                    ),
                ));
            }
            let system = a.system.as_deref().unwrap_or_default();
            let key = record(system, a.object.as_deref(), a.id.as_deref()).map_err(invalid)?;
            let Some(l) = store.link(key.object, key.system, &key.id).await? else {
                return Err(no_link(&key));
            };
            store
                .delete_link_pair(l.object, &l.hubspot_id, &l.accelo_id)
                .await?;
            Ok((
                String::new(),
                format!(
                    "removed the link {} hubspot:{} ↔ accelo:{}; the next run treats both as never \
                     synced\n",
                    l.object, l.hubspot_id, l.accelo_id
                ),
            ))
        }
    }
}

/// How many ids one read asks a system for.
const READ_CHUNK: usize = 100;

/// The ids of `ids` that exist in `system`.
async fn existing(
    rt: &Runtime,
    system: System,
    object: Object,
    ids: Vec<String>,
) -> Result<std::collections::HashSet<String>, RuntimeError> {
    let mut found = std::collections::HashSet::new();
    for chunk in ids.chunks(READ_CHUNK) {
        let records = rt.systems.get(system).get(object, chunk, &[]).await?;
        found.extend(records.into_iter().map(|r| r.id));
    }
    Ok(found)
}

/// `links remove --all-missing`.
async fn remove_missing(
    rt: &Runtime,
    store: &dyn Store,
    only: Option<&str>,
) -> Result<(String, String), RuntimeError> {
    let mut out = String::new();
    let mut n = 0usize;
    for object in objects(only).map_err(RuntimeError::Invalid)? {
        let all = store.links(object).await?;
        let hs = existing(
            rt,
            System::HubSpot,
            object,
            all.iter().map(|l| l.hubspot_id.clone()).collect(),
        )
        .await?;
        let ac = existing(
            rt,
            System::Accelo,
            object,
            all.iter().map(|l| l.accelo_id.clone()).collect(),
        )
        .await?;
        for l in &all {
            let gone = match (hs.contains(&l.hubspot_id), ac.contains(&l.accelo_id)) {
                (true, true) => continue,
                (false, true) => format!("hubspot {object} `{}` no longer exists", l.hubspot_id),
                (true, false) => format!("accelo {object} `{}` no longer exists", l.accelo_id),
                (false, false) => "neither record exists any more".to_string(),
            };
            if store
                .delete_link_pair(object, &l.hubspot_id, &l.accelo_id)
                .await?
            {
                n += 1;
                out.push_str(&format!(
                    "removed {object} hubspot:{} ↔ accelo:{} ({gone})\n",
                    l.hubspot_id, l.accelo_id
                ));
            }
        }
    }
    Ok((
        out,
        format!(
            "removed {n} link{} to records that no longer exist\n",
            if n == 1 { "" } else { "s" }
        ),
    ))
}

fn no_link(key: &RecordKey) -> RuntimeError {
    let other = match key.system {
        System::HubSpot => System::Accelo,
        System::Accelo => System::HubSpot,
    };
    RuntimeError::Invalid(format!(
        "{} {} `{}` has no link to a {other} record (see them with `tandem links list`)",
        key.system, key.object, key.id
    ))
}
