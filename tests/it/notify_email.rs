//! The push-completion email against a real SMTP server on loopback (Python's aiosmtpd, started
//! by each test on a port the OS picks): plain, STARTTLS and TLS, with and without login; the
//! decision of when to email and the sync-log notice that says what happened.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::model::{Direction, Object, System};
use tandem_core::plan::RecordRef;
use tandem_engine::notify::{
    Notified, PushSummary, SmtpCredentials, SmtpSettings, SmtpTls, push_completed, render,
};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{
    Counts, JobEnd, JobKind, JobState, LinkChange, LogBody, LogQuery, NewJob, NewLogEntry,
    NoticeLevel, Outcome, RecordEntry, RecordOutcome, RunFinished, RunStarted, Store,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// An aiosmtpd server writing what it receives to a temporary directory.
struct Sink {
    port: u16,
    dir: tempfile::TempDir,
    _child: Child,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smtp")
        .join(name)
}

impl Sink {
    async fn start(tls: &str, auth: Option<&str>) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(dir.path())
            .args(["--tls", tls])
            .arg("--cert")
            .arg(fixture("server.pem"))
            .arg("--key")
            .arg(fixture("server.key"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(auth) = auth {
            cmd.args(["--auth", auth]);
        }
        let mut child = cmd
            .spawn()
            .expect("python3 with aiosmtpd is needed (pip install aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("the SMTP sink did not start")
        .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the SMTP sink printed `{line}`, not a port (is aiosmtpd installed?)")
        });
        Sink {
            port,
            dir,
            _child: child,
        }
    }

    /// The messages received so far.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    fn settings(&self, tls: SmtpTls) -> SmtpSettings {
        let mut s = SmtpSettings::new(
            format!("127.0.0.1:{}", self.port),
            tls,
            "Tandem <tandem@example.com>",
            vec!["ops@example.com".into(), "sales@example.com".into()],
        );
        s.timeout = Duration::from_secs(20);
        s
    }
}

/// A finished push job with two created (one after failing once), one updated, one skipped
/// and two failed records.
async fn finished_push(store: &dyn Store, kind: JobKind) -> tandem_engine::store::JobId {
    let job = store
        .enqueue(&NewJob::new(kind, json!(null)))
        .await
        .unwrap()
        .id;
    store
        .claim(job, "w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    store
        .append_log(&NewLogEntry {
            job: Some(job),
            body: LogBody::RunStarted(RunStarted {
                job_kind: kind,
                direction: Some(Direction::Push),
                initiator: Some(System::Accelo),
                subject: None,
                total: Some(5),
            }),
        })
        .await
        .unwrap();
    let mut counts = Counts::default();
    for (id, outcome, error) in [
        ("1", Outcome::Created, None),
        ("2", Outcome::Updated, None),
        ("3", Outcome::Skipped, None),
        (
            "4",
            Outcome::Failed,
            Some("hubspot answered 400: Property values were not valid"),
        ),
        (
            "5",
            Outcome::Failed,
            Some("hubspot answered 409: contact already exists"),
        ),
        // Failed in an interrupted attempt, created by the next: not a failure.
        ("6", Outcome::Failed, Some("hubspot answered 502")),
        ("6", Outcome::Created, None),
    ] {
        if !(id == "6" && outcome == Outcome::Failed) {
            counts.add(outcome);
        }
        store
            .record_outcome(&RecordOutcome {
                job: Some(job),
                entry: RecordEntry {
                    object: Object::Contact,
                    source: RecordRef {
                        system: System::Accelo,
                        id: Some(id.into()),
                    },
                    target: RecordRef {
                        system: System::HubSpot,
                        id: None,
                    },
                    outcome,
                    reason: String::new(),
                    changes: vec![],
                    error: error.map(String::from),
                },
                link: LinkChange::Keep,
                resolve_intent: None,
            })
            .await
            .unwrap();
    }
    store
        .append_log(&NewLogEntry {
            job: Some(job),
            body: LogBody::RunFinished(RunFinished {
                job_kind: kind,
                direction: Some(Direction::Push),
                initiator: Some(System::Accelo),
                subject: None,
                state: JobState::Succeeded,
                counts,
                duration_ms: 187_000,
                error: None,
                failure: None,
                problems: 0,
                interrupted: 0,
                guardrail: None,
            }),
        })
        .await
        .unwrap();
    store.finish(job, "w", &JobEnd::Succeeded).await.unwrap();
    job
}

async fn notices(
    store: &dyn Store,
    job: tandem_engine::store::JobId,
) -> Vec<(NoticeLevel, String)> {
    store
        .log(&LogQuery {
            job: Some(job),
            ..LogQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            LogBody::Notice(n) => Some((n.level, n.message)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_finished_push_emails_its_summary() {
    let sink = Sink::start("none", None).await;
    let ts = TestStore::sqlite().await;
    let store = ts.store.as_ref();
    let job = finished_push(store, JobKind::Push).await;
    let summary = PushSummary::from_log(store, job).await.unwrap();
    assert_eq!(summary.counts.failed, 2);
    let failed: Vec<&str> = summary.failures.iter().map(|f| f.record.as_str()).collect();
    assert_eq!(failed, ["accelo:contact:4", "accelo:contact:5"]);
    assert_eq!(summary.duration, Duration::from_secs(187));

    let outcome = push_completed(store, Some(&sink.settings(SmtpTls::None)), &summary)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Notified::Sent(vec!["ops@example.com".into(), "sales@example.com".into()])
    );
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["mail_from"], "tandem@example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!(["ops@example.com", "sales@example.com"])
    );
    let content = m["content"].as_str().unwrap().replace("\r\n", "\n");
    assert!(
        content.contains(&format!(
            "Subject: Tandem push finished: 2 created, 1 updated, 2 failed (job {job})"
        )),
        "{content}"
    );
    for expected in [
        format!("The push from Accelo to HubSpot (job {job}) finished at"),
        "after 3m 07s.".to_string(),
        "  created           2".to_string(),
        "  skipped           1".to_string(),
        "  failed            2".to_string(),
        "  - accelo:contact:4: hubspot answered 400: Property values were not valid".to_string(),
        "  - accelo:contact:5: hubspot answered 409: contact already exists".to_string(),
        format!("tandem log --job {job}"),
    ] {
        assert!(
            content.contains(&expected),
            "missing `{expected}` in:\n{content}"
        );
    }
    assert_eq!(
        notices(store, job).await,
        [(
            NoticeLevel::Info,
            format!("push summary for job {job} emailed to ops@example.com, sales@example.com")
        )]
    );
    ts.cleanup().await;
}

#[tokio::test]
async fn no_email_when_unconfigured_and_the_log_says_so() {
    let ts = TestStore::sqlite().await;
    let store = ts.store.as_ref();
    let job = finished_push(store, JobKind::Push).await;
    let summary = PushSummary::from_log(store, job).await.unwrap();
    assert_eq!(
        push_completed(store, None, &summary).await.unwrap(),
        Notified::NotConfigured
    );
    assert_eq!(
        notices(store, job).await,
        [(
            NoticeLevel::Info,
            format!(
                "no email sent for push job {job}: email is not configured (`notify.email` in \
                 tandem.yaml)"
            )
        )]
    );
    ts.cleanup().await;
}

#[tokio::test]
async fn automatic_syncs_pulls_and_push_one_runs_send_nothing() {
    let sink = Sink::start("none", None).await;
    let ts = TestStore::sqlite().await;
    let store = ts.store.as_ref();
    for kind in [
        JobKind::Record,
        JobKind::Pull,
        JobKind::PushCompany,
        JobKind::PushContact,
    ] {
        let job = finished_push(store, kind).await;
        let summary = PushSummary::from_log(store, job).await.unwrap();
        let settings = sink.settings(SmtpTls::None);
        assert_eq!(
            push_completed(store, Some(&settings), &summary)
                .await
                .unwrap(),
            Notified::NotApplicable,
            "{kind}"
        );
        assert!(notices(store, job).await.is_empty(), "{kind}");
    }
    assert!(sink.messages().is_empty());
    ts.cleanup().await;
}

#[tokio::test]
async fn login_works_and_a_refused_login_is_logged_without_the_password() {
    let sink = Sink::start("none", Some("tandem:c0rrect-horse")).await;
    let ts = TestStore::sqlite().await;
    let store = ts.store.as_ref();
    let job = finished_push(store, JobKind::Push).await;
    let summary = PushSummary::from_log(store, job).await.unwrap();

    let mut wrong = sink.settings(SmtpTls::None);
    wrong.credentials = Some(SmtpCredentials {
        username: "tandem".into(),
        password: "wr0ng-battery-staple".into(),
    });
    let outcome = push_completed(store, Some(&wrong), &summary).await.unwrap();
    let Notified::Failed(error) = outcome else {
        panic!("expected a failure, got {outcome:?}")
    };
    assert!(
        error.starts_with(&format!(
            "the smtp server `127.0.0.1:{}` did not take the email",
            sink.port
        )),
        "{error}"
    );
    let logged = notices(store, job).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].0, NoticeLevel::Warn);
    assert!(
        logged[0].1.contains("could not be emailed"),
        "{}",
        logged[0].1
    );
    let all = serde_json::to_string(&store.log(&LogQuery::default()).await.unwrap()).unwrap();
    assert!(!all.contains("wr0ng-battery-staple"));
    assert!(!error.contains("wr0ng-battery-staple"));
    assert!(sink.messages().is_empty());

    let mut right = sink.settings(SmtpTls::None);
    right.credentials = Some(SmtpCredentials {
        username: "tandem".into(),
        password: "c0rrect-horse".into(),
    });
    let outcome = push_completed(store, Some(&right), &summary).await.unwrap();
    assert!(matches!(outcome, Notified::Sent(_)), "{outcome:?}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["login"], "tandem");
    ts.cleanup().await;
}

#[tokio::test]
async fn starttls_and_tls_are_encrypted_and_starttls_is_never_skipped() {
    let email = render(&PushSummary {
        job: tandem_engine::store::JobId(7),
        job_kind: JobKind::Push,
        subject: None,
        state: JobState::Succeeded,
        counts: Counts::default(),
        failures: vec![],
        duration: Duration::from_millis(1500),
        finished_at: chrono::Utc::now(),
        error: None,
    });
    for mode in [SmtpTls::Starttls, SmtpTls::Tls] {
        let name = if mode == SmtpTls::Tls {
            "tls"
        } else {
            "starttls"
        };
        let sink = Sink::start(name, None).await;
        let mut settings = sink.settings(mode);
        // Without the test CA the certificate is not trusted: nothing is sent.
        let err = tandem_engine::notify::send(&settings, &email)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("did not take the email"),
            "{name}: {err}"
        );
        assert!(sink.messages().is_empty());

        settings.extra_ca = Some(fixture("ca.pem"));
        tandem_engine::notify::send(&settings, &email)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let messages = sink.messages();
        assert_eq!(messages.len(), 1, "{name}");
        assert_eq!(messages[0]["tls"], true, "{name}");
    }

    // A server that does not offer STARTTLS gets nothing, not a plain-text fallback.
    let plain = Sink::start("none", None).await;
    let mut settings = plain.settings(SmtpTls::Starttls);
    settings.extra_ca = Some(fixture("ca.pem"));
    let err = tandem_engine::notify::send(&settings, &email)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("did not take the email"), "{err}");
    assert!(plain.messages().is_empty());
}

#[tokio::test]
async fn bad_settings_are_clear_errors() {
    let sink = Sink::start("none", None).await;
    let email = tandem_engine::notify::Email {
        subject: "s".into(),
        body: "b".into(),
    };
    let mut s = sink.settings(SmtpTls::None);
    s.from = "not an address".into();
    assert!(
        tandem_engine::notify::send(&s, &email)
            .await
            .unwrap_err()
            .to_string()
            .starts_with("`not an address` in `from` is not an email address: ")
    );
    let mut s = sink.settings(SmtpTls::None);
    s.to = vec![];
    assert_eq!(
        tandem_engine::notify::send(&s, &email)
            .await
            .unwrap_err()
            .to_string(),
        "the email has no recipient: `to` is empty"
    );
    let mut s = sink.settings(SmtpTls::Tls);
    s.extra_ca = Some(PathBuf::from("/nonexistent/ca.pem"));
    assert!(
        tandem_engine::notify::send(&s, &email)
            .await
            .unwrap_err()
            .to_string()
            .starts_with("cannot use the certificate authority file `/nonexistent/ca.pem`: ")
    );
    assert!(sink.messages().is_empty());
}
