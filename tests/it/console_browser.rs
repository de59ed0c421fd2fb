//! The console end to end in headless Chromium, driving the real `tandem serve` against the
//! sandbox: sign in; press Pull and watch the bar reach 100 % and the counts; filter the Sync
//! Log to errors; open a record and push it; type a broken expression into a rule and see the
//! diagnostic at its line; fix it, preview the impact, save and see the reload; a viewer is
//! refused a push; a cross-site POST is refused. Screenshots of every page go to
//! `target/screenshots/console-*.png`.

use std::time::Duration;

use axum::response::Html;
use serde_json::{Value, json};
use tandem_engine::store::{JobFilter, JobKind, JobState, LogBody, LogQuery};
use tandem_sandbox::{FaultConfig, SandboxOptions};

use crate::support::browser::Browser;
use crate::support::console::{self, OPERATOR, VIEWER};
use crate::support::serve::{Serving, sandbox, wait_for};

async fn sign_in(b: &Browser, base: &str, user: (&str, &str)) {
    b.goto(&format!("{base}/")).await;
    b.wait_for("#signin").await;
    assert!(
        b.current_url().await.contains("/login?next=%2F"),
        "{}",
        b.current_url().await
    );
    let name = b.find("#name").await;
    b.type_into(&name, user.0).await;
    let pw = b.find("#password").await;
    b.type_into(&pw, user.1).await;
    b.click(&b.find("#signin").await).await;
    b.wait_for("#h-health").await;
}

async fn jobs_of(s: &Serving, kind: JobKind) -> Vec<tandem_engine::store::Job> {
    s.store
        .jobs(&JobFilter {
            kinds: vec![kind],
            ..JobFilter::default()
        })
        .await
        .expect("jobs")
}

/// A page that posts a form to the console from another origin when it loads.
async fn attacker(target: String) -> (String, tokio::task::JoinHandle<()>) {
    let page = format!(
        r#"<!doctype html><html><body><form id="f" method="post" action="{target}/logout">
<input type="hidden" name="csrf" value="guessed"></form>
<script>document.getElementById('f').submit();</script></body></html>"#
    );
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { Html(page) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let h = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_end_to_end() {
    // Some Accelo company creates are refused for good, so that the log has errors to filter.
    let sb = sandbox(SandboxOptions {
        seed: 11,
        companies: 30,
        contacts: 90,
        ..SandboxOptions::default()
    })
    .await;
    let s = console::start(&sb, 0, |_, t| t).await;
    let base = s.url.clone();
    let mut b = Browser::start().await;
    b.set_wait(Duration::from_secs(30));

    // --- sign in ------------------------------------------------------------------------
    b.goto(&format!("{base}/")).await;
    b.wait_for("#signin").await;
    b.screenshot("console-signin").await;
    sign_in(&b, &base, OPERATOR).await;
    b.wait_text("[data-system=hubspot] .state", "Connected")
        .await;
    b.wait_text("[data-system=accelo] .state", "Connected")
        .await;
    let cookie = b.cookie("tandem_session").await.expect("session cookie");
    assert!(cookie.http_only, "the session cookie is HttpOnly");
    assert_eq!(cookie.same_site.as_deref(), Some("Strict"));
    let visible = b.execute("return document.cookie", &[]).await;
    assert!(!visible.as_str().unwrap_or("").contains("tandem_session"));
    b.screenshot("console-integrations-before").await;

    // --- Pull: the bar moves, reaches 100 %, and the counts show ---------------------------
    sb.set_faults(FaultConfig {
        seed: 5,
        errors: [(400, 0.3)].into_iter().collect(),
        only: vec!["POST /api/v0/companies".into()],
        latency_ms: 15,
        ..FaultConfig::default()
    })
    .expect("faults");
    // Remember every progress value the page shows, across its reload at the end of the run.
    b.execute(
        r#"sessionStorage.setItem('seen', '[]');
           new MutationObserver(() => {
             const seen = JSON.parse(sessionStorage.getItem('seen'));
             for (const p of document.querySelectorAll('#jobs progress')) seen.push(Number(p.value));
             sessionStorage.setItem('seen', JSON.stringify(seen));
           }).observe(document.getElementById('jobs'), {childList: true, subtree: true});
           return true;"#,
        &[],
    )
    .await;
    b.click(&b.find("#run-pull").await).await;
    b.wait_for("#jobs .job").await;
    b.screenshot("console-pull-running").await;
    // The run ends: the page draws itself again with the last pull's counts.
    let counts = b.wait_text(".lastrun .counts", "created").await;
    assert!(counts.contains("failed"), "{counts}");
    let seen: Value = b
        .execute(
            "return JSON.parse(sessionStorage.getItem('seen') || '[]')",
            &[],
        )
        .await;
    let seen: Vec<u64> = seen
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert!(!seen.is_empty(), "the bar was drawn while the pull ran");
    let pulls = jobs_of(&s, JobKind::Pull).await;
    assert_eq!(
        pulls.len(),
        1,
        "the button queued one pull job, as `tandem pull` does"
    );
    let pull = &pulls[0];
    assert_eq!(pull.state, JobState::Succeeded);
    assert_eq!(pull.payload, json!({}));
    assert_eq!(
        Some(pull.progress_done),
        pull.progress_total,
        "done = total"
    );
    let bar = b.find(".lastrun progress").await;
    assert_eq!(
        b.property(&bar, "value").await.as_f64(),
        Some(100.0),
        "the bar reached 100 %"
    );
    let log = s
        .store
        .log(&LogQuery {
            job: Some(pull.id),
            ..LogQuery::default()
        })
        .await
        .expect("log");
    assert!(log.iter().any(|e| matches!(&e.body, LogBody::Notice(n)
        if n.message == format!("{} queued a pull from the console", OPERATOR.0))));
    b.screenshot("console-integrations").await;
    sb.set_faults(FaultConfig::default()).expect("faults off");

    // --- the Sync Log, filtered to errors ------------------------------------------------------
    b.goto(&format!("{base}/log")).await;
    b.wait_for("#log tbody tr").await;
    b.screenshot("console-log").await;
    let outcome = b.find("select[name=outcome]").await;
    b.execute(
        "arguments[0].value = 'errors'; return true;",
        &[outcome.arg()],
    )
    .await;
    b.click(&b.find("form.filters button[type=submit]").await)
        .await;
    b.wait_script(
        "the log filtered to errors",
        "return location.search.includes('outcome=errors') && document.querySelectorAll('#log tbody tr').length > 0",
    )
    .await;
    let outcomes = b
        .execute(
            "return Array.from(document.querySelectorAll('#log tbody tr')).map(r => r.dataset.outcome)",
            &[],
        )
        .await;
    let outcomes: Vec<&str> = outcomes
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !outcomes.is_empty() && outcomes.iter().all(|o| *o == "failed"),
        "{outcomes:?}"
    );
    b.screenshot("console-log-errors").await;

    // --- the log updates live --------------------------------------------------------------------
    b.goto(&format!("{base}/log")).await;
    b.wait_for("#log tbody tr").await;
    let first = b
        .execute(
            "window.stillHere = true; return Number(document.querySelector('#log tbody tr').dataset.id)",
            &[],
        )
        .await;
    let queued = b
        .execute(
            r#"return fetch('/api/v1/jobs', {method: 'POST',
                 headers: {'Content-Type': 'application/json',
                   'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
                 body: JSON.stringify({kind: 'push'})}).then(r => r.status);"#,
            &[],
        )
        .await;
    assert_eq!(queued, json!(202));
    b.wait_script(
        "the new entries at the top of the log, without reloading the page",
        &format!(
            "return window.stillHere === true && Number(document.querySelector('#log tbody tr').dataset.id) > {first} \
             && document.querySelector('#log').textContent.includes('queued a push from the console')"
        ),
    )
    .await;

    // --- a record: open it from the log and push it -------------------------------------------
    // The failed entries are about HubSpot companies whose Accelo create was refused.
    b.goto(&format!("{base}/log?outcome=errors&object=company"))
        .await;
    b.wait_for("#log tbody tr").await;
    let link = b
        .find("#log tbody tr a[href^='/records/hubspot/company/']")
        .await;
    b.click(&link).await;
    b.wait_for("#h-fields").await;
    b.wait_text("#h-why", "Why").await;
    assert!(
        b.try_find("#record-retry").await.is_some(),
        "a failing record offers Retry"
    );
    b.screenshot("console-record-failing").await;
    b.click(&b.find("#record-retry").await).await;
    b.wait_text("#record-result", "Queued").await;
    b.screenshot("console-record-retried").await;
    // A linked Accelo company, pushed with its contacts.
    let link = s
        .store
        .links(tandem_core::model::Object::Company)
        .await
        .expect("links")
        .into_iter()
        .next()
        .expect("a linked company");
    b.goto(&format!("{base}/records/accelo/company/{}", link.accelo_id))
        .await;
    b.wait_for("#record-push").await;
    let title = b.text(&b.find("#record-push").await).await;
    assert!(title.contains("company and its contacts"), "{title}");
    b.screenshot("console-record").await;
    b.click(&b.find("#record-push").await).await;
    b.wait_text("#record-result", "Queued").await;
    let pushed = wait_for("the company push to end", || {
        let s = &s;
        async move {
            let j = jobs_of(s, JobKind::PushCompany).await;
            j.into_iter().find(|j| j.state == JobState::Succeeded)
        }
    })
    .await;
    assert_eq!(pushed.payload["company"], json!(link.accelo_id));

    // --- plan preview and apply -------------------------------------------------------------
    // Once the webhooks about those writes are handled, nothing changes under the plan.
    s.settle(&sb).await;
    b.goto(&format!("{base}/plan?direction=push")).await;
    b.wait_for("#plan-summary").await;
    let filter = b.find("#plan-filter").await;
    b.type_into(&filter, "unchanged").await;
    b.screenshot("console-plan").await;
    b.click(&b.find("#apply-plan").await).await;
    b.accept_alert().await;
    b.wait_text("#apply-result", "Applying the plan").await;

    // --- rules: a broken expression is marked at its line; fix, preview, save, reload ------
    b.goto(&format!("{base}/rules?file=companies.yaml")).await;
    b.wait_text("#check-state", "No problems").await;
    let text = std::fs::read_to_string(s.rules.join("companies.yaml")).expect("rules");
    let line = text
        .lines()
        .position(|l| l.contains("pull: 'present(record.name)"))
        .expect("the pull criteria")
        + 1;
    let broken = text.replace(
        "pull: 'present(record.name) && record.lifecyclestage != \"subscriber\"'",
        "pull: 'present(record.name) && record.lifecyclestage !='",
    );
    let source = b.find("#source").await;
    b.execute(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input')); return true;",
        &[source.arg(), json!(broken)],
    )
    .await;
    let diag = b
        .wait_for(&format!("#diagnostics li.error[data-line='{line}']"))
        .await;
    let said = b.text(&diag).await;
    assert!(said.contains(&format!("companies.yaml:{line}:")), "{said}");
    b.wait_for(&format!("#gutter div.error[data-line='{line}']"))
        .await;
    b.execute(
        "document.getElementById('diagnostics').scrollIntoView({block: 'end'}); return true;",
        &[],
    )
    .await;
    assert_eq!(
        b.property(&b.find("#save-rules").await, "disabled").await,
        json!(true)
    );
    b.screenshot("console-rules-error").await;
    // Fixed, and with company names pulled in capitals: every linked company would change.
    let edited = text.replacen("pull: 'trim(value)'", "pull: 'trim(value).to_upper()'", 1);
    assert_ne!(edited, text);
    b.execute(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input')); return true;",
        &[source.arg(), json!(edited)],
    )
    .await;
    b.wait_text("#check-state", "No problems").await;
    b.click(&b.find("#run-tests").await).await;
    b.wait_text("#rules-result", "Tests:").await;
    b.click(&b.find("#preview-impact").await).await;
    b.wait_text("#rules-result", "With your edit").await;
    let rows = b
        .execute(
            "return Array.from(document.querySelectorAll('#impact tbody tr')).map(r => r.textContent)",
            &[],
        )
        .await;
    let rows: Vec<&str> = rows
        .as_array()
        .expect("impact rows")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.contains("changes") && r.contains("update: name")),
        "the edit turns unchanged companies into updates: {rows:?}"
    );
    b.execute(
        "document.getElementById('rules-result').scrollIntoView(); return true;",
        &[],
    )
    .await;
    b.screenshot("console-rules-preview").await;
    b.click(&b.find("#save-rules").await).await;
    b.wait_text("#rules-result", "Saved as version").await;
    assert_eq!(
        std::fs::read_to_string(s.rules.join("companies.yaml")).expect("rules"),
        edited
    );
    // The running rules reload from the saved file, as from any edit on disk.
    wait_for("the reload notice", || {
        let store = s.store.clone();
        async move {
            let log = store.log(&LogQuery::default()).await.ok()?;
            log.iter()
                .any(|e| matches!(&e.body, LogBody::Notice(n) if n.message.starts_with("rules reloaded")))
                .then_some(())
        }
    })
    .await;
    b.goto(&format!("{base}/log?q=reloaded")).await;
    b.wait_text("#log", "rules reloaded").await;
    b.goto(&format!("{base}/rules?file=companies.yaml")).await;
    b.wait_text(".versions", OPERATOR.0).await;
    b.screenshot("console-rules").await;

    // --- a cross-site POST is refused ----------------------------------------------------------
    // (Once every job has ended: the home page draws itself again when one does.)
    s.settle(&sb).await;
    let (evil, _h) = attacker(base.clone()).await;
    b.goto(&format!("{evil}/")).await;
    b.wait_text("body", "refused").await;
    b.goto(&format!("{base}/")).await;
    b.wait_for("#h-health").await; // still signed in: the forged sign-out did nothing

    // --- a viewer may look but not push --------------------------------------------------------
    let form = b.find("form.signout button").await;
    b.click(&form).await;
    b.wait_for("#signin").await;
    sign_in(&b, &base, VIEWER).await;
    assert_eq!(
        b.property(&b.find("#run-pull").await, "disabled").await,
        json!(true)
    );
    b.goto(&format!("{base}/records/accelo/company/{}", link.accelo_id))
        .await;
    b.wait_for("#record-push").await;
    assert_eq!(
        b.property(&b.find("#record-push").await, "disabled").await,
        json!(true)
    );
    b.screenshot("console-record-viewer").await;
    // Even a hand-made request from the page is refused.
    let answer = b
        .execute(
            r#"return fetch(`/api/v1/records/accelo/company/${arguments[0]}`, {method: 'POST',
                 headers: {'Content-Type': 'application/json',
                   'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
                 body: JSON.stringify({action: 'push'})}).then(r => r.status);"#,
            &[json!(link.accelo_id)],
        )
        .await;
    assert_eq!(answer, json!(403));
    assert_eq!(
        jobs_of(&s, JobKind::PushCompany).await.len(),
        1,
        "the viewer's push queued nothing"
    );

    b.close().await;
    s.stop().await;
}

/// A run stopped by a safety limit says which one and by how much; **Run anyway** repeats the
/// numbers in a confirmation, does nothing when it is cancelled, and runs past the limits when
/// it is confirmed. The buttons work from the keyboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guardrail_stop_and_run_anyway() {
    use crate::support::browser::keys::ENTER;
    let sb = sandbox(SandboxOptions {
        seed: 4,
        companies: 20,
        contacts: 40,
        ..SandboxOptions::default()
    })
    .await;
    let s = console::start(&sb, 0, |name, t| {
        if name == "tandem.yaml" {
            t.replace("max_create: 5000", "max_create: 3")
        } else {
            t
        }
    })
    .await;
    let base = s.url.clone();
    let mut b = Browser::start().await;
    b.set_wait(Duration::from_secs(30));
    sign_in(&b, &base, OPERATOR).await;
    // The setup check, as `tandem doctor` makes it.
    b.click(&b.find("#run-doctor").await).await;
    let found = b.wait_text("#doctor .findings", "hubspot").await;
    assert!(found.contains("store"), "{found}");
    // By keyboard: focus Pull, press Enter.
    b.execute(
        "document.getElementById('run-pull').focus(); return true;",
        &[],
    )
    .await;
    b.press_keys(ENTER).await;
    let banner = b
        .wait_text(".lastrun .banner.warn", "Stopped by a safety limit")
        .await;
    assert!(
        banner.contains("max_create") && banner.contains("the limit"),
        "{banner}"
    );
    let stopped = jobs_of(&s, JobKind::Pull).await;
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].state, JobState::Failed);
    b.execute("document.querySelector('.lastrun .banner.warn').scrollIntoView({block: 'center'}); return true;", &[]).await;
    b.screenshot("console-guardrail").await;
    let run_anyway = b.find("[data-run-anyway]").await;
    // Cancelled: nothing is queued.
    b.click(&run_anyway).await;
    let asked = b.dismiss_alert().await;
    assert!(
        asked.contains("would create") && asked.contains("the limit is 3"),
        "{asked}"
    );
    assert_eq!(
        jobs_of(&s, JobKind::Pull).await.len(),
        1,
        "a cancelled confirmation queues nothing"
    );
    // Confirmed: the pull runs past the limit.
    b.click(&run_anyway).await;
    b.accept_alert().await;
    let first = stopped[0].id;
    let forced = wait_for("the forced pull to end", || {
        let s = &s;
        async move {
            jobs_of(s, JobKind::Pull)
                .await
                .into_iter()
                .find(|j| j.id != first && j.state == JobState::Succeeded)
        }
    })
    .await;
    assert_eq!(forced.payload["force"], json!(true));
    b.wait_text(".lastrun .counts", "created").await;
    b.close().await;
    s.stop().await;
}
