//! `tandem log`, run as the real binary against stores written through the library: the text
//! and JSON forms, the filters, `--follow`, where the store comes from, exit codes, and that no
//! secret is ever printed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::model::{Direction, Object, System};
use tandem_core::plan::{Change, RecordRef};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{
    Counts, JobId, JobKind, JobState, LinkChange, LogBody, NewJob, NewLogEntry, Notice,
    NoticeLevel, Outcome, RecordEntry, RecordOutcome, RunFinished, RunProgress, RunStarted, Store,
    redact,
};

use crate::support::closed_port;

fn tandem() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.env_remove("TANDEM_STORE").env_remove("TANDEM_CONFIG");
    cmd
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("tandem runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn log(store: &TestStore, args: &[&str]) -> Output {
    run(tandem()
        .arg("log")
        .arg("--store")
        .arg(&store.url)
        .args(args))
}

/// Timestamps vary; everything else in the text form is fixed.
fn without_times(text: &str) -> String {
    let re = regex::Regex::new(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").unwrap();
    re.replace_all(text, "<time>").into_owned()
}

fn record(
    object: Object,
    outcome: Outcome,
    source: &str,
    target: Option<&str>,
    reason: &str,
) -> RecordEntry {
    RecordEntry {
        object,
        source: RecordRef {
            system: System::HubSpot,
            id: Some(source.into()),
        },
        target: RecordRef {
            system: System::Accelo,
            id: target.map(String::from),
        },
        outcome,
        reason: reason.into(),
        changes: vec![],
        error: None,
    }
}

/// A pull of three records, then a notice: the story `tandem log` tells.
async fn a_pull(store: &dyn Store) -> JobId {
    let job = store
        .enqueue(&NewJob::new(JobKind::Pull, json!(null)))
        .await
        .unwrap()
        .id;
    let append = |body| NewLogEntry {
        job: Some(job),
        body,
    };
    store
        .append_log(&append(LogBody::RunStarted(RunStarted {
            job_kind: JobKind::Pull,
            direction: Some(Direction::Pull),
            initiator: Some(System::HubSpot),
            subject: None,
            total: Some(3),
        })))
        .await
        .unwrap();
    let mut created = record(
        Object::Company,
        Outcome::Created,
        "101",
        Some("55"),
        "qualifies: lifecyclestage is `customer`",
    );
    created.changes = vec![
        Change {
            field: "name".into(),
            from: None,
            to: Some("Acme Pty Ltd".into()),
        },
        Change {
            field: "postal_address.city".into(),
            from: Some("Hobart".into()),
            to: Some("Launceston".into()),
        },
    ];
    let skipped = record(
        Object::Contact,
        Outcome::Skipped,
        "7",
        None,
        "no associated company",
    );
    let mut failed = record(Object::Contact, Outcome::Failed, "8", None, "");
    failed.error = Some("accelo answered 400: `firstname` is required".into());
    for entry in [created, skipped, failed] {
        store
            .record_outcome(&RecordOutcome {
                job: Some(job),
                entry,
                link: LinkChange::Keep,
                resolve_intent: None,
            })
            .await
            .unwrap();
    }
    store
        .append_log(&append(LogBody::RunProgress(RunProgress {
            done: 3,
            total: Some(3),
        })))
        .await
        .unwrap();
    store
        .append_log(&append(LogBody::RunFinished(RunFinished {
            job_kind: JobKind::Pull,
            direction: Some(Direction::Pull),
            initiator: Some(System::HubSpot),
            subject: None,
            state: JobState::Succeeded,
            counts: Counts {
                created: 1,
                skipped: 1,
                failed: 1,
                ..Counts::default()
            },
            duration_ms: 8200,
            error: None,
            failure: None,
            problems: 0,
            interrupted: 0,
            guardrail: None,
        })))
        .await
        .unwrap();
    store
        .append_log(&NewLogEntry {
            job: None,
            body: LogBody::Notice(Notice {
                level: NoticeLevel::Warn,
                message: "rules/contacts.yaml did not reload: see the diagnostics".into(),
            }),
        })
        .await
        .unwrap();
    job
}

#[tokio::test]
async fn the_text_form_tells_runs_and_records_field_by_field() {
    let ts = TestStore::sqlite().await;
    let job = a_pull(ts.store.as_ref()).await;
    let out = log(&ts, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = format!("job {job}");
    // Field changes and errors sit under the outcome, two columns in.
    let pad = " ".repeat("2026-11-28 09:00:00  job 1    ".len() + 2);
    let expected = format!(
        "<time>  {j:<8} pull started (hubspot → accelo, hubspot values win, 3 records)
<time>  {j:<8} created   company hubspot:company:101 → accelo:company:55  qualifies: lifecyclestage is `customer`
{pad}name: (blank) → \"Acme Pty Ltd\"
{pad}postal_address.city: \"Hobart\" → \"Launceston\"
<time>  {j:<8} skipped   contact hubspot:contact:7 → accelo  no associated company
<time>  {j:<8} failed    contact hubspot:contact:8 → accelo
{pad}error: accelo answered 400: `firstname` is required
<time>  {j:<8} progress 3/3
<time>  {j:<8} pull finished in 8.2s: 1 created, 0 updated, 0 linked, 0 unchanged, 1 skipped, 1 failed
<time>           warning: rules/contacts.yaml did not reload: see the diagnostics
"
    );
    assert_eq!(without_times(&out.stdout), expected);
    ts.cleanup().await;
}

#[tokio::test]
async fn json_lines_and_filters_on_both_backends() {
    for ts in [TestStore::sqlite().await, TestStore::postgres().await] {
        let job = a_pull(ts.store.as_ref()).await;
        let other = a_pull(ts.store.as_ref()).await;

        let out = log(&ts, &["--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let lines: Vec<Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 14);
        let created = &lines[1];
        assert_eq!(created["kind"], "record");
        assert_eq!(created["job"], json!(job.0));
        assert_eq!(created["outcome"], "created");
        assert_eq!(created["object"], "company");
        assert_eq!(created["source"], json!({"system": "hubspot", "id": "101"}));
        assert_eq!(created["target"], json!({"system": "accelo", "id": "55"}));
        assert_eq!(
            created["changes"][0],
            json!({"field": "name", "from": null, "to": "Acme Pty Ltd"})
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(created["at"].as_str().unwrap()).is_ok(),
            "{}",
            created["at"]
        );
        let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));

        let count = |args: &[&str]| {
            let out = log(&ts, args);
            assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
            out.stdout.lines().count()
        };
        let other_s = other.to_string();
        assert_eq!(count(&["--json", "--job", &other_s]), 6);
        assert_eq!(count(&["--json", "--record", "hubspot:company:101"]), 2);
        assert_eq!(count(&["--json", "--record", "accelo:company:55"]), 2);
        assert_eq!(
            count(&["--json", "--record", "hubspot:contact:7", "--job", &other_s]),
            1
        );
        assert_eq!(count(&["--json", "--since", "1h"]), 14);
        assert_eq!(count(&["--json", "--since", "2099-01-01T00:00:00Z"]), 0);
        assert_eq!(count(&["--json", "--last", "3"]), 3);
        assert_eq!(count(&["--json", "-n", "3", "--job", &job.to_string()]), 3);
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn follow_streams_new_entries_until_interrupted() {
    for ts in [TestStore::sqlite().await, TestStore::postgres().await] {
        let job = a_pull(ts.store.as_ref()).await;
        let mut child = tandem()
            .args(["log", "--follow", "--json", "--poll-ms", "50", "--job"])
            .arg(job.to_string())
            .arg("--store")
            .arg(&ts.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel::<Value>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    break;
                }
            }
        });
        let next = || {
            rx.recv_timeout(Duration::from_secs(20))
                .expect("tandem log --follow printed nothing")
        };
        // The job's entries so far, then what is appended while it runs (and nothing of
        // another job).
        for _ in 0..6 {
            next();
        }
        a_pull(ts.store.as_ref()).await;
        for n in 0..3 {
            ts.store
                .append_log(&NewLogEntry {
                    job: Some(job),
                    body: LogBody::Notice(Notice {
                        level: NoticeLevel::Info,
                        message: format!("later {n}"),
                    }),
                })
                .await
                .unwrap();
        }
        for n in 0..3 {
            let line = next();
            assert_eq!(line["message"], format!("later {n}"));
            assert_eq!(line["job"], json!(job.0));
        }
        // Interrupted like Ctrl-C: exits 0.
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
        ts.cleanup().await;
    }
}

#[tokio::test]
async fn follow_on_an_empty_log_prints_what_arrives() {
    let ts = TestStore::sqlite().await;
    let mut child = tandem()
        .args(["log", "-f", "--poll-ms", "50", "--store"])
        .arg(&ts.url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ts.store
        .append_log(&NewLogEntry {
            job: None,
            body: LogBody::Notice(Notice {
                level: NoticeLevel::Info,
                message: "first".into(),
            }),
        })
        .await
        .unwrap();
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(line.ends_with("notice: first"), "{line}");
    child.kill().unwrap();
    let _ = child.wait();
    ts.cleanup().await;
}

#[tokio::test]
async fn the_store_comes_from_the_environment_or_the_config() {
    let ts = TestStore::sqlite().await;
    a_pull(ts.store.as_ref()).await;
    let out = run(tandem()
        .args(["log", "--json"])
        .env("TANDEM_STORE", &ts.url));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 7);

    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("rules")).unwrap();
    std::fs::write(
        project.path().join("rules/tandem.yaml"),
        format!("store:\n  url: '{}'\n", ts.url),
    )
    .unwrap();
    let out = run(tandem().args(["log", "--json"]).current_dir(project.path()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 7);
    // …or from the config file the other commands were given (`--config` / `TANDEM_CONFIG`).
    let elsewhere = tempfile::tempdir().unwrap();
    let config = project.path().join("rules/tandem.yaml");
    for by_env in [false, true] {
        let mut cmd = tandem();
        cmd.args(["log", "--json"]).current_dir(elsewhere.path());
        if by_env {
            cmd.env("TANDEM_CONFIG", &config);
        } else {
            cmd.arg("--config").arg(&config);
        }
        let out = run(&mut cmd);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout.lines().count(), 7);
    }

    // With neither, the default store of the current directory; none there yet.
    let empty = tempfile::tempdir().unwrap();
    let out = run(tandem().arg("log").current_dir(empty.path()));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("there is no store at `.tandem/tandem.db`"),
        "{}",
        out.stderr
    );
    assert!(
        !empty.path().join(".tandem").exists(),
        "nothing was created"
    );
    ts.cleanup().await;
}

#[test]
fn bad_arguments_exit_2_with_the_reason() {
    let out = run(tandem().args(["log", "--store", "x.db", "--since", "last tuesday"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("`last tuesday` is not a time"),
        "{}",
        out.stderr
    );
    let out = run(tandem().args(["log", "--record", "hubspot:deal:1"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown object `deal`"),
        "{}",
        out.stderr
    );
    let out = run(tandem().args(["log", "--job", "abc"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("`abc` is not a job id"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unreachable_database_exits_3_without_its_password() {
    let url = format!(
        "postgres://tandem:Hunter2-Pg-Secret@127.0.0.1:{}/sync",
        closed_port()
    );
    let out = run(tandem().args(["log", "--store", url.as_str()]));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot connect to the store"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Hunter2-Pg-Secret"), "{}", out.stderr);
    assert!(!out.stdout.contains("Hunter2-Pg-Secret"));
}

/// A token that reaches the log through an error — written by a process that knows it as a
/// secret, or straight into the database by one that does not — is never printed.
#[tokio::test]
async fn secrets_fed_through_errors_never_reach_the_output() {
    const TOKEN: &str = "pat-na1-6b7f1e2d-9c4a-4f1b-a3d2-log-cli-test";
    for ts in [TestStore::sqlite().await, TestStore::postgres().await] {
        // The executor's path: the token is a registered secret of the writing process, and a
        // connector error quotes it.
        redact::register_secret(TOKEN);
        let mut failed = record(Object::Company, Outcome::Failed, "9", None, "");
        failed.error = Some(format!(
            "POST /crm/v3/objects/companies/batch/create: 401 Unauthorized (sent {TOKEN})"
        ));
        ts.store
            .record_outcome(&RecordOutcome {
                job: None,
                entry: failed,
                link: LinkChange::Keep,
                resolve_intent: None,
            })
            .await
            .unwrap();
        // A writer that knew nothing about the token (older version, another tool): only the
        // shape of a credential gives it away, and `tandem log` removes it on the way out.
        let body = json!({
            "kind": "notice", "level": "error",
            "message": format!("retry failed: Authorization: Bearer {TOKEN} and access_token={TOKEN}")
        });
        insert_raw(&ts, body).await;

        for args in [&[][..], &["--json"][..]] {
            let out = log(&ts, args);
            assert_eq!(out.code, 0, "{}", out.stderr);
            assert!(out.stdout.lines().count() >= 2, "{}", out.stdout);
            assert!(!out.stdout.contains(TOKEN), "{args:?}: {}", out.stdout);
            assert!(!out.stdout.contains("6b7f1e2d"), "{args:?}: {}", out.stdout);
            assert!(out.stdout.contains("[redacted]"), "{}", out.stdout);
            assert!(!out.stderr.contains(TOKEN));
        }
        ts.cleanup().await;
    }
}

/// Appends a sync-log row with plain SQL, bypassing the store's own scrubbing.
async fn insert_raw(ts: &TestStore, body: Value) {
    use sqlx::Connection;
    let now = chrono::Utc::now().timestamp_millis();
    if ts.url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&ts.url).await.unwrap();
        sqlx::query("INSERT INTO sync_log (at, kind, body) VALUES ($1, 'notice', $2)")
            .bind(now)
            .bind(sqlx::types::Json(body))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let path = Path::new(&ts.url);
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("INSERT INTO sync_log (at, kind, body) VALUES ($1, 'notice', $2)")
            .bind(now)
            .bind(body.to_string())
            .execute(&mut c)
            .await
            .unwrap();
    }
}

#[test]
fn an_unusable_store_path_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a store").unwrap();
    let out = run(tandem().arg("log").arg("--store").arg(&file));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot open the store"),
        "{}",
        out.stderr
    );
}
