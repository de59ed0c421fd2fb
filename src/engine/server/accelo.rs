//! `POST /webhooks/accelo`: Accelo's `create_company`, `update_company`, `create_contact` and
//! `update_contact` webhooks, each `{id, resource_url}` (JSON or form-encoded) with the event in
//! `X-Accelo-Event` and an HMAC-SHA256 hex digest of the body in `X-Hub-Signature`.
//!
//! Off (404) unless a secret is configured. A bad or missing signature → 401, a content type
//! other than JSON or a form → 415, an unreadable body or an `id` that is not a positive
//! integer → 400 (body size and time limits as for HubSpot, `receiver::guard`); in each case
//! nothing is stored or queued. An accepted event queues the `record` job of
//! the Accelo record (Accelo initiates, B3). Accelo events carry no identity and no change
//! details, so each delivery is stored as its own event and a repeated one simply joins the
//! queued job (or re-plans to no-ops): the job always re-reads the record.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::metrics as m;
use super::receiver::{Receiver, key, record_job};
use super::signature;
use crate::store::NewEvent;
use tandem_core::model::{Object, System};

fn refuse(status: StatusCode, outcome: &'static str, message: &str) -> Response {
    super::receiver::refuse("accelo", status, outcome, message)
}

/// The object an Accelo event type is about.
pub fn object_of_event(event: &str) -> Option<Object> {
    match event.trim() {
        "create_company" | "update_company" => Some(Object::Company),
        "create_contact" | "update_contact" => Some(Object::Contact),
        _ => None,
    }
}

/// The record id of a payload: JSON `{"id": …}` or form `id=…`.
fn record_id(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let id = if form {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| format!("the form body is unreadable: {e}"))?;
        pairs
            .into_iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.trim().to_string())
    } else {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        match v.get("id") {
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    match id {
        Some(id)
            if id.len() <= 19
                && id.bytes().all(|b| b.is_ascii_digit())
                && id.parse::<u64>().is_ok_and(|n| n > 0) =>
        {
            Ok(id)
        }
        Some(id) => Err(format!("`{id}` is not an Accelo id")),
        None => Err("the payload has no `id`".into()),
    }
}

/// The handler.
pub async fn receive(
    State(rx): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(secret) = rx.config.accelo_secret.as_ref() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "unavailable",
            "the Accelo webhook receiver is off (no TANDEM_ACCELO_WEBHOOK_SECRET or \
             server.accelo_webhook_secret_env)",
        );
    };
    let body = match super::receiver::webhook_body("accelo", body, rx.config.max_body) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let sig = headers.get("x-hub-signature").and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify_accelo(secret.expose().as_bytes(), &body, sig) {
        tracing::warn!(target: "tandem::server", "refused an Accelo webhook request: {e}");
        let outcome = match e {
            signature::SignatureError::MissingHeader(_) => "unsigned",
            _ => "forged",
        };
        return refuse(StatusCode::UNAUTHORIZED, outcome, &e.to_string());
    }
    if !super::receiver::content_type_is(
        &headers,
        &["application/json", "application/x-www-form-urlencoded"],
    ) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            "the body must be sent as `application/json` or `application/x-www-form-urlencoded`",
        );
    }
    let event = headers
        .get("x-accelo-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_string();
    let Some(object) = object_of_event(&event) else {
        metrics::counter!(m::WEBHOOK_EVENTS, "source" => "accelo", "result" => "ignored")
            .increment(1);
        return (
            StatusCode::OK,
            axum::Json(json!({"received": 1, "queued": 0, "ignored": 1})),
        )
            .into_response();
    };
    let id = match record_id(&headers, &body) {
        Ok(id) => id,
        Err(msg) => return refuse(StatusCode::BAD_REQUEST, "malformed", &msg),
    };
    let program = rx.rules.current();
    let record = key(System::Accelo, object, id.clone());
    let job = program
        .object(object)
        .is_some()
        .then(|| record_job(&record, rx.config.job_delay));
    let payload = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => json!({"event": event, "body": v}),
        Err(_) => json!({"event": event, "body": String::from_utf8_lossy(&body)}),
    };
    let new = NewEvent {
        source: System::Accelo,
        dedup_key: format!("{event}:{id}:{}", uuid::Uuid::now_v7()),
        object: Some(object),
        record_id: Some(id),
        payload,
    };
    let queued = job.is_some();
    match rx.store.accept_event(&new, job.as_ref()).await {
        Ok(accepted) => {
            if accepted.job.is_none() {
                let _ = rx.store.settle_events(&[accepted.id]).await;
            }
            metrics::counter!(m::WEBHOOK_REQUESTS, "source" => "accelo", "outcome" => "accepted")
                .increment(1);
            let result = if queued { "queued" } else { "ignored" };
            metrics::counter!(m::WEBHOOK_EVENTS, "source" => "accelo", "result" => result)
                .increment(1);
            (
                StatusCode::OK,
                axum::Json(json!({
                    "received": 1,
                    "queued": usize::from(queued),
                    "ignored": usize::from(!queued),
                })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(target: "tandem::server", "could not store an Accelo event: {e}");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                "the event could not be stored; send it again",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_json_or_forms() {
        let json_h = HeaderMap::new();
        assert_eq!(
            record_id(&json_h, br#"{"id":"12","resource_url":"x"}"#),
            Ok("12".into())
        );
        assert_eq!(record_id(&json_h, br#"{"id":12}"#), Ok("12".into()));
        assert!(record_id(&json_h, br#"{"id":"../1"}"#).is_err());
        for bad in [
            &br#"{"id":-5}"#[..],
            br#"{"id":0}"#,
            br#"{"id":"0"}"#,
            br#"{"id":1.5}"#,
            br#"{"id":"1 OR 1=1"}"#,
            br#"{"id":"99999999999999999999"}"#,
        ] {
            assert!(
                record_id(&json_h, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(record_id(&json_h, b"{}").is_err());
        let mut form = HeaderMap::new();
        form.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert_eq!(
            record_id(&form, b"id=7&resource_url=%2Fapi%2Fv0%2Fcontacts%2F7"),
            Ok("7".into())
        );
    }

    #[test]
    fn event_types_map_to_objects() {
        assert_eq!(object_of_event("update_company"), Some(Object::Company));
        assert_eq!(object_of_event("create_contact"), Some(Object::Contact));
        assert_eq!(object_of_event("create_invoice"), None);
    }
}
