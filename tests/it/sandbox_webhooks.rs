//! Webhook delivery from both simulators to a real HTTP receiver: event shapes, subscriptions,
//! v1/v3 signatures checked with an independent computation, batching, retries with
//! `attemptNumber`, seeded loss and duplication, and Accelo's `{id, resource_url}` payloads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tandem_sandbox::{AcceloWebhook, RateLimits, Sandbox, SandboxOptions, WebhookTarget};

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(fail_first: usize) -> (String, Receiver) {
        let rx = Receiver::default();
        rx.fail_first.store(fail_first, Ordering::SeqCst);
        let state = rx.clone();
        let app = axum::Router::new().route(
            "/hooks/hubspot",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push((headers, body));
                    let left = state.fail_first.load(Ordering::SeqCst);
                    if left > 0 {
                        state.fail_first.store(left - 1, Ordering::SeqCst);
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/hubspot", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, rx)
    }

    fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().unwrap().clone()
    }

    /// Every event of every successfully answered request... and of failed ones too.
    fn events(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .flat_map(|(_, b)| serde_json::from_slice::<Vec<Value>>(b).unwrap())
            .collect()
    }
}

/// Polls until `cond` holds (deadline 20 s).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn target(url: &str) -> WebhookTarget {
    let mut t = WebhookTarget::new(url);
    t.retry_base = Duration::from_millis(10);
    t.batch_wait = Duration::from_millis(20);
    t
}

async fn start(url: &str, secret: Option<&str>) -> Sandbox {
    let mut t = target(url);
    t.secret = secret.map(str::to_string);
    Sandbox::start(SandboxOptions {
        seed: 3,
        companies: 10,
        contacts: 20,
        rate_limits: RateLimits::unlimited(),
        hubspot_webhook: Some(t),
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn api(sb: &Sandbox, method: reqwest::Method, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .request(method, format!("{}{}", sb.hubspot_url(), path))
        .bearer_auth(sb.hubspot_token())
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn creation_and_subscribed_property_changes_arrive_signed() {
    let (url, rx) = Receiver::start(0).await;
    let sb = start(&url, Some("shh-its-a-secret")).await;
    let c = api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts",
        json!({"properties": {"email": "hook@x.test", "firstname": "Åsa"}}),
    )
    .await;
    let id: u64 = c["id"].as_str().unwrap().parse().unwrap();
    eventually("delivery", || {
        sb.hubspot_webhooks_pending() == 0 && !rx.requests().is_empty()
    })
    .await;
    let events = rx.events();
    let creation: Vec<&Value> = events
        .iter()
        .filter(|e| e["subscriptionType"] == "contact.creation")
        .collect();
    assert_eq!(creation.len(), 1);
    assert_eq!(creation[0]["objectId"], id, "objectId is a JSON number");
    assert_eq!(creation[0]["attemptNumber"], 0);
    assert_eq!(creation[0]["portalId"], sb.hubspot_portal_id());
    assert!(creation[0]["eventId"].is_u64() && creation[0]["occurredAt"].is_i64());
    let changed: Vec<&str> = events
        .iter()
        .filter(|e| e["subscriptionType"] == "contact.propertyChange")
        .map(|e| e["propertyName"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"email") && changed.contains(&"firstname"));
    assert!(
        !changed.contains(&"hs_object_id"),
        "not a subscribed property"
    );

    // Signatures, computed independently of the simulator's code.
    for (headers, body) in rx.requests() {
        let ts = headers["x-hubspot-request-timestamp"].to_str().unwrap();
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(b"shh-its-a-secret").unwrap();
        mac.update(format!("POST{url}").as_bytes());
        mac.update(&body);
        mac.update(ts.as_bytes());
        let v3 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(headers["x-hubspot-signature-v3"], v3.as_str());
        let v1 = hex::encode(Sha256::digest(
            [b"shh-its-a-secret".as_slice(), &body].concat(),
        ));
        assert_eq!(headers["x-hubspot-signature"], v1.as_str());
        assert_eq!(headers["x-hubspot-signature-version"], "v1");
        let age = chrono::Utc::now().timestamp_millis() - ts.parse::<i64>().unwrap();
        assert!((0..300_000).contains(&age), "timestamp is fresh");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn unsubscribed_and_custom_properties_do_not_trigger() {
    let (url, rx) = Receiver::start(0).await;
    let sb = start(&url, None).await;
    api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/properties/contacts",
        json!({"name": "accelo_id", "label": "Accelo ID", "type": "string", "fieldType": "text", "groupName": "contactinformation"}),
    )
    .await;
    let all: Value = reqwest::get(format!("{}/_sandbox/records/contacts", sb.hubspot_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = all[0]["id"].as_str().unwrap().to_string();
    api(
        &sb,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"accelo_id": "9"}}),
    )
    .await;
    api(
        &sb,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"jobtitle": "Boss"}}),
    )
    .await;
    eventually("jobtitle event", || {
        rx.events().iter().any(|e| e["propertyName"] == "jobtitle")
    })
    .await;
    eventually("idle", || sb.hubspot_webhooks_pending() == 0).await;
    assert!(!rx.events().iter().any(|e| e["propertyName"] == "accelo_id"));
    // The default secret is the app's client secret.
    let (headers, body) = rx.requests()[0].clone();
    let ts = headers["x-hubspot-request-timestamp"].to_str().unwrap();
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(sb.hubspot_client_secret().as_bytes()).unwrap();
    mac.update(format!("POST{url}").as_bytes());
    mac.update(&body);
    mac.update(ts.as_bytes());
    let v3 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(headers["x-hubspot-signature-v3"], v3.as_str());
    sb.shutdown().await;
}

#[tokio::test]
async fn batches_hold_at_most_one_hundred_events() {
    let (url, rx) = Receiver::start(0).await;
    let sb = start(&url, None).await;
    for round in 0..3 {
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({"properties": {"email": format!("b{round}-{i}@x.test")}}))
            .collect();
        api(
            &sb,
            reqwest::Method::POST,
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    }
    eventually("all creations", || {
        rx.events()
            .iter()
            .filter(|e| e["subscriptionType"] == "contact.creation")
            .count()
            == 300
    })
    .await;
    for (_, body) in rx.requests() {
        let n = serde_json::from_slice::<Vec<Value>>(&body).unwrap().len();
        assert!((1..=100).contains(&n), "batch of {n}");
    }
    assert!(
        rx.requests().len() >= 6,
        "600 events need at least 6 requests"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_attempt_numbers() {
    let (url, rx) = Receiver::start(2).await;
    let sb = start(&url, None).await;
    api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Retry GmbH"}}),
    )
    .await;
    eventually("delivery after retries", || {
        sb.hubspot_webhooks_pending() == 0 && rx.requests().len() >= 3
    })
    .await;
    let attempts: Vec<u64> = rx
        .requests()
        .iter()
        .map(|(_, b)| {
            serde_json::from_slice::<Vec<Value>>(b).unwrap()[0]["attemptNumber"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(attempts[..3], [0, 1, 2]);
    let stats = sb.hubspot_stats();
    assert_eq!(stats["webhooks"]["failed_attempts"], 2);
    assert!(stats["webhooks"]["delivered_requests"].as_u64().unwrap() >= 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn seeded_loss_and_duplication() {
    let (url, rx) = Receiver::start(0).await;
    let sb = start(&url, None).await;
    let http = reqwest::Client::new();
    http.post(format!("{}/_sandbox/faults", sb.hubspot_url()))
        .json(&json!({"webhook_duplicate": 1.0, "seed": 1}))
        .send()
        .await
        .unwrap();
    http.post(format!("{}/_sandbox/webhooks", sb.hubspot_url()))
        .json(&json!({"subscriptions": ["company.creation"]}))
        .send()
        .await
        .unwrap();
    api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Twice"}}),
    )
    .await;
    eventually("two copies", || {
        rx.events().len() == 2 && sb.hubspot_webhooks_pending() == 0
    })
    .await;
    let ev = rx.events();
    assert_eq!(ev[0]["objectId"], ev[1]["objectId"]);
    assert_eq!(
        ev[0]["eventId"], ev[1]["eventId"],
        "a duplicate is the same event"
    );

    http.post(format!("{}/_sandbox/faults", sb.hubspot_url()))
        .json(&json!({"webhook_loss": 1.0}))
        .send()
        .await
        .unwrap();
    api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Lost"}}),
    )
    .await;
    eventually("loss counted", || {
        sb.hubspot_stats()["webhooks"]["lost_events"] == 1
    })
    .await;
    assert_eq!(rx.events().len(), 2, "nothing more arrived");
    sb.shutdown().await;
}

#[tokio::test]
async fn seeded_reordering_shuffles_a_batch() {
    let (url, rx) = Receiver::start(0).await;
    let sb = start(&url, None).await;
    let http = reqwest::Client::new();
    http.post(format!("{}/_sandbox/faults", sb.hubspot_url()))
        .json(&json!({"webhook_reorder": 1.0, "seed": 5}))
        .send()
        .await
        .unwrap();
    http.post(format!("{}/_sandbox/webhooks", sb.hubspot_url()))
        .json(&json!({"subscriptions": ["company.creation"]}))
        .send()
        .await
        .unwrap();
    let inputs: Vec<Value> = (0..30)
        .map(|i| json!({"properties": {"name": format!("Co {i}")}}))
        .collect();
    api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/batch/create",
        json!({"inputs": inputs}),
    )
    .await;
    eventually("30 creations", || {
        rx.events().len() == 30 && sb.hubspot_webhooks_pending() == 0
    })
    .await;
    let ids: Vec<u64> = rx
        .events()
        .iter()
        .map(|e| e["objectId"].as_u64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_ne!(ids, sorted, "events arrive out of order");
    assert!(
        sb.hubspot_stats()["webhooks"]["reordered_batches"]
            .as_u64()
            .unwrap()
            >= 1
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn association_deletion_and_ui_events() {
    let (url, rx) = Receiver::start(0).await;
    let sb = start(&url, None).await;
    let co = api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Assoc"}}),
    )
    .await;
    let p = api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/contacts",
        json!({"properties": {"email": "a@assoc.test"}}),
    )
    .await;
    let (co, p) = (
        co["id"].as_str().unwrap().to_string(),
        p["id"].as_str().unwrap().to_string(),
    );
    api(
        &sb,
        reqwest::Method::PUT,
        &format!("/crm/v4/objects/contacts/{p}/associations/default/companies/{co}"),
        Value::Null,
    )
    .await;
    api(
        &sb,
        reqwest::Method::DELETE,
        &format!("/crm/v3/objects/companies/{co}"),
        Value::Null,
    )
    .await;
    reqwest::Client::new()
        .post(format!("{}/_sandbox/edit", sb.hubspot_url()))
        .json(&json!({"object": "contacts", "id": p, "fields": {"lastname": "Kowalski"}}))
        .send()
        .await
        .unwrap();
    eventually("events", || {
        let ev = rx.events();
        ev.iter()
            .any(|e| e["subscriptionType"] == "company.deletion")
            && ev.iter().any(|e| e["propertyName"] == "lastname")
    })
    .await;
    let ev = rx.events();
    let assoc: Vec<&Value> = ev
        .iter()
        .filter(|e| e["subscriptionType"] == "contact.associationChange")
        .collect();
    // Primary + unlabelled added, then both removed with the company.
    assert_eq!(assoc.len(), 4, "{assoc:?}");
    assert!(
        assoc
            .iter()
            .any(|e| e["isPrimaryAssociation"] == true && e["associationRemoved"] == false)
    );
    assert!(
        assoc
            .iter()
            .all(|e| e["associationType"] == "CONTACT_TO_COMPANY")
    );
    assert!(
        ev.iter()
            .any(|e| e["subscriptionType"] == "company.associationChange"
                && e["associationType"] == "COMPANY_TO_CONTACT")
    );
    let primary_change: Vec<&Value> = ev
        .iter()
        .filter(|e| e["propertyName"] == "associatedcompanyid")
        .collect();
    assert_eq!(primary_change[0]["propertyValue"], co.as_str());
    assert_eq!(
        primary_change.last().unwrap()["propertyValue"],
        "",
        "cleared with the company"
    );
    let ui = ev.iter().find(|e| e["propertyName"] == "lastname").unwrap();
    assert_eq!(ui["changeSource"], "CRM_UI");
    assert_eq!(
        ev.iter()
            .find(|e| e["subscriptionType"] == "contact.creation")
            .unwrap()["changeSource"],
        "INTEGRATION"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn webhook_target_can_be_set_at_runtime() {
    let sb = Sandbox::start(SandboxOptions {
        rate_limits: RateLimits::unlimited(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (url, rx) = Receiver::start(0).await;
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/webhooks", sb.hubspot_url()))
        .json(&json!({"url": url, "secret": "s", "subscriptions": ["company.propertyChange:name"], "batch_wait_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let settings: Value = r.json().await.unwrap();
    assert!(
        !settings.to_string().contains("\"s\""),
        "the secret is not echoed"
    );
    api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Late"}}),
    )
    .await;
    eventually("name event", || {
        rx.events().iter().any(|e| e["propertyName"] == "name")
    })
    .await;
    assert!(
        rx.events()
            .iter()
            .all(|e| e["subscriptionType"] == "company.propertyChange")
    );
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/webhooks", sb.hubspot_url()))
        .json(&json!({"subscriptions": ["contact.propertyChange"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    sb.shutdown().await;
}

#[tokio::test]
async fn accelo_webhooks_deliver_id_and_resource_url() {
    let (url, rx) = Receiver::start(0).await;
    let sb = Sandbox::start(SandboxOptions {
        rate_limits: RateLimits::unlimited(),
        accelo_webhook: Some(AcceloWebhook {
            url: url.clone(),
            secret: "acc-secret".into(),
            events: vec!["update_company".into(), "create_contact".into()],
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let tok: Value = http
        .post(format!("{}/oauth2/v0/token", sb.accelo_url()))
        .basic_auth(sb.accelo_client_id(), Some(sb.accelo_client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    http.put(format!("{}/api/v0/companies/1", sb.accelo_url()))
        .bearer_auth(&token)
        .form(&[("phone", "+61 2 0000 0000")])
        .send()
        .await
        .unwrap();
    // An affiliation change fires nothing (Accelo has no affiliation events).
    http.put(format!("{}/api/v0/affiliations/1", sb.accelo_url()))
        .bearer_auth(&token)
        .form(&[("position", "Chair")])
        .send()
        .await
        .unwrap();
    eventually("accelo delivery", || !rx.requests().is_empty()).await;
    let (headers, body) = rx.requests()[0].clone();
    assert_eq!(headers["x-accelo-event"], "update_company");
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(b"acc-secret").unwrap();
    mac.update(&body);
    assert_eq!(
        headers["x-hub-signature"],
        hex::encode(mac.finalize().into_bytes()).as_str()
    );
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["id"], "1");
    let fetched: Value = http
        .get(payload["resource_url"].as_str().unwrap())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["response"]["id"], "1");
    // Subscriptions through the API.
    let r: Value = http
        .post(format!("{}/api/v0/webhooks/subscriptions", sb.accelo_url()))
        .bearer_auth(&token)
        .form(&[
            ("trigger_url", url.as_str()),
            ("event_id", "create_company"),
            ("content_type", "application/x-www-form-urlencoded"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["response"]["subscription"]["event_id"], "create_company");
    http.post(format!("{}/api/v0/companies", sb.accelo_url()))
        .bearer_auth(&token)
        .form(&[("name", "Hooked Ltd")])
        .send()
        .await
        .unwrap();
    eventually("form delivery", || {
        rx.requests()
            .iter()
            .any(|(h, _)| h["x-accelo-event"] == "create_company")
    })
    .await;
    let (h, b) = rx
        .requests()
        .into_iter()
        .find(|(h, _)| h["x-accelo-event"] == "create_company")
        .unwrap();
    assert_eq!(h["content-type"], "application/x-www-form-urlencoded");
    assert!(
        String::from_utf8(b.to_vec())
            .unwrap()
            .contains("resource_url=")
    );
    assert_eq!(
        rx.requests()
            .iter()
            .filter(|(h, _)| h["x-accelo-event"] == "update_company")
            .count(),
        1,
        "the affiliation change fired nothing"
    );
    let bad: Value = http
        .post(format!("{}/api/v0/webhooks/subscriptions", sb.accelo_url()))
        .bearer_auth(&token)
        .form(&[
            ("trigger_url", url.as_str()),
            ("event_id", "delete_company"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["meta"]["status"], "invalid_request");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_is_retried() {
    // The receiver answers the first request only after the sandbox's timeout.
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::post(move |body: Bytes| {
            let (g, c) = (g.clone(), c.clone());
            async move {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                g.lock()
                    .unwrap()
                    .extend(serde_json::from_slice::<Vec<Value>>(&body).unwrap());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut t = target(&url);
    t.timeout = Duration::from_millis(200);
    t.subscriptions = Some(vec!["company.creation".into()]);
    let sb = Sandbox::start(SandboxOptions {
        rate_limits: RateLimits::unlimited(),
        hubspot_webhook: Some(t),
        ..Default::default()
    })
    .await
    .unwrap();
    api(
        &sb,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Slowpoke"}}),
    )
    .await;
    eventually("a retried delivery", || {
        got.lock().unwrap().iter().any(|e| e["attemptNumber"] == 1)
    })
    .await;
    assert!(
        sb.hubspot_stats()["webhooks"]["failed_attempts"]
            .as_u64()
            .unwrap()
            >= 1
    );
    sb.shutdown().await;
}

/// The webhooks v3 API (developer API key) manages the subscriptions that delivery follows:
/// one created active delivers, one created paused does not; a wrong key is 401 and a second
/// subscription to the same event and property 409.
#[tokio::test]
async fn subscriptions_created_through_the_webhooks_api_drive_delivery() {
    let (url, rx) = Receiver::start(0).await;
    let mut t = target(&url);
    t.subscriptions = Some(Vec::new());
    let sb = Sandbox::start(SandboxOptions {
        seed: 3,
        companies: 4,
        contacts: 4,
        rate_limits: RateLimits::unlimited(),
        hubspot_webhook: Some(t),
        ..Default::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let base = format!(
        "{}/webhooks/v3/{}/subscriptions",
        sb.hubspot_url(),
        sb.hubspot_app_id()
    );
    let key = sb.hubspot_developer_api_key().to_string();
    let create = |body: Value, key: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(&base)
                .query(&[("hapikey", key)])
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, name) = create(
        json!({"eventType": "company.propertyChange", "propertyName": "name", "active": true}),
        key.clone(),
    )
    .await;
    assert_eq!(status, 201, "{name}");
    assert!(
        name["id"].is_string() && name["createdAt"].is_string(),
        "{name}"
    );
    // `active` defaults to false: a paused subscription.
    let (status, paused) = create(json!({"eventType": "contact.creation"}), key.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(paused["active"], false);
    let (status, _) = create(
        json!({"eventType": "company.propertyChange", "propertyName": "name", "active": true}),
        key.clone(),
    )
    .await;
    assert_eq!(status, 409);
    let (status, body) = create(json!({"eventType": "company.creation"}), "wrong".into()).await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    let listed: Value = http
        .get(&base)
        .query(&[("hapikey", key.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["results"].as_array().unwrap().len(), 2, "{listed}");

    // A contact created (paused subscription: nothing), then a company renamed (delivered).
    let companies = crate::support::admin::records(sb.hubspot_url(), "companies").await;
    let company = companies[0]["id"].as_str().unwrap().to_string();
    crate::support::admin::edit(
        sb.hubspot_url(),
        "contacts",
        None,
        json!({"email": "new.person@example.com"}),
    )
    .await;
    crate::support::admin::edit(
        sb.hubspot_url(),
        "companies",
        Some(&company),
        json!({"name": "Renamed Through The Sandbox"}),
    )
    .await;
    eventually("the name change", || {
        rx.events()
            .iter()
            .any(|e| e["subscriptionType"] == "company.propertyChange")
    })
    .await;
    let events = rx.events();
    let id: u64 = name["id"].as_str().unwrap().parse().unwrap();
    assert!(
        events
            .iter()
            .all(|e| e["subscriptionType"] == "company.propertyChange"
                && e["subscriptionId"] == id
                && e["propertyName"] == "name"),
        "{events:?}"
    );
    sb.shutdown().await;
}
