//! Checking a rule file's status tables: the HubSpot property, the values on both sides, and
//! that a round trip cannot loop.

use std::collections::HashMap;
use std::ops::Range;

use super::file::FileState;
use crate::model::{Direction, Object};
use crate::rules::catalog::{HubSpotCatalog, suggest};
use crate::rules::diag::{Code, Report};
use crate::rules::raw::{self, PropertyType};
use crate::rules::set::StatusMap;
use crate::rules::yaml::push_pointer;

impl FileState {
    pub(super) fn check_status(
        &self,
        s: &raw::StatusMapping,
        object: Object,
        cat: &HubSpotCatalog,
        accelo_statuses: &[String],
        hs_written: &HashMap<String, Range<usize>>,
        report: &mut Report,
    ) -> Option<StatusMap> {
        let mut ok = true;
        let prop = match cat.get(&s.hubspot) {
            None => {
                report.push(self.unknown_property("/status/hubspot", &s.hubspot, object, cat));
                return None;
            }
            Some(p) => p,
        };
        if s.direction.flows(Direction::Push) {
            if prop.read_only {
                ok = false;
                report.push(self.diag(
                    Code::ReadOnlyProperty,
                    self.val("/status/hubspot"),
                    format!(
                        "HubSpot property `{}` is read-only and cannot be written",
                        s.hubspot
                    ),
                ));
            }
            if let Some(first) = hs_written.get(&s.hubspot) {
                ok = false;
                report.push(
                    self.diag(
                        Code::MappedTwice,
                        self.val("/status/hubspot"),
                        format!(
                            "HubSpot property `{}` is written by a field mapping and the status",
                            s.hubspot
                        ),
                    )
                    .related(first.clone(), "also written here"),
                );
            }
        }
        if prop.kind != PropertyType::Enumeration && prop.options.is_empty() {
            report.push(
                self.diag(
                    Code::UnknownStatusValue,
                    self.val("/status/hubspot"),
                    format!("HubSpot property `{}` is not an enumeration", s.hubspot),
                )
                .help("use `lifecyclestage`, `hs_lead_status` or a custom enumeration"),
            );
            return None;
        }
        let hs_value_ok = |v: &str| prop.options.is_empty() || prop.options.iter().any(|o| o == v);
        let title_ok = |t: &str| accelo_statuses.iter().any(|a| a == t);
        let unknown_title = |span: Range<usize>, t: &str| {
            let mut d = self
                .diag(
                    Code::UnknownStatus,
                    span,
                    format!("unknown Accelo status `{t}`"),
                )
                .label("not in `accelo_statuses`");
            d = if accelo_statuses.is_empty() {
                d.help("list the deployment's status titles in `accelo_statuses`")
            } else if let Some(sug) = suggest(t, accelo_statuses.iter().map(String::as_str)) {
                d.help(format!("did you mean `{sug}`?"))
            } else {
                d.help(format!(
                    "known statuses: {}",
                    accelo_statuses
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            d
        };
        let unknown_value = |span: Range<usize>, v: &str| {
            let mut d = self
                .diag(
                    Code::UnknownStatusValue,
                    span,
                    format!("`{v}` is not a value of HubSpot property `{}`", s.hubspot),
                )
                .label(format!("not a `{}` value", s.hubspot));
            if let Some(sug) = suggest(v, prop.options.iter().map(String::as_str)) {
                d = d.help(format!("did you mean `{sug}`?"));
            }
            d
        };
        for (hs, title) in &s.pull {
            let p = push_pointer("/status/pull", hs);
            if !hs_value_ok(hs) {
                ok = false;
                report.push(unknown_value(self.key(&p), hs));
            }
            if !title_ok(title) {
                ok = false;
                report.push(unknown_title(self.val(&p), title));
            }
        }
        for (title, hs) in &s.push {
            let p = push_pointer("/status/push", title);
            if !title_ok(title) {
                ok = false;
                report.push(unknown_title(self.key(&p), title));
            }
            if !hs_value_ok(hs) {
                ok = false;
                report.push(unknown_value(self.val(&p), hs));
            }
        }
        ok.then(|| StatusMap {
            hubspot: s.hubspot.clone(),
            direction: s.direction,
            pull: s.pull.clone(),
            push: s.push.clone(),
        })
    }
}
