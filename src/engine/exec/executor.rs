//! [`Executor::execute`]: applies a [`Plan`] to the target system.
//!
//! Order: guardrails (before anything is written); then per object, companies before contacts:
//! the quiet actions (`noop`, `skip`) logged in batches, links without changes, creates, then
//! updates (and links with changes). A contact whose company action failed fails with that
//! reason; a contact created on the other side gets its company's twin id from this run or
//! from the store's links.
//!
//! Writes: HubSpot in chunks of the connector's batch size (100: one batch request per chunk),
//! Accelo one record per call with `accelo_concurrency` calls in flight. Every record's outcome
//! is written as it happens with [`Store::record_outcome`]/[`Store::record_outcomes`]: the link
//! (with the action's last-synced values, the target's side as the target reports holding it
//! after the write), the log entry with the field changes really written, and the resolution of
//! the record's create intent, in one transaction. A create settled by lookup after a lost
//! answer is completed first: what the found record lacks is written.
//!
//! Crash safety (B20): before a create is sent, an intent is opened naming how to find the
//! record (its dedup lookups); the connector also gets the first lookup, so a create whose answer
//! is lost is looked up before being repeated. An intent is resolved in the outcome's
//! transaction, abandoned when the create certainly did not happen, and left open when its
//! outcome is unknown: [`super::recover`] settles it on the next start.
//!
//! Echoes (B17): every value written is remembered for `echo_ttl` — for updates before the
//! request is sent (the webhook it causes can arrive before the answer), for creates once the
//! new id is known.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::error::ExecError;
use super::guardrails;
use super::progress::Progress;
use crate::connect::{
    Changes, ConnectError, Connector, CreateInput, Lookup, UpdateInput, WriteOutcome, WriteResult,
    Written,
};
use crate::store::{
    Counts, Echo, IntentId, IntentOpened, JobId, LinkChange, LogBody, LogQuery, NewIntent,
    NewLogEntry, Outcome, RecordEntry, RecordOutcome, RunProgress, Store, StoreError,
};
use tandem_core::model::{Link, Object, Record, RecordKey, System};
use tandem_core::plan::{Action, Op, Plan, PlanInput};
use tandem_core::rules::config::Guardrails;

/// How the executor behaves.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The B21 limits (`sync.guardrails`).
    pub guardrails: Guardrails,
    /// Run even when a guardrail would stop the run (`--force`).
    pub force: bool,
    /// Accelo writes in flight at once (`sync.accelo_concurrency`).
    pub accelo_concurrency: usize,
    /// How long written values are remembered as echoes.
    pub echo_ttl: Duration,
    /// Quiet outcomes (`noop`, `skip`) written per store transaction.
    pub log_batch: usize,
}

impl Default for ExecOptions {
    fn default() -> ExecOptions {
        ExecOptions {
            guardrails: Guardrails::default(),
            force: false,
            accelo_concurrency: 4,
            echo_ttl: Duration::from_secs(3600),
            log_batch: 500,
        }
    }
}

/// The job a run belongs to and the worker holding its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    /// The job.
    pub job: JobId,
    /// The lease owner.
    pub owner: String,
}

/// What a run needs besides the plan.
pub struct RunContext<'a> {
    /// The job (log entries go under it, progress to it); `None` for a run outside the queue.
    pub lease: Option<&'a JobLease>,
    /// Stops the run between two records (shutdown, lost lease).
    pub cancel: CancellationToken,
    /// The display.
    pub progress: &'a dyn Progress,
    /// A bulk run (the whole target is in scope): enables the `max_share` guardrail.
    pub bulk: bool,
    /// The job ran before (it was interrupted): records it already logged are not logged again
    /// when they are now a no-op or a skip.
    pub resume: bool,
}

impl RunContext<'_> {
    fn job(&self) -> Option<JobId> {
        self.lease.map(|l| l.job)
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Records per outcome (this run; a resumed job's totals are in its log).
    pub counts: Counts,
    /// Records written but with a part that failed (e.g. an Accelo postal address): they are
    /// linked and the next run shows the missing values as changes.
    pub problems: u64,
    /// Creates not sent because another run was creating the same record, or had linked it
    /// since this run's plan was made (logged as skipped; a later sync of the record picks it
    /// up). Not failures.
    pub deferred: u64,
}

impl Report {
    /// True when some record failed or was only partly written (exit code 1).
    pub fn has_failures(&self) -> bool {
        self.counts.failed > 0 || self.problems > 0
    }
}

/// Applies plans. Cheap to clone; shareable between jobs.
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn Store>,
    hubspot: Arc<dyn Connector>,
    accelo: Arc<dyn Connector>,
    options: ExecOptions,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("store", &self.store.location())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The lookups that find a created record again, by target system and object, in preference
/// order (write keys).
fn lookup_keys(system: System, object: Object) -> &'static [&'static str] {
    match (system, object) {
        (System::HubSpot, Object::Company) => &["domain", "name"],
        (System::HubSpot, Object::Contact) => &["email"],
        (System::Accelo, Object::Company) => &["website", "name"],
        (System::Accelo, Object::Contact) => &["affiliation.email"],
    }
}

/// The lookups for a create with `changes`: each preferred key that has a value.
pub fn lookups_for(system: System, object: Object, changes: &Changes) -> Vec<Lookup> {
    lookup_keys(system, object)
        .iter()
        .filter_map(|k| {
            changes
                .get(*k)
                .and_then(|v| v.as_deref())
                .filter(|v| !v.trim().is_empty())
                .map(|v| Lookup::new(*k, v))
        })
        .collect()
}

/// The intent payload: what [`super::recover`] needs to settle it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IntentPayload {
    /// How to find the record.
    pub lookups: Vec<Lookup>,
    /// The last-synced values the link gets.
    #[serde(default)]
    pub last_synced: BTreeMap<String, String>,
    /// For Accelo-sourced contacts: the source's affiliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliation_id: Option<String>,
}

/// What opening a create's intent decided.
enum Opening {
    /// Send the create.
    Go(IntentId, CreateInput),
    /// Left to another run: this outcome logs it.
    Deferred(RecordOutcome),
}

/// The link change of a successful action: a new pair for a create or a link (refused by the
/// store if either record got another partner meanwhile), new values for an update.
fn link_change(a: &Action, link: Option<Link>) -> LinkChange {
    match (link, a.op) {
        (None, _) => LinkChange::Keep,
        (Some(l), Op::Create | Op::Link) => LinkChange::Insert(l),
        (Some(l), _) => LinkChange::Upsert(l),
    }
}

/// One action ready to write.
struct Item<'p> {
    action: &'p Action,
    changes: Changes,
    company_id: Option<String>,
    target_id: Option<String>,
    current: Option<Record>,
}

/// What the run has done so far.
#[derive(Default)]
struct State {
    /// seq → the target id, or the error that failed the action.
    results: HashMap<u32, Result<String, String>>,
    /// (object, source id) → target id, for records created or linked in this run.
    twins: HashMap<(Object, String), String>,
    /// Source records this job already logged (resume).
    logged: HashSet<(Object, System, String)>,
    /// Actions (seq) deferred to another run: their dependents are deferred too.
    deferred: HashSet<u32>,
    /// Per pair (object, HubSpot id): last-synced values learnt from what a write of this run
    /// left in a system (`None`: not known), applied to every later link of the pair in the
    /// run — an incremental plan writes a pair both ways, each action carrying the whole map.
    stored_values: HashMap<(Object, String), BTreeMap<String, Option<String>>>,
    report: Report,
    done: u64,
    total: u64,
    last_store_progress: Option<Instant>,
    last_log_progress: Option<Instant>,
    /// `done` of the last `run_progress` entry written: the same count is not logged twice.
    logged_done: Option<u64>,
}

/// Least time between two job progress updates in the store / two `run_progress` entries.
const STORE_PROGRESS_EVERY: Duration = Duration::from_millis(500);
const LOG_PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// A `run_progress` entry is also written each time the run passes another twentieth (5 %)
/// of its actions, however fast it goes.
const LOG_PROGRESS_STEPS: u64 = 20;

impl State {
    /// Actions in one progress step (5 % of the run, at least one).
    fn progress_step(&self) -> u64 {
        (self.total / LOG_PROGRESS_STEPS).max(1)
    }
}

impl Executor {
    /// An executor writing through these connectors and this store.
    pub fn new(
        store: Arc<dyn Store>,
        hubspot: Arc<dyn Connector>,
        accelo: Arc<dyn Connector>,
        options: ExecOptions,
    ) -> Executor {
        Executor {
            store,
            hubspot,
            accelo,
            options,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The options.
    pub fn options(&self) -> &ExecOptions {
        &self.options
    }

    /// The connector of `system`.
    pub fn connector(&self, system: System) -> &Arc<dyn Connector> {
        match system {
            System::HubSpot => &self.hubspot,
            System::Accelo => &self.accelo,
        }
    }

    /// Checks the guardrails for `plan` (unless forced). `target_records` is the number of
    /// existing target records, for bulk runs.
    pub fn check_guardrails(
        &self,
        plan: &Plan,
        target_records: Option<u64>,
    ) -> Result<(), ExecError> {
        if self.options.force {
            return Ok(());
        }
        guardrails::check(plan, &self.options.guardrails, target_records)
            .map_err(ExecError::Guardrail)
    }

    /// Applies `plan`, made from `input`, to the target system. See the module docs.
    ///
    /// Returns `Err` only when the run had to stop: a guardrail (nothing written), a system that
    /// became unreachable, a store failure, or an interruption. Record failures are in the
    /// report and the log.
    pub async fn execute(
        &self,
        plan: &Plan,
        input: &PlanInput<'_>,
        run: &RunContext<'_>,
    ) -> Result<Report, ExecError> {
        let target_sys = plan.direction.target();
        let target_count = run.bulk.then(|| {
            input
                .target
                .iter()
                .filter(|r| r.system == target_sys)
                .count() as u64
        });
        self.check_guardrails(plan, target_count)?;

        let ix = Index::new(input);
        let mut st = State {
            total: plan.actions.len() as u64,
            ..State::default()
        };
        if run.resume
            && let Some(job) = run.job()
        {
            st.logged = self.logged_sources(job).await?;
        }
        run.progress.start(plan.direction.as_str(), st.total);
        self.drop_dead_links(plan).await?;

        // Per object (companies first): the writes to the direction's target, then those an
        // incremental plan sends the other way (which depend on the first ones).
        for object in Object::ALL {
            for system in [plan.direction.target(), plan.direction.source()] {
                let actions: Vec<&Action> = plan
                    .actions
                    .iter()
                    .filter(|a| a.object == object && a.target.system == system)
                    .collect();
                if actions.is_empty() {
                    continue;
                }
                let (quiet, rest): (Vec<&Action>, Vec<&Action>) = actions
                    .into_iter()
                    .partition(|a| matches!(a.op, Op::Noop | Op::Skip));
                self.quiet(&ix, &quiet, run, &mut st).await?;
                let (links, rest): (Vec<&Action>, Vec<&Action>) = rest
                    .into_iter()
                    .partition(|a| a.op == Op::Link && a.changes.is_empty());
                self.link_only(&ix, &links, run, &mut st).await?;
                let (creates, updates): (Vec<&Action>, Vec<&Action>) =
                    rest.into_iter().partition(|a| a.op == Op::Create);
                self.creates(&ix, &creates, run, &mut st).await?;
                self.updates(&ix, &updates, run, &mut st).await?;
            }
        }
        self.progress(run, &mut st, true).await?;
        run.progress.finish();
        Ok(st.report)
    }

    /// Removes the links the plan's creates and links replace: links whose twin no longer
    /// exists (`when_twin_missing: recreate | unlink`). Only that exact pair is removed, so a
    /// link another run wrote meanwhile stays, and the create then finds it (and leaves the
    /// record to that run).
    async fn drop_dead_links(&self, plan: &Plan) -> Result<(), ExecError> {
        for a in &plan.actions {
            let (Some(dead), Some(source)) = (&a.replaces_twin, &a.source.id) else {
                continue;
            };
            if !matches!(a.op, Op::Create | Op::Link) {
                continue;
            }
            let (hubspot_id, accelo_id) = match a.source.system {
                System::HubSpot => (source.as_str(), dead.as_str()),
                System::Accelo => (dead.as_str(), source.as_str()),
            };
            self.store
                .delete_link_pair(a.object, hubspot_id, accelo_id)
                .await?;
        }
        Ok(())
    }

    /// Source records with a record entry in `job`'s log.
    async fn logged_sources(
        &self,
        job: JobId,
    ) -> Result<HashSet<(Object, System, String)>, StoreError> {
        let entries = self
            .store
            .log(&LogQuery {
                job: Some(job),
                ..LogQuery::default()
            })
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| match e.body {
                LogBody::Record(r) => r.source.id.map(|id| (r.object, r.source.system, id)),
                _ => None,
            })
            .collect())
    }

    /// Quiet outcomes written per store transaction: `log_batch`, but no more than a progress
    /// step, so that the log's progress keeps up with the bar through those phases too.
    fn log_chunk(&self, st: &State) -> usize {
        let step = usize::try_from(st.progress_step()).unwrap_or(usize::MAX);
        self.options.log_batch.max(1).min(step)
    }

    fn check_cancel(run: &RunContext<'_>) -> Result<(), ExecError> {
        if run.cancel.is_cancelled() {
            Err(ExecError::Interrupted(
                "the run was stopped between two records".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Reports progress to the display always, to the job at most every so often, and to the
    /// log every few seconds and each time another 5 % of the actions is done (and at the end
    /// when `last`).
    async fn progress(
        &self,
        run: &RunContext<'_>,
        st: &mut State,
        last: bool,
    ) -> Result<(), ExecError> {
        run.progress.set(st.done);
        let Some(lease) = run.lease else {
            return Ok(());
        };
        let due = |t: Option<Instant>, every: Duration| t.is_none_or(|t| t.elapsed() >= every);
        if last || due(st.last_store_progress, STORE_PROGRESS_EVERY) {
            st.last_store_progress = Some(Instant::now());
            match self
                .store
                .set_progress(lease.job, &lease.owner, st.done, Some(st.total))
                .await
            {
                Ok(()) => {}
                Err(e @ StoreError::LeaseLost { .. }) => {
                    run.cancel.cancel();
                    return Err(ExecError::Interrupted(e.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let step = st.progress_step();
        let new_step = st.logged_done.is_none_or(|d| st.done / step > d / step);
        if (last || new_step || due(st.last_log_progress, LOG_PROGRESS_EVERY))
            && st.logged_done != Some(st.done)
        {
            st.last_log_progress = Some(Instant::now());
            st.logged_done = Some(st.done);
            self.store
                .append_log(&NewLogEntry {
                    job: Some(lease.job),
                    body: LogBody::RunProgress(RunProgress {
                        done: st.done,
                        total: Some(st.total),
                    }),
                })
                .await?;
        }
        Ok(())
    }

    /// Writes outcomes in one transaction; if that fails on a link conflict, one by one, the
    /// conflicting ones as failures.
    async fn write_outcomes(
        &self,
        outcomes: Vec<RecordOutcome>,
        st: &mut State,
    ) -> Result<(), ExecError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        match self.store.record_outcomes(&outcomes).await {
            Ok(_) => {
                for o in &outcomes {
                    st.report.counts.add(o.entry.outcome);
                }
                st.done += outcomes.len() as u64;
                Ok(())
            }
            Err(StoreError::LinkConflict { .. }) if outcomes.len() > 1 => {
                for o in outcomes {
                    Box::pin(self.write_outcomes(vec![o], st)).await?;
                }
                Ok(())
            }
            Err(e @ StoreError::LinkConflict { .. }) => {
                let mut o = outcomes.into_iter().next().ok_or_else(|| {
                    StoreError::Invalid("an outcome disappeared while being written".into())
                })?;
                o.entry.error = Some(match (o.entry.outcome, o.entry.target.id.as_deref()) {
                    (Outcome::Created, Some(id)) => format!(
                        "created {} `{id}`, but {e}: `{id}` is left unlinked (a duplicate to \
                         merge or delete)",
                        o.entry.target.system
                    ),
                    _ => e.to_string(),
                });
                o.entry.outcome = Outcome::Failed;
                o.link = LinkChange::Keep;
                self.store.record_outcome(&o).await?;
                st.report.counts.add(Outcome::Failed);
                st.done += 1;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn entry(
        a: &Action,
        outcome: Outcome,
        target_id: Option<String>,
        error: Option<String>,
    ) -> RecordEntry {
        let mut target = a.target.clone();
        if target_id.is_some() {
            target.id = target_id;
        }
        RecordEntry {
            object: a.object,
            source: a.source.clone(),
            target,
            outcome,
            reason: a.reason.clone(),
            changes: if matches!(outcome, Outcome::Failed | Outcome::Skipped | Outcome::Noop) {
                Vec::new()
            } else {
                a.changes.clone()
            },
            error,
        }
    }

    fn failed(a: &Action, job: Option<JobId>, error: String) -> RecordOutcome {
        RecordOutcome {
            job,
            entry: Self::entry(a, Outcome::Failed, None, Some(error)),
            link: LinkChange::Keep,
            resolve_intent: None,
        }
    }

    /// `noop` and `skip`: logged in batches (a bulk run has thousands).
    async fn quiet(
        &self,
        ix: &Index<'_>,
        actions: &[&Action],
        run: &RunContext<'_>,
        st: &mut State,
    ) -> Result<(), ExecError> {
        for chunk in actions.chunks(self.log_chunk(st)) {
            Self::check_cancel(run)?;
            let mut outcomes = Vec::with_capacity(chunk.len());
            for a in chunk {
                let outcome = Outcome::of(a.op);
                // A no-op carries `last_synced` only when its link must change.
                let link = match (a.op, a.target.id.as_deref(), &a.last_synced) {
                    (Op::Noop, Some(tid), Some(_)) => ix
                        .planned_link(a, tid, None)
                        .map_or(LinkChange::Keep, LinkChange::Upsert),
                    _ => LinkChange::Keep,
                };
                let source_id = a.source.id.clone().unwrap_or_default();
                if st.logged.contains(&(a.object, a.source.system, source_id)) {
                    // Logged by an earlier attempt: only the link, if it must change.
                    if let LinkChange::Upsert(l) = &link {
                        self.store.upsert_link(l).await?;
                    }
                    st.done += 1;
                    continue;
                }
                outcomes.push(RecordOutcome {
                    job: run.job(),
                    entry: Self::entry(a, outcome, None, None),
                    link,
                    resolve_intent: None,
                });
            }
            self.write_outcomes(outcomes, st).await?;
            self.progress(run, st, false).await?;
        }
        Ok(())
    }

    /// `link` without field changes: nothing to write remotely, only the link.
    async fn link_only(
        &self,
        ix: &Index<'_>,
        actions: &[&Action],
        run: &RunContext<'_>,
        st: &mut State,
    ) -> Result<(), ExecError> {
        for chunk in actions.chunks(self.log_chunk(st)) {
            Self::check_cancel(run)?;
            let mut outcomes = Vec::with_capacity(chunk.len());
            for a in chunk {
                let o = match a.target.id.as_deref() {
                    None => Self::failed(a, run.job(), "the plan names no target".into()),
                    Some(tid) => match ix.planned_link(a, tid, None) {
                        Some(link) => {
                            st.note_success(a, tid);
                            RecordOutcome {
                                job: run.job(),
                                entry: Self::entry(a, Outcome::Linked, None, None),
                                link: LinkChange::Insert(link),
                                resolve_intent: None,
                            }
                        }
                        None => Self::failed(a, run.job(), "the plan names no source".into()),
                    },
                };
                if o.entry.outcome == Outcome::Failed {
                    st.note_failure(a, o.entry.error.clone().unwrap_or_default());
                }
                outcomes.push(o);
            }
            self.write_outcomes(outcomes, st).await?;
            self.progress(run, st, false).await?;
        }
        Ok(())
    }

    /// Why `a` cannot run because of the action it depends on, if so (`true`: that action was
    /// deferred to another run, and so is this one).
    fn blocked(st: &State, a: &Action) -> Option<(String, bool)> {
        let dep = a.depends_on?;
        match st.results.get(&dep) {
            Some(Err(e)) if st.deferred.contains(&dep) => Some((
                format!("its company is being synced by another run (action {dep}: {e})"),
                true,
            )),
            Some(Err(e)) => Some((
                format!("its company could not be synced (action {dep}): {e}"),
                false,
            )),
            _ => None,
        }
    }

    /// The outcome of an action left to another run: logged as skipped with `why`.
    fn defer(a: &Action, run: &RunContext<'_>, st: &mut State, why: String) -> RecordOutcome {
        st.note_failure(a, why.clone());
        st.deferred.insert(a.seq);
        st.report.deferred += 1;
        let mut entry = Self::entry(a, Outcome::Skipped, None, None);
        entry.reason = format!("{why}; a later sync of this record picks it up");
        RecordOutcome {
            job: run.job(),
            entry,
            link: LinkChange::Keep,
            resolve_intent: None,
        }
    }

    /// The target-side company of a contact to be created: as planned, else the twin of its
    /// company created in this run (the action it depends on), else from the scope's links or
    /// the store.
    async fn target_company(
        &self,
        ix: &Index<'_>,
        st: &State,
        a: &Action,
    ) -> Result<Option<String>, ExecError> {
        if a.object != Object::Contact {
            return Ok(None);
        }
        if let Some(c) = &a.target_company_id {
            return Ok(Some(c.clone()));
        }
        if let Some(dep) = a.depends_on
            && let Some(Ok(id)) = st.results.get(&dep)
        {
            return Ok(Some(id.clone()));
        }
        let Some(cid) = ix.source(a).and_then(|r| r.company_id.clone()) else {
            return Ok(None);
        };
        let link = match ix.link_of(Object::Company, a.source.system, &cid) {
            Some(l) => Some(l.clone()),
            None => {
                self.store
                    .link(Object::Company, a.source.system, &cid)
                    .await?
            }
        };
        Ok(link.map(|l| l.id_on(a.target.system).to_string()))
    }

    /// Items for `actions`, failing (and logging) those that cannot run.
    async fn prepare<'p>(
        &self,
        ix: &Index<'_>,
        actions: &[&'p Action],
        run: &RunContext<'_>,
        st: &mut State,
    ) -> Result<Vec<Item<'p>>, ExecError> {
        let mut items = Vec::with_capacity(actions.len());
        let mut failed = Vec::new();
        for a in actions {
            if let Some((why, deferred)) = Self::blocked(st, a) {
                if deferred {
                    failed.push(Self::defer(a, run, st, why));
                } else {
                    st.note_failure(a, why.clone());
                    failed.push(Self::failed(a, run.job(), why));
                }
                continue;
            }
            let create = a.op == Op::Create;
            let target_id = if create {
                None
            } else {
                match a.target.id.clone() {
                    Some(id) => Some(id),
                    None => {
                        let why = "the plan names no target record".to_string();
                        st.note_failure(a, why.clone());
                        failed.push(Self::failed(a, run.job(), why));
                        continue;
                    }
                }
            };
            let company_id = if create {
                self.target_company(ix, st, a).await?
            } else {
                None
            };
            let changes: Changes = a
                .changes
                .iter()
                .filter(|c| !create || c.to.is_some())
                .map(|c| (c.field.clone(), c.to.clone()))
                .collect();
            let current = target_id
                .as_deref()
                .and_then(|id| ix.record(a.target.system, a.object, id))
                .cloned();
            items.push(Item {
                action: a,
                changes,
                company_id,
                target_id,
                current,
            });
        }
        self.write_outcomes(failed, st).await?;
        Ok(items)
    }

    /// `create`: intents, then the writes, outcomes as they come.
    async fn creates(
        &self,
        ix: &Index<'_>,
        actions: &[&Action],
        run: &RunContext<'_>,
        st: &mut State,
    ) -> Result<(), ExecError> {
        if actions.is_empty() {
            return Ok(());
        }
        let items = self.prepare(ix, actions, run, st).await?;
        let target = self.connector(actions[0].target.system).clone();
        let object = actions[0].object;
        let batch = target.batch_size().max(1);
        if batch > 1 {
            for chunk in items.chunks(batch) {
                Self::check_cancel(run)?;
                let mut intents = Vec::with_capacity(chunk.len());
                let mut inputs = Vec::with_capacity(chunk.len());
                let mut going = Vec::with_capacity(chunk.len());
                let mut deferred = Vec::new();
                for it in chunk {
                    match self.open_create(ix, it, run, st).await? {
                        Opening::Go(intent, input) => {
                            intents.push(intent);
                            inputs.push(input);
                            going.push(it);
                        }
                        Opening::Deferred(o) => deferred.push(o),
                    }
                }
                self.write_outcomes(deferred, st).await?;
                if going.is_empty() {
                    self.progress(run, st, false).await?;
                    continue;
                }
                let results = match target.create(object, inputs).await {
                    Ok(r) => r,
                    Err(e) => {
                        // Nothing was written.
                        for id in &intents {
                            self.store.resolve_intent(*id, None).await?;
                        }
                        if e.is_unreachable() {
                            return Err(ExecError::Unreachable(e));
                        }
                        vec![Err(e); going.len()]
                    }
                };
                let mut results = results;
                self.complete_found(&target, object, &going, &mut results)
                    .await;
                let mut outcomes = Vec::with_capacity(going.len());
                let mut echoes = Vec::new();
                for ((it, intent), result) in going.into_iter().zip(intents).zip(results) {
                    outcomes.push(self.created(ix, it, intent, result, run, st, &mut echoes));
                }
                self.remember(&echoes).await?;
                self.write_outcomes(outcomes, st).await?;
                self.progress(run, st, false).await?;
            }
            return Ok(());
        }

        // One record per call, a few in flight. Only the remote calls run concurrently (as
        // tasks); every store write happens here, in order, so that no half-polled store call
        // can hold the SQLite write lock while this loop waits for it.
        let limit = self.options.accelo_concurrency.max(1);
        let mut pending = items.iter().enumerate();
        let mut flight: JoinSet<(usize, IntentId, Result<Vec<WriteResult>, ConnectError>)> =
            JoinSet::new();
        let mut fatal: Option<ConnectError> = None;
        loop {
            while flight.len() < limit && fatal.is_none() && !run.cancel.is_cancelled() {
                let Some((i, it)) = pending.next() else {
                    break;
                };
                let (intent, input) = match self.open_create(ix, it, run, st).await? {
                    Opening::Go(intent, input) => (intent, input),
                    Opening::Deferred(o) => {
                        self.write_outcomes(vec![o], st).await?;
                        continue;
                    }
                };
                let target = target.clone();
                flight.spawn(async move { (i, intent, target.create(object, vec![input]).await) });
            }
            let Some(joined) = flight.join_next().await else {
                break;
            };
            let (i, intent, r) = joined.map_err(|e| {
                ExecError::Interrupted(format!("a write task ended abnormally: {e}"))
            })?;
            let it = &items[i];
            let mut result = match r {
                Ok(v) => single(v, target.system(), "create"),
                Err(e) => {
                    // Nothing was written.
                    self.store.resolve_intent(intent, None).await?;
                    if e.is_unreachable() {
                        fatal.get_or_insert(e);
                        continue;
                    }
                    Err(e)
                }
            };
            self.complete_found(&target, object, &[it], std::slice::from_mut(&mut result))
                .await;
            let mut echoes = Vec::new();
            let o = self.created(ix, it, intent, result, run, st, &mut echoes);
            self.remember(&echoes).await?;
            self.write_outcomes(vec![o], st).await?;
            self.progress(run, st, false).await?;
        }
        if let Some(e) = fatal {
            return Err(ExecError::Unreachable(e));
        }
        Self::check_cancel(run)
    }

    /// Opens the intent of one create and builds its input — or, when the record was linked
    /// meanwhile or another run is creating it, leaves it to that run.
    async fn open_create(
        &self,
        ix: &Index<'_>,
        it: &Item<'_>,
        run: &RunContext<'_>,
        st: &mut State,
    ) -> Result<Opening, ExecError> {
        let a = it.action;
        let target_sys = a.target.system;
        let lookups = lookups_for(target_sys, a.object, &it.changes);
        let payload = IntentPayload {
            lookups: lookups.clone(),
            last_synced: ix.planned_last_synced(a),
            affiliation_id: ix.source_affiliation(a),
        };
        let source = RecordKey {
            system: a.source.system,
            object: a.object,
            id: a.source.id.clone().unwrap_or_default(),
        };
        let intent = self
            .store
            .open_intent(&NewIntent {
                job: run.job(),
                source,
                target: target_sys,
                dedup: serde_json::to_value(&payload).unwrap_or(Value::Null),
            })
            .await?;
        let intent = match intent {
            IntentOpened::Opened(id) => id,
            IntentOpened::Linked(link) => {
                let twin = link.id_on(target_sys).to_string();
                let why = format!(
                    "not created: linked meanwhile to {target_sys} `{twin}` by another run"
                );
                let o = Self::defer(a, run, st, why);
                // Its contacts can use the twin.
                st.note_success(a, &twin);
                return Ok(Opening::Deferred(o));
            }
            IntentOpened::Held(other) => {
                let why = match other.job {
                    Some(job) if Some(job) != run.job() => {
                        format!(
                            "not created: another run (job {job}) is creating it in {target_sys}"
                        )
                    }
                    _ => format!(
                        "not created: an earlier create of it in {target_sys} has an unknown \
                         outcome (intent {}), settled before it is created again",
                        other.id.0
                    ),
                };
                return Ok(Opening::Deferred(Self::defer(a, run, st, why)));
            }
        };
        Ok(Opening::Go(
            intent,
            CreateInput {
                changes: it.changes.clone(),
                company_id: it.company_id.clone(),
                lookup: lookups.into_iter().next(),
            },
        ))
    }

    /// The outcome of one create.
    #[allow(
        clippy::too_many_arguments,
        reason = "the create's context, its result and the run's state it updates"
    )]
    fn created(
        &self,
        ix: &Index<'_>,
        it: &Item<'_>,
        intent: IntentId,
        result: WriteResult,
        run: &RunContext<'_>,
        st: &mut State,
        echoes: &mut Vec<Echo>,
    ) -> RecordOutcome {
        let a = it.action;
        match result {
            Ok(w) => {
                let mut entry = Self::entry(a, Outcome::Created, Some(w.id.clone()), None);
                if w.outcome == WriteOutcome::Found {
                    entry.reason = format!(
                        "{}; the create's answer was lost and the record was found by its lookup",
                        a.reason
                    );
                }
                if !w.problems.is_empty() {
                    st.report.problems += 1;
                    entry.reason = format!("{}; {}", entry.reason, problems_text(&w.problems));
                }
                entry.changes.retain(|c| !w.unwritten.contains(&c.field));
                st.note_success(a, &w.id);
                let mut sent = it.changes.clone();
                sent.retain(|k, _| !w.unwritten.contains(k));
                echoes.extend(echoes_of(a.target.system, a.object, &w.id, &sent));
                let link = ix.written_link(a, &w.id, &w, st);
                RecordOutcome {
                    job: run.job(),
                    entry,
                    link: link_change(a, link),
                    resolve_intent: Some(intent),
                }
            }
            Err(e) => {
                let text = e.to_string();
                st.note_failure(a, text.clone());
                let unknown = matches!(e, ConnectError::OutcomeUnknown { .. });
                RecordOutcome {
                    job: run.job(),
                    entry: Self::entry(a, Outcome::Failed, None, Some(text)),
                    link: LinkChange::Keep,
                    // Unknown outcome: the intent stays open; the next start looks it up.
                    resolve_intent: (!unknown).then_some(intent),
                }
            }
        }
    }

    /// Completes the creates settled by lookup: their answer was lost and the record was found,
    /// created by the lost attempt (which may not have got to its follow-up writes: an Accelo
    /// company's address, a contact's mobile) or by someone else. What the found record lacks of
    /// the planned values is written now; what cannot be written is reported unwritten, with
    /// its error, so the record is logged and linked with only what it really holds.
    async fn complete_found(
        &self,
        target: &Arc<dyn Connector>,
        object: Object,
        items: &[&Item<'_>],
        results: &mut [WriteResult],
    ) {
        let mut todo: Vec<(usize, UpdateInput, Vec<String>)> = Vec::new();
        for (i, (it, r)) in items.iter().zip(results.iter()).enumerate() {
            let Ok(w) = r else { continue };
            if w.outcome != WriteOutcome::Found {
                continue;
            }
            let known = |k: &str| w.stored.as_ref().and_then(|s| s.value(k));
            let changes: Changes = it
                .changes
                .iter()
                .filter(|(k, v)| v.is_some() && known(k) != **v)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let current = w.stored.as_ref().map(|s| s.record.clone());
            let company_id = it.company_id.clone().filter(|c| {
                object == Object::Contact
                    && current.as_ref().and_then(|r| r.company_id.as_deref()) != Some(c.as_str())
            });
            if changes.is_empty() && company_id.is_none() {
                continue;
            }
            let keys: Vec<String> = changes.keys().cloned().collect();
            todo.push((
                i,
                UpdateInput {
                    id: w.id.clone(),
                    changes,
                    company_id,
                    current,
                },
                keys,
            ));
        }
        if todo.is_empty() {
            return;
        }
        tracing::info!(
            records = todo.len(),
            "completing creates whose answer was lost: writing what the found records lack"
        );
        let inputs: Vec<UpdateInput> = todo.iter().map(|(_, u, _)| u.clone()).collect();
        let outcomes = match target.update(object, inputs).await {
            Ok(v) if v.len() == todo.len() => v,
            Ok(v) => {
                let e = ConnectError::Protocol {
                    system: target.system(),
                    request: "update".into(),
                    message: format!("{} results for {} inputs", v.len(), todo.len()),
                };
                vec![Err(e); todo.len()]
            }
            Err(e) => vec![Err(e); todo.len()],
        };
        let mut written = Vec::new();
        for ((i, input, keys), outcome) in todo.into_iter().zip(outcomes) {
            let Some(Ok(w)) = results.get_mut(i) else {
                continue;
            };
            match outcome {
                Ok(u) => {
                    w.problems.extend(u.problems);
                    w.unwritten.extend(u.unwritten);
                    if w.affiliation_id.is_none() {
                        w.affiliation_id = u.affiliation_id;
                    }
                    written.push((i, input));
                }
                Err(e) => w.failed_step(e, keys),
            }
        }
        // Read the completed records back: what they hold now.
        let ids: Vec<String> = written.iter().map(|(_, u)| u.id.clone()).collect();
        let properties: Vec<String> = written
            .iter()
            .flat_map(|(_, u)| u.changes.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let read = match target.get(object, &ids, &properties).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "reading completed records back failed");
                Vec::new()
            }
        };
        for (i, input) in written {
            let Some(Ok(w)) = results.get_mut(i) else {
                continue;
            };
            let again = read.iter().find(|r| r.id == input.id).cloned();
            w.stored = match (again, w.stored.take()) {
                (Some(record), Some(before)) => Some(crate::connect::Stored {
                    record,
                    complete: before.complete,
                }),
                // Not read back: what was written is what was planned.
                _ => None,
            };
        }
    }

    /// `update` and `link` with changes.
    async fn updates(
        &self,
        ix: &Index<'_>,
        actions: &[&Action],
        run: &RunContext<'_>,
        st: &mut State,
    ) -> Result<(), ExecError> {
        if actions.is_empty() {
            return Ok(());
        }
        let items = self.prepare(ix, actions, run, st).await?;
        let target = self.connector(actions[0].target.system).clone();
        let object = actions[0].object;
        let batch = target.batch_size().max(1);
        let chunk_size = if batch > 1 {
            batch
        } else {
            self.options.accelo_concurrency.max(1)
        };
        if batch > 1 {
            for chunk in items.chunks(chunk_size) {
                Self::check_cancel(run)?;
                let echoes: Vec<Echo> = chunk
                    .iter()
                    .flat_map(|it| {
                        echoes_of(
                            it.action.target.system,
                            object,
                            it.target_id.as_deref().unwrap_or_default(),
                            &it.changes,
                        )
                    })
                    .collect();
                self.remember(&echoes).await?;
                let inputs = chunk.iter().map(update_input).collect();
                let results = match target.update(object, inputs).await {
                    Ok(r) => r,
                    Err(e) if e.is_unreachable() => return Err(ExecError::Unreachable(e)),
                    Err(e) => vec![Err(e); chunk.len()],
                };
                let outcomes = chunk
                    .iter()
                    .zip(results)
                    .map(|(it, r)| self.updated(ix, it, r, run, st))
                    .collect();
                self.write_outcomes(outcomes, st).await?;
                self.progress(run, st, false).await?;
            }
            return Ok(());
        }

        // As for creates: remote calls in tasks, store writes here.
        let mut pending = items.iter().enumerate();
        let mut flight: JoinSet<(usize, Result<Vec<WriteResult>, ConnectError>)> = JoinSet::new();
        let mut fatal: Option<ConnectError> = None;
        loop {
            while flight.len() < chunk_size && fatal.is_none() && !run.cancel.is_cancelled() {
                let Some((i, it)) = pending.next() else {
                    break;
                };
                let echoes = echoes_of(
                    it.action.target.system,
                    object,
                    it.target_id.as_deref().unwrap_or_default(),
                    &it.changes,
                );
                self.remember(&echoes).await?;
                let input = update_input(it);
                let target = target.clone();
                flight.spawn(async move { (i, target.update(object, vec![input]).await) });
            }
            let Some(joined) = flight.join_next().await else {
                break;
            };
            let (i, r) = joined.map_err(|e| {
                ExecError::Interrupted(format!("a write task ended abnormally: {e}"))
            })?;
            let it = &items[i];
            let result = match r {
                Ok(v) => single(v, target.system(), "update"),
                Err(e) if e.is_unreachable() => {
                    fatal.get_or_insert(e);
                    continue;
                }
                Err(e) => Err(e),
            };
            let o = self.updated(ix, it, result, run, st);
            self.write_outcomes(vec![o], st).await?;
            self.progress(run, st, false).await?;
        }
        if let Some(e) = fatal {
            return Err(ExecError::Unreachable(e));
        }
        Self::check_cancel(run)
    }

    /// The outcome of one update (or link with changes).
    fn updated(
        &self,
        ix: &Index<'_>,
        it: &Item<'_>,
        result: WriteResult,
        run: &RunContext<'_>,
        st: &mut State,
    ) -> RecordOutcome {
        let a = it.action;
        let tid = it.target_id.clone().unwrap_or_default();
        match result {
            Ok(w) => {
                let outcome = if a.op == Op::Link {
                    Outcome::Linked
                } else {
                    Outcome::Updated
                };
                let mut entry = Self::entry(a, outcome, Some(tid.clone()), None);
                if !w.problems.is_empty() {
                    st.report.problems += 1;
                    entry.reason = format!("{}; {}", entry.reason, problems_text(&w.problems));
                }
                entry.changes.retain(|c| !w.unwritten.contains(&c.field));
                st.note_success(a, &tid);
                let link = ix.written_link(a, &tid, &w, st);
                RecordOutcome {
                    job: run.job(),
                    entry,
                    link: link_change(a, link),
                    resolve_intent: None,
                }
            }
            Err(e) => {
                let text = e.to_string();
                st.note_failure(a, text.clone());
                RecordOutcome {
                    job: run.job(),
                    entry: Self::entry(a, Outcome::Failed, Some(tid), Some(text)),
                    link: LinkChange::Keep,
                    resolve_intent: None,
                }
            }
        }
    }

    async fn remember(&self, echoes: &[Echo]) -> Result<(), ExecError> {
        if echoes.is_empty() {
            return Ok(());
        }
        self.store
            .remember_echoes(echoes, self.options.echo_ttl)
            .await
            .map_err(Into::into)
    }
}

impl State {
    fn note_success(&mut self, a: &Action, target_id: &str) {
        self.results.insert(a.seq, Ok(target_id.to_string()));
        if let Some(sid) = &a.source.id {
            self.twins
                .insert((a.object, sid.clone()), target_id.to_string());
        }
    }

    fn note_failure(&mut self, a: &Action, error: String) {
        self.results.insert(a.seq, Err(error));
    }
}

/// The one result of a one-input write.
fn single(mut results: Vec<WriteResult>, system: System, what: &str) -> WriteResult {
    if results.len() == 1 {
        results.remove(0)
    } else {
        Err(ConnectError::Protocol {
            system,
            request: what.to_string(),
            message: format!("{} results for one input", results.len()),
        })
    }
}

fn update_input(it: &Item<'_>) -> UpdateInput {
    UpdateInput {
        id: it.target_id.clone().unwrap_or_default(),
        changes: it.changes.clone(),
        company_id: None,
        current: it.current.clone(),
    }
}

fn echoes_of(system: System, object: Object, id: &str, changes: &Changes) -> Vec<Echo> {
    changes
        .iter()
        .map(|(field, value)| Echo {
            system,
            object,
            id: id.to_string(),
            field: field.clone(),
            value: value.clone(),
        })
        .collect()
}

fn problems_text(problems: &[ConnectError]) -> String {
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    format!("written, but not everything: {}", list.join("; "))
}

/// The plan's input, indexed.
struct Index<'a> {
    records: HashMap<(System, Object, &'a str), &'a Record>,
    /// (object, system, id on that side) → link.
    links: HashMap<(Object, System, &'a str), &'a Link>,
}

impl<'a> Index<'a> {
    fn new(input: &PlanInput<'a>) -> Index<'a> {
        let mut links = HashMap::new();
        for l in input.links {
            links.insert((l.object, System::HubSpot, l.hubspot_id.as_str()), l);
            links.insert((l.object, System::Accelo, l.accelo_id.as_str()), l);
        }
        Index {
            records: input
                .source
                .iter()
                .chain(input.target.iter())
                .map(|r| ((r.system, r.object, r.id.as_str()), r))
                .collect(),
            links,
        }
    }

    fn record(&self, system: System, object: Object, id: &str) -> Option<&'a Record> {
        self.records.get(&(system, object, id)).copied()
    }

    fn source(&self, a: &Action) -> Option<&'a Record> {
        self.record(a.source.system, a.object, a.source.id.as_deref()?)
    }

    fn link_of(&self, object: Object, system: System, id: &str) -> Option<&'a Link> {
        self.links.get(&(object, system, id)).copied()
    }

    fn existing(&self, a: &Action) -> Option<&'a Link> {
        if a.replaces_twin.is_some() {
            // A dead link being replaced: nothing of it carries over.
            return None;
        }
        self.link_of(a.object, a.source.system, a.source.id.as_deref()?)
    }

    /// The affiliation of an Accelo source contact.
    fn source_affiliation(&self, a: &Action) -> Option<String> {
        if a.object != Object::Contact || a.source.system != System::Accelo {
            return None;
        }
        a.affiliation_id
            .clone()
            .or_else(|| self.source(a).and_then(affiliation_of))
    }

    /// What the link's last-synced values become once `a` succeeds: as planned, else what the
    /// link holds.
    fn planned_last_synced(&self, a: &Action) -> BTreeMap<String, String> {
        a.last_synced
            .clone()
            .or_else(|| self.existing(a).map(|l| l.last_synced.clone()))
            .unwrap_or_default()
    }

    /// The link `a` leaves once written as `w` reports: the planned one, with the target's
    /// last-synced values taken from what the target holds after the write (values it assigned
    /// or normalised itself), and those of fields left unwritten made unknown (so the next
    /// sync of the record compares the two sides again instead of taking them as in step).
    fn written_link(
        &self,
        a: &Action,
        target_id: &str,
        w: &Written,
        st: &mut State,
    ) -> Option<Link> {
        let mut link = self.planned_link(a, target_id, w.affiliation_id.clone())?;
        let prefix = format!("{}:", a.target.system);
        let learnt = st
            .stored_values
            .entry((a.object, link.hubspot_id.clone()))
            .or_default();
        for key in link.last_synced.keys() {
            let Some(field) = key.strip_prefix(&prefix) else {
                continue;
            };
            let now = if w.unwritten.iter().any(|u| u == field) {
                None
            } else {
                match w.stored.as_ref().and_then(|s| s.value(field)) {
                    Some(v) => Some(v),
                    None => continue,
                }
            };
            learnt.insert(key.clone(), now);
        }
        for (key, v) in learnt.iter() {
            match v {
                Some(v) => link.last_synced.insert(key.clone(), v.clone()),
                None => link.last_synced.remove(key),
            };
        }
        Some(link)
    }

    /// The link `a` leaves once it succeeded with target `target_id`.
    fn planned_link(
        &self,
        a: &Action,
        target_id: &str,
        written_affiliation: Option<String>,
    ) -> Option<Link> {
        let source_id = a.source.id.as_deref()?;
        let (hubspot_id, accelo_id) = match a.source.system {
            System::HubSpot => (source_id, target_id),
            System::Accelo => (target_id, source_id),
        };
        let affiliation_id = if a.object == Object::Contact {
            a.affiliation_id
                .clone()
                .or(written_affiliation)
                .or_else(|| {
                    self.record(System::Accelo, Object::Contact, accelo_id)
                        .and_then(affiliation_of)
                })
                .or_else(|| self.existing(a).and_then(|l| l.affiliation_id.clone()))
        } else {
            None
        };
        Some(Link {
            object: a.object,
            hubspot_id: hubspot_id.to_string(),
            accelo_id: accelo_id.to_string(),
            affiliation_id,
            last_synced: self.planned_last_synced(a),
        })
    }
}

/// `affiliation.id` of an Accelo contact document.
fn affiliation_of(r: &Record) -> Option<String> {
    r.doc
        .get("affiliation")
        .and_then(|a| a.get("id"))
        .and_then(tandem_core::model::value_as_string)
}
