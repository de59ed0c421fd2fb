//! The rules commands as a customer runs them: the `tandem` binary (`CARGO_BIN_EXE_tandem`),
//! its exit codes and its `--format json` contract, for `tandem check`, `tandem schema --check`
//! and `tandem test`. (The library-level tests of the same commands are `rules_check.rs`,
//! `rules_schema.rs` and `rules_test.rs`.)

use std::path::Path;
use std::process::{Command, Output};

fn tandem(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .current_dir(cwd)
        // The default config must come from the arguments, never from the caller's shell.
        .env_remove("TANDEM_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn check_exits_0_on_the_shipped_rules() {
    // The defaults: `rules/tandem.yaml` and its directory, relative to the working directory.
    let out = tandem(&["check"], root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no problems found"),
        "{}",
        text(&out)
    );
    let out = tandem(&["check", "--format", "json"], root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json, serde_json::json!({"diagnostics": []}));
}

#[test]
fn check_exits_2_on_invalid_rules_with_the_json_contract() {
    let fixture = "tests/fixtures/rules/invalid/E021_unknown_trigger";
    let out = tandem(
        &[
            "check",
            "--config",
            "tests/fixtures/rules/valid/tandem.yaml",
            "--rules",
            fixture,
            "--format",
            "json",
        ],
        root(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = json.as_object().unwrap();
    assert_eq!(
        top.keys().collect::<Vec<_>>(),
        vec!["diagnostics"],
        "{json}"
    );
    let diags = json["diagnostics"].as_array().unwrap();
    assert!(!diags.is_empty());
    for d in diags {
        let o = d.as_object().unwrap();
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.retain(|k| *k != "help");
        assert_eq!(
            keys,
            vec!["file", "line", "column", "severity", "code", "message"],
            "{d}"
        );
        assert!(o["file"].as_str().unwrap().starts_with(fixture), "{d}");
        assert!(o["line"].as_u64().unwrap() >= 1, "{d}");
        assert!(o["column"].as_u64().unwrap() >= 1, "{d}");
        assert!(matches!(
            o["severity"].as_str().unwrap(),
            "error" | "warning"
        ));
        assert!(o["message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
        if let Some(h) = o.get("help") {
            assert!(h.is_string(), "{d}");
        }
    }
    let e021 = diags.iter().find(|d| d["code"] == "E021").unwrap();
    assert_eq!(e021["severity"], "error");
    // The human form goes to stderr, with the same exit code.
    let out = tandem(
        &[
            "check",
            "--config",
            "tests/fixtures/rules/valid/tandem.yaml",
            "--rules",
            fixture,
        ],
        root(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("E021"),
        "{}",
        text(&out)
    );
}

#[test]
fn schema_check_exits_0_when_current_and_1_when_stale() {
    // `--dir` defaults to `schemas`, relative to the working directory.
    let out = tandem(&["schema", "--check"], root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let tmp = tempfile::tempdir().unwrap();
    let schemas = tmp.path().join("schemas");
    copy_dir(&root().join("schemas"), &schemas);
    let out = tandem(&["schema", "--check"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A stale copy: found through the default directory and through `--dir`.
    let file = schemas.join("tandem.schema.json");
    let stale = std::fs::read_to_string(&file)
        .unwrap()
        .replace("The HubSpot portal.", "The HubSpot account.");
    std::fs::write(&file, stale).unwrap();
    let dir = schemas.to_str().unwrap();
    for (args, cwd) in [
        (vec!["schema", "--check"], tmp.path()),
        (vec!["schema", "--check", "--dir", dir], root()),
    ] {
        let out = tandem(&args, cwd);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("`tandem.schema.json`") && !err.contains("rules.schema.json"),
            "{}",
            text(&out)
        );
    }
    // Regenerating fixes it; the checked-in schemas were never touched.
    let out = tandem(&["schema", "--dir", dir], root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = tandem(&["schema", "--check", "--dir", dir], root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read(schemas.join("tandem.schema.json")).unwrap(),
        std::fs::read(root().join("schemas/tandem.schema.json")).unwrap()
    );
}

#[test]
fn test_exits_0_on_the_shipped_rules_and_1_on_a_broken_case() {
    let out = tandem(&["test"], root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" passed, 0 failed"),
        "{}",
        text(&out)
    );

    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root().join("rules"), tmp.path());
    let file = tmp.path().join("companies.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let broken = original.replace(
        "changes: {phone: '555-0101'}",
        "changes: {phone: '555-0000'}",
    );
    assert_ne!(original, broken);
    std::fs::write(&file, broken).unwrap();
    let config = tmp.path().join("tandem.yaml");
    let out = tandem(&["test", "--config", config.to_str().unwrap()], root());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL  on pull HubSpot wins"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("1 failed"), "{}", text(&out));

    // Invalid rules: exit 2.
    std::fs::write(&file, original.replace("accelo: $.name", "accelo: $.nmae")).unwrap();
    let out = tandem(&["test", "--config", config.to_str().unwrap()], root());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// `tandem hubspot subscriptions` lists, for the shipped rules, exactly the guide's trigger
/// lists — creation and one property change per listed property, per object — plus the events
/// the automatic sync handles on its own; `--format api` gives the webhooks API bodies and
/// `--format project` a developer-platform project file aimed at `--target-url`.
#[test]
fn hubspot_subscriptions_follow_the_trigger_lists_in_every_form() {
    use std::collections::{BTreeMap, BTreeSet};
    let guide: BTreeMap<String, Vec<String>> = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join("src/sandbox/hubspot/trigger-properties.yaml"))
            .unwrap(),
    )
    .unwrap();
    let want: BTreeSet<(String, Option<String>)> = guide
        .iter()
        .flat_map(|(object, props)| {
            props.iter().map(move |p| {
                if p == "created" {
                    (format!("{object}.creation"), None)
                } else {
                    (format!("{object}.propertyChange"), Some(p.clone()))
                }
            })
        })
        .collect();

    let config = root().join("rules/tandem.yaml");
    let config = config.to_str().unwrap();
    let out = tandem(
        &[
            "hubspot",
            "subscriptions",
            "--format",
            "api",
            "--config",
            config,
        ],
        root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let api: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: BTreeSet<(String, Option<String>)> = api
        .iter()
        .map(|b| {
            assert_eq!(b["active"], true, "{b}");
            (
                b["eventType"].as_str().unwrap().to_string(),
                b["propertyName"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(got.len(), api.len(), "no subscription twice");
    let triggers: BTreeSet<_> = got
        .iter()
        .filter(|(e, _)| e.ends_with(".creation") || e.ends_with(".propertyChange"))
        .cloned()
        .collect();
    assert_eq!(triggers, want);
    for extra in [
        "company.deletion",
        "contact.deletion",
        "company.merge",
        "contact.merge",
        "contact.associationChange",
    ] {
        assert!(got.contains(&(extra.to_string(), None)), "{extra}");
    }

    // The table: one line per subscription, and the count.
    let out = tandem(&["hubspot", "subscriptions", "--config", config], root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("contact.propertyChange") && l.contains(" email ")),
        "{table}"
    );
    assert!(
        table.contains(&format!("\n{} subscriptions (", api.len())),
        "{table}"
    );

    // The project file, aimed at the given URL, holding the same subscriptions.
    let out = tandem(
        &[
            "hubspot",
            "subscriptions",
            "--format",
            "project",
            "--target-url",
            "https://sync.example.com/webhooks/hubspot",
            "--config",
            config,
        ],
        root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let project: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(project["type"], "webhooks");
    assert_eq!(
        project["config"]["settings"]["targetUrl"],
        "https://sync.example.com/webhooks/hubspot"
    );
    let subs = &project["config"]["subscriptions"];
    let n = subs["legacyCrmObjects"].as_array().unwrap().len()
        + subs["hubEvents"].as_array().unwrap().len();
    assert_eq!(n, api.len());
}
