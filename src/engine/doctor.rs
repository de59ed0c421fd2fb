//! `tandem doctor`: checks a configuration against the real systems before anything runs, and
//! says for each problem what to do. Each check gives one [`Finding`]:
//! - each system is reachable and accepts the credentials;
//! - every HubSpot property the rules map exists in the portal, writable where the rules write
//!   it, of a compatible type, and — for the status property — with every value the status
//!   tables use among its options;
//! - every Accelo status the rules name exists in the deployment;
//! - the store opens (which brings its migrations up to date).
//!
//! A check that cannot run because an earlier one failed (the portal's properties when HubSpot
//! cannot be reached) says so instead of passing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::connect::{Connector, FieldInfo};
use crate::runtime::Runtime;
use tandem_core::compile::{FieldDirection, ObjectRules};
use tandem_core::model::{Object, System};
use tandem_core::rules::raw::PropertyType;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked, as a short name: `hubspot`, `accelo`, `hubspot properties`, `accelo
    /// statuses`, `store`.
    pub check: String,
    /// `ok`, `problem`, or `skipped` (could not be checked).
    pub status: &'static str,
    /// What was found, in words.
    pub message: String,
    /// What to do about it (for problems and skipped checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &str, message: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: "ok",
            message: message.into(),
            fix: None,
        }
    }

    fn problem(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: "problem",
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    fn skipped(check: &str, why: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: "skipped",
            message: why.into(),
            fix: Some("fix the problem above, then run `tandem doctor` again".into()),
        }
    }

    /// Whether this is a problem (or a check that could not run).
    pub fn is_problem(&self) -> bool {
        self.status != "ok"
    }
}

/// Runs every check.
pub async fn examine(rt: &Runtime) -> Vec<Finding> {
    let mut out = Vec::new();
    let hs = rt.connector(System::HubSpot);
    let ac = rt.connector(System::Accelo);
    let hs_ok = reachable(&mut out, "hubspot", hs.as_ref()).await;
    let ac_ok = reachable(&mut out, "accelo", ac.as_ref()).await;
    if hs_ok {
        hubspot_properties(&mut out, rt, hs.as_ref()).await;
    } else {
        out.push(Finding::skipped(
            "hubspot properties",
            "not checked: HubSpot could not be used",
        ));
    }
    if ac_ok {
        accelo_statuses(&mut out, rt, ac.as_ref()).await;
    } else {
        out.push(Finding::skipped(
            "accelo statuses",
            "not checked: Accelo could not be used",
        ));
    }
    match rt.store().await {
        Ok(store) => out.push(Finding::ok(
            "store",
            format!("{} opens and is up to date", store.location()),
        )),
        Err(e) => out.push(Finding::problem(
            "store",
            e.to_string(),
            "check `store.url` in tandem.yaml (or TANDEM_STORE) and that the database is up",
        )),
    }
    out
}

async fn reachable(out: &mut Vec<Finding>, name: &str, c: &dyn Connector) -> bool {
    match c.check().await {
        Ok(()) => {
            out.push(Finding::ok(name, "reachable, the credentials are accepted"));
            true
        }
        Err(e) => {
            let fix = if matches!(e, crate::connect::ConnectError::Credentials { .. }) {
                format!("check the {name} credentials named in tandem.yaml")
            } else {
                format!(
                    "check the {name} URL and credentials in tandem.yaml (or their TANDEM_* \
                     overrides) and that the service is up"
                )
            };
            out.push(Finding::problem(name, e.to_string(), fix));
            false
        }
    }
}

/// The HubSpot type names a rule's property type is compatible with.
fn compatible(kind: PropertyType) -> &'static [&'static str] {
    match kind {
        PropertyType::String | PropertyType::PhoneNumber => {
            &["string", "phone_number", "enumeration"]
        }
        PropertyType::Number => &["number", "string"],
        PropertyType::Date => &["date", "datetime", "string"],
        PropertyType::Datetime => &["datetime", "date", "string"],
        PropertyType::Enumeration => &["enumeration"],
        PropertyType::Bool => &["bool", "enumeration"],
    }
}

fn writes_hubspot(d: FieldDirection) -> bool {
    matches!(d, FieldDirection::Both | FieldDirection::Push)
}

async fn hubspot_properties(out: &mut Vec<Finding>, rt: &Runtime, hs: &dyn Connector) {
    let check = "hubspot properties";
    let mut problems = 0;
    let mut checked = 0;
    for rules in rt.program.objects() {
        let object = rules.object;
        let fields = match hs.fields(object).await {
            Ok(f) => f,
            Err(e) => {
                out.push(Finding::problem(
                    check,
                    format!("cannot read the portal's {object} properties: {e}"),
                    "give the HubSpot app read access to the CRM schemas",
                ));
                problems += 1;
                continue;
            }
        };
        let portal: BTreeMap<&str, &FieldInfo> =
            fields.iter().map(|f| (f.name.as_str(), f)).collect();
        for (name, writes) in mapped(rules) {
            checked += 1;
            let Some(field) = portal.get(name.as_str()) else {
                out.push(Finding::problem(
                    check,
                    format!("the rules map the {object} property `{name}`, which the portal does not have"),
                    format!(
                        "create `{name}` in HubSpot (Settings → Properties → {}) or correct the \
                         rule in {}",
                        object.plural(),
                        rules.file
                    ),
                ));
                problems += 1;
                continue;
            };
            if writes && field.read_only {
                out.push(Finding::problem(
                    check,
                    format!("the rules write the {object} property `{name}`, which is read-only in the portal"),
                    format!("make the mapping of `{name}` pull-only in {}", rules.file),
                ));
                problems += 1;
            }
            if let Some(p) = rules.properties.get(name.as_str())
                && !compatible(p.kind).contains(&field.kind.as_str())
            {
                out.push(Finding::problem(
                    check,
                    format!(
                        "the {object} property `{name}` is of type `{}` in the portal; the rules \
                         expect {:?}",
                        field.kind, p.kind
                    ),
                    format!(
                        "declare `{name}` with its portal type under custom_properties in {}",
                        rules.file
                    ),
                ));
                problems += 1;
            }
        }
        if let Some(status) = &rules.status
            && let Some(field) = portal.get(status.hubspot.as_str())
        {
            let options: BTreeSet<String> =
                field.options.iter().map(|o| o.to_lowercase()).collect();
            let used: BTreeSet<&String> = status.pull.keys().chain(status.push.values()).collect();
            for v in used {
                if !options.contains(&v.to_lowercase()) {
                    out.push(Finding::problem(
                        check,
                        format!(
                            "the status table uses `{v}` for the {object} property `{}`, which is \
                             not one of its options in the portal",
                            status.hubspot
                        ),
                        format!(
                            "add `{v}` to the property's options in HubSpot, or correct the \
                             status table in {}",
                            rules.file
                        ),
                    ));
                    problems += 1;
                }
            }
        }
    }
    if problems == 0 {
        out.push(Finding::ok(
            check,
            format!("all {checked} mapped properties exist, with compatible types and options"),
        ));
    }
}

/// The HubSpot properties the rules map, each with whether the rules write it.
fn mapped(rules: &ObjectRules) -> BTreeMap<String, bool> {
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for m in &rules.mappings {
        if m.direction == FieldDirection::None {
            continue;
        }
        let w = out.entry(m.hubspot.clone()).or_default();
        *w |= writes_hubspot(m.direction);
    }
    if let Some(s) = &rules.status {
        let w = out.entry(s.hubspot.clone()).or_default();
        *w |= writes_hubspot(s.direction);
    }
    out
}

async fn accelo_statuses(out: &mut Vec<Finding>, rt: &Runtime, ac: &dyn Connector) {
    let check = "accelo statuses";
    let mut problems = 0;
    let mut named = 0;
    for rules in rt.program.objects() {
        let object = rules.object;
        let mut wanted: BTreeSet<String> = rules.accelo_statuses.iter().cloned().collect();
        if let Some(s) = &rules.status {
            wanted.extend(s.pull.values().cloned());
            wanted.extend(s.push.keys().cloned());
        }
        if wanted.is_empty() {
            continue;
        }
        let have: BTreeSet<String> = match ac.status_titles(object).await {
            Ok(t) => t.iter().map(|t| t.trim().to_lowercase()).collect(),
            Err(e) => {
                out.push(Finding::problem(
                    check,
                    format!("cannot read the deployment's {object} statuses: {e}"),
                    "give the Accelo application read access to statuses",
                ));
                problems += 1;
                continue;
            }
        };
        for title in wanted {
            named += 1;
            if !have.contains(&title.trim().to_lowercase()) {
                out.push(Finding::problem(
                    check,
                    format!("the rules name the Accelo {object} status `{title}`, which the deployment does not have"),
                    format!(
                        "create it in Accelo (Configuration → {} → Statuses) or correct {}",
                        match object {
                            Object::Company => "Companies",
                            Object::Contact => "Contacts",
                        },
                        rules.file
                    ),
                ));
                problems += 1;
            }
        }
    }
    if problems == 0 {
        out.push(Finding::ok(
            check,
            format!("all {named} statuses the rules name exist"),
        ));
    }
}
