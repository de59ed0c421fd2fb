//! docs/sandbox.md works as printed (issue 12, item 6): its tested block of admin-API commands
//! runs in a shell, with the real `tandem` first on `PATH` and the shipped rules/tandem.yaml,
//! against `tandem sandbox --env`; every command succeeds and the answers say what the comments
//! promise. Also: every admin route the simulators serve is documented.

use std::path::Path;

const MARKER: &str = "<!-- tested: the block below runs in tests/it/sandbox_docs.rs -->";

fn docs() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sandbox.md")).unwrap()
}

/// The ```sh block after the marker.
fn tested_block(doc: &str) -> String {
    let after = &doc[doc.find(MARKER).expect("the marker in docs/sandbox.md") + MARKER.len()..];
    let start = after.find("```sh\n").expect("a sh block after the marker") + "```sh\n".len();
    let end = after[start..].find("```").expect("the block's end");
    after[start..start + end].to_string()
}

#[test]
fn the_documented_admin_commands_work_as_printed() {
    let block = tested_block(&docs());
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_tandem")).parent().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Each command's output is framed so the test can tell them apart; the first failure stops
    // the script (and the sandbox is stopped on any exit).
    let mut script =
        String::from("set -eu\ntrap 'kill $TANDEM_SANDBOX_PID 2>/dev/null || true' EXIT\nn=0\n");
    let mut joined = String::new();
    for line in block.lines() {
        joined.push_str(line);
        if let Some(stripped) = joined.strip_suffix('\\') {
            joined = format!("{stripped} ");
            continue;
        }
        let cmd = std::mem::take(&mut joined);
        if cmd.trim().is_empty() || cmd.trim_start().starts_with('#') {
            continue;
        }
        script.push_str(&format!("n=$((n+1)); echo \"=== $n\"; {cmd}\necho\n"));
    }
    script.push_str("trap - EXIT\necho \"=== done\"\n");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(root)
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("TANDEM_STORE", dir.path().join("tandem.db"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}\n{script}");
    assert!(stdout.ends_with("=== done\n"), "{stdout}");
    let part = |n: usize| -> &str {
        let head = format!("=== {n}\n");
        let from = stdout
            .find(&head)
            .map(|i| i + head.len())
            .unwrap_or(stdout.len());
        let to = stdout[from..]
            .find("=== ")
            .map_or(stdout.len(), |i| from + i);
        &stdout[from..to]
    };
    // 1 eval (prints nothing); 2 records; 3 rename; 4 email; 5 create; 6-7 faults; 8 stats;
    // 9 why; 10 push; 11-12 the mailbox; 13 reset; 14 kill.
    let records: serde_json::Value = serde_json::from_str(part(2).trim()).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 20);
    assert!(part(3).contains("Renamed Ltd"), "{}", part(3));
    assert!(part(4).contains("new@example.com"), "{}", part(4));
    assert!(part(5).contains("Brand New Pty Ltd"), "{}", part(5));
    let stats: serde_json::Value = serde_json::from_str(part(8).trim()).unwrap();
    assert!(stats["requests"].is_object(), "{stats}");
    assert!(part(9).contains("Renamed Ltd"), "{}", part(9));
    // The push's email, in the mailbox.
    let mail: serde_json::Value = serde_json::from_str(part(11).trim()).unwrap();
    assert_eq!(mail.as_array().map(Vec::len), Some(1), "{mail}");
    assert!(
        mail[0]["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("Tandem push finished: ")),
        "{mail}"
    );
    let message: serde_json::Value = serde_json::from_str(part(12).trim()).unwrap();
    assert!(
        message["body"]
            .as_str()
            .is_some_and(|b| b.contains("tandem log --job ")),
        "{message}"
    );
}

#[test]
fn every_admin_route_is_documented() {
    let doc = docs();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "src/sandbox/hubspot/mod.rs",
        "src/sandbox/accelo/mod.rs",
        "src/sandbox/mail.rs",
    ] {
        let src = std::fs::read_to_string(root.join(file)).unwrap();
        for route in src.match_indices("\"/_sandbox/").map(|(i, _)| {
            let rest = &src[i + 1..];
            rest[..rest.find('"').unwrap()].to_string()
        }) {
            assert!(
                doc.contains(&route),
                "{route} ({file}) is not in docs/sandbox.md"
            );
        }
    }
}
