//! The planner: a pure, deterministic function from (program, direction, initiator, source
//! records, target records, links) to a [`Plan`]. No I/O, no clock, no randomness: the same
//! input always gives the same plan, whatever the order of the input slices.
//!
//! Per source record (companies before contacts, each in id order):
//! 1. linked (B10, B12) → update the twin field by field, or no-op when in step;
//! 2. not linked → criteria (B5, bypassed for a single pushed contact, B9) → no company, no
//!    import (B7) → duplicate detection by the ordered dedup keys (B6): exactly one unlinked
//!    match → link (with changes); several → skip `ambiguous match`; one that is already linked
//!    to another record (or matched earlier in this plan) → skip; none → create;
//! 3. a contact created on the other side depends on its company's action when that company is
//!    created or linked in the same plan; if its company is not synced at all it is skipped.
//!
//! Field values: the initiator's value wins where both sides have one (B3, per-field
//! `precedence` overrides), a blank never overwrites (B4, unless `blank: clear`), transforms run
//! on the source value, and the status goes through the direction's table (B15) — never
//! changing a target whose status already maps back to the source's.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use super::{Action, Change, Op, Plan, RecordRef, Summary};
use crate::compile::Program;
use crate::expr::{EvalError, RecordValue};
use crate::model::{Direction, Link, Object, Record, System};
use crate::rules::set::{BlankPolicy, ObjectRules};

/// What the planner plans from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// `pull` (HubSpot → Accelo) or `push` (Accelo → HubSpot).
    pub direction: Direction,
    /// The system that started the sync (its values win, B3). Usually the direction's source.
    pub initiator: System,
    /// Records of the direction's source system (both objects).
    pub source: &'a [Record],
    /// Records of the target system that may match or be linked (both objects).
    pub target: &'a [Record],
    /// Links between the two systems (both objects).
    pub links: &'a [Link],
    /// Skip the criteria (pushing a single contact, B9).
    pub bypass_criteria: bool,
}

/// Orders ids numerically when both are numbers, else as text (numbers first).
pub fn cmp_ids(a: &str, b: &str) -> Ordering {
    let num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    match (num(a), num(b)) {
        (true, true) => {
            let (x, y) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
            x.len()
                .cmp(&y.len())
                .then_with(|| x.cmp(y))
                .then_with(|| a.cmp(b))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

fn object_rank(o: Object) -> u8 {
    match o {
        Object::Company => 0,
        Object::Contact => 1,
    }
}

struct Ctx<'a, 'p> {
    program: &'a Program,
    input: &'a PlanInput<'a>,
    source_sys: System,
    target_sys: System,
    /// (object, target id) → record.
    targets: HashMap<(Object, &'a str), &'a Record>,
    /// (object, source id) → record.
    sources: HashMap<(Object, &'a str), &'a Record>,
    /// (object, source-side id) → link.
    links: HashMap<(Object, &'a str), &'a Link>,
    /// (object, target id) → the source id it is linked to.
    linked_targets: HashMap<(Object, &'a str), &'a str>,
    /// Dedup keys of the targets (shared by every pass).
    dedup_index: &'p mut DedupIndex<'a>,
    /// (object, target id) → source id that matched it earlier in this pass.
    claimed: Claims,
    /// The matches of the previous pass.
    prior: &'p Claims,
    /// (object, target id) → the first decision (seq) that looked at it as a dedup match.
    consulted: HashMap<(Object, String), u32>,
    /// A target was matched after an earlier decision had looked at it: another pass may
    /// decide differently.
    contested: bool,
    /// Company source id → seq of its create/link action in this plan.
    company_actions: HashMap<String, u32>,
}

/// Most planning passes (see [`plan`]).
const MAX_PASSES: usize = 4;

/// Plans `input` with `program`.
///
/// Duplicate detection looks at what the rest of the plan does to the target: a target matched
/// by a later record with a different key will be rewritten, so it is not a duplicate of an
/// earlier one. Planning therefore runs in passes, each seeded with the matches of the previous
/// one, until the matches are stable (at most 4; the last pass is the plan).
pub fn plan(program: &Program, input: &PlanInput<'_>) -> Plan {
    let mut prior: Claims = HashMap::new();
    let mut index = DedupIndex::default();
    let mut actions = Vec::new();
    for pass in 0..MAX_PASSES {
        let (result, claims, contested) = plan_pass(program, input, &prior, &mut index);
        actions = result;
        // Stable: nothing matched later was looked at earlier (first pass), or the matches
        // are those the pass started from.
        if (pass == 0 && !contested) || claims == prior {
            break;
        }
        prior = claims;
    }
    Plan {
        direction: input.direction,
        initiator: input.initiator,
        rules_hash: program.rules_hash().to_string(),
        summary: Summary::of(&actions),
        actions,
    }
}

type Claims = HashMap<(Object, String), String>;

/// Per object, per dedup key: key value → target ids (sorted). Computed once per plan.
#[derive(Default)]
struct DedupIndex<'a> {
    by_object: HashMap<Object, Vec<BTreeMap<String, Vec<&'a str>>>>,
}

impl<'a> DedupIndex<'a> {
    fn get(
        &mut self,
        program: &Program,
        input: &PlanInput<'a>,
        object: Object,
    ) -> &Vec<BTreeMap<String, Vec<&'a str>>> {
        let target_sys = input.direction.target();
        self.by_object.entry(object).or_insert_with(|| {
            let keys = program.object(object).map_or(0, |o| o.dedup.len());
            let mut index: Vec<BTreeMap<String, Vec<&'a str>>> = vec![BTreeMap::new(); keys];
            if keys == 0 {
                return index;
            }
            for t in input.target {
                if t.system != target_sys || t.object != object {
                    continue;
                }
                let rv = RecordValue::new(t);
                for (idx, map) in index.iter_mut().enumerate() {
                    if let Ok(Some(k)) = program.dedup_key_with(object, idx, target_sys, &rv) {
                        map.entry(k).or_default().push(t.id.as_str());
                    }
                }
            }
            for map in &mut index {
                for ids in map.values_mut() {
                    ids.sort_by(|a, b| cmp_ids(a, b));
                    ids.dedup();
                }
            }
            index
        })
    }
}

fn plan_pass<'a, 'p>(
    program: &'a Program,
    input: &'a PlanInput<'a>,
    prior: &'p Claims,
    index: &'p mut DedupIndex<'a>,
) -> (Vec<Action>, Claims, bool) {
    let source_sys = input.direction.source();
    let target_sys = input.direction.target();
    let mut ctx = Ctx {
        program,
        input,
        source_sys,
        target_sys,
        targets: input
            .target
            .iter()
            .filter(|r| r.system == target_sys)
            .map(|r| ((r.object, r.id.as_str()), r))
            .collect(),
        sources: input
            .source
            .iter()
            .filter(|r| r.system == source_sys)
            .map(|r| ((r.object, r.id.as_str()), r))
            .collect(),
        links: input
            .links
            .iter()
            .map(|l| ((l.object, l.id_on(source_sys)), l))
            .collect(),
        linked_targets: input
            .links
            .iter()
            .map(|l| ((l.object, l.id_on(target_sys)), l.id_on(source_sys)))
            .collect(),
        dedup_index: index,
        claimed: HashMap::new(),
        prior,
        consulted: HashMap::new(),
        contested: false,
        company_actions: HashMap::new(),
    };

    let mut sources: Vec<&Record> = input
        .source
        .iter()
        .filter(|r| r.system == source_sys && program.object(r.object).is_some())
        .collect();
    sources.sort_by(|a, b| {
        object_rank(a.object)
            .cmp(&object_rank(b.object))
            .then_with(|| cmp_ids(&a.id, &b.id))
    });
    sources.dedup_by(|a, b| a.object == b.object && a.id == b.id);

    let mut actions = Vec::with_capacity(sources.len());
    for s in sources {
        let seq = u32::try_from(actions.len() + 1).unwrap_or(u32::MAX);
        let action = ctx.decide(seq, s);
        if s.object == Object::Company && matches!(action.op, Op::Create | Op::Link) {
            ctx.company_actions.insert(s.id.clone(), seq);
        }
        actions.push(action);
    }
    (actions, ctx.claimed, ctx.contested)
}

impl<'a> Ctx<'a, '_> {
    fn action(&self, seq: u32, s: &Record, op: Op, reason: impl Into<String>) -> Action {
        Action {
            seq,
            object: s.object,
            op,
            source: RecordRef {
                system: self.source_sys,
                id: Some(s.id.clone()),
            },
            target: RecordRef {
                system: self.target_sys,
                id: None,
            },
            changes: Vec::new(),
            reason: reason.into(),
            depends_on: None,
        }
    }

    fn decide(&mut self, seq: u32, s: &'a Record) -> Action {
        let Some(rules) = self.program.object(s.object) else {
            return self.action(
                seq,
                s,
                Op::Skip,
                format!("no rules for {}", s.object.plural()),
            );
        };
        let rv = RecordValue::new(s);
        let direction = self.input.direction;

        // 1. Linked: update in place.
        if let Some(link) = self.links.get(&(s.object, s.id.as_str())).copied() {
            let tid = link.id_on(self.target_sys);
            let Some(t) = self.targets.get(&(s.object, tid)).copied() else {
                let mut a = self.action(
                    seq,
                    s,
                    Op::Skip,
                    format!("linked {} {} `{tid}` not found", self.target_sys, s.object),
                );
                a.target.id = Some(tid.to_string());
                return a;
            };
            let mut a = match self.changes(rules, s, &rv, Some(t)) {
                Ok(changes) if changes.is_empty() => self.action(seq, s, Op::Noop, "in step"),
                Ok(changes) => {
                    let n = changes.len();
                    let mut a = self.action(
                        seq,
                        s,
                        Op::Update,
                        format!(
                            "linked; {n} field{} differ{}",
                            if n == 1 { "" } else { "s" },
                            if n == 1 { "s" } else { "" }
                        ),
                    );
                    a.changes = changes;
                    a
                }
                Err(e) => self.action(seq, s, Op::Skip, format!("rule failed: {e}")),
            };
            a.target.id = Some(tid.to_string());
            return a;
        }

        // 2. Not linked: criteria.
        if !self.input.bypass_criteria {
            match self.program.criteria_with(s.object, direction, &rv) {
                Ok(true) => {}
                Ok(false) => {
                    let what = rules
                        .criteria(direction)
                        .map(|e| format!(": {}", e.source().trim()))
                        .unwrap_or_default();
                    return self.action(
                        seq,
                        s,
                        Op::Skip,
                        format!("criteria not met ({direction}{what})"),
                    );
                }
                Err(e) => {
                    return self.action(seq, s, Op::Skip, format!("criteria failed: {e}"));
                }
            }
        }
        // B7.
        if direction == Direction::Pull
            && s.object == Object::Contact
            && rules.requires_company
            && s.company_id.is_none()
        {
            return self.action(seq, s, Op::Skip, "contact has no company (B7)");
        }

        // 3. Duplicate detection.
        for (idx, key) in rules.dedup.iter().enumerate() {
            let value = match key.expr(self.source_sys).eval_text(&rv, None) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    return self.action(
                        seq,
                        s,
                        Op::Skip,
                        format!("dedup key `{}` failed: {e}", key.name),
                    );
                }
            };
            let matches: Vec<&'a str> = self
                .dedup_index
                .get(self.program, self.input, s.object)
                .get(idx)
                .and_then(|m| m.get(&value))
                .cloned()
                .unwrap_or_default();
            for tid in &matches {
                self.consulted
                    .entry((s.object, tid.to_string()))
                    .or_insert(seq);
            }
            // A linked target does not count when its own source has a different key: this plan
            // rewrites it to mirror that source, so it is not a duplicate.
            let candidates: Vec<&'a str> = matches
                .into_iter()
                .filter(|tid| self.linked_target_keeps_key(s.object, idx, tid, &value, &s.id))
                .collect();
            match candidates.as_slice() {
                [] => continue,
                [tid] => {
                    let tid = *tid;
                    if let Some(other) = self.linked_targets.get(&(s.object, tid)) {
                        // The twin is already synced with another record: creating would
                        // duplicate it, linking would steal it.
                        let mut a = self.action(
                            seq,
                            s,
                            Op::Skip,
                            format!(
                                "matched {} {} `{tid}` by {} `{value}`, which is already linked to {} `{other}`",
                                self.target_sys, s.object, key.name, self.source_sys
                            ),
                        );
                        a.target.id = Some(tid.to_string());
                        return a;
                    }
                    if let Some(other) = self.owner(s.object, tid, &s.id).map(str::to_string) {
                        let mut a = self.action(
                            seq,
                            s,
                            Op::Skip,
                            format!(
                                "matched {} {} `{tid}` by {} `{value}`, already matched by {} `{other}`",
                                self.target_sys, s.object, key.name, self.source_sys
                            ),
                        );
                        a.target.id = Some(tid.to_string());
                        return a;
                    }
                    let Some(t) = self.targets.get(&(s.object, tid)).copied() else {
                        continue;
                    };
                    let claim = (s.object, tid.to_string());
                    if self.consulted.get(&claim).is_some_and(|first| *first < seq) {
                        self.contested = true;
                    }
                    self.claimed.insert(claim, s.id.clone());
                    let mut a = match self.changes(rules, s, &rv, Some(t)) {
                        Ok(changes) => {
                            let mut a = self.action(
                                seq,
                                s,
                                Op::Link,
                                format!("matched by {} `{value}`", key.name),
                            );
                            a.changes = changes;
                            a
                        }
                        Err(e) => self.action(seq, s, Op::Skip, format!("rule failed: {e}")),
                    };
                    a.target.id = Some(tid.to_string());
                    return a;
                }
                many => {
                    let ids = many
                        .iter()
                        .map(|id| format!("`{id}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return self.action(
                        seq,
                        s,
                        Op::Skip,
                        format!(
                            "ambiguous match by {} `{value}`: {} {} {ids}",
                            key.name,
                            self.target_sys,
                            s.object.plural()
                        ),
                    );
                }
            }
        }

        // 4. Create. A contact needs its company on the other side.
        let mut depends_on = None;
        if s.object == Object::Contact
            && let Some(cid) = &s.company_id
        {
            let linked = self.links.contains_key(&(Object::Company, cid.as_str()));
            if !linked {
                match self.company_actions.get(cid) {
                    Some(seq) => depends_on = Some(*seq),
                    None => {
                        return self.action(
                            seq,
                            s,
                            Op::Skip,
                            format!("company {} `{cid}` is not synced", self.source_sys),
                        );
                    }
                }
            }
        }
        match self.changes(rules, s, &rv, None) {
            Ok(changes) => {
                let mut a = self.action(seq, s, Op::Create, "not linked, no duplicate found");
                a.changes = changes;
                a.depends_on = depends_on;
                a
            }
            Err(e) => self.action(seq, s, Op::Skip, format!("rule failed: {e}")),
        }
    }

    /// The source that `tid` belongs to, other than `me`: its link, a match earlier in this
    /// pass, or a match of the previous pass.
    fn owner(&self, object: Object, tid: &str, me: &str) -> Option<&str> {
        if let Some(id) = self.linked_targets.get(&(object, tid)) {
            return Some(id);
        }
        let key = (object, tid.to_string());
        if let Some(id) = self.claimed.get(&key) {
            return Some(id.as_str());
        }
        self.prior
            .get(&key)
            .map(String::as_str)
            .filter(|id| *id != me)
    }

    /// For a target matched by dedup key `idx` = `value`: true when it is unlinked and unmatched,
    /// or linked to (or matched earlier in this plan by) a source that has the same key value,
    /// no value for it, or is not part of this plan — only such a source with a *different*
    /// key rewrites the target's key.
    fn linked_target_keeps_key(
        &self,
        object: Object,
        idx: usize,
        tid: &str,
        value: &str,
        me: &str,
    ) -> bool {
        let owner = self.owner(object, tid, me);
        let Some(src_id) = owner else {
            return true;
        };
        let Some(src) = self.sources.get(&(object, src_id)) else {
            return true;
        };
        let rv = RecordValue::new(src);
        match self
            .program
            .dedup_key_with(object, idx, self.source_sys, &rv)
        {
            Ok(Some(k)) => k == value,
            // A blank never overwrites (B4): the target keeps its key.
            Ok(None) | Err(_) => true,
        }
    }

    /// Field changes from `s` onto `t` (`None` = a record to be created).
    fn changes(
        &self,
        rules: &ObjectRules,
        s: &Record,
        rv: &RecordValue,
        t: Option<&Record>,
    ) -> Result<Vec<Change>, EvalError> {
        let direction = self.input.direction;
        let mut out = Vec::new();
        for m in &rules.mappings {
            if !m.direction.flows(direction) {
                continue;
            }
            let Some(field) = m.target_field(direction) else {
                continue;
            };
            let src = self.program.source_value(m, direction, s, rv)?;
            let Some(t) = t else {
                if let Some(v) = src {
                    out.push(Change {
                        field: field.to_string(),
                        from: None,
                        to: Some(v),
                    });
                }
                continue;
            };
            let cur = m.read(t);
            let winner = m.precedence.winner(self.input.initiator);
            let to = if winner == self.source_sys {
                match (&src, &cur) {
                    (Some(v), c) if c.as_deref() != Some(v.as_str()) => Some(Some(v.clone())),
                    (None, Some(_)) if m.blank == BlankPolicy::Clear => Some(None),
                    _ => None,
                }
            } else {
                // The target wins; its blank is filled (a blank never wins, B4).
                match (&src, &cur) {
                    (Some(v), None) => Some(Some(v.clone())),
                    _ => None,
                }
            };
            if let Some(to) = to {
                out.push(Change {
                    field: field.to_string(),
                    from: cur,
                    to,
                });
            }
        }
        if let Some(status) = &rules.status
            && status.direction.flows(direction)
        {
            let field = status.target_field(direction).to_string();
            let src = status.read(s);
            let desired = src
                .as_deref()
                .and_then(|v| status.map(direction, v))
                .map(str::to_string);
            if let Some(desired) = desired {
                match t {
                    None => out.push(Change {
                        field,
                        from: None,
                        to: Some(desired),
                    }),
                    Some(t) => {
                        let cur = status.read(t);
                        // Already equivalent: the target's status maps back to the source's.
                        let equivalent = cur.as_deref() == Some(desired.as_str())
                            || cur
                                .as_deref()
                                .and_then(|c| status.map(opposite(direction), c))
                                == src.as_deref();
                        let source_wins = self.input.initiator == self.source_sys;
                        if !equivalent && (source_wins || cur.is_none()) {
                            out.push(Change {
                                field,
                                from: cur,
                                to: Some(desired),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::Pull => Direction::Push,
        Direction::Push => Direction::Pull,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_naturally() {
        let mut ids = vec!["10", "9", "b", "100", "a", "009"];
        ids.sort_by(|a, b| cmp_ids(a, b));
        assert_eq!(ids, vec!["009", "9", "10", "100", "a", "b"]);
    }
}
