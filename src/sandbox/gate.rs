//! What both simulators share in front of their handlers: the gate every API request passes
//! (counting, injected faults, then the simulator's own authentication and rate limits), and
//! the admin handlers under `/_sandbox/` that are the same for both (`stats`, `reset`,
//! `revoke_tokens`, `faults`). Each simulator implements [`Simulator`] for its state.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::common::{
    FaultAction, FaultConfig, Faults, Stats, dropped_connection, json_response, route_key,
};
use crate::data::{SeedData, SeedSpec};

/// One simulator, as the shared gate and admin handlers see it.
pub trait Simulator: Send + Sync + 'static {
    /// Its request counters.
    fn stats(&self) -> &Stats;
    /// Its fault injector.
    fn faults(&self) -> &Faults;
    /// Whether a request counts as a write in the counters.
    fn is_write(method: &Method, path: &str) -> bool;
    /// Authentication, rate limits and the handler: the part of the gate that a `drop_after`
    /// fault still runs.
    fn pass(&self, req: Request, next: Next) -> impl Future<Output = Response> + Send;
    /// The answer to an injected error status, in the service's own shape.
    fn injected(&self, code: u16) -> Response;
    /// Forgets every access token issued so far; returns how many there were.
    fn revoke_tokens(&self) -> usize;
    /// Adds the simulator's own figures (records, webhooks) to `/_sandbox/stats`.
    fn more_stats(&self, stats: &mut Map<String, Value>);
    /// The spec its seeded data was generated from.
    fn spec(&self) -> SeedSpec;
    /// Restores the seeded data from `seed`, the start-up faults, and clears the counters and
    /// rate windows.
    fn reset_to(&self, seed: &SeedData);
}

/// The gate in front of every API route: counts the request, applies the injected fault
/// decided for it (before the handler runs, so a failed request changes nothing — except
/// `drop_after`, which serves it and loses the answer), then [`Simulator::pass`].
pub async fn gate<S: Simulator>(State(sim): State<Arc<S>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let key = route_key(&method, template.as_deref(), &path);
    let write = S::is_write(&method, &path);
    let (action, latency) = sim.faults().decide_for(&key);
    sim.stats().count(key, write);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match action {
        FaultAction::Pass => {}
        FaultAction::Drop => {
            sim.stats().fault("drop");
            return dropped_connection();
        }
        FaultAction::DropAfter => {
            sim.stats().fault("drop_after");
            let _served = sim.pass(req, next).await;
            return dropped_connection();
        }
        FaultAction::Status(code) => {
            sim.stats().fault(&code.to_string());
            return sim.injected(code);
        }
    }
    sim.pass(req, next).await
}

fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({"error": message.into()}))
}

/// `GET /_sandbox/stats`: request counters, faults seen, records and webhook figures.
pub async fn admin_stats<S: Simulator>(State(sim): State<Arc<S>>) -> Response {
    let mut v = sim.stats().to_json();
    if let Some(o) = v.as_object_mut() {
        sim.more_stats(o);
    }
    json_response(StatusCode::OK, &v)
}

/// `POST /_sandbox/reset`: the seeded data again, exactly, with the start-up faults.
pub async fn admin_reset<S: Simulator>(State(sim): State<Arc<S>>) -> Response {
    let spec = sim.spec();
    match tokio::task::spawn_blocking(move || spec.generate()).await {
        Ok(seed) => {
            sim.reset_to(&seed);
            json_response(StatusCode::OK, &json!({"reset": true}))
        }
        Err(e) => admin_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("regenerating the seed failed: {e}"),
        ),
    }
}

/// `POST /_sandbox/revoke_tokens`: every access token issued so far stops working (the
/// service's 401 for an unknown token); the credentials that obtain new ones stay valid.
pub async fn admin_revoke_tokens<S: Simulator>(State(sim): State<Arc<S>>) -> Response {
    json_response(StatusCode::OK, &json!({"revoked": sim.revoke_tokens()}))
}

/// `GET /_sandbox/faults`: the fault settings (a storm shows the requests left in it).
pub async fn admin_get_faults<S: Simulator>(State(sim): State<Arc<S>>) -> Response {
    json_response(StatusCode::OK, &json!(sim.faults().config()))
}

/// `POST /_sandbox/faults`: replaces the fault settings (JSON or the compact form; an empty
/// body switches faults off) and re-seeds the generator.
pub async fn admin_set_faults<S: Simulator>(State(sim): State<Arc<S>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match FaultConfig::parse(if text.trim().is_empty() { "{}" } else { &text }) {
        Ok(cfg) => {
            sim.faults().set(cfg);
            json_response(StatusCode::OK, &json!(sim.faults().config()))
        }
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}
