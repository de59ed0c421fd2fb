//! The sandbox's admin API (`/_sandbox/...` on either simulator's URL) over plain HTTP: what the
//! simulators hold and count, read apart from the connectors, and edits made as a person would.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// `GET url`, answered as JSON.
pub async fn get(url: String) -> Value {
    reqwest::get(url)
        .await
        .expect("admin request")
        .json()
        .await
        .expect("admin json")
}

/// `GET /_sandbox/records/{object}` on `base`.
pub async fn records(base: &str, object: &str) -> Vec<Value> {
    match get(format!("{base}/_sandbox/records/{object}")).await {
        Value::Array(a) => a,
        other => panic!("records of `{object}` are not an array: {other}"),
    }
}

/// `GET /_sandbox/stats` on `base`.
pub async fn stats(base: &str) -> Value {
    get(format!("{base}/_sandbox/stats")).await
}

/// The request counts of `/_sandbox/stats` on `base`, by `METHOD /route`.
pub async fn requests(base: &str) -> BTreeMap<String, u64> {
    let s = stats(base).await;
    s["requests"]
        .as_object()
        .expect("requests")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect()
}

/// What `after` counts more than `before`, non-zero routes only.
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// `POST /_sandbox/edit` on `base`: creates (`id` None) or changes a record as a person would;
/// answers the record.
pub async fn edit(base: &str, object: &str, id: Option<&str>, fields: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/_sandbox/edit"))
        .json(&json!({"object": object, "id": id, "fields": fields}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_success(), "edit {object} {id:?}: {status} {body}");
    serde_json::from_str(&body).unwrap()
}
