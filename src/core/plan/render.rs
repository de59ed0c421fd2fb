//! Renderings of a [`Plan`]: the human form `tandem plan` prints (like a terraform plan: one
//! summary line of counts, then one block per action with its field changes `from → to` and the
//! reason) and the JSON form (`--json`, the public contract; keys in a stable order).
//!
//! Pure functions of the plan: colours are chosen by the caller (only on a terminal).

use std::fmt::Write as _;

use super::types::{Action, Plan};
use crate::model::Op;

/// ANSI styles, or nothing.
struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn op_style(op: Op) -> (&'static str, &'static str) {
    match op {
        Op::Create => ("+", "32"),
        Op::Update => ("~", "33"),
        Op::Link => ("=", "36"),
        Op::Noop => ("·", "2"),
        Op::Skip => ("!", "35"),
    }
}

/// A value as shown in a change: quoted (JSON escapes), or `(blank)`.
fn show(v: &Option<String>) -> String {
    match v {
        Some(s) => serde_json::Value::String(s.clone()).to_string(),
        None => "(blank)".to_string(),
    }
}

/// The summary line: `pull plan (hubspot → accelo, hubspot wins): 3 to create, …`.
pub fn summary_line(plan: &Plan) -> String {
    let s = plan.summary;
    let mode = if plan.mode.is_bulk() {
        String::new()
    } else {
        format!(", {}", plan.mode.as_str())
    };
    format!(
        "{} plan ({} → {}, {} wins{mode}): {}",
        plan.direction,
        plan.direction.source(),
        plan.direction.target(),
        plan.initiator,
        s.text()
    )
}

/// The human form. `color` adds ANSI colours (callers pass true only for a terminal). The
/// summary line comes first and, after the actions, once more (a long plan scrolls it away).
pub fn text(plan: &Plan, color: bool) -> String {
    text_where(plan, |_| true, color)
}

/// [`text`] showing only the actions `keep` selects (`tandem plan --only … --object …`); the
/// summary lines count the whole plan, and the end says how many actions are shown.
pub fn text_where(plan: &Plan, keep: impl Fn(&Action) -> bool, color: bool) -> String {
    let st = Style { on: color };
    let mut out = String::new();
    let summary = st.paint("1", &summary_line(plan));
    let _ = writeln!(out, "{summary}");
    if plan.actions.is_empty() {
        let _ = writeln!(out, "\nNothing to plan: no source records in scope.");
        return out;
    }
    let shown: Vec<&Action> = plan.actions.iter().filter(|a| keep(a)).collect();
    out.push_str(&blocks(shown.iter().copied(), color));
    let total = plan.actions.len();
    out.push('\n');
    if shown.len() < total {
        let _ = writeln!(
            out,
            "{} of {} actions shown (the filters hide the others)",
            thousands(shown.len()),
            thousands(total)
        );
    }
    let _ = writeln!(out, "{summary}");
    out
}

/// The blocks of `actions` as [`text`] shows them, each after an empty line.
pub fn blocks<'a>(actions: impl IntoIterator<Item = &'a Action>, color: bool) -> String {
    let st = Style { on: color };
    let mut out = String::new();
    for a in actions {
        out.push('\n');
        block(&mut out, a, &st);
    }
    out
}

/// `n` with a comma between thousands, as people read counts: `2,300`.
pub fn thousands(n: impl std::fmt::Display) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn side(system: crate::model::System, id: &Option<String>) -> String {
    match id {
        Some(id) => format!("{system} {id}"),
        None => format!("{system} (new)"),
    }
}

fn block(out: &mut String, a: &Action, st: &Style) {
    let (mark, code) = op_style(a.op);
    let arrow = match a.op {
        Op::Noop | Op::Link => "↔",
        _ => "→",
    };
    let target = match (a.op, &a.target.id) {
        (Op::Skip, None) => String::new(),
        _ => format!(" {arrow} {}", side(a.target.system, &a.target.id)),
    };
    let head = format!(
        "{mark} #{} {} {} {}{target}",
        a.seq,
        a.op.label(),
        a.object,
        side(a.source.system, &a.source.id)
    );
    let _ = writeln!(out, "{}", st.paint(code, &head));
    let width = a
        .changes
        .iter()
        .map(|c| c.field.chars().count())
        .max()
        .unwrap_or(0);
    for c in &a.changes {
        let pad = width - c.field.chars().count();
        let _ = writeln!(
            out,
            "    {}{}  {} → {}",
            c.field,
            " ".repeat(pad),
            st.paint("2", &show(&c.from)),
            show(&c.to)
        );
    }
    let _ = writeln!(out, "    {} {}", st.paint("2", "reason:"), a.reason);
    if let Some(dep) = a.depends_on {
        let _ = writeln!(out, "    {} #{dep}", st.paint("2", "after:"));
    }
}

/// The JSON form (pretty, keys in the contract's order, one trailing newline).
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_else(|e| {
        // A plan holds only strings, numbers and maps with string keys: this cannot fail.
        format!("{{\"error\":{}}}", serde_json::Value::String(e.to_string()))
    });
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, Object, System};
    use crate::plan::{Change, Mode, RecordRef, Summary};

    fn plan() -> Plan {
        let actions = vec![
            Action {
                seq: 1,
                object: Object::Company,
                op: Op::Create,
                source: RecordRef {
                    system: System::HubSpot,
                    id: Some("101".into()),
                },
                target: RecordRef {
                    system: System::Accelo,
                    id: None,
                },
                changes: vec![
                    Change {
                        field: "name".into(),
                        from: None,
                        to: Some("Acme \"Pty\" Ltd".into()),
                    },
                    Change {
                        field: "postal_address.city".into(),
                        from: None,
                        to: Some("Sydney".into()),
                    },
                ],
                reason: "not linked, no duplicate found".into(),
                depends_on: None,
                last_synced: None,
                target_company_id: None,
                affiliation_id: None,
                replaces_twin: None,
            },
            Action {
                seq: 2,
                object: Object::Contact,
                op: Op::Skip,
                source: RecordRef {
                    system: System::HubSpot,
                    id: Some("202".into()),
                },
                target: RecordRef {
                    system: System::Accelo,
                    id: None,
                },
                changes: vec![],
                reason: "contact has no company".into(),
                depends_on: Some(1),
                last_synced: None,
                target_company_id: None,
                affiliation_id: None,
                replaces_twin: None,
            },
        ];
        Plan {
            direction: Direction::Pull,
            initiator: System::HubSpot,
            rules_hash: "abc".into(),
            mode: Mode::Bulk,
            summary: Summary::of(&actions),
            actions,
        }
    }

    #[test]
    fn text_has_a_summary_and_one_block_per_action() {
        let t = text(&plan(), false);
        assert_eq!(
            t,
            "pull plan (hubspot → accelo, hubspot wins): 1 to create, 0 to update, 0 to link, 0 unchanged, 1 skipped\n\
             \n\
             + #1 create company hubspot 101 → accelo (new)\n    \
             name                 (blank) → \"Acme \\\"Pty\\\" Ltd\"\n    \
             postal_address.city  (blank) → \"Sydney\"\n    \
             reason: not linked, no duplicate found\n\
             \n\
             ! #2 skip contact hubspot 202\n    \
             reason: contact has no company\n    \
             after: #1\n\
             \n\
             pull plan (hubspot → accelo, hubspot wins): 1 to create, 0 to update, 0 to link, 0 unchanged, 1 skipped\n"
        );
        assert!(!t.contains('\x1b'));
        let skips = text_where(&plan(), |a| a.op == Op::Skip, false);
        assert!(!skips.contains("#1 create"), "{skips}");
        assert!(skips.contains("! #2 skip"), "{skips}");
        assert!(
            skips.ends_with(
                "1 of 2 actions shown (the filters hide the others)\n\
                 pull plan (hubspot → accelo, hubspot wins): 1 to create, 0 to update, 0 to link, 0 unchanged, 1 skipped\n"
            ),
            "{skips}"
        );
        assert_eq!(thousands(2300), "2,300");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert!(text(&plan(), true).contains("\x1b[32m+ #1 create"));
    }

    #[test]
    fn json_keeps_the_contract_keys_and_leaves_out_empty_extras() {
        let v: serde_json::Value =
            serde_json::from_str(&json(&plan())).unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            ["direction", "initiator", "rules_hash", "summary", "actions"]
        );
        let a: Vec<&str> = v["actions"][0]
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            a,
            [
                "seq",
                "object",
                "op",
                "source",
                "target",
                "changes",
                "reason",
                "depends_on"
            ]
        );
        // And it reads back.
        let back: Plan = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, plan());
    }
}
