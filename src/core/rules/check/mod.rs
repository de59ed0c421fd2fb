//! Loading and checking: the config file and every rule file → a [`RuleSet`] plus a [`Report`]
//! holding *every* problem found, each at its exact span.
//!
//! Per file: YAML (`E001`, `E002`) → JSON Schema (`E003`–`E006`) → meaning (unknown properties,
//! triggers, JSONPaths, Rhai, statuses, duplicates). Across files: one file per object, then the
//! test cases (which may reference records of both objects). The rule set is returned only when
//! no error was found; warnings do not block it.

mod cases;
mod config;
mod file;
mod rule_file;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use self::config::check_config;
use self::file::{FileState, load};
use super::config::Config;
use super::diag::{Code, Diagnostic, Report};
use super::paths::{self, Paths, Source};
use super::schema::FileKind;
use super::set::{ObjectRules, RuleSet};
use crate::model::Object;

/// The outcome of a check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The config, when it was readable and structurally valid.
    pub config: Option<Config>,
    /// The rules, when there was no error at all.
    pub rules: Option<RuleSet>,
    /// Every problem found.
    pub report: Report,
}

impl Checked {
    /// True when config and rules are both usable.
    pub fn is_ok(&self) -> bool {
        !self.report.has_errors() && self.config.is_some() && self.rules.is_some()
    }
}

/// Reads and checks the config file and every rule file under `paths`.
pub fn check(paths: &Paths) -> Checked {
    let mut report = Report::new();
    let (config, sources, dir_name) = paths::read(paths, &mut report);
    let mut checked = check_sources(config.as_ref(), &sources, &dir_name);
    report.extend(checked.report);
    report.sort();
    checked.report = report;
    if checked.report.has_errors() {
        checked.rules = None;
    }
    checked
}

/// Reads and checks only the config file (for commands that need no rules, e.g. `tandem log`
/// reading `store.url`). `Err` holds every problem.
pub fn check_config_file(path: &Path) -> Result<Config, Report> {
    let mut report = Report::new();
    let Some(src) = paths::read_one(path, "config file", &mut report) else {
        return Err(report);
    };
    let config = check_config(&src, &mut report);
    report.sort();
    match config {
        Some(c) if !report.has_errors() => Ok(c),
        _ => Err(report),
    }
}

/// Checks already-read sources (no file system access; what tests and the fuzz test call).
/// `rules_dir` names the directory in whole-set diagnostics.
pub fn check_sources(config: Option<&Source>, rules: &[Source], rules_dir: &str) -> Checked {
    let mut report = Report::new();
    let config = config.and_then(|c| check_config(c, &mut report));

    let mut files: Vec<FileState> = Vec::new();
    let mut objects: BTreeMap<Object, ObjectRules> = BTreeMap::new();
    let mut first_file: HashMap<Object, String> = HashMap::new();
    for src in rules {
        let Some(mut state) = load(src, FileKind::Rules, &mut report) else {
            continue;
        };
        let Some(rules) = state.check_rule_file(&mut report) else {
            continue;
        };
        let object = rules.object;
        if let Some(first) = first_file.get(&object) {
            report.push(
                Diagnostic::new(
                    Code::DuplicateObject,
                    &src.name,
                    state.val("/object"),
                    format!("`{object}` is already described by `{first}`"),
                )
                .help("keep one rule file per object"),
            );
            continue;
        }
        first_file.insert(object, src.name.clone());
        objects.insert(object, rules);
        files.push(state);
    }
    if rules.is_empty() {
        report.push(Diagnostic::whole(
            Code::Unreadable,
            rules_dir,
            "no rule files (`*.yaml`) found",
        ));
    } else if !objects.is_empty() {
        for o in Object::ALL {
            if !objects.contains_key(&o) && !first_file.contains_key(&o) {
                report.push(Diagnostic::whole(
                    Code::MissingObject,
                    rules_dir,
                    format!("no rule file for `{o}`: {} will not sync", o.plural()),
                ));
            }
        }
    }
    // Test cases, now that every object's rules are known.
    for state in &mut files {
        let tests = std::mem::take(&mut state.raw_tests);
        let object = state.object;
        let mut cases = Vec::new();
        for (i, t) in tests {
            if let Some(case) = state.check_test(i, t, &objects, &mut report) {
                cases.push(case);
            }
        }
        if let Some(o) = objects.get_mut(&object) {
            o.tests = cases;
        }
    }

    report.sort();
    let rules = if report.has_errors() {
        None
    } else {
        let hash = rules_hash(&files);
        Some(RuleSet { objects, hash })
    };
    Checked {
        config,
        rules,
        report,
    }
}

/// sha256 over the canonical JSON (sorted keys) of every rule file, in object order.
fn rules_hash(files: &[FileState]) -> String {
    let mut sorted: Vec<&FileState> = files.iter().collect();
    sorted.sort_by_key(|f| f.object);
    let mut h = Sha256::new();
    for f in sorted {
        let s = crate::model::canonical_json(&f.value);
        h.update(f.object.as_str().as_bytes());
        h.update([0u8]);
        h.update(s.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn config_alone_can_be_loaded() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let c = check_config_file(&repo.join("rules/tandem.yaml")).unwrap();
        assert_eq!(c.store.url, ".tandem/tandem.db");
        assert_eq!(c.hubspot.token_env.as_deref(), Some("HUBSPOT_TOKEN"));
        let e = check_config_file(
            &repo.join("tests/fixtures/rules/invalid/E080_invalid_config/tandem.yaml"),
        )
        .unwrap_err();
        assert!(e.has_errors());
    }

    #[test]
    fn rules_hash_ignores_comments_and_formatting() {
        let config = Source {
            name: "tandem.yaml".into(),
            text: Arc::from(include_str!(
                "../../../../tests/fixtures/rules/valid/tandem.yaml"
            )),
        };
        let a = "object: company\nfields:\n  - hubspot: name\n    accelo: $.name\n";
        let b = "# a comment\nobject: company\nfields: [{accelo: '$.name', hubspot: name}]\n";
        let c = "object: company\nfields:\n  - hubspot: phone\n    accelo: $.phone\n";
        let hash = |t: &str| {
            let s = Source {
                name: "companies.yaml".into(),
                text: Arc::from(t),
            };
            check_sources(Some(&config), &[s], "rules")
                .rules
                .unwrap()
                .hash
        };
        assert_eq!(hash(a), hash(b));
        assert_ne!(hash(a), hash(c));
        assert_eq!(hash(a).len(), 64);
    }
}
