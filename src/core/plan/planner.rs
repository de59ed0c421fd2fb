//! The planner: a pure, deterministic function from (program, direction, initiator, mode,
//! source records, target records, links) to a [`Plan`]. No I/O, no clock, no randomness: the
//! same input always gives the same plan, whatever the order of the input slices.
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
//! Field values of a pair, by [`Mode`]:
//! - **Bulk** (and any field whose `last_synced` value is unknown): the initiator's value wins
//!   where both sides have one (B3, per-field `precedence` overrides), a blank never overwrites
//!   (B4, unless `blank: clear`), transforms run on the source value, and the status goes through
//!   the direction's table (B15) — never changing a target whose status already maps back to the
//!   source's. Values flow from the direction's source to its target only.
//! - **Incremental** (linked pairs with known `last_synced` values): per field, the side whose
//!   value differs from its `last_synced` value changed. One side changed → its value is written
//!   to the other side (through that direction's transform / status table), even against the
//!   plan's direction: such writes form a second `update` action with source and target swapped
//!   (depending on the first when both exist). Neither changed → nothing (an echo of a value
//!   Tandem wrote is harmless). Both changed → a conflict: a field with a `precedence` other than
//!   `initiator` goes to that side; otherwise the newer record (`updated_at`) wins and a tie (or an
//!   unknown time) goes to the initiator; the reason says so (`conflict on name: both changed,
//!   hubspot edit newer`). A blank never overwrites in either direction (unless `blank: clear`).
//!
//! Every create / link / update action carries the `last_synced` map its link must hold once it
//! succeeds (see [`super`] for the keys), so the executor never evaluates a rule.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use super::types::{Action, Change, Mode, Plan, RecordRef, Summary, synced_key};
use crate::compile::Program;
use crate::compile::{BlankPolicy, Mapping, ObjectRules, Precedence, StatusMap, TwinMissing};
use crate::expr::{EvalError, RecordValue};
use crate::model::Op;
use crate::model::{Direction, Link, Object, Record, System};

/// What the planner plans from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// `pull` (HubSpot → Accelo) or `push` (Accelo → HubSpot).
    pub direction: Direction,
    /// The system that started the sync (its values win, B3). Usually the direction's source.
    pub initiator: System,
    /// How linked pairs are planned.
    pub mode: Mode,
    /// Records of the direction's source system (both objects).
    pub source: &'a [Record],
    /// Records of the target system that may match or be linked (both objects).
    pub target: &'a [Record],
    /// Links between the two systems (both objects).
    pub links: &'a [Link],
    /// Skip the criteria (pushing a single contact, B9).
    pub bypass_criteria: bool,
}

impl<'a> PlanInput<'a> {
    /// A bulk run in `direction`, started by its source system, with the criteria applied.
    pub fn bulk(
        direction: Direction,
        source: &'a [Record],
        target: &'a [Record],
        links: &'a [Link],
    ) -> PlanInput<'a> {
        PlanInput {
            direction,
            initiator: direction.source(),
            mode: Mode::Bulk,
            source,
            target,
            links,
            bypass_criteria: false,
        }
    }
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
    /// Company source id → seq of its create/link action in this plan and, for a link, the
    /// target company's id.
    company_actions: HashMap<String, (u32, Option<String>)>,
    /// The `last_synced` keys of every object's values.
    keys: &'p UnitKeys,
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
    let keys = unit_keys(program);
    let mut actions = Vec::new();
    for pass in 0..MAX_PASSES {
        let (result, claims, contested) = plan_pass(program, input, &prior, &mut index, &keys);
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
        mode: input.mode,
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
    keys: &'p UnitKeys,
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
        keys,
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
        let decided = ctx.decide(seq, s);
        if let Some(first) = decided.first()
            && s.object == Object::Company
            && matches!(first.op, Op::Create | Op::Link)
        {
            let target = (first.op == Op::Link)
                .then(|| first.target.id.clone())
                .flatten();
            ctx.company_actions.insert(s.id.clone(), (seq, target));
        }
        actions.extend(decided);
    }
    (actions, ctx.claimed, ctx.contested)
}

/// One synced value of a pair: a field mapping or the status mapping.
#[derive(Clone, Copy)]
enum Unit<'r> {
    Field(&'r Mapping),
    Status(&'r StatusMap),
}

impl Unit<'_> {
    /// The name shown in reasons.
    fn name(&self) -> &str {
        match self {
            Unit::Field(m) => &m.name,
            Unit::Status(_) => "status",
        }
    }

    /// The `last_synced` key of this value on `system`'s side.
    fn key(&self, system: System) -> String {
        match (self, system) {
            (Unit::Field(m), System::HubSpot) => synced_key(system, &m.hubspot),
            (Unit::Field(m), System::Accelo) => synced_key(
                system,
                &m.accelo.dotted().unwrap_or_else(|| m.accelo.source.clone()),
            ),
            (Unit::Status(s), System::HubSpot) => synced_key(system, &s.hubspot),
            (Unit::Status(_), System::Accelo) => synced_key(system, "status"),
        }
    }

    /// The raw value in `record` (on the record's side).
    fn read(&self, record: &Record) -> Option<String> {
        match self {
            Unit::Field(m) => m.read(record),
            Unit::Status(s) => s.read(record),
        }
    }

    /// True when values flow in `d`.
    fn flows(&self, d: Direction) -> bool {
        match self {
            Unit::Field(m) => m.direction.flows(d),
            Unit::Status(s) => s.direction.flows(d),
        }
    }

    /// The field written on the target side of `d` (`None`: not writable that way).
    fn target_field(&self, d: Direction) -> Option<String> {
        match self {
            Unit::Field(m) => m.target_field(d).map(str::to_string),
            Unit::Status(s) => Some(s.target_field(d).to_string()),
        }
    }
}

/// The synced values of `rules`: mappings in file order, then the status.
fn units(rules: &ObjectRules) -> Vec<Unit<'_>> {
    let mut units: Vec<Unit<'_>> = rules
        .mappings
        .iter()
        .filter(|m| m.direction.flows(Direction::Pull) || m.direction.flows(Direction::Push))
        .map(Unit::Field)
        .collect();
    if let Some(st) = &rules.status
        && (st.direction.flows(Direction::Pull) || st.direction.flows(Direction::Push))
    {
        units.push(Unit::Status(st));
    }
    units
}

/// Per object, the `last_synced` keys (HubSpot, Accelo) of each of [`units`], computed once.
type UnitKeys = HashMap<Object, Vec<(String, String)>>;

fn unit_keys(program: &Program) -> UnitKeys {
    program
        .objects()
        .map(|rules| {
            let keys = units(rules)
                .iter()
                .map(|u| (u.key(System::HubSpot), u.key(System::Accelo)))
                .collect();
            (rules.object, keys)
        })
        .collect()
}

/// Which way one value goes.
#[derive(Debug, Clone, PartialEq)]
enum Flow {
    /// Nothing is written.
    Keep,
    /// Written onto the direction's target.
    Forward(Change),
    /// Written onto the direction's source (incremental mode only).
    Reverse(Change),
}

/// Why a value flows, for the reason text.
#[derive(Debug, Clone, PartialEq)]
enum Why {
    /// No `last_synced` value: the bulk rule.
    Differs,
    /// Only one side changed since the last sync.
    Changed,
    /// Both changed: the text says how it was resolved.
    Conflict(String),
}

/// The field changes of a pair and the `last_synced` maps that go with them.
#[derive(Debug, Default)]
struct Fields {
    forward: Vec<Change>,
    reverse: Vec<Change>,
    /// (unit name, why) per forward / reverse change.
    why_forward: Vec<(String, Why)>,
    why_reverse: Vec<(String, Why)>,
    /// The map once every change is written.
    synced: BTreeMap<String, String>,
    /// The map once only the forward changes are written (only filled when there are reverse
    /// changes too).
    synced_forward: BTreeMap<String, String>,
    /// Incremental mode: every value of the pair had a known `last_synced` value and neither
    /// side changed any.
    unchanged: bool,
}

fn blank(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
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
            last_synced: None,
            target_company_id: None,
            affiliation_id: None,
            replaces_twin: None,
        }
    }

    /// The Accelo affiliation of a contact pair: the Accelo record's, else the link's.
    fn affiliation(&self, s: &Record, t: Option<&Record>, link: Option<&Link>) -> Option<String> {
        if s.object != Object::Contact {
            return None;
        }
        let accelo = if s.system == System::Accelo {
            Some(s)
        } else {
            t
        };
        accelo
            .and_then(|r| r.doc.get("affiliation"))
            .and_then(|a| a.get("id"))
            .and_then(crate::model::value_as_string)
            .or_else(|| link.and_then(|l| l.affiliation_id.clone()))
    }

    /// The contact's company on the target side, from its link or a link action of this plan.
    fn target_company(&self, s: &Record) -> Option<String> {
        let cid = s.company_id.as_deref()?;
        if s.object != Object::Contact {
            return None;
        }
        // A company with a create or link action in this plan is one whose dead link it replaces
        // (linked companies get neither): that action says where it is.
        if let Some((_, t)) = self.company_actions.get(cid) {
            return t.clone();
        }
        self.links
            .get(&(Object::Company, cid))
            .map(|l| l.id_on(self.target_sys).to_string())
    }

    fn decide(&mut self, seq: u32, s: &'a Record) -> Vec<Action> {
        let Some(rules) = self.program.object(s.object) else {
            return vec![self.action(
                seq,
                s,
                Op::Skip,
                format!("no rules for {}", s.object.plural()),
            )];
        };
        let rv = RecordValue::new(s);

        // 1. Linked: update in place. A link whose twin no longer exists goes on as the rule
        // file's `when_twin_missing` says: skip (in `linked`), or plan the record as unlinked.
        let mut replaces = None;
        if let Some(link) = self.links.get(&(s.object, s.id.as_str())).copied() {
            let tid = link.id_on(self.target_sys);
            if rules.when_twin_missing == TwinMissing::Skip
                || self.targets.contains_key(&(s.object, tid))
            {
                return self.linked(seq, rules, s, &rv, link);
            }
            replaces = Some(tid.to_string());
        }
        let out = self.unlinked(seq, rules, s, &rv, replaces.is_some());
        out.into_iter()
            .map(|mut a| {
                if matches!(a.op, Op::Create | Op::Link) {
                    a.replaces_twin = replaces.clone();
                    if let Some(old) = &replaces {
                        let how = match rules.when_twin_missing {
                            TwinMissing::Recreate => "when_twin_missing: recreate",
                            _ => "when_twin_missing: unlink",
                        };
                        a.reason = format!(
                            "{}; replaces the link to {} {} `{old}`, which no longer exists \
                             ({how})",
                            a.reason, self.target_sys, s.object
                        );
                    }
                }
                a
            })
            .collect()
    }

    /// An unlinked source record (or one whose dead link is being replaced: `replacing`):
    /// criteria, duplicate detection, create.
    fn unlinked(
        &mut self,
        seq: u32,
        rules: &'a ObjectRules,
        s: &'a Record,
        rv: &RecordValue,
        replacing: bool,
    ) -> Vec<Action> {
        let direction = self.input.direction;
        // 2. Not linked: criteria (not applied again to a record synced before whose twin is
        // re-created).
        let bypass = self.input.bypass_criteria
            || (replacing && rules.when_twin_missing == TwinMissing::Recreate);
        if !bypass {
            match self.program.criteria_with(s.object, direction, rv) {
                Ok(true) => {}
                Ok(false) => {
                    let what = rules
                        .criteria(direction)
                        .map(|e| format!(": {}", e.source().trim()))
                        .unwrap_or_default();
                    return vec![self.action(
                        seq,
                        s,
                        Op::Skip,
                        format!("criteria not met ({direction}{what})"),
                    )];
                }
                Err(e) => {
                    return vec![self.action(seq, s, Op::Skip, format!("criteria failed: {e}"))];
                }
            }
        }
        // B7.
        if direction == Direction::Pull
            && s.object == Object::Contact
            && rules.requires_company
            && s.company_id.is_none()
        {
            return vec![self.action(seq, s, Op::Skip, "contact has no company")];
        }

        // 3. Duplicate detection.
        for (idx, key) in rules.dedup.iter().enumerate() {
            let value = match key.expr(self.source_sys).eval_text(rv, None) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    return vec![self.action(
                        seq,
                        s,
                        Op::Skip,
                        format!("dedup key `{}` failed: {e}", key.name),
                    )];
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
                        return vec![a];
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
                        return vec![a];
                    }
                    let Some(t) = self.targets.get(&(s.object, tid)).copied() else {
                        continue;
                    };
                    let claim = (s.object, tid.to_string());
                    if self.consulted.get(&claim).is_some_and(|first| *first < seq) {
                        self.contested = true;
                    }
                    self.claimed.insert(claim, s.id.clone());
                    let mut a = match self.fields(rules, s, rv, Some(t), None) {
                        Ok(f) => {
                            let mut a = self.action(
                                seq,
                                s,
                                Op::Link,
                                format!("matched by {} `{value}`", key.name),
                            );
                            a.changes = f.forward;
                            a.last_synced = Some(f.synced);
                            a.target_company_id = self.target_company(s);
                            a.affiliation_id = self.affiliation(s, Some(t), None);
                            a
                        }
                        Err(e) => self.action(seq, s, Op::Skip, format!("rule failed: {e}")),
                    };
                    a.target.id = Some(tid.to_string());
                    return vec![a];
                }
                many => {
                    let ids = many
                        .iter()
                        .map(|id| format!("`{id}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return vec![self.action(
                        seq,
                        s,
                        Op::Skip,
                        format!(
                            "ambiguous match by {} `{value}`: {} {} {ids}",
                            key.name,
                            self.target_sys,
                            s.object.plural()
                        ),
                    )];
                }
            }
        }

        // 4. Create. A contact needs its company on the other side.
        let mut depends_on = None;
        let mut target_company_id = None;
        if s.object == Object::Contact
            && let Some(cid) = &s.company_id
        {
            if let Some(l) = self
                .links
                .get(&(Object::Company, cid.as_str()))
                .filter(|_| !self.company_actions.contains_key(cid))
            {
                target_company_id = Some(l.id_on(self.target_sys).to_string());
            } else {
                match self.company_actions.get(cid) {
                    Some((seq, target)) => {
                        depends_on = Some(*seq);
                        target_company_id = target.clone();
                    }
                    None => {
                        return vec![self.action(
                            seq,
                            s,
                            Op::Skip,
                            format!("company {} `{cid}` is not synced", self.source_sys),
                        )];
                    }
                }
            }
        }
        match self.fields(rules, s, rv, None, None) {
            Ok(f) => {
                let mut a = self.action(seq, s, Op::Create, "not linked, no duplicate found");
                a.changes = f.forward;
                a.last_synced = Some(f.synced);
                a.depends_on = depends_on;
                a.target_company_id = target_company_id;
                a.affiliation_id = self.affiliation(s, None, None);
                vec![a]
            }
            Err(e) => vec![self.action(seq, s, Op::Skip, format!("rule failed: {e}"))],
        }
    }

    /// A linked source record: update its twin (and, in incremental mode, the record itself
    /// with what changed on the twin's side), or no-op.
    fn linked(
        &self,
        seq: u32,
        rules: &ObjectRules,
        s: &Record,
        rv: &RecordValue,
        link: &Link,
    ) -> Vec<Action> {
        let tid = link.id_on(self.target_sys);
        let Some(t) = self.targets.get(&(s.object, tid)).copied() else {
            let mut a = self.action(
                seq,
                s,
                Op::Skip,
                format!(
                    "linked {target} {object} `{tid}` not found: it was deleted in {target} \
                     (or {target} was reset); it is not created again (set `when_twin_missing: \
                     recreate` in {file} to re-create it, or forget the link with `tandem links \
                     remove {source} {object} {id}`)",
                    target = self.target_sys,
                    source = self.source_sys,
                    object = s.object,
                    file = rules.file,
                    id = s.id,
                ),
            );
            a.target.id = Some(tid.to_string());
            return vec![a];
        };
        let f = match self.fields(rules, s, rv, Some(t), Some(link)) {
            Ok(f) => f,
            Err(e) => {
                let mut a = self.action(seq, s, Op::Skip, format!("rule failed: {e}"));
                a.target.id = Some(tid.to_string());
                return vec![a];
            }
        };
        let affiliation = self.affiliation(s, Some(t), Some(link));
        let mut out = Vec::new();
        if f.forward.is_empty() && f.reverse.is_empty() {
            let reason = if f.unchanged {
                "neither side changed since the last sync"
            } else {
                "both sides already agree"
            };
            let mut a = self.action(seq, s, Op::Noop, reason);
            a.target.id = Some(tid.to_string());
            a.affiliation_id = affiliation.clone();
            if f.synced != link.last_synced || a.affiliation_id != link.affiliation_id {
                a.last_synced = Some(f.synced);
            }
            return vec![a];
        }
        let both = !f.forward.is_empty() && !f.reverse.is_empty();
        if !f.forward.is_empty() {
            let mut a = self.action(
                seq,
                s,
                Op::Update,
                self.update_reason(self.source_sys, &f.forward, &f.why_forward),
            );
            a.target.id = Some(tid.to_string());
            a.changes = f.forward;
            a.last_synced = Some(if both {
                f.synced_forward
            } else {
                f.synced.clone()
            });
            a.target_company_id = self.target_company(s);
            a.affiliation_id = affiliation.clone();
            out.push(a);
        }
        if !f.reverse.is_empty() {
            let rseq = seq.saturating_add(u32::try_from(out.len()).unwrap_or(0));
            let reason = self.update_reason(self.target_sys, &f.reverse, &f.why_reverse);
            out.push(Action {
                seq: rseq,
                object: s.object,
                op: Op::Update,
                source: RecordRef {
                    system: self.target_sys,
                    id: Some(t.id.clone()),
                },
                target: RecordRef {
                    system: self.source_sys,
                    id: Some(s.id.clone()),
                },
                changes: f.reverse,
                reason,
                depends_on: both.then_some(seq),
                last_synced: Some(f.synced),
                target_company_id: s.company_id.clone(),
                affiliation_id: affiliation,
                replaces_twin: None,
            });
        }
        out
    }

    /// `linked; 2 fields differ` (bulk) or the incremental explanation: which side changed
    /// what, and how each conflict was resolved.
    fn update_reason(&self, winner: System, changes: &[Change], why: &[(String, Why)]) -> String {
        if self.input.mode == Mode::Bulk {
            let n = changes.len();
            return format!(
                "linked; {n} field{} differ{}",
                if n == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" }
            );
        }
        let mut parts = Vec::new();
        let changed: Vec<&str> = why
            .iter()
            .filter(|(_, w)| *w == Why::Changed)
            .map(|(n, _)| n.as_str())
            .collect();
        if !changed.is_empty() {
            parts.push(format!(
                "changed in {winner} since the last sync: {}",
                changed.join(", ")
            ));
        }
        for (name, w) in why {
            if let Why::Conflict(text) = w {
                parts.push(format!("conflict on {name}: {text}"));
            }
        }
        let differs: Vec<&str> = why
            .iter()
            .filter(|(_, w)| *w == Why::Differs)
            .map(|(n, _)| n.as_str())
            .collect();
        if !differs.is_empty() {
            parts.push(format!(
                "not synced before, {winner} value wins: {}",
                differs.join(", ")
            ));
        }
        format!("linked; {}", parts.join("; "))
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

    /// The value unit `u` of `w` (a record of `d`'s source) writes in direction `d`: the
    /// transformed field value, or the status through `d`'s table.
    fn value(
        &self,
        u: Unit<'_>,
        d: Direction,
        w: &Record,
        rv: &RecordValue,
    ) -> Result<Option<String>, EvalError> {
        match u {
            Unit::Field(m) => self.program.source_value(m, d, w, rv),
            Unit::Status(st) => Ok(st.read(w).and_then(|v| st.map(d, &v)).map(str::to_string)),
        }
    }

    /// True when the loser's current value `cur` already holds what `want` (computed from the
    /// winner's raw `w_raw` in direction `d`) would write.
    fn same(
        &self,
        u: Unit<'_>,
        d: Direction,
        want: &Option<String>,
        cur: &Option<String>,
        w_raw: &Option<String>,
    ) -> bool {
        if want == cur {
            return true;
        }
        match u {
            Unit::Field(_) => false,
            // Already equivalent: the loser's status maps back to the winner's.
            Unit::Status(st) => {
                cur.as_deref()
                    .and_then(|c| st.map(opposite(d), c))
                    .map(str::to_string)
                    == *w_raw
                    && w_raw.is_some()
            }
        }
    }

    /// The change that writes `want` (computed in direction `d` from the winner) onto the loser
    /// whose current value is `cur`, or `None` when nothing is to be written (already equal, a
    /// blank that does not clear, a field that cannot be written that way).
    fn change(
        &self,
        u: Unit<'_>,
        d: Direction,
        want: Option<String>,
        cur: Option<String>,
        w_raw: &Option<String>,
    ) -> Option<Change> {
        let field = u.target_field(d)?;
        if want.is_none() {
            let clears = matches!(u, Unit::Field(m) if m.blank == BlankPolicy::Clear);
            return (clears && cur.is_some()).then_some(Change {
                field,
                from: cur,
                to: None,
            });
        }
        if self.same(u, d, &want, &cur, w_raw) {
            return None;
        }
        Some(Change {
            field,
            from: cur,
            to: want,
        })
    }

    /// The bulk rule for one value (also incremental mode's rule for a value without a known
    /// `last_synced`): values flow from the source only.
    fn bulk_flow(
        &self,
        u: Unit<'_>,
        s: &Record,
        rv: &RecordValue,
        t: Option<&Record>,
    ) -> Result<Flow, EvalError> {
        let d = self.input.direction;
        if !u.flows(d) || u.target_field(d).is_none() {
            return Ok(Flow::Keep);
        }
        let want = self.value(u, d, s, rv)?;
        let Some(t) = t else {
            // A create writes every value the source has.
            return Ok(match (want, u.target_field(d)) {
                (Some(v), Some(field)) => Flow::Forward(Change {
                    field,
                    from: None,
                    to: Some(v),
                }),
                _ => Flow::Keep,
            });
        };
        let cur = u.read(t);
        let s_raw = u.read(s);
        let source_wins = match u {
            Unit::Field(m) => m.precedence.winner(self.input.initiator) == self.source_sys,
            Unit::Status(_) => self.input.initiator == self.source_sys,
        };
        if !source_wins && cur.is_some() {
            // The target wins; only its blank is filled (a blank never wins, B4).
            return Ok(Flow::Keep);
        }
        Ok(match self.change(u, d, want, cur, &s_raw) {
            Some(c) => Flow::Forward(c),
            None => Flow::Keep,
        })
    }

    /// Incremental mode, one value of a linked pair with known `last_synced` values `bs` / `bt`
    /// (blank = empty string). `rv_t` caches the target prepared for expressions (only a write
    /// against the direction needs it).
    #[allow(
        clippy::too_many_arguments,
        reason = "one value of a pair: both records, their prepared forms and baselines"
    )]
    fn incremental_flow(
        &self,
        u: Unit<'_>,
        s: &Record,
        rv_s: &RecordValue,
        t: &Record,
        rv_t: &mut Option<RecordValue>,
        bs: &str,
        bt: &str,
    ) -> Result<(Flow, Option<Why>), EvalError> {
        let d = self.input.direction;
        let rev = opposite(d);
        let s_raw = u.read(s);
        let t_raw = u.read(t);
        let s_changed = u.flows(d) && blank(&s_raw) != bs;
        let t_changed = u.flows(rev) && blank(&t_raw) != bt;
        let (winner, why) = match (s_changed, t_changed) {
            (false, false) => return Ok((Flow::Keep, None)),
            (true, false) => (self.source_sys, Why::Changed),
            (false, true) => (self.target_sys, Why::Changed),
            (true, true) => {
                let precedence = match u {
                    Unit::Field(m) => m.precedence,
                    Unit::Status(_) => Precedence::Initiator,
                };
                let (w, text) = match precedence {
                    Precedence::HubSpot | Precedence::Accelo => {
                        let w = precedence.winner(self.input.initiator);
                        (w, format!("both changed, {w} has precedence"))
                    }
                    Precedence::Initiator => match (s.updated_at, t.updated_at) {
                        (Some(a), Some(b)) if a != b => {
                            let w = if a > b {
                                self.source_sys
                            } else {
                                self.target_sys
                            };
                            (w, format!("both changed, {w} edit newer"))
                        }
                        (Some(_), Some(_)) => {
                            let w = self.input.initiator;
                            (
                                w,
                                format!("both changed at the same time, {w} started the sync"),
                            )
                        }
                        _ => {
                            let w = self.input.initiator;
                            (
                                w,
                                format!("both changed, edit times unknown, {w} started the sync"),
                            )
                        }
                    },
                };
                (w, Why::Conflict(text))
            }
        };
        if winner == self.source_sys {
            let want = self.value(u, d, s, rv_s)?;
            Ok(match self.change(u, d, want, t_raw, &s_raw) {
                Some(c) => (Flow::Forward(c), Some(why)),
                None => (Flow::Keep, None),
            })
        } else {
            let rv_t = rv_t.get_or_insert_with(|| RecordValue::new(t));
            let want = self.value(u, rev, t, rv_t)?;
            Ok(match self.change(u, rev, want, s_raw, &t_raw) {
                Some(c) => (Flow::Reverse(c), Some(why)),
                None => (Flow::Keep, None),
            })
        }
    }

    /// Every value of the pair `s` → `t` (`t` = `None`: a record to be created; `link` = `None`:
    /// not linked yet).
    fn fields(
        &self,
        rules: &ObjectRules,
        s: &Record,
        rv: &RecordValue,
        t: Option<&Record>,
        link: Option<&Link>,
    ) -> Result<Fields, EvalError> {
        let mut f = Fields {
            unchanged: true,
            ..Fields::default()
        };
        let mut rv_t: Option<RecordValue> = None;
        // Values after the sync, by key: currents first, then what is written.
        let mut current: BTreeMap<String, String> = BTreeMap::new();
        let mut written_fwd: BTreeMap<String, String> = BTreeMap::new();
        let mut written_rev: BTreeMap<String, String> = BTreeMap::new();
        // Keys whose value a reverse change moves, with their last_synced values.
        let mut reverse_keys: Vec<(String, Option<String>)> = Vec::new();
        let no_keys = Vec::new();
        let keys = self.keys.get(&rules.object).unwrap_or(&no_keys);
        for (u, (kh, ka)) in units(rules).into_iter().zip(keys) {
            let (ks, kt): (&String, &String) = match self.source_sys {
                System::HubSpot => (kh, ka),
                System::Accelo => (ka, kh),
            };
            let s_raw = u.read(s);
            let baseline = match (self.input.mode, link) {
                (Mode::Incremental, Some(l)) => {
                    match (l.last_synced.get(ks), l.last_synced.get(kt)) {
                        (Some(a), Some(b)) => Some((a.as_str(), b.as_str())),
                        _ => None,
                    }
                }
                _ => None,
            };
            if baseline.is_none() {
                f.unchanged = false;
            }
            let (flow, why) = match (baseline, t) {
                (Some((bs, bt)), Some(t)) => {
                    let (flow, why) = self.incremental_flow(u, s, rv, t, &mut rv_t, bs, bt)?;
                    if blank(&s_raw) != bs || blank(&u.read(t)) != bt {
                        f.unchanged = false;
                    }
                    (flow, why)
                }
                _ => (self.bulk_flow(u, s, rv, t)?, Some(Why::Differs)),
            };
            match t {
                Some(t) => {
                    current.insert(ks.clone(), blank(&s_raw));
                    current.insert(kt.clone(), blank(&u.read(t)));
                }
                None => {
                    // A create: the new record has what is written and is blank elsewhere —
                    // except fields this direction cannot write (the system fills them, e.g.
                    // an Accelo contact's company name): those stay unknown.
                    current.insert(ks.clone(), blank(&s_raw));
                    if u.target_field(self.input.direction).is_some() {
                        current.insert(kt.clone(), String::new());
                    }
                }
            }
            match flow {
                Flow::Keep => {}
                Flow::Forward(c) => {
                    written_fwd.insert(kt.clone(), blank(&c.to));
                    f.why_forward
                        .push((u.name().to_string(), why.unwrap_or(Why::Differs)));
                    f.forward.push(c);
                }
                Flow::Reverse(c) => {
                    written_rev.insert(ks.clone(), blank(&c.to));
                    let old = |k: &str| link.and_then(|l| l.last_synced.get(k).cloned());
                    reverse_keys.push((ks.clone(), old(ks)));
                    reverse_keys.push((kt.clone(), old(kt)));
                    f.why_reverse
                        .push((u.name().to_string(), why.unwrap_or(Why::Changed)));
                    f.reverse.push(c);
                }
            }
        }
        let mut synced = current;
        synced.extend(written_fwd);
        if !reverse_keys.is_empty() {
            let mut forward_only = synced.clone();
            for (k, old) in reverse_keys {
                match old {
                    Some(v) => forward_only.insert(k, v),
                    None => forward_only.remove(&k),
                };
            }
            f.synced_forward = forward_only;
        }
        synced.extend(written_rev);
        f.synced = synced;
        Ok(f)
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
