//! Guardrails (B21): a run that would create records, or overwrite or clear existing values,
//! beyond the configured limits stops before its first write and says which limit, with the
//! numbers.
//!
//! What can destroy data is counted apart from what cannot: a field change either *overwrites*
//! a value the target holds with another one, *clears* it, or *fills* a field that is empty.
//! Filling loses nothing, so it counts against no limit (the first push after the first pull
//! mostly fills HubSpot fields Accelo knew and HubSpot did not). From the plan:
//! - `max_create` — `create` actions;
//! - `max_update` — existing records (`update`, or `link` with changes) with at least one value
//!   overwritten or cleared;
//! - `max_clear` — field values cleared;
//! - `max_share` — those same records as a share of the target's *existing* records in the run's
//!   scope. Creates are left to `max_create`: the first pull into an empty system creates
//!   everything and is the normal case. Checked only for bulk runs, where the scope is the whole
//!   target; for one company or one contact the share says nothing.
//!
//! A breach's message gives the numbers of each kind, the filled ones included.

use std::fmt;

use tandem_core::plan::{Effect, Op, Plan};
use tandem_core::rules::config::Guardrails;

/// A limit a plan exceeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The setting: `max_create`, `max_update`, `max_clear` or `max_share`.
    pub threshold: &'static str,
    /// What the run would do, in words (`create 6000 records`).
    pub would: String,
    /// The configured limit, in words (`5000`, `50%`).
    pub limit: String,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guardrail `{}` stopped the run before any write: it would {}, the limit is {} \
             (`sync.guardrails.{}` in tandem.yaml; `--force` runs it anyway)",
            self.threshold, self.would, self.limit, self.threshold
        )
    }
}

/// What a plan would do to the target, as the guardrails count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Impact {
    /// Records created.
    pub creates: u64,
    /// Existing records with at least one value overwritten or cleared.
    pub changed_records: u64,
    /// Existing records whose changes only fill empty fields.
    pub filled_records: u64,
    /// Field values replaced by another value.
    pub overwrites: u64,
    /// Field values cleared.
    pub clears: u64,
    /// Empty fields filled.
    pub fills: u64,
}

impl Impact {
    /// Counts `plan`.
    pub fn of(plan: &Plan) -> Impact {
        let mut i = Impact::default();
        for a in &plan.actions {
            match a.op {
                Op::Create => i.creates += 1,
                Op::Update | Op::Link if !a.changes.is_empty() => {
                    let mut destructive = false;
                    let mut filled = false;
                    for c in &a.changes {
                        match Effect::of(c) {
                            Effect::Fill => {
                                i.fills += 1;
                                filled = true;
                            }
                            Effect::Overwrite => {
                                i.overwrites += 1;
                                destructive = true;
                            }
                            Effect::Clear => {
                                i.clears += 1;
                                destructive = true;
                            }
                            Effect::None => {}
                        }
                    }
                    if destructive {
                        i.changed_records += 1;
                    } else if filled {
                        i.filled_records += 1;
                    }
                }
                _ => {}
            }
        }
        i
    }

    /// The breakdown a breach of `max_update` or `max_share` gives: `12 values overwritten,
    /// 1 cleared; 116 other records only get empty fields filled, which no limit counts`.
    fn breakdown(&self) -> String {
        let mut text = format!(
            "{} overwritten, {} cleared",
            plural(self.overwrites, "value"),
            self.clears
        );
        match self.filled_records {
            0 => {}
            1 => text
                .push_str("; 1 other record only gets empty fields filled, which no limit counts"),
            n => text.push_str(&format!(
                "; {n} other records only get empty fields filled, which no limit counts"
            )),
        }
        text
    }
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Checks `plan` against `limits`. `target_records` is the number of existing target records in
/// the run's scope, given for bulk runs only (enables `max_share`).
pub fn check(plan: &Plan, limits: &Guardrails, target_records: Option<u64>) -> Result<(), Breach> {
    let i = Impact::of(plan);
    if let Some(max) = limits.max_create
        && i.creates > max
    {
        return Err(Breach {
            threshold: "max_create",
            would: format!("create {}", plural(i.creates, "record")),
            limit: max.to_string(),
        });
    }
    if let Some(max) = limits.max_update
        && i.changed_records > max
    {
        return Err(Breach {
            threshold: "max_update",
            would: format!(
                "overwrite or clear values of {} ({})",
                plural(i.changed_records, "existing record"),
                i.breakdown()
            ),
            limit: max.to_string(),
        });
    }
    if let Some(max) = limits.max_clear
        && i.clears > max
    {
        return Err(Breach {
            threshold: "max_clear",
            would: format!("clear {}", plural(i.clears, "field value")),
            limit: max.to_string(),
        });
    }
    if let (Some(max), Some(total)) = (limits.max_share, target_records)
        && total > 0
    {
        let share = i.changed_records as f64 / total as f64;
        if share > max {
            return Err(Breach {
                threshold: "max_share",
                would: format!(
                    "overwrite or clear values of {} of the {total} existing {} records \
                     ({:.1}%: {})",
                    i.changed_records,
                    plan.direction.target(),
                    share * 100.0,
                    i.breakdown()
                ),
                limit: format!("{:.1}%", max * 100.0),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_core::model::{Direction, Object, System};
    use tandem_core::plan::{Action, Change, RecordRef, Summary};

    fn action(seq: u32, op: Op, changes: Vec<Change>) -> Action {
        Action {
            seq,
            object: Object::Company,
            op,
            source: RecordRef {
                system: System::HubSpot,
                id: Some(seq.to_string()),
            },
            target: RecordRef {
                system: System::Accelo,
                id: (op != Op::Create).then(|| format!("a{seq}")),
            },
            changes,
            reason: String::new(),
            depends_on: None,
            last_synced: None,
            target_company_id: None,
            affiliation_id: None,
            replaces_twin: None,
        }
    }

    fn change(from: Option<&str>, to: Option<&str>) -> Change {
        Change {
            field: "name".into(),
            from: from.map(str::to_string),
            to: to.map(str::to_string),
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            direction: Direction::Pull,
            initiator: System::HubSpot,
            rules_hash: String::new(),
            mode: tandem_core::plan::Mode::Bulk,
            summary: Summary::of(&actions),
            actions,
        }
    }

    #[test]
    fn counts_and_limits() {
        let p = plan(vec![
            action(1, Op::Create, vec![change(None, Some("a"))]),
            action(2, Op::Create, vec![]),
            action(3, Op::Update, vec![change(Some("x"), None)]),
            action(4, Op::Link, vec![]),
            action(5, Op::Link, vec![change(Some("x"), Some("y"))]),
            action(6, Op::Noop, vec![]),
            action(
                7,
                Op::Update,
                vec![change(None, Some("z")), change(Some(" "), Some("w"))],
            ),
            action(
                8,
                Op::Link,
                vec![change(Some("x"), Some("y")), change(None, Some("v"))],
            ),
        ]);
        assert_eq!(
            Impact::of(&p),
            Impact {
                creates: 2,
                changed_records: 3,
                filled_records: 1,
                overwrites: 2,
                clears: 1,
                fills: 3,
            }
        );
        let none = Guardrails::default();
        assert!(check(&p, &none, Some(4)).is_ok());

        let limits = Guardrails {
            max_create: Some(1),
            ..Guardrails::default()
        };
        let b = check(&p, &limits, None).unwrap_err();
        assert_eq!(b.threshold, "max_create");
        assert!(b.to_string().contains("create 2 records, the limit is 1"));

        // Filling blanks counts against no limit: 3 records overwrite or clear, 1 only fills.
        let limits = Guardrails {
            max_update: Some(3),
            ..Guardrails::default()
        };
        assert!(check(&p, &limits, None).is_ok());
        let limits = Guardrails {
            max_update: Some(2),
            ..Guardrails::default()
        };
        let b = check(&p, &limits, None).unwrap_err();
        assert_eq!(b.threshold, "max_update");
        assert!(
            b.to_string().contains(
                "it would overwrite or clear values of 3 existing records (2 values overwritten, \
                 1 cleared; 1 other record only gets empty fields filled, which no limit \
                 counts), the limit is 2"
            ),
            "{b}"
        );

        let limits = Guardrails {
            max_clear: Some(0),
            ..Guardrails::default()
        };
        let b = check(&p, &limits, None).unwrap_err();
        assert_eq!(b.threshold, "max_clear");
        assert!(b.to_string().contains("clear 1 field value,"), "{b}");

        let limits = Guardrails {
            max_share: Some(0.5),
            ..Guardrails::default()
        };
        // 3 of 6 = 50%: at the limit, allowed; 3 of 5 is over.
        assert!(check(&p, &limits, Some(6)).is_ok());
        let b = check(&p, &limits, Some(5)).unwrap_err();
        assert_eq!(b.threshold, "max_share");
        assert!(
            b.to_string().contains(
                "overwrite or clear values of 3 of the 5 existing accelo records (60.0%: 2 \
                 values overwritten, 1 cleared; 1 other record only gets empty fields filled, \
                 which no limit counts)"
            ),
            "{b}"
        );
        assert!(b.to_string().contains("the limit is 50.0%"));
        // Not a bulk run (no target count): share not checked; an empty target neither.
        assert!(check(&p, &limits, None).is_ok());
        assert!(check(&p, &limits, Some(0)).is_ok());
    }

    #[test]
    fn a_plan_that_only_fills_empty_fields_passes_every_limit() {
        let p = plan(
            (1..=10)
                .map(|n| action(n, Op::Update, vec![change(None, Some("filled"))]))
                .collect(),
        );
        let strict = Guardrails {
            max_create: Some(0),
            max_update: Some(0),
            max_clear: Some(0),
            max_share: Some(0.0),
        };
        assert_eq!(check(&p, &strict, Some(10)), Ok(()));
    }
}
