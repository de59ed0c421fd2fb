//! Reading what a plan needs: the records of a [`Scope`] from both systems and their links from
//! the store, into a [`Snapshot`] the pure planner plans from. This is the I/O half of planning
//! (the planner in `plan/` never reads anything); `tandem plan`, the bulk runs, `tandem apply`
//! and the automatic sync all read through here, so a plan and a real run see the same data.
//!
//! Scopes and what they read (S = the direction's source system, T = its target):
//! - [`Scope::All`]: every company and contact of both systems, page by page (HubSpot with the
//!   properties the rules read), and every link.
//! - [`Scope::Company`] (B8): the S company and every S contact whose company it is, their links,
//!   their linked T twins, and T duplicate candidates for the unlinked ones.
//! - [`Scope::Contact`] (B9): the S contact, its link and its company's link (to know the T
//!   company), its T twin or duplicate candidates. Criteria are bypassed.
//! - [`Scope::Record`] (the automatic sync; the direction is the record's system's): the record,
//!   its link and twin, for a contact its company's link — and the company itself when it is not
//!   linked yet, so that it is created or linked first — and T duplicate candidates.
//!
//! Duplicate candidates of one record: for each dedup key with a value, a text search of T for
//! that value ([`Connector::search_text`], a superset), plus the links of the candidates found
//! (a candidate already linked to another record must be seen as such); the planner then keeps
//! the candidates whose own key is equal. A duplicate whose text does not contain the key's value
//! (a name that differs in accents, for example) is found by bulk runs, which index the whole
//! target side, but not by single-record scopes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures::TryStreamExt;

use crate::connect::Systems;
use crate::connect::{COMPANY_ID_KEY, ConnectError, Connector, Lookup, Scan};
use crate::store::{Store, StoreError};
use tandem_core::compile::Program;
use tandem_core::model::{Direction, Link, Object, Record, System};
use tandem_core::plan::saved::{Basis, SavedPlan, Scope, diff_explained};
use tandem_core::plan::{Mode, PlanInput};

/// What reading a scope can fail with.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReadError {
    /// A system failed (unreachable, refused credentials, …).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Connect(#[from] ConnectError),
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    /// The record a scope names does not exist.
    #[error("there is no {system} {object} `{id}`")]
    #[diagnostic(
        code(tandem::snapshot::not_found),
        help("ids are those of the direction's source: HubSpot for pull, Accelo for push")
    )]
    NotFound {
        /// The system.
        system: System,
        /// The object.
        object: Object,
        /// The id asked for.
        id: String,
    },
    /// The request makes no sense (a record scope with another direction, …).
    #[error("{0}")]
    #[diagnostic(code(tandem::snapshot::invalid))]
    Invalid(String),
    /// A saved plan file cannot be read.
    #[error("cannot read the saved plan `{path}`: {message}")]
    #[diagnostic(
        code(tandem::snapshot::saved_plan),
        help("save a plan with `tandem plan pull|push --out FILE`")
    )]
    SavedPlan {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The records and links a plan is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The run's direction (for a record scope: the one whose source is the record's system).
    pub direction: Direction,
    /// What was read.
    pub scope: Scope,
    /// HubSpot records read (sources on pull, targets on push).
    pub hubspot: Vec<Record>,
    /// Accelo records read.
    pub accelo: Vec<Record>,
    /// Links read (both objects).
    pub links: Vec<Link>,
}

impl Snapshot {
    /// The records of `system`.
    pub fn side(&self, system: System) -> &[Record] {
        match system {
            System::HubSpot => &self.hubspot,
            System::Accelo => &self.accelo,
        }
    }

    /// The direction's source records (those planned).
    pub fn source(&self) -> &[Record] {
        self.side(self.direction.source())
    }

    /// The direction's target records (twins and duplicate candidates).
    pub fn target(&self) -> &[Record] {
        self.side(self.direction.target())
    }

    /// One record read, by system, object and id (the executor passes it to the connector as
    /// the record's current state).
    pub fn record(&self, system: System, object: Object, id: &str) -> Option<&Record> {
        self.side(system)
            .iter()
            .find(|r| r.object == object && r.id == id)
    }

    /// The planner's input: initiator = the direction's source, criteria bypassed for a single
    /// contact (B9).
    pub fn input(&self, mode: Mode) -> PlanInput<'_> {
        PlanInput {
            direction: self.direction,
            initiator: self.direction.source(),
            mode,
            source: self.source(),
            target: self.target(),
            links: &self.links,
            bypass_criteria: self.scope.bypasses_criteria(),
        }
    }

    /// The digests of everything read (for a saved plan's fingerprint).
    pub fn basis(&self) -> Basis {
        Basis::of(self.hubspot.iter().chain(&self.accelo), &self.links)
    }
}

/// Reads `scope` for a run in `direction`. `store` = `None`: no store yet, so no links. For
/// [`Scope::Record`], `direction` must be the one whose source is the record's system.
pub async fn read(
    systems: &Systems,
    program: &Program,
    store: Option<&dyn Store>,
    direction: Direction,
    scope: &Scope,
) -> Result<Snapshot, ReadError> {
    let reader = Reader {
        systems,
        program,
        store,
        direction,
    };
    match scope {
        Scope::All => reader.all().await,
        Scope::Company { id } => reader.company(id).await,
        Scope::Contact { id } => {
            let s = direction.source();
            let contact = reader.one(s, Object::Contact, id).await?;
            let Some(contact) = contact else {
                return Err(ReadError::NotFound {
                    system: s,
                    object: Object::Contact,
                    id: id.clone(),
                });
            };
            reader.around(scope.clone(), vec![contact], false).await
        }
        Scope::Record { system, object, id } => {
            if Direction::from_source(*system) != direction {
                return Err(ReadError::Invalid(format!(
                    "a {system} record is planned in the `{}` direction, not `{direction}`",
                    Direction::from_source(*system)
                )));
            }
            let records: Vec<Record> = reader
                .one(*system, *object, id)
                .await?
                .into_iter()
                .collect();
            reader.around(scope.clone(), records, true).await
        }
    }
}

/// A saved plan checked against the data as it is now.
#[derive(Debug, Clone)]
pub struct Check {
    /// The scope read again.
    pub snapshot: Snapshot,
    /// What differs from the data the plan was made from, one line each; empty = fresh.
    pub changes: Vec<String>,
    /// The rules changed since the plan was made (its `rules_hash` differs). The plan itself is
    /// still what was reviewed; callers decide whether that matters.
    pub rules_changed: bool,
}

impl Check {
    /// True when the data the plan was made from has not changed (B18).
    pub fn is_fresh(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Reads a saved plan's scope again and says what changed since it was made (B18). The
/// snapshot is returned so a fresh plan can be applied with the records as they are.
pub async fn check_saved(
    systems: &Systems,
    program: &Program,
    store: Option<&dyn Store>,
    saved: &SavedPlan,
) -> Result<Check, ReadError> {
    let snapshot = read(systems, program, store, saved.plan.direction, &saved.scope).await?;
    let now = snapshot.basis();
    let changes = if diff_explained(&saved.basis, &now, None).is_empty() {
        Vec::new()
    } else {
        // Say what the plan would do differently now, record by record.
        let current = tandem_core::plan::plan(program, &snapshot.input(Mode::Bulk));
        diff_explained(&saved.basis, &now, Some((&saved.plan, &current)))
    };
    Ok(Check {
        snapshot,
        changes,
        rules_changed: saved.plan.rules_hash != program.rules_hash(),
    })
}

/// Reads a saved plan file (`tandem plan --out`): a clear error for a missing file, bad JSON
/// (with its line and column), another format, or a file whose fingerprint does not match.
pub fn read_saved_plan(path: &Path) -> Result<SavedPlan, ReadError> {
    let fail = |message: String| ReadError::SavedPlan {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    SavedPlan::from_json(&text).map_err(fail)
}

struct Reader<'a> {
    systems: &'a Systems,
    program: &'a Program,
    store: Option<&'a dyn Store>,
    direction: Direction,
}

impl Reader<'_> {
    fn connector(&self, system: System) -> &dyn Connector {
        self.systems.get(system).as_ref()
    }

    /// The HubSpot properties to read for `object` (Accelo ignores them).
    fn properties(&self, object: Object) -> Vec<String> {
        self.program.read_properties(object)
    }

    async fn one(
        &self,
        system: System,
        object: Object,
        id: &str,
    ) -> Result<Option<Record>, ReadError> {
        let found = self
            .connector(system)
            .get(object, &[id.to_string()], &self.properties(object))
            .await?;
        Ok(found.into_iter().find(|r| r.id == id))
    }

    async fn scan_side(&self, system: System) -> Result<Vec<Record>, ReadError> {
        let mut out = Vec::new();
        for object in Object::ALL {
            let props = self.properties(object);
            let mut pages = self.connector(system).scan(object, Scan::All, &props);
            while let Some(page) = pages.try_next().await? {
                out.extend(page);
            }
        }
        Ok(out)
    }

    async fn all(&self) -> Result<Snapshot, ReadError> {
        // The two systems have separate budgets: read them at the same time.
        let (hubspot, accelo) = futures::try_join!(
            self.scan_side(System::HubSpot),
            self.scan_side(System::Accelo)
        )?;
        let mut links = Vec::new();
        if let Some(store) = self.store {
            for object in Object::ALL {
                links.extend(store.links(object).await?);
            }
        }
        Ok(Snapshot {
            direction: self.direction,
            scope: Scope::All,
            hubspot,
            accelo,
            links,
        })
    }

    async fn company(&self, id: &str) -> Result<Snapshot, ReadError> {
        let s = self.direction.source();
        let Some(company) = self.one(s, Object::Company, id).await? else {
            return Err(ReadError::NotFound {
                system: s,
                object: Object::Company,
                id: id.to_string(),
            });
        };
        let contacts = self
            .connector(s)
            .find(
                Object::Contact,
                &Lookup::new(COMPANY_ID_KEY, id),
                &self.properties(Object::Contact),
            )
            .await?;
        let mut sources = vec![company];
        sources.extend(contacts);
        self.around(Scope::Company { id: id.to_string() }, sources, false)
            .await
    }

    async fn link(
        &self,
        object: Object,
        system: System,
        id: &str,
    ) -> Result<Option<Link>, ReadError> {
        match self.store {
            Some(store) => Ok(store.link(object, system, id).await?),
            None => Ok(None),
        }
    }

    /// Everything the `sources` need: their links and twins, their companies' links (and, with
    /// `with_company`, an unlinked company as a source too), and duplicate candidates.
    async fn around(
        &self,
        scope: Scope,
        mut sources: Vec<Record>,
        with_company: bool,
    ) -> Result<Snapshot, ReadError> {
        let s = self.direction.source();
        let t = self.direction.target();
        let mut links: BTreeMap<(Object, String, String), Link> = BTreeMap::new();
        let add = |l: Link, links: &mut BTreeMap<(Object, String, String), Link>| {
            links.insert((l.object, l.hubspot_id.clone(), l.accelo_id.clone()), l);
        };

        // Contacts' companies: their links, or (automatic sync) the company itself.
        let in_sources: BTreeSet<(Object, String)> =
            sources.iter().map(|r| (r.object, r.id.clone())).collect();
        let companies: BTreeSet<String> = sources
            .iter()
            .filter(|r| r.object == Object::Contact)
            .filter_map(|r| r.company_id.clone())
            .filter(|c| !in_sources.contains(&(Object::Company, c.clone())))
            .collect();
        for cid in companies {
            match self.link(Object::Company, s, &cid).await? {
                Some(l) => add(l, &mut links),
                None if with_company => {
                    if let Some(c) = self.one(s, Object::Company, &cid).await? {
                        sources.push(c);
                    }
                }
                None => {}
            }
        }

        // The sources' own links and their twins.
        let mut twins: BTreeMap<Object, Vec<String>> = BTreeMap::new();
        let mut unlinked: Vec<&Record> = Vec::new();
        for r in &sources {
            match self.link(r.object, s, &r.id).await? {
                Some(l) => {
                    twins
                        .entry(r.object)
                        .or_default()
                        .push(l.id_on(t).to_string());
                    add(l, &mut links);
                }
                None => unlinked.push(r),
            }
        }
        let mut targets: BTreeMap<(Object, String), Record> = BTreeMap::new();
        for (object, ids) in twins {
            for r in self
                .connector(t)
                .get(object, &ids, &self.properties(object))
                .await?
            {
                targets.insert((r.object, r.id.clone()), r);
            }
        }

        // Duplicate candidates of the unlinked sources, and the candidates' own links.
        let mut queries: BTreeSet<(Object, String)> = BTreeSet::new();
        for r in &unlinked {
            let Some(rules) = self.program.object(r.object) else {
                continue;
            };
            for idx in 0..rules.dedup.len() {
                if let Ok(Some(v)) = self.program.dedup_key(r.object, idx, r) {
                    queries.insert((r.object, v));
                }
            }
        }
        for (object, text) in queries {
            let found = self
                .connector(t)
                .search_text(object, &text, &self.properties(object))
                .await?;
            for r in found {
                let key = (r.object, r.id.clone());
                if let std::collections::btree_map::Entry::Vacant(slot) = targets.entry(key) {
                    if let Some(l) = self.link(r.object, t, &r.id).await? {
                        add(l, &mut links);
                    }
                    slot.insert(r);
                }
            }
        }

        let targets: Vec<Record> = targets.into_values().collect();
        let (hubspot, accelo) = match s {
            System::HubSpot => (sources, targets),
            System::Accelo => (targets, sources),
        };
        Ok(Snapshot {
            direction: self.direction,
            scope,
            hubspot,
            accelo,
            links: links.into_values().collect(),
        })
    }
}
