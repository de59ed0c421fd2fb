//! The `Plan` types and their JSON form: a public contract (users' scripts read
//! `tandem plan --json`; keys are only ever added).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Direction, Object, Op, System};

/// How the planner decides the values of a linked pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A bulk run (Pull, Push, push one, B3): where the two sides differ, the initiator's value
    /// wins (per-field `precedence` overrides); values flow from the direction's source only.
    #[default]
    Bulk,
    /// The automatic sync (B11, B12, B16): per field, the side that changed since the link's
    /// `last_synced` values wins — in either direction; a field neither side changed is left
    /// alone (an echo of Tandem's own write changes nothing); when both changed, the newer
    /// record (`updated_at`) wins, ties go to the initiator.
    Incremental,
}

impl Mode {
    /// True for [`Mode::Bulk`].
    pub fn is_bulk(&self) -> bool {
        *self == Mode::Bulk
    }

    /// `bulk` or `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bulk => "bulk",
            Mode::Incremental => "incremental",
        }
    }
}

/// The key of a field in [`crate::model::Link::last_synced`]: `hubspot:name`,
/// `accelo:affiliation.email`, `accelo:status`.
pub fn synced_key(system: System, field: &str) -> String {
    format!("{system}:{field}")
}

/// What a run will do, in execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `pull` (HubSpot → Accelo) or `push` (Accelo → HubSpot).
    pub direction: Direction,
    /// The system whose values win where both sides differ (B3).
    pub initiator: System,
    /// Hash of the compiled rule set the plan was made with.
    pub rules_hash: String,
    /// How linked pairs were planned (`bulk` is left out of the JSON).
    #[serde(default, skip_serializing_if = "Mode::is_bulk")]
    pub mode: Mode,
    /// Count of actions per operation.
    pub summary: Summary,
    /// Every decision, in a stable order: companies before the contacts that depend on them.
    pub actions: Vec<Action>,
}

/// Count of actions per operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Records to be created on the target side.
    pub create: usize,
    /// Linked (or matched) records whose fields will change.
    pub update: usize,
    /// Records matched by a dedup key that will be linked (possibly with changes).
    pub link: usize,
    /// Records already in step.
    pub noop: usize,
    /// Records left alone, each with a reason.
    pub skip: usize,
    /// Of the links, those that also change fields of the matched record.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link_with_changes: usize,
    /// Values of matched records that those links replace with another value (filling an
    /// empty field is not counted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link_overwrites: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    /// Counts the operations of `actions`.
    pub fn of(actions: &[Action]) -> Summary {
        let mut s = Summary::default();
        for a in actions {
            match a.op {
                Op::Create => s.create += 1,
                Op::Update => s.update += 1,
                Op::Link => {
                    s.link += 1;
                    if !a.changes.is_empty() {
                        s.link_with_changes += 1;
                    }
                    s.link_overwrites += a
                        .changes
                        .iter()
                        .filter(|c| Effect::of(c) == Effect::Overwrite)
                        .count();
                }
                Op::Noop => s.noop += 1,
                Op::Skip => s.skip += 1,
            }
        }
        s
    }

    /// The counts in words: `3 to create, 0 to update, 69 to link (12 of them also change
    /// fields, overwriting 15 values), 40 unchanged, 2 skipped`.
    pub fn text(&self) -> String {
        format!(
            "{} to create, {} to update, {} to link{}, {} unchanged, {} skipped",
            self.create,
            self.update,
            self.link,
            link_detail(self.link_with_changes, self.link_overwrites, true),
            self.noop,
            self.skip
        )
    }
}

/// What links also change, in words, for a plan (`planned`) or a run: ` (12 of them also
/// change fields, overwriting 15 values)`; empty when no link changes anything.
pub fn link_detail(with_changes: usize, overwrites: usize, planned: bool) -> String {
    if with_changes == 0 {
        return String::new();
    }
    let values = |n: usize| format!("{n} value{}", if n == 1 { "" } else { "s" });
    let s = if with_changes == 1 { "s" } else { "" };
    match (planned, overwrites) {
        (true, 0) => format!(" ({with_changes} of them also fill{s} empty fields)"),
        (true, n) => format!(
            " ({with_changes} of them also change{s} fields, overwriting {})",
            values(n)
        ),
        (false, 0) => format!(" ({with_changes} of them with empty fields filled)"),
        (false, n) => format!(
            " ({with_changes} of them with fields changed, {} overwritten)",
            values(n)
        ),
    }
}

/// What one field change does to the value the target holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// An empty field gets a value: nothing is lost.
    Fill,
    /// A value is replaced by another one.
    Overwrite,
    /// A value is removed.
    Clear,
    /// Nothing changes (blank to blank).
    None,
}

impl Effect {
    /// What `c` does.
    pub fn of(c: &Change) -> Effect {
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match (present(&c.from), present(&c.to)) {
            (false, true) => Effect::Fill,
            (true, true) => Effect::Overwrite,
            (true, false) => Effect::Clear,
            (false, false) => Effect::None,
        }
    }
}

/// A record on one side of an action. `id` is `None` for a record that does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRef {
    /// The system.
    pub system: System,
    /// The record id, if the record exists.
    pub id: Option<String>,
}

/// One field change on the target: `from` is the target's current value, `to` the new one
/// (`None` = blank / clear).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The target-side field: a HubSpot property name, or an Accelo write key
    /// (`affiliation.email`, `postal_address.city`, `status`; see the rules' catalogue).
    pub field: String,
    /// Current target value.
    pub from: Option<String>,
    /// Value after the run.
    pub to: Option<String>,
}

/// One decision about one source record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Position in the plan, from 1.
    pub seq: u32,
    /// Company or contact.
    pub object: Object,
    /// What happens.
    pub op: Op,
    /// The record the decision is about.
    pub source: RecordRef,
    /// The record written to (id `None` for a create).
    pub target: RecordRef,
    /// Field changes on the target, in mapping order.
    pub changes: Vec<Change>,
    /// Why, in words a user understands (`matched by domain`, `criteria not met: …`).
    pub reason: String,
    /// `seq` of the action this one needs first: a contact's company, or — for the second
    /// action of a linked pair written in both directions (incremental mode) — the first one.
    pub depends_on: Option<u32>,
    /// What the link's `last_synced` must hold once this action succeeds (the whole map; see
    /// the module docs). On create, link and update actions; on a no-op only when the link's
    /// map must change (`None` there = the link is already right); never on a skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced: Option<BTreeMap<String, String>>,
    /// For contacts: the id of the contact's company in the action's *target* system, when it is
    /// known at plan time (the company is linked, or matched in this plan). `None` with
    /// `depends_on` set: the company is created by that action first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_company_id: Option<String>,
    /// For contacts: the Accelo affiliation of the pair, when known at plan time (the Accelo
    /// record's `affiliation.id`, else the link's). The link stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affiliation_id: Option<String>,
    /// On a create or a link: the id of the source's former twin, which no longer exists,
    /// whose link this action replaces (`when_twin_missing: recreate` or `unlink` in the rule
    /// file). The executor removes that link just before it writes the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_twin: Option<String>,
}

impl Action {
    /// The id of the HubSpot and the Accelo record of the action, when they exist.
    pub fn ids(&self) -> (Option<&str>, Option<&str>) {
        let (h, a) = match self.source.system {
            System::HubSpot => (&self.source.id, &self.target.id),
            System::Accelo => (&self.target.id, &self.source.id),
        };
        (h.as_deref(), a.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_links_change_is_said_in_words() {
        assert_eq!(link_detail(0, 0, true), "");
        assert_eq!(
            link_detail(1, 1, true),
            " (1 of them also changes fields, overwriting 1 value)"
        );
        assert_eq!(
            link_detail(12, 15, true),
            " (12 of them also change fields, overwriting 15 values)"
        );
        assert_eq!(
            link_detail(3, 0, true),
            " (3 of them also fill empty fields)"
        );
        assert_eq!(
            link_detail(12, 15, false),
            " (12 of them with fields changed, 15 values overwritten)"
        );
        let change = |from: Option<&str>, to: Option<&str>| Change {
            field: "name".into(),
            from: from.map(str::to_string),
            to: to.map(str::to_string),
        };
        assert_eq!(Effect::of(&change(None, Some("a"))), Effect::Fill);
        assert_eq!(Effect::of(&change(Some(" "), Some("a"))), Effect::Fill);
        assert_eq!(Effect::of(&change(Some("a"), Some("b"))), Effect::Overwrite);
        assert_eq!(Effect::of(&change(Some("a"), None)), Effect::Clear);
        assert_eq!(Effect::of(&change(None, None)), Effect::None);
    }
}
