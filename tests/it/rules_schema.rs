//! The generated JSON Schemas: `tandem schema --check` passes on the checked-in files and fails
//! on stale ones; a third-party validator (`check-jsonschema`, from PyPI — `tests/run` installs
//! it) accepts every shipped file and the valid fixtures, and rejects every structurally invalid
//! fixture (every `tests/fixtures/rules/invalid/<E001–E006>_*` directory, rule files and
//! `tandem.yaml` alike) in exactly the files where `tandem check` reports the fixture's code, so
//! editors and the engine never disagree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use tandem::cli::Exit;
use tandem::cli::check::{self, Format};
use tandem::cli::schema::{Args, execute};
use tandem_core::rules::Code;

/// The structural problems, which both validators must find: YAML itself (`E001`, `E002`) and
/// the JSON Schema (`E003`–`E006`).
const STRUCTURAL: &[Code] = &[
    Code::YamlSyntax,
    Code::DuplicateKey,
    Code::UnknownKey,
    Code::WrongType,
    Code::MissingKey,
    Code::InvalidValue,
];

const INVALID: &str = "tests/fixtures/rules/invalid";
const VALID_CONFIG: &str = "tests/fixtures/rules/valid/tandem.yaml";

/// Every fixture directory `<CODE>_<what>` whose code is structural, with its code.
fn structural_fixtures() -> Vec<(Code, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(INVALID).unwrap() {
        let dir = e.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let prefix = name.split('_').next().unwrap();
        if let Some(code) = STRUCTURAL.iter().find(|c| c.as_str() == prefix) {
            out.push((*code, dir));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The schema a file is validated against, by its name.
fn schema_for(file: &Path) -> &'static str {
    if file.file_name().is_some_and(|n| n == "tandem.yaml") {
        "schemas/tandem.schema.json"
    } else {
        "schemas/rules.schema.json"
    }
}

fn check_jsonschema(schema: &str, files: &[&Path]) -> (bool, String) {
    let out = Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(schema)
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "check-jsonschema is required for this test (tests/run installs it with \
                 `python3 -m pip install check-jsonschema`): {e}"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn checked_in_schemas_are_up_to_date() {
    let (exit, msg) = execute(&Args {
        check: true,
        dir: "schemas".into(),
    });
    assert_eq!(exit, Exit::Ok, "{msg}");
}

#[test]
fn stale_or_missing_schemas_fail_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let args = Args {
        check: true,
        dir: dir.path().to_path_buf(),
    };
    let (exit, msg) = execute(&args);
    assert_eq!(exit, Exit::Failures);
    assert!(msg.contains("rules.schema.json"), "{msg}");

    let (exit, _) = execute(&Args {
        check: false,
        dir: dir.path().to_path_buf(),
    });
    assert_eq!(exit, Exit::Ok);
    assert_eq!(execute(&args).0, Exit::Ok);

    let file = dir.path().join("rules.schema.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("Field mappings", "Old field mappings")).unwrap();
    let (exit, msg) = execute(&args);
    assert_eq!(exit, Exit::Failures);
    assert!(
        msg.contains("`rules.schema.json`") && !msg.contains("tandem.schema"),
        "{msg}"
    );
}

#[test]
fn shipped_files_carry_the_modeline_and_validate_with_check_jsonschema() {
    for (file, schema) in [
        ("rules/companies.yaml", "rules.schema.json"),
        ("rules/contacts.yaml", "rules.schema.json"),
        ("rules/tandem.yaml", "tandem.schema.json"),
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(
            first,
            format!("# yaml-language-server: $schema=../schemas/{schema}"),
            "{file}"
        );
        let (ok, out) = check_jsonschema(&format!("schemas/{schema}"), &[Path::new(file)]);
        assert!(ok, "{file} rejected by check-jsonschema:\n{out}");
    }
    let (ok, out) = check_jsonschema(
        "schemas/rules.schema.json",
        &[
            Path::new("tests/fixtures/rules/valid/companies.yaml"),
            Path::new("tests/fixtures/rules/valid/contacts.yaml"),
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = check_jsonschema("schemas/tandem.schema.json", &[Path::new(VALID_CONFIG)]);
    assert!(ok, "{VALID_CONFIG} rejected by check-jsonschema:\n{out}");
}

#[test]
fn a_deliberately_wrong_file_is_rejected_by_check_jsonschema() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.yaml");
    std::fs::write(
        &wrong,
        "object: companies\nfields:\n  - hubspot: name\n    accelo: $.name\n    precedence: sometimes\n",
    )
    .unwrap();
    let (ok, out) = check_jsonschema("schemas/rules.schema.json", &[&wrong]);
    assert!(!ok, "check-jsonschema accepted a wrong file:\n{out}");
    assert!(
        out.contains("precedence") || out.contains("object"),
        "{out}"
    );
}

#[test]
fn structurally_invalid_fixtures_are_rejected_by_both_validators() {
    let fixtures = structural_fixtures();
    let codes: BTreeSet<&str> = fixtures.iter().map(|(c, _)| c.as_str()).collect();
    let all: BTreeSet<&str> = STRUCTURAL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        codes, all,
        "every structural code needs a fixture in {INVALID}"
    );
    let mut configs = 0;
    for (code, dir) in &fixtures {
        let name = dir.display();
        let own = dir.join("tandem.yaml");
        let config = if own.exists() {
            own
        } else {
            PathBuf::from(VALID_CONFIG)
        };
        let ours = check::render(
            &check::Args {
                config: Some(config),
                rules: Some(dir.clone()),
                format: Format::Json,
                store: None,
            },
            false,
        );
        assert_eq!(ours.exit, Exit::Invalid, "tandem check accepted {name}");
        let json: serde_json::Value = serde_json::from_str(&ours.stdout).unwrap();
        // The files in which `tandem check` finds the fixture's problem…
        let files: BTreeSet<PathBuf> = json["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["code"] == code.as_str())
            .map(|d| PathBuf::from(d["file"].as_str().unwrap()))
            .collect();
        assert!(
            !files.is_empty(),
            "tandem check did not report {code} for {name}:\n{}",
            ours.stdout
        );
        // …are rejected by the third-party validator too.
        for file in &files {
            assert!(
                file.starts_with(dir),
                "{name}: {code} in {}",
                file.display()
            );
            let (ok, out) = check_jsonschema(schema_for(file), &[file]);
            assert!(
                !ok,
                "check-jsonschema accepted {} ({code} for tandem check):\n{out}",
                file.display()
            );
            if file.file_name().is_some_and(|n| n == "tandem.yaml") {
                configs += 1;
            }
        }
    }
    assert!(
        configs > 0,
        "no structurally invalid tandem.yaml among the fixtures"
    );
}

#[test]
fn an_unknown_config_key_is_rejected_by_both_validators() {
    let dir = Path::new(INVALID).join("E003_unknown_config_key");
    let config = dir.join("tandem.yaml");
    let (ok, out) = check_jsonschema("schemas/tandem.schema.json", &[&config]);
    assert!(
        !ok,
        "check-jsonschema accepted {}:\n{out}",
        config.display()
    );
    assert!(out.contains("publc_url"), "{out}");
    let ours = check::render(
        &check::Args {
            config: Some(config.clone()),
            rules: Some(dir.clone()),
            format: Format::Json,
            store: None,
        },
        false,
    );
    assert_eq!(ours.exit, Exit::Invalid);
    let json: serde_json::Value = serde_json::from_str(&ours.stdout).unwrap();
    let d = json["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "E003")
        .unwrap_or_else(|| panic!("no E003 in {}", ours.stdout));
    assert_eq!(d["file"], config.to_str().unwrap());
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(10), Some(3))
    );
    assert!(d["message"].as_str().unwrap().contains("publc_url"), "{d}");
}
