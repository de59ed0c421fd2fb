//! `tandem doctor` with the real binary against the sandbox: every check passes on the shipped
//! rules; each problem it looks for is found when the setup has it — a mapped property the
//! portal lacks, an Accelo status the deployment lacks, refused credentials, an address where
//! nothing listens, a token without a scope the rules need (private app and OAuth), webhook
//! subscriptions the app lacks or has paused (and `tandem hubspot subscriptions --apply`
//! creating them), a clock far from the systems' — each with what to do, exit 1, and `--json`
//! for scripts.

use serde_json::{Value, json};
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};

use crate::support::closed_port;
use crate::support::exec::*;

/// A sandbox with these scopes and this clock skew.
async fn sandbox_with(scopes: Option<&[&str]>, skew: i64) -> Sandbox {
    Sandbox::start(SandboxOptions {
        seed: 3,
        companies: 5,
        contacts: 10,
        rate_limits: RateLimits::unlimited(),
        hubspot_scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
        clock_skew_seconds: skew,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn text_of(f: &Value, key: &str) -> String {
    f[key].as_str().unwrap_or_default().to_string()
}

async fn doctor(p: &Project) -> (Option<i32>, Value) {
    let out = p.command(&["doctor", "--json"]).output().await.unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), doc)
}

fn findings<'a>(doc: &'a Value, check: &str) -> Vec<&'a Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

#[tokio::test]
async fn the_shipped_setup_passes_every_check() {
    let sb = sandbox(3, 5, 10).await;
    let p = Project::new(&sb, "");
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["ok"], true);
    for check in [
        "hubspot",
        "accelo",
        "hubspot scopes",
        "hubspot properties",
        "accelo statuses",
        "clock",
        "store",
    ] {
        let f = findings(&doc, check);
        assert_eq!(f.len(), 1, "{check}: {doc:#}");
        assert_eq!(f[0]["status"], "ok", "{check}: {doc:#}");
    }
    // Without the app's id and developer key the subscriptions cannot be listed: skipped,
    // saying how to enable the check, and not a problem.
    let subs = findings(&doc, "hubspot subscriptions");
    assert_eq!(subs.len(), 1, "{doc:#}");
    assert_eq!(subs[0]["status"], "skipped", "{doc:#}");
    let fix = text_of(subs[0], "fix");
    assert!(
        fix.contains("`hubspot.app_id`") && fix.contains("`hubspot.developer_api_key_env`"),
        "{doc:#}"
    );
    // The text form says so too.
    let out = p.command(&["doctor"]).output().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_property_or_status_the_systems_lack_is_found_with_what_to_do() {
    let sb = sandbox(3, 5, 10).await;
    let p = Project::new(&sb, "");
    // A company field mapped to a custom property the portal does not have, and a status the
    // Accelo deployment does not have.
    let path = p.dir.path().join("companies.yaml");
    let rules = std::fs::read_to_string(&path).unwrap();
    let rules = rules
        .replace(
            "  - hubspot: phone\n    accelo: $.phone\n",
            "  - hubspot: phone\n    accelo: $.phone\n\n  - hubspot: tandem_office_phone\n    \
             accelo: $.fax\n    direction: pull\n",
        )
        .replace(
            "accelo_statuses: [Active, Prospect, Lead, Inactive, Former Client]",
            "accelo_statuses: [Active, Prospect, Lead, Inactive, Former Client, Dormant]",
        );
    let rules = format!(
        "{rules}\ncustom_properties:\n  - name: tandem_office_phone\n    type: phone_number\n"
    );
    std::fs::write(&path, rules).unwrap();
    let check = p
        .command(&["check", "--format", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "the rules themselves are valid: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(doc["ok"], false);
    let props = findings(&doc, "hubspot properties");
    assert_eq!(props.len(), 1, "{doc:#}");
    assert_eq!(props[0]["status"], "problem");
    assert!(
        props[0]["message"]
            .as_str()
            .unwrap()
            .contains("`tandem_office_phone`, which the portal does not have"),
        "{doc:#}"
    );
    assert!(
        props[0]["fix"]
            .as_str()
            .unwrap()
            .contains("create `tandem_office_phone`")
    );
    let statuses = findings(&doc, "accelo statuses");
    assert_eq!(statuses.len(), 1, "{doc:#}");
    assert!(
        statuses[0]["message"]
            .as_str()
            .unwrap()
            .contains("`Dormant`"),
        "{doc:#}"
    );
    assert_eq!(findings(&doc, "hubspot")[0]["status"], "ok");
    sb.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_and_an_unreachable_system_are_found() {
    let sb = sandbox(3, 5, 10).await;
    let mut p = Project::new(&sb, "");
    p.env.insert("HS_TOKEN".into(), "pat-na1-wrong".into());
    p.env.insert(
        "TANDEM_ACCELO_URL".into(),
        format!("http://127.0.0.1:{}", closed_port()),
    );
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    let hs = findings(&doc, "hubspot");
    assert_eq!(hs[0]["status"], "problem", "{doc:#}");
    assert!(
        hs[0]["fix"].as_str().unwrap().contains("credentials"),
        "{doc:#}"
    );
    let ac = findings(&doc, "accelo");
    assert_eq!(ac[0]["status"], "problem");
    assert!(
        ac[0]["message"]
            .as_str()
            .unwrap()
            .contains("TANDEM_ACCELO_URL"),
        "{doc:#}"
    );
    // What depends on them is not claimed to pass.
    assert_eq!(findings(&doc, "hubspot properties")[0]["status"], "skipped");
    assert_eq!(findings(&doc, "accelo statuses")[0]["status"], "skipped");
    // No secret in what it prints.
    let out = p.command(&["doctor"]).output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("pat-na1-wrong"), "{text}");
    assert!(!text.contains(sb.accelo_client_secret()), "{text}");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_scope_the_rules_need_and_the_token_lacks_is_found_with_what_to_do() {
    let sb = sandbox_with(
        Some(&[
            "crm.objects.companies.read",
            "crm.objects.companies.write",
            "crm.objects.contacts.read",
        ]),
        0,
    )
    .await;
    // A private app: the token information endpoint tells the scopes.
    let p = Project::new(&sb, "");
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    let f = findings(&doc, "hubspot scopes");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(f[0]["status"], "problem", "{doc:#}");
    let message = text_of(f[0], "message");
    assert!(
        message.contains("`crm.objects.contacts.write`") && message.contains("writing contacts"),
        "{doc:#}"
    );
    assert!(text_of(f[0], "fix").contains("private app"), "{doc:#}");

    // An OAuth app: token introspection tells them; the fix is to install the app again.
    let mut p = Project::new(&sb, "server:\n  webhook_secret_env: HS_WEBHOOK\n");
    use_oauth(&mut p, &sb);
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(findings(&doc, "hubspot")[0]["status"], "ok", "{doc:#}");
    let f = findings(&doc, "hubspot scopes");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert!(
        text_of(f[0], "message").contains("`crm.objects.contacts.write`"),
        "{doc:#}"
    );
    assert!(
        text_of(f[0], "fix").contains("install the app in the portal again"),
        "{doc:#}"
    );
    // No secret in what it prints.
    let shown = doc.to_string();
    assert!(!shown.contains(sb.hubspot_refresh_token()) && !shown.contains("whsec"));
    sb.shutdown().await;

    // With the automatic sync configured, reading contacts is also what their webhook
    // subscriptions need, and the finding says so.
    let sb = sandbox_with(
        Some(&[
            "crm.objects.companies.read",
            "crm.objects.companies.write",
            "crm.objects.contacts.write",
        ]),
        0,
    )
    .await;
    let mut p = Project::new(&sb, "server:\n  webhook_secret_env: HS_WEBHOOK\n");
    p.env.insert("HS_WEBHOOK".into(), "whsec".into());
    let (_, doc) = doctor(&p).await;
    let f = findings(&doc, "hubspot scopes");
    let message = text_of(f[0], "message");
    assert!(
        message.contains("`crm.objects.contacts.read`")
            && message.contains("the automatic sync's webhook subscriptions to contact events"),
        "{doc:#}"
    );
    sb.shutdown().await;

    // With every scope the same OAuth setup passes the check.
    let sb = sandbox_with(None, 0).await;
    let mut p = Project::new(&sb, "server:\n  webhook_secret_env: HS_WEBHOOK\n");
    use_oauth(&mut p, &sb);
    let (_, doc) = doctor(&p).await;
    let f = findings(&doc, "hubspot scopes");
    assert_eq!(f[0]["status"], "ok", "{doc:#}");
    assert!(
        text_of(f[0], "message").contains("crm.objects.contacts.write"),
        "{doc:#}"
    );
    sb.shutdown().await;
}

/// Switches a project to the sandbox's OAuth app.
fn use_oauth(p: &mut Project, sb: &Sandbox) {
    let yaml = std::fs::read_to_string(p.config()).unwrap().replace(
        "  token_env: HS_TOKEN\n",
        &format!(
            "  oauth:\n    client_id: {}\n    client_secret_env: HS_CLIENT_SECRET\n    \
             refresh_token_env: HS_REFRESH\n",
            sb.hubspot_client_id()
        ),
    );
    std::fs::write(p.config(), yaml).unwrap();
    p.env.remove("HS_TOKEN");
    p.env
        .insert("HS_CLIENT_SECRET".into(), sb.hubspot_client_secret().into());
    p.env
        .insert("HS_REFRESH".into(), sb.hubspot_refresh_token().into());
    p.env.insert("HS_WEBHOOK".into(), "whsec".into());
}

/// `tandem hubspot subscriptions --format api` for a project, as (eventType, propertyName).
async fn api_list(p: &Project) -> Vec<(String, Option<String>)> {
    let out = p
        .command(&["hubspot", "subscriptions", "--format", "api"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let api: Value = serde_json::from_slice(&out.stdout).unwrap();
    api.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["active"], true);
            (
                b["eventType"].as_str().unwrap().to_string(),
                b["propertyName"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test]
async fn missing_or_paused_subscriptions_are_found_and_apply_creates_them_once() {
    let sb = sandbox(3, 5, 10).await;
    let mut p = Project::new(&sb, "");
    p.env.insert(
        "TANDEM_HUBSPOT_APP_ID".into(),
        sb.hubspot_app_id().to_string(),
    );
    p.env.insert(
        "TANDEM_HUBSPOT_DEVELOPER_API_KEY".into(),
        sb.hubspot_developer_api_key().into(),
    );
    // An app with no subscriptions at all.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/_sandbox/webhooks", sb.hubspot_url()))
        .json(&json!({"subscriptions": []}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    let f = findings(&doc, "hubspot subscriptions");
    assert_eq!(f.len(), 1, "{doc:#}");
    assert_eq!(f[0]["status"], "problem", "{doc:#}");
    let wanted = api_list(&p).await;
    let message = text_of(f[0], "message");
    assert!(
        message.contains(&format!("lacks {} of the {}", wanted.len(), wanted.len()))
            && message.contains("company.creation"),
        "{doc:#}"
    );
    assert!(
        text_of(f[0], "fix").contains("tandem hubspot subscriptions --apply"),
        "{doc:#}"
    );

    // --apply creates every one, and says so.
    let out = p
        .command(&["hubspot", "subscriptions", "--apply"])
        .output()
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("created ")).count(),
        wanted.len(),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{} subscriptions created", wanted.len())),
        "{stdout}"
    );
    assert!(!stdout.contains(sb.hubspot_developer_api_key()));
    // The app now has exactly the subscriptions of `--format api`, item by item, active.
    let have: Vec<(String, bool)> = sb.hubspot_subscriptions();
    let expected: Vec<(String, bool)> = wanted
        .iter()
        .map(|(e, p)| {
            (
                match p {
                    Some(p) => format!("{e}:{p}"),
                    None => e.clone(),
                },
                true,
            )
        })
        .collect();
    assert_eq!(have, expected);
    // A second run creates nothing.
    let out = p
        .command(&["hubspot", "subscriptions", "--apply"])
        .output()
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("created "), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "0 subscriptions created, 0 activated, {} already in place",
            wanted.len()
        )),
        "{stdout}"
    );
    assert_eq!(sb.hubspot_subscriptions(), expected);
    // The doctor's check passes.
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(findings(&doc, "hubspot subscriptions")[0]["status"], "ok");

    // A paused subscription is found, and --apply activates it (webhooks API batch update).
    let base = format!(
        "{}/webhooks/v3/{}/subscriptions",
        sb.hubspot_url(),
        sb.hubspot_app_id()
    );
    let key = sb.hubspot_developer_api_key().to_string();
    let list: Value = http
        .get(&base)
        .query(&[("hapikey", key.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["propertyName"] == "name" && s["eventType"] == "company.propertyChange")
        .expect("company name subscription")
        .clone();
    let id: u64 = name["id"].as_str().unwrap().parse().unwrap();
    let r = http
        .post(format!("{base}/batch/update"))
        .query(&[("hapikey", key.as_str())])
        .json(&json!({"inputs": [{"id": id, "active": false}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    let f = findings(&doc, "hubspot subscriptions");
    assert!(
        text_of(f[0], "message").contains("paused: company.propertyChange of `name`"),
        "{doc:#}"
    );
    let out = p
        .command(&["hubspot", "subscriptions", "--apply"])
        .output()
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("activated  company.propertyChange of `name`")
            && stdout.contains("0 subscriptions created, 1 activated"),
        "{stdout}"
    );
    assert_eq!(sb.hubspot_subscriptions(), expected);

    // A wrong developer key is a problem naming what to check, never the key.
    p.env.insert(
        "TANDEM_HUBSPOT_DEVELOPER_API_KEY".into(),
        "not-the-key".into(),
    );
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    let f = findings(&doc, "hubspot subscriptions");
    assert!(
        text_of(f[0], "fix").contains("developer API key"),
        "{doc:#}"
    );
    assert!(!doc.to_string().contains("not-the-key"), "{doc:#}");
    sb.shutdown().await;
}

#[tokio::test]
async fn apply_without_the_app_id_and_key_says_what_it_needs() {
    let sb = sandbox(3, 2, 2).await;
    let p = Project::new(&sb, "");
    let out = p
        .command(&["hubspot", "subscriptions", "--apply"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`hubspot.app_id`"));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_clock_far_from_the_systems_is_found_with_the_offset() {
    let sb = sandbox_with(None, 400).await;
    let p = Project::new(&sb, "");
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    let f = findings(&doc, "clock");
    assert_eq!(f.len(), 2, "{doc:#}");
    for (f, system) in f.iter().zip(["HubSpot", "Accelo"]) {
        assert_eq!(f["status"], "problem", "{doc:#}");
        let m = text_of(f, "message");
        assert!(
            m.starts_with(&format!("{system}'s clock is 6 min"))
                && m.contains("ahead of this machine's")
                && (m.contains("(offset +400 s")
                    || m.contains("(offset +399 s")
                    || m.contains("(offset +401 s"))
                && m.contains("by its `Date` header"),
            "{doc:#}"
        );
        assert!(text_of(f, "fix").contains("NTP"), "{doc:#}");
    }
    // Beyond HubSpot's 5-minute window its webhooks are refused, and the finding says so.
    assert!(
        text_of(f[0], "message").contains("its webhooks are refused"),
        "{doc:#}"
    );
    sb.shutdown().await;

    let sb = sandbox_with(None, -90).await;
    let p = Project::new(&sb, "");
    let (_, doc) = doctor(&p).await;
    let f = findings(&doc, "clock");
    assert_eq!(f.len(), 2, "{doc:#}");
    assert!(
        text_of(f[0], "message").contains("behind this machine's"),
        "{doc:#}"
    );
    sb.shutdown().await;
}
