//! Hot reload with real file edits in a temporary directory: a valid edit swaps the program, an
//! invalid edit keeps it and reports diagnostics, a valid edit after that swaps again, and an
//! editor-style save (write a temporary file, rename it over the original) is noticed. Saving
//! without a change of meaning announces nothing; a config-only edit is announced, and the
//! program and config are swapped together. Every wait is on the reloader's change
//! notification with a deadline, or a synchronous `reload_now` — never a sleep.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tandem_core::rules::Paths;
use tandem_engine::reload::{ReloadEvent, ReloadOutcome, Reloader};
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
    assert!(start.triggers(tandem_core::model::Object::Company, "domain"));
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
    assert!(p1.triggers(tandem_core::model::Object::Company, "phone"));
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
    assert!(p3.triggers(tandem_core::model::Object::Company, "website"));
    assert!(!p3.triggers(tandem_core::model::Object::Company, "domain"));
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
    assert!(after.triggers(tandem_core::model::Object::Contact, "phone"));

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

/// Saves like an editor: a temporary file renamed over the original, so no reader ever sees a
/// half-written file.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_saves_announce_nothing_and_config_edits_are_announced() {
    let (dir, paths) = setup();
    let reloader = Reloader::spawn_with(paths, Duration::from_millis(100)).unwrap();
    let mut rx = reloader.subscribe();
    let before = reloader.running();
    assert!(Arc::ptr_eq(&before.program, &reloader.current()));
    let companies = dir.path().join("companies.yaml");
    let config = dir.path().join("tandem.yaml");
    let rules_text = std::fs::read_to_string(&companies).unwrap();
    let config_text = std::fs::read_to_string(&config).unwrap();

    // 1. Saves that change no meaning: the same bytes, a comment, another layout.
    save(&companies, &rules_text);
    save(&companies, &format!("# a comment\n{rules_text}"));
    save(
        &config,
        &format!(
            "{}\n# a trailing comment\n",
            config_text.replace(": ", ":   ")
        ),
    );
    // Rebuild now, on this thread, as a file event would; the watcher may rebuild too.
    reloader.reload_now();
    assert_eq!(rx.borrow().generation, 0);
    assert!(
        !rx.has_changed().unwrap(),
        "an unchanged save was announced"
    );
    let same = reloader.running();
    assert!(Arc::ptr_eq(&same.program, &before.program));
    assert!(Arc::ptr_eq(&same.config, &before.config));

    // 2. A config-only edit is announced, and the rules stay as they were.
    assert_eq!(before.config.sync.poll_interval_seconds, 300);
    save(
        &config,
        &format!("{config_text}sync:\n  poll_interval_seconds: 60\n"),
    );
    let e = wait(&mut rx, 0, reloaded).await;
    match &e.outcome {
        ReloadOutcome::Reloaded {
            rules_hash,
            rules_changed,
            config_changed,
            ..
        } => {
            assert!(*config_changed && !*rules_changed, "{:?}", e.outcome);
            assert_eq!(rules_hash, before.program.rules_hash());
        }
        other => panic!("{other:?}"),
    }
    let now = reloader.running();
    assert_eq!(now.config.sync.poll_interval_seconds, 60);
    assert_eq!(reloader.config().sync.poll_interval_seconds, 60);
    assert!(Arc::ptr_eq(&now.program, &before.program));

    // 3. An edit of both: one swap carries the new program and the new config together.
    save(
        &companies,
        &rules_text.replace("[created, name, domain]", "[created, name, domain, phone]"),
    );
    save(
        &config,
        &format!("{config_text}sync:\n  poll_interval_seconds: 30\n"),
    );
    reloader.reload_now();
    let both = reloader.running();
    assert!(
        both.program
            .triggers(tandem_core::model::Object::Company, "phone")
    );
    assert_eq!(both.config.sync.poll_interval_seconds, 30);
    match &rx.borrow().outcome {
        ReloadOutcome::Reloaded {
            rules_hash,
            config_changed: true,
            ..
        } => assert_eq!(rules_hash, both.program.rules_hash()),
        other => panic!("{other:?}"),
    }
}
