//! The plan: what a run will do, decided before anything is written (B18).
//!
//! This module owns the `Plan` types and their JSON form (a public contract: users' scripts read
//! `tandem plan --json`). The planner that produces a plan is a pure function — no I/O, no clock,
//! no randomness — so `tandem plan` and a real run call exactly the same code.

pub mod planner;

use serde::{Deserialize, Serialize};

use crate::model::{Direction, Object, System};

pub use planner::{PlanInput, plan};

/// What a run will do, in execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `pull` (HubSpot → Accelo) or `push` (Accelo → HubSpot).
    pub direction: Direction,
    /// The system whose values win where both sides differ (B3).
    pub initiator: System,
    /// Hash of the compiled rule set the plan was made with.
    pub rules_hash: String,
    /// Count of actions per operation.
    pub summary: Summary,
    /// Every decision, in a stable order: companies before the contacts that depend on them.
    pub actions: Vec<Action>,
}

/// Count of actions per operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Records to be created on the target side.
    pub create: usize,
    /// Linked (or matched) records whose fields will change.
    pub update: usize,
    /// Records matched by a dedup key that will be linked (possibly with changes).
    pub link: usize,
    /// Records already in step.
    pub noop: usize,
    /// Records left alone, each with a reason.
    pub skip: usize,
}

impl Summary {
    /// Counts the operations of `actions`.
    pub fn of(actions: &[Action]) -> Summary {
        let mut s = Summary::default();
        for a in actions {
            match a.op {
                Op::Create => s.create += 1,
                Op::Update => s.update += 1,
                Op::Link => s.link += 1,
                Op::Noop => s.noop += 1,
                Op::Skip => s.skip += 1,
            }
        }
        s
    }
}

/// What happens to one source record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Create the record on the target side and link the two.
    Create,
    /// Change fields of the linked target record.
    Update,
    /// Link to an existing target record found by a dedup key (B6), applying `changes`.
    Link,
    /// Nothing to do.
    Noop,
    /// Deliberately not synced; `reason` says why.
    Skip,
}

impl Op {
    /// Lower-case name as in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Link => "link",
            Op::Noop => "noop",
            Op::Skip => "skip",
        }
    }
}

/// A record on one side of an action. `id` is `None` for a record that does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRef {
    /// The system.
    pub system: System,
    /// The record id, if the record exists.
    pub id: Option<String>,
}

/// One field change on the target: `from` is the target's current value, `to` the new one
/// (`None` = blank / clear).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The target-side field: a HubSpot property name, or an Accelo write key
    /// (`affiliation.email`, `postal_address.city`, `status`; see the rules' catalogue).
    pub field: String,
    /// Current target value.
    pub from: Option<String>,
    /// Value after the run.
    pub to: Option<String>,
}

/// One decision about one source record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Position in the plan, from 1.
    pub seq: u32,
    /// Company or contact.
    pub object: Object,
    /// What happens.
    pub op: Op,
    /// The record the decision is about.
    pub source: RecordRef,
    /// The record written to (id `None` for a create).
    pub target: RecordRef,
    /// Field changes on the target, in mapping order.
    pub changes: Vec<Change>,
    /// Why, in words a user understands (`matched by domain`, `criteria not met: …`).
    pub reason: String,
    /// `seq` of the action this one needs first (a contact's company).
    pub depends_on: Option<u32>,
}
