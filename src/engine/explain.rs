//! One record's story, as `tandem why` and the console's record page tell it: what a pull and
//! what a push would do with it right now, and why; its twin on the other side (the link); and
//! its last sync-log entries. Reads both systems and the store, writes nothing.
//!
//! Each decision is the one the bulk run would make (criteria applied, the direction's source
//! winning), planned from the record, its link and twin, its company and its duplicate
//! candidates. A direction whose source is the other system is planned from the twin; without
//! a twin that direction only reaches the record if a record on the other side is found to be
//! its duplicate, and the notes say so.

use serde_json::Value;

use crate::connect::Systems;
use crate::snapshot::{self, ReadError};
use crate::store::{LogEntry, LogQuery, Store};
use tandem_core::compile::Program;
use tandem_core::model::{Direction, Link, Object, Record, RecordKey, System};
use tandem_core::plan::{Action, Mode, Scope, plan};

/// How many sync-log entries a story keeps.
pub const LAST_ENTRIES: usize = 5;

/// What `tandem why` found.
#[derive(Debug, Clone)]
pub struct Story {
    /// The record asked about.
    pub record: RecordKey,
    /// Its name as people know it (a company's name, a contact's first and last name), when
    /// it has one.
    pub name: Option<String>,
    /// Its twin on the other side, when linked.
    pub twin: Option<RecordKey>,
    /// What a pull would do with it (`None`: see `notes`).
    pub pull: Option<Action>,
    /// What a push would do with it.
    pub push: Option<Action>,
    /// Per direction without an action, why there is none; and other remarks.
    pub notes: Vec<(Direction, String)>,
    /// The action a decision waits for (a contact's company), per direction.
    pub first: Vec<(Direction, Action)>,
    /// The last sync-log entries about the record, oldest first.
    pub log: Vec<LogEntry>,
    /// How many entries the log holds about it in all.
    pub log_total: usize,
    /// The record as it was read.
    pub found: Record,
    /// Its twin as it was read, when linked and still there.
    pub twin_found: Option<Record>,
    /// The link between them, with the values as last synced.
    pub link: Option<Link>,
}

/// A record's decision in the direction whose source is its system.
struct Decision {
    action: Action,
    first: Option<Action>,
    found: Record,
}

/// Reads and plans `record` in both directions with `program`; `None` when the record does not
/// exist. Writes nothing.
pub async fn story(
    systems: &Systems,
    program: &Program,
    store: Option<&dyn Store>,
    record: &RecordKey,
) -> Result<Option<Story>, ReadError> {
    let record = record.clone();
    let own = Direction::from_source(record.system);
    let Some(d) = decide(systems, program, store, &record).await? else {
        return Ok(None);
    };
    let mut story = Story {
        record: record.clone(),
        name: display_name(&d.found),
        twin: None,
        pull: None,
        push: None,
        notes: Vec::new(),
        first: Vec::new(),
        log: Vec::new(),
        log_total: 0,
        found: d.found,
        twin_found: None,
        link: None,
    };
    set(&mut story, own, d.action, d.first);

    let link = match store {
        Some(s) => s.link(record.object, record.system, &record.id).await?,
        None => None,
    };
    let other = record.system.other();
    let twin = link.as_ref().map(|l| RecordKey {
        system: other,
        object: record.object,
        id: l.id_on(other).to_string(),
    });
    story.link = link;
    let back = Direction::from_source(other);
    match &twin {
        Some(t) => match decide(systems, program, store, t).await? {
            Some(d) => {
                set(&mut story, back, d.action, d.first);
                story.twin_found = Some(d.found);
            }
            None => story.notes.push((
                back,
                format!(
                    "its linked {} {} `{}` no longer exists, so a {back} does not reach it",
                    t.system, t.object, t.id
                ),
            )),
        },
        None => story.notes.push((
            back,
            format!(
                "not linked to any {other} {}: a {back} starts from {}'s records and reaches \
                 this one only if one of them is found to be its duplicate",
                record.object,
                system_name(other)
            ),
        )),
    }
    story.twin = twin;

    if let Some(s) = store {
        let entries = s
            .log(&LogQuery {
                record: Some(record.clone()),
                ..LogQuery::default()
            })
            .await?;
        story.log_total = entries.len();
        let skip = entries.len().saturating_sub(LAST_ENTRIES);
        story.log = entries
            .into_iter()
            .skip(skip)
            .map(|e| LogEntry {
                body: e.body.scrubbed(),
                ..e
            })
            .collect();
    }
    Ok(Some(story))
}

/// The bulk decision about `key` in the direction whose source is its system, the action it
/// waits for and the record's name; `None` when the record does not exist.
async fn decide(
    systems: &Systems,
    program: &Program,
    store: Option<&dyn Store>,
    key: &RecordKey,
) -> Result<Option<Decision>, ReadError> {
    let direction = Direction::from_source(key.system);
    let scope = Scope::Record {
        system: key.system,
        object: key.object,
        id: key.id.clone(),
    };
    let snapshot = snapshot::read(systems, program, store, direction, &scope).await?;
    let Some(found) = snapshot.record(key.system, key.object, &key.id).cloned() else {
        return Ok(None);
    };
    let p = plan(program, &snapshot.input(Mode::Bulk));
    let Some(action) = p
        .actions
        .iter()
        .find(|a| {
            a.object == key.object
                && a.source.system == key.system
                && a.source.id.as_deref() == Some(key.id.as_str())
        })
        .cloned()
    else {
        return Ok(None);
    };
    let first = action
        .depends_on
        .and_then(|seq| p.actions.iter().find(|a| a.seq == seq).cloned());
    Ok(Some(Decision {
        action,
        first,
        found,
    }))
}

/// A record's name as people know it: `name` for a company; first name and last name (HubSpot
/// `lastname`, Accelo `surname`) for a contact, else its email.
pub fn display_name(r: &Record) -> Option<String> {
    let get = |k: &str| {
        r.doc
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    match r.object {
        Object::Company => get("name").map(str::to_string),
        Object::Contact => {
            let parts: Vec<&str> = [get("firstname"), get("lastname").or(get("surname"))]
                .into_iter()
                .flatten()
                .collect();
            if parts.is_empty() {
                get("email").map(str::to_string)
            } else {
                Some(parts.join(" "))
            }
        }
    }
}

fn set(story: &mut Story, direction: Direction, action: Action, first: Option<Action>) {
    match direction {
        Direction::Pull => story.pull = Some(action),
        Direction::Push => story.push = Some(action),
    }
    if let Some(f) = first {
        story.first.push((direction, f));
    }
}

fn system_name(system: System) -> &'static str {
    match system {
        System::HubSpot => "HubSpot",
        System::Accelo => "Accelo",
    }
}
