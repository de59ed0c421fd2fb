//! Console benchmark: the server time of each console page and of the sync log's API at a large
//! store (100,000 sync-log entries and 100,000 links on SQLite), against a sandbox, through the
//! real `tandem serve` (in-process) over loopback HTTP with a signed-in session. Prints a
//! Markdown table (docs/PERFORMANCE.md keeps the results and method).
//!
//! The store is filled in two steps: a real pull from the sandbox (so that the record page has a
//! real linked pair with its history), then copies of that pull's own record entries with other
//! ids (a tenth of them `failed`) and links of records that exist nowhere else, inserted with
//! SQL in a few transactions, which takes seconds where the Store API would take minutes.
//!
//! Run: `cargo bench --bench console` (release build). `-- --quick` runs with a hundredth of the
//! rows. `cargo test --all-targets` also runs it (cargo passes no `--bench` then) at the quick
//! scale, as a check that it still works, not as a measurement.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: failing loudly is right"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};
use tandem_engine::server::console::auth::hash_password;
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};
use tokio_util::sync::CancellationToken;

const USER: (&str, &str) = ("bench", "bench-password-1");

fn rules_dir(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for f in ["tandem.yaml", "companies.yaml", "contacts.yaml"] {
        let text = std::fs::read_to_string(Path::new("rules").join(f)).unwrap();
        let text = if f == "tandem.yaml" {
            format!(
                "{text}\nconsole:\n  users:\n    - name: {}\n      role: operator\n      \
                 password_hash: \"{}\"\n",
                USER.0,
                hash_password(USER.1).unwrap()
            )
        } else {
            text
        };
        std::fs::write(rules.join(f), text).unwrap();
    }
    rules
}

struct Server {
    url: String,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<tandem::cli::Exit>,
}

async fn start(sb: &Sandbox, rules: &Path, db: &Path) -> Server {
    let store = db.display().to_string();
    let env = tandem_engine::runtime::Env::from_pairs(
        [
            ("TANDEM_HUBSPOT_URL", sb.hubspot_url()),
            ("TANDEM_HUBSPOT_TOKEN", sb.hubspot_token()),
            ("TANDEM_ACCELO_URL", sb.accelo_url()),
            ("TANDEM_ACCELO_CLIENT_ID", sb.accelo_client_id()),
            ("TANDEM_ACCELO_CLIENT_SECRET", sb.accelo_client_secret()),
            ("TANDEM_STORE", store.as_str()),
            ("TANDEM_HUBSPOT_WEBHOOK_SECRET", "bench-webhook-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<(String, String)>>(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let args = tandem::cli::serve::Args {
        config: tandem::cli::ConfigArgs {
            config: Some(rules.join("tandem.yaml")),
            rules: Some(rules.to_path_buf()),
            store: None,
        },
        listen: None,
        poll_interval: Some(0),
    };
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(tandem::cli::serve::serve_on(
        args,
        env,
        listener,
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{url}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "tandem serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        url,
        shutdown,
        handle,
    }
}

struct Session {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn sign_in(base: &str) -> Session {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = http
            .post(format!("{base}/api/v1/session"))
            .header(ORIGIN, base)
            .json(&json!({"name": USER.0, "password": USER.1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body: Value = r.json().await.unwrap();
        Session {
            http,
            base: base.to_string(),
            cookie,
            csrf: body["csrf"].as_str().unwrap().to_string(),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    async fn pull(&self) {
        let r = self
            .http
            .post(format!("{}/api/v1/jobs", self.base))
            .header(COOKIE, &self.cookie)
            .header(ORIGIN, &self.base)
            .header("x-csrf-token", &self.csrf)
            .json(&json!({"kind": "pull"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let (_, doc) = self.get(&format!("/api/v1/jobs/{id}")).await;
            let doc: Value = serde_json::from_str(&doc).unwrap();
            match doc["state"].as_str() {
                Some("succeeded") => return,
                Some("failed" | "cancelled") => panic!("the pull failed: {doc}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "the pull took too long");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A record entry of the real pull: job, object, source system and id, target system and id
/// (`""` when none), outcome, body.
type Template = (
    Option<i64>,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

/// Fills the store to `entries` sync-log entries and `links` links (see the module comment).
async fn fill(db: &Path, entries: usize, links: usize) {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let templates: Vec<Template> = sqlx::query(
        "SELECT job_id, object, source_system, source_id, target_system, \
             COALESCE(target_id, ''), outcome, body FROM sync_log WHERE kind = 'record'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
            r.get(7),
        )
    })
    .collect();
    assert!(!templates.is_empty(), "the pull logged its records");
    let (have,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sync_log")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let missing = entries.saturating_sub(have as usize);
    for chunk in (0..missing).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = conn.begin().await.unwrap();
        for &i in chunk {
            let (job, object, ss, sid, ts, tid, outcome, body) = &templates[i % templates.len()];
            let new_sid = format!("8{i:08}");
            let new_tid = if tid.is_empty() {
                String::new()
            } else {
                format!("9{i:08}")
            };
            let failed = i % 10 == 0;
            let mut body = body
                .replace(
                    &format!("\"id\":\"{sid}\""),
                    &format!("\"id\":\"{new_sid}\""),
                )
                .replace(
                    &format!("\"id\":\"{tid}\""),
                    &format!("\"id\":\"{new_tid}\""),
                );
            let outcome = if failed {
                body = body.replace(
                    &format!("\"outcome\":\"{outcome}\""),
                    "\"outcome\":\"failed\",\"error\":\"Accelo answered 400\"",
                );
                "failed".to_string()
            } else {
                outcome.clone()
            };
            sqlx::query(
                "INSERT INTO sync_log (at, job_id, kind, object, source_system, source_id, \
                 target_system, target_id, outcome, body) \
                 VALUES (?, ?, 'record', ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(now - (missing - i) as i64)
            .bind(job)
            .bind(object)
            .bind(ss)
            .bind(&new_sid)
            .bind(ts)
            .bind((!new_tid.is_empty()).then_some(&new_tid))
            .bind(&outcome)
            .bind(&body)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let (have,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM links")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let missing = links.saturating_sub(have as usize);
    for chunk in (0..missing).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = conn.begin().await.unwrap();
        for &i in chunk {
            let object = if i % 4 == 0 { "company" } else { "contact" };
            sqlx::query(
                "INSERT INTO links (object, hubspot_id, accelo_id, affiliation_id, last_synced, \
                 updated_at) VALUES (?, ?, ?, NULL, ?, ?)",
            )
            .bind(object)
            .bind(format!("7{i:08}"))
            .bind(format!("6{i:08}"))
            .bind(r#"{"hubspot:name":"Bench Ltd","accelo:name":"Bench Ltd"}"#)
            .bind(now)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[i.saturating_sub(1).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let quick = !measuring || args.iter().any(|a| a == "--quick");
    let (entries, links, requests) = if quick {
        (1_000, 1_000, 5)
    } else {
        (100_000, 100_000, 50)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sb = Sandbox::start(SandboxOptions {
            seed: 11,
            companies: 100,
            contacts: 400,
            rate_limits: RateLimits::unlimited(),
            ..SandboxOptions::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        // `--keep`: leave the store behind to look at its queries (the path goes to stderr).
        let _dir = if args.iter().any(|a| a == "--keep") {
            eprintln!(
                "the store stays in {}",
                dir.keep().join("tandem.db").display()
            );
            None
        } else {
            Some(dir)
        };
        let rules = rules_dir(&root);
        let db = root.join("tandem.db");
        // A real pull first, then the rows, then a fresh server (nothing cached).
        let server = start(&sb, &rules, &db).await;
        Session::sign_in(&server.url).await.pull().await;
        server.shutdown.cancel();
        server.handle.await.unwrap();
        let t = Instant::now();
        fill(&db, entries, links).await;
        eprintln!(
            "filled the store to {entries} log entries and {links} links in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let server = start(&sb, &rules, &db).await;
        let s = Session::sign_in(&server.url).await;
        let store = tandem_engine::store::open(&db.display().to_string())
            .await
            .unwrap();
        let link = store
            .links(tandem_core::model::Object::Company)
            .await
            .unwrap()
            .into_iter()
            .find(|l| !l.hubspot_id.starts_with('7'))
            .expect("a real linked company");
        let (_, page) = s.get("/api/v1/log?limit=1").await;
        let newest = serde_json::from_str::<Value>(&page).unwrap()["newest"]
            .as_i64()
            .unwrap();
        let contacts: Vec<Value> =
            reqwest::get(format!("{}/_sandbox/records/contacts", sb.hubspot_url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        // An email some entries name (a contact's change), and one no entry names (the worst
        // case of a text search: every entry is read).
        let (_, logged) = s.get("/api/v1/log?object=contact&limit=500").await;
        let email = contacts
            .iter()
            .filter_map(|c| c["properties"]["email"].as_str())
            .find(|m| logged.contains(*m))
            .unwrap_or("example")
            .to_string();
        let nowhere = "nobody.at.all@nowhere.example";
        let pages = [
            ("Integrations", "/".to_string()),
            ("Sync Log", "/log".into()),
            ("Sync Log, errors only", "/log?outcome=errors".into()),
            (
                "Sync Log, text (an email in the log)",
                format!("/log?q={email}"),
            ),
            (
                "Sync Log, text (an email in no entry)",
                format!("/log?q={nowhere}"),
            ),
            (
                "Sync Log, text (an id)",
                format!("/log?q={}", link.hubspot_id),
            ),
            (
                "record page (a linked HubSpot company)",
                format!("/records/hubspot/company/{}", link.hubspot_id),
            ),
            (
                "API: a log page half-way back",
                format!("/api/v1/log?before={}", newest / 2),
            ),
            ("API: status", "/api/v1/status".into()),
        ];
        println!(
            "| page | requests | median | p95 | max | HubSpot / Accelo requests per load |\n\
             |---|---:|---:|---:|---:|---:|"
        );
        let total = |v: Value| v["total"].as_u64().unwrap_or(0);
        for (name, path) in pages {
            // One request to warm the caches (the live checks, SQLite's pages), then N.
            let (status, _) = s.get(&path).await;
            assert_eq!(status, 200, "GET {path}");
            let mut times = Vec::with_capacity(requests);
            let (hs, ac) = (total(sb.hubspot_stats()), total(sb.accelo_stats()));
            for _ in 0..requests {
                let t = Instant::now();
                let (status, _) = s.get(&path).await;
                times.push(t.elapsed());
                assert_eq!(status, 200, "GET {path}");
            }
            times.sort();
            let per = |now: u64, before: u64| (now - before) as f64 / requests as f64;
            println!(
                "| {name} (`{path}`) | {requests} | {} | {} | {} | {:.0} / {:.0} |",
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.95)),
                ms(*times.last().unwrap()),
                per(total(sb.hubspot_stats()), hs),
                per(total(sb.accelo_stats()), ac),
            );
        }
        server.shutdown.cancel();
        server.handle.await.unwrap();
    });
}
