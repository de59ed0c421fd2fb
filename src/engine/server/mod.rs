//! The automatic-sync side of Tandem (`tandem serve`, `tandem worker`): the HTTP server with the
//! HubSpot and Accelo webhook receivers, `/healthz` and `/metrics`, the polling safety net, the
//! `record` job that syncs one record, and the serve loop that runs them with hot-reloaded rules
//! and shuts down without losing anything.
//!
//! Receivers verify, deduplicate, filter and enqueue; they contain no sync logic. What a record
//! job does is decided by the same planner and executor as every other run.
//!
//! - [`signature`] — HubSpot v3/v1 and Accelo request authentication (pure functions).
//! - [`hubspot`] — `POST /webhooks/hubspot`: signature, replay and size checks, event
//!   classification (trigger lists, echoes, deletions), durable deduplicated storage.
//! - [`accelo`] — `POST /webhooks/accelo`.
//! - [`http`] — the accept loop: connection limit and header read timeout.
//! - [`poll`] — the poller (B16): what changed since the stored cursors, queued as record jobs.
//! - [`metrics`] — the Prometheus recorder and the metric names.
//! - [`console`] — the browser console at `/` and its JSON API (`/api/v1`).

pub mod accelo;
pub mod console;
pub mod http;
pub mod hubspot;
pub mod metrics;
pub mod poll;
mod receiver;
pub mod record;
pub mod serve;
pub mod signature;

pub use receiver::{
    DEFAULT_JOB_DELAY, MAX_BODY, MAX_EVENTS, Receiver, ReceiverConfig, Rules, record_job,
    record_of_job,
};

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::store::JobFilter;

/// The HTTP routes of `tandem serve`: `POST /webhooks/hubspot`, `POST /webhooks/accelo`,
/// `GET /healthz`, `GET /metrics`.
pub fn router(receiver: Arc<Receiver>) -> Router {
    let limit = receiver.config.max_body;
    let guard = axum::middleware::from_fn_with_state(Arc::clone(&receiver), receiver::guard);
    Router::new()
        .route(
            "/webhooks/hubspot",
            post(hubspot::receive).layer(guard.clone()),
        )
        .route("/webhooks/accelo", post(accelo::receive).layer(guard))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_page))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(receiver)
}

async fn healthz(State(rx): State<Arc<Receiver>>) -> Response {
    let probe = JobFilter {
        limit: Some(1),
        ..JobFilter::default()
    };
    match rx.store.jobs(&probe).await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(json!({"status": "ok", "rules_hash": rx.rules.current().rules_hash()})),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(target: "tandem::server", "health check: the store fails: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "store unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics_page(State(rx): State<Arc<Receiver>>) -> Response {
    metrics::observe_queue(rx.store.as_ref()).await;
    match metrics::render() {
        Some(text) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}
