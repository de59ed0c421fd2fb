//! The generated JSON Schemas: `tandem schema --check` passes on the checked-in files and fails
//! on stale ones; a third-party validator (`check-jsonschema`, from PyPI — `tests/run` installs
//! it) accepts every shipped file and rejects every structurally invalid fixture, exactly as
//! `tandem check` does, so editors and the engine never disagree.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::path::Path;
use std::process::Command;

use tandem::cli::Exit;
use tandem::cli::check::{self, Format};
use tandem::cli::schema::{Args, execute};

/// Structurally invalid fixtures: both validators must reject them.
const STRUCTURAL: &[&str] = &[
    "E001_yaml_syntax",
    "E002_duplicate_key",
    "E003_unknown_key",
    "E004_wrong_type",
    "E005_missing_key",
    "E006_invalid_value",
];

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
    for name in STRUCTURAL {
        let dir = Path::new("tests/fixtures/rules/invalid").join(name);
        let file = dir.join("companies.yaml");
        let (ok, out) = check_jsonschema("schemas/rules.schema.json", &[&file]);
        assert!(!ok, "check-jsonschema accepted {name}:\n{out}");
        let ours = check::render(
            &check::Args {
                config: Some("tests/fixtures/rules/valid/tandem.yaml".into()),
                rules: Some(dir.clone()),
                format: Format::Json,
            },
            false,
        );
        assert_eq!(ours.exit, Exit::Invalid, "tandem check accepted {name}");
    }
}
