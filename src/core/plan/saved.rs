//! Saved plans (`tandem plan --out FILE`, applied later by `tandem apply FILE`, B18): the plan,
//! the [`Scope`] it was read for, and a fingerprint of the data it was made from, so that a plan
//! whose data changed since is refused with a list of what changed.
//!
//! The data a plan was made from is its [`Basis`]: one digest per record read (system, object,
//! id, `updated_at`, sha256 of the record's canonical content and company) and per link read
//! (sha256 of its ids and `last_synced`). The fingerprint is the sha256 of the scope, the
//! direction and the sorted basis. Everything here is pure; reading the records again is
//! `crate::snapshot`'s job.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::types::Plan;
use crate::model::{Link, Object, Record, System, canonical_json};

/// The saved-plan format this version writes and reads.
pub const FORMAT: &str = "tandem-plan/1";

/// Which records a plan is about (what is read for it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// Every company and contact of both systems (`tandem pull`, `tandem push`).
    All,
    /// One company of the direction's source and all its contacts (B8, `--company ID`).
    Company {
        /// The company's id in the direction's source system.
        id: String,
    },
    /// One contact of the direction's source, criteria bypassed (B9, `--contact ID`).
    Contact {
        /// The contact's id in the direction's source system.
        id: String,
    },
    /// One record of either system and what its sync needs (the automatic sync): the plan's
    /// direction is the one whose source is the record's system.
    Record {
        /// The record's system.
        system: System,
        /// Company or contact.
        object: Object,
        /// The record's id.
        id: String,
    },
}

impl Scope {
    /// True when the criteria are bypassed (a single contact named on the command line, B9).
    pub fn bypasses_criteria(&self) -> bool {
        matches!(self, Scope::Contact { .. })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all companies and contacts"),
            Scope::Company { id } => write!(f, "company `{id}` and its contacts"),
            Scope::Contact { id } => write!(f, "contact `{id}`"),
            Scope::Record { system, object, id } => write!(f, "{system} {object} `{id}`"),
        }
    }
}

/// The digest of one record a plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordDigest {
    /// The system.
    pub system: System,
    /// Company or contact.
    pub object: Object,
    /// The id.
    pub id: String,
    /// Last modification (unix ms), when the system reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// sha256 (hex) of the record's canonical content and company.
    pub hash: String,
}

/// The digest of one link a plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkDigest {
    /// Company or contact.
    pub object: Object,
    /// The HubSpot id.
    pub hubspot_id: String,
    /// The Accelo id.
    pub accelo_id: String,
    /// sha256 (hex) of the affiliation and the `last_synced` values.
    pub hash: String,
}

/// Everything a plan was made from, as digests (sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    /// One per record read, sorted by system, object, id.
    pub records: Vec<RecordDigest>,
    /// One per link read, sorted by object, HubSpot id, Accelo id.
    pub links: Vec<LinkDigest>,
}

impl Basis {
    /// The digests of `records` and `links`.
    pub fn of<'a>(
        records: impl IntoIterator<Item = &'a Record>,
        links: impl IntoIterator<Item = &'a Link>,
    ) -> Basis {
        let mut records: Vec<RecordDigest> = records.into_iter().map(record_digest).collect();
        records.sort_by(|a, b| {
            (a.system, a.object)
                .cmp(&(b.system, b.object))
                .then_with(|| super::planner::cmp_ids(&a.id, &b.id))
        });
        records.dedup_by(|a, b| a.system == b.system && a.object == b.object && a.id == b.id);
        let mut links: Vec<LinkDigest> = links.into_iter().map(link_digest).collect();
        links.sort();
        links.dedup();
        Basis { records, links }
    }
}

/// A plan saved for later (`tandem plan --out`). The JSON is the plan's own JSON (every key of
/// `tandem plan --json`) plus `format`, `scope`, `fingerprint` and `basis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// [`FORMAT`].
    pub format: String,
    /// What was read.
    pub scope: Scope,
    /// sha256 (hex) over the scope, the basis and the plan: see [`fingerprint`].
    pub fingerprint: String,
    /// The plan.
    #[serde(flatten)]
    pub plan: Plan,
    /// The digests the fingerprint is made of (what `tandem apply` compares).
    pub basis: Basis,
}

impl SavedPlan {
    /// Saves `plan`, made for `scope` from `basis`.
    pub fn new(plan: Plan, scope: Scope, basis: Basis) -> SavedPlan {
        SavedPlan {
            format: FORMAT.to_string(),
            fingerprint: fingerprint(&scope, &plan, &basis),
            scope,
            plan,
            basis,
        }
    }

    /// The file's text (pretty JSON, one trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads a saved plan: the error says where the text is wrong (line and column) or which
    /// format it has. Checks that the fingerprint matches the basis (a hand-edited file is
    /// refused).
    pub fn from_json(text: &str) -> Result<SavedPlan, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("not JSON (line {}, column {}): {e}", e.line(), e.column()))?;
        match v.get("format").and_then(Value::as_str) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(format!(
                    "format `{other}` is not one this version reads (`{FORMAT}`)"
                ));
            }
            None => {
                return Err(format!(
                    "no `format` key: not a saved plan (`tandem plan --out FILE` writes `{FORMAT}`)"
                ));
            }
        }
        let saved: SavedPlan =
            serde_json::from_value(v).map_err(|e| format!("not a saved plan: {e}"))?;
        let expected = fingerprint(&saved.scope, &saved.plan, &saved.basis);
        if expected != saved.fingerprint {
            return Err(
                "the fingerprint does not match the plan and its data (the file was edited)".into(),
            );
        }
        Ok(saved)
    }
}

/// sha256 (hex) over the scope, the basis and the plan, in a canonical form.
pub fn fingerprint(scope: &Scope, plan: &Plan, basis: &Basis) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update([0]);
    h.update(canonical_json(&serde_json::to_value(scope).unwrap_or(Value::Null)).as_bytes());
    h.update([0]);
    h.update(canonical_json(&serde_json::to_value(plan).unwrap_or(Value::Null)).as_bytes());
    for r in &basis.records {
        h.update([1]);
        h.update(
            format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
                r.system,
                r.object,
                r.id,
                r.updated_at.map(|t| t.to_string()).unwrap_or_default(),
                r.hash
            )
            .as_bytes(),
        );
    }
    for l in &basis.links {
        h.update([2]);
        h.update(
            format!(
                "{}\u{1f}{}\u{1f}{}\u{1f}{}",
                l.object, l.hubspot_id, l.accelo_id, l.hash
            )
            .as_bytes(),
        );
    }
    hex::encode(h.finalize())
}

/// What differs between the basis a plan was made from and the current one, one line each:
/// records changed, new or gone, links changed, new or gone. Empty when nothing changed.
/// Modification times are shown to the millisecond when the seconds alone would look the same.
pub fn diff(then: &Basis, now: &Basis) -> Vec<String> {
    diff_explained(then, now, None)
}

/// [`diff`], and for each record that changed, what the plan does differently for it now:
/// `plans` = (the saved plan, a plan made from the data as it is now). A field the saved plan
/// would write that now plans another value reads `name: "Acme" when planned, now "Acme Ltd"`.
pub fn diff_explained(then: &Basis, now: &Basis, plans: Option<(&Plan, &Plan)>) -> Vec<String> {
    let mut out = Vec::new();
    let key = |r: &RecordDigest| (r.system, r.object, r.id.clone());
    let old: BTreeMap<_, &RecordDigest> = then.records.iter().map(|r| (key(r), r)).collect();
    let new: BTreeMap<_, &RecordDigest> = now.records.iter().map(|r| (key(r), r)).collect();
    for (k, r) in &old {
        match new.get(k) {
            None => out.push(format!(
                "{} {} `{}` is no longer there (deleted, or out of scope)",
                r.system, r.object, r.id
            )),
            Some(n) if n.hash != r.hash || n.updated_at != r.updated_at => {
                let when = match (r.updated_at, n.updated_at) {
                    (Some(a), Some(b)) if a != b => {
                        let (a, b) = times(a, b);
                        format!(" (modified {a} → {b})")
                    }
                    (Some(_), Some(_)) => " (same modification time, other content)".to_string(),
                    _ => String::new(),
                };
                let mut line = format!("{} {} `{}` changed{when}", r.system, r.object, r.id);
                if let Some((saved, current)) = plans {
                    let what = explain(saved, current, r.system, r.object, &r.id);
                    if !what.is_empty() {
                        line.push_str(": ");
                        line.push_str(&what.join("; "));
                    }
                }
                out.push(line);
            }
            Some(_) => {}
        }
    }
    for (k, r) in &new {
        if !old.contains_key(k) {
            out.push(format!(
                "{} {} `{}` is new{}",
                r.system,
                r.object,
                r.id,
                r.updated_at
                    .map(|t| format!(" (modified {})", time(t, false)))
                    .unwrap_or_default()
            ));
        }
    }
    let lkey = |l: &LinkDigest| (l.object, l.hubspot_id.clone(), l.accelo_id.clone());
    let old: BTreeMap<_, &LinkDigest> = then.links.iter().map(|l| (lkey(l), l)).collect();
    let new: BTreeMap<_, &LinkDigest> = now.links.iter().map(|l| (lkey(l), l)).collect();
    for (k, l) in &old {
        match new.get(k) {
            None => out.push(format!(
                "the link of {} hubspot `{}` ↔ accelo `{}` is gone",
                l.object, l.hubspot_id, l.accelo_id
            )),
            Some(n) if n.hash != l.hash => out.push(format!(
                "the link of {} hubspot `{}` ↔ accelo `{}` changed (synced since)",
                l.object, l.hubspot_id, l.accelo_id
            )),
            Some(_) => {}
        }
    }
    for (k, l) in &new {
        if !old.contains_key(k) {
            out.push(format!(
                "{} hubspot `{}` ↔ accelo `{}` was linked since",
                l.object, l.hubspot_id, l.accelo_id
            ));
        }
    }
    out
}

/// What the plan now does differently for one record: its decision, and each field whose value
/// (the record's own: the change's `to` when it is the source, `from` when it is the target)
/// differs between the two plans.
fn explain(saved: &Plan, current: &Plan, system: System, object: Object, id: &str) -> Vec<String> {
    let find = |p: &'_ Plan| {
        p.actions
            .iter()
            .find(|a| {
                a.object == object
                    && ((a.source.system == system && a.source.id.as_deref() == Some(id))
                        || (a.target.system == system && a.target.id.as_deref() == Some(id)))
            })
            .cloned()
    };
    let (Some(then), Some(now)) = (find(saved), find(current)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if then.op != now.op {
        out.push(format!(
            "planned: {}, now: {}",
            then.op.label(),
            now.op.label()
        ));
    }
    let is_source = then.source.system == system;
    let value = |a: &crate::plan::Action, field: &str| {
        a.changes.iter().find(|c| c.field == field).map(|c| {
            if is_source {
                c.to.clone()
            } else {
                c.from.clone()
            }
        })
    };
    let mut fields: Vec<&str> = then.changes.iter().map(|c| c.field.as_str()).collect();
    for c in &now.changes {
        if !fields.contains(&c.field.as_str()) {
            fields.push(&c.field);
        }
    }
    for field in fields {
        let show = |v: &Option<String>| match v {
            Some(s) => Value::String(s.clone()).to_string(),
            None => "(blank)".to_string(),
        };
        match (value(&then, field), value(&now, field)) {
            (Some(a), Some(b)) if a != b => out.push(format!(
                "{field}: {} when planned, now {}",
                show(&a),
                show(&b)
            )),
            (Some(_), None) => out.push(format!("{field}: nothing to write any more")),
            (None, Some(b)) => {
                let to = now.changes.iter().find(|c| c.field == field).map(|c| &c.to);
                out.push(format!(
                    "{field}: now differs, would be set to {}",
                    show(to.unwrap_or(&b))
                ));
            }
            _ => {}
        }
    }
    out
}

/// Two modification times as shown side by side: to the second, or to the millisecond when the
/// seconds alone would look the same.
fn times(a: i64, b: i64) -> (String, String) {
    let precise = a.div_euclid(1000) == b.div_euclid(1000);
    (time(a, precise), time(b, precise))
}

fn time(ms: i64, millis: bool) -> String {
    let format = if millis {
        "%Y-%m-%dT%H:%M:%S%.3fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format(format).to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn record_digest(r: &Record) -> RecordDigest {
    let mut h = Sha256::new();
    h.update(canonical_json(&Value::Object(r.doc.clone())).as_bytes());
    h.update([0]);
    h.update(r.company_id.as_deref().unwrap_or("").as_bytes());
    RecordDigest {
        system: r.system,
        object: r.object,
        id: r.id.clone(),
        updated_at: r.updated_at,
        hash: hex::encode(h.finalize()),
    }
}

fn link_digest(l: &Link) -> LinkDigest {
    let mut h = Sha256::new();
    h.update(l.affiliation_id.as_deref().unwrap_or("").as_bytes());
    for (k, v) in &l.last_synced {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    LinkDigest {
        object: l.object,
        hubspot_id: l.hubspot_id.clone(),
        accelo_id: l.accelo_id.clone(),
        hash: hex::encode(h.finalize()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Direction;
    use crate::plan::{Mode, Summary};
    use serde_json::json;

    fn rec(system: System, id: &str, doc: Value, at: i64) -> Record {
        let mut r = Record::new(system, Object::Company, id);
        r.doc = doc.as_object().cloned().unwrap_or_default();
        r.updated_at = Some(at);
        r
    }

    fn plan() -> Plan {
        Plan {
            direction: Direction::Pull,
            initiator: System::HubSpot,
            rules_hash: "h".into(),
            mode: Mode::Bulk,
            summary: Summary::default(),
            actions: vec![],
        }
    }

    #[test]
    fn the_fingerprint_ignores_order_and_key_order_but_not_content() {
        let a = rec(
            System::HubSpot,
            "1",
            json!({"name": "A", "domain": "a.com"}),
            5,
        );
        let a2 = rec(
            System::HubSpot,
            "1",
            json!({"domain": "a.com", "name": "A"}),
            5,
        );
        let b = rec(System::Accelo, "2", json!({"name": "B"}), 6);
        let one = Basis::of([&a, &b], []);
        let two = Basis::of([&b, &a2], []);
        assert_eq!(one, two);
        let f = |basis: &Basis| fingerprint(&Scope::All, &plan(), basis);
        assert_eq!(f(&one), f(&two));
        let changed = rec(
            System::HubSpot,
            "1",
            json!({"name": "A2", "domain": "a.com"}),
            5,
        );
        let three = Basis::of([&changed, &b], []);
        assert_ne!(f(&one), f(&three));
        assert_eq!(
            diff(&one, &three),
            ["hubspot company `1` changed (same modification time, other content)"]
        );
        let mut push = plan();
        push.direction = Direction::Push;
        assert_ne!(
            fingerprint(&Scope::All, &push, &one),
            f(&one),
            "the plan is part of it"
        );
    }

    #[test]
    fn diff_shows_times_that_differ_and_what_the_plan_does_differently() {
        // Two edits within one second: the seconds alone would show the same time twice.
        let a = rec(
            System::HubSpot,
            "1",
            json!({"name": "A"}),
            1_700_000_000_120,
        );
        let b = rec(
            System::HubSpot,
            "1",
            json!({"name": "B"}),
            1_700_000_000_874,
        );
        let then = Basis::of([&a], []);
        let now = Basis::of([&b], []);
        assert_eq!(
            diff(&then, &now),
            [
                "hubspot company `1` changed (modified 2023-11-14T22:13:20.120Z → 2023-11-14T22:13:20.874Z)"
            ]
        );
        let action = |to: &str| crate::plan::Action {
            seq: 1,
            object: Object::Company,
            op: crate::model::Op::Create,
            source: crate::plan::RecordRef {
                system: System::HubSpot,
                id: Some("1".into()),
            },
            target: crate::plan::RecordRef {
                system: System::Accelo,
                id: None,
            },
            changes: vec![crate::plan::Change {
                field: "name".into(),
                from: None,
                to: Some(to.into()),
            }],
            reason: "not linked, no duplicate found".into(),
            depends_on: None,
            last_synced: None,
            target_company_id: None,
            affiliation_id: None,
            replaces_twin: None,
        };
        let mut saved = plan();
        saved.actions.push(action("A"));
        let mut current = plan();
        current.actions.push(action("B"));
        assert_eq!(
            diff_explained(&then, &now, Some((&saved, &current))),
            [
                "hubspot company `1` changed (modified 2023-11-14T22:13:20.120Z → \
                 2023-11-14T22:13:20.874Z): name: \"A\" when planned, now \"B\""
            ]
        );
    }

    #[test]
    fn diff_names_new_gone_and_relinked_records() {
        let a = rec(
            System::HubSpot,
            "1",
            json!({"name": "A"}),
            1_700_000_000_000,
        );
        let a_later = rec(
            System::HubSpot,
            "1",
            json!({"name": "A"}),
            1_700_000_060_000,
        );
        let b = rec(System::Accelo, "2", json!({"name": "B"}), 6);
        let link = Link {
            object: Object::Company,
            hubspot_id: "1".into(),
            accelo_id: "2".into(),
            affiliation_id: None,
            last_synced: BTreeMap::new(),
        };
        let then = Basis::of([&a, &b], []);
        let now = Basis::of([&a_later], [&link]);
        assert_eq!(
            diff(&then, &now),
            [
                "hubspot company `1` changed (modified 2023-11-14T22:13:20Z → 2023-11-14T22:14:20Z)",
                "accelo company `2` is no longer there (deleted, or out of scope)",
                "company hubspot `1` ↔ accelo `2` was linked since",
            ]
        );
        assert!(diff(&now, &now).is_empty());
    }

    #[test]
    fn a_saved_plan_round_trips_and_refuses_edits() {
        let a = rec(System::HubSpot, "1", json!({"name": "A"}), 1);
        let saved = SavedPlan::new(
            plan(),
            Scope::Company { id: "1".into() },
            Basis::of([&a], []),
        );
        let text = saved.to_json();
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        // The plan's own keys are all there, at the top level.
        for k in ["direction", "initiator", "rules_hash", "summary", "actions"] {
            assert!(v.get(k).is_some(), "{k} missing: {text}");
        }
        assert_eq!(v["scope"], json!({"kind": "company", "id": "1"}));
        assert_eq!(SavedPlan::from_json(&text), Ok(saved));
        let edited = text.replace("\"rules_hash\": \"h\"", "\"rules_hash\": \"x\"");
        assert_ne!(edited, text);
        let forged = text.replacen("\"id\": \"1\"", "\"id\": \"9\"", 1);
        assert_ne!(forged, text);
        for bad in [edited, forged] {
            assert_eq!(
                SavedPlan::from_json(&bad),
                Err(
                    "the fingerprint does not match the plan and its data (the file was edited)"
                        .into()
                )
            );
        }
        let e = SavedPlan::from_json("{\"format\": \"tandem-plan/9\"}");
        assert!(e.is_err_and(|e| e.contains("`tandem-plan/9`")));
        let e = SavedPlan::from_json("{\n  \"a\": ");
        assert!(e.is_err_and(|e| e.starts_with("not JSON (line 2")));
    }
}
