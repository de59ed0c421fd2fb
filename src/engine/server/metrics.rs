//! Prometheus metrics of `tandem serve` (`GET /metrics`): webhook requests and events, polls,
//! record jobs, the job queue (measured at each scrape), and — named where they are counted —
//! runs and their records by outcome ([`crate::exec::worker::RUNS`],
//! [`crate::exec::worker::RECORDS`]), API requests and budgets
//! ([`crate::connect::API_REQUESTS`], [`crate::connect::API_BUDGET_REMAINING`]) and rule reloads
//! ([`crate::reload::RELOADS`]). The recorder is process-global and installed once; when another
//! recorder is already installed (a host program), `/metrics` answers 404 and the counters go
//! there.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::store::{JobFilter, JobState, Store};

/// Jobs in the queue by `state` (`queued`, `running`), measured at each scrape.
pub const QUEUE_JOBS: &str = "tandem_queue_jobs";
/// Age of the oldest queued job, seconds (0 when none waits), measured at each scrape.
pub const QUEUE_OLDEST_SECONDS: &str = "tandem_queue_oldest_seconds";

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

/// Measures the job queue into [`QUEUE_JOBS`] and [`QUEUE_OLDEST_SECONDS`]; a store that fails
/// leaves the last values.
pub async fn observe_queue(store: &dyn Store) {
    for state in [JobState::Queued, JobState::Running] {
        let filter = JobFilter {
            states: vec![state],
            ..JobFilter::default()
        };
        let Ok(jobs) = store.jobs(&filter).await else {
            return;
        };
        metrics::gauge!(QUEUE_JOBS, "state" => state.as_str()).set(jobs.len() as f64);
        if state == JobState::Queued {
            let now = chrono::Utc::now();
            let oldest = jobs
                .iter()
                .map(|j| (now - j.created_at).num_milliseconds().max(0))
                .max()
                .unwrap_or(0);
            metrics::gauge!(QUEUE_OLDEST_SECONDS).set(oldest as f64 / 1000.0);
        }
    }
}

/// The text exposition of every metric, when the recorder is installed.
pub fn render() -> Option<String> {
    HANDLE.get().and_then(|h| h.as_ref()).map(|h| h.render())
}
