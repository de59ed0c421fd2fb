//! Tandem's pure core: everything that decides, nothing that talks. The record model, the
//! rules language (YAML with spans, checks and located diagnostics), Rhai expressions and their
//! helpers, compiling checked rules into a [`compile::Program`], and the planner that turns a
//! program and two snapshots into a [`plan::Plan`].
//!
//! No network, database or async runtime is in this crate's dependency tree: a plan is a pure
//! function of its inputs, and the rules can never reach anything outside the records they are
//! given.

pub mod compile;
pub mod expr;
pub mod model;
pub mod plan;
pub mod rules;
pub mod secret;
