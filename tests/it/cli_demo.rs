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

/// `tandem demo --console`: after the story, the console runs on the same simulators and store,
/// at the address it prints, and the one-time password it prints signs the operator in.
#[tokio::test]
async fn demo_console_leaves_the_console_running() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "demo",
            "--console",
            "--listen",
            "127.0.0.1:0",
            "--companies",
            "30",
            "--contacts",
            "100",
            "--plain",
            "--dir",
        ])
        .arg(dir.path().join("demo"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut password) = (None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["open", u] => url = Some(u.trim_end_matches('/').to_string()),
                ["sign", "in", "operator", "/", p, ..] => password = Some(p.to_string()),
                _ => {}
            }
            if line.starts_with("Ctrl-C stops") {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), read)
        .await
        .expect("the demo prints the console's address");
    let (url, password) = (url.expect("address"), password.expect("password"));
    // Signs in with the printed password, and the page shows the demo's runs.
    let client = crate::support::console::Client::sign_in(&url, ("operator", &password)).await;
    let status = crate::support::serve::wait_for("the console to answer", || {
        let client = &client;
        async move {
            let (code, body) = client.get("/api/v1/status").await;
            (code == 200).then_some(body)
        }
    })
    .await;
    assert_eq!(status["last_pull"]["state"], "succeeded", "{status}");
    assert_eq!(status["systems"][0]["state"], "connected", "{status}");
    // Only the hash of the password is in the demo's tandem.yaml.
    let config = std::fs::read_to_string(dir.path().join("demo/tandem.yaml")).unwrap();
    assert!(config.contains("password_hash: \"$argon2id$"));
    assert!(!config.contains(&password));
    child.kill().await.unwrap();
}
