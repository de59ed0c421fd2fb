//! Guardrails (B21): a run that would create, update or clear more than the configured limits
//! stops before its first write and says which limit, with the numbers.
//!
//! What is counted, from the plan:
//! - `max_create` — `create` actions;
//! - `max_update` — `update` actions plus `link` actions that change fields;
//! - `max_clear` — field changes whose new value is blank while the target had one;
//! - `max_share` — the share of the target's *existing* records (in the run's scope) that the
//!   run would change (update, link with changes, or clear). Creates are left to `max_create`:
//!   the first pull into an empty system creates everything and is the normal case. Checked only
//!   for bulk runs, where the scope is the whole target; for one company or one contact the
//!   share says nothing.

use std::fmt;

use tandem_core::plan::{Op, Plan};
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
    /// Existing records whose fields change.
    pub updates: u64,
    /// Field values cleared.
    pub clears: u64,
    /// Existing records changed in any way (updated or cleared).
    pub changed_records: u64,
}

impl Impact {
    /// Counts `plan`.
    pub fn of(plan: &Plan) -> Impact {
        let mut i = Impact::default();
        for a in &plan.actions {
            match a.op {
                Op::Create => i.creates += 1,
                Op::Update | Op::Link if !a.changes.is_empty() => {
                    i.updates += 1;
                    i.changed_records += 1;
                    i.clears += a
                        .changes
                        .iter()
                        .filter(|c| c.to.is_none() && c.from.is_some())
                        .count() as u64;
                }
                _ => {}
            }
        }
        i
    }
}

/// Checks `plan` against `limits`. `target_records` is the number of existing target records in
/// the run's scope, given for bulk runs only (enables `max_share`).
pub fn check(plan: &Plan, limits: &Guardrails, target_records: Option<u64>) -> Result<(), Breach> {
    let i = Impact::of(plan);
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
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
        && i.updates > max
    {
        return Err(Breach {
            threshold: "max_update",
            would: format!("update {}", plural(i.updates, "record")),
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
                    "change {} of the {total} existing {} records ({:.1}%)",
                    i.changed_records,
                    plan.direction.target(),
                    share * 100.0
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
        ]);
        assert_eq!(
            Impact::of(&p),
            Impact {
                creates: 2,
                updates: 2,
                clears: 1,
                changed_records: 2
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

        let limits = Guardrails {
            max_update: Some(1),
            ..Guardrails::default()
        };
        assert_eq!(
            check(&p, &limits, None).unwrap_err().threshold,
            "max_update"
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
        // 2 of 4 = 50%: at the limit, allowed; 2 of 3 is over.
        assert!(check(&p, &limits, Some(4)).is_ok());
        let b = check(&p, &limits, Some(3)).unwrap_err();
        assert_eq!(b.threshold, "max_share");
        assert!(
            b.to_string()
                .contains("change 2 of the 3 existing accelo records (66.7%)")
        );
        assert!(b.to_string().contains("the limit is 50.0%"));
        // Not a bulk run (no target count): share not checked; an empty target neither.
        assert!(check(&p, &limits, None).is_ok());
        assert!(check(&p, &limits, Some(0)).is_ok());
    }
}
