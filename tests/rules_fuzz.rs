//! No input makes `tandem check` panic: arbitrary text, random YAML documents built from the
//! rule-file vocabulary (with hostile Rhai and JSONPath scalars), and random mutations of the
//! shipped files, as rule files and as config.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value};
use tandem::rules::{Source, check_sources};

fn src(name: &str, text: &str) -> Source {
    Source {
        name: name.into(),
        text: Arc::from(text),
    }
}

/// Checks `text` as a rule file (next to a valid config) and as a config; must not panic.
fn check_both(text: &str) {
    let config = src(
        "tandem.yaml",
        include_str!("fixtures/rules/valid/tandem.yaml"),
    );
    let checked = check_sources(Some(&config), &[src("fuzz.yaml", text)], "rules");
    // Every diagnostic renders, in both forms.
    let _ = checked.report.render_human(false);
    let _ = checked.report.to_json();
    let checked = check_sources(Some(&src("tandem.yaml", text)), &[], "rules");
    let _ = checked.report.render_human(false);
}

const KEYS: &[&str] = &[
    "object",
    "requires_company",
    "triggers",
    "custom_properties",
    "criteria",
    "dedup",
    "fields",
    "status",
    "accelo_statuses",
    "tests",
    "name",
    "hubspot",
    "accelo",
    "direction",
    "transform",
    "pull",
    "push",
    "precedence",
    "blank",
    "type",
    "options",
    "read_only",
    "id",
    "values",
    "company",
    "links",
    "expect",
    "op",
    "source",
    "target",
    "changes",
    "reason",
    "bypass_criteria",
    "initiator",
    "url",
    "token_env",
    "oauth",
    "store",
    "sync",
    "server",
    "listen",
    "notify",
    "email",
    "to",
    "from",
    "guardrails",
    "max_share",
];

const SCALARS: &[&str] = &[
    "company",
    "contact",
    "both",
    "pull",
    "push",
    "none",
    "keep",
    "clear",
    "initiator",
    "hubspot",
    "accelo",
    "create",
    "update",
    "link",
    "noop",
    "skip",
    "name",
    "lifecyclestage",
    "created",
    "$.name",
    "$.affiliation.email",
    "$..x",
    "$[",
    "$.status",
    "$.postal_address",
    "true",
    "record.name",
    "lower(value)",
    "loop { }",
    "let s = \"x\"; loop { s += s }",
    "fn f(x) { f(x) } f(1)",
    "eval(\"1\")",
    "import \"x\" as y;",
    "record.",
    "value +* 1",
    "first(record.a, record.b, record.c)",
    "domain(value) ?? \"\"",
    "\u{0}",
    "é",
    "",
    "ÿ\u{202e}",
    "{{",
    "]]",
    "Active",
    "Prospect",
    "lead",
    "customer",
    "1",
    "-1",
    "99999999999999999999999",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::sample::select(SCALARS).prop_map(|s| Value::String(s.to_string())),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |kv| {
                    let mut m = Map::new();
                    for (k, v) in kv {
                        m.insert(k.to_string(), v);
                    }
                    Value::Object(m)
                }
            ),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check_both(&text);
    }

    #[test]
    fn arbitrary_yaml_documents_never_panic(mut doc in tree(), object in proptest::sample::select(&["company", "contact", "x"])) {
        if let Value::Object(m) = &mut doc {
            m.insert("object".into(), Value::String(object.to_string()));
        }
        // JSON is YAML: flow style.
        check_both(&serde_json::to_string(&doc).unwrap());
        // And as block YAML through a simple emitter.
        check_both(&to_block_yaml(&doc, 0));
    }

    #[test]
    fn mutated_shipped_files_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..8, "\\PC{0,6}"), 1..6),
    ) {
        let base = [
            include_str!("../rules/companies.yaml"),
            include_str!("../rules/contacts.yaml"),
            include_str!("../rules/tandem.yaml"),
        ][which];
        let mut text = base.to_string();
        for (at, del, ins) in edits {
            let mut i = at.index(text.len().max(1));
            while !text.is_char_boundary(i) { i -= 1; }
            let mut j = (i + del).min(text.len());
            while !text.is_char_boundary(j) { j += 1; }
            text.replace_range(i..j, &ins);
        }
        check_both(&text);
    }
}

fn to_block_yaml(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| match v {
                Value::Object(c) if !c.is_empty() => {
                    format!("{pad}{k}:\n{}", to_block_yaml(v, indent + 2))
                }
                Value::Array(a) if !a.is_empty() => {
                    format!("{pad}{k}:\n{}", to_block_yaml(v, indent + 2))
                }
                other => format!("{pad}{k}: {}\n", serde_json::to_string(other).unwrap()),
            })
            .collect(),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|v| match v {
                Value::Object(c) if !c.is_empty() => {
                    let inner = to_block_yaml(v, indent + 2);
                    format!("{pad}- {}", inner.trim_start())
                }
                other => format!("{pad}- {}\n", serde_json::to_string(other).unwrap()),
            })
            .collect(),
        other => format!("{pad}{}\n", serde_json::to_string(other).unwrap()),
    }
}
