//! `tandem schema [--check] [--dir DIR]`: writes the JSON Schemas of `tandem.yaml` and the rule
//! files (generated from the Rust types) into `schemas/`, or with `--check` exits 1 when the
//! files there are missing or stale.

use std::path::PathBuf;

use super::common::Exit;
use tandem_core::rules::schema;

/// Arguments of `tandem schema`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Do not write: exit 1 when the schema files are missing or out of date.
    #[arg(long)]
    pub check: bool,
    /// Where the schema files live.
    #[arg(long, value_name = "DIR", default_value = "schemas")]
    pub dir: PathBuf,
}

/// Runs `tandem schema`; returns the exit code and the message printed.
pub fn execute(args: &Args) -> (Exit, String) {
    let dir = args.dir.display();
    if args.check {
        let stale = schema::stale(&args.dir);
        if stale.is_empty() {
            (Exit::Ok, format!("schemas in `{dir}` are up to date"))
        } else {
            (
                Exit::Failures,
                format!(
                    "stale schema files in `{dir}`: {}; run `tandem schema` to regenerate them",
                    stale
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        }
    } else {
        match schema::write_all(&args.dir) {
            Ok(()) => (
                Exit::Ok,
                format!(
                    "wrote `{dir}/{}` and `{dir}/{}`",
                    schema::CONFIG_SCHEMA_FILE,
                    schema::RULES_SCHEMA_FILE
                ),
            ),
            Err(e) => (
                Exit::Failures,
                format!("cannot write schemas into `{dir}`: {e}"),
            ),
        }
    }
}

/// Runs `tandem schema`.
pub fn run(args: Args) -> Exit {
    let (exit, msg) = execute(&args);
    if exit == Exit::Ok {
        println!("{msg}");
    } else {
        eprintln!("{msg}");
    }
    exit
}
