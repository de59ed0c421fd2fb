//! The webhooks v3 management API of the simulated app: `GET` and `POST
//! /webhooks/v3/{appId}/subscriptions` and `POST …/subscriptions/batch/update` (activate or pause
//! by id), authenticated with the developer API key (`hapikey`, checked by the gate). The
//! subscriptions are the ones webhook delivery uses, so what is created here is what is
//! delivered.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::webhooks::{Subscription, known_event};
use super::{Hs, error, parse_body};
use crate::common::{iso_ms, json_response, lock};

/// HubSpot's limit of subscriptions per app.
const MAX_SUBSCRIPTIONS: usize = 1000;

/// `SubscriptionResponse`: `id` is a string, times are ISO-8601.
fn render(s: &Subscription) -> Value {
    let mut v = json!({
        "id": s.id.to_string(),
        "eventType": s.event_type,
        "active": s.active,
        "createdAt": iso_ms(s.created_at),
    });
    if let Some(p) = &s.property {
        v["propertyName"] = json!(p);
    }
    v
}

/// 404 unless `app_id` is the simulated app's id.
fn check_app(hs: &Hs, app_id: &str) -> Result<(), Response> {
    let ours = lock(&hs.webhooks.settings).app_id;
    if app_id.parse::<u64>().ok() == Some(ours) {
        Ok(())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("No app {app_id} for this developer API key"),
        ))
    }
}

/// `GET /webhooks/v3/{appId}/subscriptions`: `{"results": [SubscriptionResponse…]}`.
pub async fn list(State(hs): State<Arc<Hs>>, Path(app_id): Path<String>) -> Response {
    if let Err(r) = check_app(&hs, &app_id) {
        return r;
    }
    let s = lock(&hs.webhooks.settings);
    let results: Vec<Value> = s.subscriptions.iter().map(render).collect();
    json_response(StatusCode::OK, &json!({"results": results}))
}

/// `POST /webhooks/v3/{appId}/subscriptions` with `{eventType, propertyName?, active}`
/// (`active` defaults to false): 201 and the new subscription.
pub async fn create(
    State(hs): State<Arc<Hs>>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Input {
        event_type: String,
        #[serde(default)]
        property_name: Option<String>,
        #[serde(default)]
        active: bool,
    }
    if let Err(r) = check_app(&hs, &app_id) {
        return r;
    }
    let input: Input = match parse_body(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let invalid = |m: String| error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", m);
    let Some((object, event)) = input.event_type.split_once('.') else {
        return invalid(format!("Invalid eventType `{}`", input.event_type));
    };
    if !matches!(object, "contact" | "company") || !known_event(object, event) {
        return invalid(format!(
            "Invalid eventType `{}` (the sandbox simulates contact and company events)",
            input.event_type
        ));
    }
    let property = input
        .property_name
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    match (event, &property) {
        ("propertyChange", None) => {
            return invalid("propertyName is required for propertyChange subscriptions".into());
        }
        (e, Some(_)) if e != "propertyChange" => {
            return invalid(format!(
                "propertyName is only allowed on propertyChange subscriptions, not `{}`",
                input.event_type
            ));
        }
        _ => {}
    }
    let now = hs.clock.now_ms();
    let mut s = lock(&hs.webhooks.settings);
    if s.subscriptions
        .iter()
        .any(|x| x.event_type == input.event_type && x.property == property)
    {
        return error(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!(
                "A subscription for {}{} already exists",
                input.event_type,
                property
                    .as_deref()
                    .map(|p| format!(" of {p}"))
                    .unwrap_or_default()
            ),
        );
    }
    if s.subscriptions.len() >= MAX_SUBSCRIPTIONS {
        return invalid(format!(
            "An app can have at most {MAX_SUBSCRIPTIONS} subscriptions"
        ));
    }
    let id = s.subscriptions.iter().map(|x| x.id).max().unwrap_or(999) + 1;
    let sub = Subscription {
        id,
        event_type: input.event_type,
        property,
        active: input.active,
        created_at: now,
    };
    let out = render(&sub);
    s.subscriptions.push(sub);
    json_response(StatusCode::CREATED, &out)
}

/// `POST /webhooks/v3/{appId}/subscriptions/batch/update` with `{"inputs": [{id, active}]}`:
/// 200 with every result, or 207 with the unknown ids among `errors`.
pub async fn batch_update(
    State(hs): State<Arc<Hs>>,
    Path(app_id): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Item {
        id: u64,
        active: bool,
    }
    #[derive(serde::Deserialize)]
    struct Input {
        inputs: Vec<Item>,
    }
    if let Err(r) = check_app(&hs, &app_id) {
        return r;
    }
    let input: Input = match parse_body(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let started = iso_ms(hs.clock.now_ms());
    let mut s = lock(&hs.webhooks.settings);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for item in &input.inputs {
        match s.subscriptions.iter_mut().find(|x| x.id == item.id) {
            Some(sub) => {
                sub.active = item.active;
                results.push(render(sub));
            }
            None => errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!("No subscription {}", item.id),
                "context": {"id": [item.id.to_string()]},
            })),
        }
    }
    let completed = iso_ms(hs.clock.now_ms());
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": completed,
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    json_response(status, &body)
}
