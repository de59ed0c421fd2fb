//! The hostile-Rhai campaign: each of a list of hostile patterns (endless loops, recursion,
//! huge strings, arrays and maps, print floods, overflow, division by zero, thrown errors, …)
//! is put into the shipped company rules' pull criteria and, separately, into the name's pull
//! transform, where it runs for one record only. That record must fail alone, with the error as
//! its reason; every other record must be planned exactly as with the pattern left out.

use std::path::Path;

use serde_json::json;
use tandem_core::compile::load;
use tandem_core::model::{Direction, Object, Record, System};
use tandem_core::plan::{Op, Plan, PlanInput, plan};
use tandem_core::rules::Paths;

/// Hostile statements, each run when the record's name is `Hostile` (7 characters). Functions
/// (Rhai allows them only at the top) go before ` @ `.
const PATTERNS: &[&str] = &[
    "loop { }",
    "while true { }",
    "let n = 0; loop { n += 1; }",
    "fn f(x) { f(x + 1) } @ f(1);",
    "fn f(x) { if x > 0 { f(x - 1) + f(x - 1) } else { 1 } } @ f(40);",
    "fn f(x) { g(x) } fn g(x) { f(x) } @ f(1);",
    "let s = \"x\"; loop { s += s; }",
    "let s = \"xxxxxxxx\"; loop { s = s.replace(\"x\", \"xx\"); }",
    "let s = \"x\"; s.pad(100000000, \"y\");",
    "let a = []; loop { a.push(1); }",
    "let a = [1]; loop { a += a; }",
    "let a = [1]; loop { a = [a, a]; }",
    "let m = #{}; let i = 0; loop { m[\"k\" + i] = i; i += 1; }",
    "loop { print(\"flood\"); }",
    "loop { debug(\"flood\"); }",
    "let big = 9223372036854775807; big + record.name.len();",
    "let small = -9223372036854775807; small - record.name.len() - 5;",
    "let big = 9223372036854775807; big * record.name.len();",
    "1 / (record.name.len() - 7);",
    "10 % (record.name.len() - 7);",
    "throw \"hostile\";",
    "[1, 2, 3][record.name.len()];",
    "timestamp();",
    "parse_int(record.name);",
    "record.name.len().len();",
];

/// (functions, statements) of a pattern.
fn split(p: &str) -> (&str, &str) {
    p.split_once(" @ ").unwrap_or(("", p))
}

fn rules_dir(criteria: Option<&str>, transform: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new("rules");
    std::fs::copy(shipped.join("tandem.yaml"), dir.path().join("tandem.yaml")).unwrap();
    std::fs::copy(
        shipped.join("contacts.yaml"),
        dir.path().join("contacts.yaml"),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(shipped.join("companies.yaml")).unwrap();
    let criteria_line = "  pull: 'present(record.name) && record.lifecyclestage != \"subscriber\"'";
    assert!(text.contains(criteria_line));
    if let Some(p) = criteria {
        let (f, p) = split(p);
        text = text.replacen(
            criteria_line,
            &format!(
                "  pull: |\n    {f}\n    if record.name == \"Hostile\" {{\n      {p}\n    }}\n    \
                 present(record.name) && record.lifecyclestage != \"subscriber\""
            ),
            1,
        );
    }
    let transform_line = "      pull: 'trim(value)'";
    assert!(text.contains(transform_line));
    if let Some(p) = transform {
        let (f, p) = split(p);
        text = text.replacen(
            transform_line,
            &format!(
                "      pull: |\n        {f}\n        if value == \"Hostile\" {{\n          {p}\n        }}\n        \
                 trim(value)"
            ),
            1,
        );
    }
    std::fs::write(dir.path().join("companies.yaml"), text).unwrap();
    dir
}

fn companies() -> Vec<Record> {
    (1..=20)
        .map(|i| {
            let name = if i == 7 {
                "Hostile".to_string()
            } else {
                format!("Company {i}")
            };
            let doc = json!({
                "name": name,
                "domain": format!("c{i}.example.com"),
                "lifecyclestage": if i % 5 == 0 { "subscriber" } else { "customer" },
                "phone": format!("+61 2 9000 {i:04}"),
                "city": "Sydney",
            });
            let mut r = Record::new(System::HubSpot, Object::Company, format!("{i}"));
            r.doc = doc.as_object().unwrap().clone();
            r
        })
        .collect()
}

fn plan_with(dir: &Path, source: &[Record]) -> Plan {
    let loaded = load(&Paths {
        config: dir.join("tandem.yaml"),
        rules_dir: dir.to_path_buf(),
    })
    .unwrap_or_else(|e| panic!("the rules load: {:?}", e.diagnostics()));
    plan(
        &loaded.program,
        &PlanInput::bulk(Direction::Pull, source, &[], &[]),
    )
}

#[test]
fn a_hostile_expression_fails_its_record_alone() {
    let source = companies();
    let baseline = plan_with(rules_dir(None, None).path(), &source);
    let hostile_id = "7";
    let base = baseline
        .actions
        .iter()
        .find(|a| a.source.id.as_deref() == Some(hostile_id))
        .unwrap();
    assert_eq!(base.op, Op::Create, "{base:?}");
    let mut contained = 0;
    for pattern in PATTERNS {
        for (place, dir, prefix) in [
            (
                "criteria",
                rules_dir(Some(pattern), None),
                "criteria failed: ",
            ),
            ("transform", rules_dir(None, Some(pattern)), "rule failed: "),
        ] {
            let p = plan_with(dir.path(), &source);
            assert_eq!(p.actions.len(), baseline.actions.len(), "{place} {pattern}");
            for (a, b) in p.actions.iter().zip(&baseline.actions) {
                if a.source.id.as_deref() == Some(hostile_id) {
                    assert_eq!(a.op, Op::Skip, "{place} `{pattern}`: {a:?}");
                    assert!(
                        a.reason.starts_with(prefix) && a.reason.len() > prefix.len() + 5,
                        "{place} `{pattern}`: {}",
                        a.reason
                    );
                    // The error names where in the rule file it happened.
                    assert!(
                        a.reason.contains("companies.yaml, line ") || !a.reason.contains("line"),
                        "{place} `{pattern}`: {}",
                        a.reason
                    );
                } else {
                    // The same decision; a "criteria not met" reason quotes the criteria, whose
                    // text differs by the pattern.
                    let mut a = a.clone();
                    if a.reason.starts_with("criteria not met") {
                        assert!(b.reason.starts_with("criteria not met"), "{}", b.reason);
                        a.reason.clone_from(&b.reason);
                    }
                    assert_eq!(&a, b, "{place} `{pattern}`: another record changed");
                }
            }
            contained += 1;
        }
    }
    eprintln!(
        "hostile Rhai: {} patterns × 2 places = {contained} of {} contained to their record",
        PATTERNS.len(),
        PATTERNS.len() * 2
    );
}
