//! The rules language front end: config and rule files → diagnostics → a checked [`RuleSet`].
//!
//! - [`yaml`] reads YAML into a JSON tree with a span for every node;
//! - [`schema`] generates the JSON Schemas and validates files against them;
//! - [`raw`] and [`config`] are the file formats (serde + schemars);
//! - [`catalog`] knows HubSpot's standard properties and Accelo's fields;
//! - [`paths`] finds and reads the files;
//! - [`mod@check`] turns the files into typed, validated rules, collecting every problem
//!   (config, rule files, status tables and test cases, one module each; `scan` reads the
//!   `record.x` paths of Rhai source);
//! - [`diag`] holds and renders the problems.

pub mod catalog;
pub mod check;
pub mod config;
pub mod diag;
pub mod lenient;
pub mod paths;
pub mod raw;
mod scan;
pub mod schema;
pub mod set;
pub mod yaml;

pub use check::{Checked, check, check_config_file, check_sources};
pub use diag::{Code, Diagnostic, Report, Severity};
pub use paths::{Paths, Source};
pub use set::RuleSet;
