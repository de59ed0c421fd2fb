//! Rows as both databases return them, and their conversion into the store's types.
//!
//! The row structs use only types both drivers decode the same way (i64, String, JSON), so one
//! `FromRow` derive serves SQLite and PostgreSQL; conversion checks every enum and time and turns
//! anything unexpected into [`StoreError::Corrupt`] naming the table and row.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::error::StoreError;
use super::types::{
    Event, EventId, Intent, IntentId, IntentState, Job, JobId, LogBody, LogEntry, LogId,
};
use tandem_core::model::{Link, Object, RecordKey, System};

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A duration in milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `now + d` in milliseconds, saturating.
pub(crate) fn ms_after(now: i64, d: Duration) -> i64 {
    now.saturating_add(duration_ms(d))
}

pub(crate) fn time(ms: i64, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: time `{ms}` is out of range")))
}

fn opt_time(ms: Option<i64>, what: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(|ms| time(ms, what)).transpose()
}

fn parse<T: std::str::FromStr<Err = String>>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse::<T>()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn unsigned(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what}: negative count `{n}`")))
}

/// A count for the database (which has no unsigned integers).
pub(crate) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(sqlx::FromRow)]
pub(crate) struct LinkRow {
    object: String,
    hubspot_id: String,
    accelo_id: String,
    affiliation_id: Option<String>,
    last_synced: Json<BTreeMap<String, String>>,
}

impl LinkRow {
    pub(crate) fn into_link(self) -> Result<Link, StoreError> {
        let what = format!("link hubspot `{}`", self.hubspot_id);
        Ok(Link {
            object: parse(&self.object, &what)?,
            hubspot_id: self.hubspot_id,
            accelo_id: self.accelo_id,
            affiliation_id: self.affiliation_id,
            last_synced: self.last_synced.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: i64,
    kind: String,
    payload: Json<Value>,
    state: String,
    attempts: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    progress_done: i64,
    progress_total: Option<i64>,
    coalesce_key: Option<String>,
    checkpoint: Option<Json<Value>>,
    error: Option<String>,
    created_at: i64,
    run_after: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<Job, StoreError> {
        let what = format!("job `{}`", self.id);
        let w = what.as_str();
        Ok(Job {
            id: JobId(self.id),
            kind: parse(&self.kind, w)?,
            payload: self.payload.0,
            state: parse(&self.state, w)?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            lease_owner: self.lease_owner,
            lease_expires_at: opt_time(self.lease_expires_at, w)?,
            progress_done: unsigned(self.progress_done, w)?,
            progress_total: self.progress_total.map(|t| unsigned(t, w)).transpose()?,
            coalesce_key: self.coalesce_key,
            checkpoint: self.checkpoint.map(|c| c.0),
            error: self.error,
            created_at: time(self.created_at, w)?,
            run_after: time(self.run_after, w)?,
            started_at: opt_time(self.started_at, w)?,
            finished_at: opt_time(self.finished_at, w)?,
        })
    }
}

/// The fields of a job that explain why a lease check failed.
#[derive(sqlx::FromRow)]
pub(crate) struct LeaseRow {
    pub(crate) state: String,
    pub(crate) lease_owner: Option<String>,
}

impl LeaseRow {
    pub(crate) fn describe(&self) -> String {
        match (&*self.state, &self.lease_owner) {
            ("running", Some(owner)) => format!("running under `{owner}`"),
            (state, _) => state.to_string(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LogRow {
    id: i64,
    at: i64,
    job_id: Option<i64>,
    body: Json<Value>,
}

impl LogRow {
    pub(crate) fn into_entry(self) -> Result<LogEntry, StoreError> {
        let what = format!("sync log entry `{}`", self.id);
        let body: LogBody = serde_json::from_value(self.body.0)
            .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))?;
        Ok(LogEntry {
            id: LogId(self.id),
            at: time(self.at, &what)?,
            job: self.job_id.map(JobId),
            body,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IntentRow {
    id: i64,
    job_id: Option<i64>,
    object: String,
    source_system: String,
    source_id: String,
    target_system: String,
    dedup: Json<Value>,
    state: String,
    created_id: Option<String>,
    opened_at: i64,
    resolved_at: Option<i64>,
}

impl IntentRow {
    pub(crate) fn into_intent(self) -> Result<Intent, StoreError> {
        let what = format!("intent `{}`", self.id);
        let w = what.as_str();
        let state = match self.state.as_str() {
            "open" => IntentState::Open,
            "resolved" => IntentState::Resolved,
            "abandoned" => IntentState::Abandoned,
            other => return Err(StoreError::Corrupt(format!("{w}: unknown state `{other}`"))),
        };
        Ok(Intent {
            id: IntentId(self.id),
            job: self.job_id.map(JobId),
            source: RecordKey {
                system: parse::<System>(&self.source_system, w)?,
                object: parse::<Object>(&self.object, w)?,
                id: self.source_id,
            },
            target: parse(&self.target_system, w)?,
            dedup: self.dedup.0,
            state,
            created_id: self.created_id,
            opened_at: time(self.opened_at, w)?,
            resolved_at: opt_time(self.resolved_at, w)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    source: String,
    dedup_key: String,
    object: Option<String>,
    record_id: Option<String>,
    payload: Json<Value>,
    received_at: i64,
    job_id: Option<i64>,
    processed_at: Option<i64>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> Result<Event, StoreError> {
        let what = format!("event `{}`", self.id);
        let w = what.as_str();
        Ok(Event {
            id: EventId(self.id),
            source: parse(&self.source, w)?,
            dedup_key: self.dedup_key,
            object: self.object.as_deref().map(|o| parse(o, w)).transpose()?,
            record_id: self.record_id,
            payload: self.payload.0,
            received_at: time(self.received_at, w)?,
            job: self.job_id.map(JobId),
            processed_at: opt_time(self.processed_at, w)?,
        })
    }
}

/// The filter columns of a sync-log row, derived from its body.
pub(crate) struct LogColumns<'a> {
    pub(crate) kind: &'static str,
    pub(crate) object: Option<&'static str>,
    pub(crate) source_system: Option<&'static str>,
    pub(crate) source_id: Option<&'a str>,
    pub(crate) target_system: Option<&'static str>,
    pub(crate) target_id: Option<&'a str>,
    pub(crate) outcome: Option<&'static str>,
}

impl<'a> LogColumns<'a> {
    pub(crate) fn of(body: &'a LogBody) -> LogColumns<'a> {
        match body {
            LogBody::Record(r) => LogColumns {
                kind: body.kind(),
                object: Some(r.object.as_str()),
                source_system: Some(r.source.system.as_str()),
                source_id: r.source.id.as_deref(),
                target_system: Some(r.target.system.as_str()),
                target_id: r.target.id.as_deref(),
                outcome: Some(r.outcome.as_str()),
            },
            _ => LogColumns {
                kind: body.kind(),
                object: None,
                source_system: None,
                source_id: None,
                target_system: None,
                target_id: None,
                outcome: None,
            },
        }
    }
}
