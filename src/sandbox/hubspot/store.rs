//! The HubSpot portal's state: companies and contacts (BTreeMap by numeric id, so `after`
//! cursors are range scans), unique-value indexes (contact email, custom unique properties),
//! contact↔company associations, the property catalogue, and the change events that feed
//! webhooks. Every mutation validates first and changes nothing when it fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::UnboundedSender;

use super::props::{PropError, PropertyDef, catalogue};
use crate::common::iso_ms;
use crate::data::HsSeed;

/// The two CRM objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `companies` (`0-2`).
    Companies,
    /// `contacts` (`0-1`).
    Contacts,
}

impl Kind {
    /// Parses an object type path segment: plural name, singular name or type id.
    pub fn parse(s: &str) -> Option<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "companies" | "company" | "0-2" => Some(Kind::Companies),
            "contacts" | "contact" | "0-1" => Some(Kind::Contacts),
            _ => None,
        }
    }

    /// Plural name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Companies => "companies",
            Kind::Contacts => "contacts",
        }
    }

    /// Singular name (webhook subscription types).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Companies => "company",
            Kind::Contacts => "contact",
        }
    }

    /// Object type id.
    pub fn type_id(self) -> &'static str {
        match self {
            Kind::Companies => "0-2",
            Kind::Contacts => "0-1",
        }
    }

    /// The other object.
    pub fn other(self) -> Kind {
        match self {
            Kind::Companies => Kind::Contacts,
            Kind::Contacts => Kind::Companies,
        }
    }

    /// The property holding the last-modified date.
    pub fn modified_prop(self) -> &'static str {
        match self {
            Kind::Companies => "hs_lastmodifieddate",
            Kind::Contacts => "lastmodifieddate",
        }
    }

    /// Properties returned when none are requested.
    pub fn default_props(self) -> &'static [&'static str] {
        match self {
            Kind::Companies => &[
                "createdate",
                "domain",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
            ],
            Kind::Contacts => &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
        }
    }
}

/// Who made a change (webhook `changeSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Through the public API.
    Api,
    /// A person in the UI (`/_sandbox/edit`).
    Ui,
}

impl Source {
    /// HubSpot's `changeSource` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "INTEGRATION",
            Source::Ui => "CRM_UI",
        }
    }
}

/// One change, as fed to webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A record was created.
    Creation {
        kind: Kind,
        id: u64,
        at: i64,
        source: Source,
    },
    /// A property value changed (`value` empty when cleared).
    Property {
        kind: Kind,
        id: u64,
        name: String,
        value: String,
        at: i64,
        source: Source,
    },
    /// A record was archived.
    Deletion {
        kind: Kind,
        id: u64,
        at: i64,
        source: Source,
    },
    /// A contact↔company association type was added or removed.
    Association {
        contact: u64,
        company: u64,
        primary: bool,
        removed: bool,
        at: i64,
        source: Source,
    },
}

/// One CRM record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Numeric id.
    pub id: u64,
    /// Property values (never empty strings: an empty value is an absent one).
    pub props: BTreeMap<String, String>,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Last modification time, ms.
    pub updated_ms: i64,
    /// When archived, ms.
    pub archived_ms: Option<i64>,
}

/// Why a store operation was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// Invalid property values (400 VALIDATION_ERROR).
    Validation(Vec<PropError>),
    /// A record with the same unique value exists (409 CONFLICT).
    Conflict {
        kind: Kind,
        property: String,
        existing: u64,
    },
    /// No such record (404 OBJECT_NOT_FOUND).
    NotFound(String),
    /// Any other invalid input (400 VALIDATION_ERROR with this message).
    Invalid(String),
}

impl StoreError {
    /// The human message of this error.
    pub fn message(&self) -> String {
        match self {
            StoreError::Validation(errs) => {
                let items: Vec<serde_json::Value> = errs
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "isValid": false,
                            "message": e.message,
                            "error": e.code,
                            "name": e.name,
                            "localizedErrorMessage": e.message,
                        })
                    })
                    .collect();
                format!(
                    "Property values were not valid: {}",
                    serde_json::Value::Array(items)
                )
            }
            StoreError::Conflict {
                kind,
                property,
                existing,
            } => {
                if *kind == Kind::Contacts && property == "email" {
                    format!("Contact already exists. Existing ID: {existing}")
                } else {
                    format!(
                        "A {} with the unique value for property `{property}` already exists. \
                         Existing ID: {existing}",
                        kind.singular()
                    )
                }
            }
            StoreError::NotFound(id) => {
                format!("Object not found.  objectId are usually numeric. (`{id}`)")
            }
            StoreError::Invalid(m) => m.clone(),
        }
    }
}

/// One object's records and indexes.
#[derive(Debug, Clone)]
pub struct ObjStore {
    /// Which object.
    pub kind: Kind,
    /// Records by id (archived ones included).
    pub records: BTreeMap<u64, Record>,
    /// The property catalogue.
    pub catalogue: BTreeMap<String, PropertyDef>,
    /// Unique property → lower-cased value → id (live records only).
    unique: HashMap<String, HashMap<String, u64>>,
    /// The next id to hand out.
    next_id: u64,
}

impl ObjStore {
    fn new(kind: Kind) -> ObjStore {
        let catalogue = catalogue(kind);
        let mut unique = HashMap::new();
        for (name, def) in &catalogue {
            if def.unique && name != "hs_object_id" {
                unique.insert(name.clone(), HashMap::new());
            }
        }
        ObjStore {
            kind,
            records: BTreeMap::new(),
            catalogue,
            unique,
            next_id: crate::data::HUBSPOT_FIRST_ID,
        }
    }

    /// A live (not archived) record.
    pub fn live(&self, id: u64) -> Option<&Record> {
        self.records.get(&id).filter(|r| r.archived_ms.is_none())
    }

    /// Resolves an id given as `idProperty` value (default `hs_object_id`) to a live record.
    pub fn resolve(&self, id: &str, id_property: Option<&str>) -> Result<Option<u64>, StoreError> {
        match id_property {
            None | Some("hs_object_id") => Ok(id
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| self.live(*n).is_some())),
            Some(p) => match self.unique.get(p) {
                Some(index) => Ok(index.get(&id.to_lowercase()).copied()),
                None => Err(StoreError::Invalid(format!(
                    "Property {p} is not a unique identifier property for {} and cannot be used \
                     as idProperty",
                    self.kind.as_str()
                ))),
            },
        }
    }

    /// Resolves an id including archived records (for `archived=true` reads).
    pub fn resolve_archived(&self, id: &str) -> Option<u64> {
        id.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| self.records.get(n).is_some_and(|r| r.archived_ms.is_some()))
    }

    fn alloc_id(&mut self) -> u64 {
        // Ids grow with small irregular gaps, like a shared id space would produce.
        let gap = 1 + (self.next_id % 7);
        self.next_id += gap;
        self.next_id
    }

    /// Validates raw input values: unknown, read-only and malformed properties are errors.
    /// Returns the normalised changes (`None` = clear).
    fn validate(
        &self,
        input: &[(String, String)],
        allow_read_only: bool,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut errors = Vec::new();
        let mut out = Vec::with_capacity(input.len());
        for (name, raw) in input {
            let Some(def) = self.catalogue.get(name) else {
                errors.push(PropError {
                    name: name.clone(),
                    code: "PROPERTY_DOESNT_EXIST",
                    message: format!("Property \"{name}\" does not exist"),
                });
                continue;
            };
            if def.read_only && !allow_read_only {
                errors.push(PropError {
                    name: name.clone(),
                    code: "READ_ONLY_VALUE",
                    message: format!(
                        "Property \"{name}\" is a read only property; its value cannot be set."
                    ),
                });
                continue;
            }
            match def.check(raw) {
                Ok(v) => {
                    if let (Some(v), true) = (&v, self.kind == Kind::Contacts && name == "email")
                        && !valid_email(v)
                    {
                        errors.push(PropError {
                            name: name.clone(),
                            code: "INVALID_EMAIL",
                            message: format!("Email address {v} is invalid"),
                        });
                        continue;
                    }
                    out.push((name.clone(), v));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(StoreError::Validation(errors))
        }
    }

    fn check_unique(
        &self,
        changes: &[(String, Option<String>)],
        own: Option<u64>,
    ) -> Result<(), StoreError> {
        for (name, value) in changes {
            if let (Some(index), Some(v)) = (self.unique.get(name), value)
                && let Some(existing) = index.get(&v.to_lowercase())
                && Some(*existing) != own
            {
                return Err(StoreError::Conflict {
                    kind: self.kind,
                    property: name.clone(),
                    existing: *existing,
                });
            }
        }
        Ok(())
    }

    /// The values a record holds for a unique property (lower-cased); a contact's secondary
    /// emails count as its emails too.
    fn unique_values(&self, rec: &Record, prop: &str) -> Vec<String> {
        let mut out: Vec<String> = rec
            .props
            .get(prop)
            .map(|v| v.to_lowercase())
            .into_iter()
            .collect();
        if self.kind == Kind::Contacts
            && prop == "email"
            && let Some(extra) = rec.props.get("hs_additional_emails")
        {
            out.extend(
                extra
                    .split(';')
                    .map(|e| e.trim().to_lowercase())
                    .filter(|e| !e.is_empty()),
            );
        }
        out
    }

    fn index(&mut self, id: u64) {
        let Some(rec) = self.records.get(&id) else {
            return;
        };
        let props: Vec<String> = self.unique.keys().cloned().collect();
        let entries: Vec<(String, Vec<String>)> = props
            .into_iter()
            .map(|p| {
                let vals = self.unique_values(rec, &p);
                (p, vals)
            })
            .collect();
        for (prop, vals) in entries {
            if let Some(index) = self.unique.get_mut(&prop) {
                for v in vals {
                    index.insert(v, id);
                }
            }
        }
    }

    fn unindex(&mut self, id: u64) {
        let Some(rec) = self.records.get(&id) else {
            return;
        };
        let props: Vec<String> = self.unique.keys().cloned().collect();
        let entries: Vec<(String, Vec<String>)> = props
            .into_iter()
            .map(|p| {
                let vals = self.unique_values(rec, &p);
                (p, vals)
            })
            .collect();
        for (prop, vals) in entries {
            if let Some(index) = self.unique.get_mut(&prop) {
                for v in vals {
                    if index.get(&v) == Some(&id) {
                        index.remove(&v);
                    }
                }
            }
        }
    }

    /// Adds a custom property definition (and its unique index).
    pub fn add_property(&mut self, def: PropertyDef) {
        if def.unique {
            let mut index = HashMap::new();
            for rec in self.records.values().filter(|r| r.archived_ms.is_none()) {
                if let Some(v) = rec.props.get(&def.name) {
                    index.insert(v.to_lowercase(), rec.id);
                }
            }
            self.unique.insert(def.name.clone(), index);
        }
        self.catalogue.insert(def.name.clone(), def);
    }

    /// Number of properties with unique values (custom ones count towards the limit of 10).
    pub fn unique_count(&self) -> usize {
        self.catalogue
            .values()
            .filter(|d| d.unique && !d.hubspot_defined)
            .count()
    }
}

/// The order of the standard lifecycle stages (custom numeric stages have none).
pub fn lifecycle_rank(stage: &str) -> Option<u8> {
    Some(match stage {
        "subscriber" => 0,
        "lead" => 1,
        "marketingqualifiedlead" => 2,
        "salesqualifiedlead" => 3,
        "opportunity" => 4,
        "customer" => 5,
        "evangelist" => 6,
        "other" => 7,
        _ => return None,
    })
}

/// A loose email check like HubSpot's: one `@`, a dotted domain, no spaces.
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// Association type ids, contact → company direction.
pub const PRIMARY_CONTACT_TO_COMPANY: u32 = 1;
/// Unlabelled contact → company.
pub const UNLABELED_CONTACT_TO_COMPANY: u32 = 279;
/// Primary company → contact.
pub const PRIMARY_COMPANY_TO_CONTACT: u32 = 2;
/// Unlabelled company → contact.
pub const UNLABELED_COMPANY_TO_CONTACT: u32 = 280;

/// Converts a type id given in the `from` direction to the contact→company type id.
pub fn to_contact_direction(from: Kind, type_id: u32) -> Option<u32> {
    match (from, type_id) {
        (Kind::Contacts, PRIMARY_CONTACT_TO_COMPANY)
        | (Kind::Companies, PRIMARY_COMPANY_TO_CONTACT) => Some(PRIMARY_CONTACT_TO_COMPANY),
        (Kind::Contacts, UNLABELED_CONTACT_TO_COMPANY)
        | (Kind::Companies, UNLABELED_COMPANY_TO_CONTACT) => Some(UNLABELED_CONTACT_TO_COMPANY),
        _ => None,
    }
}

/// Converts a contact→company type id to the direction seen `from` that object.
pub fn from_contact_direction(from: Kind, type_id: u32) -> u32 {
    match (from, type_id) {
        (Kind::Companies, PRIMARY_CONTACT_TO_COMPANY) => PRIMARY_COMPANY_TO_CONTACT,
        (Kind::Companies, UNLABELED_CONTACT_TO_COMPANY) => UNLABELED_COMPANY_TO_CONTACT,
        (_, t) => t,
    }
}

/// The whole portal.
#[derive(Debug, Clone)]
pub struct HsStore {
    /// Companies.
    pub companies: ObjStore,
    /// Contacts.
    pub contacts: ObjStore,
    /// Contact → (company → contact→company type ids).
    by_contact: HashMap<u64, BTreeMap<u64, BTreeSet<u32>>>,
    /// Company → contacts.
    by_company: HashMap<u64, BTreeSet<u64>>,
    /// Where change events go (webhook delivery), if anywhere.
    sink: Option<ChangeSink>,
}

/// The sending end of the change feed, counting events not yet fully handled by delivery.
#[derive(Debug, Clone)]
pub struct ChangeSink {
    tx: UnboundedSender<Change>,
    pending: Arc<AtomicU64>,
}

impl ChangeSink {
    /// A sink over `tx`; `pending` is decremented by the receiver when it is done with an event.
    pub fn new(tx: UnboundedSender<Change>, pending: Arc<AtomicU64>) -> ChangeSink {
        ChangeSink { tx, pending }
    }

    fn send(&self, change: Change) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(change).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl HsStore {
    /// Builds the portal from seeded data.
    pub fn from_seed(seed: &HsSeed, sink: Option<ChangeSink>) -> HsStore {
        let mut s = HsStore {
            companies: ObjStore::new(Kind::Companies),
            contacts: ObjStore::new(Kind::Contacts),
            by_contact: HashMap::new(),
            by_company: HashMap::new(),
            sink: None,
        };
        for (kind, records) in [
            (Kind::Companies, &seed.companies),
            (Kind::Contacts, &seed.contacts),
        ] {
            let obj = s.obj_mut(kind);
            for r in records {
                let mut props = r.props.clone();
                props.insert("hs_object_id".into(), r.id.to_string());
                props.insert("createdate".into(), iso_ms(r.created_ms));
                props.insert(kind.modified_prop().into(), iso_ms(r.updated_ms));
                obj.records.insert(
                    r.id,
                    Record {
                        id: r.id,
                        props,
                        created_ms: r.created_ms,
                        updated_ms: r.updated_ms,
                        archived_ms: None,
                    },
                );
                obj.index(r.id);
                obj.next_id = obj.next_id.max(r.id);
            }
        }
        for (contact, company, primary) in &seed.associations {
            let set = s
                .by_contact
                .entry(*contact)
                .or_default()
                .entry(*company)
                .or_default();
            set.insert(UNLABELED_CONTACT_TO_COMPANY);
            if *primary {
                set.insert(PRIMARY_CONTACT_TO_COMPANY);
                if let Some(rec) = s.contacts.records.get_mut(contact) {
                    rec.props
                        .insert("associatedcompanyid".into(), company.to_string());
                }
            }
            s.by_company.entry(*company).or_default().insert(*contact);
        }
        let counts: Vec<(u64, usize)> = s
            .by_company
            .iter()
            .map(|(c, set)| (*c, set.len()))
            .collect();
        for (company, n) in counts {
            if let Some(rec) = s.companies.records.get_mut(&company) {
                rec.props
                    .insert("num_associated_contacts".into(), n.to_string());
            }
        }
        s.sink = sink;
        s
    }

    /// The records of one object.
    pub fn obj(&self, kind: Kind) -> &ObjStore {
        match kind {
            Kind::Companies => &self.companies,
            Kind::Contacts => &self.contacts,
        }
    }

    /// The records of one object, mutable.
    pub fn obj_mut(&mut self, kind: Kind) -> &mut ObjStore {
        match kind {
            Kind::Companies => &mut self.companies,
            Kind::Contacts => &mut self.contacts,
        }
    }

    fn emit(&self, change: Change) {
        if let Some(sink) = &self.sink {
            sink.send(change);
        }
    }

    /// Validates a create without applying it (used by batch create's all-or-nothing check).
    pub fn check_create(
        &self,
        kind: Kind,
        input: &[(String, String)],
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let obj = self.obj(kind);
        let changes = obj.validate(input, false)?;
        let has = |n: &str| changes.iter().any(|(k, v)| k == n && v.is_some());
        match kind {
            Kind::Contacts if !(has("email") || has("firstname") || has("lastname")) => {
                return Err(StoreError::Invalid(
                    "Contacts must have at least one of the properties email, firstname or \
                     lastname"
                        .into(),
                ));
            }
            Kind::Companies if !(has("name") || has("domain")) => {
                return Err(StoreError::Invalid(
                    "Companies must have at least one of the properties name or domain".into(),
                ));
            }
            _ => {}
        }
        obj.check_unique(&changes, None)?;
        Ok(changes)
    }

    /// Creates a record. `input` holds raw values (empty = unset).
    pub fn create(
        &mut self,
        kind: Kind,
        input: &[(String, String)],
        source: Source,
        now: i64,
    ) -> Result<u64, StoreError> {
        let changes = self.check_create(kind, input)?;
        let obj = self.obj_mut(kind);
        let id = obj.alloc_id();
        let mut props = BTreeMap::new();
        for (k, v) in changes {
            if let Some(v) = v {
                props.insert(k, v);
            }
        }
        props.insert("hs_object_id".into(), id.to_string());
        props.insert("createdate".into(), iso_ms(now));
        props.insert(kind.modified_prop().into(), iso_ms(now));
        let set: Vec<(String, String)> =
            props.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        obj.records.insert(
            id,
            Record {
                id,
                props,
                created_ms: now,
                updated_ms: now,
                archived_ms: None,
            },
        );
        obj.index(id);
        self.emit(Change::Creation {
            kind,
            id,
            at: now,
            source,
        });
        for (name, value) in set {
            self.emit(Change::Property {
                kind,
                id,
                name,
                value,
                at: now,
                source,
            });
        }
        Ok(id)
    }

    /// Validates an update without applying it.
    pub fn check_update(
        &self,
        kind: Kind,
        id: u64,
        input: &[(String, String)],
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let obj = self.obj(kind);
        if obj.live(id).is_none() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let changes = obj.validate(input, false)?;
        obj.check_unique(&changes, Some(id))?;
        Ok(changes)
    }

    /// Updates a record; returns whether anything changed. Empty values clear.
    pub fn update(
        &mut self,
        kind: Kind,
        id: u64,
        input: &[(String, String)],
        source: Source,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut changes = self.check_update(kind, id, input)?;
        if source == Source::Api {
            // Through the API the lifecycle stage only moves forward: a move to an earlier
            // stage is silently ignored (clear it first, then set the earlier stage).
            let current = self
                .obj(kind)
                .records
                .get(&id)
                .and_then(|r| r.props.get("lifecyclestage"))
                .and_then(|v| lifecycle_rank(v));
            changes.retain(|(k, v)| {
                k != "lifecyclestage"
                    || match (current, v.as_deref().and_then(lifecycle_rank)) {
                        (Some(old), Some(new)) => new >= old,
                        _ => true,
                    }
            });
        }
        Ok(self.apply(kind, id, changes, source, now))
    }

    /// Applies validated changes, bumping the modification date when something changed.
    fn apply(
        &mut self,
        kind: Kind,
        id: u64,
        changes: Vec<(String, Option<String>)>,
        source: Source,
        now: i64,
    ) -> bool {
        let obj = self.obj_mut(kind);
        obj.unindex(id);
        let mut changed = Vec::new();
        if let Some(rec) = obj.records.get_mut(&id) {
            for (name, value) in changes {
                let old = rec.props.get(&name).cloned();
                if old == value {
                    continue;
                }
                match &value {
                    Some(v) => {
                        rec.props.insert(name.clone(), v.clone());
                    }
                    None => {
                        rec.props.remove(&name);
                    }
                }
                changed.push((name, value.unwrap_or_default()));
            }
            if !changed.is_empty() {
                rec.updated_ms = now;
                rec.props.insert(kind.modified_prop().into(), iso_ms(now));
            }
        }
        obj.index(id);
        let any = !changed.is_empty();
        for (name, value) in changed {
            self.emit(Change::Property {
                kind,
                id,
                name,
                value,
                at: now,
                source,
            });
        }
        any
    }

    /// Archives a record and removes its associations; false when it did not exist.
    pub fn archive(&mut self, kind: Kind, id: u64, source: Source, now: i64) -> bool {
        if self.obj(kind).live(id).is_none() {
            return false;
        }
        // Associations go with the record.
        let pairs: Vec<(u64, u64)> = match kind {
            Kind::Contacts => self
                .by_contact
                .get(&id)
                .map(|m| m.keys().map(|c| (id, *c)).collect())
                .unwrap_or_default(),
            Kind::Companies => self
                .by_company
                .get(&id)
                .map(|s| s.iter().map(|c| (*c, id)).collect())
                .unwrap_or_default(),
        };
        for (contact, company) in pairs {
            self.remove_association(contact, company, None, source, now);
        }
        let obj = self.obj_mut(kind);
        obj.unindex(id);
        if let Some(rec) = obj.records.get_mut(&id) {
            rec.archived_ms = Some(now);
        }
        self.emit(Change::Deletion {
            kind,
            id,
            at: now,
            source,
        });
        true
    }

    /// Contact→company type ids between a contact and a company.
    pub fn association_types(&self, contact: u64, company: u64) -> Option<&BTreeSet<u32>> {
        self.by_contact.get(&contact).and_then(|m| m.get(&company))
    }

    /// Associated ids of the other object, with their type ids in the direction seen from
    /// `kind` (ascending by id).
    pub fn associations_of(&self, kind: Kind, id: u64) -> Vec<(u64, Vec<u32>)> {
        match kind {
            Kind::Contacts => self
                .by_contact
                .get(&id)
                .map(|m| {
                    m.iter()
                        .map(|(c, t)| (*c, t.iter().copied().collect()))
                        .collect()
                })
                .unwrap_or_default(),
            Kind::Companies => self
                .by_company
                .get(&id)
                .map(|s| {
                    s.iter()
                        .filter_map(|contact| {
                            self.association_types(*contact, id).map(|t| {
                                (
                                    *contact,
                                    t.iter()
                                        .map(|x| from_contact_direction(Kind::Companies, *x))
                                        .collect(),
                                )
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The primary company of a contact.
    pub fn primary_company(&self, contact: u64) -> Option<u64> {
        self.by_contact.get(&contact).and_then(|m| {
            m.iter()
                .find(|(_, t)| t.contains(&PRIMARY_CONTACT_TO_COMPANY))
                .map(|(c, _)| *c)
        })
    }

    fn set_associated_company(&mut self, contact: u64, source: Source, now: i64) {
        let primary = self.primary_company(contact).map(|c| c.to_string());
        let current = self
            .contacts
            .records
            .get(&contact)
            .and_then(|r| r.props.get("associatedcompanyid").cloned());
        if current != primary {
            self.apply(
                Kind::Contacts,
                contact,
                vec![("associatedcompanyid".into(), primary)],
                source,
                now,
            );
        }
    }

    fn recount(&mut self, company: u64) {
        let n = self.by_company.get(&company).map_or(0, BTreeSet::len);
        if let Some(rec) = self.companies.records.get_mut(&company) {
            if n == 0 {
                rec.props.remove("num_associated_contacts");
            } else {
                rec.props
                    .insert("num_associated_contacts".into(), n.to_string());
            }
        }
    }

    /// Associates a contact with a company with the given contact→company type ids (the
    /// unlabelled type is always added; a contact without a primary company gets this one as
    /// primary; a new primary replaces the old one, which stays associated unlabelled).
    pub fn associate(
        &mut self,
        contact: u64,
        company: u64,
        types: &[u32],
        source: Source,
        now: i64,
    ) -> Result<(), StoreError> {
        if self.contacts.live(contact).is_none() {
            return Err(StoreError::NotFound(contact.to_string()));
        }
        if self.companies.live(company).is_none() {
            return Err(StoreError::NotFound(company.to_string()));
        }
        let mut wanted: BTreeSet<u32> = types.iter().copied().collect();
        wanted.insert(UNLABELED_CONTACT_TO_COMPANY);
        if self.primary_company(contact).is_none() {
            wanted.insert(PRIMARY_CONTACT_TO_COMPANY);
        }
        if wanted.contains(&PRIMARY_CONTACT_TO_COMPANY)
            && let Some(old) = self.primary_company(contact)
            && old != company
        {
            self.remove_association(
                contact,
                old,
                Some(&[PRIMARY_CONTACT_TO_COMPANY]),
                source,
                now,
            );
        }
        let set = self
            .by_contact
            .entry(contact)
            .or_default()
            .entry(company)
            .or_default();
        let added: Vec<u32> = wanted
            .iter()
            .filter(|t| !set.contains(t))
            .copied()
            .collect();
        set.extend(added.iter().copied());
        self.by_company.entry(company).or_default().insert(contact);
        self.recount(company);
        for t in &added {
            self.emit(Change::Association {
                contact,
                company,
                primary: *t == PRIMARY_CONTACT_TO_COMPANY,
                removed: false,
                at: now,
                source,
            });
        }
        self.set_associated_company(contact, source, now);
        Ok(())
    }

    /// Removes association types between a contact and a company (`None` or the unlabelled
    /// type = all of them). Returns whether anything was removed.
    pub fn remove_association(
        &mut self,
        contact: u64,
        company: u64,
        types: Option<&[u32]>,
        source: Source,
        now: i64,
    ) -> bool {
        let Some(set) = self
            .by_contact
            .get_mut(&contact)
            .and_then(|m| m.get_mut(&company))
        else {
            return false;
        };
        let all = types.is_none_or(|t| t.contains(&UNLABELED_CONTACT_TO_COMPANY));
        let removed: Vec<u32> = if all {
            set.iter().copied().collect()
        } else {
            types
                .unwrap_or(&[])
                .iter()
                .filter(|t| set.contains(t))
                .copied()
                .collect()
        };
        for t in &removed {
            set.remove(t);
        }
        if all || set.is_empty() {
            if let Some(m) = self.by_contact.get_mut(&contact) {
                m.remove(&company);
                if m.is_empty() {
                    self.by_contact.remove(&contact);
                }
            }
            if let Some(s) = self.by_company.get_mut(&company) {
                s.remove(&contact);
                if s.is_empty() {
                    self.by_company.remove(&company);
                }
            }
        }
        self.recount(company);
        for t in &removed {
            self.emit(Change::Association {
                contact,
                company,
                primary: *t == PRIMARY_CONTACT_TO_COMPANY,
                removed: true,
                at: now,
                source,
            });
        }
        if !removed.is_empty() {
            self.set_associated_company(contact, source, now);
        }
        !removed.is_empty()
    }

    /// Sets the primary company as a person would in the UI (`associatedcompanyid` edits):
    /// `None` removes the primary label.
    pub fn set_primary(
        &mut self,
        contact: u64,
        company: Option<u64>,
        source: Source,
        now: i64,
    ) -> Result<(), StoreError> {
        match company {
            Some(c) => self.associate(contact, c, &[PRIMARY_CONTACT_TO_COMPANY], source, now),
            None => {
                if let Some(old) = self.primary_company(contact) {
                    self.remove_association(
                        contact,
                        old,
                        Some(&[PRIMARY_CONTACT_TO_COMPANY]),
                        source,
                        now,
                    );
                }
                Ok(())
            }
        }
    }

    /// Applies a write from the admin API, where read-only system fields are refused but
    /// `associatedcompanyid` moves the primary association.
    pub fn admin_edit(
        &mut self,
        kind: Kind,
        id: Option<u64>,
        mut input: Vec<(String, String)>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let primary = if kind == Kind::Contacts {
            input
                .iter()
                .position(|(k, _)| k == "associatedcompanyid")
                .map(|i| input.remove(i).1)
        } else {
            None
        };
        let primary = match primary {
            None => None,
            Some(v) if v.is_empty() => Some(None),
            Some(v) => match v
                .parse::<u64>()
                .ok()
                .filter(|c| self.companies.live(*c).is_some())
            {
                Some(c) => Some(Some(c)),
                None => return Err(StoreError::NotFound(v)),
            },
        };
        let id = match id {
            None => self.create(kind, &input, Source::Ui, now)?,
            Some(id) => {
                self.update(kind, id, &input, Source::Ui, now)?;
                id
            }
        };
        if let Some(p) = primary {
            self.set_primary(id, p, Source::Ui, now)?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> HsStore {
        HsStore::from_seed(&HsSeed::default(), None)
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn duplicate_email_conflicts_and_changes_nothing() {
        let mut s = empty();
        let a = s
            .create(Kind::Contacts, &kv(&[("email", "a@x.com")]), Source::Api, 1)
            .unwrap();
        let err = s
            .create(Kind::Contacts, &kv(&[("email", "A@X.com")]), Source::Api, 2)
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::Conflict {
                kind: Kind::Contacts,
                property: "email".into(),
                existing: a
            }
        );
        assert_eq!(s.contacts.records.len(), 1);
    }

    #[test]
    fn secondary_emails_count_for_dedup_and_lookup() {
        let mut seed = HsSeed::default();
        let mut props = BTreeMap::new();
        props.insert("email".to_string(), "main@x.com".to_string());
        props.insert(
            "hs_additional_emails".to_string(),
            "Old@X.com;other@x.com".to_string(),
        );
        seed.contacts.push(crate::data::HsSeedRecord {
            id: 42,
            props,
            created_ms: 1,
            updated_ms: 1,
        });
        let mut s = HsStore::from_seed(&seed, None);
        assert_eq!(
            s.contacts.resolve("old@x.com", Some("email")).unwrap(),
            Some(42)
        );
        let err = s
            .create(
                Kind::Contacts,
                &kv(&[("email", "other@x.com")]),
                Source::Api,
                2,
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { existing: 42, .. }));
    }

    #[test]
    fn validation_lists_every_bad_property() {
        let mut s = empty();
        let err = s
            .create(
                Kind::Companies,
                &kv(&[("name", "A"), ("nope", "1"), ("hs_object_id", "5")]),
                Source::Api,
                1,
            )
            .unwrap_err();
        let StoreError::Validation(errs) = err else {
            panic!("expected validation error")
        };
        let codes: Vec<_> = errs.iter().map(|e| e.code).collect();
        assert_eq!(codes, vec!["PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"]);
        assert!(s.companies.records.is_empty());
    }

    #[test]
    fn primary_association_drives_associatedcompanyid() {
        let mut s = empty();
        let c1 = s
            .create(Kind::Companies, &kv(&[("name", "One")]), Source::Api, 1)
            .unwrap();
        let c2 = s
            .create(Kind::Companies, &kv(&[("name", "Two")]), Source::Api, 1)
            .unwrap();
        let p = s
            .create(Kind::Contacts, &kv(&[("email", "p@x.com")]), Source::Api, 1)
            .unwrap();
        // The first association becomes primary.
        s.associate(p, c1, &[UNLABELED_CONTACT_TO_COMPANY], Source::Api, 2)
            .unwrap();
        assert_eq!(s.primary_company(p), Some(c1));
        assert_eq!(
            s.contacts.records[&p].props.get("associatedcompanyid"),
            Some(&c1.to_string())
        );
        // A new primary replaces it; the old company stays associated, unlabelled.
        s.associate(p, c2, &[PRIMARY_CONTACT_TO_COMPANY], Source::Api, 3)
            .unwrap();
        assert_eq!(s.primary_company(p), Some(c2));
        assert_eq!(
            s.association_types(p, c1)
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![UNLABELED_CONTACT_TO_COMPANY]
        );
        assert_eq!(s.contacts.records[&p].updated_ms, 3);
        // Removing everything clears the property.
        s.remove_association(p, c2, None, Source::Api, 4);
        assert_eq!(s.primary_company(p), None);
        assert!(
            !s.contacts.records[&p]
                .props
                .contains_key("associatedcompanyid")
        );
    }

    #[test]
    fn lifecycle_stage_only_moves_forward_through_the_api() {
        let mut s = empty();
        let id = s
            .create(
                Kind::Contacts,
                &kv(&[("email", "l@x.com"), ("lifecyclestage", "customer")]),
                Source::Api,
                1,
            )
            .unwrap();
        let stage = |s: &HsStore| s.contacts.records[&id].props.get("lifecyclestage").cloned();
        // Backwards: ignored, while the other property in the same request still applies.
        s.update(
            Kind::Contacts,
            id,
            &kv(&[("lifecyclestage", "lead"), ("jobtitle", "CEO")]),
            Source::Api,
            2,
        )
        .unwrap();
        assert_eq!(stage(&s).as_deref(), Some("customer"));
        assert_eq!(s.contacts.records[&id].props["jobtitle"], "CEO");
        // Clear, then set the earlier stage.
        s.update(
            Kind::Contacts,
            id,
            &kv(&[("lifecyclestage", "")]),
            Source::Api,
            3,
        )
        .unwrap();
        s.update(
            Kind::Contacts,
            id,
            &kv(&[("lifecyclestage", "lead")]),
            Source::Api,
            4,
        )
        .unwrap();
        assert_eq!(stage(&s).as_deref(), Some("lead"));
        // A person in the UI may move it back.
        s.update(
            Kind::Contacts,
            id,
            &kv(&[("lifecyclestage", "evangelist")]),
            Source::Api,
            5,
        )
        .unwrap();
        s.update(
            Kind::Contacts,
            id,
            &kv(&[("lifecyclestage", "subscriber")]),
            Source::Ui,
            6,
        )
        .unwrap();
        assert_eq!(stage(&s).as_deref(), Some("subscriber"));
    }

    #[test]
    fn same_value_update_changes_nothing() {
        let mut s = empty();
        let id = s
            .create(Kind::Companies, &kv(&[("name", "A")]), Source::Api, 1)
            .unwrap();
        assert!(
            !s.update(Kind::Companies, id, &kv(&[("name", "A")]), Source::Api, 5)
                .unwrap()
        );
        assert_eq!(s.companies.records[&id].updated_ms, 1);
        assert!(
            s.update(Kind::Companies, id, &kv(&[("name", "")]), Source::Api, 6)
                .unwrap()
        );
        assert!(!s.companies.records[&id].props.contains_key("name"));
    }
}
