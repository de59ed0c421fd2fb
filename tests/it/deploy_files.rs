//! The deployment files of docs/deploy as a customer uses them, checked without Docker (CI has
//! no daemon): the compose file holds serve, two workers, PostgreSQL and the sandbox profile;
//! the image runs unprivileged with a health check; the commands the files run are commands the
//! binary accepts; and the sandbox credentials of `tandem.env.example` are the ones `tandem
//! sandbox --seed 1` really has, so the sandbox profile works as printed. The topology itself is
//! exercised with processes in `serve_binary.rs`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/deploy"))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs the binary with `args` plus `--help`: clap accepts the subcommand path.
fn accepted(args: &[&str]) {
    let sub: Vec<&str> = args
        .iter()
        .copied()
        .take_while(|a| !a.starts_with('-'))
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(&sub)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "`tandem {}`", sub.join(" "));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let name = flag.split('=').next().unwrap_or(flag);
        assert!(
            help.contains(name),
            "`tandem {}` has no {name}",
            sub.join(" ")
        );
    }
}

#[test]
fn the_compose_file_runs_serve_two_workers_and_postgresql() {
    let compose: Value = serde_saphyr::from_str(&read("compose.yaml")).unwrap();
    let services = &compose["services"];
    for s in ["postgres", "serve", "worker", "sandbox"] {
        assert!(services.get(s).is_some(), "no service {s}");
    }
    assert_eq!(services["worker"]["deploy"]["replicas"], 2);
    assert_eq!(services["sandbox"]["profiles"][0], "sandbox");
    assert_eq!(
        services["serve"]["build"]["dockerfile"],
        "docs/deploy/Dockerfile"
    );
    // Every Tandem service shares the PostgreSQL store.
    for s in ["serve", "worker"] {
        let store = services[s]["environment"]["TANDEM_STORE"]
            .as_str()
            .unwrap_or_else(|| panic!("{s}: {}", services[s]));
        assert!(store.starts_with("postgres://") && store.contains("@postgres:5432/"));
    }
    for s in ["serve", "worker", "sandbox"] {
        let args: Vec<&str> = services[s]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        accepted(&args);
    }
}

#[test]
fn the_image_runs_unprivileged_with_a_health_check() {
    let file = read("Dockerfile");
    assert_eq!(file.matches("\nFROM ").count(), 2, "multi-stage");
    assert!(file.contains("\nUSER tandem\n"));
    assert!(file.contains("/healthz"));
    assert!(file.contains("cargo build --release --locked"));
    let ignore = read("Dockerfile.dockerignore");
    assert!(ignore.lines().any(|l| l == "target/"));
    for unit in ["tandem.service", "tandem-worker@.service"] {
        let text = read(unit);
        assert!(text.contains("\nUser=tandem\n"), "{unit}");
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/tandem "))
            .unwrap_or_else(|| panic!("{unit}: no ExecStart"));
        accepted(&exec.split_whitespace().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn the_sandbox_credentials_of_the_example_environment_are_the_sandboxes() {
    let example = read("tandem.env.example");
    // The commented-out sandbox block.
    let value = |key: &str| {
        example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing"))
            .to_string()
    };
    // The sandbox's credentials come from its seed alone.
    let sb = crate::support::exec::sandbox(1, 1, 1).await;
    assert_eq!(value("TANDEM_HUBSPOT_TOKEN"), sb.hubspot_token());
    assert_eq!(value("TANDEM_ACCELO_CLIENT_ID"), sb.accelo_client_id());
    assert_eq!(
        value("TANDEM_ACCELO_CLIENT_SECRET"),
        sb.accelo_client_secret()
    );
    sb.shutdown().await;
    let compose = read("compose.yaml");
    assert!(compose.contains(&format!(
        "--webhook-secret={}",
        value("TANDEM_HUBSPOT_WEBHOOK_SECRET")
    )));
    assert!(compose.contains("--hubspot-port=9101") && compose.contains("--accelo-port=9102"));
    assert_eq!(value("TANDEM_HUBSPOT_URL"), "http://sandbox:9101");
}

/// Every metric the Grafana dashboard charts is one Tandem exports (a name in the source) and
/// one docs/operations.md documents.
#[test]
fn the_dashboard_charts_metrics_that_exist() {
    let dash: Value = serde_json::from_str(&read("grafana-dashboard.json")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let mut source = String::new();
    for f in [
        "src/engine/server/metrics.rs",
        "src/engine/connect/http.rs",
        "src/engine/exec/worker.rs",
        "src/engine/reload.rs",
    ] {
        source.push_str(&std::fs::read_to_string(root.join(f)).unwrap());
    }
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    for p in panels {
        let expr = p["targets"][0]["expr"].as_str().unwrap();
        let start = expr.find("tandem_").unwrap_or_else(|| panic!("{expr}"));
        let name: String = expr[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} is not exported"
        );
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not documented"
        );
    }
}
