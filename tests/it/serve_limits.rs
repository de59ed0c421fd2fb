//! The webhook server's limits over real HTTP and raw TCP: clients that never finish their
//! headers or body are disconnected, connections over the limit are refused, an announced body
//! over the limit is refused before it is read, requests of more than 100 events, events with
//! fields of the wrong types and bodies of the wrong content type are refused — and a refused
//! request stores and queues nothing. The waits are for the server to close the socket, never
//! a sleep.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::rules::config::Secret;
use tandem_engine::server::http::Limits;
use tandem_engine::server::signature::{sign_accelo, sign_v3};
use tandem_engine::server::{Receiver, ReceiverConfig, Rules, router};
use tandem_engine::store::testing::{TestStore, for_each_store};
use tandem_engine::store::{JobFilter, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::program;
use crate::support::serve::DEADLINE;

const SECRET: &str = "hubspot-app-client-secret-limits";
const ACCELO_SECRET: &str = "accelo-webhook-secret-limits";

fn config() -> ReceiverConfig {
    ReceiverConfig {
        hubspot_secret: Some(Secret::new(SECRET)),
        accelo_secret: Some(Secret::new(ACCELO_SECRET)),
        job_delay: Duration::ZERO,
        ..ReceiverConfig::default()
    }
}

/// A receiver served by Tandem's accept loop on a free port.
struct Server {
    addr: std::net::SocketAddr,
    cancel: tokio_util::sync::CancellationToken,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn start(store: Arc<dyn Store>, config: ReceiverConfig, limits: Limits) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rx = Arc::new(Receiver::new(store, Rules::Fixed(program()), config));
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tandem_engine::server::http::serve(listener, router(rx), limits, c)
            .await
            .unwrap();
    });
    Server { addr, cancel }
}

/// Everything the server sends until it closes the connection (the test fails if it never
/// does within the deadline).
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn event(id: u64, object_id: Value) -> Value {
    json!({
        "eventId": id, "subscriptionId": 1000, "portalId": 62515, "appId": 54321,
        "occurredAt": 1_700_000_000_000_i64 + id as i64,
        "subscriptionType": "company.propertyChange", "propertyName": "name",
        "propertyValue": "Acme", "attemptNumber": 0, "objectId": object_id,
        "changeSource": "CRM_UI",
    })
}

/// A v3-signed HubSpot request with `content_type` (none when `None`).
fn signed(url: &str, body: &[u8], content_type: Option<&str>) -> reqwest::RequestBuilder {
    let ts = now_ms().to_string();
    let mut r = reqwest::Client::new()
        .post(url)
        .header(
            "x-hubspot-signature-v3",
            sign_v3(SECRET.as_bytes(), "POST", url, body, &ts),
        )
        .header("x-hubspot-request-timestamp", ts)
        .body(body.to_vec());
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    r
}

async fn nothing_stored(store: &dyn Store) {
    assert!(store.unprocessed_events(1000).await.unwrap().is_empty());
    assert!(store.jobs(&JobFilter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let ts = TestStore::sqlite().await;
    let limits = Limits {
        header_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let server = start(ts.store.clone(), config(), limits).await;
    // Half a request head, then nothing.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /webhooks/hubspot HTTP/1.1\r\nHost: x\r\nContent-Type: applic")
        .await
        .unwrap();
    until_closed(&mut slow).await;
    // A connection that sends nothing at all.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    until_closed(&mut idle).await;
    // The server still answers.
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    nothing_stored(ts.store.as_ref()).await;
    drop(server);
    ts.cleanup().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_body_gets_408_and_is_disconnected() {
    let ts = TestStore::sqlite().await;
    let server = start(
        ts.store.clone(),
        ReceiverConfig {
            body_timeout: Duration::from_millis(200),
            ..config()
        },
        Limits::default(),
    )
    .await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(
        b"POST /webhooks/hubspot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n[{\"eventId\": 1,",
    )
    .await
    .unwrap();
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    nothing_stored(ts.store.as_ref()).await;
    drop(server);
    ts.cleanup().await;
}

#[tokio::test]
async fn an_announced_body_over_the_limit_is_refused_before_it_is_read() {
    let ts = TestStore::sqlite().await;
    let server = start(ts.store.clone(), config(), Limits::default()).await;
    for path in ["/webhooks/hubspot", "/webhooks/accelo"] {
        let mut huge = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 10737418240\r\n\r\n"
        );
        huge.write_all(head.as_bytes()).await.unwrap();
        // Not one byte of the 10 GB is sent: the answer comes anyway, and the socket closes.
        let answer = until_closed(&mut huge).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }
    nothing_stored(ts.store.as_ref()).await;
    drop(server);
    ts.cleanup().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_and_the_server_recovers() {
    let ts = TestStore::sqlite().await;
    let limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(3600),
    };
    let server = start(ts.store.clone(), config(), limits).await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    // The third is answered 503 and closed at once.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let answer = until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // One idle connection goes away: a real request gets through again.
    drop(first);
    let health = server.url("/healthz");
    crate::support::serve::wait_for("a free connection slot", || {
        let health = health.clone();
        async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            match client.get(&health).send().await {
                Ok(r) if r.status() == 200 => Some(()),
                _ => None,
            }
        }
    })
    .await;
    drop(server);
    ts.cleanup().await;
}

#[tokio::test]
async fn more_than_100_events_in_one_request_are_refused_whole() {
    for_each_store(|store| async move {
        let server = start(store.clone(), config(), Limits::default()).await;
        let url = server.url("/webhooks/hubspot");
        let events: Vec<Value> = (1..=101).map(|i| event(i, json!(500 + i))).collect();
        let body = serde_json::to_vec(&events).unwrap();
        let r = signed(&url, &body, Some("application/json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        let msg: Value = r.json().await.unwrap();
        assert!(
            msg["error"].as_str().unwrap().contains("101 events"),
            "{msg}"
        );
        nothing_stored(store.as_ref()).await;
        // 100 is HubSpot's own maximum: accepted.
        let body = serde_json::to_vec(&events[..100]).unwrap();
        let r = signed(&url, &body, Some("application/json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(store.unprocessed_events(1000).await.unwrap().len(), 100);
    })
    .await;
}

#[tokio::test]
async fn events_with_fields_of_the_wrong_type_are_refused_and_queue_nothing() {
    for_each_store(|store| async move {
        let server = start(store.clone(), config(), Limits::default()).await;
        let url = server.url("/webhooks/hubspot");
        for bad in [
            json!("../../etc/passwd"),
            json!("1 OR 1=1"),
            json!(-5),
            json!(0),
            json!(1.5),
            json!(null),
            json!({"id": 1}),
        ] {
            // A good event and a bad one: the whole request is refused, nothing half-stored.
            let body =
                serde_json::to_vec(&json!([event(1, json!(501)), event(2, bad.clone())])).unwrap();
            let r = signed(&url, &body, Some("application/json"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "objectId {bad}");
            let msg: Value = r.json().await.unwrap();
            let text = msg["error"].as_str().unwrap();
            assert!(
                text.contains("event 1") && text.contains("objectId"),
                "{text}"
            );
        }
        let mut wrong_type = event(3, json!(503));
        wrong_type["subscriptionType"] = json!(42);
        let body = serde_json::to_vec(&json!([wrong_type])).unwrap();
        let r = signed(&url, &body, Some("application/json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        nothing_stored(store.as_ref()).await;

        // Accelo: the id must be a positive integer too.
        let accelo = server.url("/webhooks/accelo");
        for body in [
            &br#"{"id":-5}"#[..],
            br#"{"id":"1 OR 1=1"}"#,
            br#"{"id":0}"#,
        ] {
            let r = reqwest::Client::new()
                .post(&accelo)
                .header("content-type", "application/json")
                .header("x-accelo-event", "update_company")
                .header(
                    "x-hub-signature",
                    sign_accelo(ACCELO_SECRET.as_bytes(), body),
                )
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(body));
        }
        nothing_stored(store.as_ref()).await;
    })
    .await;
}

#[tokio::test]
async fn a_body_of_the_wrong_content_type_is_refused_with_415() {
    for_each_store(|store| async move {
        let server = start(store.clone(), config(), Limits::default()).await;
        let url = server.url("/webhooks/hubspot");
        let body = serde_json::to_vec(&json!([event(1, json!(501))])).unwrap();
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let r = signed(&url, &body, ct).send().await.unwrap();
            assert_eq!(r.status(), 415, "{ct:?}");
        }
        let accelo = server.url("/webhooks/accelo");
        let abody = br#"{"id":"12"}"#;
        for ct in [Some("text/plain"), None] {
            let mut r = reqwest::Client::new()
                .post(&accelo)
                .header("x-accelo-event", "update_company")
                .header(
                    "x-hub-signature",
                    sign_accelo(ACCELO_SECRET.as_bytes(), abody),
                )
                .body(abody.to_vec());
            if let Some(ct) = ct {
                r = r.header("content-type", ct);
            }
            assert_eq!(r.send().await.unwrap().status(), 415, "{ct:?}");
        }
        nothing_stored(store.as_ref()).await;
        // The same request with the right type (and a charset) goes through.
        let r = signed(&url, &body, Some("application/json; charset=utf-8"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    })
    .await;
}

/// `tandem serve` takes its limits from `server:` in tandem.yaml: with a one-second header
/// timeout and two connections at most, idle connections are closed and one more is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_serve_applies_the_configured_limits() {
    use crate::support::serve::{Serving, sandbox};
    let sb = sandbox(tandem_sandbox::SandboxOptions {
        seed: 31,
        companies: 2,
        contacts: 2,
        ..Default::default()
    })
    .await;
    let serving = Serving::start(&sb, 0, |file, text| {
        if file == "tandem.yaml" {
            text.replacen(
                "server:\n",
                "server:\n  header_timeout_seconds: 1\n  max_connections: 2\n",
                1,
            )
        } else {
            text
        }
    })
    .await;
    let addr = serving.url.trim_start_matches("http://").to_string();
    // Three idle connections at once: at most two get a slot (the start-up health check's
    // connection may still hold one), so at least one is answered 503 at once; the others are
    // closed by the header timeout, having been sent nothing.
    let mut a = TcpStream::connect(&addr).await.unwrap();
    let mut b = TcpStream::connect(&addr).await.unwrap();
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let (a, b, c) = tokio::join!(
        until_closed(&mut a),
        until_closed(&mut b),
        until_closed(&mut c)
    );
    let answers = [a, b, c];
    assert!(
        answers.iter().any(|x| x.starts_with("HTTP/1.1 503")),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|x| x.is_empty() || x.starts_with("HTTP/1.1 503")),
        "{answers:?}"
    );
    let r = reqwest::get(format!("{}/healthz", serving.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(serving.stop().await, tandem::cli::Exit::Ok);
    sb.shutdown().await;
}

/// Hostile requests each get a 4xx and store nothing: thousands of headers, a chunked body
/// over the limit, deep nesting, invalid UTF-8, a byte-order mark, NUL bytes.
#[tokio::test]
async fn hostile_requests_get_a_4xx_and_store_nothing() {
    let ts = TestStore::sqlite().await;
    let store = ts.store.clone();
    let server = start(store.clone(), config(), Limits::default()).await;
    // 10,000 headers.
    let mut many = TcpStream::connect(server.addr).await.unwrap();
    let mut head = String::from("POST /webhooks/hubspot HTTP/1.1\r\nHost: x\r\n");
    for i in 0..10_000 {
        head.push_str(&format!("x-h{i}: v\r\n"));
    }
    head.push_str("Content-Length: 2\r\n\r\n[]");
    // The server may close before it has read everything sent: a failed write is fine.
    let _ = many.write_all(head.as_bytes()).await;
    // 431, unless the reset of the unread rest overtook it.
    let answer = until_closed(&mut many).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // A chunked body (no Content-Length) that grows over the limit.
    let mut chunked = TcpStream::connect(server.addr).await.unwrap();
    let chunk = vec![b' '; 1_100_000];
    let mut req = format!(
        "POST /webhooks/hubspot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    req.extend_from_slice(&chunk);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    let _ = chunked.write_all(&req).await;
    let answer = until_closed(&mut chunked).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 413"),
        "{answer}"
    );
    // Signed bodies that are not valid JSON events.
    let url = server.url("/webhooks/hubspot");
    let ok = serde_json::to_vec(&json!([event(1, json!(501))])).unwrap();
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(&ok);
    let mut nul = ok.clone();
    nul.insert(1, 0);
    let mut bad_utf8 = ok.clone();
    let at = bad_utf8.len() - 5;
    bad_utf8[at] = 0xFF;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    for body in [bom, nul, bad_utf8, deep] {
        let r = signed(&url, &body, Some("application/json"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    nothing_stored(store.as_ref()).await;
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
    ts.cleanup().await;
}
