//! Accelo API v0 wire types (the `{meta, response}` envelope, companies, contacts, affiliations,
//! addresses, statuses, progressions) and their conversion to the shared document shapes.
//! Nothing here leaves the Accelo connector.
//!
//! Accelo sends ids and timestamps as strings (numbers accepted), a linked object either as its
//! id or, when expanded with `_fields=obj(…)`, as an object; `"0"` stands for "none".

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::connect::de;
use tandem_core::model::{Object, Record, System};

/// The fields requested for companies: everything the company document needs.
pub(crate) const COMPANY_FIELDS: &str = "name,website,phone,fax,comments,custom_id,standing,\
date_modified,status(title,standing),\
postal_address(street1,street2,city,zipcode,state(title),country(title))";

/// The fields requested for contacts.
pub(crate) const CONTACT_FIELDS: &str = "firstname,surname,middlename,title,comments,standing,\
date_modified,status(title,standing),default_affiliation";

/// The fields requested when creating a contact: the contact's, with the affiliation
/// `POST /contacts` makes expanded (so the answer shows both as stored).
pub(crate) const CONTACT_CREATE_FIELDS: &str = "firstname,surname,middlename,title,comments,\
standing,date_modified,status(title,standing),default_affiliation(email,phone,mobile,fax,position,\
standing,date_modified,contact,company(name))";

/// The fields requested for an address (write answers).
pub(crate) const ADDRESS_FIELDS: &str = "street1,street2,city,zipcode,state(title),country(title)";

/// The fields requested for affiliations.
pub(crate) const AFFILIATION_FIELDS: &str =
    "email,phone,mobile,fax,position,standing,date_modified,contact,company(name)";

/// The envelope of every answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(default = "none")]
    pub response: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

#[derive(Debug, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A linked object: its id, or the object when expanded.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Linked<T> {
    Obj(T),
    Id(Value),
}

impl<T> Linked<T> {
    /// The object, when expanded.
    pub(crate) fn obj(&self) -> Option<&T> {
        match self {
            Linked::Obj(o) => Some(o),
            Linked::Id(_) => None,
        }
    }
}

/// An id that means something: not empty, not `"0"`.
fn real_id(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty() && s != "0")
}

/// The id of a linked field, whichever form it came in.
pub(crate) trait HasId {
    fn id(&self) -> Option<String>;
}

impl<T: HasId> Linked<T> {
    pub(crate) fn id(&self) -> Option<String> {
        match self {
            Linked::Obj(o) => o.id(),
            Linked::Id(v) => real_id(de::scalar_string(v)),
        }
    }
}

/// `{id, title, standing}` of a company or contact status.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Status {
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub standing: Option<String>,
}

impl HasId for Status {
    fn id(&self) -> Option<String> {
        real_id(self.id.clone())
    }
}

/// `{id, title}` of a state or country.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Named {
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub title: Option<String>,
}

impl HasId for Named {
    fn id(&self) -> Option<String> {
        real_id(self.id.clone())
    }
}

/// An address.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Address {
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub street1: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub street2: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub city: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub zipcode: Option<String>,
    #[serde(default)]
    pub state: Option<Linked<Named>>,
    #[serde(default)]
    pub country: Option<Linked<Named>>,
}

impl HasId for Address {
    fn id(&self) -> Option<String> {
        real_id(self.id.clone())
    }
}

/// A company.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Company {
    #[serde(deserialize_with = "de::id")]
    pub id: String,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub website: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub fax: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub comments: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub custom_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub standing: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub date_modified: Option<String>,
    #[serde(default)]
    pub status: Option<Linked<Status>>,
    #[serde(default)]
    pub postal_address: Option<Linked<Address>>,
}

impl HasId for Company {
    fn id(&self) -> Option<String> {
        real_id(Some(self.id.clone()))
    }
}

/// A company as linked from an affiliation: `{id, name}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CompanyRef {
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub name: Option<String>,
}

impl HasId for CompanyRef {
    fn id(&self) -> Option<String> {
        real_id(self.id.clone())
    }
}

/// A contact as linked from an affiliation.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ContactRef {
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<String>,
}

impl HasId for ContactRef {
    fn id(&self) -> Option<String> {
        real_id(self.id.clone())
    }
}

/// A contact.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Contact {
    #[serde(deserialize_with = "de::id")]
    pub id: String,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub firstname: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub surname: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub middlename: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub comments: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub standing: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub date_modified: Option<String>,
    #[serde(default)]
    pub status: Option<Linked<Status>>,
    #[serde(default)]
    pub default_affiliation: Option<Linked<ContactRef>>,
}

impl Contact {
    pub(crate) fn default_affiliation_id(&self) -> Option<String> {
        self.default_affiliation.as_ref().and_then(Linked::id)
    }

    pub(crate) fn modified_s(&self) -> Option<i64> {
        self.date_modified
            .as_deref()
            .and_then(|s| s.trim().parse().ok())
    }
}

/// An affiliation (a contact's role at a company: email, phones, position).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Affiliation {
    #[serde(deserialize_with = "de::id")]
    pub id: String,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub mobile: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub fax: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub position: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub standing: Option<String>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub date_modified: Option<String>,
    #[serde(default)]
    pub contact: Option<Linked<ContactRef>>,
    #[serde(default)]
    pub company: Option<Linked<CompanyRef>>,
}

impl Affiliation {
    pub(crate) fn contact_id(&self) -> Option<String> {
        self.contact.as_ref().and_then(Linked::id)
    }
}

/// A progression: running it moves the record to `status`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Progression {
    #[serde(deserialize_with = "de::id")]
    pub id: String,
    #[serde(default)]
    pub status: Option<Linked<Status>>,
}

/// A create-contact answer's expanded affiliation.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CreatedContact {
    #[serde(default)]
    pub default_affiliation: Option<Linked<Affiliation>>,
}

/// The links of a record read for one of them (`_fields=default_affiliation`,
/// `_fields=postal_address`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IdOnly {
    #[serde(default)]
    pub default_affiliation: Option<Linked<ContactRef>>,
    #[serde(default)]
    pub postal_address: Option<Linked<Address>>,
}

fn put(doc: &mut Map<String, Value>, k: &str, v: &Option<String>) {
    if let Some(v) = v
        && !v.is_empty()
    {
        doc.insert(k.to_string(), Value::String(v.clone()));
    }
}

fn secs_to_ms(s: &Option<String>) -> Option<i64> {
    s.as_deref()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|s| s.saturating_mul(1000))
}

fn status_doc(s: &Linked<Status>) -> Option<Value> {
    let id = s.id()?;
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id));
    if let Some(o) = s.obj() {
        put(&mut m, "title", &o.title);
        put(&mut m, "standing", &o.standing);
    }
    Some(Value::Object(m))
}

fn title_of(n: &Option<Linked<Named>>) -> Option<String> {
    match n {
        Some(Linked::Obj(o)) => o.title.clone().filter(|t| !t.is_empty()),
        _ => None,
    }
}

impl Company {
    /// The company document of the shared shapes.
    pub(crate) fn into_record(self) -> Record {
        let mut doc = Map::new();
        doc.insert("id".into(), Value::String(self.id.clone()));
        put(&mut doc, "name", &self.name);
        put(&mut doc, "website", &self.website);
        put(&mut doc, "phone", &self.phone);
        put(&mut doc, "fax", &self.fax);
        put(&mut doc, "comments", &self.comments);
        put(&mut doc, "custom_id", &self.custom_id);
        put(&mut doc, "standing", &self.standing);
        put(&mut doc, "date_modified", &self.date_modified);
        if let Some(s) = self.status.as_ref().and_then(status_doc) {
            doc.insert("status".into(), s);
        }
        if let Some(pa) = &self.postal_address
            && let Some(id) = pa.id()
        {
            let mut m = Map::new();
            m.insert("id".into(), Value::String(id));
            if let Some(a) = pa.obj() {
                put(&mut m, "street1", &a.street1);
                put(&mut m, "street2", &a.street2);
                put(&mut m, "city", &a.city);
                put(&mut m, "zipcode", &a.zipcode);
                put(&mut m, "state", &title_of(&a.state));
                put(&mut m, "country", &title_of(&a.country));
            }
            doc.insert("postal_address".into(), Value::Object(m));
        }
        Record {
            system: System::Accelo,
            object: Object::Company,
            updated_at: secs_to_ms(&self.date_modified),
            id: self.id,
            doc,
            company_id: None,
        }
    }
}

impl Contact {
    /// The contact document of the shared shapes, joined with `aff` (its affiliation to its
    /// company) when it has one.
    pub(crate) fn into_record(self, aff: Option<&Affiliation>) -> Record {
        let mut doc = Map::new();
        doc.insert("id".into(), Value::String(self.id.clone()));
        put(&mut doc, "firstname", &self.firstname);
        put(&mut doc, "surname", &self.surname);
        put(&mut doc, "middlename", &self.middlename);
        put(&mut doc, "title", &self.title);
        put(&mut doc, "comments", &self.comments);
        put(&mut doc, "standing", &self.standing);
        put(&mut doc, "date_modified", &self.date_modified);
        if let Some(s) = self.status.as_ref().and_then(status_doc) {
            doc.insert("status".into(), s);
        }
        let mut updated_at = secs_to_ms(&self.date_modified);
        let mut company_id = None;
        if let Some(a) = aff {
            let mut m = Map::new();
            m.insert("id".into(), Value::String(a.id.clone()));
            put(&mut m, "email", &a.email);
            put(&mut m, "phone", &a.phone);
            put(&mut m, "mobile", &a.mobile);
            put(&mut m, "fax", &a.fax);
            put(&mut m, "position", &a.position);
            put(&mut m, "standing", &a.standing);
            put(&mut m, "date_modified", &a.date_modified);
            doc.insert("affiliation".into(), Value::Object(m));
            if let Some(c) = &a.company
                && let Some(cid) = c.id()
            {
                let mut m = Map::new();
                m.insert("id".into(), Value::String(cid.clone()));
                if let Some(o) = c.obj() {
                    put(&mut m, "name", &o.name);
                }
                doc.insert("company".into(), Value::Object(m));
                company_id = Some(cid);
            }
            updated_at = match (updated_at, secs_to_ms(&a.date_modified)) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            };
        }
        Record {
            system: System::Accelo,
            object: Object::Contact,
            id: self.id,
            doc,
            updated_at,
            company_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn company_document_shape() {
        let c: Company = serde_json::from_value(json!({
            "id": "12", "name": "Acme Pty Ltd", "website": "https://acme.com", "phone": "",
            "fax": null, "standing": "active", "date_modified": 1700000000,
            "status": {"id": "1", "title": "Active", "standing": "active"},
            "postal_address": {"id": "40", "full": "…", "street1": "1 Main St", "city": "Sydney",
                "zipcode": "2000", "state": {"id": "1", "title": "New South Wales"},
                "country": {"id": "1", "title": "Australia"}}
        }))
        .unwrap();
        let r = c.into_record();
        assert_eq!(r.id, "12");
        assert_eq!(r.updated_at, Some(1_700_000_000_000));
        assert_eq!(
            Value::Object(r.doc),
            json!({"id": "12", "name": "Acme Pty Ltd", "website": "https://acme.com",
                   "standing": "active", "date_modified": "1700000000",
                   "status": {"id": "1", "title": "Active", "standing": "active"},
                   "postal_address": {"id": "40", "street1": "1 Main St", "city": "Sydney",
                       "zipcode": "2000", "state": "New South Wales", "country": "Australia"}})
        );
    }

    #[test]
    fn company_without_status_or_address() {
        let c: Company = serde_json::from_value(json!({
            "id": 13, "name": "Solo", "status": "0", "postal_address": "0"
        }))
        .unwrap();
        let r = c.into_record();
        assert!(!r.doc.contains_key("status"));
        assert!(!r.doc.contains_key("postal_address"));
        // An unexpanded address id is kept as `{id}`.
        let c: Company =
            serde_json::from_value(json!({"id": "14", "postal_address": "41"})).unwrap();
        assert_eq!(c.into_record().doc["postal_address"], json!({"id": "41"}));
    }

    #[test]
    fn contact_joined_with_affiliation() {
        let c: Contact = serde_json::from_value(json!({
            "id": "7", "firstname": "Ann", "surname": "Lee", "title": "Ms",
            "standing": "active", "date_modified": "1700000000",
            "status": {"id": "2", "title": "Prospect", "standing": "potential"},
            "default_affiliation": "31"
        }))
        .unwrap();
        assert_eq!(c.default_affiliation_id().as_deref(), Some("31"));
        let a: Affiliation = serde_json::from_value(json!({
            "id": "31", "email": "ann@acme.com", "phone": "123", "mobile": "", "position": "CEO",
            "standing": "active", "date_modified": "1700000500", "contact": "7",
            "company": {"id": "12", "name": "Acme Pty Ltd"}
        }))
        .unwrap();
        assert_eq!(a.contact_id().as_deref(), Some("7"));
        let r = c.into_record(Some(&a));
        assert_eq!(r.company_id.as_deref(), Some("12"));
        // The later of the two modification times.
        assert_eq!(r.updated_at, Some(1_700_000_500_000));
        assert_eq!(
            r.doc["affiliation"],
            json!({"id": "31", "email": "ann@acme.com", "phone": "123", "position": "CEO",
                   "standing": "active", "date_modified": "1700000500"})
        );
        assert_eq!(
            r.doc["company"],
            json!({"id": "12", "name": "Acme Pty Ltd"})
        );
        assert_eq!(r.doc["status"]["title"], json!("Prospect"));
    }

    #[test]
    fn contact_without_affiliation_has_no_company() {
        let c: Contact =
            serde_json::from_value(json!({"id": "8", "firstname": "Bo", "surname": "X"})).unwrap();
        let r = c.into_record(None);
        assert_eq!(r.company_id, None);
        assert!(!r.doc.contains_key("affiliation"));
    }

    #[test]
    fn envelope_with_error() {
        let e: Envelope<Vec<Company>> = serde_json::from_str(
            r#"{"meta":{"status":"invalid_request","message":"bad"},"response":null}"#,
        )
        .unwrap();
        assert!(e.response.is_none());
        assert_eq!(e.meta.unwrap().status.as_deref(), Some("invalid_request"));
    }
}
