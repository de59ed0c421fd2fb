//! The `tandem` command line: argument parsing, exit codes and terminal rendering, on top of
//! [`tandem_core`] (rules and planning), [`tandem_engine`] (connectors, store, jobs, server)
//! and [`tandem_sandbox`] (the simulators). A library so that tests can call each command's
//! function directly; `main.rs` only calls [`cli::main`].
//!
//! The pipeline (docs/ARCHITECTURE.md has the whole map):
//!
//! ```text
//! rules/*.yaml ─load─▶ raw (spans) ─check─▶ rules ─compile─▶ Program
//! connectors (snapshots of both sides) + store (links) ─▶ plan (pure) ─▶ Plan ─execute─▶ sync log
//! ```

pub mod cli;
