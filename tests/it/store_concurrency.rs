//! Concurrent webhook deliveries on PostgreSQL: batches that name the same records in opposite
//! orders, at the store (the calls the receiver makes) and through the real HTTP receiver. Every
//! delivery must succeed: no deadlock reaches a caller, no request gets a 5xx.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_core::model::{Object, System};
use tandem_core::rules::config::Secret;
use tandem_engine::server::signature::sign_v3;
use tandem_engine::server::{Receiver, ReceiverConfig, Rules, router};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{JobFilter, JobState, NewEvent, NewJob, Store};

use crate::support::program;

/// Records per delivery.
const RECORDS: u64 = 50;

fn event(dedup: String, record: u64) -> NewEvent {
    NewEvent {
        source: System::HubSpot,
        dedup_key: dedup,
        object: Some(Object::Company),
        record_id: Some(record.to_string()),
        payload: json!({"objectId": record, "propertyName": "name"}),
    }
}

fn job_for(record: u64) -> NewJob {
    let key = format!("hubspot:company:{record}");
    NewJob::new(
        tandem_engine::store::JobKind::Record,
        json!({ "record": key }),
    )
    .coalesce(key)
}

/// One delivery of round `round`: `RECORDS` fresh records, in ascending or descending order.
/// With `same_events` both deliveries carry the same events (a redelivery), else each its own
/// events about the same records.
fn delivery(round: u64, reverse: bool, same_events: bool) -> Vec<(NewEvent, Option<NewJob>)> {
    let mut records: Vec<u64> = (0..RECORDS).map(|i| round * 1000 + i + 1).collect();
    if reverse {
        records.reverse();
    }
    let tag = if same_events || !reverse { "a" } else { "b" };
    records
        .into_iter()
        .map(|r| (event(format!("{r}:{tag}"), r), Some(job_for(r))))
        .collect()
}

async fn queued_jobs(store: &dyn Store) -> usize {
    store
        .jobs(&JobFilter {
            states: vec![JobState::Queued],
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_order_batches_never_fail_on_postgres() {
    let ts = TestStore::postgres().await;
    let store = ts.store.clone();
    let rounds = 100;
    let mut errors = Vec::new();
    for round in 0..rounds {
        let same = round % 2 == 0;
        let up = delivery(round, false, same);
        let down = delivery(round, true, same);
        let (a, b) = tokio::join!(store.accept_events(&up), store.accept_events(&down));
        for r in [a, b] {
            match r {
                Ok(accepted) => assert_eq!(accepted.len(), RECORDS as usize),
                Err(e) => errors.push(format!("round {round}: {e}")),
            }
        }
        if !errors.is_empty() {
            break;
        }
    }
    assert!(errors.is_empty(), "{} failed: {errors:?}", errors.len());
    // One job per record, every event stored once.
    assert_eq!(
        queued_jobs(store.as_ref()).await,
        (rounds * RECORDS) as usize
    );
    let events = store.unprocessed_events(100_000).await.unwrap();
    assert_eq!(events.len(), (rounds / 2 * RECORDS * 3) as usize);
    ts.cleanup().await;
}

const SECRET: &str = "hubspot-app-client-secret-0123";

fn hubspot_event(id: u64, object_id: u64) -> Value {
    json!({
        "eventId": id, "subscriptionId": 1000, "portalId": 62515, "appId": 54321,
        "occurredAt": 1_700_000_000_000_i64 + id as i64,
        "subscriptionType": "company.propertyChange", "propertyName": "name",
        "propertyValue": format!("Company {object_id}"),
        "attemptNumber": 0, "objectId": object_id, "changeSource": "CRM_UI",
    })
}

async fn post_signed(client: &reqwest::Client, url: &str, body: Vec<u8>) -> u16 {
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    client
        .post(url)
        .header("content-type", "application/json")
        .header(
            "x-hubspot-signature-v3",
            sign_v3(SECRET.as_bytes(), "POST", url, &body, &ts),
        )
        .header("x-hubspot-request-timestamp", ts)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_order_deliveries_get_no_5xx_on_postgres() {
    let ts = TestStore::postgres().await;
    let store = ts.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = ReceiverConfig {
        hubspot_secret: Some(Secret::new(SECRET)),
        job_delay: Duration::ZERO,
        ..ReceiverConfig::default()
    };
    let rx = Arc::new(Receiver::new(
        store.clone(),
        Rules::Fixed(program()),
        config,
    ));
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, router(rx))
            .with_graceful_shutdown(async move { c.cancelled().await })
            .await
            .unwrap();
    });
    let url = format!("{base}/webhooks/hubspot");
    let client = reqwest::Client::new();
    let rounds = 100;
    let mut statuses = Vec::new();
    for round in 0..rounds {
        // The same 50 events (a redelivery), once in each order.
        let events: Vec<Value> = (0..RECORDS)
            .map(|i| hubspot_event(round * 1000 + i + 1, 900_000 + round * 1000 + i))
            .collect();
        let up = serde_json::to_vec(&events).unwrap();
        let mut reversed = events.clone();
        reversed.reverse();
        let down = serde_json::to_vec(&reversed).unwrap();
        let (a, b) = tokio::join!(
            post_signed(&client, &url, up),
            post_signed(&client, &url, down)
        );
        statuses.extend([a, b]);
        assert!(a == 200 && b == 200, "round {round}: answers {a} and {b}");
    }
    assert_eq!(statuses.len(), 2 * rounds as usize);
    assert_eq!(
        queued_jobs(store.as_ref()).await,
        (rounds * RECORDS) as usize
    );
    cancel.cancel();
    ts.cleanup().await;
}

/// A deadlock PostgreSQL breaks by aborting the store's transaction is not the caller's
/// problem: the store runs the transaction again. Another session holds one of the batch's
/// events and then asks for another the batch holds; that session never checks for deadlocks
/// itself (`deadlock_timeout` of an hour), so the store's transaction is the one aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_aborted_by_a_deadlock_is_run_again() {
    use sqlx::Connection;
    let ts = TestStore::postgres().await;
    let store = ts.store.clone();
    let mut other = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    let insert = "INSERT INTO events (source, dedup_key, object, record_id, payload, received_at) \
                  VALUES ('hubspot', $1, 'company', '1', '{}', 0)";
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SET LOCAL deadlock_timeout = '1h'")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query(insert)
        .bind("deadlock:b")
        .execute(&mut other)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut other)
        .await
        .unwrap();

    // The batch takes `a`, then waits for `b`.
    let batch = vec![
        (event("deadlock:b".into(), 1), None),
        (event("deadlock:a".into(), 1), None),
    ];
    let s = store.clone();
    let accepting = tokio::spawn(async move { s.accept_events(&batch).await });
    let mut watch = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    let deadline = tokio::time::Instant::now() + crate::support::serve::DEADLINE;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        )
        .bind(pid)
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the batch never waited for the other session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Now the other session asks for `a`: a deadlock, which aborts the store's transaction.
    sqlx::query(insert)
        .bind("deadlock:a")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();

    let accepted = accepting
        .await
        .unwrap()
        .expect("the store retried the aborted transaction");
    assert_eq!(accepted.len(), 2);
    assert!(accepted.iter().all(|a| a.new));
    assert_eq!(store.unprocessed_events(10).await.unwrap().len(), 2);
    ts.cleanup().await;
}
