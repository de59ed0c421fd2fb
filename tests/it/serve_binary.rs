//! The automatic sync exactly as a user sets it up, with the real binaries: `tandem sandbox
//! --webhook-url … --webhook-secret S` in one process, `tandem pull` to link, then `tandem serve`
//! in another, its secret S in the variable `server.webhook_secret_env` names (the in-process
//! serve tests use `TANDEM_HUBSPOT_WEBHOOK_SECRET`). Renaming a linked HubSpot company through
//! the sandbox's admin API reaches Accelo through a signed webhook (the poller is off), with one
//! Accelo write and no write back to HubSpot; no secret appears in what the processes print;
//! SIGTERM stops both with exit 0.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SECRET: &str = "s3cret-webhook-signing-key";
const ACCELO_SECRET: &str = "acc3lo-webhook-signing-key";

fn tandem() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TANDEM_LOG", "warn")
        .kill_on_drop(true);
    c
}

/// A loopback port nothing listens on: picked by the OS, then closed again (serve binds it).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The first stdout line of `child`.
async fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    tokio::time::timeout(
        Duration::from_secs(120),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("the process printed its first line")
    .unwrap();
    line
}

async fn terminate(mut child: Child) -> Option<i32> {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the process stopped after SIGTERM")
        .unwrap()
        .code()
}

fn project(dir: &Path) {
    std::fs::write(
        dir.join("tandem.yaml"),
        "hubspot:\n  token_env: HS_TOKEN\naccelo:\n  url: http://placeholder.invalid\n  \
         client_id: placeholder\n  client_secret_env: AC_SECRET\nserver:\n  \
         webhook_secret_env: HS_WEBHOOK_SECRET\n",
    )
    .unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for f in ["companies.yaml", "contacts.yaml"] {
        std::fs::copy(shipped.join(f), dir.join(f)).unwrap();
    }
}

async fn stats(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/_sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_rename_reaches_accelo_through_signed_webhooks_between_the_binaries() {
    rename_through_webhooks(false).await;
}

/// The deployment of docs/deploy (compose.yaml), as processes: `tandem serve` and two `tandem
/// worker`s sharing one PostgreSQL store. The rename reaches Accelo the same way, its record job
/// run once by whichever process claims it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_two_workers_on_postgresql_sync_an_edit_within_seconds() {
    rename_through_webhooks(true).await;
}

/// The scenario of the module docs; `deployed`: the store is PostgreSQL and two `tandem worker`
/// processes run beside `tandem serve`.
async fn rename_through_webhooks(deployed: bool) {
    let port = free_port();
    let hook = format!("http://127.0.0.1:{port}/webhooks/hubspot");
    let mut sandbox = tandem()
        .args([
            "sandbox",
            "--seed",
            "8",
            "--companies",
            "20",
            "--contacts",
            "40",
            "--rate-limit",
            "off",
            "--webhook-url",
            &hook,
            "--webhook-secret",
            SECRET,
            "--accelo-webhook-url",
            &format!("http://127.0.0.1:{port}/webhooks/accelo"),
            "--accelo-webhook-secret",
            ACCELO_SECRET,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let info: Value = serde_json::from_str(&first_line(&mut sandbox).await).unwrap();
    let hs = info["hubspot"]["url"].as_str().unwrap().to_string();
    let ac = info["accelo"]["url"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let pg = if deployed {
        Some(tandem_engine::store::testing::TestStore::postgres().await)
    } else {
        None
    };
    let store = match &pg {
        Some(pg) => pg.url.clone(),
        None => dir.path().join("tandem.db").display().to_string(),
    };
    let env = BTreeMap::from([
        (
            "TANDEM_CONFIG",
            dir.path().join("tandem.yaml").display().to_string(),
        ),
        ("TANDEM_STORE", store.clone()),
        ("TANDEM_HUBSPOT_URL", hs.clone()),
        ("TANDEM_ACCELO_URL", ac.clone()),
        (
            "TANDEM_ACCELO_CLIENT_ID",
            info["accelo"]["client_id"].as_str().unwrap().to_string(),
        ),
        (
            "HS_TOKEN",
            info["hubspot"]["token"].as_str().unwrap().to_string(),
        ),
        (
            "AC_SECRET",
            info["accelo"]["client_secret"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
        ("HS_WEBHOOK_SECRET", SECRET.to_string()),
        ("TANDEM_ACCELO_WEBHOOK_SECRET", ACCELO_SECRET.to_string()),
    ]);

    // The first pull links the two sides.
    let pulled = tandem().arg("pull").envs(&env).output().await.unwrap();
    assert_eq!(
        pulled.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let links = tandem_engine::store::open(&store)
        .await
        .unwrap()
        .links(tandem_core::model::Object::Company)
        .await
        .unwrap();
    let link = links.first().expect("the pull linked companies").clone();

    let mut serve = tandem()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-interval",
            "0",
        ])
        .envs(&env)
        .env("TANDEM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let serve_log = serve.stderr.take().unwrap();
    let serve_log = tokio::spawn(async move {
        let mut text = String::new();
        let mut lines = BufReader::new(serve_log).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            text.push_str(&l);
            text.push('\n');
        }
        text
    });
    let listening = first_line(&mut serve).await;
    assert_eq!(
        listening.trim(),
        format!("listening on http://127.0.0.1:{port}")
    );
    let workers: Vec<Child> = (0..if deployed { 2 } else { 0 })
        .map(|_| {
            tandem()
                .arg("worker")
                .envs(&env)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();

    let http = reqwest::Client::new();
    // Accelo's webhooks about the pull's own writes were refused while nothing listened; the
    // sandbox retries them, and serve takes them now. Let that settle first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let store_handle = tandem_engine::store::open(&store).await.unwrap();
    loop {
        let pending = stats(&http, &ac).await["webhooks"]["pending"].as_u64();
        let jobs = store_handle
            .jobs(&tandem_engine::store::JobFilter::default())
            .await
            .unwrap();
        if pending == Some(0) && jobs.iter().all(|j| j.state.is_terminal()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending:?} {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (hs_before, ac_before) = (stats(&http, &hs).await, stats(&http, &ac).await);
    let renamed = "Renamed Through Webhooks Ltd";
    let r = http
        .post(format!("{hs}/_sandbox/edit"))
        .json(&json!({"object": "companies", "id": link.hubspot_id, "fields": {"name": renamed}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // The webhook (the poller is off) brings the new name to the linked Accelo company.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let company: Value = http
            .get(format!("{ac}/_sandbox/records/companies"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let name = company
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"].as_str() == Some(link.accelo_id.as_str()))
            .and_then(|c| c["name"].as_str().map(str::to_string));
        if name.as_deref() == Some(renamed) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Accelo company {} still named {name:?}",
            link.accelo_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The record job has ended once the store holds no unfinished job.
    loop {
        let jobs = store_handle
            .jobs(&tandem_engine::store::JobFilter::default())
            .await
            .unwrap();
        if jobs.iter().all(|j| j.state.is_terminal()) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{jobs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (hs_after, ac_after) = (stats(&http, &hs).await, stats(&http, &ac).await);
    let writes = |s: &Value| s["writes"].as_u64().unwrap();
    // One write to Accelo (the rename); none back to HubSpot (no echo).
    assert_eq!(writes(&ac_after) - writes(&ac_before), 1, "{ac_after}");
    assert_eq!(writes(&hs_after) - writes(&hs_before), 0, "{hs_after}");
    // The webhook was delivered signed and accepted, at the first attempt.
    let hooks = &hs_after["webhooks"];
    assert!(hooks["delivered_events"].as_u64().unwrap() >= 1, "{hooks}");
    assert_eq!(hooks["failed_attempts"], 0, "{hooks}");

    if deployed {
        // Every record job (the rename's, and those of the Accelo webhooks about the pull's
        // own writes) ran once, by whichever process claimed it.
        let jobs = store_handle
            .jobs(&tandem_engine::store::JobFilter::default())
            .await
            .unwrap();
        let record_jobs: Vec<_> = jobs
            .iter()
            .filter(|j| j.kind == tandem_engine::store::JobKind::Record)
            .collect();
        assert!(
            record_jobs
                .iter()
                .any(|j| j.payload["record"] == format!("hubspot:company:{}", link.hubspot_id)),
            "{jobs:#?}"
        );
        for j in &record_jobs {
            assert_eq!(j.attempts, 1, "{j:#?}");
            assert_eq!(j.state, tandem_engine::store::JobState::Succeeded, "{j:#?}");
        }
    }
    // The other direction: an Accelo edit reaches HubSpot through Accelo's signed webhook (the
    // poller is still off).
    let renamed_in_accelo = "Renamed In Accelo Ltd";
    let r = http
        .post(format!("{ac}/_sandbox/edit"))
        .json(&json!({"object": "companies", "id": link.accelo_id, "fields": {"name": renamed_in_accelo}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    loop {
        let companies: Value = http
            .get(format!("{hs}/_sandbox/records/companies"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let name = companies
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"].as_str() == Some(link.hubspot_id.as_str()))
            .and_then(|c| c["properties"]["name"].as_str().map(str::to_string));
        if name.as_deref() == Some(renamed_in_accelo) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "HubSpot company {} still named {name:?}",
            link.hubspot_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ac_hooks = &stats(&http, &ac).await["webhooks"];
    assert!(
        ac_hooks["delivered_requests"].as_u64()
            > ac_before["webhooks"]["delivered_requests"].as_u64(),
        "{ac_hooks}"
    );

    for w in workers {
        assert_eq!(terminate(w).await, Some(0));
    }
    assert_eq!(terminate(serve).await, Some(0));
    assert_eq!(terminate(sandbox).await, Some(0));
    store_handle.close().await;
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
    // Nothing either Tandem process printed holds a secret.
    let printed = format!(
        "{}{}{}",
        String::from_utf8_lossy(&pulled.stdout),
        String::from_utf8_lossy(&pulled.stderr),
        serve_log.await.unwrap()
    );
    assert!(printed.contains("serving on"), "{printed}");
    for secret in [
        SECRET,
        info["hubspot"]["token"].as_str().unwrap(),
        info["accelo"]["client_secret"].as_str().unwrap(),
    ] {
        assert!(!printed.contains(secret), "a secret in:\n{printed}");
    }
}
