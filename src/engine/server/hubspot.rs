//! `POST /webhooks/hubspot`: HubSpot's webhook deliveries (a JSON array of up to 100 events).
//!
//! In order, each a refusal that stores and queues nothing:
//! 1. a `Content-Length` over the limit → 413 before the body is read; a body that does not
//!    arrive in time → 408; a body larger than the limit → 413 (`receiver::guard`);
//! 2. no secret configured → 503 (HubSpot retries for a day, so nothing is lost);
//! 3. `X-HubSpot-Signature-v3` over the full URL HubSpot called (the configured public URL, else
//!    `http://` + `Host` + path and query), constant-time, timestamp within 5 minutes → else
//!    401; v1 only when configured; the exact same signed request seen again → 401 (replay);
//! 4. a `Content-Type` other than `application/json` → 415;
//! 5. more events than the limit (100, as HubSpot sends at most) → 413;
//! 6. not a JSON array of event objects, or an event whose fields have the wrong types
//!    ([`check_event`]: `eventId` and `objectId` positive integers, `subscriptionType` a
//!    `object.kind` string, …) → 400.
//!
//! Then every event is classified ([`classify`]): a creation, or a change to a property of the
//! rules' trigger list (B11), or a contact's association change queues a `record` job for the
//! record, coalesced per record (`hubspot:<object>:<id>`); a property change whose value is one
//! Tandem wrote (B17, [`Store::consume_echo`]) and a creation of a record that is already linked
//! are echoes; a deletion is logged and not propagated; anything else is ignored. All events are
//! stored in one transaction ([`Store::accept_events`]), deduplicated by eventId + objectId +
//! occurredAt + subscriptionType + propertyName (HubSpot redelivers, and `eventId` alone is not
//! unique), before the 2xx answer; events that need no job are then settled.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::metrics as m;
#[cfg(test)]
use super::receiver::ReplayGuard;
use super::receiver::{Receiver, key, now_ms, record_job};
use super::signature::{self, SignatureError};
use crate::store::{
    Echo, EventId, LogBody, NewEvent, NewJob, NewLogEntry, Notice, NoticeLevel, Store,
};
use tandem_core::compile::Program;
use tandem_core::model::{Object, RecordKey, System};

/// What one event leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Queue (or join) the record job of this record. `echo` is the value to check against
    /// Tandem's own writes first (property changes).
    Queue {
        /// The record to sync.
        record: RecordKey,
        /// The change, as an echo candidate.
        echo: Option<Echo>,
        /// A creation event (an echo when the record is already linked).
        creation: bool,
    },
    /// A deletion: logged, not propagated.
    Deleted(RecordKey),
    /// Nothing to do; the reason.
    Ignored(String),
}

/// One event, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The deduplication key.
    pub dedup_key: String,
    /// The object, when it is one Tandem syncs.
    pub object: Option<Object>,
    /// The record id (`objectId`).
    pub record_id: Option<String>,
    /// What to do.
    pub decision: Decision,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The deduplication key of an event: eventId, objectId, occurredAt, subscriptionType and
/// propertyName (missing parts empty).
pub fn dedup_key(ev: &Map<String, Value>) -> String {
    let sub = ev.get("subscriptionType").or_else(|| ev.get("eventType"));
    [
        text(ev.get("eventId")),
        text(ev.get("objectId")),
        text(ev.get("occurredAt")),
        text(sub),
        text(ev.get("propertyName")),
    ]
    .map(Option::unwrap_or_default)
    .join(":")
}

/// Decides what one event leads to, from the running rules. Pure.
pub fn classify(program: &Program, ev: &Map<String, Value>) -> Classified {
    let dedup_key = dedup_key(ev);
    let sub = text(ev.get("subscriptionType").or_else(|| ev.get("eventType")));
    let (obj, kind) = match sub.as_deref().and_then(|s| s.split_once('.')) {
        Some((o, k)) => (o.to_string(), k.to_string()),
        None => {
            return Classified {
                dedup_key,
                object: None,
                record_id: None,
                decision: Decision::Ignored("no subscription type".into()),
            };
        }
    };
    let record_id = text(ev.get("objectId"));
    let object = match obj.as_str() {
        "company" => Some(Object::Company),
        "contact" => Some(Object::Contact),
        _ => None,
    };
    let ignored = |why: String| Classified {
        dedup_key: dedup_key.clone(),
        object,
        record_id: record_id.clone(),
        decision: Decision::Ignored(why),
    };
    let Some(object) = object else {
        return ignored(format!("`{obj}` records are not synced"));
    };
    let Some(id) = record_id.clone() else {
        return ignored("no objectId".into());
    };
    if program.object(object).is_none() {
        return ignored(format!("no rules for {}", object.plural()));
    }
    let record = key(System::HubSpot, object, id.clone());
    let decision = match kind.as_str() {
        "creation" | "restore" => {
            if program.triggers(object, "created") {
                Decision::Queue {
                    record,
                    echo: None,
                    creation: kind == "creation",
                }
            } else {
                Decision::Ignored("`created` is not in the trigger list".into())
            }
        }
        "propertyChange" => match text(ev.get("propertyName")) {
            None => Decision::Ignored("property change without a property name".into()),
            Some(p) if program.triggers(object, &p) => {
                let value = match ev.get("propertyValue") {
                    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    _ => None,
                };
                Decision::Queue {
                    echo: Some(Echo {
                        system: System::HubSpot,
                        object,
                        id: id.clone(),
                        field: p,
                        value,
                    }),
                    record,
                    creation: false,
                }
            }
            Some(p) => Decision::Ignored(format!("`{p}` is not in the trigger list")),
        },
        "associationChange" => {
            // The contact is the object of a contact event, the other end of a company event.
            let contact = match (object, text(ev.get("associationType")).as_deref()) {
                (Object::Contact, Some("CONTACT_TO_COMPANY") | None) => Some(id.clone()),
                (Object::Company, Some("COMPANY_TO_CONTACT")) => text(ev.get("toObjectId")),
                _ => None,
            };
            match contact {
                Some(c) if program.object(Object::Contact).is_some() => Decision::Queue {
                    record: key(System::HubSpot, Object::Contact, c),
                    echo: None,
                    creation: false,
                },
                _ => Decision::Ignored("not a contact-to-company association".into()),
            }
        }
        "merge" => match text(ev.get("primaryObjectId")).or_else(|| text(ev.get("newObjectId"))) {
            Some(p) => Decision::Queue {
                record: key(System::HubSpot, object, p),
                echo: None,
                creation: false,
            },
            None => Decision::Ignored("merge without a primary object".into()),
        },
        "deletion" | "privacyDeletion" => Decision::Deleted(record),
        other => Decision::Ignored(format!("`{other}` events are not synced")),
    };
    Classified {
        dedup_key,
        object: Some(object),
        record_id,
        decision,
    }
}

fn refuse(status: StatusCode, outcome: &'static str, message: &str) -> Response {
    super::receiver::refuse("hubspot", status, outcome, message)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The URL HubSpot called: the configured public base URL, else `http://` + `Host`, with the
/// path and query as received.
fn called_url(rx: &Receiver, headers: &HeaderMap, path_and_query: &str) -> String {
    match &rx.config.public_url {
        Some(base) => format!("{}{path_and_query}", base.trim_end_matches('/')),
        None => format!(
            "http://{}{path_and_query}",
            header(headers, "host").unwrap_or("localhost")
        ),
    }
}

/// Verifies the request; the signature used (for replay detection) when it passes.
fn authenticate(
    rx: &Receiver,
    secret: &[u8],
    method: &Method,
    url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, SignatureError> {
    let v3 = header(headers, "x-hubspot-signature-v3");
    if v3.is_some() || !rx.config.accept_v1 {
        signature::verify_v3(
            secret,
            method.as_str(),
            url,
            body,
            header(headers, "x-hubspot-request-timestamp"),
            v3,
            now_ms(),
        )?;
        return Ok(v3.map(|s| s.trim().to_string()));
    }
    let version = header(headers, "x-hubspot-signature-version").unwrap_or("v1");
    if !version.eq_ignore_ascii_case("v1") {
        return Err(SignatureError::MissingHeader("X-HubSpot-Signature-v3"));
    }
    signature::verify_v1(secret, body, header(headers, "x-hubspot-signature"))?;
    Ok(None)
}

/// The handler.
pub async fn receive(
    State(rx): State<Arc<Receiver>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match super::receiver::webhook_body("hubspot", body, rx.config.max_body) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let Some(secret) = rx.config.hubspot_secret.as_ref() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no webhook secret is configured (TANDEM_HUBSPOT_WEBHOOK_SECRET or \
             server.webhook_secret_env)",
        );
    };
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let url = called_url(&rx, &headers, &path_and_query);
    let signature = match authenticate(
        &rx,
        secret.expose().as_bytes(),
        &method,
        &url,
        &headers,
        &body,
    ) {
        Ok(s) => s,
        Err(e) => {
            let outcome = match e {
                SignatureError::MissingHeader(_) => "unsigned",
                SignatureError::Stale { .. } | SignatureError::BadTimestamp => "stale",
                SignatureError::Malformed | SignatureError::Mismatch => "forged",
            };
            tracing::warn!(target: "tandem::server", "refused a HubSpot webhook request: {e}");
            return refuse(StatusCode::UNAUTHORIZED, outcome, &e.to_string());
        }
    };
    if let Some(sig) = &signature
        && !rx.replays.first_time(sig, now_ms())
    {
        tracing::warn!(target: "tandem::server", "refused a replayed HubSpot webhook request");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "replayed",
            "this signed request was already received",
        );
    }
    let forget = || {
        if let Some(sig) = &signature {
            rx.replays.forget(sig);
        }
    };
    if !super::receiver::content_type_is(&headers, &["application/json"]) {
        forget();
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            "the body must be JSON, sent with `Content-Type: application/json`",
        );
    }
    let events = match parse(&body, rx.config.max_events) {
        Ok(e) => e,
        Err(Refusal::TooMany(n)) => {
            forget();
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                &format!(
                    "the request carries {n} events; at most {} are accepted in one request",
                    rx.config.max_events
                ),
            );
        }
        Err(Refusal::Malformed(msg)) => {
            forget();
            return refuse(StatusCode::BAD_REQUEST, "malformed", &msg);
        }
    };
    match accept(&rx, events).await {
        Ok(summary) => {
            metrics::counter!(m::WEBHOOK_REQUESTS, "source" => "hubspot", "outcome" => "accepted")
                .increment(1);
            metrics::histogram!(m::WEBHOOK_SECONDS, "source" => "hubspot")
                .record(started.elapsed().as_secs_f64());
            (StatusCode::OK, axum::Json(summary.to_json())).into_response()
        }
        Err(e) => {
            tracing::error!(target: "tandem::server", "could not store HubSpot events: {e}");
            forget();
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                "the events could not be stored; send them again",
            )
        }
    }
}

/// Why a body's events were refused.
#[derive(Debug, PartialEq)]
enum Refusal {
    /// More events than the limit (how many).
    TooMany(usize),
    /// Not events, or an event with a field of the wrong type (what is wrong).
    Malformed(String),
}

/// A JSON array of at most `max` well-typed event objects (a single object is taken as an
/// array of one).
fn parse(body: &[u8], max: usize) -> Result<Vec<Map<String, Value>>, Refusal> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Refusal::Malformed(format!(
            "the body is not JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(o) => vec![Value::Object(o)],
        _ => {
            return Err(Refusal::Malformed(
                "the body is not a JSON array of events".into(),
            ));
        }
    };
    if items.len() > max {
        return Err(Refusal::TooMany(items.len()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(o) => match check_event(&o) {
                Ok(()) => Ok(o),
                Err(why) => Err(Refusal::Malformed(format!("event {i}: {why}"))),
            },
            _ => Err(Refusal::Malformed(format!(
                "event {i} is not a JSON object"
            ))),
        })
        .collect()
}

/// A positive integer: a JSON number, or a string of digits (at most 19, not all zeros).
fn is_positive_id(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_u64().is_some_and(|n| n > 0),
        Value::String(s) => {
            !s.is_empty()
                && s.len() <= 19
                && s.bytes().all(|b| b.is_ascii_digit())
                && s.bytes().any(|b| b != b'0')
        }
        _ => false,
    }
}

/// Checks the types of the fields of one HubSpot event that Tandem reads: `eventId` and
/// `objectId` (positive integers), `subscriptionType` (or `eventType`: `object.kind`),
/// `occurredAt` (milliseconds, when present), `propertyName` (a string), `propertyValue` (a
/// string, number, boolean or null), `associationType` (a string), and the other record ids
/// (`toObjectId`, `fromObjectId`, `primaryObjectId`, `newObjectId`: positive integers).
pub fn check_event(ev: &Map<String, Value>) -> Result<(), String> {
    for field in ["eventId", "objectId"] {
        match ev.get(field) {
            None => return Err(format!("`{field}` is missing")),
            Some(v) if !is_positive_id(v) => {
                return Err(format!("`{field}` must be a positive integer, not {v}"));
            }
            Some(_) => {}
        }
    }
    let sub = match (ev.get("subscriptionType"), ev.get("eventType")) {
        (Some(v), _) => ("subscriptionType", v),
        (None, Some(v)) => ("eventType", v),
        (None, None) => return Err("`subscriptionType` is missing".into()),
    };
    match sub.1.as_str() {
        Some(s)
            if s.len() <= 100
                && s.split_once('.').is_some_and(|(o, k)| {
                    !o.is_empty()
                        && !k.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
                }) => {}
        _ => {
            return Err(format!(
                "`{}` must be a string like `contact.propertyChange`, not {}",
                sub.0, sub.1
            ));
        }
    }
    if let Some(v) = ev.get("occurredAt")
        && v.as_u64().is_none()
        && !matches!(v, Value::String(s) if is_positive_id(&Value::String(s.clone())))
    {
        return Err(format!(
            "`occurredAt` must be a time in milliseconds, not {v}"
        ));
    }
    for field in ["propertyName", "associationType", "changeSource"] {
        if let Some(v) = ev.get(field)
            && !v.is_string()
        {
            return Err(format!("`{field}` must be a string, not {v}"));
        }
    }
    if let Some(v) = ev.get("propertyValue")
        && !matches!(
            v,
            Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
        )
    {
        return Err(format!(
            "`propertyValue` must be a string, number or boolean, not {v}"
        ));
    }
    for field in [
        "toObjectId",
        "fromObjectId",
        "primaryObjectId",
        "newObjectId",
    ] {
        if let Some(v) = ev.get(field)
            && !v.is_null()
            && !is_positive_id(v)
        {
            return Err(format!("`{field}` must be a positive integer, not {v}"));
        }
    }
    Ok(())
}

/// What a delivery led to (the 200 answer's body).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events in the request.
    pub received: usize,
    /// Events that queued or joined a record job.
    pub queued: usize,
    /// Redeliveries of events already stored.
    pub duplicates: usize,
    /// Events recognised as echoes of Tandem's own writes.
    pub echoes: usize,
    /// Deletions (logged, not propagated).
    pub deleted: usize,
    /// Events that trigger nothing.
    pub ignored: usize,
}

impl Summary {
    fn to_json(self) -> Value {
        json!({
            "received": self.received,
            "queued": self.queued,
            "duplicates": self.duplicates,
            "echoes": self.echoes,
            "deleted": self.deleted,
            "ignored": self.ignored,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Queue,
    Echo,
    Deleted,
    Ignored,
}

/// Classifies, checks echoes and stores a batch of events.
async fn accept(
    rx: &Receiver,
    events: Vec<Map<String, Value>>,
) -> Result<Summary, crate::store::StoreError> {
    let program = rx.rules.current();
    let store: &dyn Store = rx.store.as_ref();
    let mut batch: Vec<(NewEvent, Option<NewJob>)> = Vec::with_capacity(events.len());
    let mut fates = Vec::with_capacity(events.len());
    let mut deleted: Vec<Option<RecordKey>> = Vec::with_capacity(events.len());
    for ev in events {
        let c = classify(&program, &ev);
        let (fate, job, gone) = match &c.decision {
            Decision::Queue {
                record,
                echo,
                creation,
            } => {
                let is_echo = match echo {
                    Some(echo) => store.consume_echo(echo).await?,
                    // A creation of a record that is already linked: Tandem created it.
                    None if *creation => store
                        .link(record.object, record.system, &record.id)
                        .await?
                        .is_some(),
                    None => false,
                };
                if is_echo {
                    (Fate::Echo, None, None)
                } else {
                    (
                        Fate::Queue,
                        Some(record_job(record, rx.config.job_delay)),
                        None,
                    )
                }
            }
            Decision::Deleted(k) => (Fate::Deleted, None, Some(k.clone())),
            Decision::Ignored(why) => {
                tracing::debug!(target: "tandem::server", "hubspot event {} ignored: {why}", c.dedup_key);
                (Fate::Ignored, None, None)
            }
        };
        batch.push((
            NewEvent {
                source: System::HubSpot,
                dedup_key: c.dedup_key,
                object: c.object,
                record_id: c.record_id,
                payload: Value::Object(ev),
            },
            job,
        ));
        fates.push(fate);
        deleted.push(gone);
    }
    let accepted = store.accept_events(&batch).await?;
    let mut summary = Summary {
        received: accepted.len(),
        ..Summary::default()
    };
    let mut settle: Vec<EventId> = Vec::new();
    for ((a, fate), gone) in accepted.iter().zip(&fates).zip(deleted) {
        if !a.new {
            summary.duplicates += 1;
            continue;
        }
        match fate {
            Fate::Queue => summary.queued += 1,
            Fate::Echo => summary.echoes += 1,
            Fate::Deleted => summary.deleted += 1,
            Fate::Ignored => summary.ignored += 1,
        }
        if a.job.is_none() {
            settle.push(a.id);
        }
        if let Some(k) = gone {
            let message = format!(
                "{} {} `{}` was deleted in HubSpot; Tandem does not propagate deletions, so its \
                 linked Accelo {} (if any) is left as it is",
                k.system, k.object, k.id, k.object
            );
            tracing::info!(target: "tandem::server", "{message}");
            store
                .append_log(&NewLogEntry {
                    job: None,
                    body: LogBody::Notice(Notice {
                        level: NoticeLevel::Info,
                        message,
                    }),
                })
                .await?;
        }
    }
    if let Err(e) = store.settle_events(&settle).await {
        // Only bookkeeping: the events are stored and deduplicated either way.
        tracing::warn!(target: "tandem::server", "could not settle ignored events: {e}");
    }
    for (n, result) in [
        (summary.queued, "queued"),
        (summary.duplicates, "duplicate"),
        (summary.echoes, "echo"),
        (summary.deleted, "deleted"),
        (summary.ignored, "ignored"),
    ] {
        if n > 0 {
            metrics::counter!(m::WEBHOOK_EVENTS, "source" => "hubspot", "result" => result)
                .increment(n as u64);
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::signature::MAX_AGE_MS;

    #[test]
    fn dedup_key_uses_every_identifying_part() {
        let ev = json!({"eventId": 7, "objectId": 123, "occurredAt": 1700000000000_i64,
            "subscriptionType": "company.propertyChange", "propertyName": "name",
            "attemptNumber": 3});
        let Value::Object(ev) = ev else {
            unreachable!()
        };
        assert_eq!(
            dedup_key(&ev),
            "7:123:1700000000000:company.propertyChange:name"
        );
        let creation = json!({"eventId": "7", "objectId": "123", "occurredAt": 1,
            "eventType": "contact.creation"});
        let Value::Object(creation) = creation else {
            unreachable!()
        };
        assert_eq!(dedup_key(&creation), "7:123:1:contact.creation:");
    }

    #[test]
    fn replays_are_refused_within_the_window_only() {
        let g = ReplayGuard::default();
        assert!(g.first_time("sig", 1_000));
        assert!(!g.first_time("sig", 2_000));
        assert!(g.first_time("other", 2_000));
        assert!(g.first_time("sig", 1_000 + 2 * MAX_AGE_MS + 1));
        // A request refused after the check (not stored) may be sent again.
        g.forget("other");
        assert!(g.first_time("other", 3_000));
        assert!(!g.first_time("other", 3_000));
    }

    #[test]
    fn bodies_must_be_arrays_of_well_typed_events() {
        let ok = r#"{"eventId":1,"objectId":2,"subscriptionType":"company.creation"}"#;
        let two = format!("[{ok},{ok}]");
        assert_eq!(parse(two.as_bytes(), 100).map(|v| v.len()), Ok(2));
        assert_eq!(parse(ok.as_bytes(), 100).map(|v| v.len()), Ok(1));
        assert_eq!(parse(two.as_bytes(), 1), Err(Refusal::TooMany(2)));
        let malformed = |body: &str| match parse(body.as_bytes(), 100) {
            Err(Refusal::Malformed(m)) => m,
            other => panic!("{body}: {other:?}"),
        };
        assert!(malformed("[1]").contains("event 0"));
        assert!(malformed("\"x\"").contains("not a JSON array"));
        assert!(malformed("[{").contains("not JSON"));
        for bad in [
            r#"{"eventId":1,"objectId":"../../etc/passwd","subscriptionType":"company.creation"}"#,
            r#"{"eventId":1,"objectId":"1 OR 1=1","subscriptionType":"company.creation"}"#,
            r#"{"eventId":1,"objectId":-5,"subscriptionType":"company.creation"}"#,
            r#"{"eventId":1,"objectId":0,"subscriptionType":"company.creation"}"#,
            r#"{"eventId":1,"objectId":1.5,"subscriptionType":"company.creation"}"#,
            r#"{"eventId":1,"subscriptionType":"company.creation"}"#,
            r#"{"eventId":"x","objectId":2,"subscriptionType":"company.creation"}"#,
            r#"{"eventId":1,"objectId":2,"subscriptionType":7}"#,
            r#"{"eventId":1,"objectId":2,"subscriptionType":"company"}"#,
            r#"{"eventId":1,"objectId":2,"subscriptionType":"company.creation","occurredAt":"soon"}"#,
            r#"{"eventId":1,"objectId":2,"subscriptionType":"company.propertyChange","propertyName":["a"]}"#,
            r#"{"eventId":1,"objectId":2,"subscriptionType":"company.propertyChange","propertyValue":{"a":1}}"#,
            r#"{"eventId":1,"objectId":2,"subscriptionType":"company.associationChange","toObjectId":"x"}"#,
        ] {
            assert!(malformed(bad).starts_with("event 0: "), "{bad}");
        }
    }
}
