//! Checking a rule file's own test cases: their records, links and expectations against the
//! rules of every object.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::file::FileState;
use crate::model::accelo::{self, accelo_field};
use crate::model::{Direction, Link, Object, Record, System};
use crate::rules::catalog::{HubSpotCatalog, suggest};
use crate::rules::diag::{Code, Report};
use crate::rules::raw::{self};
use crate::rules::set::{Expected, ObjectRules, TestCase};
use crate::rules::yaml::push_pointer;

impl FileState {
    pub(super) fn check_test(
        &self,
        i: usize,
        t: raw::TestCase,
        objects: &BTreeMap<Object, ObjectRules>,
        report: &mut Report,
    ) -> Option<TestCase> {
        let base = format!("/tests/{i}");
        let direction: Direction = t.direction.into();
        let mut ok = true;
        let mut records = |list: &[raw::TestRecord], system: System, key: &str| -> Vec<Record> {
            let mut out = Vec::new();
            for (j, r) in list.iter().enumerate() {
                let object: Object = r.object.map_or(self.object, Into::into);
                let rptr = format!("{base}/{key}/{j}/values");
                let mut doc = Map::new();
                for (k, v) in &r.values {
                    let vptr = push_pointer(&rptr, k);
                    match self.test_value(system, object, k, v, objects, &vptr, report) {
                        Some(Some(v)) => {
                            doc.insert(k.clone(), v);
                        }
                        Some(None) => {}
                        None => ok = false,
                    }
                }
                out.push(Record {
                    system,
                    object,
                    id: r.id.0.clone(),
                    doc,
                    updated_at: None,
                    company_id: r.company.as_ref().map(|c| c.0.clone()),
                });
            }
            out
        };
        let hubspot = records(&t.hubspot, System::HubSpot, "hubspot");
        let accelo = records(&t.accelo, System::Accelo, "accelo");
        let links: Vec<Link> = t
            .links
            .iter()
            .map(|l| Link {
                object: l.object.map_or(self.object, Into::into),
                hubspot_id: l.hubspot.0.clone(),
                accelo_id: l.accelo.0.clone(),
                affiliation_id: None,
                last_synced: BTreeMap::new(),
            })
            .collect();
        let sources = match direction.source() {
            System::HubSpot => &hubspot,
            System::Accelo => &accelo,
        };
        let mut expect = Vec::new();
        for (j, e) in t.expect.iter().enumerate() {
            let eptr = format!("{base}/expect/{j}");
            let object: Object = e.object.map_or(self.object, Into::into);
            if !sources
                .iter()
                .any(|r| r.object == object && r.id == e.source.0)
            {
                ok = false;
                report.push(
                    self.diag(
                        Code::UnknownTestRecord,
                        self.val(&format!("{eptr}/source")),
                        format!(
                            "the case has no {} {object} `{}` to sync",
                            direction.source(),
                            e.source.0
                        ),
                    )
                    .help(format!(
                        "a `{direction}` case syncs its `{}` records",
                        direction.source()
                    )),
                );
            }
            let mut changes = None;
            if let Some(c) = &e.changes {
                let known = objects
                    .get(&object)
                    .map(|o| o.target_fields(direction))
                    .unwrap_or_default();
                let mut map = BTreeMap::new();
                for (field, v) in c {
                    if objects.contains_key(&object) && !known.contains(field) {
                        ok = false;
                        let cptr = push_pointer(&format!("{eptr}/changes"), field);
                        let mut d = self
                            .diag(
                                Code::UnknownTestField,
                                self.key(&cptr),
                                format!(
                                    "a `{direction}` of {} writes no {} field `{field}`",
                                    object.plural(),
                                    direction.target(),
                                ),
                            )
                            .label("not written by any mapping");
                        if let Some(s) = suggest(field, known.iter().map(String::as_str)) {
                            d = d.help(format!("did you mean `{s}`?"));
                        }
                        report.push(d);
                    }
                    map.insert(field.clone(), v.0.clone());
                }
                changes = Some(map);
            }
            expect.push(Expected {
                object,
                op: e.op.into(),
                source: e.source.0.clone(),
                target: e.target.as_ref().map(|t| t.0.clone()),
                changes,
                reason: e.reason.clone(),
            });
        }
        ok.then(|| TestCase {
            file: self.name.clone(),
            name: t.name.clone(),
            object: self.object,
            direction,
            initiator: t.initiator.map_or(direction.source(), Into::into),
            bypass_criteria: t.bypass_criteria,
            hubspot,
            accelo,
            links,
            expect,
        })
    }

    /// One value of a test record. `None` = reported error; `Some(None)` = blank (dropped).
    #[allow(
        clippy::too_many_arguments,
        reason = "a test value with where it is and what it must match"
    )]
    pub(super) fn test_value(
        &self,
        system: System,
        object: Object,
        key: &str,
        v: &Value,
        objects: &BTreeMap<Object, ObjectRules>,
        ptr: &str,
        report: &mut Report,
    ) -> Option<Option<Value>> {
        match system {
            System::HubSpot => {
                let known = match objects.get(&object) {
                    Some(o) => o.properties.contains_key(key),
                    None => HubSpotCatalog::standard(object).get(key).is_some(),
                };
                if !known {
                    let cat = objects.get(&object).map_or_else(
                        || HubSpotCatalog::standard(object),
                        |o| {
                            let mut c = HubSpotCatalog::standard(object);
                            for p in o.properties.values() {
                                c.declare(p.clone());
                            }
                            c
                        },
                    );
                    let mut d = self
                        .diag(
                            Code::UnknownTestField,
                            self.key(ptr),
                            format!("unknown HubSpot {object} property `{key}`"),
                        )
                        .label("not a known property");
                    if let Some(s) = suggest(key, cat.names()) {
                        d = d.help(format!("did you mean `{s}`?"));
                    }
                    report.push(d);
                    return None;
                }
                match v {
                    Value::Null => Some(None),
                    Value::String(s) => Some(Some(Value::String(s.clone()))),
                    Value::Number(n) => Some(Some(Value::String(n.to_string()))),
                    Value::Bool(b) => Some(Some(Value::String(b.to_string()))),
                    _ => {
                        report.push(self.diag(
                            Code::WrongType,
                            self.val(ptr),
                            "HubSpot values are plain text, not lists or mappings",
                        ));
                        None
                    }
                }
            }
            System::Accelo => self.accelo_value(object, key, v, ptr, report),
        }
    }

    pub(super) fn accelo_value(
        &self,
        object: Object,
        path: &str,
        v: &Value,
        ptr: &str,
        report: &mut Report,
    ) -> Option<Option<Value>> {
        let Some(field) = accelo_field(object, path) else {
            let mut d = self
                .diag(
                    Code::UnknownTestField,
                    self.key(ptr),
                    format!("unknown Accelo {object} field `{path}`"),
                )
                .label("not in the Accelo record");
            if let Some(s) = suggest(path, accelo::accelo_fields(object).iter().map(|f| f.path)) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            report.push(d);
            return None;
        };
        match (v, field.object) {
            (Value::Null, _) => Some(None),
            (Value::Object(m), true) => {
                let mut out = Map::new();
                let mut ok = true;
                for (k, child) in m {
                    let cptr = push_pointer(ptr, k);
                    match self.accelo_value(object, &format!("{path}.{k}"), child, &cptr, report) {
                        Some(Some(c)) => {
                            out.insert(k.clone(), c);
                        }
                        Some(None) => {}
                        None => ok = false,
                    }
                }
                ok.then_some(Some(Value::Object(out)))
            }
            (Value::String(s), false) => Some(Some(Value::String(s.clone()))),
            (Value::Number(n), false) => Some(Some(Value::String(n.to_string()))),
            (Value::Bool(b), false) => Some(Some(Value::String(b.to_string()))),
            (_, true) => {
                report.push(self.diag(
                    Code::WrongType,
                    self.val(ptr),
                    format!("Accelo `{path}` is a mapping of fields"),
                ));
                None
            }
            (_, false) => {
                report.push(self.diag(
                    Code::WrongType,
                    self.val(ptr),
                    format!("Accelo `{path}` is a plain value, not a list or mapping"),
                ));
                None
            }
        }
    }
}
