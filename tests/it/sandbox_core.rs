//! The sandbox starts, serves both APIs over HTTP with seeded data, and its admin API answers.

use serde_json::Value;
use tandem_sandbox::{Sandbox, SandboxOptions};

async fn start() -> Sandbox {
    Sandbox::start(SandboxOptions {
        seed: 7,
        companies: 50,
        contacts: 200,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

async fn accelo_token(sb: &Sandbox, http: &reqwest::Client) -> String {
    let r: Value = http
        .post(format!("{}/oauth2/v0/token", sb.accelo_url()))
        .basic_auth(sb.accelo_client_id(), Some(sb.accelo_client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn both_simulators_serve_seeded_data() {
    let sb = start().await;
    let http = reqwest::Client::new();

    let page: Value = http
        .get(format!(
            "{}/crm/v3/objects/companies?limit=100",
            sb.hubspot_url()
        ))
        .bearer_auth(sb.hubspot_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let results = page["results"].as_array().unwrap();
    assert_eq!(results.len(), 50);
    assert!(page.get("paging").is_none(), "50 companies fit on one page");
    assert!(
        results
            .iter()
            .all(|r| r["properties"]["hs_object_id"] == r["id"])
    );

    let token = accelo_token(&sb, &http).await;
    let list: Value = http
        .get(format!("{}/api/v0/companies?_limit=100", sb.accelo_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["meta"]["status"], "ok");
    assert_eq!(list["response"].as_array().unwrap().len(), 50);

    let info = sb.info();
    assert_eq!(info["hubspot"]["url"], sb.hubspot_url());
    assert_eq!(info["accelo"]["client_id"], sb.accelo_client_id());
    sb.shutdown().await;
}

#[tokio::test]
async fn same_seed_same_data_and_credentials() {
    let a = start().await;
    let b = start().await;
    assert_ne!(
        a.hubspot_url(),
        b.hubspot_url(),
        "ports are picked by the OS"
    );
    assert_eq!(a.hubspot_token(), b.hubspot_token());
    let http = reqwest::Client::new();
    let get = |sb: &Sandbox| {
        let url = format!("{}/_sandbox/records/contacts", sb.hubspot_url());
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(get(&a).await, get(&b).await);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn faults_can_be_set_in_process_on_both_simulators() {
    let sb = start().await;
    let bad = tandem_sandbox::FaultConfig {
        drop_rate: 2.0,
        ..Default::default()
    };
    assert!(sb.set_faults(bad).is_err());
    sb.set_faults(tandem_sandbox::FaultConfig {
        storm_429: 1,
        ..Default::default()
    })
    .unwrap();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/crm/v3/objects/companies", sb.hubspot_url()))
        .bearer_auth(sb.hubspot_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = http
        .post(format!("{}/oauth2/v0/token", sb.accelo_url()))
        .basic_auth(sb.accelo_client_id(), Some(sb.accelo_client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "faults apply to token requests too");
    assert_eq!(sb.accelo_stats()["throttled"], 1);
    sb.shutdown().await;
}
