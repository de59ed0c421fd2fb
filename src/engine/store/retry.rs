//! Retrying a transaction PostgreSQL aborted to break a deadlock (SQLSTATE 40P01) or because
//! it could not be serialised (40001): such an abort says nothing about the request, so the
//! store runs the transaction again, a bounded number of times, and callers never see it.

use std::future::Future;
use std::time::Duration;

use super::error::StoreError;

/// How many times an aborted transaction is run again before its error is returned.
pub const RETRIES: u32 = 8;

/// Runs `attempt` until it succeeds, fails with anything but a transient abort, or has been
/// retried [`RETRIES`] times. Each attempt must be a whole transaction.
pub(crate) async fn retry_transient<T, F, Fut>(
    op: &'static str,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut retried = 0;
    loop {
        match attempt().await {
            Err(e) if e.is_transient() && retried < RETRIES => {
                retried += 1;
                tracing::debug!(
                    target: "tandem::store",
                    "{op}: the database aborted the transaction ({e}); running it again ({retried} of {RETRIES})"
                );
                tokio::time::sleep(backoff(retried)).await;
            }
            result => return result,
        }
    }
}

/// A short, growing pause with some spread, so that two transactions that collided do not
/// collide again in step.
fn backoff(retried: u32) -> Duration {
    let spread = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos() % 5_000))
        .unwrap_or(0);
    let base = 2_u64.saturating_pow(retried.min(6)) * 1_000;
    Duration::from_micros(base + spread)
}
