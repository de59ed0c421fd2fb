//! `tandem check` on the shipped rules and on one fixture per diagnostic kind
//! (`tests/fixtures/rules/invalid/<CODE>_<what>/`): exit codes, the code reported, and an insta
//! snapshot of both renderings (human and JSON).

use std::path::{Path, PathBuf};

use tandem::cli::Exit;
use tandem::cli::check::{Args, Format, Output, render};
use tandem_core::rules::Code;

const VALID_CONFIG: &str = "tests/fixtures/rules/valid/tandem.yaml";

fn run(config: &Path, rules: &Path, format: Format) -> Output {
    render(
        &Args {
            config: Some(config.to_path_buf()),
            rules: Some(rules.to_path_buf()),
            format,
            store: None,
        },
        false,
    )
}

fn fixture_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("tests/fixtures/rules/invalid")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn config_for(dir: &Path) -> PathBuf {
    let own = dir.join("tandem.yaml");
    if own.exists() {
        own
    } else {
        PathBuf::from(VALID_CONFIG)
    }
}

#[test]
fn shipped_rules_and_config_are_clean() {
    let out = run(
        Path::new("rules/tandem.yaml"),
        Path::new("rules"),
        Format::Json,
    );
    assert_eq!(out.exit, Exit::Ok, "{}", out.stdout);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["diagnostics"], serde_json::json!([]), "{}", out.stdout);
    let human = run(
        Path::new("rules/tandem.yaml"),
        Path::new("rules"),
        Format::Human,
    );
    assert_eq!(human.stderr.trim(), "no problems found");
}

#[test]
fn valid_fixture_set_is_clean() {
    let out = run(
        Path::new(VALID_CONFIG),
        Path::new("tests/fixtures/rules/valid"),
        Format::Json,
    );
    assert_eq!(out.exit, Exit::Ok, "{}", out.stdout);
    assert!(out.stdout.contains("\"diagnostics\": []"), "{}", out.stdout);
}

#[test]
fn every_diagnostic_kind_has_a_fixture_with_snapshots() {
    let dirs = fixture_dirs();
    let mut covered = std::collections::BTreeSet::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let code = name.split('_').next().unwrap().to_string();
        let config = config_for(dir);
        let human = run(&config, dir, Format::Human);
        let json = run(&config, dir, Format::Json);
        let expected_exit = if code.starts_with('E') {
            Exit::Invalid
        } else {
            Exit::Ok
        };
        assert_eq!(human.exit, expected_exit, "{name}:\n{}", human.stderr);
        assert_eq!(json.exit, expected_exit, "{name}");
        let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        let diags = parsed["diagnostics"].as_array().unwrap();
        assert!(
            diags.iter().any(|d| d["code"] == code.as_str()),
            "{name}: no {code} in {}",
            json.stdout
        );
        for d in diags {
            assert!(d["line"].as_u64().unwrap() >= 1 && d["column"].as_u64().unwrap() >= 1);
            assert!(
                d["file"]
                    .as_str()
                    .unwrap()
                    .starts_with("tests/fixtures/rules/")
            );
            let sev = d["severity"].as_str().unwrap();
            assert!(sev == "error" || sev == "warning");
        }
        assert!(human.stderr.contains(&code), "{name}: {}", human.stderr);
        covered.insert(code);
        let text = format!(
            "--- human (stderr) ---\n{}\n--- json (stdout) ---\n{}",
            human.stderr, json.stdout
        );
        insta::with_settings!({snapshot_path => "snapshots/check", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, text);
        });
    }
    for c in Code::ALL {
        assert!(
            covered.contains(c.as_str()),
            "diagnostic {c} ({}) has no fixture",
            c.title()
        );
    }
}

#[test]
fn errors_point_at_the_exact_place() {
    // A Rhai error inside a block scalar lands on the offending character.
    let dir = Path::new("tests/fixtures/rules/invalid/E011_undefined_variable");
    let out = run(&config_for(dir), dir, Format::Json);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let d = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "E011")
        .unwrap();
    let text = std::fs::read_to_string(dir.join("companies.yaml")).unwrap();
    let line = text
        .lines()
        .nth(d["line"].as_u64().unwrap() as usize - 1)
        .unwrap();
    let col = d["column"].as_u64().unwrap() as usize - 1;
    assert!(line[col..].starts_with("domian"), "{line:?} col {col}");

    // …and inside a single-quoted scalar.
    let dir = Path::new("tests/fixtures/rules/invalid/E010_rhai_syntax");
    let out = run(&config_for(dir), dir, Format::Json);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let d = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "E010")
        .unwrap();
    let text = std::fs::read_to_string(dir.join("companies.yaml")).unwrap();
    let line = text
        .lines()
        .nth(d["line"].as_u64().unwrap() as usize - 1)
        .unwrap();
    let col = d["column"].as_u64().unwrap() as usize - 1;
    assert!(line[col..].starts_with('&'), "{line:?} col {col}");
}

#[test]
fn all_problems_are_reported_not_the_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("companies.yaml"),
        "object: company\ntriggers: [created, nme]\nfeilds: []\ncriteria:\n  pull: 'lowr(record.name)'\nfields:\n  - hubspot: nmae\n    accelo: $.name\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("contacts.yaml"),
        "object: contact\nfields:\n  - hubspot: email\n    accelo: $.affiliation.emial\n",
    )
    .unwrap();
    let out = run(Path::new(VALID_CONFIG), dir.path(), Format::Json);
    assert_eq!(out.exit, Exit::Invalid);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut codes: Vec<&str> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, vec!["E003", "E012", "E020", "E021", "E031"]);
}

#[test]
fn config_diagnostics_never_echo_a_secret_value() {
    let dir = Path::new("tests/fixtures/rules/invalid/E080_invalid_config");
    let human = run(&config_for(dir), dir, Format::Human);
    let json = run(&config_for(dir), dir, Format::Json);
    for text in [&human.stderr, &json.stdout] {
        assert!(text.contains("refresh_token_env"), "{text}");
        assert!(!text.contains("pat-na1-11111111"), "secret leaked:\n{text}");
    }
}

#[test]
fn missing_config_and_rules_dir_are_reported() {
    let out = run(
        Path::new("tests/fixtures/rules/does-not-exist.yaml"),
        Path::new("tests/fixtures/rules/no-such-dir"),
        Format::Json,
    );
    assert_eq!(out.exit, Exit::Invalid);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let msgs: Vec<&str> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("cannot read the config file")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("cannot read the rules directory")),
        "{msgs:?}"
    );
}

/// The `triggers` list of a shipped rule file, in file order.
fn shipped_triggers(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let doc = tandem_core::rules::yaml::parse(&text);
    assert!(doc.errors.is_empty(), "{file}: {:?}", doc.errors);
    strings(&doc.value.unwrap()["triggers"], file)
}

fn strings(v: &serde_json::Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: not a list"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shipped_trigger_lists_are_the_reference_lists() {
    // The fixture is the copy of the reference list that the sandbox's webhooks also use.
    let fixture = "tests/fixtures/rules/trigger-properties.yaml";
    let reference = std::fs::read(fixture).unwrap();
    assert!(
        reference == std::fs::read("src/sandbox/hubspot/trigger-properties.yaml").unwrap(),
        "{fixture} and src/sandbox/hubspot/trigger-properties.yaml differ"
    );
    let doc = tandem_core::rules::yaml::parse(std::str::from_utf8(&reference).unwrap());
    assert!(doc.errors.is_empty(), "{:?}", doc.errors);
    let reference = doc.value.unwrap();
    for (object, file) in [
        ("company", "rules/companies.yaml"),
        ("contact", "rules/contacts.yaml"),
    ] {
        let want = strings(&reference[object], object);
        let got = shipped_triggers(file);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{file}: trigger {} differs from the reference", i + 1);
        }
        assert_eq!(
            got.len(),
            want.len(),
            "{file}: {} triggers, the reference lists {} (extra or missing at the end: {:?})",
            got.len(),
            want.len(),
            if got.len() > want.len() {
                &got[want.len()..]
            } else {
                &want[got.len()..]
            }
        );
        assert_eq!(got.first().map(String::as_str), Some("created"));
    }
}

/// The character a diagnostic's (line, column) points at in `text`.
fn char_at(text: &str, d: &serde_json::Value) -> Option<char> {
    let line = text.lines().nth(d["line"].as_u64().unwrap() as usize - 1)?;
    line.chars().nth(d["column"].as_u64().unwrap() as usize - 1)
}

fn check_one_file(name: &str, text: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    let out = run(Path::new(VALID_CONFIG), dir.path(), Format::Json);
    serde_json::from_str(&out.stdout).unwrap()
}

fn find_code<'a>(json: &'a serde_json::Value, code: &str) -> Vec<&'a serde_json::Value> {
    json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == code)
        .collect()
}

#[test]
fn jsonpath_errors_point_at_the_rejected_character_after_non_ascii_text() {
    for value in [
        "$.web[site",
        "$.名前[x",
        "$.ärä[x",
        "'$.ärä[x'",
        r#""$.\u540d\u524d[x""#,
        r#""$.\xe4r\xe4[x""#,
    ] {
        let text = format!(
            "object: company\nfields:\n  - hubspot: name\n    accelo: {value}\n  - hubspot: phone\n    accelo: $.phone\n"
        );
        let json = check_one_file("companies.yaml", &text);
        let e030 = find_code(&json, "E030");
        assert_eq!(e030.len(), 1, "{value}: {json}");
        assert_eq!(e030[0]["line"], 4, "{value}");
        assert_eq!(char_at(&text, e030[0]), Some('['), "{value}: {}", e030[0]);
    }
}

#[test]
fn probing_runaway_expressions_finishes() {
    // `tandem check` runs each expression once; the evaluation limits bound that run too. A
    // runaway found by the probe is not a check error (the run reports it per record).
    let text = "object: company\ncriteria:\n  pull: 'loop { }'\n  push: |\n    let s = \"x\"; while s.len() < 262144 { s += s; }\n    let n = 0; while n < 5000 { let t = s; t.replace(\"x\", \"y\"); n += 1; }\n    true\ndedup:\n  - name: huge\n    hubspot: 'let s = \"xxxxxxxx\"; loop { s += s; }'\n    accelo: 'fn f(x) { f(x) } f(1)'\nfields:\n  - hubspot: name\n    accelo: $.name\n";
    let json = check_one_file("companies.yaml", text);
    let errors: Vec<_> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "{json}");
    // Each runaway is a warning at its own expression, in the rule file's lines: the probe ran
    // them under the planner's limits. (The push criteria stops on the clock or not depending
    // on the machine; it is not counted.)
    let w010 = find_code(&json, "W010");
    let lines: Vec<u64> = w010.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    for line in [3, 10, 11] {
        assert!(lines.contains(&line), "line {line}: {json}");
    }
    let messages: Vec<&str> = w010
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("operations")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("too large")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("nested calls")),
        "{messages:?}"
    );
    for m in &messages {
        assert!(!m.contains("(line "), "{m}");
    }
}

#[test]
fn an_expression_that_finishes_has_no_limit_warning() {
    // A loop with an end, well under the limits, is not reported.
    let text = "object: company\ncriteria:\n  pull: |\n    let n = 0;\n    while n < 1000 { n += 1; }\n    n == 1000\nfields:\n  - hubspot: name\n    accelo: $.name\n";
    let json = check_one_file("companies.yaml", text);
    assert!(find_code(&json, "W010").is_empty(), "{json}");
}

#[test]
fn a_missing_secret_variable_is_a_missing_key_not_a_pasted_value() {
    // Without an `accelo` section there is no `client_secret_env` value to mask: only the
    // schema's E005 is reported, and the other diagnostics keep their lines.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tandem.yaml");
    std::fs::write(
        &config,
        "hubspot:\n  token_env: HUBSPOT_TOKEN\nserver:\n  listen: nowhere\n",
    )
    .unwrap();
    std::fs::copy(
        "tests/fixtures/rules/valid/companies.yaml",
        dir.path().join("companies.yaml"),
    )
    .unwrap();
    let out = run(&config, dir.path(), Format::Json);
    assert_eq!(out.exit, Exit::Invalid);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let config_diags: Vec<(&str, u64, u64, &str)> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["file"] == config.to_str().unwrap())
        .map(|d| {
            (
                d["code"].as_str().unwrap(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        config_diags
            .iter()
            .any(|d| d.0 == "E005" && d.3.contains("accelo")),
        "{config_diags:?}"
    );
    assert!(
        config_diags
            .iter()
            .any(|d| d.0 == "E080" && (d.1, d.2) == (4, 11) && d.3.contains("server.listen")),
        "{config_diags:?}"
    );
    assert!(
        !config_diags
            .iter()
            .any(|d| d.3.contains("must name an environment variable")),
        "{config_diags:?}"
    );
    let human = run(&config, dir.path(), Format::Human);
    assert!(human.stderr.contains("listen: nowhere"), "{}", human.stderr);
}

#[test]
fn unknown_fields_inside_string_interpolation_are_reported() {
    let text = "object: company\ncriteria:\n  pull: 'present(`${record.nmae} (${record.domain})`)'\n  push: |\n    let t = `${record.postal_address.cty}, ``${record.website}``, \\${record.nope}`;\n    present(t)\nfields:\n  - hubspot: name\n    accelo: $.name\n";
    let json = check_one_file("companies.yaml", text);
    let e020 = find_code(&json, "E020");
    assert_eq!(e020.len(), 1, "{json}");
    assert!(e020[0]["message"].as_str().unwrap().contains("`nmae`"));
    assert_eq!(
        (e020[0]["line"].as_u64(), e020[0]["column"].as_u64()),
        (Some(3), Some(28))
    );
    assert_eq!(char_at(text, e020[0]), Some('n'));
    let e031 = find_code(&json, "E031");
    assert_eq!(e031.len(), 1, "{json}");
    assert!(
        e031[0]["message"]
            .as_str()
            .unwrap()
            .contains("`postal_address.cty`"),
        "{json}"
    );
    assert_eq!(e031[0]["line"], 5);
    let line = text.lines().nth(4).unwrap();
    let col = e031[0]["column"].as_u64().unwrap() as usize;
    assert!(
        line.chars()
            .skip(col - 1)
            .collect::<String>()
            .starts_with("cty}"),
        "{line} {col}"
    );
    // `website` is a known field (no E031) and `\${record.nope}` is text.
    assert_eq!(
        json["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["severity"] == "error")
            .count(),
        2,
        "{json}"
    );
}

/// Every misspelt property gets the nearest known one, swapped neighbours included (issue 12
/// item 14): `nmae` → `name`, `phnoe` → `phone`, `lifecylestage` → `lifecyclestage`.
#[test]
fn every_near_miss_property_gets_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tandem.yaml", "companies.yaml", "contacts.yaml"] {
        std::fs::copy(Path::new("rules").join(f), dir.path().join(f)).unwrap();
    }
    let companies = std::fs::read_to_string(dir.path().join("companies.yaml")).unwrap();
    let companies = companies
        .replacen("  - hubspot: name\n", "  - hubspot: nmae\n", 1)
        .replacen("  - hubspot: phone\n", "  - hubspot: phnoe\n", 1);
    std::fs::write(dir.path().join("companies.yaml"), companies).unwrap();
    let out = run(&dir.path().join("tandem.yaml"), dir.path(), Format::Json);
    assert_eq!(out.exit, Exit::Invalid, "{}", out.stdout);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let helps: Vec<(String, String)> = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["message"]
                .as_str()
                .unwrap()
                .starts_with("unknown HubSpot")
        })
        .map(|d| {
            (
                d["message"].as_str().unwrap().to_string(),
                d["help"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for (typo, fix) in [("nmae", "name"), ("phnoe", "phone")] {
        let found = helps
            .iter()
            .find(|(m, _)| m.contains(&format!("`{typo}`")))
            .unwrap_or_else(|| panic!("no diagnostic for `{typo}`: {helps:?}"));
        assert_eq!(found.1, format!("did you mean `{fix}`?"), "{helps:?}");
    }
}
