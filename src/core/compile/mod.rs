//! The compiled rules: [`Program`], compiled from a checked [`RuleSet`], immutable,
//! `Send + Sync`, shared as `Arc<Program>` by the planner, the executor and the server.
//!
//! Compiling turns each object's checked rules into their runtime form ([`rules`]): Rhai ASTs,
//! parsed JSONPaths, status tables. The program adds the lookups the runtime needs and the
//! evaluation methods; the planner reads the rules through it alone. Every evaluation returns
//! `Result<_, EvalError>`: a rule that fails or exceeds a limit fails that record, never the
//! program. [`load`] runs the whole pipeline (read → check → compile); the engine's reloader
//! re-runs it when files change. [`subscriptions`] derives the HubSpot webhook subscriptions the
//! trigger lists need.

pub mod rules;
pub mod subscriptions;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use self::rules::{
    AcceloPath, BlankPolicy, CompileError, DedupKey, FieldDirection, Mapping, ObjectRules,
    Precedence, StatusMap, TwinMissing,
};
use crate::expr::{EvalError, RecordValue};
use crate::model::{Direction, Object, Record, System};
use crate::rules::config::Config;
use crate::rules::set::{RuleSet, TestCase};
use crate::rules::{Code, Diagnostic, Paths, Report};

/// The compiled rule set.
#[derive(Debug, Clone)]
pub struct Program {
    objects: BTreeMap<Object, ObjectRules>,
    hash: String,
}

impl Program {
    /// Compiles a checked rule set.
    pub fn compile(rules: &RuleSet) -> Result<Program, CompileError> {
        let objects = rules
            .objects
            .iter()
            .map(|(object, r)| Ok((*object, self::rules::compile_object(r)?)))
            .collect::<Result<BTreeMap<_, _>, CompileError>>()?;
        Ok(Program {
            objects,
            hash: rules.hash.clone(),
        })
    }

    /// sha256 (hex) of the canonical rule-file contents: equal hashes, equal rules.
    pub fn rules_hash(&self) -> &str {
        &self.hash
    }

    /// The rules of `object`, if a rule file describes it (objects without rules do not sync).
    pub fn object(&self, object: Object) -> Option<&ObjectRules> {
        self.objects.get(&object)
    }

    /// Every object's rules, companies first.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectRules> {
        self.objects.values()
    }

    /// True when a HubSpot change of `property` (or `"created"`) on `object` queues a sync
    /// (B11).
    pub fn triggers(&self, object: Object, property: &str) -> bool {
        self.object(object)
            .is_some_and(|o| o.triggers.contains(property))
    }

    /// The HubSpot properties the rules of `object` read — what a connector should request.
    pub fn read_properties(&self, object: Object) -> Vec<String> {
        self.object(object)
            .map(|o| o.read_properties.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// B5: does `record` (a source record of `direction`) meet the criteria? Records of an
    /// object without rules never do; an object without criteria syncs everything.
    pub fn criteria(
        &self,
        object: Object,
        direction: Direction,
        record: &Record,
    ) -> Result<bool, EvalError> {
        self.criteria_with(object, direction, &RecordValue::new(record))
    }

    /// [`Program::criteria`] on a prepared record.
    pub fn criteria_with(
        &self,
        object: Object,
        direction: Direction,
        record: &RecordValue,
    ) -> Result<bool, EvalError> {
        match self.object(object) {
            None => Ok(false),
            Some(o) => match o.criteria(direction) {
                None => Ok(true),
                Some(e) => e.eval_bool(record),
            },
        }
    }

    /// B6: the value of dedup key `idx` for `record` (evaluated with the key's expression for
    /// the record's system); `None` when blank or when there is no such key.
    pub fn dedup_key(
        &self,
        object: Object,
        idx: usize,
        record: &Record,
    ) -> Result<Option<String>, EvalError> {
        self.dedup_key_with(object, idx, record.system, &RecordValue::new(record))
    }

    /// [`Program::dedup_key`] on a prepared record of `system`.
    pub fn dedup_key_with(
        &self,
        object: Object,
        idx: usize,
        system: System,
        record: &RecordValue,
    ) -> Result<Option<String>, EvalError> {
        match self.object(object).and_then(|o| o.dedup.get(idx)) {
            None => Ok(None),
            Some(k) => k.expr(system).eval_text(record, None),
        }
    }

    /// Applies `mapping`'s transform for `direction` (identity when it has none).
    pub fn transform(
        &self,
        mapping: &Mapping,
        direction: Direction,
        value: Option<&str>,
        record: &RecordValue,
    ) -> Result<Option<String>, EvalError> {
        match mapping.transform(direction) {
            None => Ok(value.filter(|v| !v.is_empty()).map(str::to_string)),
            Some(e) => e.eval_text(record, value),
        }
    }

    /// The value `mapping` writes in `direction` for source record `record`: the field read on
    /// the source side, then transformed.
    pub fn source_value(
        &self,
        mapping: &Mapping,
        direction: Direction,
        record: &Record,
        prepared: &RecordValue,
    ) -> Result<Option<String>, EvalError> {
        let raw = mapping.read(record);
        self.transform(mapping, direction, raw.as_deref(), prepared)
    }

    /// B15: maps a status value in `direction` (HubSpot value → Accelo title on pull, Accelo
    /// title → HubSpot value on push); `None` when unmapped.
    pub fn map_status(&self, object: Object, direction: Direction, value: &str) -> Option<&str> {
        self.status(object)?.map(direction, value)
    }

    /// The status mapping of `object`.
    pub fn status(&self, object: Object) -> Option<&StatusMap> {
        self.object(object)?.status.as_ref()
    }

    /// The mapping that writes target field `field` (HubSpot property on push, Accelo write
    /// key on pull) — how an executor gets from a plan change back to a mapping name.
    pub fn mapping_for_target(
        &self,
        object: Object,
        direction: Direction,
        field: &str,
    ) -> Option<&Mapping> {
        self.object(object)?
            .mappings
            .iter()
            .find(|m| m.direction.flows(direction) && m.target_field(direction) == Some(field))
    }

    /// Every rule-file test case, companies' first.
    pub fn tests(&self) -> impl Iterator<Item = &TestCase> {
        self.objects().flat_map(|o| o.tests.iter())
    }
}

/// The result of loading: the program, the config, and the warnings found.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The compiled rules.
    pub program: Arc<Program>,
    /// The configuration.
    pub config: Config,
    /// Warnings (no errors).
    pub report: Report,
}

/// Reads, checks and compiles the config and rules under `paths`. `Err` holds every problem
/// when anything is invalid.
pub fn load(paths: &Paths) -> Result<Loaded, Report> {
    finish(crate::rules::check(paths))
}

/// [`load`] over texts already read (the console checks an edit before it is saved).
pub fn load_sources(
    config: Option<&crate::rules::Source>,
    rules: &[crate::rules::Source],
    rules_dir: &str,
) -> Result<Loaded, Report> {
    let mut checked = crate::rules::check_sources(config, rules, rules_dir);
    checked.report.sort();
    finish(checked)
}

fn finish(checked: crate::rules::Checked) -> Result<Loaded, Report> {
    let mut report = checked.report;
    match (checked.config, checked.rules) {
        (Some(config), Some(rules)) if !report.has_errors() => match Program::compile(&rules) {
            Ok(program) => Ok(Loaded {
                program: Arc::new(program),
                config,
                report,
            }),
            Err(e) => {
                let code = match e.what {
                    "expression" => Code::RhaiSyntax,
                    _ => Code::JsonPathSyntax,
                };
                report.push(Diagnostic::whole(code, &e.file, e.to_string()));
                Err(report)
            }
        },
        _ => Err(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn program_is_shareable() {
        assert_send_sync::<Program>();
        assert_send_sync::<Arc<Program>>();
    }
}
