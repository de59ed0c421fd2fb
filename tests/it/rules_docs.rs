//! docs/rules.md stays true: it lists every diagnostic code and helper, every Rhai expression
//! in its YAML examples compiles (and passes the unknown-function probe), every property name of
//! `schemas/rules.schema.json` and `schemas/tandem.schema.json` is used by one of its YAML
//! examples (rule-file examples for the one, `tandem.yaml` examples for the other), and its
//! complete `tandem.yaml` example is valid.

use serde_json::Value;
use tandem_core::expr::{Expr, RecordValue, Vars};
use tandem_core::model::{Object, System};
use tandem_core::rules::Code;
use tandem_core::rules::yaml;

fn docs() -> String {
    std::fs::read_to_string("docs/rules.md").unwrap()
}

#[test]
fn every_code_and_helper_is_documented() {
    let d = docs();
    for c in Code::ALL {
        assert!(
            d.contains(&format!("| `{}` |", c.as_str())),
            "{c} missing from docs/rules.md"
        );
    }
    for h in [
        "domain",
        "normalize_name",
        "normalise_name",
        "email",
        "digits",
        "lower",
        "upper",
        "trim",
        "url",
        "first",
        "blank",
        "present",
    ] {
        assert!(
            d.contains(&format!("`{h}(")),
            "helper {h} missing from docs/rules.md"
        );
    }
}

fn yaml_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_start()) {
            (None, "```yaml") => cur = Some(String::new()),
            (Some(_), "```") => out.push(cur.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Collects (vars, source) of every expression in a rule-file fragment.
fn expressions(v: &Value, parent: &str, out: &mut Vec<(Vars, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (parent, k.as_str(), child) {
                    ("criteria", "pull" | "push", Value::String(s)) => {
                        out.push((Vars::Record, s.clone()))
                    }
                    ("transform", "pull" | "push", Value::String(s)) => {
                        out.push((Vars::RecordAndValue, s.clone()))
                    }
                    ("dedup", "hubspot" | "accelo", Value::String(s)) => {
                        out.push((Vars::Record, s.clone()))
                    }
                    _ => expressions(child, k, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| expressions(x, parent, out)),
        _ => {}
    }
}

#[test]
fn every_expression_in_the_examples_compiles() {
    let props: Vec<String> = [
        "name",
        "domain",
        "website",
        "lifecyclestage",
        "hubspot_owner_id",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sample = RecordValue::sample(System::HubSpot, Object::Company, &props);
    let mut found = 0;
    for block in yaml_blocks(&docs()) {
        let doc = yaml::parse(&block);
        let Some(value) = doc.value else { continue };
        let mut exprs = Vec::new();
        expressions(&value, "", &mut exprs);
        for (vars, src) in exprs {
            found += 1;
            let e = Expr::compile(&src, vars).unwrap_or_else(|e| panic!("{src:?}: {e}"));
            assert!(e.probe_functions(&sample).is_none(), "{src:?}");
        }
    }
    assert!(
        found >= 10,
        "only {found} expressions found in docs/rules.md"
    );
}

/// Every property name declared anywhere in a JSON Schema (under any `properties`).
fn schema_property_names(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            m.values().for_each(|c| schema_property_names(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| schema_property_names(c, out)),
        _ => {}
    }
}

/// Every mapping key in a YAML example, at any depth.
fn keys(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            out.extend(m.keys().cloned());
            m.values().for_each(|c| keys(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| keys(c, out)),
        _ => {}
    }
}

const CONFIG_TOP: &[&str] = &[
    "hubspot", "accelo", "store", "notify", "server", "sync", "console",
];

#[test]
fn every_schema_property_has_a_yaml_example() {
    // Examples are told apart by their top level: a mapping of config sections is a
    // `tandem.yaml` example, anything else a rule-file example.
    let mut config_keys = std::collections::BTreeSet::new();
    let mut rule_keys = std::collections::BTreeSet::new();
    for block in yaml_blocks(&docs()) {
        let doc = yaml::parse(&block);
        assert!(doc.errors.is_empty(), "{:?} in\n{block}", doc.errors);
        let Some(value) = doc.value else { continue };
        let is_config = value
            .as_object()
            .is_some_and(|m| m.keys().all(|k| CONFIG_TOP.contains(&k.as_str())));
        keys(
            &value,
            if is_config {
                &mut config_keys
            } else {
                &mut rule_keys
            },
        );
    }
    for (schema, found) in [
        ("schemas/rules.schema.json", &rule_keys),
        ("schemas/tandem.schema.json", &config_keys),
    ] {
        let json: Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
        let mut names = std::collections::BTreeSet::new();
        schema_property_names(&json, &mut names);
        assert!(names.len() > 20, "{schema}: only {names:?}");
        let missing: Vec<&String> = names.iter().filter(|n| !found.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{schema}: no ```yaml example in docs/rules.md uses {missing:?}"
        );
    }
}

#[test]
fn the_complete_config_example_is_valid() {
    let blocks = yaml_blocks(&docs());
    let config = blocks
        .iter()
        .find(|b| b.contains("$schema=../schemas/tandem.schema.json"))
        .unwrap();
    let checked = tandem_core::rules::check_sources(
        Some(&tandem_core::rules::Source {
            name: "tandem.yaml".into(),
            text: config.as_str().into(),
        }),
        &[],
        "rules",
    );
    let problems: Vec<String> = checked
        .report
        .diagnostics()
        .iter()
        .filter(|d| d.file == "tandem.yaml")
        .map(|d| format!("{} {}", d.code, d.message))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
}
