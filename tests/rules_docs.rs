//! docs/rules.md stays true: it lists every diagnostic code and helper, and every Rhai
//! expression in its YAML examples compiles (and passes the unknown-function probe).

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use serde_json::Value;
use tandem::expr::{Expr, RecordValue, Vars};
use tandem::model::{Object, System};
use tandem::rules::Code;
use tandem::rules::yaml;

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
