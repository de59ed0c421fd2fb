//! The plan: what a run will do, decided before anything is written (B18).
//!
//! This module owns the `Plan` types and their JSON form (a public contract: users' scripts read
//! `tandem plan --json`; keys are only ever added). The planner that produces a plan is a pure
//! function — no I/O, no clock, no randomness — so `tandem plan` and a real run call exactly the
//! same code. Reading the records a plan needs is not done here (see `crate::snapshot`).
//!
//! # `last_synced`
//!
//! A link remembers, per synced field and per side, the value the field had on that side right
//! after the pair was last synced ([`crate::model::Link::last_synced`]). Keys are
//! [`synced_key`]`(system, field)`: `hubspot:<property>` and `accelo:<path>` where `<path>` is the
//! dotted path of the rule's JSONPath (`accelo:affiliation.email`, `accelo:company.name`; the
//! JSONPath itself for a non-singular path), and `accelo:status` (the status title) /
//! `hubspot:<status property>` for the status mapping. Values are the raw field values (before
//! transforms); an empty string means "blank" (after a create: every field it could write but
//! did not). A key that is absent means "not known" (a link made before a field was mapped, a
//! field the create's direction cannot write, which the target system fills, or a field a write
//! left undone): the planner then treats the field as a bulk run does. Every create / link /
//! update action carries the whole map its link must hold once it succeeds
//! ([`Action::last_synced`]), so the executor never evaluates a rule; the executor replaces the
//! target's side with what the target reports holding after the write, where it reports it.

pub mod cases;
pub mod planner;
pub mod render;
pub mod saved;
mod types;

pub use crate::model::Op;
pub use planner::{PlanInput, plan};
pub use saved::{Basis, SavedPlan, Scope};
pub use types::{Action, Change, Effect, Mode, Plan, RecordRef, Summary, link_detail, synced_key};
