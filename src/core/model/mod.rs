//! The record model every layer shares: which system, which object, one record as a JSON
//! document, and the link between a HubSpot record and its Accelo twin.
//!
//! Wire types stay inside each connector (`connect/hubspot`, `connect/accelo`); everything after
//! a connector — the planner, the executor, the store, the sync log — sees only these types.
//! Values are compared as strings: HubSpot sends every property as a string and Accelo sends ids
//! and timestamps as strings, so a field's value is `Option<String>` once read (see
//! [`Record::get`]); an empty string and an absent field are both "blank" (B4).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

pub mod accelo;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One of the two systems Tandem keeps in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// The HubSpot portal (CRM v3 objects).
    #[serde(rename = "hubspot")]
    HubSpot,
    /// The Accelo deployment (API v0).
    Accelo,
}

impl System {
    /// The other system.
    pub fn other(self) -> System {
        match self {
            System::HubSpot => System::Accelo,
            System::Accelo => System::HubSpot,
        }
    }

    /// The lower-case name used in the command line, the plan JSON and the sync log.
    pub fn as_str(self) -> &'static str {
        match self {
            System::HubSpot => "hubspot",
            System::Accelo => "accelo",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for System {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hubspot" => Ok(System::HubSpot),
            "accelo" => Ok(System::Accelo),
            other => Err(format!(
                "unknown system `{other}` (expected `hubspot` or `accelo`)"
            )),
        }
    }
}

/// The kinds of record Tandem syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Object {
    /// A HubSpot company / an Accelo company. Companies are planned and applied before contacts.
    Company,
    /// A HubSpot contact / an Accelo contact joined with its affiliation.
    Contact,
}

impl Object {
    /// Both objects, in dependency order (a contact depends on its company).
    pub const ALL: [Object; 2] = [Object::Company, Object::Contact];

    /// Singular lower-case name (`company`, `contact`).
    pub fn as_str(self) -> &'static str {
        match self {
            Object::Company => "company",
            Object::Contact => "contact",
        }
    }

    /// Plural name as used in both APIs' paths (`companies`, `contacts`).
    pub fn plural(self) -> &'static str {
        match self {
            Object::Company => "companies",
            Object::Contact => "contacts",
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Object {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "company" | "companies" => Ok(Object::Company),
            "contact" | "contacts" => Ok(Object::Contact),
            other => Err(format!(
                "unknown object `{other}` (expected `company` or `contact`)"
            )),
        }
    }
}

/// Which way a run moves data. The initiator of a bulk run is its source system (B3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// HubSpot → Accelo (the guide's Pull / import).
    Pull,
    /// Accelo → HubSpot (the guide's Push / export).
    Push,
}

impl Direction {
    /// The system records are read from.
    pub fn source(self) -> System {
        match self {
            Direction::Pull => System::HubSpot,
            Direction::Push => System::Accelo,
        }
    }

    /// The system records are written to.
    pub fn target(self) -> System {
        self.source().other()
    }

    /// `pull` or `push`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Pull => "pull",
            Direction::Push => "push",
        }
    }

    /// The direction whose source is `system`.
    pub fn from_source(system: System) -> Direction {
        match system {
            System::HubSpot => Direction::Pull,
            System::Accelo => Direction::Push,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pull" => Ok(Direction::Pull),
            "push" => Ok(Direction::Push),
            other => Err(format!(
                "unknown direction `{other}` (expected `pull` or `push`)"
            )),
        }
    }
}

/// One record of one system, as the connectors deliver it and the planner reads it.
///
/// `doc` is the record as a JSON object:
/// - HubSpot: the flat property map (`{"name": "Acme", "domain": "acme.com", …}`), every value a
///   string; properties without a value are absent.
/// - Accelo company: the company object (`{"id": "12", "name": …, "postal_address": {…},
///   "status": {…}}`).
/// - Accelo contact: the contact object joined with its affiliation to the company and that
///   company: `{"id": …, "firstname": …, "surname": …, "affiliation": {"id": …, "email": …,
///   "phone": …, "position": …}, "company": {"id": …, "name": …}}`.
///
/// Rules address HubSpot values by property name and Accelo values by JSONPath into `doc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The system the record lives in.
    pub system: System,
    /// Company or contact.
    pub object: Object,
    /// The record's id in its system (always a string; HubSpot ids exceed 2^32).
    pub id: String,
    /// The record's content (see the type docs).
    pub doc: Map<String, Value>,
    /// Last modification, unix milliseconds, when the system reports it.
    pub updated_at: Option<i64>,
    /// For contacts: the id of the company (in the same system) the contact belongs to — HubSpot's
    /// primary associated company, Accelo's affiliation company. `None` for companies and for
    /// contacts without a company (B7).
    pub company_id: Option<String>,
}

impl Record {
    /// A record with an empty document.
    pub fn new(system: System, object: Object, id: impl Into<String>) -> Record {
        Record {
            system,
            object,
            id: id.into(),
            doc: Map::new(),
            updated_at: None,
            company_id: None,
        }
    }

    /// A top-level value of `doc` as a string: strings as they are, numbers and booleans
    /// formatted, `null`/absent/empty as `None`. Nested objects are reached through JSONPath by the
    /// compiled rules, not here.
    pub fn get(&self, key: &str) -> Option<String> {
        self.doc.get(key).and_then(value_as_string)
    }

    /// The stable reference `system:object:id` used by the sync log and `tandem log --record`.
    pub fn key(&self) -> RecordKey {
        RecordKey {
            system: self.system,
            object: self.object,
            id: self.id.clone(),
        }
    }
}

/// A scalar JSON value as a sync value: strings as they are, numbers and booleans formatted;
/// `null`, empty strings, arrays and objects are blank (`None`).
pub fn value_as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `v` as JSON text with object keys sorted at every level: equal values give equal text
/// whatever order their keys arrived in. What rule hashes and plan fingerprints are computed over.
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    if let Some(child) = m.get(*k) {
                        write(child, out);
                    }
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    write(v, &mut s);
    s
}

/// `system:object:id`, e.g. `hubspot:contact:5101`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    /// The system.
    pub system: System,
    /// The object.
    pub object: Object,
    /// The id in that system.
    pub id: String,
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.system, self.object, self.id)
    }
}

impl FromStr for RecordKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, ':');
        let (Some(sys), Some(obj), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "`{s}` is not SYSTEM:OBJECT:ID (for example `hubspot:contact:5101`)"
            ));
        };
        if id.is_empty() {
            return Err(format!("`{s}` has an empty id"));
        }
        Ok(RecordKey {
            system: sys.parse()?,
            object: obj.parse()?,
            id: id.to_string(),
        })
    }
}

/// The pairing of a HubSpot record with its Accelo twin, as kept by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Company or contact.
    pub object: Object,
    /// The HubSpot record id.
    pub hubspot_id: String,
    /// The Accelo company or contact id.
    pub accelo_id: String,
    /// For contacts: the Accelo affiliation that carries email, phone and position.
    pub affiliation_id: Option<String>,
    /// The value of each synced field on each side as it was right after the pair was last
    /// synced, keyed `hubspot:<property>` / `accelo:<path>` (`accelo:affiliation.email`,
    /// `accelo:status`); `""` = blank, an absent key = not known. Lets the planner tell which
    /// side changed since then (`crate::plan` documents the keys).
    pub last_synced: BTreeMap<String, String>,
}

impl Link {
    /// The linked id on `system`'s side.
    pub fn id_on(&self, system: System) -> &str {
        match system {
            System::HubSpot => &self.hubspot_id,
            System::Accelo => &self.accelo_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_key_round_trips() {
        let k: RecordKey = "hubspot:contact:5101".parse().unwrap();
        assert_eq!(k.system, System::HubSpot);
        assert_eq!(k.object, Object::Contact);
        assert_eq!(k.to_string(), "hubspot:contact:5101");
        assert!("hubspot:contact".parse::<RecordKey>().is_err());
        assert!("jira:contact:1".parse::<RecordKey>().is_err());
        assert!("accelo:deal:1".parse::<RecordKey>().is_err());
    }

    #[test]
    fn blank_values_are_none() {
        let mut r = Record::new(System::Accelo, Object::Company, "1");
        r.doc.insert("a".into(), Value::String(String::new()));
        r.doc.insert("b".into(), Value::Null);
        r.doc.insert("c".into(), serde_json::json!(45));
        r.doc.insert("d".into(), serde_json::json!("x"));
        assert_eq!(r.get("a"), None);
        assert_eq!(r.get("b"), None);
        assert_eq!(r.get("missing"), None);
        assert_eq!(r.get("c").as_deref(), Some("45"));
        assert_eq!(r.get("d").as_deref(), Some("x"));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = serde_json::json!({"b": [1, {"y": 2, "x": "é"}], "a": null});
        let b = serde_json::json!({"a": null, "b": [1, {"x": "é", "y": 2}]});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#);
    }

    #[test]
    fn direction_sources() {
        assert_eq!(Direction::Pull.source(), System::HubSpot);
        assert_eq!(Direction::Pull.target(), System::Accelo);
        assert_eq!(Direction::from_source(System::Accelo), Direction::Push);
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
    /// Link to an existing target record found by a dedup key, applying `changes`.
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

    /// The word people read for it (`unchanged` for a no-op; the others as [`Op::as_str`]).
    pub fn label(self) -> &'static str {
        match self {
            Op::Noop => "unchanged",
            other => other.as_str(),
        }
    }
}
