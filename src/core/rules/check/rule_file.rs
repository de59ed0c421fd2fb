//! Checking one rule file's meaning: its catalogue of properties, triggers, criteria, dedup
//! keys and field mappings (HubSpot properties, Accelo JSONPaths, Rhai transforms), each
//! problem at its span.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use super::file::{FileState, Side, items};
use crate::expr::{CompileErrorKind, Expr, RecordValue, Vars};
use crate::model::accelo::{self, accelo_field};
use crate::model::{Direction, Object, System};
use crate::rules::catalog::{HubSpotCatalog, Property, suggest};
use crate::rules::diag::{Code, Diagnostic, Report};
use crate::rules::raw::RuleFile;
use crate::rules::scan::{char_index_of_byte, record_paths};
use crate::rules::set::{Code as Checked_, DedupKey, FieldPath, Mapping, ObjectRules};

impl FileState {
    /// Reports `record.x` paths that name no field of the record: a HubSpot property that the
    /// object does not have, or an Accelo field that its record does not have.
    pub(super) fn check_record_paths(
        &self,
        ptr: &str,
        text: &str,
        system: System,
        object: Object,
        cat: &HubSpotCatalog,
        report: &mut Report,
    ) -> bool {
        let mut ok = true;
        for path in record_paths(text) {
            match system {
                System::HubSpot => {
                    let Some((name, idx)) = path.first() else {
                        continue;
                    };
                    if cat.get(name).is_none() {
                        ok = false;
                        let span = self.expr_span_len(ptr, text, *idx, name.chars().count());
                        let d = self
                            .diag(
                                Code::UnknownProperty,
                                span,
                                format!("unknown HubSpot {object} property `{name}`"),
                            )
                            .label("`record` here is a HubSpot record");
                        report.push(match suggest(name, cat.names()) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None => d.help(
                                "declare the portal's custom properties under `custom_properties`",
                            ),
                        });
                    }
                }
                System::Accelo => {
                    let mut dotted = String::new();
                    for (name, idx) in &path {
                        if !dotted.is_empty() {
                            dotted.push('.');
                        }
                        dotted.push_str(name);
                        match accelo_field(object, &dotted) {
                            Some(f) if f.object => continue,
                            Some(_) => break,
                            None => {
                                ok = false;
                                let span =
                                    self.expr_span_len(ptr, text, *idx, name.chars().count());
                                let mut d = self
                                    .diag(
                                        Code::UnknownAcceloField,
                                        span,
                                        format!("unknown Accelo {object} field `{dotted}`"),
                                    )
                                    .label("`record` here is an Accelo record");
                                if let Some(s) = suggest(
                                    &dotted,
                                    accelo::accelo_fields(object).iter().map(|f| f.path),
                                ) {
                                    d = d.help(format!("did you mean `record.{s}`?"));
                                }
                                report.push(d);
                                break;
                            }
                        }
                    }
                }
            }
        }
        ok
    }

    /// Compiles the expression at `ptr`; on success probes it for unknown functions against
    /// `sample`.
    pub(super) fn expr(
        &self,
        ptr: &str,
        text: &str,
        vars: Vars,
        side: &Side<'_>,
        report: &mut Report,
    ) -> Option<Checked_> {
        match Expr::compile(text, vars) {
            Ok(e) => {
                if !self.check_record_paths(ptr, text, side.system, side.object, side.cat, report) {
                    return None;
                }
                if let Some(err) = e.probe(side.sample) {
                    let span = match (err.line, err.column) {
                        (Some(l), Some(c)) => self.expr_span(ptr, text, l, c),
                        _ => self.val(ptr),
                    };
                    let msg = err
                        .message
                        .split(" (line ")
                        .next()
                        .unwrap_or(&err.message)
                        .to_string();
                    if err.limit {
                        // Still valid: the record it fails on says why. But a limit hit on
                        // the sample is most likely hit on every record.
                        report.push(
                            self.diag(Code::RuleLimit, span, msg)
                                .label("stopped here on a sample record")
                                .help(
                                    "every record this runs on would fail with this reason; \
                                     look for a loop that never ends or a value that keeps growing",
                                ),
                        );
                        return Some(Checked_ {
                            source: text.to_string(),
                            vars,
                            origin: self.origin(ptr, text),
                        });
                    }
                    report.push(
                        self.diag(Code::UnknownFunction, span, msg)
                            .label("not defined for these arguments")
                            .help(
                                "helpers: domain, normalize_name, email, digits, lower, upper, \
                                 trim, first, blank, present, url (see docs/rules.md)",
                            ),
                    );
                    return None;
                }
                // Valid: compiling it for the program is `crate::compile`'s job.
                Some(Checked_ {
                    source: text.to_string(),
                    vars,
                    origin: self.origin(ptr, text),
                })
            }
            Err(err) => {
                let span = self.expr_span(ptr, text, err.line, err.column);
                let d = match &err.kind {
                    CompileErrorKind::UndefinedVariable(_) => self
                        .diag(Code::UndefinedVariable, span, err.message.clone())
                        .label("not defined here"),
                    CompileErrorKind::Syntax => self
                        .diag(Code::RhaiSyntax, span, format!("rhai: {}", err.message))
                        .label("here"),
                };
                report.push(d);
                None
            }
        }
    }

    pub(super) fn check_rule_file(&mut self, report: &mut Report) -> Option<ObjectRules> {
        let file: RuleFile = serde_json::from_value(self.value.clone()).ok()?;
        let object: Object = (*file.object.get()?).into();
        self.object = object;

        // Catalogue: standard + custom properties.
        let mut cat = HubSpotCatalog::standard(object);
        for (i, c) in items(&file.custom_properties) {
            let ptr = format!("/custom_properties/{i}/name");
            if HubSpotCatalog::is_standard(object, &c.name) {
                report.push(
                    self.diag(
                        Code::ShadowedProperty,
                        self.val(&ptr),
                        format!(
                            "`{}` is a standard {object} property; this declaration replaces it",
                            c.name
                        ),
                    )
                    .help("declare a standard property only to change its options (custom values)"),
                );
            }
            let p = Property {
                name: c.name.clone(),
                kind: c.r#type,
                read_only: c.read_only,
                options: c.options.clone(),
                custom: true,
            };
            cat.declare(p);
        }
        let names: Vec<String> = cat.names().map(str::to_string).collect();
        let hs_sample = RecordValue::sample(System::HubSpot, object, &names);
        let ac_sample = RecordValue::sample(System::Accelo, object, &[]);
        let hs_side = Side {
            system: System::HubSpot,
            object,
            cat: &cat,
            sample: &hs_sample,
        };
        let ac_side = Side {
            system: System::Accelo,
            object,
            cat: &cat,
            sample: &ac_sample,
        };

        // requires_company
        if file.requires_company.is_present() && object == Object::Company {
            report.push(
                self.diag(
                    Code::MisplacedOption,
                    self.key("/requires_company"),
                    "`requires_company` applies to contacts only",
                )
                .help("remove it from the company rules"),
            );
        }
        let requires_company =
            object == Object::Contact && file.requires_company.get().copied().unwrap_or(true);

        // triggers
        let mut triggers = BTreeSet::new();
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        for (i, t) in items(&file.triggers) {
            let ptr = format!("/triggers/{i}");
            let span = self.val(&ptr);
            if let Some(first) = seen.get(t) {
                report.push(
                    self.diag(
                        Code::DuplicateTrigger,
                        span,
                        format!("trigger `{t}` is listed twice"),
                    )
                    .related(first.clone(), "first listed here"),
                );
                continue;
            }
            seen.insert(t.clone(), span.clone());
            if t == "created" {
                triggers.insert(t.clone());
                continue;
            }
            match cat.get(t) {
                None => {
                    let mut d = self
                        .diag(Code::UnknownTrigger, span, format!("unknown trigger `{t}`"))
                        .label(format!("not a HubSpot {object} property"));
                    d = match suggest(t, cat.names().chain(["created"])) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help(
                            "a trigger is `created` or the internal name of a standard property",
                        ),
                    };
                    report.push(d);
                }
                Some(p) => {
                    if p.custom {
                        report.push(
                            self.diag(
                                Code::CustomTrigger,
                                span,
                                format!(
                                    "`{t}` is a custom property: HubSpot sends no webhook when it \
                                     changes"
                                ),
                            )
                            .help("Tandem's periodic poll still picks up its changes"),
                        );
                    }
                    triggers.insert(t.clone());
                }
            }
        }

        // criteria
        let mut criteria_pull = None;
        let mut criteria_push = None;
        if let Some(c) = file.criteria.get() {
            if let Some(src) = &c.pull {
                criteria_pull = self.expr("/criteria/pull", src, Vars::Record, &hs_side, report);
            }
            if let Some(src) = &c.push {
                criteria_push = self.expr("/criteria/push", src, Vars::Record, &ac_side, report);
            }
        }

        // dedup keys
        let mut dedup = Vec::new();
        let mut dedup_names: HashMap<String, Range<usize>> = HashMap::new();
        for (i, k) in items(&file.dedup) {
            let name_ptr = format!("/dedup/{i}/name");
            if let Some(first) = dedup_names.get(&k.name) {
                report.push(
                    self.diag(
                        Code::MappedTwice,
                        self.val(&name_ptr),
                        format!("dedup key `{}` is defined twice", k.name),
                    )
                    .related(first.clone(), "first defined here"),
                );
            } else {
                dedup_names.insert(k.name.clone(), self.val(&name_ptr));
            }
            let h = self.expr(
                &format!("/dedup/{i}/hubspot"),
                &k.hubspot,
                Vars::Record,
                &hs_side,
                report,
            );
            let a = self.expr(
                &format!("/dedup/{i}/accelo"),
                &k.accelo,
                Vars::Record,
                &ac_side,
                report,
            );
            if let (Some(hubspot), Some(accelo)) = (h, a) {
                dedup.push(DedupKey {
                    name: k.name.clone(),
                    hubspot,
                    accelo,
                });
            }
        }

        // fields
        let mut mappings = Vec::new();
        let mut names_seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut hs_written: HashMap<String, Range<usize>> = HashMap::new();
        let mut ac_written: HashMap<String, Range<usize>> = HashMap::new();
        for (i, m) in items(&file.fields) {
            let base = format!("/fields/{i}");
            let hs_ptr = format!("{base}/hubspot");
            let ac_ptr = format!("{base}/accelo");
            let name = m.name.clone().unwrap_or_else(|| m.hubspot.clone());
            let name_span = if m.name.is_some() {
                self.val(&format!("{base}/name"))
            } else {
                self.val(&hs_ptr)
            };
            if let Some(first) = names_seen.get(&name) {
                report.push(
                    self.diag(
                        Code::MappedTwice,
                        name_span.clone(),
                        format!("field `{name}` is mapped twice"),
                    )
                    .related(first.clone(), "first mapped here")
                    .help("give one of the mappings a distinct `name`"),
                );
            } else {
                names_seen.insert(name.clone(), name_span);
            }
            let mut ok = true;
            let pushes = m.direction.flows(Direction::Push);
            let pulls = m.direction.flows(Direction::Pull);
            // HubSpot side.
            match cat.get(&m.hubspot) {
                None => {
                    ok = false;
                    report.push(self.unknown_property(&hs_ptr, &m.hubspot, object, &cat));
                }
                Some(p) => {
                    if pushes && p.read_only {
                        ok = false;
                        report.push(
                            self.diag(
                                Code::ReadOnlyProperty,
                                self.val(&hs_ptr),
                                format!(
                                    "HubSpot property `{}` is read-only and cannot be written",
                                    m.hubspot
                                ),
                            )
                            .help("set `direction: pull` to only read it"),
                        );
                    }
                }
            }
            if pushes {
                if let Some(first) = hs_written.get(&m.hubspot) {
                    report.push(
                        self.diag(
                            Code::MappedTwice,
                            self.val(&hs_ptr),
                            format!(
                                "HubSpot property `{}` is written by two mappings",
                                m.hubspot
                            ),
                        )
                        .related(first.clone(), "also written here")
                        .help("make one of them `direction: pull` or `none`"),
                    );
                } else {
                    hs_written.insert(m.hubspot.clone(), self.val(&hs_ptr));
                }
            }
            // Accelo side.
            let accelo = self.accelo_path(&ac_ptr, &m.accelo, object, pulls, report);
            if accelo.is_none() {
                ok = false;
            }
            if let (Some(p), true) = (&accelo, pulls)
                && let Some(key) = &p.write_key
            {
                if let Some(first) = ac_written.get(key) {
                    report.push(
                        self.diag(
                            Code::MappedTwice,
                            self.val(&ac_ptr),
                            format!("Accelo field `{key}` is written by two mappings"),
                        )
                        .related(first.clone(), "also written here")
                        .help("make one of them `direction: push` or `none`"),
                    );
                } else {
                    ac_written.insert(key.clone(), self.val(&ac_ptr));
                }
            }
            let tp = m.transform.pull.as_ref().and_then(|src| {
                self.expr(
                    &format!("{base}/transform/pull"),
                    src,
                    Vars::RecordAndValue,
                    &hs_side,
                    report,
                )
                .or_else(|| {
                    ok = false;
                    None
                })
            });
            let tq = m.transform.push.as_ref().and_then(|src| {
                self.expr(
                    &format!("{base}/transform/push"),
                    src,
                    Vars::RecordAndValue,
                    &ac_side,
                    report,
                )
            });
            if m.transform.push.is_some() && tq.is_none() {
                ok = false;
            }
            if let (true, Some(accelo)) = (ok, accelo) {
                mappings.push(Mapping {
                    name,
                    hubspot: m.hubspot.clone(),
                    accelo,
                    direction: m.direction,
                    transform_pull: tp,
                    transform_push: tq,
                    precedence: m.precedence,
                    blank: m.blank,
                });
            }
        }

        // accelo statuses + status tables
        let accelo_statuses: Vec<String> = items(&file.accelo_statuses)
            .map(|(_, s)| s.clone())
            .collect();
        let status = file.status.get().and_then(|s| {
            self.check_status(s, object, &cat, &accelo_statuses, &hs_written, report)
        });

        // read properties
        let mut read_properties: BTreeSet<String> =
            mappings.iter().map(|m| m.hubspot.clone()).collect();
        if let Some(s) = &status {
            read_properties.insert(s.hubspot.clone());
        }
        let mut pull_exprs: Vec<&Checked_> = Vec::new();
        pull_exprs.extend(criteria_pull.as_ref());
        pull_exprs.extend(dedup.iter().map(|d| &d.hubspot));
        pull_exprs.extend(mappings.iter().filter_map(|m| m.transform_pull.as_ref()));
        for e in pull_exprs {
            for path in record_paths(&e.source) {
                if let Some((first, _)) = path.first()
                    && cat.get(first).is_some()
                {
                    read_properties.insert(first.clone());
                }
            }
        }

        self.raw_tests = items(&file.tests).map(|(i, t)| (i, t.clone())).collect();

        Some(ObjectRules {
            object,
            file: self.name.clone(),
            requires_company,
            when_twin_missing: file.when_twin_missing.get().copied().unwrap_or_default(),
            triggers,
            properties: cat
                .names()
                .filter_map(|n| cat.get(n).map(|p| (n.to_string(), p.clone())))
                .collect(),
            criteria_pull,
            criteria_push,
            dedup,
            mappings,
            status,
            accelo_statuses,
            tests: Vec::new(),
            read_properties,
        })
    }

    pub(super) fn unknown_property(
        &self,
        ptr: &str,
        name: &str,
        object: Object,
        cat: &HubSpotCatalog,
    ) -> Diagnostic {
        let d = self
            .diag(
                Code::UnknownProperty,
                self.val(ptr),
                format!("unknown HubSpot {object} property `{name}`"),
            )
            .label(format!("not a {object} property"));
        match suggest(name, cat.names()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help("declare the portal's custom properties under `custom_properties`"),
        }
    }

    /// Parses and classifies an Accelo JSONPath; `None` when an error was reported.
    pub(super) fn accelo_path(
        &self,
        ptr: &str,
        text: &str,
        object: Object,
        written: bool,
        report: &mut Report,
    ) -> Option<FieldPath> {
        let mut path = FieldPath {
            source: text.to_string(),
            write_key: None,
        };
        match serde_json_path::JsonPath::parse(text) {
            Ok(_) => {}
            Err(e) => {
                // serde_json_path reports a 0-based byte offset into the path (its docs say
                // "1-indexed"; the parser computes `input.offset(rest)`).
                let idx = char_index_of_byte(text, e.position());
                let span = self.expr_span_len(ptr, text, idx, 1);
                report.push(
                    self.diag(
                        Code::JsonPathSyntax,
                        span,
                        format!("invalid JSONPath `{text}`: {}", e.message()),
                    )
                    .help("Accelo fields are written like `$.name` or `$.affiliation.email`"),
                );
                return None;
            }
        };
        let fields = accelo::accelo_fields(object);
        match accelo::name_segments(text).map(|s| s.join(".")) {
            Some(dotted) => match accelo_field(object, &dotted) {
                None => {
                    let mut d = self
                        .diag(
                            Code::UnknownAcceloField,
                            self.val(ptr),
                            format!("unknown Accelo {object} field `{dotted}`"),
                        )
                        .label(format!("not in the Accelo {object} record"));
                    if let Some(s) = suggest(&dotted, fields.iter().map(|f| f.path)) {
                        d = d.help(format!("did you mean `$.{s}`?"));
                    }
                    report.push(d);
                    return None;
                }
                Some(f) => {
                    if f.writable {
                        path.write_key = Some(dotted.clone());
                    } else if written {
                        let help = if dotted.starts_with("status") {
                            "map statuses in the `status:` section".to_string()
                        } else if f.object {
                            format!("map a field inside it, e.g. `$.{dotted}.…`")
                        } else {
                            "set `direction: push` to only read it".to_string()
                        };
                        report.push(
                            self.diag(
                                Code::UnwritableAcceloPath,
                                self.val(ptr),
                                format!("Accelo field `{dotted}` cannot be written"),
                            )
                            .help(help),
                        );
                        return None;
                    }
                }
            },
            None => {
                if written {
                    report.push(
                        self.diag(
                            Code::UnwritableAcceloPath,
                            self.val(ptr),
                            format!("`{text}` selects no single field and cannot be written"),
                        )
                        .help(
                            "only a plain path like `$.postal_address.city` can be written; \
                               set `direction: push` to only read it",
                        ),
                    );
                    return None;
                }
            }
        }
        Some(path)
    }
}
