//! The compiled form of one object's rules, as the planner reads them through
//! [`super::Program`]: Rhai expressions as ASTs, Accelo JSONPaths parsed, status tables ready
//! for lookup in both directions.
//!
//! Built by [`compile_object`] from a checked [`set::ObjectRules`]: every expression and path
//! there already passed the check, so compiling them again cannot fail unless the check and
//! the compiler disagree — which is reported as an error, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::expr::Expr;
use crate::model::accelo::{ACCELO_STATUS_KEY, name_segments};
use crate::model::{Direction, Object, Record, System, value_as_string};
use crate::rules::catalog::Property;
pub use crate::rules::raw::{BlankPolicy, FieldDirection, Precedence, TwinMissing};
use crate::rules::set::{self, Code, FieldPath, TestCase};

/// Why checked rules did not compile (a disagreement between the check and the compiler).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {what} `{source_text}` passed the check but does not compile: {reason}")]
pub struct CompileError {
    /// The rule file.
    pub file: String,
    /// What it is (`expression`, `Accelo path`).
    pub what: &'static str,
    /// Its source text.
    pub source_text: String,
    /// The compiler's message.
    pub reason: String,
}

/// The compiled rules of one object.
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

/// An Accelo field addressed by JSONPath, parsed once.
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
    /// Parses a JSONPath (without a write key).
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

/// The status mapping, ready for lookups in both directions.
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
            Direction::Pull => ACCELO_STATUS_KEY,
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

/// Compiles the checked rules of one object.
pub fn compile_object(rules: &set::ObjectRules) -> Result<ObjectRules, CompileError> {
    let file = rules.file.as_str();
    let code = |c: &Code| {
        Expr::compile(&c.source, c.vars)
            .map(|e| e.with_origin(c.origin.clone()))
            .map_err(|e| CompileError {
                file: file.to_string(),
                what: "expression",
                source_text: c.source.clone(),
                reason: e.message,
            })
    };
    let opt = |c: &Option<Code>| c.as_ref().map(code).transpose();
    let path = |p: &FieldPath| {
        AcceloPath::parse(&p.source)
            .map(|mut a| {
                a.write_key = p.write_key.clone();
                a
            })
            .map_err(|e| CompileError {
                file: file.to_string(),
                what: "Accelo path",
                source_text: p.source.clone(),
                reason: e.to_string(),
            })
    };
    let dedup = rules
        .dedup
        .iter()
        .map(|k| {
            Ok(DedupKey {
                name: k.name.clone(),
                hubspot: code(&k.hubspot)?,
                accelo: code(&k.accelo)?,
            })
        })
        .collect::<Result<Vec<_>, CompileError>>()?;
    let mappings = rules
        .mappings
        .iter()
        .map(|m| {
            Ok(Mapping {
                name: m.name.clone(),
                hubspot: m.hubspot.clone(),
                accelo: path(&m.accelo)?,
                direction: m.direction,
                transform_pull: opt(&m.transform_pull)?,
                transform_push: opt(&m.transform_push)?,
                precedence: m.precedence,
                blank: m.blank,
            })
        })
        .collect::<Result<Vec<_>, CompileError>>()?;
    Ok(ObjectRules {
        object: rules.object,
        file: rules.file.clone(),
        requires_company: rules.requires_company,
        when_twin_missing: rules.when_twin_missing,
        triggers: rules.triggers.clone(),
        properties: rules.properties.clone(),
        criteria_pull: opt(&rules.criteria_pull)?,
        criteria_push: opt(&rules.criteria_push)?,
        dedup,
        mappings,
        status: rules.status.as_ref().map(|s| StatusMap {
            hubspot: s.hubspot.clone(),
            direction: s.direction,
            pull: s.pull.clone(),
            push: s.push.clone(),
        }),
        accelo_statuses: rules.accelo_statuses.clone(),
        tests: rules.tests.clone(),
        read_properties: rules.read_properties.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn checked_code_that_does_not_compile_is_an_error_not_a_panic() {
        let rules = set::ObjectRules {
            object: Object::Company,
            file: "companies.yaml".into(),
            requires_company: false,
            when_twin_missing: Default::default(),
            triggers: BTreeSet::new(),
            properties: BTreeMap::new(),
            criteria_pull: Some(Code {
                source: "record.name ==".into(),
                vars: crate::expr::Vars::Record,
                origin: None,
            }),
            criteria_push: None,
            dedup: Vec::new(),
            mappings: Vec::new(),
            status: None,
            accelo_statuses: Vec::new(),
            tests: Vec::new(),
            read_properties: BTreeSet::new(),
        };
        let e = compile_object(&rules).unwrap_err();
        assert_eq!((e.file.as_str(), e.what), ("companies.yaml", "expression"));
    }
}
