//! Hot reload while serving: an edit to rules/ changes what the next job does, without a
//! restart; an invalid edit is reported with its diagnostics in the sync log and the running
//! rules stay.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::model::{Object, System};
use tandem_engine::store::{LogBody, LogQuery, NoticeLevel, Store};
use tandem_sandbox::{SandboxOptions, WebhookTarget};

use crate::support::serve::*;

/// Saves `text` as an editor does: a temporary file renamed over the original.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn notices(store: &dyn Store) -> Vec<(NoticeLevel, String)> {
    store
        .log(&LogQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.body {
            LogBody::Notice(n) => Some((n.level, n.message)),
            _ => None,
        })
        .collect()
}

async fn wait_notice(
    store: &dyn Store,
    what: &str,
    pred: impl Fn(&(NoticeLevel, String)) -> bool,
) -> String {
    wait_for(what, || async {
        notices(store).await.into_iter().find(&pred).map(|n| n.1)
    })
    .await
}

/// Creates a qualifying HubSpot company named `name`; answers the name its Accelo twin gets.
async fn synced_name(
    sb: &tandem_sandbox::Sandbox,
    serving: &Serving,
    name: &str,
    domain: &str,
) -> String {
    let c = edit(
        sb.hubspot_url(),
        "companies",
        None,
        json!({"name": name, "domain": domain, "lifecyclestage": "customer"}),
    )
    .await;
    let id = c["id"].as_str().unwrap().to_string();
    let store = serving.store.clone();
    let accelo_id = wait_for("the company to be linked", || {
        let (store, id) = (store.clone(), id.clone());
        async move {
            store
                .link(Object::Company, System::HubSpot, &id)
                .await
                .unwrap()
                .map(|l| l.accelo_id)
        }
    })
    .await;
    records(sb.accelo_url(), "companies")
        .await
        .into_iter()
        .find(|r| r["id"].as_str() == Some(accelo_id.as_str()))
        .and_then(|r| r["name"].as_str().map(str::to_string))
        .unwrap()
}

async fn health(url: &str) -> Value {
    reqwest::get(format!("{url}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_edits_take_effect_for_the_next_job_and_invalid_ones_are_refused() {
    let mut hook = WebhookTarget::new("");
    hook.secret = Some(WEBHOOK_SECRET.into());
    hook.retry_base = Duration::from_millis(200);
    let sb = sandbox(SandboxOptions {
        seed: 51,
        companies: 4,
        contacts: 4,
        hubspot_webhook: Some(hook),
        ..Default::default()
    })
    .await;
    let serving = Serving::start(&sb, 0, |_, t| t).await;
    let companies = serving.rules.join("companies.yaml");
    let original = std::fs::read_to_string(&companies).unwrap();
    let first_hash = health(&serving.url).await["rules_hash"].clone();

    assert_eq!(
        synced_name(&sb, &serving, "Reload One", "reload1.example").await,
        "Reload One"
    );

    // A valid edit: names pulled into Accelo are upper-cased from the next job on.
    let upper = original.replacen("pull: 'trim(value)'", "pull: 'upper(trim(value))'", 1);
    assert_ne!(upper, original);
    save(&companies, &upper);
    let msg = wait_notice(serving.store.as_ref(), "the reload notice", |(l, m)| {
        *l == NoticeLevel::Info && m.starts_with("rules reloaded")
    })
    .await;
    assert!(msg.contains("next jobs use rules"), "{msg}");
    let second_hash = health(&serving.url).await["rules_hash"].clone();
    assert_ne!(second_hash, first_hash);
    assert_eq!(
        synced_name(&sb, &serving, "Reload Two", "reload2.example").await,
        "RELOAD TWO"
    );

    // An invalid edit (a Rhai syntax error): logged with its located diagnostics, and the
    // running rules stay.
    let broken = upper.replacen("pull: 'upper(trim(value))'", "pull: 'upper(trim(value)'", 1);
    assert_ne!(broken, upper);
    save(&companies, &broken);
    let msg = wait_notice(serving.store.as_ref(), "the rejection notice", |(l, m)| {
        *l == NoticeLevel::Warn && m.contains("invalid")
    })
    .await;
    assert!(msg.contains("the running rules"), "{msg}");
    assert!(
        msg.contains("companies.yaml:"),
        "located diagnostics: {msg}"
    );
    assert_eq!(health(&serving.url).await["rules_hash"], second_hash);
    assert_eq!(
        synced_name(&sb, &serving, "Reload Three", "reload3.example").await,
        "RELOAD THREE"
    );

    // A valid edit of tandem.yaml alone: announced as such, the rules unchanged.
    save(&companies, &upper);
    let config = serving.rules.join("tandem.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = text.replacen("accelo_concurrency: 4", "accelo_concurrency: 2", 1);
    assert_ne!(edited, text);
    save(&config, &edited);
    let msg = wait_notice(serving.store.as_ref(), "the config notice", |(l, m)| {
        *l == NoticeLevel::Info && m.contains("tandem.yaml changed")
    })
    .await;
    assert!(msg.contains("next start"), "{msg}");
    assert!(!msg.contains("rules reloaded"), "{msg}");
    assert_eq!(health(&serving.url).await["rules_hash"], second_hash);

    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
}
