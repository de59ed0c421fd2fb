//! The webhook receivers over real HTTP, against real stores (SQLite and PostgreSQL): signed
//! deliveries are stored, deduplicated, filtered by the trigger lists, checked for echoes and
//! coalesced into one job per record; forged, stale, unsigned, replayed, oversized and malformed
//! requests are refused and store and queue nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::model::{Object, System};
use tandem_core::rules::config::Secret;
use tandem_engine::server::signature::{sign_accelo, sign_v1, sign_v3};
use tandem_engine::server::{Receiver, ReceiverConfig, Rules, router};
use tandem_engine::store::testing::for_each_store;
use tandem_engine::store::{Echo, JobFilter, JobState, LogBody, LogQuery, Store};

use crate::support::program;

const SECRET: &str = "hubspot-app-client-secret-0123";
const ACCELO_SECRET: &str = "accelo-webhook-secret-4567";

fn config() -> ReceiverConfig {
    ReceiverConfig {
        hubspot_secret: Some(Secret::new(SECRET)),
        accelo_secret: Some(Secret::new(ACCELO_SECRET)),
        job_delay: Duration::ZERO,
        ..ReceiverConfig::default()
    }
}

/// A running receiver on a free port.
struct Server {
    url: String,
    cancel: tokio_util::sync::CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn start(store: Arc<dyn Store>, config: ReceiverConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let rx = Arc::new(Receiver::new(store, Rules::Fixed(program()), config));
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, router(rx))
            .with_graceful_shutdown(async move { c.cancelled().await })
            .await
            .unwrap();
    });
    Server { url, cancel }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A v3-signed request as HubSpot sends it (the URL signed is the one called).
fn signed(url: &str, body: &[u8], secret: &str, ts: i64) -> reqwest::RequestBuilder {
    let ts = ts.to_string();
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(
            "x-hubspot-signature-v3",
            sign_v3(secret.as_bytes(), "POST", url, body, &ts),
        )
        .header("x-hubspot-request-timestamp", ts)
        .body(body.to_vec())
}

fn event(id: u64, object: &str, kind: &str, object_id: u64, extra: Value) -> Value {
    let mut e = json!({
        "eventId": id, "subscriptionId": 1000, "portalId": 62515, "appId": 54321,
        "occurredAt": 1_700_000_000_000_i64 + id as i64, "subscriptionType": format!("{object}.{kind}"),
        "attemptNumber": 0, "objectId": object_id, "changeSource": "CRM_UI",
    });
    if let (Value::Object(e), Value::Object(x)) = (&mut e, extra) {
        e.extend(x);
    }
    e
}

async fn jobs(store: &dyn Store) -> Vec<(String, JobState)> {
    let mut out: Vec<(String, JobState)> = store
        .jobs(&JobFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.coalesce_key.unwrap_or_default(), j.state))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn signed_events_are_stored_deduplicated_filtered_and_coalesced() {
    for_each_store(|store| async move {
        let server = start(store.clone(), config()).await;
        let url = format!("{}/webhooks/hubspot", server.url);
        let batch = json!([
            event(1, "company", "creation", 501, json!({"changeFlag": "NEW"})),
            event(
                2,
                "company",
                "propertyChange",
                501,
                json!({"propertyName": "name", "propertyValue": "Acme"})
            ),
            // Not in the trigger list (B11): stored, triggers nothing.
            event(
                3,
                "company",
                "propertyChange",
                502,
                json!({"propertyName": "hs_analytics_num_visits", "propertyValue": "9"})
            ),
            event(
                4,
                "contact",
                "associationChange",
                601,
                json!({"associationType": "CONTACT_TO_COMPANY", "fromObjectId": 601,
                       "toObjectId": 501, "associationRemoved": false,
                       "isPrimaryAssociation": true})
            ),
            // The other end of the same association: the same contact's job.
            event(
                5,
                "company",
                "associationChange",
                501,
                json!({"associationType": "COMPANY_TO_CONTACT", "fromObjectId": 501,
                       "toObjectId": 601, "associationRemoved": false,
                       "isPrimaryAssociation": true})
            ),
            event(
                6,
                "contact",
                "deletion",
                602,
                json!({"changeFlag": "DELETED"})
            ),
            event(7, "deal", "creation", 701, json!({})),
            // eventId is not unique: the same id for another record is another event.
            event(1, "contact", "creation", 603, json!({})),
        ]);
        let body = serde_json::to_vec(&batch).unwrap();
        let r = signed(&url, &body, SECRET, now_ms()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let summary: Value = r.json().await.unwrap();
        assert_eq!(
            summary,
            json!({"received": 8, "queued": 5, "duplicates": 0, "echoes": 0, "deleted": 1,
                   "ignored": 2})
        );
        assert_eq!(
            jobs(store.as_ref()).await,
            [
                ("hubspot:company:501".to_string(), JobState::Queued),
                ("hubspot:contact:601".to_string(), JobState::Queued),
                ("hubspot:contact:603".to_string(), JobState::Queued),
            ]
        );
        // Stored before the answer; the job-less ones are settled, the others wait for a job.
        // (A batch is stored in the order of its events' keys, not of the request.)
        let mut pending: Vec<String> = store
            .unprocessed_events(100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.record_id.unwrap_or_default())
            .collect();
        pending.sort();
        assert_eq!(pending, ["501", "501", "501", "601", "603"]);
        // The deletion is logged, not propagated.
        let log = store.log(&LogQuery::default()).await.unwrap();
        let notices: Vec<&str> = log
            .iter()
            .filter_map(|e| match &e.body {
                LogBody::Notice(n) => Some(n.message.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(notices.len(), 1);
        assert!(
            notices[0].contains("hubspot contact `602` was deleted"),
            "{notices:?}"
        );
        assert!(notices[0].contains("does not propagate deletions"));

        // HubSpot redelivers (new attempt, new timestamp): nothing new is stored or queued,
        // and the deletion is not logged twice.
        let mut again = batch.clone();
        for e in again.as_array_mut().unwrap() {
            e["attemptNumber"] = json!(1);
        }
        let body = serde_json::to_vec(&again).unwrap();
        let r = signed(&url, &body, SECRET, now_ms() + 1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let summary: Value = r.json().await.unwrap();
        assert_eq!(summary["duplicates"], 8);
        assert_eq!(summary["queued"], 0);
        assert_eq!(jobs(store.as_ref()).await.len(), 3);
        assert_eq!(
            store.log(&LogQuery::default()).await.unwrap().len(),
            log.len()
        );

        // A later change to a queued record joins its job.
        let body = serde_json::to_vec(&json!([event(
            9,
            "company",
            "propertyChange",
            501,
            json!({"propertyName": "phone", "propertyValue": "555"})
        )]))
        .unwrap();
        let r = signed(&url, &body, SECRET, now_ms()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(jobs(store.as_ref()).await.len(), 3);
    })
    .await;
}

#[tokio::test]
async fn echoes_of_tandem_writes_queue_nothing() {
    for_each_store(|store| async move {
        let server = start(store.clone(), config()).await;
        let url = format!("{}/webhooks/hubspot", server.url);
        // Tandem wrote name = "Acme Pty Ltd" to HubSpot company 501 and linked company 502.
        store
            .remember_echoes(
                &[Echo {
                    system: System::HubSpot,
                    object: Object::Company,
                    id: "501".into(),
                    field: "name".into(),
                    value: Some("Acme Pty Ltd".into()),
                }],
                Duration::from_secs(600),
            )
            .await
            .unwrap();
        store
            .upsert_link(&tandem_core::model::Link {
                object: Object::Company,
                hubspot_id: "502".into(),
                accelo_id: "12".into(),
                affiliation_id: None,
                last_synced: Default::default(),
            })
            .await
            .unwrap();
        let body = serde_json::to_vec(&json!([
            event(
                1,
                "company",
                "propertyChange",
                501,
                json!({"propertyName": "name", "propertyValue": "Acme Pty Ltd",
                       "changeSource": "INTEGRATION"})
            ),
            // Tandem created 502 (it is linked already): its creation is an echo.
            event(
                2,
                "company",
                "creation",
                502,
                json!({"changeSource": "INTEGRATION"})
            ),
        ]))
        .unwrap();
        let r = signed(&url, &body, SECRET, now_ms()).send().await.unwrap();
        let summary: Value = r.json().await.unwrap();
        assert_eq!(summary["echoes"], 2, "{summary}");
        assert_eq!(summary["queued"], 0);
        assert!(jobs(store.as_ref()).await.is_empty());
        assert!(store.unprocessed_events(10).await.unwrap().is_empty());

        // The echo excused one change only: a person typing the same name later is synced.
        let body = serde_json::to_vec(&json!([event(
            3,
            "company",
            "propertyChange",
            501,
            json!({"propertyName": "name", "propertyValue": "Acme Pty Ltd"})
        )]))
        .unwrap();
        let r = signed(&url, &body, SECRET, now_ms()).send().await.unwrap();
        let summary: Value = r.json().await.unwrap();
        assert_eq!(summary["queued"], 1, "{summary}");
        assert_eq!(
            jobs(store.as_ref()).await,
            [("hubspot:company:501".to_string(), JobState::Queued)]
        );
    })
    .await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_store_nothing() {
    for_each_store(|store| async move {
        let server = start(store.clone(), config()).await;
        let url = format!("{}/webhooks/hubspot", server.url);
        let body =
            serde_json::to_vec(&json!([event(1, "company", "creation", 501, json!({}))])).unwrap();
        let client = reqwest::Client::new();

        // Forged: signed with another secret.
        let r = signed(&url, &body, "not-the-secret", now_ms())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // Tampered: the signature of another body.
        let r = signed(&url, b"[]", SECRET, now_ms())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // Signed for another URL.
        let other = format!("{}/webhooks/other", server.url);
        let ts = now_ms().to_string();
        let r = client
            .post(&url)
            .header(
                "x-hubspot-signature-v3",
                sign_v3(SECRET.as_bytes(), "POST", &other, &body, &ts),
            )
            .header("x-hubspot-request-timestamp", &ts)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // Stale: correctly signed six minutes ago (and from too far in the future).
        for skew in [-6 * 60 * 1000, 6 * 60 * 1000] {
            let r = signed(&url, &body, SECRET, now_ms() + skew)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401);
            let msg: Value = r.json().await.unwrap();
            assert!(
                msg["error"].as_str().unwrap().contains("5 minutes"),
                "{msg}"
            );
        }
        // Unsigned, and v1 when v1 is not accepted.
        let r = client.post(&url).body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = client
            .post(&url)
            .header("x-hubspot-signature", sign_v1(SECRET.as_bytes(), &body))
            .header("x-hubspot-signature-version", "v1")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        // Oversized (2 MiB, correctly signed).
        let big = serde_json::to_vec(&json!([{"pad": "x".repeat(2 * 1024 * 1024)}])).unwrap();
        let r = signed(&url, &big, SECRET, now_ms()).send().await.unwrap();
        assert_eq!(r.status(), 413);
        // Malformed, correctly signed — and the same request again is malformed, not a replay
        // (a refused request is not remembered as received).
        for bad in [&b"[{\"eventId\": 1,"[..], b"42", b"[1, 2]"] {
            let ts = now_ms();
            for _ in 0..2 {
                let r = signed(&url, bad, SECRET, ts).send().await.unwrap();
                assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(bad));
            }
        }
        assert!(store.unprocessed_events(10).await.unwrap().is_empty());
        assert!(jobs(store.as_ref()).await.is_empty());

        // Replayed: the exact request that was accepted, sent again.
        let ts = now_ms();
        let first = signed(&url, &body, SECRET, ts).send().await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(jobs(store.as_ref()).await.len(), 1);
        let replay = signed(&url, &body, SECRET, ts).send().await.unwrap();
        assert_eq!(replay.status(), 401);
        let msg: Value = replay.json().await.unwrap();
        assert!(msg["error"].as_str().unwrap().contains("already received"));
        assert_eq!(jobs(store.as_ref()).await.len(), 1);
        assert_eq!(store.unprocessed_events(10).await.unwrap().len(), 1);

        // Secrets never appear in an answer.
        let r = signed(&url, &body, "wrong", now_ms()).send().await.unwrap();
        let text = r.text().await.unwrap();
        assert!(!text.contains(SECRET), "{text}");
    })
    .await;
}

#[tokio::test]
async fn the_signed_url_is_the_public_one_when_configured_and_v1_only_when_allowed() {
    let ts = tandem_engine::store::testing::TestStore::sqlite().await;
    let store = ts.store.clone();
    let server = start(
        store.clone(),
        ReceiverConfig {
            public_url: Some("https://sync.example.com/".into()),
            accept_v1: true,
            ..config()
        },
    )
    .await;
    let url = format!("{}/webhooks/hubspot?portal=62515", server.url);
    let body =
        serde_json::to_vec(&json!([event(1, "company", "creation", 501, json!({}))])).unwrap();
    // Signed over the local URL: refused, the proxy's public URL is what HubSpot signed.
    let r = signed(&url, &body, SECRET, now_ms()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let now = now_ms().to_string();
    let public = "https://sync.example.com/webhooks/hubspot?portal=62515";
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "x-hubspot-signature-v3",
            sign_v3(SECRET.as_bytes(), "POST", public, &body, &now),
        )
        .header("x-hubspot-request-timestamp", &now)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // v1 (allowed here): a right one is accepted (as a redelivery), a wrong one refused.
    let v1 = |secret: &str| {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hubspot-signature", sign_v1(secret.as_bytes(), &body))
            .header("x-hubspot-signature-version", "v1")
            .body(body.clone())
    };
    assert_eq!(v1("wrong").send().await.unwrap().status(), 401);
    let r = v1(SECRET).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["duplicates"], 1);
    assert_eq!(jobs(store.as_ref()).await.len(), 1);
    drop(server);
    ts.cleanup().await;
}

#[tokio::test]
async fn without_a_secret_hubspot_deliveries_are_deferred() {
    let ts = tandem_engine::store::testing::TestStore::sqlite().await;
    let server = start(
        ts.store.clone(),
        ReceiverConfig {
            hubspot_secret: None,
            accelo_secret: None,
            ..config()
        },
    )
    .await;
    let body = b"[]";
    let url = format!("{}/webhooks/hubspot", server.url);
    let r = signed(&url, body, SECRET, now_ms()).send().await.unwrap();
    assert_eq!(r.status(), 503, "HubSpot retries a 503");
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/accelo", server.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(server);
    ts.cleanup().await;
}

#[tokio::test]
async fn accelo_events_queue_the_accelo_record() {
    for_each_store(|store| async move {
        let server = start(store.clone(), config()).await;
        let url = format!("{}/webhooks/accelo", server.url);
        let client = reqwest::Client::new();
        let send = |event: &str, body: Vec<u8>, sig: Option<String>, form: bool| {
            let mut req = client
                .post(&url)
                .header("x-accelo-event", event)
                .header(
                    "content-type",
                    if form {
                        "application/x-www-form-urlencoded"
                    } else {
                        "application/json"
                    },
                )
                .body(body);
            if let Some(sig) = sig {
                req = req.header("x-hub-signature", sig);
            }
            req.send()
        };
        let body = br#"{"id":"12","resource_url":"https://x.api.accelo.com/api/v0/companies/12"}"#;
        // Unsigned and forged: refused.
        let r = send("update_company", body.to_vec(), None, false)
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let forged = sign_accelo(b"nope", body);
        let r = send("update_company", body.to_vec(), Some(forged), false)
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(jobs(store.as_ref()).await.is_empty());
        // Signed: queued (twice → one job, it has not run yet).
        for _ in 0..2 {
            let sig = sign_accelo(ACCELO_SECRET.as_bytes(), body);
            let r = send("update_company", body.to_vec(), Some(sig), false)
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let form = b"id=7&resource_url=%2Fapi%2Fv0%2Fcontacts%2F7".to_vec();
        let sig = sign_accelo(ACCELO_SECRET.as_bytes(), &form);
        let r = send("create_contact", form, Some(sig), true).await.unwrap();
        assert_eq!(r.status(), 200);
        // A signed event of a kind Tandem does not sync: acknowledged, nothing queued.
        let other = br#"{"id":"3","resource_url":"/api/v0/invoices/3"}"#;
        let sig = sign_accelo(ACCELO_SECRET.as_bytes(), other);
        let r = send("create_invoice", other.to_vec(), Some(sig), false)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // A signed body without an id: 400.
        let sig = sign_accelo(ACCELO_SECRET.as_bytes(), b"{}");
        let r = send("update_company", b"{}".to_vec(), Some(sig), false)
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(
            jobs(store.as_ref()).await,
            [
                ("accelo:company:12".to_string(), JobState::Queued),
                ("accelo:contact:7".to_string(), JobState::Queued),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn health_and_metrics_answer() {
    tandem_engine::server::metrics::install();
    let ts = tandem_engine::store::testing::TestStore::sqlite().await;
    let server = start(ts.store.clone(), config()).await;
    let r = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    let url = format!("{}/webhooks/hubspot", server.url);
    let r = signed(&url, b"[]", "wrong", now_ms()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("tandem_webhook_requests_total")
                && l.contains("outcome=\"forged\"")),
        "{text}"
    );
    drop(server);
    ts.cleanup().await;
}
