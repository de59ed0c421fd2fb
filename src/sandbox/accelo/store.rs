//! The Accelo deployment's state: companies, contacts, affiliations, addresses, statuses,
//! countries and states, in BTreeMaps by numeric id, plus the field model used to render any
//! object with `_fields` (defaults, `_ALL`, linked objects as ids or expanded objects).
//!
//! Affiliations are reached only through [`AcStore::insert_affiliation`] /
//! [`AcStore::remove_affiliation`], which keep two indexes in step with them: the affiliations
//! of each contact and of each company. Every "affiliations of X" question (contact email
//! filters and `_search`, `/companies/{id}/contacts`, default-affiliation fallbacks, company
//! deletion) is answered from those indexes, never by scanning every affiliation.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::data::{AcSeed, COMPANY_STATUSES, CONTACT_STATUSES, COUNTRIES, country_id, states};

/// The object types the simulator renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Obj {
    Company,
    Contact,
    Affiliation,
    Address,
    CompanyStatus,
    ContactStatus,
    State,
    Country,
}

impl Obj {
    /// Parses a resource name (`companies`, `contacts`, `affiliations`, `addresses`).
    pub fn parse_resource(s: &str) -> Option<Obj> {
        match s {
            "companies" | "company" => Some(Obj::Company),
            "contacts" | "contact" => Some(Obj::Contact),
            "affiliations" | "affiliation" => Some(Obj::Affiliation),
            "addresses" | "address" => Some(Obj::Address),
            _ => None,
        }
    }

    /// The resource path segment.
    pub fn resource(self) -> &'static str {
        match self {
            Obj::Company => "companies",
            Obj::Contact => "contacts",
            Obj::Affiliation => "affiliations",
            Obj::Address => "addresses",
            Obj::CompanyStatus => "companies/statuses",
            Obj::ContactStatus => "contacts/statuses",
            Obj::State => "states",
            Obj::Country => "countries",
        }
    }

    /// Fields returned when none are requested.
    pub fn defaults(self) -> &'static [&'static str] {
        match self {
            Obj::Company => &["id", "name"],
            Obj::Contact => &["id", "firstname", "surname", "mobile", "email"],
            Obj::Affiliation => &["id", "mobile", "email"],
            Obj::Address => &["id", "full"],
            Obj::CompanyStatus | Obj::ContactStatus => &["id", "title"],
            Obj::State | Obj::Country => &["id", "title"],
        }
    }
}

/// A field value: a scalar, or a link to another object (rendered as its id unless expanded).
#[derive(Debug, Clone)]
pub enum Field {
    /// A JSON scalar (strings for ids and timestamps, `null` when unset).
    Val(Value),
    /// A linked object.
    Link(Obj, Option<u64>),
}

fn s(v: &Option<String>) -> Field {
    Field::Val(v.as_ref().map_or(Value::Null, |x| json!(x)))
}

fn n(v: i64) -> Field {
    Field::Val(json!(v.to_string()))
}

fn yes(b: bool) -> Field {
    Field::Val(json!(if b { "yes" } else { "no" }))
}

/// A status of companies or contacts.
#[derive(Debug, Clone)]
pub struct Status {
    pub id: u64,
    pub title: String,
    pub standing: String,
    pub color: String,
    pub ordering: u64,
    pub start: bool,
}

/// A company.
#[derive(Debug, Clone, Default)]
pub struct Company {
    pub id: u64,
    pub name: String,
    pub custom_id: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub fax: Option<String>,
    pub comments: Option<String>,
    pub status: Option<u64>,
    pub standing: String,
    pub postal_address: Option<u64>,
    pub default_affiliation: Option<u64>,
    pub date_created: i64,
    pub date_modified: i64,
    pub date_last_interacted: i64,
}

/// A contact (a person; linked to companies only through affiliations).
#[derive(Debug, Clone, Default)]
pub struct Contact {
    pub id: u64,
    pub firstname: String,
    pub surname: String,
    pub middlename: Option<String>,
    pub username: Option<String>,
    pub title: Option<String>,
    pub timezone: Option<String>,
    pub comments: Option<String>,
    pub status: Option<u64>,
    pub standing: String,
    pub default_affiliation: Option<u64>,
    pub date_created: i64,
    pub date_modified: i64,
    pub date_last_interacted: i64,
}

/// One contact's role at one company, with the contact details.
#[derive(Debug, Clone, Default)]
pub struct Affiliation {
    pub id: u64,
    pub company: u64,
    pub contact: u64,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub fax: Option<String>,
    pub position: Option<String>,
    pub standing: String,
    pub postal_address: Option<u64>,
    pub physical_address: Option<u64>,
    pub communication: String,
    pub invoice_method: String,
    pub portal_access: String,
    pub date_modified: i64,
    pub date_last_interacted: i64,
}

/// An address against a company or contact.
#[derive(Debug, Clone, Default)]
pub struct Address {
    pub id: u64,
    pub against_type: String,
    pub against_id: u64,
    pub title: Option<String>,
    pub street1: Option<String>,
    pub street2: Option<String>,
    pub city: Option<String>,
    pub zipcode: Option<String>,
    pub state: Option<u64>,
    pub country: Option<u64>,
    pub postal: bool,
    pub physical: bool,
    pub date_modified: i64,
}

/// A state of a country.
#[derive(Debug, Clone)]
pub struct StateRow {
    pub id: u64,
    pub country: u64,
    pub title: String,
    pub abbreviation: String,
}

/// A country.
#[derive(Debug, Clone)]
pub struct CountryRow {
    pub id: u64,
    pub title: String,
    pub code: String,
    pub prefix: String,
}

/// An Accelo webhook event: (`event_id`, object id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcEvent {
    /// `create_company`, `update_company`, `create_contact`, `update_contact`.
    pub event: &'static str,
    /// The object's id.
    pub id: u64,
}

/// The whole deployment.
#[derive(Debug, Clone, Default)]
pub struct AcStore {
    pub companies: BTreeMap<u64, Company>,
    pub contacts: BTreeMap<u64, Contact>,
    /// Private: changed only through `insert_affiliation` / `remove_affiliation`, which keep
    /// the indexes below in step.
    affiliations: BTreeMap<u64, Affiliation>,
    /// Affiliation ids of each contact.
    affiliations_by_contact: HashMap<u64, BTreeSet<u64>>,
    /// Affiliation ids of each company.
    affiliations_by_company: HashMap<u64, BTreeSet<u64>>,
    pub addresses: BTreeMap<u64, Address>,
    pub company_statuses: Vec<Status>,
    pub contact_statuses: Vec<Status>,
    pub states: Vec<StateRow>,
    pub countries: Vec<CountryRow>,
    /// Last id handed out per object.
    pub last_ids: BTreeMap<&'static str, u64>,
    sink: Option<UnboundedSender<AcEvent>>,
}

fn statuses(table: &[(u64, &str, &str, &str, u64, bool)]) -> Vec<Status> {
    table
        .iter()
        .map(|(id, title, standing, color, ordering, start)| Status {
            id: *id,
            title: (*title).to_string(),
            standing: (*standing).to_string(),
            color: (*color).to_string(),
            ordering: *ordering,
            start: *start,
        })
        .collect()
}

impl AcStore {
    /// Builds the deployment from seeded data.
    pub fn from_seed(seed: &AcSeed, sink: Option<UnboundedSender<AcEvent>>) -> AcStore {
        let company_statuses = statuses(COMPANY_STATUSES);
        let contact_statuses = statuses(CONTACT_STATUSES);
        let standing = |list: &[Status], id: u64| {
            list.iter()
                .find(|s| s.id == id)
                .map(|s| s.standing.clone())
                .unwrap_or_else(|| "active".into())
        };
        let mut st = AcStore {
            company_statuses,
            contact_statuses,
            states: states()
                .into_iter()
                .map(|(id, ci, title, abbr)| StateRow {
                    id,
                    country: country_id(ci),
                    title: title.to_string(),
                    abbreviation: abbr.to_string(),
                })
                .collect(),
            countries: COUNTRIES
                .iter()
                .enumerate()
                .map(|(i, c)| CountryRow {
                    id: country_id(i),
                    title: c.title.to_string(),
                    code: c.code.to_string(),
                    prefix: c.dial.to_string(),
                })
                .collect(),
            ..Default::default()
        };
        for c in &seed.companies {
            st.companies.insert(
                c.id,
                Company {
                    id: c.id,
                    name: c.name.clone(),
                    custom_id: c.custom_id.clone(),
                    website: c.website.clone(),
                    phone: c.phone.clone(),
                    fax: c.fax.clone(),
                    comments: c.comments.clone(),
                    status: Some(c.status),
                    standing: standing(&st.company_statuses, c.status),
                    postal_address: c.postal_address,
                    default_affiliation: None,
                    date_created: c.date_created,
                    date_modified: c.date_modified,
                    date_last_interacted: c.date_modified,
                },
            );
        }
        for c in &seed.contacts {
            st.contacts.insert(
                c.id,
                Contact {
                    id: c.id,
                    firstname: c.firstname.clone(),
                    surname: c.surname.clone(),
                    middlename: c.middlename.clone(),
                    username: None,
                    title: c.title.clone(),
                    timezone: None,
                    comments: c.comments.clone(),
                    status: Some(c.status),
                    standing: standing(&st.contact_statuses, c.status),
                    default_affiliation: c.default_affiliation,
                    date_created: c.date_created,
                    date_modified: c.date_modified,
                    date_last_interacted: c.date_modified,
                },
            );
        }
        for a in &seed.affiliations {
            st.insert_affiliation(Affiliation {
                id: a.id,
                company: a.company,
                contact: a.contact,
                email: a.email.clone(),
                phone: a.phone.clone(),
                mobile: a.mobile.clone(),
                fax: a.fax.clone(),
                position: a.position.clone(),
                standing: "active".into(),
                postal_address: None,
                physical_address: None,
                communication: "yes".into(),
                invoice_method: "email".into(),
                portal_access: "no".into(),
                date_modified: a.date_modified,
                date_last_interacted: a.date_modified,
            });
            if let Some(c) = st.companies.get_mut(&a.company)
                && c.default_affiliation.is_none()
            {
                c.default_affiliation = Some(a.id);
            }
        }
        for a in &seed.addresses {
            st.addresses.insert(
                a.id,
                Address {
                    id: a.id,
                    against_type: a.against_type.to_string(),
                    against_id: a.against_id,
                    title: Some("Postal Address".into()),
                    street1: Some(a.street1.clone()),
                    street2: a.street2.clone(),
                    city: Some(a.city.clone()),
                    zipcode: Some(a.zipcode.clone()),
                    state: a.state,
                    country: a.country,
                    postal: true,
                    physical: false,
                    date_modified: a.date_modified,
                },
            );
        }
        for (k, max) in [
            ("companies", st.companies.keys().last().copied()),
            ("contacts", st.contacts.keys().last().copied()),
            ("affiliations", st.affiliations.keys().last().copied()),
            ("addresses", st.addresses.keys().last().copied()),
        ] {
            st.last_ids.insert(k, max.unwrap_or(0));
        }
        st.sink = sink;
        st
    }

    /// Hands out the next id of a resource.
    pub fn next_id(&mut self, resource: &'static str) -> u64 {
        let e = self.last_ids.entry(resource).or_insert(0);
        *e += 1;
        *e
    }

    /// Sends a webhook event, if a sink is attached.
    pub fn emit(&self, event: &'static str, id: u64) {
        if let Some(s) = &self.sink {
            let _ = s.send(AcEvent { event, id });
        }
    }

    /// The status table of companies or contacts.
    pub fn status_table(&self, obj: Obj) -> &[Status] {
        match obj {
            Obj::Contact | Obj::ContactStatus => &self.contact_statuses,
            _ => &self.company_statuses,
        }
    }

    /// Whether an object exists.
    pub fn exists(&self, obj: Obj, id: u64) -> bool {
        match obj {
            Obj::Company => self.companies.contains_key(&id),
            Obj::Contact => self.contacts.contains_key(&id),
            Obj::Affiliation => self.affiliations.contains_key(&id),
            Obj::Address => self.addresses.contains_key(&id),
            Obj::CompanyStatus => self.company_statuses.iter().any(|s| s.id == id),
            Obj::ContactStatus => self.contact_statuses.iter().any(|s| s.id == id),
            Obj::State => self.states.iter().any(|s| s.id == id),
            Obj::Country => self.countries.iter().any(|s| s.id == id),
        }
    }

    /// All ids of an object type, ascending, without collecting them.
    pub fn id_iter(&self, obj: Obj) -> Box<dyn Iterator<Item = u64> + '_> {
        match obj {
            Obj::Company => Box::new(self.companies.keys().copied()),
            Obj::Contact => Box::new(self.contacts.keys().copied()),
            Obj::Affiliation => Box::new(self.affiliations.keys().copied()),
            Obj::Address => Box::new(self.addresses.keys().copied()),
            _ => Box::new(self.ids(obj).into_iter()),
        }
    }

    /// All ids of an object type, ascending.
    pub fn ids(&self, obj: Obj) -> Vec<u64> {
        match obj {
            Obj::Company => self.companies.keys().copied().collect(),
            Obj::Contact => self.contacts.keys().copied().collect(),
            Obj::Affiliation => self.affiliations.keys().copied().collect(),
            Obj::Address => self.addresses.keys().copied().collect(),
            Obj::CompanyStatus => self.company_statuses.iter().map(|s| s.id).collect(),
            Obj::ContactStatus => self.contact_statuses.iter().map(|s| s.id).collect(),
            Obj::State => self.states.iter().map(|s| s.id).collect(),
            Obj::Country => self.countries.iter().map(|s| s.id).collect(),
        }
    }

    /// The full field list of one object (`None` when it does not exist), in display order.
    pub fn fields(&self, obj: Obj, id: u64) -> Option<Vec<(&'static str, Field)>> {
        Some(match obj {
            Obj::Company => {
                let c = self.companies.get(&id)?;
                vec![
                    ("id", n(c.id as i64)),
                    ("name", Field::Val(json!(c.name))),
                    ("custom_id", s(&c.custom_id)),
                    ("website", s(&c.website)),
                    ("phone", s(&c.phone)),
                    ("fax", s(&c.fax)),
                    ("date_created", n(c.date_created)),
                    ("date_modified", n(c.date_modified)),
                    ("date_last_interacted", n(c.date_last_interacted)),
                    ("comments", s(&c.comments)),
                    ("standing", Field::Val(json!(c.standing))),
                    ("status", Field::Link(Obj::CompanyStatus, c.status)),
                    (
                        "postal_address",
                        Field::Link(Obj::Address, c.postal_address),
                    ),
                    ("staff_bookmarked", Field::Val(json!("0"))),
                    (
                        "default_affiliation",
                        Field::Link(Obj::Affiliation, c.default_affiliation),
                    ),
                ]
            }
            Obj::Contact => {
                let c = self.contacts.get(&id)?;
                let aff = c
                    .default_affiliation
                    .and_then(|a| self.affiliations.get(&a));
                vec![
                    ("id", n(c.id as i64)),
                    ("firstname", Field::Val(json!(c.firstname))),
                    ("surname", Field::Val(json!(c.surname))),
                    ("mobile", s(&aff.and_then(|a| a.mobile.clone()))),
                    ("email", s(&aff.and_then(|a| a.email.clone()))),
                    ("username", s(&c.username)),
                    ("middlename", s(&c.middlename)),
                    ("title", s(&c.title)),
                    ("timezone", s(&c.timezone)),
                    ("date_created", n(c.date_created)),
                    ("date_modified", n(c.date_modified)),
                    ("date_last_interacted", n(c.date_last_interacted)),
                    ("comments", s(&c.comments)),
                    (
                        "default_affiliation",
                        Field::Link(Obj::Affiliation, c.default_affiliation),
                    ),
                    ("status", Field::Link(Obj::ContactStatus, c.status)),
                    ("contact_status", Field::Link(Obj::ContactStatus, c.status)),
                    ("standing", Field::Val(json!(c.standing))),
                ]
            }
            Obj::Affiliation => {
                let a = self.affiliations.get(&id)?;
                vec![
                    ("id", n(a.id as i64)),
                    ("mobile", s(&a.mobile)),
                    ("email", s(&a.email)),
                    ("fax", s(&a.fax)),
                    ("position", s(&a.position)),
                    ("phone", s(&a.phone)),
                    (
                        "postal_address",
                        Field::Link(Obj::Address, a.postal_address),
                    ),
                    (
                        "physical_address",
                        Field::Link(Obj::Address, a.physical_address),
                    ),
                    ("company", Field::Link(Obj::Company, Some(a.company))),
                    ("contact", Field::Link(Obj::Contact, Some(a.contact))),
                    ("affiliation_status", Field::Val(Value::Null)),
                    ("standing", Field::Val(json!(a.standing))),
                    ("date_modified", n(a.date_modified)),
                    ("date_last_interacted", n(a.date_last_interacted)),
                    ("staff_bookmarked", Field::Val(json!("0"))),
                    ("portal_access", Field::Val(json!(a.portal_access))),
                    ("communication", Field::Val(json!(a.communication))),
                    ("invoice_method", Field::Val(json!(a.invoice_method))),
                ]
            }
            Obj::Address => {
                let a = self.addresses.get(&id)?;
                vec![
                    ("id", n(a.id as i64)),
                    ("full", Field::Val(json!(self.full_address(a)))),
                    ("short", Field::Val(json!(self.short_address(a)))),
                    ("title", s(&a.title)),
                    ("street1", s(&a.street1)),
                    ("street2", s(&a.street2)),
                    ("city", s(&a.city)),
                    ("zipcode", s(&a.zipcode)),
                    ("state", Field::Link(Obj::State, a.state)),
                    ("country", Field::Link(Obj::Country, a.country)),
                    ("postal", yes(a.postal)),
                    ("physical", yes(a.physical)),
                    ("against_type", Field::Val(json!(a.against_type))),
                    ("against_id", n(a.against_id as i64)),
                ]
            }
            Obj::CompanyStatus | Obj::ContactStatus => {
                let st = self.status_table(obj).iter().find(|s| s.id == id)?;
                vec![
                    ("id", n(st.id as i64)),
                    ("title", Field::Val(json!(st.title))),
                    ("color", Field::Val(json!(st.color))),
                    ("standing", Field::Val(json!(st.standing))),
                    ("start", yes(st.start)),
                    ("ordering", n(st.ordering as i64)),
                ]
            }
            Obj::State => {
                let st = self.states.iter().find(|s| s.id == id)?;
                vec![
                    ("id", n(st.id as i64)),
                    ("title", Field::Val(json!(st.title))),
                    ("abbreviation", Field::Val(json!(st.abbreviation))),
                    ("country_id", n(st.country as i64)),
                ]
            }
            Obj::Country => {
                let c = self.countries.iter().find(|s| s.id == id)?;
                vec![
                    ("id", n(c.id as i64)),
                    ("title", Field::Val(json!(c.title))),
                    ("prefix", Field::Val(json!(c.prefix))),
                    ("suffix", Field::Val(json!(c.code))),
                ]
            }
        })
    }

    fn state_title(&self, id: Option<u64>) -> Option<&str> {
        id.and_then(|i| self.states.iter().find(|s| s.id == i))
            .map(|s| s.title.as_str())
    }

    fn country_title(&self, id: Option<u64>) -> Option<&str> {
        id.and_then(|i| self.countries.iter().find(|s| s.id == i))
            .map(|s| s.title.as_str())
    }

    /// `full`: street lines, city state postcode, country.
    pub fn full_address(&self, a: &Address) -> String {
        let mut parts: Vec<String> = Vec::new();
        for p in [&a.street1, &a.street2].into_iter().flatten() {
            if !p.is_empty() {
                parts.push(p.clone());
            }
        }
        let locality: Vec<&str> = [
            a.city.as_deref(),
            self.state_title(a.state),
            a.zipcode.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
        if !locality.is_empty() {
            parts.push(locality.join(" "));
        }
        if let Some(c) = self.country_title(a.country) {
            parts.push(c.to_string());
        }
        parts.join(", ")
    }

    /// `short`: city and country.
    pub fn short_address(&self, a: &Address) -> String {
        [a.city.as_deref(), self.country_title(a.country)]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolves a country given by id, title or ISO code.
    pub fn find_country(&self, v: &str) -> Option<u64> {
        let v = v.trim();
        if let Ok(n) = v.parse::<u64>() {
            return self.countries.iter().find(|c| c.id == n).map(|c| c.id);
        }
        self.countries
            .iter()
            .find(|c| c.title.eq_ignore_ascii_case(v) || c.code.eq_ignore_ascii_case(v))
            .map(|c| c.id)
    }

    /// Resolves a state given by id, title or abbreviation (within `country` when known).
    pub fn find_state(&self, v: &str, country: Option<u64>) -> Option<u64> {
        let v = v.trim();
        if let Ok(n) = v.parse::<u64>() {
            return self.states.iter().find(|s| s.id == n).map(|s| s.id);
        }
        self.states
            .iter()
            .filter(|s| country.is_none_or(|c| s.country == c))
            .find(|s| s.title.eq_ignore_ascii_case(v) || s.abbreviation.eq_ignore_ascii_case(v))
            .map(|s| s.id)
    }

    /// Every affiliation, by id.
    pub fn affiliations(&self) -> &BTreeMap<u64, Affiliation> {
        &self.affiliations
    }

    /// One affiliation.
    pub fn affiliation(&self, id: u64) -> Option<&Affiliation> {
        self.affiliations.get(&id)
    }

    /// Stores an affiliation (new, or a changed one under the same id — also when it moved to
    /// another contact or company) and keeps the indexes in step. Returns the previous value.
    pub fn insert_affiliation(&mut self, a: Affiliation) -> Option<Affiliation> {
        let id = a.id;
        let (contact, company) = (a.contact, a.company);
        let old = self.affiliations.insert(id, a);
        if let Some(o) = &old {
            if o.contact != contact {
                unindex(&mut self.affiliations_by_contact, o.contact, id);
            }
            if o.company != company {
                unindex(&mut self.affiliations_by_company, o.company, id);
            }
        }
        self.affiliations_by_contact
            .entry(contact)
            .or_default()
            .insert(id);
        self.affiliations_by_company
            .entry(company)
            .or_default()
            .insert(id);
        old
    }

    /// Removes an affiliation and its index entries.
    pub fn remove_affiliation(&mut self, id: u64) -> Option<Affiliation> {
        let a = self.affiliations.remove(&id)?;
        unindex(&mut self.affiliations_by_contact, a.contact, id);
        unindex(&mut self.affiliations_by_company, a.company, id);
        Some(a)
    }

    /// Affiliations of a contact, ascending id (from the index).
    pub fn affiliations_of_contact(&self, contact: u64) -> impl Iterator<Item = &Affiliation> {
        self.affiliations_by_contact
            .get(&contact)
            .into_iter()
            .flatten()
            .filter_map(|id| self.affiliations.get(id))
    }

    /// Affiliations of a company, ascending id (from the index).
    pub fn affiliations_of_company(&self, company: u64) -> impl Iterator<Item = &Affiliation> {
        self.affiliations_by_company
            .get(&company)
            .into_iter()
            .flatten()
            .filter_map(|id| self.affiliations.get(id))
    }
}

/// Drops `id` from `owner`'s set (and the set once empty).
fn unindex(index: &mut HashMap<u64, BTreeSet<u64>>, owner: u64, id: u64) {
    if let Some(set) = index.get_mut(&owner) {
        set.remove(&id);
        if set.is_empty() {
            index.remove(&owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aff(id: u64, company: u64, contact: u64) -> Affiliation {
        Affiliation {
            id,
            company,
            contact,
            ..Default::default()
        }
    }

    fn ids<'a>(it: impl Iterator<Item = &'a Affiliation>) -> Vec<u64> {
        it.map(|a| a.id).collect()
    }

    /// The index answers exactly what a scan of every affiliation would.
    fn assert_consistent(st: &AcStore) {
        let owners: BTreeSet<u64> = st
            .affiliations()
            .values()
            .flat_map(|a| [a.contact, a.company])
            .chain(st.affiliations_by_contact.keys().copied())
            .chain(st.affiliations_by_company.keys().copied())
            .collect();
        for o in owners {
            let scan_contact: Vec<u64> = st
                .affiliations()
                .values()
                .filter(|a| a.contact == o)
                .map(|a| a.id)
                .collect();
            let scan_company: Vec<u64> = st
                .affiliations()
                .values()
                .filter(|a| a.company == o)
                .map(|a| a.id)
                .collect();
            assert_eq!(
                ids(st.affiliations_of_contact(o)),
                scan_contact,
                "contact {o}"
            );
            assert_eq!(
                ids(st.affiliations_of_company(o)),
                scan_company,
                "company {o}"
            );
        }
        assert!(st.affiliations_by_contact.values().all(|s| !s.is_empty()));
        assert!(st.affiliations_by_company.values().all(|s| !s.is_empty()));
    }

    #[test]
    fn affiliation_indexes_follow_creates_moves_and_deletes() {
        let mut st = AcStore::default();
        st.insert_affiliation(aff(1, 10, 100));
        st.insert_affiliation(aff(2, 10, 101));
        st.insert_affiliation(aff(3, 11, 100));
        assert_eq!(ids(st.affiliations_of_contact(100)), vec![1, 3]);
        assert_eq!(ids(st.affiliations_of_company(10)), vec![1, 2]);
        assert_consistent(&st);
        // A move to another contact and company under the same id.
        let old = st.insert_affiliation(aff(3, 10, 101));
        assert_eq!(old.map(|a| (a.company, a.contact)), Some((11, 100)));
        assert_eq!(ids(st.affiliations_of_contact(100)), vec![1]);
        assert_eq!(ids(st.affiliations_of_contact(101)), vec![2, 3]);
        assert_eq!(ids(st.affiliations_of_company(11)), Vec::<u64>::new());
        assert_consistent(&st);
        // A change that moves nothing.
        let mut same = aff(2, 10, 101);
        same.email = Some("x@example.org".into());
        st.insert_affiliation(same);
        assert_consistent(&st);
        assert!(st.remove_affiliation(1).is_some());
        assert!(st.remove_affiliation(1).is_none());
        assert_eq!(ids(st.affiliations_of_contact(100)), Vec::<u64>::new());
        assert_consistent(&st);
    }

    #[test]
    fn the_seeded_store_is_indexed() {
        let seed = crate::data::generate(5, 20, 80).accelo;
        let st = AcStore::from_seed(&seed, None);
        assert_eq!(st.affiliations().len(), seed.affiliations.len());
        assert_consistent(&st);
    }
}
