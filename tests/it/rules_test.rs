//! `tandem test`: the shipped rules' own test cases pass through the real check → compile →
//! plan path; a broken expectation fails with a readable diff and exit 1; invalid rules exit 2.

use std::path::Path;

use tandem::cli::Exit;
use tandem::cli::test::{Args, execute};

fn copy_rules(to: &Path) {
    for f in ["tandem.yaml", "companies.yaml", "contacts.yaml"] {
        std::fs::copy(Path::new("rules").join(f), to.join(f)).unwrap();
    }
}

fn args(dir: &Path) -> Args {
    Args {
        config: Some(dir.join("tandem.yaml")),
        rules: Some(dir.to_path_buf()),
        store: None,
    }
}

#[test]
fn shipped_rule_tests_pass() {
    let out = execute(
        &Args {
            config: Some("rules/tandem.yaml".into()),
            rules: None,
            store: None,
        },
        false,
    );
    assert_eq!(out.exit, Exit::Ok, "{}{}", out.stdout, out.stderr);
    assert!(out.outcomes.len() >= 15, "{}", out.stdout);
    assert!(out.outcomes.iter().all(|o| o.passed));
    assert!(out.stdout.contains("rules/companies.yaml"));
    assert!(out.stdout.contains("rules/contacts.yaml"));
    assert!(out.stdout.contains(" passed, 0 failed"), "{}", out.stdout);
}

#[test]
fn a_broken_case_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let file = dir.path().join("companies.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text.replace(
        "changes: {phone: '555-0101'}",
        "changes: {phone: '555-0000', postal_address.city: null}",
    );
    assert_ne!(text, broken);
    std::fs::write(&file, broken).unwrap();

    let out = execute(&args(dir.path()), false);
    assert_eq!(out.exit, Exit::Failures, "{}", out.stdout);
    let failed: Vec<_> = out.outcomes.iter().filter(|o| !o.passed).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].name,
        "on pull HubSpot wins field by field and a blank never overwrites"
    );
    let diff = failed[0].diff.as_deref().unwrap();
    assert!(diff.contains("--- expected"), "{diff}");
    assert!(diff.contains("+++ actual"), "{diff}");
    assert!(diff.contains("-  phone = \"555-0000\""), "{diff}");
    assert!(
        diff.contains("-  postal_address.city = (cleared)"),
        "{diff}"
    );
    assert!(diff.contains("+  phone = \"555-0101\""), "{diff}");
    assert!(
        out.stdout.contains("FAIL  on pull HubSpot wins"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("1 failed"), "{}", out.stdout);
}

#[test]
fn unexpected_and_missing_actions_show_in_the_diff() {
    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let file = dir.path().join("contacts.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    // Expect the wrong operation and reason for the no-company contact.
    let broken = text.replace(
        "- {op: skip, source: 202, reason: contact has no company}",
        "- {op: create, source: 202}",
    );
    assert_ne!(text, broken);
    std::fs::write(&file, broken).unwrap();
    let out = execute(&args(dir.path()), false);
    assert_eq!(out.exit, Exit::Failures);
    let diff = out
        .outcomes
        .iter()
        .find(|o| !o.passed)
        .and_then(|o| o.diff.clone())
        .unwrap();
    assert!(diff.contains("-contact hubspot 202: create"), "{diff}");
    assert!(diff.contains("+contact hubspot 202: skip"), "{diff}");
    assert!(diff.contains("contact has no company"), "{diff}");
}

#[test]
fn invalid_rules_exit_2_with_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let file = dir.path().join("contacts.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("accelo: $.surname", "accelo: $.surnme")).unwrap();
    let out = execute(&args(dir.path()), false);
    assert_eq!(out.exit, Exit::Invalid);
    assert!(out.stderr.contains("E031"), "{}", out.stderr);
    assert!(out.outcomes.is_empty());
}
