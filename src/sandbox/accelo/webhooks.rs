//! Accelo webhooks: subscriptions (`/api/v0/webhooks/subscriptions`, or configured at start)
//! to `create_company`, `update_company`, `create_contact` and `update_contact`, delivered as
//! `{id, resource_url}` (JSON or form) with `X-Accelo-Event` and, when the subscription has a
//! secret, `X-Hub-Signature` (hex HMAC-SHA256 of the body). Affiliation and address changes
//! fire nothing, as in Accelo.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedReceiver;

use super::store::AcEvent;
use super::{Ac, invalid, ok, params};
use crate::common::{Faults, lock};

/// The event types the simulator emits.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    ("create_company", "Company created"),
    ("update_company", "Company updated"),
    ("create_contact", "Contact created"),
    ("update_contact", "Contact updated"),
];

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Id.
    pub id: u64,
    /// Event type.
    pub event_id: String,
    /// Where to POST.
    pub trigger_url: String,
    /// `application/json` or `application/x-www-form-urlencoded`.
    pub content_type: String,
    /// Signing secret (empty = unsigned).
    pub secret: String,
}

/// Subscriptions and delivery counters.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Active subscriptions.
    pub subs: Mutex<Vec<Subscription>>,
    next_id: AtomicU64,
    /// Events emitted and not yet delivered or given up.
    pub pending: AtomicU64,
    /// Requests answered 2xx.
    pub delivered: AtomicU64,
    /// Failed attempts.
    pub failed_attempts: AtomicU64,
    /// Deliveries given up.
    pub abandoned: AtomicU64,
    /// Deliveries lost on purpose (fault).
    pub lost: AtomicU64,
    /// Deliveries duplicated on purpose (fault).
    pub duplicated: AtomicU64,
}

impl Hooks {
    /// Adds a subscription, returning it.
    pub fn subscribe(
        &self,
        event_id: &str,
        url: &str,
        content_type: &str,
        secret: &str,
    ) -> Subscription {
        let sub = Subscription {
            id: self.next_id.fetch_add(1, Ordering::SeqCst) + 1,
            event_id: event_id.to_string(),
            trigger_url: url.to_string(),
            content_type: content_type.to_string(),
            secret: secret.to_string(),
        };
        lock(&self.subs).push(sub.clone());
        sub
    }

    /// Counters as JSON.
    pub fn stats_json(&self) -> Value {
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        json!({
            "subscriptions": lock(&self.subs).len(),
            "pending": g(&self.pending),
            "delivered_requests": g(&self.delivered),
            "failed_attempts": g(&self.failed_attempts),
            "abandoned": g(&self.abandoned),
            "lost": g(&self.lost),
            "duplicated": g(&self.duplicated),
        })
    }

    fn done(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_sub(1))
            });
    }
}

fn sub_json(s: &Subscription) -> Value {
    json!({
        "subscription_id": s.id.to_string(),
        "event_id": s.event_id,
        "trigger_url": s.trigger_url,
        "content_type": s.content_type,
    })
}

/// `GET /api/v0/webhooks/subscriptions`.
pub async fn list_subscriptions(State(ac): State<Arc<Ac>>) -> Response {
    let subs: Vec<Value> = lock(&ac.hooks.subs).iter().map(sub_json).collect();
    ok(json!({"subscriptions": subs}))
}

/// `GET /api/v0/webhooks/subscriptions/types`.
pub async fn subscription_types() -> Response {
    let types: Vec<Value> = EVENT_TYPES
        .iter()
        .map(|(id, title)| json!({"event_id": id, "title": title}))
        .collect();
    ok(json!({"event_types": types}))
}

/// `POST /api/v0/webhooks/subscriptions` (`trigger_url`, `event_id`, `content_type`, `secret`).
pub async fn create_subscription(
    State(ac): State<Arc<Ac>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match params(q.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(url) = p.get("trigger_url").filter(|u| !u.is_empty()) else {
        return invalid("`trigger_url` is required");
    };
    if reqwest::Url::parse(url).is_err() {
        return invalid(format!("`trigger_url` `{url}` is not a valid URL"));
    }
    let Some(event) = p.get("event_id") else {
        return invalid("`event_id` is required");
    };
    if !EVENT_TYPES.iter().any(|(e, _)| e == event) {
        return invalid(format!(
            "`event_id` `{event}` is not supported (supported: {})",
            EVENT_TYPES
                .iter()
                .map(|(e, _)| *e)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let ct = p
        .get("content_type")
        .cloned()
        .unwrap_or_else(|| "application/json".into());
    if ct != "application/json" && ct != "application/x-www-form-urlencoded" {
        return invalid(format!("`content_type` `{ct}` is not supported"));
    }
    let secret = p.get("secret").cloned().unwrap_or_default();
    let sub = ac.hooks.subscribe(event, url, &ct, &secret);
    ok(json!({"subscription": sub_json(&sub)}))
}

/// `DELETE /api/v0/webhooks/subscriptions/{id}`.
pub async fn delete_subscription(State(ac): State<Arc<Ac>>, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<u64>() else {
        return invalid(format!("`{id}` is not a valid subscription id"));
    };
    let mut subs = lock(&ac.hooks.subs);
    let before = subs.len();
    subs.retain(|s| s.id != n);
    if subs.len() == before {
        return invalid(format!("no subscription `{id}`"));
    }
    ok(Value::Null)
}

/// Hex HMAC-SHA256 of the body with the subscription secret (`X-Hub-Signature`).
pub fn signature(secret: &str, body: &[u8]) -> String {
    match hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut m) => {
            m.update(body);
            hex::encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Runs delivery until the event feed closes.
pub async fn run(
    hooks: Arc<Hooks>,
    faults: Arc<Faults>,
    base_url: String,
    mut rx: UnboundedReceiver<AcEvent>,
) {
    let Ok(client) = reqwest::Client::builder().build() else {
        return;
    };
    while let Some(ev) = rx.recv().await {
        let subs: Vec<Subscription> = lock(&hooks.subs)
            .iter()
            .filter(|s| s.event_id == ev.event)
            .cloned()
            .collect();
        let resource = if ev.event.ends_with("company") {
            "companies"
        } else {
            "contacts"
        };
        for sub in subs {
            let (lose, dup, _) = faults.webhook_roll();
            if lose {
                hooks.lost.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let copies = if dup {
                hooks.duplicated.fetch_add(1, Ordering::SeqCst);
                2
            } else {
                1
            };
            for _ in 0..copies {
                hooks.pending.fetch_add(1, Ordering::SeqCst);
                let client = client.clone();
                let hooks = hooks.clone();
                let sub = sub.clone();
                let url = format!("{base_url}/api/v0/{resource}/{}", ev.id);
                let id = ev.id;
                tokio::spawn(async move { deliver(&client, &hooks, &sub, id, &url).await });
            }
        }
    }
}

async fn deliver(
    client: &reqwest::Client,
    hooks: &Hooks,
    sub: &Subscription,
    id: u64,
    resource_url: &str,
) {
    let body: Vec<u8> = if sub.content_type == "application/json" {
        serde_json::to_vec(&json!({"id": id.to_string(), "resource_url": resource_url}))
            .unwrap_or_default()
    } else {
        serde_urlencoded::to_string([
            ("id", id.to_string()),
            ("resource_url", resource_url.to_string()),
        ])
        .unwrap_or_default()
        .into_bytes()
    };
    for attempt in 0..4u32 {
        let mut req = client
            .post(&sub.trigger_url)
            .timeout(Duration::from_secs(10))
            .header("content-type", &sub.content_type)
            .header("x-accelo-event", &sub.event_id)
            .body(body.clone());
        if !sub.secret.is_empty() {
            req = req.header("x-hub-signature", signature(&sub.secret, &body));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                hooks.delivered.fetch_add(1, Ordering::SeqCst);
                hooks.done();
                return;
            }
            Ok(r) if r.status().as_u16() == 410 => {
                // 410 Gone unsubscribes.
                lock(&hooks.subs).retain(|s| s.id != sub.id);
                hooks.done();
                return;
            }
            _ => {
                hooks.failed_attempts.fetch_add(1, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
    }
    hooks.abandoned.fetch_add(1, Ordering::SeqCst);
    hooks.done();
}
