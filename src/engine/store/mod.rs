//! The store: everything Tandem remembers between runs — links between HubSpot and Accelo
//! records with their last-synced values, the job queue, the sync log, create intents, echoes of
//! our own writes, poll cursors and received webhook events.
//!
//! One trait, [`Store`], used as `Arc<dyn Store>`; two implementations with the same schema
//! (migrations under `src/store/migrations/{sqlite,postgres}/`, run on open) and the same tests:
//! an embedded SQLite file (default) and PostgreSQL (scale-out: many workers share one queue).
//! All SQL lives in this module: the statements both dialects share are in `sql.rs`, the few
//! that differ in `sqlite.rs` / `postgres.rs`.
//!
//! Guarantees callers rely on:
//! - [`Store::record_outcome`] writes a record's link change, the resolution of its create
//!   intent and its sync-log entry in one transaction: all or nothing.
//! - A job is leased to one worker at a time; a lease that expires makes the job claimable again;
//!   every call that changes a running job checks the lease and fails with
//!   [`StoreError::LeaseLost`] once the worker no longer holds it.
//! - Sync-log ids increase in commit order, so following the log by id misses nothing.
//! - Text written to the sync log is scrubbed of secrets first (see [`redact`]).
//! - A transaction that writes several rows takes its row locks in a fixed order (by key), and
//!   one PostgreSQL still aborts as a deadlock or serialisation failure is run again inside the
//!   store, a bounded number of times (see `retry.rs`): callers never see those aborts.

use std::sync::Arc;

#[macro_use]
mod sql;
mod rows;

mod api;
mod error;
pub mod postgres;
pub mod redact;
mod retry;
pub mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod types;

pub use api::{Backend, OpenOptions, Store};
pub use error::StoreError;
pub use types::*;

/// Opens (creating and migrating as needed) the store at `url`: a `postgres://` or
/// `postgresql://` URL opens PostgreSQL; anything else is a SQLite file path (an optional
/// `sqlite://` or `sqlite:` prefix is accepted).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, &OpenOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(url: &str, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PgStore::open(url, options).await?;
        Ok(Arc::new(store))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(StoreError::Open {
                location: url.to_string(),
                message: "the store location is empty".into(),
            });
        }
        let store = sqlite::SqliteStore::open(std::path::Path::new(path), options).await?;
        Ok(Arc::new(store))
    }
}
