//! Property-based checks of an HTTP API against its OpenAPI document with the `schemathesis`
//! command (PyPI package `schemathesis`, major version 4, which `tests/run` installs): requests
//! generated from the document, valid and invalid, and every answer checked against it (status
//! codes, content types, response schemas, invalid input rejected, authentication honoured).
//! Seeded and bounded, so a run is the same every time and takes seconds.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The seed of every run: the same requests every time.
pub const SEED: u64 = 20_261_204;
/// Generated test cases per operation and phase.
pub const MAX_EXAMPLES: u32 = 20;
/// A run that takes longer than this fails the test.
pub const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Runs `schemathesis run OPENAPI_URL --url BASE_URL` with `headers` on every request (e.g.
/// `("Authorization", "Bearer …")`; schemathesis masks credentials in what it prints) and
/// `extra_args` after the harness's own (e.g. `["--exclude-path", "/x"]`, `["--phases",
/// "examples,fuzzing"]`): seeded ([`SEED`]), at most [`MAX_EXAMPLES`] cases per operation, no
/// example database, in a temporary working directory (no stray files, no configuration file
/// picked up). `Ok` when schemathesis passes, else `Err` with what it printed.
///
/// Panics when the `schemathesis` command is missing or the run exceeds [`RUN_LIMIT`]: neither
/// is a verdict on the API.
pub async fn run_schemathesis(
    openapi_url: &str,
    base_url: &str,
    headers: &[(&str, &str)],
    extra_args: &[&str],
) -> Result<(), String> {
    run_schemathesis_with_config(openapi_url, base_url, "", headers, extra_args).await
}

/// [`run_schemathesis`] with `config` as the run's `schemathesis.toml` (empty: none), e.g. the
/// value of a security scheme (`[auth.openapi.NAME] api_key = "…"`, so that schemathesis knows
/// the credential and also tries requests without it) or settings per operation
/// (`[[operations]]`).
pub async fn run_schemathesis_with_config(
    openapi_url: &str,
    base_url: &str,
    config: &str,
    headers: &[(&str, &str)],
    extra_args: &[&str],
) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut cmd = Command::new("schemathesis");
    if !config.is_empty() {
        let path = dir.path().join("schemathesis.toml");
        std::fs::write(&path, config).expect("write schemathesis.toml");
        cmd.arg("--config-file").arg(&path);
    }
    cmd.arg("run")
        .arg(openapi_url)
        .arg("--url")
        .arg(base_url)
        .args(["--seed", &SEED.to_string()])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "10"])
        .args(["--wait-for-schema", "15"])
        .arg("--no-color");
    for (name, value) in headers {
        cmd.arg("--header").arg(format!("{name}: {value}"));
    }
    // The API under test is on loopback: never through a proxy from the environment.
    let no_proxy = match std::env::var("NO_PROXY") {
        Ok(v) if !v.is_empty() => format!("{v},127.0.0.1,localhost"),
        _ => "127.0.0.1,localhost".to_string(),
    };
    cmd.args(extra_args)
        .current_dir(dir.path())
        .env("NO_PROXY", &no_proxy)
        .env("no_proxy", &no_proxy)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(RUN_LIMIT, cmd.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!(
            "cannot run `schemathesis` ({e}); tests/run installs it: \
             python3 -m pip install 'schemathesis==4.*'"
        ),
        Err(_) => panic!("schemathesis ran longer than {RUN_LIMIT:?} against {base_url}"),
    };
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("schemathesis {}:\n{printed}", output.status))
    }
}
