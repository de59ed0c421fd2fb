//! The secrets campaign: every secret a deployment holds (the HubSpot private-app token, OAuth
//! client secret and refresh token, the Accelo client secret, the webhook secret, the SMTP
//! password, a database password) is searched for in everything the real binary prints — at
//! `TANDEM_LOG=trace`, on success and on wrong credentials — in the sync log (`tandem log`, text
//! and JSON), in the SQLite store's bytes (the database, its WAL and shared-memory files) and
//! in a `pg_dump` of a PostgreSQL store the same commands wrote to.
//! The wrong credentials are searched for too: a refused secret is still a secret.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::closed_port;
use crate::support::exec::*;

/// What one command printed, for the search.
struct Printed {
    what: String,
    code: Option<i32>,
    text: String,
}

async fn run(
    bin_env: &BTreeMap<String, String>,
    dir: &Path,
    config: &str,
    args: &[&str],
) -> Printed {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .arg("--config")
        .arg(dir.join(config))
        .arg("--rules")
        .arg(dir.join("rules"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TANDEM_LOG", "trace")
        .envs(bin_env)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    Printed {
        what: format!("{config}: tandem {}", args.join(" ")),
        code: out.status.code(),
        text: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test]
async fn no_secret_is_printed_logged_or_stored() {
    let sb = sandbox(61, 6, 20).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tandem.db");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for f in ["companies.yaml", "contacts.yaml"] {
        std::fs::copy(shipped.join(f), dir.path().join("rules").join(f)).unwrap();
    }
    let smtp = closed_port();
    let common = format!(
        "accelo:\n  url: http://placeholder.invalid\n  client_id: placeholder\n  \
         client_secret_env: AC_SECRET\nstore:\n  url: {}\nserver:\n  \
         webhook_secret_env: HS_WEBHOOK_SECRET\nnotify:\n  email:\n    server: 127.0.0.1:{smtp}\n    \
         tls: none\n    from: tandem@example.com\n    to: [ops@example.com]\n    \
         username_env: SMTP_USER\n    password_env: SMTP_PASSWORD\n",
        store.display()
    );
    std::fs::write(
        dir.path().join("token.yaml"),
        format!("hubspot:\n  token_env: HS_TOKEN\n{common}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("oauth.yaml"),
        format!(
            "hubspot:\n  oauth:\n    client_id: {}\n    client_secret_env: HS_CLIENT_SECRET\n    \
             refresh_token_env: HS_REFRESH_TOKEN\n{common}",
            sb.hubspot_client_id()
        ),
    )
    .unwrap();

    const WEBHOOK_SECRET: &str = "whsec-campaign-7f3a9c1e5b";
    const SMTP_PASSWORD: &str = "smtp-pass-campaign-2d8e4f6a";
    const DB_PASSWORD: &str = "pg-pass-campaign-9b1c3e5d";
    const WRONG_TOKEN: &str = "pat-na1-wrong-campaign-4e6a8c0b";
    const WRONG_SECRET: &str = "wrong-accelo-secret-campaign-1a3c5e";
    let env = BTreeMap::from([
        (
            "TANDEM_HUBSPOT_URL".to_string(),
            sb.hubspot_url().to_string(),
        ),
        ("TANDEM_ACCELO_URL".to_string(), sb.accelo_url().to_string()),
        (
            "TANDEM_ACCELO_CLIENT_ID".to_string(),
            sb.accelo_client_id().to_string(),
        ),
        ("HS_TOKEN".to_string(), sb.hubspot_token().to_string()),
        (
            "HS_CLIENT_SECRET".to_string(),
            sb.hubspot_client_secret().to_string(),
        ),
        (
            "HS_REFRESH_TOKEN".to_string(),
            sb.hubspot_refresh_token().to_string(),
        ),
        (
            "AC_SECRET".to_string(),
            sb.accelo_client_secret().to_string(),
        ),
        ("HS_WEBHOOK_SECRET".to_string(), WEBHOOK_SECRET.to_string()),
        ("SMTP_USER".to_string(), "tandem".to_string()),
        ("SMTP_PASSWORD".to_string(), SMTP_PASSWORD.to_string()),
    ]);
    let secrets: Vec<(&str, String)> = vec![
        ("HubSpot token", sb.hubspot_token().to_string()),
        (
            "HubSpot client secret",
            sb.hubspot_client_secret().to_string(),
        ),
        (
            "HubSpot refresh token",
            sb.hubspot_refresh_token().to_string(),
        ),
        (
            "Accelo client secret",
            sb.accelo_client_secret().to_string(),
        ),
        ("webhook secret", WEBHOOK_SECRET.to_string()),
        ("SMTP password", SMTP_PASSWORD.to_string()),
        ("database password", DB_PASSWORD.to_string()),
        ("wrong HubSpot token", WRONG_TOKEN.to_string()),
        ("wrong Accelo secret", WRONG_SECRET.to_string()),
    ];

    let mut printed = Vec::new();
    for config in ["token.yaml", "oauth.yaml"] {
        for args in [
            &["check"][..],
            &["plan", "pull"][..],
            &["pull"][..],
            &["push"][..],
            &["pull"][..],
        ] {
            let p = run(&env, dir.path(), config, args).await;
            printed.push(p);
        }
    }
    // Every run got through (the search is worth something only if the secrets were used).
    for p in &printed {
        assert!(
            matches!(p.code, Some(0 | 1)),
            "{} exited {:?}:\n{}",
            p.what,
            p.code,
            p.text
        );
    }
    // Wrong credentials, on each system: refused (exit 3), and said so without the value.
    let mut wrong = env.clone();
    wrong.insert("HS_TOKEN".into(), WRONG_TOKEN.into());
    let p = run(&wrong, dir.path(), "token.yaml", &["pull"]).await;
    assert_eq!(p.code, Some(3), "{}", p.text);
    printed.push(p);
    let mut wrong = env.clone();
    wrong.insert("HS_REFRESH_TOKEN".into(), WRONG_TOKEN.into());
    let p = run(&wrong, dir.path(), "oauth.yaml", &["pull"]).await;
    assert_eq!(p.code, Some(3), "{}", p.text);
    printed.push(p);
    let mut wrong = env.clone();
    wrong.insert("AC_SECRET".into(), WRONG_SECRET.into());
    let p = run(&wrong, dir.path(), "token.yaml", &["push"]).await;
    assert_eq!(p.code, Some(3), "{}", p.text);
    printed.push(p);
    // A database that does not answer, given with its password.
    let pg = format!(
        "postgres://tandem:{DB_PASSWORD}@127.0.0.1:{}/sync",
        closed_port()
    );
    for args in [
        &["log", "--store", pg.as_str()][..],
        &["pull", "--store", pg.as_str()][..],
    ] {
        let p = run(&env, dir.path(), "token.yaml", args).await;
        assert_eq!(p.code, Some(3), "{}", p.text);
        printed.push(p);
    }
    let mut by_env = env.clone();
    by_env.insert("TANDEM_STORE".into(), pg.clone());
    let p = run(&by_env, dir.path(), "token.yaml", &["log"]).await;
    assert_eq!(p.code, Some(3), "{}", p.text);
    printed.push(p);
    // The sync log, as text and JSON.
    for args in [&["log"][..], &["log", "--json"][..]] {
        let p = run(&env, dir.path(), "token.yaml", args).await;
        assert_eq!(p.code, Some(0), "{}", p.text);
        assert!(p.text.lines().count() > 3, "{}", p.text);
        printed.push(p);
    }
    // The same runs on a PostgreSQL store — right credentials and a refused one — whose dump
    // is searched below with the SQLite files.
    let pg_store = tandem_engine::store::testing::TestStore::postgres().await;
    let mut wrong_pg = env.clone();
    wrong_pg.insert("HS_TOKEN".into(), WRONG_TOKEN.into());
    for (e, args, code) in [(&env, "pull", 0), (&env, "push", 0), (&wrong_pg, "pull", 3)] {
        let p = run(
            e,
            dir.path(),
            "token.yaml",
            &[args, "--store", pg_store.url.as_str()],
        )
        .await;
        assert!(
            p.code == Some(code) || (code == 0 && p.code == Some(1)),
            "{} on PostgreSQL exited {:?}:\n{}",
            args,
            p.code,
            p.text
        );
        printed.push(p);
    }
    let schema = pg_store
        .url
        .rsplit("search_path%3D")
        .next()
        .unwrap_or_default()
        .to_string();
    let dump = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(tandem_engine::store::testing::postgres_url())
        .arg("--schema")
        .arg(&schema)
        .output()
        .expect("pg_dump (PostgreSQL's client tools; tests/run installs them)");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(
        String::from_utf8_lossy(&dump.stdout).contains("sync_log"),
        "the dump holds the store"
    );
    pg_store.cleanup().await;
    let trace_lines: usize = printed.iter().map(|p| p.text.lines().count()).sum();
    assert!(trace_lines > 100, "trace logging was not on");

    // The store's bytes.
    let mut stored = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let f = dir.path().join(format!("tandem.db{suffix}"));
        if let Ok(bytes) = std::fs::read(&f) {
            stored.push((f.display().to_string(), bytes));
        }
    }
    assert!(!stored.is_empty());
    stored.push((format!("pg_dump of schema {schema}"), dump.stdout));

    let mut leaks = Vec::new();
    for (name, secret) in &secrets {
        for p in &printed {
            if p.text.contains(secret.as_str()) {
                leaks.push(format!("{name} in the output of {}", p.what));
            }
        }
        for (file, bytes) in &stored {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                leaks.push(format!("{name} in {file}"));
            }
        }
    }
    eprintln!(
        "secrets campaign: {} secrets searched in {} outputs ({trace_lines} lines at trace level) \
         and {} store files: {} leaks",
        secrets.len(),
        printed.len(),
        stored.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "{leaks:#?}");
    sb.shutdown().await;
}
