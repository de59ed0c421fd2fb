//! Tandem keeps the companies and contacts of a HubSpot portal and an Accelo deployment in step,
//! in both directions, driven by rules customers write in YAML with small Rhai expressions.
//!
//! The pipeline (docs/ARCHITECTURE.md has the whole map):
//!
//! ```text
//! rules/*.yaml ─load─▶ raw (spans) ─check─▶ rules ─compile─▶ Program
//! connectors (snapshots of both sides) + store (links) ─▶ plan (pure) ─▶ Plan ─execute─▶ sync log
//! ```

pub mod cli;
pub mod compile;
pub mod connect;
pub mod expr;
pub mod model;
pub mod notify;
pub mod plan;
pub mod rules;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod snapshot;
pub mod store;
