//! The polling safety net (B16): on an interval, read what changed in both systems since the
//! stored cursors and queue the same coalesced `record` jobs the webhooks queue. It catches what
//! webhooks never report (HubSpot custom properties, every Accelo edit — affiliations included)
//! and what they lost.
//!
//! - HubSpot: companies and contacts through search on the last-modified date (the connector
//!   moves the window past the 10,000-result cap); Accelo: companies and contacts with
//!   `date_modified_after`, contacts including those whose affiliation changed.
//! - One cursor per system and object (`poll:hubspot:company`, …) holding the newest
//!   modification time seen and the records seen in the last `overlap` before it. Each poll reads
//!   from `cursor - overlap` (search indexes lag and Accelo counts in seconds) and skips records
//!   whose modification time it has already queued, so a record is queued once per change.
//! - The cursor advances only after every job of the round is durably queued: a crash repeats
//!   the round (the jobs coalesce), it never skips one.
//! - Echoes (B17): a linked record whose synced values are all exactly what the link says they
//!   were after the last sync changed only through Tandem's own write (or in fields Tandem does
//!   not sync) and is not queued. The record job plans in incremental mode anyway, so an echo
//!   that slips through writes nothing.
//! - A fresh store starts at the time of the first poll: the first `tandem pull` / `push` is
//!   what brings existing records in step, the poller follows changes from then on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::metrics as m;
use super::receiver::{Rules, now_ms, record_job};
use crate::connect::{ConnectError, Connector, Scan};
use crate::store::{Store, StoreError};
use tandem_core::compile::Program;
use tandem_core::model::{Direction, Link, Object, Record, System};
use tandem_core::plan::synced_key;

/// The cursor holding when the poller's last round ended (RFC 3339).
pub const LAST_PASS_CURSOR: &str = "poll:last_pass";
/// The cursor holding the last round's error (empty when it went through).
pub const LAST_ERROR_CURSOR: &str = "poll:last_error";

/// Why a poll round failed (the next round tries again from the same cursor).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PollError {
    /// A system could not be read.
    #[error("polling {system} {object}: {source}")]
    Connect {
        /// The system.
        system: System,
        /// The object.
        object: &'static str,
        /// The connector's error.
        #[source]
        source: ConnectError,
    },
    /// The store failed.
    #[error("polling: {0}")]
    Store(#[from] StoreError),
    /// A stored cursor is unreadable.
    #[error("the poll cursor `{name}` is unreadable: {message}")]
    Cursor {
        /// The cursor's name.
        name: String,
        /// Why.
        message: String,
    },
}

/// How the poller behaves.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// How far back each round reads before the cursor (default 60 s).
    pub overlap: Duration,
    /// Delay of the queued record jobs (see [`super::DEFAULT_JOB_DELAY`]).
    pub job_delay: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            overlap: Duration::from_secs(60),
            job_delay: super::DEFAULT_JOB_DELAY,
        }
    }
}

/// A cursor as stored (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PollCursor {
    /// The newest modification time seen (unix ms).
    since: i64,
    /// Record id → modification time already queued, for records modified within the overlap
    /// before `since`.
    #[serde(default)]
    seen: BTreeMap<String, i64>,
}

/// What one round did, per system and object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// (system, object) → (records read, jobs queued, echoes skipped).
    pub counts: BTreeMap<(System, Object), (u64, u64, u64)>,
}

impl PollReport {
    /// Jobs queued in the round.
    pub fn queued(&self) -> u64 {
        self.counts.values().map(|c| c.1).sum()
    }
}

/// The poller.
#[derive(Debug, Clone)]
pub struct Poller {
    store: Arc<dyn Store>,
    rules: Rules,
    hubspot: Arc<dyn Connector>,
    accelo: Arc<dyn Connector>,
    options: PollOptions,
}

/// The name of the cursor of `system` and `object`.
pub fn cursor_name(system: System, object: Object) -> String {
    format!("poll:{system}:{object}")
}

impl Poller {
    /// A poller over both connectors.
    pub fn new(
        store: Arc<dyn Store>,
        rules: Rules,
        hubspot: Arc<dyn Connector>,
        accelo: Arc<dyn Connector>,
        options: PollOptions,
    ) -> Poller {
        Poller {
            store,
            rules,
            hubspot,
            accelo,
            options,
        }
    }

    /// Polls every `interval` (the first round at once) until `cancel`; a failed round is
    /// logged and the next one tries again.
    pub async fn run(self, interval: Duration, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                result = self.poll_once() => match result {
                    Ok(report) if report.queued() > 0 => tracing::info!(
                        target: "tandem::poll",
                        "poll queued {} record job(s)",
                        report.queued()
                    ),
                    Ok(_) => tracing::debug!(target: "tandem::poll", "poll found no change"),
                    Err(e) => tracing::warn!(target: "tandem::poll", "{e}"),
                },
            }
        }
    }

    /// One round over both systems and both objects. Every (system, object) is tried even when
    /// an earlier one fails; the first error is returned.
    pub async fn poll_once(&self) -> Result<PollReport, PollError> {
        let program = self.rules.current();
        let mut report = PollReport::default();
        let mut first_error = None;
        for object in Object::ALL {
            if program.object(object).is_none() {
                continue;
            }
            for connector in [&self.hubspot, &self.accelo] {
                let system = connector.system();
                match self.poll(&program, connector.as_ref(), object).await {
                    Ok(c) => {
                        report.counts.insert((system, object), c);
                    }
                    Err(e) => {
                        metrics::counter!(m::POLL_ERRORS, "system" => system.as_str()).increment(1);
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                    }
                }
            }
        }
        // When the last round ran and how it went, for the console.
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let failed = first_error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        if let Err(e) = self.store.set_cursor(LAST_PASS_CURSOR, &at).await {
            tracing::debug!(target: "tandem::poll", "could not note the round: {e}");
        }
        let _ = self.store.set_cursor(LAST_ERROR_CURSOR, &failed).await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn poll(
        &self,
        program: &Program,
        connector: &dyn Connector,
        object: Object,
    ) -> Result<(u64, u64, u64), PollError> {
        let system = connector.system();
        let name = cursor_name(system, object);
        let started = now_ms();
        let Some(text) = self.store.cursor(&name).await? else {
            // A fresh store: follow changes from now on.
            let fresh = PollCursor {
                since: started,
                seen: BTreeMap::new(),
            };
            self.save(&name, &fresh).await?;
            return Ok((0, 0, 0));
        };
        let cursor: PollCursor = serde_json::from_str(&text).map_err(|e| PollError::Cursor {
            name: name.clone(),
            message: e.to_string(),
        })?;
        let overlap = i64::try_from(self.options.overlap.as_millis()).unwrap_or(i64::MAX);
        let from = cursor.since.saturating_sub(overlap);
        let properties = program.read_properties(object);
        let mut newest = cursor.since;
        let mut seen = cursor.seen.clone();
        let (mut read, mut queued, mut echoes) = (0u64, 0u64, 0u64);
        let mut pages = connector.scan(object, Scan::ChangedSince(from), &properties);
        while let Some(page) = pages.next().await {
            let page = page.map_err(|source| PollError::Connect {
                system,
                object: object.plural(),
                source,
            })?;
            for record in page {
                read += 1;
                let modified = record.updated_at.unwrap_or(cursor.since);
                if seen.get(&record.id) == Some(&modified) {
                    continue;
                }
                if self.is_echo(program, &record).await? {
                    echoes += 1;
                } else {
                    self.store
                        .enqueue(&record_job(&record.key(), self.options.job_delay))
                        .await?;
                    queued += 1;
                }
                newest = newest.max(modified);
                seen.insert(record.id.clone(), modified);
            }
        }
        drop(pages);
        // Every job is queued: now the cursor may move.
        seen.retain(|_, t| *t >= newest.saturating_sub(overlap));
        let next = PollCursor {
            since: newest,
            seen,
        };
        if next != cursor {
            self.save(&name, &next).await?;
        }
        for (n, result) in [(queued, "queued"), (echoes, "echo")] {
            if n > 0 {
                metrics::counter!(m::POLL_RECORDS, "system" => system.as_str(),
                    "object" => object.as_str(), "result" => result)
                .increment(n);
            }
        }
        Ok((read, queued, echoes))
    }

    /// Whether the record is linked and none of its synced values changed since the last sync.
    async fn is_echo(&self, program: &Program, record: &Record) -> Result<bool, PollError> {
        let Some(link) = self
            .store
            .link(record.object, record.system, &record.id)
            .await?
        else {
            return Ok(false);
        };
        Ok(unchanged_since_sync(program, record, &link))
    }

    async fn save(&self, name: &str, cursor: &PollCursor) -> Result<(), PollError> {
        let text = serde_json::to_string(cursor).map_err(|e| PollError::Cursor {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        self.store.set_cursor(name, &text).await?;
        Ok(())
    }
}

/// True when every value of `record` that syncs from its side (mappings and the status) is
/// the value its link remembers from the last sync (`Link::last_synced`, see [`tandem_core::plan`]).
/// A value the link does not know counts as changed.
pub fn unchanged_since_sync(program: &Program, record: &Record, link: &Link) -> bool {
    let Some(rules) = program.object(record.object) else {
        return false;
    };
    let direction = Direction::from_source(record.system);
    let same = |key: String, value: Option<String>| {
        link.last_synced.get(&key).map(String::as_str) == Some(value.as_deref().unwrap_or(""))
    };
    let fields = rules
        .mappings
        .iter()
        .filter(|m| m.direction.flows(direction))
        .all(|m| {
            let field = match record.system {
                System::HubSpot => m.hubspot.clone(),
                System::Accelo => m.accelo.dotted().unwrap_or_else(|| m.accelo.source.clone()),
            };
            same(synced_key(record.system, &field), m.read(record))
        });
    let status = match &rules.status {
        Some(s) if s.direction.flows(direction) => {
            let field = match record.system {
                System::HubSpot => s.hubspot.as_str(),
                System::Accelo => "status",
            };
            same(synced_key(record.system, field), s.read(record))
        }
        _ => true,
    };
    fields && status
}
