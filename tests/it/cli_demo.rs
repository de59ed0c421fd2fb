//! `tandem demo` with the real binary (debug build, small sizes through its hidden flags): it
//! exits 0, tells the story in order (the push's email received by the sandbox mailbox among
//! it), ends with a pull that writes nothing, and leaves a store that `tandem log --store` reads.

use std::process::Command;

#[test]
fn demo_runs_the_story_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "demo",
            "--companies",
            "40",
            "--contacts",
            "160",
            "--plain",
            "--dir",
        ])
        .arg(&project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let mut at = 0;
    for needle in [
        "1. What a pull would do",
        "pull plan (hubspot → accelo",
        "actions shown; `tandem plan pull` shows all",
        "2. Pull",
        "pull job 1 finished",
        "3. Push",
        "push job 2 finished",
        "the push emailed its summary to the sandbox mailbox: \"Tandem push finished: ",
        "4. Someone edits Accelo company",
        "push_company job 3 finished",
        " 2 updated",
        "6. And once more",
        "write requests during this pull: HubSpot 0, Accelo 0",
        "tandem log --store",
    ] {
        let found = stdout[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing after byte {at}:\n{stdout}"));
        at += found;
    }
    // The store is kept and readable by `tandem log`.
    let store = project.join("tandem.db");
    assert!(store.exists());
    let log = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["log", "--json", "--job", "3", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(
        log.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.first().unwrap()["kind"], "run_started");
    assert_eq!(lines.last().unwrap()["kind"], "run_finished");
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "record" && l["outcome"] == "updated")
    );
}
