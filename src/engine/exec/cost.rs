//! What a plan will cost in requests to its target system, and how long that takes at the
//! system's budget: said before the first write, so that a run that will take hours says so
//! instead of seeming to stall (Accelo allows 5,000 requests an hour).
//!
//! An estimate from the plan alone: per record the connector's
//! [`Connector::write_requests`] for one-record-per-call systems, per batch for batching ones
//! (HubSpot: 100 records a request). Reads are done by then and not counted; lookups after a
//! lost answer and retries are not foreseeable and not counted either.

use std::collections::BTreeMap;
use std::time::Duration;

use super::progress::left_words;
use crate::connect::{Changes, Connector};
use tandem_core::model::{Object, System};
use tandem_core::plan::render::thousands;
use tandem_core::plan::{Op, Plan};

/// The write requests of a plan and the time they take at the target's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    /// The target system.
    pub system: System,
    /// Write requests, about.
    pub requests: u64,
    /// The budget: requests per window.
    pub budget_requests: u32,
    /// The budget's window.
    pub budget_window: Duration,
}

impl Cost {
    /// How long the requests take when the budget is what bounds them.
    pub fn duration(&self) -> Duration {
        if self.budget_requests == 0 || self.requests <= u64::from(self.budget_requests) {
            return Duration::ZERO;
        }
        // Whole windows spent, the last one only as far as its requests go: a budget starts
        // full, so the first window's worth goes at once.
        let windows = (self.requests - u64::from(self.budget_requests)) as f64
            / f64::from(self.budget_requests);
        self.budget_window.mul_f64(windows)
    }

    /// The sentence a person reads before the run writes, when the budget makes the run take a
    /// minute or more: `this pull sends about 12,400 requests to accelo; at 5,000 an hour that
    /// takes about 1 h 30 min`.
    pub fn sentence(&self, run: &str) -> Option<String> {
        let d = self.duration();
        if d < Duration::from_secs(60) {
            return None;
        }
        Some(format!(
            "this {run} sends about {} requests to {}; at {} {} that takes about {}",
            thousands(self.requests),
            self.system,
            thousands(u64::from(self.budget_requests)),
            per(self.budget_window),
            left_words(d)
        ))
    }
}

/// Estimates `plan`'s write requests to `target`.
pub fn estimate(plan: &Plan, target: &dyn Connector) -> Cost {
    let batch = target.batch_size().max(1) as u64;
    let mut requests = 0u64;
    // Batching systems: records per (object, create or not), then per batch.
    let mut batched: BTreeMap<(Object, bool), u64> = BTreeMap::new();
    for a in &plan.actions {
        let create = match a.op {
            Op::Create => true,
            Op::Update | Op::Link if !a.changes.is_empty() => false,
            _ => continue,
        };
        // Only the writes to the plan's target (an incremental plan may write back too).
        if a.target.system != target.system() {
            continue;
        }
        if batch > 1 {
            *batched.entry((a.object, create)).or_default() += 1;
        } else {
            let changes: Changes = a
                .changes
                .iter()
                .map(|c| (c.field.clone(), c.to.clone()))
                .collect();
            requests += target.write_requests(a.object, create, &changes);
        }
    }
    requests += batched.values().map(|n| n.div_ceil(batch)).sum::<u64>();
    let budget = target.budget();
    Cost {
        system: target.system(),
        requests,
        budget_requests: budget.requests,
        budget_window: budget.per,
    }
}

/// `an hour`, `every 10 seconds`.
fn per(window: Duration) -> String {
    match window.as_secs() {
        3600 => "an hour".into(),
        86_400 => "a day".into(),
        60 => "a minute".into(),
        1 => "a second".into(),
        s => format!("every {s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(requests: u64) -> Cost {
        Cost {
            system: System::Accelo,
            requests,
            budget_requests: 5000,
            budget_window: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_run_within_the_budget_says_nothing_and_a_longer_one_says_how_long() {
        assert_eq!(cost(4000).sentence("pull"), None);
        assert_eq!(cost(5000).duration(), Duration::ZERO);
        assert_eq!(cost(12_500).duration(), Duration::from_secs(5400));
        assert_eq!(
            cost(12_500).sentence("pull").as_deref(),
            Some(
                "this pull sends about 12,500 requests to accelo; at 5,000 an hour that takes \
                 about 1 h 30 min"
            )
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(left_words(Duration::from_secs(7200)), "2 h");
        assert_eq!(left_words(Duration::from_secs(61)), "2 min");
    }
}
