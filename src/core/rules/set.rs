//! The checked rule set: what [`crate::rules::check()`] produces once every file is valid —
//! typed mappings whose Rhai expressions and Accelo JSONPaths were validated (and are kept as
//! source text), criteria, dedup keys, status tables, triggers and test cases, each from a
//! located, checked file. [`crate::compile`] turns it into the runtime `Program`.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::Property;
pub use super::raw::{BlankPolicy, FieldDirection, Precedence, TwinMissing};
pub use crate::expr::Vars;
use crate::model::accelo::ACCELO_STATUS_KEY;
use crate::model::{Direction, Link, Object, Op, Record, System};

/// Every object's rules, from all rule files.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Per object.
    pub objects: BTreeMap<Object, ObjectRules>,
    /// sha256 (hex) of the canonical content of every rule file.
    pub hash: String,
}

/// A checked Rhai expression: its source (it compiled, and every `record.x` it reads exists)
/// and the variables it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The expression as written.
    pub source: String,
    /// The variables in scope.
    pub vars: Vars,
    /// Where it is written in its rule file (for errors that give the file's line and column).
    pub origin: Option<crate::expr::Origin>,
}

/// A checked Accelo field path: a JSONPath that parses and names a field of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// The JSONPath as written (`$.affiliation.email`).
    pub source: String,
    /// The write key (`affiliation.email`) when the path is a writable known field.
    pub write_key: Option<String>,
}

/// The rules of one object (one rule file).
#[derive(Debug, Clone)]
pub struct ObjectRules {
    /// Company or contact.
    pub object: Object,
    /// The rule file, as displayed.
    pub file: String,
    /// HubSpot contacts without a company are not pulled.
    pub requires_company: bool,
    /// What happens to a linked record whose twin no longer exists.
    pub when_twin_missing: TwinMissing,
    /// HubSpot changes that queue a sync: `created` and property names.
    pub triggers: BTreeSet<String>,
    /// The HubSpot properties these rules may use (standard + custom).
    pub properties: BTreeMap<String, Property>,
    /// Criteria for pull (over HubSpot records); `None` = every record.
    pub criteria_pull: Option<Code>,
    /// Criteria for push (over Accelo records); `None` = every record.
    pub criteria_push: Option<Code>,
    /// Ordered dedup keys.
    pub dedup: Vec<DedupKey>,
    /// Field mappings, in file order.
    pub mappings: Vec<Mapping>,
    /// Status mapping.
    pub status: Option<StatusMap>,
    /// The deployment's status titles.
    pub accelo_statuses: Vec<String>,
    /// Test cases.
    pub tests: Vec<TestCase>,
    /// HubSpot properties the rules read (mapped, status, and `record.x` in pull expressions).
    pub read_properties: BTreeSet<String>,
}

impl ObjectRules {
    /// The fields a run in `direction` writes on the target: HubSpot properties (push) or
    /// Accelo write keys (pull), including the status.
    pub fn target_fields(&self, direction: Direction) -> Vec<String> {
        let mut out: Vec<String> = self
            .mappings
            .iter()
            .filter(|m| m.direction.flows(direction))
            .filter_map(|m| match direction {
                Direction::Push => Some(m.hubspot.clone()),
                Direction::Pull => m.accelo.write_key.clone(),
            })
            .collect();
        if let Some(s) = &self.status
            && s.direction.flows(direction)
        {
            out.push(match direction {
                Direction::Push => s.hubspot.clone(),
                Direction::Pull => ACCELO_STATUS_KEY.to_string(),
            });
        }
        out
    }
}

/// One dedup key.
#[derive(Debug, Clone)]
pub struct DedupKey {
    /// Its name (shown in plans).
    pub name: String,
    /// Over HubSpot records.
    pub hubspot: Code,
    /// Over Accelo records.
    pub accelo: Code,
}

/// One field mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Unique name within the object.
    pub name: String,
    /// HubSpot property.
    pub hubspot: String,
    /// Accelo field.
    pub accelo: FieldPath,
    /// Which way values flow.
    pub direction: FieldDirection,
    /// Transform applied HubSpot → Accelo.
    pub transform_pull: Option<Code>,
    /// Transform applied Accelo → HubSpot.
    pub transform_push: Option<Code>,
    /// Whose value wins.
    pub precedence: Precedence,
    /// What a blank on the winning side does.
    pub blank: BlankPolicy,
}

/// The status mapping: lifecycle stage or lead status ↔ Accelo status, a table per direction
/// (so a round trip cannot loop).
#[derive(Debug, Clone)]
pub struct StatusMap {
    /// The HubSpot enumeration property.
    pub hubspot: String,
    /// Which way statuses flow.
    pub direction: FieldDirection,
    /// HubSpot value → Accelo status title.
    pub pull: BTreeMap<String, String>,
    /// Accelo status title → HubSpot value.
    pub push: BTreeMap<String, String>,
}

/// One test case of a rule file.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// The rule file it comes from.
    pub file: String,
    /// Its name.
    pub name: String,
    /// The file's object (the default object of its records).
    pub object: Object,
    /// Run direction.
    pub direction: Direction,
    /// The system that started the sync.
    pub initiator: System,
    /// Skip the criteria (as pushing one contact does).
    pub bypass_criteria: bool,
    /// HubSpot records.
    pub hubspot: Vec<Record>,
    /// Accelo records.
    pub accelo: Vec<Record>,
    /// Links.
    pub links: Vec<Link>,
    /// Expected actions.
    pub expect: Vec<Expected>,
}

/// One expected action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Company or contact.
    pub object: Object,
    /// Expected operation.
    pub op: Op,
    /// Source record id.
    pub source: String,
    /// Target record id, when checked.
    pub target: Option<String>,
    /// Target field → new value, when checked.
    pub changes: Option<BTreeMap<String, Option<String>>>,
    /// Substring of the reason, when checked.
    pub reason: Option<String>,
}
