//! The rule-file format as written by customers: serde types that are also the source of
//! `schemas/rules.schema.json` (doc comments become the descriptions editors show on hover).
//!
//! These types say what a file *looks like*; whether it *means* something (known properties,
//! parsable Rhai and JSONPath, statuses that exist) is decided by [`crate::rules::check()`].
//! Every section is [`Lenient`], so one broken entry does not hide problems in the others.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::lenient::Lenient;
use crate::model::{Direction, Object, System};

/// A rule file: how one object (companies or contacts) syncs between HubSpot and Accelo.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields, extend("required" = ["object"]))]
#[schemars(title = "Tandem rule file")]
pub struct RuleFile {
    /// The object this file describes: `company` or `contact`. One file per object.
    #[serde(default)]
    pub object: Lenient<ObjectName>,
    /// Contacts only: when `true` (the default for contacts), a HubSpot contact without a
    /// primary company is not pulled into Accelo.
    #[serde(default)]
    pub requires_company: Lenient<bool>,
    /// What happens to a linked record whose twin on the other side no longer exists (it was
    /// deleted there, or the other system was reset): `skip` (the default) reports it and
    /// leaves it alone, so a record someone deleted is not silently brought back; `recreate`
    /// creates a new twin (the criteria are not applied again, duplicate detection still runs
    /// first) in place of the old link; `unlink` forgets the link and treats the record as new
    /// (criteria, duplicate detection, create).
    #[serde(default)]
    pub when_twin_missing: Lenient<TwinMissing>,
    /// HubSpot changes that queue an automatic sync: `created` (a new record) and the
    /// internal names of the standard properties whose change triggers a sync.
    #[serde(default)]
    pub triggers: Lenient<Vec<Lenient<String>>>,
    /// The portal's custom HubSpot properties that these rules use. Standard properties are
    /// known already.
    #[serde(default)]
    pub custom_properties: Lenient<Vec<Lenient<CustomProperty>>>,
    /// Which records sync: one Rhai expression per direction over `record` (the source
    /// record). Absent = every record syncs.
    #[serde(default)]
    pub criteria: Lenient<Criteria>,
    /// Duplicate detection: before creating a record, the keys are tried in order; the
    /// first key that finds exactly one unlinked record on the other side links to it.
    #[serde(default)]
    pub dedup: Lenient<Vec<Lenient<DedupKey>>>,
    /// Field mappings between a HubSpot property and an Accelo field.
    #[serde(default)]
    pub fields: Lenient<Vec<Lenient<FieldMapping>>>,
    /// Status mapping: a HubSpot enumeration property ↔ the Accelo status, with one
    /// table per direction so a round trip cannot loop.
    #[serde(default)]
    pub status: Lenient<StatusMapping>,
    /// The status titles that exist in the Accelo deployment for this object.
    #[serde(default)]
    pub accelo_statuses: Lenient<Vec<Lenient<String>>>,
    /// Test cases, run by `tandem test`: records on both sides (plus links) and the
    /// actions the plan must contain.
    #[serde(default)]
    pub tests: Lenient<Vec<Lenient<TestCase>>>,
}

/// `company` or `contact`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectName {
    /// HubSpot company ↔ Accelo company.
    Company,
    /// HubSpot contact ↔ Accelo contact with its affiliation.
    Contact,
}

impl From<ObjectName> for Object {
    fn from(o: ObjectName) -> Object {
        match o {
            ObjectName::Company => Object::Company,
            ObjectName::Contact => Object::Contact,
        }
    }
}

/// A custom HubSpot property of the portal.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CustomProperty {
    /// The property's internal name.
    pub name: String,
    /// Its HubSpot type (default `string`).
    #[serde(default)]
    pub r#type: PropertyType,
    /// For enumerations: the allowed internal values.
    #[serde(default)]
    pub options: Vec<String>,
    /// True when Tandem must never write it (e.g. a calculated property).
    #[serde(default)]
    pub read_only: bool,
}

/// A HubSpot property type. Every value travels as a string whatever the type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    /// Text.
    #[default]
    String,
    /// A number, as a string.
    Number,
    /// A date (`YYYY-MM-DD` or epoch milliseconds at midnight UTC).
    Date,
    /// A date and time (ISO-8601 or epoch milliseconds).
    Datetime,
    /// One of a fixed set of values (`options`); several are joined with `;`.
    Enumeration,
    /// `true` or `false`.
    Bool,
    /// A phone number.
    PhoneNumber,
}

/// Sync criteria: Rhai expressions that must evaluate to `true` for a record to sync.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Criteria {
    /// Over the HubSpot record (`record.<property>`), for HubSpot → Accelo.
    #[serde(default)]
    pub pull: Option<String>,
    /// Over the Accelo record (`record.name`, `record.affiliation.email`, …), for Accelo →
    /// HubSpot. Pushing a single contact bypasses it.
    #[serde(default)]
    pub push: Option<String>,
}

/// One duplicate-detection key: a Rhai expression per side computing comparable text.
/// A blank result (`()` or `""`) means "no key" for that record.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DedupKey {
    /// Shown in plans (`matched by domain`).
    pub name: String,
    /// Over a HubSpot record.
    pub hubspot: String,
    /// Over an Accelo record.
    pub accelo: String,
}

/// One field mapping.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FieldMapping {
    /// A name for the mapping, unique in the file (default: the HubSpot property).
    #[serde(default)]
    pub name: Option<String>,
    /// The HubSpot property's internal name.
    pub hubspot: String,
    /// The Accelo field as a JSONPath into the Accelo record, e.g. `$.website`,
    /// `$.affiliation.email`, `$.postal_address.city`.
    pub accelo: String,
    /// Which way values flow (default `both`).
    #[serde(default)]
    pub direction: FieldDirection,
    /// Rhai expressions that turn the source value (`value`, with the whole source `record`)
    /// into the value written.
    #[serde(default)]
    pub transform: Transform,
    /// Whose value wins when both sides have one and they differ (default `initiator`).
    #[serde(default)]
    pub precedence: Precedence,
    /// What a blank value on the winning side does (default `keep`).
    #[serde(default)]
    pub blank: BlankPolicy,
}

/// Which way a field's values flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldDirection {
    /// HubSpot → Accelo and Accelo → HubSpot.
    #[default]
    Both,
    /// HubSpot → Accelo only.
    Pull,
    /// Accelo → HubSpot only.
    Push,
    /// Documented but never synced.
    None,
}

impl FieldDirection {
    /// True when values flow in `d`.
    pub fn flows(self, d: Direction) -> bool {
        matches!(
            (self, d),
            (FieldDirection::Both, _)
                | (FieldDirection::Pull, Direction::Pull)
                | (FieldDirection::Push, Direction::Push)
        )
    }
}

/// Per-direction transforms.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Transform {
    /// Applied to the HubSpot value before it is written to Accelo.
    #[serde(default)]
    pub pull: Option<String>,
    /// Applied to the Accelo value before it is written to HubSpot.
    #[serde(default)]
    pub push: Option<String>,
}

/// Whose value wins for a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Precedence {
    /// The system that started the sync wins.
    #[default]
    Initiator,
    /// HubSpot always wins.
    #[serde(rename = "hubspot")]
    HubSpot,
    /// Accelo always wins.
    Accelo,
}

impl Precedence {
    /// The winning system when `initiator` started the sync.
    pub fn winner(self, initiator: System) -> System {
        match self {
            Precedence::Initiator => initiator,
            Precedence::HubSpot => System::HubSpot,
            Precedence::Accelo => System::Accelo,
        }
    }
}

/// What a blank value on the winning side does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlankPolicy {
    /// A blank never overwrites the other side.
    #[default]
    Keep,
    /// A blank clears the other side.
    Clear,
}

/// What happens to a linked record whose twin no longer exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TwinMissing {
    /// Report the record as skipped and leave it alone: a deleted twin is not created again.
    #[default]
    Skip,
    /// Create a new twin (duplicate detection first; the criteria are not applied again) and
    /// link to it instead.
    Recreate,
    /// Forget the link and treat the record as never synced: criteria, duplicate detection,
    /// create.
    Unlink,
}

/// Status mapping between a HubSpot enumeration property and the Accelo status (by title).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StatusMapping {
    /// The HubSpot property holding the status, e.g. `lifecyclestage` or `hs_lead_status`.
    pub hubspot: String,
    /// Which way statuses flow (default `both`).
    #[serde(default)]
    pub direction: FieldDirection,
    /// HubSpot value → Accelo status title, used HubSpot → Accelo. Many values may map to one
    /// title. A value not listed leaves the Accelo status alone.
    #[serde(default)]
    pub pull: BTreeMap<String, String>,
    /// Accelo status title → HubSpot value, used Accelo → HubSpot. Many titles may map to one
    /// value. A title not listed leaves the HubSpot value alone.
    #[serde(default)]
    pub push: BTreeMap<String, String>,
}

/// A record id: text or a whole number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if !s.is_empty() => Ok(Id(s)),
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(Id(n.to_string())),
            _ => Err(serde::de::Error::custom("expected an id")),
        }
    }
}

impl JsonSchema for Id {
    fn schema_name() -> Cow<'static, str> {
        "Id".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A record id (text or a whole number).",
            "type": ["string", "integer"],
            "minLength": 1
        })
    }
}

/// One rule test case: records on both sides, links between them, a run direction, and
/// the actions the plan must contain.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TestCase {
    /// What the case shows, printed by `tandem test`.
    pub name: String,
    /// `pull` (HubSpot → Accelo) or `push` (Accelo → HubSpot).
    pub direction: RunDirection,
    /// The system that started the sync (default: the direction's source).
    #[serde(default)]
    pub initiator: Option<SystemName>,
    /// Skip the sync criteria, as pushing a single contact does.
    #[serde(default)]
    pub bypass_criteria: bool,
    /// HubSpot records.
    #[serde(default)]
    pub hubspot: Vec<TestRecord>,
    /// Accelo records.
    #[serde(default)]
    pub accelo: Vec<TestRecord>,
    /// Records already synced with each other.
    #[serde(default)]
    pub links: Vec<TestLink>,
    /// Every action the plan must contain, in any order.
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

/// `pull` or `push`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunDirection {
    /// HubSpot → Accelo.
    Pull,
    /// Accelo → HubSpot.
    Push,
}

impl From<RunDirection> for Direction {
    fn from(d: RunDirection) -> Direction {
        match d {
            RunDirection::Pull => Direction::Pull,
            RunDirection::Push => Direction::Push,
        }
    }
}

/// `hubspot` or `accelo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SystemName {
    /// HubSpot.
    #[serde(rename = "hubspot")]
    HubSpot,
    /// Accelo.
    Accelo,
}

impl From<SystemName> for System {
    fn from(s: SystemName) -> System {
        match s {
            SystemName::HubSpot => System::HubSpot,
            SystemName::Accelo => System::Accelo,
        }
    }
}

/// A record in a test case.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TestRecord {
    /// The record's id in its system.
    pub id: Id,
    /// `company` or `contact` (default: the file's object).
    #[serde(default)]
    pub object: Option<ObjectName>,
    /// For contacts: the id of its company in the same system.
    #[serde(default)]
    pub company: Option<Id>,
    /// The record's values: HubSpot property names, or the Accelo record's fields (nested
    /// objects such as `affiliation` and `postal_address` as mappings).
    #[serde(default)]
    pub values: Map<String, Value>,
}

/// A link between a HubSpot record and an Accelo record in a test case.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TestLink {
    /// `company` or `contact` (default: the file's object).
    #[serde(default)]
    pub object: Option<ObjectName>,
    /// The HubSpot id.
    pub hubspot: Id,
    /// The Accelo id.
    pub accelo: Id,
}

/// An action the plan must contain.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Expectation {
    /// What happens to the source record.
    pub op: ExpectOp,
    /// `company` or `contact` (default: the file's object).
    #[serde(default)]
    pub object: Option<ObjectName>,
    /// The source record's id.
    pub source: Id,
    /// The target record's id (checked when given).
    #[serde(default)]
    pub target: Option<Id>,
    /// The target fields written and their new values (`null` = cleared), by HubSpot property
    /// or Accelo write key (`affiliation.email`). Checked exactly when given; `{}` means none.
    #[serde(default)]
    pub changes: Option<BTreeMap<String, ExpectedValue>>,
    /// Text the action's reason must contain (checked when given).
    #[serde(default)]
    pub reason: Option<String>,
}

/// An expected field value: text, a number or a boolean (compared as text), or `null` for
/// "cleared".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedValue(pub Option<String>);

impl<'de> Deserialize<'de> for ExpectedValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(ExpectedValue(None)),
            Value::String(s) if s.is_empty() => Ok(ExpectedValue(None)),
            Value::String(s) => Ok(ExpectedValue(Some(s))),
            Value::Number(n) => Ok(ExpectedValue(Some(n.to_string()))),
            Value::Bool(b) => Ok(ExpectedValue(Some(b.to_string()))),
            _ => Err(serde::de::Error::custom(
                "expected text, a number, a boolean or null",
            )),
        }
    }
}

impl JsonSchema for ExpectedValue {
    fn schema_name() -> Cow<'static, str> {
        "ExpectedValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Text, a number or a boolean (compared as text); `null` = cleared.",
            "type": ["string", "number", "boolean", "null"]
        })
    }
}

/// The operation expected for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExpectOp {
    /// Created on the target side and linked.
    Create,
    /// Linked target updated.
    Update,
    /// Linked to a duplicate found by a dedup key.
    Link,
    /// Already in step.
    Noop,
    /// Left alone, with a reason.
    Skip,
}

impl From<ExpectOp> for crate::model::Op {
    fn from(o: ExpectOp) -> crate::model::Op {
        use crate::model::Op;
        match o {
            ExpectOp::Create => Op::Create,
            ExpectOp::Update => Op::Update,
            ExpectOp::Link => Op::Link,
            ExpectOp::Noop => Op::Noop,
            ExpectOp::Skip => Op::Skip,
        }
    }
}
