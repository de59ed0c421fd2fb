//! Settling create intents left open by a crash (B20), before anything is created again.
//!
//! An open intent means a create may or may not have reached the target system. For each one
//! that no live run owns, the record is looked up by the intent's lookups (the dedup values the
//! create carried: HubSpot `domain`/`name`/`email`, Accelo `website`/`name`/`affiliation.email`):
//! - exactly one unlinked record found → it is the created record: link it and log it
//!   `created` with the reason `created (recovered) …`, resolving the intent, in one transaction;
//! - none → the create did not happen: the intent is abandoned (the run's re-plan creates it) —
//!   but only once the create is older than the lookups' index lag
//!   ([`Connector::lookup_lag`](crate::connect::Connector::lookup_lag): HubSpot search); a
//!   younger one is looked up again when that much time has passed;
//! - several that match equally → not guessed: abandoned with a warning; the re-plan's
//!   duplicate detection then skips the record as an ambiguous match rather than create a third.
//!
//! Intents of a job that is running under a live lease are left alone: their create is in
//! flight, not lost.

use std::collections::BTreeMap;

use chrono::Utc;

use super::error::ExecError;
use super::executor::{Executor, IntentPayload};
use super::owner;
use crate::connect::ConnectError;
use crate::store::{
    Intent, JobId, JobState, LinkChange, LogBody, NewLogEntry, Notice, NoticeLevel, Outcome,
    RecordEntry, RecordOutcome,
};
use tandem_core::model::{Link, Record, System};
use tandem_core::plan::RecordRef;

/// What [`settle`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Intents whose record was found and linked.
    pub recovered: u64,
    /// Intents whose record did not exist (or could not be told apart).
    pub abandoned: u64,
    /// Intents left open (their job is running, or the lookup failed).
    pub left_open: u64,
}

/// Settles every open intent that no live run owns. `own_job` is the job of the caller, whose
/// earlier attempt may have left intents (they are settled even though the job is running).
pub async fn settle(exec: &Executor, own_job: Option<JobId>) -> Result<Settled, ExecError> {
    let store = exec.store();
    let mut settled = Settled::default();
    for intent in store.open_intents().await? {
        if let Some(job) = intent.job
            && Some(job) != own_job
            && in_flight(exec, job).await?
        {
            settled.left_open += 1;
            continue;
        }
        match settle_one(exec, &intent).await {
            Ok(true) => settled.recovered += 1,
            Ok(false) => settled.abandoned += 1,
            Err(ExecError::Unreachable(e)) => return Err(ExecError::Unreachable(e)),
            Err(ExecError::Store(e)) => return Err(ExecError::Store(e)),
            Err(e) => {
                settled.left_open += 1;
                notice(
                    exec,
                    intent.job,
                    NoticeLevel::Warn,
                    format!(
                        "could not settle the create of {} in {}: {e}; it stays open",
                        intent.source, intent.target
                    ),
                )
                .await?;
            }
        }
    }
    Ok(settled)
}

/// True when `job` is running under a lease that has not expired and whose owner is not
/// provably dead.
async fn in_flight(exec: &Executor, job: JobId) -> Result<bool, ExecError> {
    let Some(j) = exec.store().job(job).await? else {
        return Ok(false);
    };
    if j.state != JobState::Running {
        return Ok(false);
    }
    let live_lease = j.lease_expires_at.is_some_and(|t| t > Utc::now());
    let dead = j.lease_owner.as_deref().is_some_and(owner::is_dead);
    Ok(live_lease && !dead)
}

async fn notice(
    exec: &Executor,
    job: Option<JobId>,
    level: NoticeLevel,
    message: String,
) -> Result<(), ExecError> {
    exec.store()
        .append_log(&NewLogEntry {
            job,
            body: LogBody::Notice(Notice { level, message }),
        })
        .await?;
    Ok(())
}

/// The unlinked records the intent's lookups find: id → (record, how many lookups found it).
async fn candidates(
    exec: &Executor,
    intent: &Intent,
    payload: &IntentPayload,
) -> Result<BTreeMap<String, (Record, usize)>, ExecError> {
    let store = exec.store();
    let object = intent.source.object;
    let target_sys = intent.target;
    let connector = exec.connector(target_sys);
    let mut found: BTreeMap<String, (Record, usize)> = BTreeMap::new();
    for lookup in &payload.lookups {
        let records = connector
            .find(object, lookup, &[])
            .await
            .map_err(|e: ConnectError| {
                if e.is_unreachable() {
                    ExecError::Unreachable(e)
                } else {
                    ExecError::Interrupted(e.to_string())
                }
            })?;
        for r in records {
            if store.link(object, target_sys, &r.id).await?.is_some() {
                continue;
            }
            found.entry(r.id.clone()).or_insert((r, 0)).1 += 1;
        }
    }
    Ok(found)
}

/// Settles one intent: true when the record was found and linked.
async fn settle_one(exec: &Executor, intent: &Intent) -> Result<bool, ExecError> {
    let store = exec.store();
    let object = intent.source.object;
    let source_sys = intent.source.system;
    let target_sys = intent.target;
    let payload: IntentPayload =
        serde_json::from_value(intent.dedup.clone()).unwrap_or(IntentPayload {
            lookups: Vec::new(),
            last_synced: BTreeMap::new(),
            affiliation_id: None,
        });

    // Linked since (by a later run): the create is settled by that link.
    if let Some(link) = store.link(object, source_sys, &intent.source.id).await? {
        store
            .resolve_intent(intent.id, Some(link.id_on(target_sys)))
            .await?;
        return Ok(true);
    }

    let connector = exec.connector(target_sys);
    let mut found = candidates(exec, intent, &payload).await?;
    if found.is_empty() {
        // A search index may not show a record created moments ago: "absent" is only
        // believed once the create is older than the lookups' lag.
        let lag = payload
            .lookups
            .iter()
            .map(|l| connector.lookup_lag(object, l))
            .max()
            .unwrap_or_default();
        let age = (Utc::now() - intent.opened_at).to_std().unwrap_or_default();
        if age < lag {
            tokio::time::sleep(lag - age).await;
            found = candidates(exec, intent, &payload).await?;
        }
    }
    let best = found.values().map(|(_, n)| *n).max().unwrap_or(0);
    let top: Vec<&Record> = found
        .values()
        .filter(|(_, n)| *n == best)
        .map(|(r, _)| r)
        .collect();
    let record = match top.as_slice() {
        [one] => *one,
        [] => {
            store.resolve_intent(intent.id, None).await?;
            notice(
                exec,
                intent.job,
                NoticeLevel::Info,
                format!(
                    "an interrupted create of {} in {target_sys} had not happened; it will be \
                     created again",
                    intent.source
                ),
            )
            .await?;
            return Ok(false);
        }
        many => {
            let ids: Vec<String> = many.iter().map(|r| format!("`{}`", r.id)).collect();
            store.resolve_intent(intent.id, None).await?;
            notice(
                exec,
                intent.job,
                NoticeLevel::Warn,
                format!(
                    "an interrupted create of {} in {target_sys} matches several records ({}); \
                     none was linked — the next plan decides",
                    intent.source,
                    ids.join(", ")
                ),
            )
            .await?;
            return Ok(false);
        }
    };

    let (hubspot_id, accelo_id) = match target_sys {
        System::HubSpot => (record.id.clone(), intent.source.id.clone()),
        System::Accelo => (intent.source.id.clone(), record.id.clone()),
    };
    let affiliation_id = match target_sys {
        System::Accelo => record
            .doc
            .get("affiliation")
            .and_then(|a| a.get("id"))
            .and_then(tandem_core::model::value_as_string),
        System::HubSpot => payload.affiliation_id.clone(),
    }
    .filter(|_| object == tandem_core::model::Object::Contact);
    let how: Vec<String> = payload
        .lookups
        .iter()
        .map(|l| format!("{} `{}`", l.key, l.value))
        .collect();
    store
        .record_outcome(&RecordOutcome {
            job: intent.job,
            entry: RecordEntry {
                object,
                source: RecordRef {
                    system: source_sys,
                    id: Some(intent.source.id.clone()),
                },
                target: RecordRef {
                    system: target_sys,
                    id: Some(record.id.clone()),
                },
                outcome: Outcome::Created,
                reason: format!(
                    "created (recovered): an interrupted run's create was found by {}",
                    how.join(", ")
                ),
                changes: Vec::new(),
                error: None,
            },
            link: LinkChange::Upsert(Link {
                object,
                hubspot_id,
                accelo_id,
                affiliation_id,
                last_synced: payload.last_synced.clone(),
            }),
            resolve_intent: Some(intent.id),
        })
        .await?;
    Ok(true)
}
