//! Hot reload with real file edits in a temporary directory: a valid edit swaps the program, an
//! invalid edit keeps it and reports diagnostics, a valid edit after that swaps again, and an
//! editor-style save (write a temporary file, rename it over the original) is noticed. Every
//! wait is on the reloader's change notification with a deadline — never a sleep.

#![allow(clippy::unwrap_used)] // test code: a panic is a failure

use std::path::Path;
use std::time::Duration;

use tandem::compile::watch::{ReloadEvent, ReloadOutcome, Reloader};
use tandem::rules::Paths;
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(20);

fn setup() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tandem.yaml", "companies.yaml", "contacts.yaml"] {
        std::fs::copy(
            Path::new("tests/fixtures/rules/valid").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    let paths = Paths {
        config: dir.path().join("tandem.yaml"),
        rules_dir: dir.path().to_path_buf(),
    };
    (dir, paths)
}

/// Waits (with a deadline) for an event after `after` that satisfies `pred`.
async fn wait(
    rx: &mut watch::Receiver<ReloadEvent>,
    after: u64,
    pred: impl Fn(&ReloadOutcome) -> bool,
) -> ReloadEvent {
    let got = tokio::time::timeout(
        DEADLINE,
        rx.wait_for(|e| e.generation > after && pred(&e.outcome)),
    )
    .await
    .unwrap_or_else(|_| panic!("no matching reload event within {DEADLINE:?}"))
    .unwrap();
    got.clone()
}

fn rejected_with(code: &'static str) -> impl Fn(&ReloadOutcome) -> bool {
    move |o| match o {
        ReloadOutcome::Rejected { report } => {
            report.diagnostics().iter().any(|d| d.code.as_str() == code)
        }
        _ => false,
    }
}

fn reloaded(o: &ReloadOutcome) -> bool {
    matches!(o, ReloadOutcome::Reloaded { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_edits_swap_invalid_edits_keep_the_running_program() {
    let (dir, paths) = setup();
    let reloader = Reloader::spawn_with(paths, Duration::from_millis(100)).unwrap();
    let mut rx = reloader.subscribe();
    let start = reloader.current();
    assert!(start.triggers(tandem::model::Object::Company, "domain"));
    let companies = dir.path().join("companies.yaml");
    let original = std::fs::read_to_string(&companies).unwrap();

    // 1. A valid edit: a new trigger.
    std::fs::write(
        &companies,
        original.replace("[created, name, domain]", "[created, name, domain, phone]"),
    )
    .unwrap();
    let e1 = wait(&mut rx, 0, reloaded).await;
    let p1 = reloader.current();
    assert_ne!(p1.rules_hash(), start.rules_hash());
    assert!(p1.triggers(tandem::model::Object::Company, "phone"));
    match &e1.outcome {
        ReloadOutcome::Reloaded { rules_hash, .. } => assert_eq!(rules_hash, p1.rules_hash()),
        other => panic!("{other:?}"),
    }

    // 2. An invalid edit: the running program stays, the diagnostics are announced.
    std::fs::write(
        &companies,
        original.replace("[created, name, domain]", "[created, name, domian]"),
    )
    .unwrap();
    let e2 = wait(&mut rx, e1.generation, rejected_with("E021")).await;
    assert_eq!(reloader.current().rules_hash(), p1.rules_hash());
    if let ReloadOutcome::Rejected { report } = &e2.outcome {
        let text = report.render_human(false);
        assert!(text.contains("unknown trigger `domian`"), "{text}");
    }

    // 3. A valid edit after the invalid one swaps again.
    std::fs::write(
        &companies,
        original.replace("[created, name, domain]", "[created, name, website]"),
    )
    .unwrap();
    wait(&mut rx, e2.generation, reloaded).await;
    let p3 = reloader.current();
    assert!(p3.triggers(tandem::model::Object::Company, "website"));
    assert!(!p3.triggers(tandem::model::Object::Company, "domain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_saves_by_rename_are_noticed() {
    let (dir, paths) = setup();
    let reloader = Reloader::spawn_with(paths, Duration::from_millis(100)).unwrap();
    let mut rx = reloader.subscribe();
    let before = reloader.current();
    let contacts = dir.path().join("contacts.yaml");
    let text = std::fs::read_to_string(&contacts).unwrap();

    // Like vim / JetBrains "safe write": a temporary file renamed over the original.
    let tmp = dir.path().join(".contacts.yaml.swp");
    std::fs::write(
        &tmp,
        text.replace("[created, email]", "[created, email, phone]"),
    )
    .unwrap();
    std::fs::rename(&tmp, &contacts).unwrap();

    wait(&mut rx, 0, reloaded).await;
    let after = reloader.current();
    assert_ne!(after.rules_hash(), before.rules_hash());
    assert!(after.triggers(tandem::model::Object::Contact, "phone"));

    // An invalid config blocks the swap too: the whole set must be valid.
    let e = rx.borrow().generation;
    std::fs::write(
        dir.path().join("tandem.yaml"),
        "hubspot: {token_env: HUBSPOT_TOKEN}\naccelo: {url: not-a-url, client_id: x, client_secret_env: S}\n",
    )
    .unwrap();
    wait(&mut rx, e, rejected_with("E080")).await;
    assert_eq!(reloader.current().rules_hash(), after.rules_hash());
}

#[test]
fn an_invalid_initial_set_is_refused() {
    let (dir, paths) = setup();
    std::fs::write(
        dir.path().join("companies.yaml"),
        "object: company\nfields: 3\n",
    )
    .unwrap();
    let err = Reloader::spawn(paths).unwrap_err();
    assert!(err.to_string().contains("1 error"), "{err}");
}
