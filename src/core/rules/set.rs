//! The checked rule set: what [`crate::rules::check()`] produces once every file is valid —
//! typed mappings with their Rhai expressions compiled and their Accelo JSONPaths parsed,
//! criteria, dedup keys, status tables, triggers and test cases. [`crate::compile`] turns it
//! into the runtime `Program`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::catalog::Property;
pub use super::raw::{BlankPolicy, FieldDirection, Precedence};
use crate::expr::Expr;
use crate::model::{Direction, Link, Object, Record, System, value_as_string};
use crate::plan::Op;

/// Every object's rules, from all rule files.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Per object.
    pub objects: BTreeMap<Object, ObjectRules>,
    /// sha256 (hex) of the canonical content of every rule file.
    pub hash: String,
}

/// The rules of one object (one rule file).
#[derive(Debug, Clone)]
pub struct ObjectRules {
    /// Company or contact.
    pub object: Object,
    /// The rule file, as displayed.
    pub file: String,
    /// B7: HubSpot contacts without a company are not pulled.
    pub requires_company: bool,
    /// HubSpot changes that queue a sync: `created` and property names.
    pub triggers: BTreeSet<String>,
    /// The HubSpot properties these rules may use (standard + custom).
    pub properties: BTreeMap<String, Property>,
    /// Criteria for pull (over HubSpot records); `None` = every record.
    pub criteria_pull: Option<Expr>,
    /// Criteria for push (over Accelo records); `None` = every record.
    pub criteria_push: Option<Expr>,
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
    /// The criteria expression of `direction`.
    pub fn criteria(&self, direction: Direction) -> Option<&Expr> {
        match direction {
            Direction::Pull => self.criteria_pull.as_ref(),
            Direction::Push => self.criteria_push.as_ref(),
        }
    }

    /// The fields a run in `direction` writes on the target: HubSpot properties (push) or
    /// Accelo write keys (pull), including the status.
    pub fn target_fields(&self, direction: Direction) -> Vec<String> {
        let mut out: Vec<String> = self
            .mappings
            .iter()
            .filter(|m| m.direction.flows(direction))
            .filter_map(|m| m.target_field(direction).map(str::to_string))
            .collect();
        if let Some(s) = &self.status
            && s.direction.flows(direction)
        {
            out.push(s.target_field(direction).to_string());
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
    pub hubspot: Expr,
    /// Over Accelo records.
    pub accelo: Expr,
}

impl DedupKey {
    /// The expression for records of `system`.
    pub fn expr(&self, system: System) -> &Expr {
        match system {
            System::HubSpot => &self.hubspot,
            System::Accelo => &self.accelo,
        }
    }
}

/// One field mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Unique name within the object.
    pub name: String,
    /// HubSpot property.
    pub hubspot: String,
    /// Accelo field.
    pub accelo: AcceloPath,
    /// Which way values flow.
    pub direction: FieldDirection,
    /// Transform applied HubSpot → Accelo.
    pub transform_pull: Option<Expr>,
    /// Transform applied Accelo → HubSpot.
    pub transform_push: Option<Expr>,
    /// Whose value wins.
    pub precedence: Precedence,
    /// What a blank on the winning side does.
    pub blank: BlankPolicy,
}

impl Mapping {
    /// The transform of `direction`.
    pub fn transform(&self, direction: Direction) -> Option<&Expr> {
        match direction {
            Direction::Pull => self.transform_pull.as_ref(),
            Direction::Push => self.transform_push.as_ref(),
        }
    }

    /// The field written on the target side of `direction`: the HubSpot property (push) or the
    /// Accelo write key (pull; `None` when the path is read-only).
    pub fn target_field(&self, direction: Direction) -> Option<&str> {
        match direction {
            Direction::Push => Some(&self.hubspot),
            Direction::Pull => self.accelo.write_key.as_deref(),
        }
    }

    /// The raw (untransformed) value of this field in `record`, read on the record's side.
    pub fn read(&self, record: &Record) -> Option<String> {
        match record.system {
            System::HubSpot => record.get(&self.hubspot),
            System::Accelo => self.accelo.read(&record.doc),
        }
    }
}

/// An Accelo field addressed by JSONPath.
#[derive(Clone)]
pub struct AcceloPath {
    /// The JSONPath as written (`$.affiliation.email`).
    pub source: String,
    /// Parsed once.
    pub path: Arc<JsonPath>,
    /// For singular name paths: the names from the root (`["affiliation", "email"]`).
    pub segments: Option<Vec<String>>,
    /// The write key (`affiliation.email`) when the path is a writable known field.
    pub write_key: Option<String>,
}

impl fmt::Debug for AcceloPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceloPath")
            .field("source", &self.source)
            .field("write_key", &self.write_key)
            .finish()
    }
}

impl AcceloPath {
    /// Parses a JSONPath; `None` when it does not parse.
    pub fn parse(source: &str) -> Result<AcceloPath, serde_json_path::ParseError> {
        let path = JsonPath::parse(source)?;
        Ok(AcceloPath {
            source: source.to_string(),
            path: Arc::new(path),
            segments: name_segments(source),
            write_key: None,
        })
    }

    /// The dotted path of a singular name path (`postal_address.city`).
    pub fn dotted(&self) -> Option<String> {
        self.segments.as_ref().map(|s| s.join("."))
    }

    /// The value at this path in an Accelo document, as sync text (`None` when blank or absent).
    pub fn read(&self, doc: &Map<String, Value>) -> Option<String> {
        match &self.segments {
            Some(segs) => {
                let (first, rest) = segs.split_first()?;
                let mut v = doc.get(first)?;
                for s in rest {
                    v = v.get(s)?;
                }
                value_as_string(v)
            }
            None => {
                let root = Value::Object(doc.clone());
                let nodes = self.path.query(&root);
                nodes.first().and_then(value_as_string)
            }
        }
    }
}

/// The names of a singular name-selector JSONPath (`$.a.b`, `$['a']["b"]`), or `None` for any
/// other path (wildcards, filters, indexes, descendants).
pub fn name_segments(path: &str) -> Option<Vec<String>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if r.starts_with('.') {
                return None;
            }
            let end = r
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || !c.is_ascii()))
                .map_or(r.len(), |(i, _)| i);
            if end == 0 || r.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            out.push(r[..end].to_string());
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let r = r.trim_start();
            let quote = r.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            let r = &r[1..];
            let end = r.find(quote)?;
            let name = &r[..end];
            if name.contains('\\') {
                return None;
            }
            let after = r[end + 1..].trim_start().strip_prefix(']')?;
            out.push(name.to_string());
            rest = after;
        } else {
            return None;
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

/// Status mapping (B15).
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

impl StatusMap {
    /// The field the status is written to on the target side of `direction`.
    pub fn target_field(&self, direction: Direction) -> &str {
        match direction {
            Direction::Push => &self.hubspot,
            Direction::Pull => super::catalog::ACCELO_STATUS_KEY,
        }
    }

    /// The status value of `record` on its own side: the HubSpot property, or the Accelo status
    /// title.
    pub fn read(&self, record: &Record) -> Option<String> {
        match record.system {
            System::HubSpot => record.get(&self.hubspot),
            System::Accelo => record
                .doc
                .get("status")
                .and_then(|s| s.get("title"))
                .and_then(value_as_string),
        }
    }

    /// Maps a source value in `direction` (`None` when the table does not list it).
    pub fn map(&self, direction: Direction, value: &str) -> Option<&str> {
        match direction {
            Direction::Pull => self.pull.get(value).map(String::as_str),
            Direction::Push => self.push.get(value).map(String::as_str),
        }
    }
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
    /// Skip the criteria (B9).
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn singular_paths() {
        assert_eq!(
            name_segments("$.affiliation.email"),
            Some(vec!["affiliation".into(), "email".into()])
        );
        assert_eq!(
            name_segments("$['postal_address'][\"city\"]"),
            Some(vec!["postal_address".into(), "city".into()])
        );
        assert_eq!(name_segments("$"), None);
        assert_eq!(name_segments("$..email"), None);
        assert_eq!(name_segments("$.a[0]"), None);
        assert_eq!(name_segments("$.a[*]"), None);
        assert_eq!(name_segments("name"), None);
    }

    #[test]
    fn reads_nested_and_general_paths() {
        let doc = json!({"affiliation": {"email": "a@b.c", "phone": 42}, "list": [{"x": "1"}]});
        let doc = doc.as_object().unwrap();
        let p = AcceloPath::parse("$.affiliation.email").unwrap();
        assert_eq!(p.read(doc).as_deref(), Some("a@b.c"));
        let p = AcceloPath::parse("$.affiliation.phone").unwrap();
        assert_eq!(p.read(doc).as_deref(), Some("42"));
        let p = AcceloPath::parse("$.list[0].x").unwrap();
        assert_eq!(p.read(doc).as_deref(), Some("1"));
        let p = AcceloPath::parse("$.postal_address.city").unwrap();
        assert_eq!(p.read(doc), None);
    }
}
