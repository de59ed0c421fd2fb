//! `tandem pull`, `tandem push`, `tandem push company|contact` and `tandem apply` against the
//! in-process sandbox over HTTP (the command functions, with an explicit environment): the
//! done-when of issue 5 — Accelo holds exactly the qualifying HubSpot records, a second run
//! writes nothing, one edit costs one write, the same for push with HubSpot batches of 100 — plus
//! the completion email, push one company / one contact, guardrails, saved plans and a second
//! process following a running job.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tandem::cli::Exit;
use tandem::cli::pull::{Output, run_job};
use tandem_core::model::{Direction, Object};
use tandem_core::plan::Op;
use tandem_engine::exec::jobs;
use tandem_engine::exec::progress::ProgressMode;
use tandem_engine::store::{JobKind, JobState, LogBody, LogQuery};
use tandem_sandbox::Sandbox;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::admin::edit;
use crate::support::closed_port;
use crate::support::exec::*;

/// A sandbox of 60 companies whose Accelo allows 40 requests an hour (a pull runs out), and a
/// project on it.
async fn budget_bound(seed: u64) -> (Sandbox, Project) {
    let sb = tandem_sandbox::Sandbox::start(tandem_sandbox::SandboxOptions {
        seed,
        companies: 60,
        contacts: 0,
        rate_limits: tandem_sandbox::RateLimits {
            accelo_per_hour: Some(40),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let p = Project::new(&sb, "");
    (sb, p)
}

/// Reads a command's stderr into `seen` up to and including the first line `stop` accepts;
/// fails after a minute without it, or when the output ends.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    seen: &mut Vec<String>,
    stop: impl Fn(&str) -> bool,
) {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the line did not come: {seen:#?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("stderr ended: {seen:#?}"));
        let done = stop(&line);
        seen.push(line);
        if done {
            return;
        }
    }
}

async fn run(p: &Project, kind: JobKind, id: Option<&str>, force: bool) -> Output {
    run_job(
        p.options(),
        kind,
        jobs::payload(kind, id, force),
        ProgressMode::Silent,
    )
    .await
}

fn stats(sb: &Sandbox) -> Value {
    json!({"hubspot": sb.hubspot_stats(), "accelo": sb.accelo_stats()})
}

async fn world(p: &Project, sb: &Sandbox) -> World {
    let store = p.store().await;
    World::read(&program(), &*hubspot(sb), &*accelo(sb), store.as_ref()).await
}

fn assert_ok(out: &Output) {
    assert_eq!(
        out.exit,
        Exit::Ok,
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

#[tokio::test]
async fn pull_imports_the_qualifying_records_once() {
    let sb = sandbox(21, 90, 300).await;
    let p = Project::new(&sb, "");
    let before = world(&p, &sb).await;
    let planned = before.plan(&program(), Direction::Pull);

    let out = run(&p, JobKind::Pull, None, false).await;
    assert_ok(&out);
    assert!(
        out.stdout
            .starts_with(&format!("pull job {} finished", out.job.unwrap())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("{} created", planned.summary.create))
    );
    assert!(
        out.stderr.contains("sync log: tandem log --job"),
        "{}",
        out.stderr
    );

    // Accelo holds exactly the qualifying HubSpot records: every HubSpot record the plan did
    // not skip is linked to an Accelo record, skipped ones are not, and Accelo grew by the
    // creates only (duplicates were linked, not recreated).
    let after = world(&p, &sb).await;
    let linked: HashSet<(Object, &str)> = after
        .links
        .iter()
        .map(|l| (l.object, l.hubspot_id.as_str()))
        .collect();
    for a in &planned.actions {
        let key = (a.object, a.source.id.as_deref().unwrap());
        assert_eq!(
            linked.contains(&key),
            a.op != Op::Skip,
            "{:?} {:?}: {}",
            a.object,
            a.source.id,
            a.reason
        );
        if a.object == Object::Contact && a.reason.contains("no company") {
            assert!(!linked.contains(&key));
        }
    }
    assert!(
        planned
            .actions
            .iter()
            .any(|a| a.reason.contains("no company"))
    );
    for object in Object::ALL {
        let creates = planned
            .actions
            .iter()
            .filter(|a| a.object == object && a.op == Op::Create)
            .count();
        assert_eq!(
            after.count(&after.accelo, object),
            before.count(&before.accelo, object) + creates
        );
    }

    // Again: zero write requests.
    let s0 = stats(&sb);
    let again = run(&p, JobKind::Pull, None, false).await;
    assert_ok(&again);
    assert!(
        again.stdout.contains(" 0 created, 0 updated, 0 linked"),
        "{}",
        again.stdout
    );
    assert_eq!(total_writes(&stats(&sb)), total_writes(&s0));

    // One field changed in HubSpot: the next pull writes exactly that record.
    let contact = after
        .links
        .iter()
        .find(|l| l.object == Object::Contact)
        .unwrap();
    edit(
        sb.hubspot_url(),
        "contacts",
        Some(contact.hubspot_id.as_str()),
        json!({"jobtitle": "Chief Tandem Officer"}),
    )
    .await;
    let s1 = stats(&sb);
    let third = run(&p, JobKind::Pull, None, false).await;
    assert_ok(&third);
    assert!(third.stdout.contains(" 1 updated"), "{}", third.stdout);
    let d = write_routes(&delta(&s1["accelo"], &stats(&sb)["accelo"]));
    assert_eq!(
        d,
        BTreeMap::from([("PUT /api/v0/affiliations/{id}".to_string(), 1)]),
        "the job title lives on the affiliation"
    );
    assert_eq!(writes(&stats(&sb)["hubspot"]), writes(&s1["hubspot"]));
    // The jobs are in the store, done, with their runs in the log.
    let store = p.store().await;
    for job in [out.job, again.job, third.job] {
        let j = store.job(job.unwrap()).await.unwrap().unwrap();
        assert_eq!((j.kind, j.state), (JobKind::Pull, JobState::Succeeded));
    }
    let log = store
        .log(&LogQuery {
            job: third.job,
            ..LogQuery::default()
        })
        .await
        .unwrap();
    let updated = log
        .iter()
        .find_map(|e| match &e.body {
            LogBody::Record(r) if r.outcome == tandem_engine::store::Outcome::Updated => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(updated.changes.len(), 1);
    assert_eq!(updated.changes[0].field, "affiliation.position");
    assert_eq!(
        updated.changes[0].to.as_deref(),
        Some("Chief Tandem Officer")
    );
    sb.shutdown().await;
}

/// An aiosmtpd server on a port the OS picks (tests/python/smtp_sink.py).
struct Sink {
    port: u16,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl Sink {
    async fn start() -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new("python3")
            .arg(root.join("tests/python/smtp_sink.py"))
            .arg(dir.path())
            .args(["--tls", "none"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with aiosmtpd is needed (pip install aiosmtpd)");
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line),
        )
        .await
        .expect("the SMTP sink did not start")
        .unwrap();
        Sink {
            port: line.trim().parse().expect("a port"),
            dir,
            _child: child,
        }
    }

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
}

#[tokio::test]
async fn push_exports_in_batches_of_100_and_emails_the_summary() {
    let sb = sandbox(22, 260, 420).await;
    let sink = Sink::start().await;
    let p = Project::new(
        &sb,
        &format!(
            "notify:\n  email:\n    server: 127.0.0.1:{}\n    tls: none\n    from: tandem@example.com\n    to: [crm@example.com]\n",
            sink.port
        ),
    );
    let before = world(&p, &sb).await;
    let planned = before.plan(&program(), Direction::Push);
    let creates = |object| {
        planned
            .actions
            .iter()
            .filter(|a| a.object == object && a.op == Op::Create)
            .count() as u64
    };
    assert!(creates(Object::Company) > 100 && creates(Object::Contact) > 100);
    let s0 = stats(&sb);
    let out = run(&p, JobKind::Push, None, false).await;
    assert_ok(&out);
    let hs = delta(&s0["hubspot"], &stats(&sb)["hubspot"]);
    for (object, route) in [
        (
            Object::Company,
            "POST /crm/v3/objects/companies/batch/create",
        ),
        (
            Object::Contact,
            "POST /crm/v3/objects/contacts/batch/create",
        ),
    ] {
        assert_eq!(hs[route], creates(object).div_ceil(100), "{route}: {hs:?}");
    }
    assert!(!hs.keys().any(|k| k.starts_with("PATCH ")), "{hs:?}");

    // The email: one message, with the counts and the job.
    let job = out.job.unwrap();
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let content = msgs[0]["content"].as_str().unwrap();
    assert!(content.contains(&format!("job {job}")), "{content}");
    assert!(
        content.contains(&format!(
            "{:<10} {:>8}",
            "created",
            creates(Object::Company) + creates(Object::Contact)
        )),
        "{content}"
    );
    assert_eq!(msgs[0]["rcpt_tos"], json!(["crm@example.com"]));

    // Again: nothing written, and a second email.
    let s1 = stats(&sb);
    assert_ok(&run(&p, JobKind::Push, None, false).await);
    assert_eq!(total_writes(&stats(&sb)), total_writes(&s1));
    assert_eq!(sink.messages().len(), 2);

    // One Accelo edit: one HubSpot batch update.
    let after = world(&p, &sb).await;
    let company = after
        .links
        .iter()
        .find(|l| l.object == Object::Company)
        .unwrap();
    edit(
        sb.accelo_url(),
        "companies",
        Some(company.accelo_id.as_str()),
        json!({"phone": "+61 3 5550 0000"}),
    )
    .await;
    let s2 = stats(&sb);
    let third = run(&p, JobKind::Push, None, false).await;
    assert_ok(&third);
    assert_eq!(
        write_routes(&delta(&s2["hubspot"], &stats(&sb)["hubspot"])),
        BTreeMap::from([("POST /crm/v3/objects/companies/batch/update".to_string(), 1)])
    );

    // Push-one runs send no email.
    let n = sink.messages().len();
    assert_ok(&run(&p, JobKind::PushCompany, Some(&company.accelo_id), false).await);
    assert_eq!(sink.messages().len(), n);
    sb.shutdown().await;
}

#[tokio::test]
async fn push_one_company_or_one_contact() {
    let sb = sandbox(23, 40, 160).await;
    let p = Project::new(&sb, "");
    let before = world(&p, &sb).await;
    // An Accelo company with several contacts, none of it in HubSpot yet… or partly: whatever
    // the plan says for its scope is what gets written, and nothing else.
    let mut by_company: BTreeMap<String, Vec<&tandem_core::model::Record>> = BTreeMap::new();
    for r in before.accelo.iter().filter(|r| r.object == Object::Contact) {
        if let Some(c) = &r.company_id {
            by_company.entry(c.clone()).or_default().push(r);
        }
    }
    let (company, contacts) = by_company
        .iter()
        .max_by_key(|(_, v)| v.len())
        .map(|(k, v)| (k.clone(), v.len()))
        .unwrap();
    assert!(contacts >= 2);
    let s0 = stats(&sb);
    let out = run(&p, JobKind::PushCompany, Some(&company), false).await;
    assert_ok(&out);
    let store = p.store().await;
    let log = store
        .log(&LogQuery {
            job: out.job,
            ..LogQuery::default()
        })
        .await
        .unwrap();
    let records: Vec<_> = log
        .iter()
        .filter_map(|e| match &e.body {
            LogBody::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    // The company and each of its contacts, and nothing else.
    assert_eq!(records.len(), 1 + contacts, "{records:#?}");
    assert!(records.iter().all(|r| {
        r.object == Object::Company && r.source.id.as_deref() == Some(company.as_str())
            || r.object == Object::Contact
    }));
    let LogBody::RunStarted(started) = &log[0].body else {
        panic!()
    };
    assert_eq!(
        started.subject.as_deref(),
        Some(format!("accelo:company:{company}").as_str())
    );
    // Only HubSpot was written; a bulk push now has nothing to do for that company.
    assert_eq!(writes(&stats(&sb)["accelo"]), writes(&s0["accelo"]));
    let plan = world(&p, &sb).await.plan(&program(), Direction::Push);
    for a in &plan.actions {
        if a.object == Object::Company && a.source.id.as_deref() == Some(company.as_str()) {
            assert!(matches!(a.op, Op::Noop), "{a:?}");
        }
    }

    // A contact the criteria skip (standing inactive) is pushed anyway when named (B9).
    let inactive = before
        .accelo
        .iter()
        .find(|r| {
            r.object == Object::Contact
                && r.get("standing").as_deref() == Some("inactive")
                && r.company_id.is_some()
        })
        .unwrap();
    let bulk = before.plan(&program(), Direction::Push);
    let action = bulk
        .actions
        .iter()
        .find(|a| a.object == Object::Contact && a.source.id.as_deref() == Some(&inactive.id))
        .unwrap();
    assert_eq!(action.op, Op::Skip, "{}", action.reason);
    let one = run(&p, JobKind::PushContact, Some(&inactive.id), false).await;
    assert_ok(&one);
    let link = store
        .link(
            Object::Contact,
            tandem_core::model::System::Accelo,
            &inactive.id,
        )
        .await
        .unwrap();
    assert!(link.is_some(), "{}", one.stdout);

    // An id that does not exist: exit 2, nothing written.
    let s1 = stats(&sb);
    let missing = run(&p, JobKind::PushCompany, Some("987654"), false).await;
    assert_eq!(missing.exit, Exit::Invalid, "{}", missing.stderr);
    assert!(missing.stderr.contains("987654"), "{}", missing.stderr);
    assert_eq!(total_writes(&stats(&sb)), total_writes(&s1));
    sb.shutdown().await;
}

#[tokio::test]
async fn guardrails_stop_the_run_before_any_write_unless_forced() {
    let sb = sandbox(24, 30, 80).await;
    let p = Project::new(&sb, "sync:\n  guardrails:\n    max_create: 5\n");
    let s0 = stats(&sb);
    let out = run(&p, JobKind::Pull, None, false).await;
    assert_eq!(out.exit, Exit::Failures, "{}", out.stderr);
    assert!(
        out.stderr.contains("guardrail `max_create`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("the limit is 5"), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(total_writes(&stats(&sb)), total_writes(&s0));
    let store = p.store().await;
    let job = store.job(out.job.unwrap()).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.error.unwrap().contains("max_create"));

    let forced = run(&p, JobKind::Pull, None, true).await;
    assert_ok(&forced);
    assert!(total_writes(&stats(&sb)) > total_writes(&s0));
    sb.shutdown().await;
}

#[tokio::test]
async fn apply_runs_a_saved_plan_and_refuses_a_stale_one() {
    let sb = sandbox(25, 30, 90).await;
    let p = Project::new(&sb, "");
    let file = p.dir.path().join("pull.plan.json");
    let plan_args = |out: &Path| tandem::cli::plan::Args {
        direction: tandem::cli::plan::DirectionArg::Pull,
        company: None,
        contact: None,
        only: vec![],
        object: None,
        json: false,
        out: Some(out.to_path_buf()),
        config: Default::default(),
    };
    let made = tandem::cli::plan::render(&plan_args(&file), p.options(), false).await;
    assert_eq!(made.exit, Exit::Ok, "{}", made.stderr);
    let apply = |f: &Path| tandem::cli::apply::Args {
        file: f.to_path_buf(),
        force: false,
        config: Default::default(),
    };
    let out = tandem::cli::apply::apply(&apply(&file), p.options(), ProgressMode::Silent).await;
    assert_ok(&out);
    let store = p.store().await;
    let job = store.job(out.job.unwrap()).await.unwrap().unwrap();
    assert_eq!(job.kind, JobKind::Apply);
    // The plan was applied exactly: a new plan has nothing left to do.
    let after = world(&p, &sb).await.plan(&program(), Direction::Pull);
    assert_eq!(
        after.summary.create + after.summary.update + after.summary.link,
        0
    );

    // A plan whose data changed is refused with what changed, and writes nothing.
    let stale = p.dir.path().join("stale.plan.json");
    let made = tandem::cli::plan::render(&plan_args(&stale), p.options(), false).await;
    assert_eq!(made.exit, Exit::Ok);
    let hs_company = world(&p, &sb)
        .await
        .hubspot
        .into_iter()
        .find(|r| r.object == Object::Company)
        .unwrap();
    edit(
        sb.hubspot_url(),
        "companies",
        Some(hs_company.id.as_str()),
        json!({"city": "Wollongong"}),
    )
    .await;
    let s0 = stats(&sb);
    let refused =
        tandem::cli::apply::apply(&apply(&stale), p.options(), ProgressMode::Silent).await;
    assert_eq!(refused.exit, Exit::Invalid, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("changed since the plan was made"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&hs_company.id),
        "{}",
        refused.stderr
    );
    assert_eq!(total_writes(&stats(&sb)), total_writes(&s0));

    // A file that is not a saved plan: exit 2 before anything is queued.
    let junk = p.dir.path().join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    let bad = tandem::cli::apply::apply(&apply(&junk), p.options(), ProgressMode::Silent).await;
    assert_eq!(bad.exit, Exit::Invalid);
    assert!(bad.job.is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn the_real_binary_pulls_and_a_bad_config_is_exit_2() {
    let sb = sandbox(26, 20, 60).await;
    let p = Project::new(&sb, "");
    let out = p.command(&["pull"]).output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("pull job 1 finished"), "{stdout}");
    // Plain progress lines on stderr when it is not a terminal.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pull: 0/"), "{stderr}");

    let out = p
        .command(&["push", "company", "1"])
        .env_remove("HS_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HS_TOKEN"), "{stderr}");

    // Unreachable HubSpot: exit 3 (in-process, with quick retries).
    let mut unreachable = Project::new(&sb, "");
    unreachable.env.insert(
        "TANDEM_HUBSPOT_URL".into(),
        format!("http://127.0.0.1:{}", closed_port()),
    );
    let out = run(&unreachable, JobKind::Pull, None, false).await;
    assert_eq!(out.exit, Exit::Unreachable, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot reach hubspot"),
        "{}",
        out.stderr
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pull_follows_the_running_one() {
    let sb = sandbox(27, 120, 400).await;
    // Slow enough that the first run is still going when the second starts.
    sb.set_faults(tandem_sandbox::FaultConfig {
        latency_ms: 5,
        ..Default::default()
    })
    .unwrap();
    let p = Project::new(&sb, "");
    let store = p.store().await;
    let first = p
        .command(&["pull"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let job = running_job(store.as_ref(), deadline).await;
    let second = run(&p, JobKind::Pull, None, false).await;
    assert_ok(&second);
    assert_eq!(second.job, Some(job.id), "{}", second.stderr);
    let out = first.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("pull job {} finished", job.id)),
        "{stdout}"
    );
    // One job, run once.
    let jobs = store
        .jobs(&tandem_engine::store::JobFilter::default())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 1);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_takes_the_job_over_when_its_runner_dies() {
    let sb = sandbox(28, 120, 400).await;
    sb.set_faults(tandem_sandbox::FaultConfig {
        latency_ms: 5,
        ..Default::default()
    })
    .unwrap();
    let p = Project::new(&sb, "");
    let store = p.store().await;
    let mut first = p.command(&["pull"]).spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let job = running_job(store.as_ref(), deadline).await;
    let follower = tokio::spawn(run_job(
        p.options(),
        JobKind::Pull,
        jobs::payload(JobKind::Pull, None, false),
        ProgressMode::Silent,
    ));
    // Once the follower watches (it has nothing to claim yet), the runner dies.
    while !store
        .log(&LogQuery {
            job: Some(job.id),
            ..LogQuery::default()
        })
        .await
        .unwrap()
        .iter()
        .any(|e| matches!(e.body, LogBody::Record(_)))
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), follower)
        .await
        .expect("the follower finishes")
        .unwrap();
    assert_ok(&out);
    assert_eq!(out.job, Some(job.id));
    let j = store.job(job.id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Succeeded, 2));
    let plan = world(&p, &sb).await.plan(&program(), Direction::Pull);
    assert_eq!(
        plan.summary.create + plan.summary.update + plan.summary.link,
        0
    );
    sb.shutdown().await;
}

/// The first job found running, polled until `deadline`.
async fn running_job(
    store: &dyn tandem_engine::store::Store,
    deadline: tokio::time::Instant,
) -> tandem_engine::store::Job {
    loop {
        let jobs = store
            .jobs(&tandem_engine::store::JobFilter::default())
            .await
            .unwrap();
        if let Some(j) = jobs.into_iter().find(|j| j.state == JobState::Running) {
            return j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first pull never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An address where nothing listens, before the system ever answered, is not retried for a
/// minute: the command fails at once with exit 3 and names the setting that gave the address —
/// the environment variable when one is set.
#[tokio::test]
async fn an_address_that_refuses_connections_fails_at_once_naming_its_setting() {
    let sb = sandbox(5, 5, 10).await;
    let mut p = Project::new(&sb, "");
    p.env.insert(
        "TANDEM_ACCELO_URL".into(),
        format!("http://127.0.0.1:{}", closed_port()),
    );
    let out = p.command(&["plan", "pull"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot reach accelo"), "{stderr}");
    assert!(
        stderr.contains("nothing is listening at this address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the environment variable `TANDEM_ACCELO_URL`"),
        "{stderr}"
    );
    // Not retried: no retry was announced, and the message counts no attempts.
    assert!(!stderr.contains("retry"), "{stderr}");
    assert!(!stderr.contains("attempts"), "{stderr}");
    sb.shutdown().await;
}

/// A system that answers with errors is retried, and every retry is announced on stderr in
/// words, with its number and its wait.
#[tokio::test]
async fn every_retry_is_announced() {
    let sb = sandbox(5, 5, 10).await;
    // Some answers to Accelo's company list are 503s (seeded: the same every run).
    sb.set_faults(tandem_sandbox::FaultConfig {
        seed: 5,
        errors: BTreeMap::from([(503, 0.6)]),
        only: vec!["GET /api/v0/companies".into()],
        ..Default::default()
    })
    .unwrap();
    let p = Project::new(&sb, "");
    let out = p.command(&["plan", "pull"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let faults = sb.accelo_stats();
    let refused = faults["faults"]["503"].as_u64().unwrap_or(0);
    assert!(refused > 0, "{faults}");
    let announced: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("accelo answered 503, retry "))
        .collect();
    assert_eq!(announced.len() as u64, refused, "{stderr}");
    assert!(
        announced[0]
            .trim()
            .starts_with("accelo answered 503, retry 1 of 8 in "),
        "{stderr}"
    );
    sb.shutdown().await;
}

/// Ctrl-C (SIGINT) and SIGTERM stop a run promptly even while it waits on a system that does
/// not answer: the job is released (queued, not left `running`), the command says how to
/// continue and exits 130, and the same command then finishes the job without creating
/// anything twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_stops_a_waiting_run_and_the_same_command_continues_it() {
    let sb = sandbox(29, 20, 0).await;
    let p = Project::new(&sb, "");
    let store = p.store().await;
    let creates = |sb: &Sandbox| {
        sb.accelo_stats()["requests"]["POST /api/v0/companies"]
            .as_u64()
            .unwrap_or(0)
    };
    for signal in ["-TERM", "-INT"] {
        // Every Accelo company create takes a minute to answer.
        sb.set_faults(tandem_sandbox::FaultConfig {
            latency_ms: 60_000,
            only: vec!["POST /api/v0/companies".into()],
            ..Default::default()
        })
        .unwrap();
        let before = creates(&sb);
        let child = p
            .command(&["pull"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        // Wait until the run is inside a create that does not answer.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while creates(&sb) == before {
            assert!(tokio::time::Instant::now() < deadline, "no create was sent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let killed = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let out = tokio::time::timeout(Duration::from_secs(50), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{signal}: the run did not stop"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
        assert!(
            stderr.contains("run the same command again to continue job 1"),
            "{signal}: {stderr}"
        );
        let jobs = store
            .jobs(&tandem_engine::store::JobFilter::default())
            .await
            .unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].state, JobState::Queued, "{signal}: {:?}", jobs[0]);
    }
    sb.set_faults(tandem_sandbox::FaultConfig::default())
        .unwrap();
    let out = p.command(&["pull"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("resuming pull job 1"), "{stderr}");
    // Nothing twice: the creates the signals cut off were settled by lookup.
    let names: Vec<String> = read_all(&*accelo(&sb), Object::Company, &[])
        .await
        .into_iter()
        .filter_map(|r| r.get("name"))
        .collect();
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    assert!(store.open_intents().await.unwrap().is_empty());
    sb.shutdown().await;
}

/// A pull that Accelo's hourly budget will make slow says so before it writes — how many
/// requests, and how long at that budget — its time left counts the budget, and once the
/// budget is spent it says what it waits for and until when, instead of seeming to stall.
/// Ctrl-C still stops it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_slowed_by_the_budget_says_what_it_costs_and_what_it_waits_for() {
    let (sb, p) = budget_bound(30).await;
    let mut child = p
        .command(&["pull"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    read_until(&mut lines, &mut seen, |l| {
        l.contains("waiting for accelo's hourly budget, resumes at ")
    })
    .await;
    let cost = seen
        .iter()
        .find(|l| l.starts_with("this pull sends about "))
        .unwrap_or_else(|| panic!("no cost said: {seen:#?}"));
    assert!(
        cost.contains(" requests to accelo; at 40 an hour that takes about "),
        "{cost}"
    );
    // The time left counts the budget, not the (fast) rate of the first records.
    let progress = seen
        .iter()
        .find(|l| l.starts_with("pull: 0/"))
        .unwrap_or_else(|| panic!("no progress line: {seen:#?}"));
    let took = cost.rsplit("that takes about ").next().unwrap_or_default();
    assert!(
        progress.ends_with(&format!("(0%, about {took} left)")),
        "{progress} / {cost}"
    );
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(50), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130), "{seen:#?}");
    // The cost is in the sync log too.
    let store = p.store().await;
    let log = store.log(&LogQuery::default()).await.unwrap();
    assert!(
        log.iter().any(|e| matches!(&e.body, LogBody::Notice(n) if n.message.starts_with("this pull sends about "))),
        "{log:#?}"
    );
    sb.shutdown().await;
}

/// `(the resume time, the wait)` of a budget-wait notice: `waiting for accelo's hourly budget,
/// resumes at 15:02:10 UTC (in 58 min 3 s)`.
fn budget_wait(message: &str) -> Option<(chrono::NaiveTime, Duration)> {
    let rest = message.strip_prefix("waiting for accelo's hourly budget, resumes at ")?;
    let (time, rest) = rest.split_once(" UTC (in ")?;
    let time = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").ok()?;
    let rest = rest.strip_suffix(')')?;
    let mut secs = 0u64;
    let words: Vec<&str> = rest.split_whitespace().collect();
    for pair in words.chunks(2) {
        let n: u64 = pair.first()?.parse().ok()?;
        secs += match *pair.get(1)? {
            "min" => n * 60,
            "s" => n,
            "ms" => 0,
            _ => return None,
        };
    }
    Some((time, Duration::from_secs(secs)))
}

/// While a pull waits on Accelo's hourly budget, its sync log says so, once for the wait, with
/// the time it resumes: `tandem log --follow` shows why nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_wait_is_one_notice_in_the_sync_log_with_the_resume_time() {
    let (sb, p) = budget_bound(31).await;
    let mut child = p
        .command(&["pull"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let waits = |log: &[tandem_engine::store::LogEntry]| -> Vec<(tandem_engine::store::LogEntry, chrono::NaiveTime, Duration)> {
        log.iter()
            .filter_map(|e| match &e.body {
                LogBody::Notice(n) if n.message.starts_with("waiting for ") => {
                    let (t, d) = budget_wait(&n.message)
                        .unwrap_or_else(|| panic!("unexpected wait notice `{}`", n.message));
                    Some((e.clone(), t, d))
                }
                _ => None,
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if p.store_path().exists() {
            let log = p.store().await.log(&LogQuery::default()).await.unwrap();
            if !waits(&log).is_empty() {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no budget wait in the sync log"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended without waiting"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(50), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let log = p.store().await.log(&LogQuery::default()).await.unwrap();
    let found = waits(&log);
    // One entry for the wait, however many requests were held by it.
    assert_eq!(found.len(), 1, "{found:#?}");
    let (entry, resumes, wait) = &found[0];
    let job = log
        .iter()
        .find_map(|e| match &e.body {
            LogBody::RunStarted(s) if s.job_kind == JobKind::Pull => e.job,
            _ => None,
        })
        .expect("the pull's start");
    assert_eq!(entry.job, Some(job));
    // Accelo's window is an hour: most of it is left when the budget is spent.
    assert!(*wait >= Duration::from_secs(60), "{wait:?}");
    // The wait began at most when the entry was written (the entry follows it, a moment
    // later on a busy machine): it resumes its length after that.
    let latest = (entry.at + chrono::Duration::from_std(*wait).unwrap()).time();
    let early = (latest - *resumes).num_seconds().rem_euclid(86_400);
    assert!(
        early <= 30 || early >= 86_398,
        "resumes at {resumes}, expected shortly before {latest}"
    );
    sb.shutdown().await;
}

/// Links that also change fields are not hidden among the links: the plan's summary says how
/// many links change fields and how many values they overwrite, and the run's summary line says
/// the same of what it did — the same numbers.
#[tokio::test]
async fn links_that_overwrite_values_say_so_in_the_plan_and_the_run() {
    let sb = sandbox(1, 50, 200).await;
    let p = Project::new(&sb, "");
    let out = p
        .command(&["plan", "pull", "--json"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let with_changes = plan["summary"]["link_with_changes"].as_u64().unwrap_or(0);
    let overwrites = plan["summary"]["link_overwrites"].as_u64().unwrap_or(0);
    assert!(with_changes > 0 && overwrites > 0, "{}", plan["summary"]);
    let text = p.command(&["plan", "pull"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    let detail = format!(
        "to link ({with_changes} of them also change fields, overwriting {overwrites} values)"
    );
    assert!(text.contains(&detail), "{detail}\n{text}");
    let run = p.command(&["pull"]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}");
    let detail = format!(
        "linked ({with_changes} of them with fields changed, {overwrites} values overwritten)"
    );
    assert!(stdout.contains(&detail), "{detail}\n{stdout}");
    sb.shutdown().await;
}

/// A run whose job was interrupted ten times is given up with its own exit code (4, not 2:
/// nothing about the input is wrong), a message that says what to do, and the interrupted
/// attempts in the sync log. Running the command again starts a new job that goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_interrupted_ten_times_is_given_up_with_exit_4() {
    let sb = sandbox(29, 20, 40).await;
    let p = Project::new(&sb, "");
    let store = p.store().await;
    let id = store
        .enqueue(&tandem_engine::store::NewJob::new(
            JobKind::Pull,
            jobs::payload(JobKind::Pull, None, false),
        ))
        .await
        .unwrap()
        .id;
    // Ten attempts by processes that died: their leases ran out at once.
    for n in 0..10 {
        store
            .claim(id, &format!("killed-{n}"), Duration::ZERO)
            .await
            .unwrap()
            .expect("claimable again");
    }
    let out = p.command(&["pull"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "gave up on pull job {id} after 10 interrupted attempts"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("tandem log --job {id}")),
        "{stderr}"
    );
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let finished = store
        .log(&LogQuery {
            job: Some(id),
            ..LogQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find_map(|e| match e.body {
            LogBody::RunFinished(f) => Some(f),
            _ => None,
        })
        .expect("a run_finished entry");
    assert_eq!(finished.state, JobState::Failed);
    assert_eq!(finished.failure.as_deref(), Some("gave_up"));
    assert_eq!(finished.interrupted, 10);
    // `tandem log` shows the count.
    let log = p
        .command(&["log", "--job", &id.to_string()])
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&log.stdout);
    assert!(shown.contains("10 interrupted attempts before"), "{shown}");

    // The same command again is a new job, and it goes through.
    let again = run(&p, JobKind::Pull, None, false).await;
    assert_ok(&again);
    assert_ne!(again.job, Some(id));
}

/// The counter of one metric line of the text exposition whose labels include every one of
/// `labels` (`name{a="b",…} value`); 0 when absent.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A run shows in the metrics: runs and their records by outcome, the API requests it sent by
/// system, route and status, the budget left, and the queue.
#[tokio::test]
async fn a_run_is_counted_in_the_metrics() {
    tandem_engine::server::metrics::install();
    // With the real budgets, whose headers report what is left.
    let sb = tandem_sandbox::Sandbox::start(tandem_sandbox::SandboxOptions {
        seed: 33,
        companies: 10,
        contacts: 20,
        ..Default::default()
    })
    .await
    .unwrap();
    let p = Project::new(&sb, "");
    let before = tandem_engine::server::metrics::render().unwrap_or_default();
    let runs = |t: &str| {
        metric(
            t,
            "tandem_runs_total",
            &["kind=\"pull\"", "outcome=\"succeeded\""],
        )
    };
    let out = run(&p, JobKind::Pull, None, false).await;
    assert_ok(&out);
    let store = p.store().await;
    tandem_engine::server::metrics::observe_queue(store.as_ref()).await;
    let after = tandem_engine::server::metrics::render().unwrap();
    // The recorder is the process's: other tests' runs may be counted meanwhile too.
    assert!(runs(&after) - runs(&before) >= 1.0, "{after}");
    assert!(
        metric(
            &after,
            "tandem_records_total",
            &["kind=\"pull\"", "outcome=\"created\""]
        ) > 0.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            "tandem_api_requests_total",
            &[
                "system=\"accelo\"",
                "route=\"POST /api/v0/companies\"",
                "status=\"200\""
            ]
        ) > 0.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            "tandem_api_requests_total",
            &[
                "system=\"hubspot\"",
                "route=\"GET /crm/v3/objects/companies\""
            ]
        ) > 0.0,
        "{after}"
    );
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("tandem_api_budget_remaining{system=\"accelo\"}")),
        "{after}"
    );
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("tandem_queue_jobs{state=\"queued\"}")),
        "{after}"
    );
    sb.shutdown().await;
}

/// `TANDEM_LOG_FORMAT=json`: every line on stderr that is a log line is one JSON object, and the
/// lines a run logs carry its job id.
#[tokio::test]
async fn json_logs_carry_the_job() {
    let sb = sandbox(34, 5, 10).await;
    let p = Project::new(&sb, "");
    let out = p
        .command(&["pull"])
        .env("TANDEM_LOG_FORMAT", "json")
        .env("TANDEM_LOG", "info")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let logs: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let in_job: Vec<&Value> = logs.iter().filter(|v| v.get("span").is_some()).collect();
    assert!(!in_job.is_empty(), "{stderr}");
    for v in in_job {
        assert_eq!(v["span"]["job"], "1", "{v}");
        assert_eq!(v["span"]["kind"], "pull", "{v}");
    }
    sb.shutdown().await;
}

/// `accelo.requests_per_hour` in tandem.yaml is the most Tandem spends of Accelo's budget: the
/// run paces itself and estimates its time with it, even when Accelo would allow more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_accelo_budget_bounds_the_run() {
    let sb = tandem_sandbox::Sandbox::start(tandem_sandbox::SandboxOptions {
        seed: 31,
        companies: 60,
        contacts: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let p = Project::new(&sb, "");
    let config = std::fs::read_to_string(p.config()).unwrap();
    std::fs::write(
        p.config(),
        config.replace(
            "client_secret_env: AC_SECRET\n",
            "client_secret_env: AC_SECRET\n  requests_per_hour: 30\n",
        ),
    )
    .unwrap();
    let mut child = p
        .command(&["pull"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    read_until(&mut lines, &mut seen, |l| {
        l.starts_with("this pull sends about ")
    })
    .await;
    let cost = seen.last().cloned().unwrap_or_default();
    assert!(
        cost.contains(" requests to accelo; at 30 an hour that takes about "),
        "{cost}"
    );
    child.kill().await.unwrap();
}
