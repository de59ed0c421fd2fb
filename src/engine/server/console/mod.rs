//! The browser console of `tandem serve`, at `/` beside the webhook endpoints: the
//! Integrations page (systems, sync health, bulk runs with live progress, the automatic
//! channel), the Sync Log, record pages, plan preview, and the rules editor with the real
//! checker's diagnostics as you type. Its JSON API (`/api/v1/…`, described at
//! `/api/openapi.json`) is what the pages use; buttons queue the same jobs as the commands.
//!
//! - [`auth`] — password hashes, sessions, CSRF and same-origin checks, the sign-in limit.
//! - [`state`] — what the handlers share ([`Console`]).
//! - [`access`] — the API's error, who is signed in, the checks a change passes, who did what.
//! - [`api`] — the JSON documents, the functions that build them, the handlers.
//! - [`log`] — the Sync Log's filters, keyset pages and exports.
//! - [`rules`] — the Rules page's API: check, tests, impact preview, save, versions.
//! - [`live`] — server-sent events for live progress and new log entries.
//! - [`pages`] — the HTML pages (maud), and the embedded stylesheet and script.
//! - [`openapi`] — the OpenAPI document, generated from the API's types.

pub mod access;
pub mod api;
pub mod auth;
pub mod live;
pub mod log;
pub mod openapi;
pub mod pages;
pub mod rules;
pub mod state;

pub use state::Console;

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;

/// The console's routes: the pages, `/api/v1/…` and `/api/openapi.json`.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(
            api::routes()
                .merge(log::routes())
                .merge(rules::routes())
                .route("/api/v1/events", get(live::events))
                .layer(axum::middleware::map_response(api::json_rejections)),
        )
        .route(
            "/api/openapi.json",
            get(|| async { axum::Json(openapi::document()).into_response() }),
        )
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

/// Headers every console answer carries: no framing by other sites, no content sniffing, no
/// referrer beyond this origin, scripts and styles only from this server.
async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, axum::http::HeaderValue::from_static(v));
    };
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    if !h.contains_key("cache-control") {
        set(h, "cache-control", "no-store");
    }
    res
}
