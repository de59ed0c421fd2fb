//! The fault-matrix campaign: the same seeded data synced pull, push, pull once without faults
//! and once per fault seed with about 10 % injected faults on both simulators (429, 500, 503,
//! dropped connections, answers lost after the change was applied, latency, HubSpot search
//! lag). A faulty step is re-run while it reports failures. Both sides must end equal to the
//! fault-free run's, compared by natural keys and field values (so nothing is lost and nothing
//! is duplicated), every failure a run reports is in the sync log, and a run that reported none
//! left nothing undone (a fault-free plan made right after it has no create or update).
//!
//! CI runs it at a small size. `TANDEM_CAMPAIGN=long` runs it at the size of the figures in
//! docs/RELIABILITY.md (1,000 companies, 5,000 contacts), `TANDEM_CAMPAIGN_SIZE=200,1000` any
//! other; `TANDEM_CAMPAIGN_SEEDS=a,b,c` picks the fault seeds.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tandem_core::model::{Direction, Object, Record, System, value_as_string};
use tandem_engine::connect::accelo::{Accelo, AcceloSettings};
use tandem_engine::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use tandem_engine::connect::{Connector, RateLimit, RetryPolicy, Secret};
use tandem_engine::exec::progress::Silent;
use tandem_engine::exec::{ExecOptions, Executor, Report, RunContext};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{LogBody, LogQuery, Outcome, Store};
use tandem_sandbox::FaultConfig;
use tokio_util::sync::CancellationToken;

use crate::support::exec::*;

/// The data seed every run of the campaign starts from.
const DATA_SEED: u64 = 41;
/// At most this many runs of one step before the campaign gives up on it.
const MAX_RUNS: usize = 30;

/// (companies, contacts): small in CI, the figures' size with `TANDEM_CAMPAIGN=long`, any
/// size with `TANDEM_CAMPAIGN_SIZE=companies,contacts`.
fn size() -> (usize, usize) {
    if let Ok(s) = std::env::var("TANDEM_CAMPAIGN_SIZE")
        && let Some((a, b)) = s.split_once(',')
        && let (Ok(a), Ok(b)) = (a.trim().parse(), b.trim().parse())
    {
        return (a, b);
    }
    match std::env::var("TANDEM_CAMPAIGN").as_deref() {
        Ok("long") => (1000, 5000),
        _ => (10, 40),
    }
}

fn fault_seeds() -> Vec<u64> {
    std::env::var("TANDEM_CAMPAIGN_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 3])
}

/// About 10 % of API requests fail one way or another, on both simulators.
fn faults(seed: u64) -> FaultConfig {
    FaultConfig {
        seed,
        errors: BTreeMap::from([(429, 0.02), (500, 0.02), (503, 0.02)]),
        drop_rate: 0.02,
        drop_after_rate: 0.02,
        latency_ms: 1,
        latency_jitter_ms: 3,
        search_lag_ms: 20,
        ..FaultConfig::default()
    }
}

/// The executor's retries, quick: one at the small size, so that a fault often outlasts them
/// and a record or a run fails (the campaign is about what a failure leaves behind); three at
/// larger sizes, where a single retry would make nearly every run of thousands of requests
/// stop. Reads for planning use the tests' usual retries: a run whose read fails writes
/// nothing.
fn few_retries() -> RetryPolicy {
    RetryPolicy {
        retries: if size().1 > 100 { 3 } else { 1 },
        ..fast_retry()
    }
}

/// The simulators run without rate limits here, and the connectors do not pace themselves
/// to the real systems' budgets: the campaign is about faults, and at full size the budgets
/// would make it take hours.
const UNPACED: RateLimit = RateLimit {
    requests: 1_000_000,
    per: std::time::Duration::from_secs(1),
};

/// Connectors to `sb` with `retry`, unpaced.
fn connectors(
    sb: &tandem_sandbox::Sandbox,
    retry: RetryPolicy,
) -> (Arc<dyn Connector>, Arc<dyn Connector>) {
    let mut h = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::Token(Secret::new(sb.hubspot_token())),
    );
    h.retry = retry;
    h.rate_limit = UNPACED;
    h.search_rate_limit = UNPACED;
    // Well over the simulated search lag (20 ms), as the 10 s default is over HubSpot's.
    h.search_index_lag = std::time::Duration::from_millis(500);
    let mut a = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new(sb.accelo_client_secret()),
    );
    a.retry = retry;
    a.rate_limit = UNPACED;
    (
        Arc::new(HubSpot::new(h).expect("hubspot connector")),
        Arc::new(Accelo::new(a).expect("accelo connector")),
    )
}

struct Campaign {
    sb: tandem_sandbox::Sandbox,
    ts: TestStore,
    exec: Executor,
    program: Arc<tandem_core::compile::Program>,
    hs: Arc<dyn Connector>,
    ac: Arc<dyn Connector>,
}

/// What one campaign did, for the figures.
#[derive(Debug, Default)]
struct Tally {
    runs: usize,
    runs_with_failures: usize,
    stopped_runs: usize,
    failed_records: u64,
    partly_written: u64,
    deferred: u64,
    faults: BTreeMap<String, u64>,
}

impl Campaign {
    async fn new() -> Campaign {
        let (companies, contacts) = size();
        let sb = sandbox(DATA_SEED, companies, contacts).await;
        let ts = TestStore::sqlite().await;
        let (hs, ac) = connectors(&sb, fast_retry());
        let (whs, wac) = connectors(&sb, few_retries());
        // The guardrails are not under test here: a first sync of the full size is over them.
        // One Accelo write at a time at the small size: concurrent requests would draw from
        // the seeded fault generator in the order they happen to arrive, and the path (not
        // the outcome) would differ from run to run.
        let options = ExecOptions {
            force: true,
            accelo_concurrency: if size().1 > 100 {
                ExecOptions::default().accelo_concurrency
            } else {
                1
            },
            ..ExecOptions::default()
        };
        let exec = Executor::new(ts.store.clone(), whs, wac, options);
        Campaign {
            sb,
            ts,
            exec,
            program: program(),
            hs,
            ac,
        }
    }

    fn store(&self) -> &dyn Store {
        self.ts.store.as_ref()
    }

    async fn world(&self) -> World {
        World::read(&self.program, &*self.hs, &*self.ac, self.store()).await
    }

    async fn failed_in_log(&self) -> u64 {
        let log = self.store().log(&LogQuery::default()).await.unwrap();
        log.iter()
            .filter(|e| matches!(&e.body, LogBody::Record(r) if r.outcome == Outcome::Failed))
            .count() as u64
    }

    /// One run of `direction` as a sync job does it: settle open creates, read, plan, run. An
    /// error is a run stopped as a whole (a system that kept failing: the command exits 3).
    async fn run(&self, direction: Direction) -> Result<Report, String> {
        tandem_engine::exec::recover::settle(&self.exec, None)
            .await
            .map_err(|e| format!("settling open creates: {e}"))?;
        let world = self.world().await;
        let plan = world.plan(&self.program, direction);
        self.exec
            .execute(
                &plan,
                &world.input(direction),
                &RunContext {
                    lease: None,
                    cancel: CancellationToken::new(),
                    progress: &Silent,
                    bulk: true,
                    resume: false,
                },
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// Pull, push, pull; each step re-run while it reports failures. With `faults`, checks
    /// after each run that its failures are in the log, and after the run that reported none
    /// that a fault-free plan has nothing left to create or update.
    async fn sync_all(&self, faults: Option<&FaultConfig>) -> Tally {
        let mut tally = Tally::default();
        for (step, direction) in [Direction::Pull, Direction::Push, Direction::Pull]
            .into_iter()
            .enumerate()
        {
            let mut runs = 0;
            loop {
                runs += 1;
                assert!(runs <= MAX_RUNS, "step {step} ({direction}) never finished");
                if let Some(f) = faults {
                    let mut f = f.clone();
                    // Each run meets other faults than the one before.
                    f.seed = f.seed * 1000 + (step * 100 + runs) as u64;
                    self.sb.set_faults(f).unwrap();
                }
                let logged_before = self.failed_in_log().await;
                let report = self.run(direction).await;
                let logged = self.failed_in_log().await - logged_before;
                if faults.is_some() {
                    self.sb.set_faults(FaultConfig::default()).unwrap();
                }
                tally.runs += 1;
                let report = match report {
                    Ok(r) => r,
                    Err(e) => {
                        assert!(faults.is_some(), "a fault-free run failed: {e}");
                        tally.runs_with_failures += 1;
                        tally.stopped_runs += 1;
                        continue;
                    }
                };
                assert_eq!(
                    logged, report.counts.failed,
                    "step {step} ({direction}) run {runs}: every failure is in the sync log"
                );
                if report.has_failures() || report.deferred > 0 {
                    tally.runs_with_failures += 1;
                    tally.failed_records += report.counts.failed;
                    tally.partly_written += report.problems;
                    tally.deferred += report.deferred;
                    continue;
                }
                // Reported no failures: nothing is left undone.
                let plan = self.world().await.plan(&self.program, direction);
                let left: Vec<_> = plan
                    .actions
                    .iter()
                    .filter(|a| {
                        matches!(
                            a.op,
                            tandem_core::plan::Op::Create | tandem_core::plan::Op::Update
                        )
                    })
                    .map(|a| (a.op, a.source.id.clone(), a.reason.clone()))
                    .collect();
                assert!(
                    left.is_empty(),
                    "step {step} ({direction}) run {runs} reported no failures but left {left:#?}"
                );
                break;
            }
        }
        self.count_faults(&mut tally);
        tally
    }

    /// The faults the simulators injected since they started.
    fn count_faults(&self, tally: &mut Tally) {
        for (side, stats) in [
            ("hubspot", self.sb.hubspot_stats()),
            ("accelo", self.sb.accelo_stats()),
        ] {
            if let Some(Value::Object(m)) = stats.get("faults") {
                for (kind, n) in m {
                    *tally.faults.entry(format!("{side} {kind}")).or_default() +=
                        n.as_u64().unwrap_or(0);
                }
            }
        }
    }

    async fn finish(self) {
        self.sb.shutdown().await;
        self.ts.cleanup().await;
    }
}

/// Whether a field's value is assigned by the system (ids, timestamps) rather than synced.
fn volatile(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    last == "id"
        || last.ends_with("_id")
        || last.contains("date")
        || last.contains("modified")
        || last.contains("created")
        || last.contains("timestamp")
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        other => {
            if !volatile(prefix)
                && let Some(s) = value_as_string(other)
                && !s.is_empty()
            {
                out.insert(prefix.to_string(), s);
            }
        }
    }
}

/// A side's records as natural keys and field values, counted (a duplicate counts twice):
/// `system object key {fields}`, a contact's company named by its company's name.
fn state(records: &[Record], system: System) -> BTreeMap<String, usize> {
    let company_names: BTreeMap<&str, String> = records
        .iter()
        .filter(|r| r.object == Object::Company)
        .map(|r| (r.id.as_str(), r.get("name").unwrap_or_default()))
        .collect();
    let mut out = BTreeMap::new();
    for r in records {
        let mut fields = BTreeMap::new();
        flatten("", &Value::Object(r.doc.clone()), &mut fields);
        let key = match r.object {
            Object::Company => r.get("name").unwrap_or_default().to_lowercase(),
            Object::Contact => {
                let email = r.get("email").or_else(|| {
                    r.doc
                        .get("affiliation")
                        .and_then(|a| a.get("email"))
                        .and_then(value_as_string)
                });
                email.unwrap_or_default().to_lowercase()
            }
        };
        let company = r
            .company_id
            .as_deref()
            .and_then(|c| company_names.get(c))
            .cloned()
            .unwrap_or_default();
        *out.entry(format!(
            "{system} {} {key:?} company={company:?} {fields:?}",
            r.object
        ))
        .or_default() += 1;
    }
    out
}

/// The records in `a` and not in `b` (by count).
fn missing(a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>) -> Vec<String> {
    a.iter()
        .filter(|(k, n)| b.get(*k).copied().unwrap_or(0) < **n)
        .map(|(k, n)| format!("{n}× {k}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_both_sides_end_in_the_fault_free_state() {
    let (companies, contacts) = size();
    let clean = Campaign::new().await;
    let clean_tally = clean.sync_all(None).await;
    assert_eq!(clean_tally.runs_with_failures, 0, "{clean_tally:?}");
    let reference = clean.world().await;
    let (ref_hs, ref_ac) = (
        state(&reference.hubspot, System::HubSpot),
        state(&reference.accelo, System::Accelo),
    );
    let ref_links = reference.links.len();
    eprintln!(
        "fault matrix: {companies} companies, {contacts} contacts, fault-free: {} runs, \
         {} HubSpot and {} Accelo records, {ref_links} links",
        clean_tally.runs,
        reference.hubspot.len(),
        reference.accelo.len()
    );
    clean.finish().await;

    for seed in fault_seeds() {
        let started = std::time::Instant::now();
        let c = Campaign::new().await;
        let tally = c.sync_all(Some(&faults(seed))).await;
        let world = c.world().await;
        let (hs, ac) = (
            state(&world.hubspot, System::HubSpot),
            state(&world.accelo, System::Accelo),
        );
        // Lost: in the fault-free state, not here. Duplicated or wrong: here, not there.
        let lost: Vec<String> = missing(&ref_hs, &hs)
            .into_iter()
            .chain(missing(&ref_ac, &ac))
            .collect();
        let extra: Vec<String> = missing(&hs, &ref_hs)
            .into_iter()
            .chain(missing(&ac, &ref_ac))
            .collect();
        assert!(
            lost.is_empty() && extra.is_empty(),
            "fault seed {seed}: lost or different {lost:#?}\nduplicated or different {extra:#?}"
        );
        assert_eq!(world.links.len(), ref_links, "fault seed {seed}");
        assert_eq!(c.store().open_intents().await.unwrap(), Vec::new());
        let injected: u64 = tally.faults.values().sum();
        assert!(injected > 0, "fault seed {seed}: no fault was injected");
        // The figures of docs/RELIABILITY.md.
        eprintln!(
            "fault matrix: {companies} companies, {contacts} contacts, fault seed {seed}: \
             {} runs ({} with failures, {} of them stopped as a whole; {} failed records, {} \
             partly written, {} creates deferred), \
             {injected} faults injected {:?}; lost 0, duplicates 0, final state equal to the \
             fault-free run ({:.1?})",
            tally.runs,
            tally.runs_with_failures,
            tally.stopped_runs,
            tally.failed_records,
            tally.partly_written,
            tally.deferred,
            tally.faults,
            started.elapsed()
        );
        c.finish().await;
    }
}
