//! Prometheus metrics of `tandem serve` (`GET /metrics`): webhook requests and events, polls,
//! and record jobs. The recorder is process-global and installed once; when another recorder
//! is already installed (a host program), `/metrics` answers 404 and the counters go there.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Webhook requests by `source` (`hubspot`, `accelo`) and `outcome` (`accepted`, `unsigned`,
/// `forged`, `stale`, `replayed`, `too_large`, `too_many_events`, `malformed`,
/// `unsupported_type`, `timeout`, `unavailable`, `error`).
pub const WEBHOOK_REQUESTS: &str = "tandem_webhook_requests_total";
/// Webhook events by `source` and `result` (`queued`, `duplicate`, `ignored`, `echo`,
/// `deleted`).
pub const WEBHOOK_EVENTS: &str = "tandem_webhook_events_total";
/// Connections refused because the server had as many open as it allows.
pub const CONNECTIONS_REFUSED: &str = "tandem_http_connections_refused_total";
/// Time to answer an accepted webhook request, seconds.
pub const WEBHOOK_SECONDS: &str = "tandem_webhook_seconds";
/// Records the poller found changed, by `system` and `object`, and `result` (`queued`,
/// `seen`, `echo`).
pub const POLL_RECORDS: &str = "tandem_poll_records_total";
/// Poll rounds that failed, by `system`.
pub const POLL_ERRORS: &str = "tandem_poll_errors_total";
/// Record jobs run through, by `outcome` (`succeeded`, or `retried` after an outage).
pub const RECORD_JOBS: &str = "tandem_record_jobs_total";
/// Record actions of record jobs, by the `system` written to and `outcome` (`created`,
/// `updated`, `linked`, `noop`, `skipped`, `failed`).
pub const RECORD_ACTIONS: &str = "tandem_record_actions_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process).
pub fn install() {
    let _ = HANDLE.get_or_init(|| match PrometheusBuilder::new().install_recorder() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::debug!(target: "tandem::server", "metrics recorder not installed: {e}");
            None
        }
    });
}

/// The text exposition of every metric, when the recorder is installed.
pub fn render() -> Option<String> {
    HANDLE.get().and_then(|h| h.as_ref()).map(|h| h.render())
}
