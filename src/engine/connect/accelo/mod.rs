//! The Accelo connector: API v0 companies, contacts, affiliations, addresses, statuses and
//! progressions, with client-credentials authentication.
//!
//! An Accelo "contact" as the rest of Tandem sees it is the contact joined with its affiliation
//! to its company (the default affiliation; email, phones and position live there) and that
//! company's id and name. Writes are form-encoded, one record per request, several records at a
//! time (bounded concurrency), each write key routed to its resource: contact fields →
//! `PUT /contacts/{id}`, `affiliation.*` → `PUT /affiliations/{id}`, `postal_address.*` →
//! `PUT /addresses/{id}` (or a new address against the company), `status` (a title) → a
//! progression for companies, the `status` field for contacts, `status_id` on create.
//!
//! Request budget (N records, pages of 100; a short page ends a scan):
//! - full scan of companies: floor(N/100) + 1 requests (= ceil(N/100) unless N is a multiple of
//!   100); contacts: the same for contacts plus one affiliation read per page (by the contacts'
//!   default affiliation ids), plus one more per page only if some contact has no default
//!   affiliation;
//! - changed since: the same, over companies; over contacts, then over affiliations changed
//!   since (their contacts read by id);
//! - creates: 1 request per company (+1 with a postal address), 1 per contact (+1 when a mobile
//!   is given, which `POST /contacts` does not take); updates: 1 per resource touched.
//!
//! Paging is by page number (`_page`). A full scan runs in Accelo's default order (ascending id),
//! so records created during a scan land on later pages and none that existed at its start is
//! missed. A changed-since scan runs in `date_modified` order; a record modified while the scan
//! runs moves to its end and may be skipped by this scan — its new `date_modified` is later than
//! the scan's watermark, so the next one reads it.

mod auth;
mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use self::auth::ClientCredentials;
use self::wire::*;
use super::http::{Answer, Body, Call, HeaderStyle, Transport};
use super::{
    Changes, ConnectError, Connector, CreateInput, Cursor, Lookup, Page, RateLimit, RetryPolicy,
    Scan, Secret, Stored, UpdateInput, WriteOutcome, WriteResult, Written,
};
use tandem_core::model::{Object, Record, System};

const PAGE: usize = 100;
const CREATE_ROUNDS: usize = 3;
/// Pages read at most by a lookup.
const FIND_PAGES: u32 = 10;

const COMPANIES: &str = "/api/v0/companies";
const CONTACTS: &str = "/api/v0/contacts";
const AFFILIATIONS: &str = "/api/v0/affiliations";
const ADDRESSES: &str = "/api/v0/addresses";

/// Everything the Accelo connector needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceloSettings {
    /// The deployment's root, `https://{deployment}.api.accelo.com` (paths `/oauth2/v0/…` and
    /// `/api/v0/…` are appended).
    pub base_url: String,
    /// The service application's client id.
    pub client_id: String,
    /// The service application's client secret.
    pub client_secret: Secret,
    /// The scope asked for (default `write(all)`; Tandem writes companies, contacts,
    /// affiliations and addresses).
    pub scope: String,
    /// Lifetime to ask for, in seconds (default: Accelo's, 30 days).
    pub token_expires_in: Option<u64>,
    /// The hourly budget (default 5000 / h; lowered when `X-RateLimit-Limit` reports less).
    pub rate_limit: RateLimit,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Records written at the same time.
    pub write_concurrency: usize,
    /// Renew the token this long before it expires.
    pub refresh_margin: Duration,
    /// Where `base_url` was configured (`TANDEM_ACCELO_URL`, …), named when that address
    /// cannot work.
    pub url_origin: Option<String>,
}

impl AcceloSettings {
    /// Settings with the documented defaults.
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> AcceloSettings {
        AcceloSettings {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret,
            scope: "write(all)".into(),
            token_expires_in: None,
            rate_limit: RateLimit::ACCELO,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            write_concurrency: 4,
            refresh_margin: Duration::from_secs(300),
            url_origin: None,
        }
    }
}

/// The Accelo connector.
#[derive(Debug)]
pub struct Accelo {
    t: Transport,
    auth: Arc<ClientCredentials>,
    statuses: Mutex<HashMap<Object, Vec<Status>>>,
    concurrency: usize,
}

/// Where a write key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A field of the company or contact itself.
    Own(&'static str),
    /// The status, by title.
    Status,
    /// A field of the company's postal address.
    Address(&'static str),
    /// A field of the contact's affiliation.
    Affiliation(&'static str),
}

const COMPANY_KEYS: &[&str] = &["name", "website", "phone", "fax", "comments", "custom_id"];
const CONTACT_KEYS: &[&str] = &["firstname", "surname", "middlename", "title", "comments"];
const ADDRESS_KEYS: &[&str] = &["street1", "street2", "city", "zipcode", "state", "country"];
const AFFILIATION_KEYS: &[&str] = &["email", "phone", "mobile", "fax", "position"];
/// Affiliation fields `POST /contacts` accepts with the contact.
const CONTACT_CREATE_AFFILIATION_KEYS: &[&str] = &["email", "phone", "fax", "position"];

fn find_key(list: &[&'static str], k: &str) -> Option<&'static str> {
    list.iter().copied().find(|x| *x == k)
}

fn route(object: Object, key: &str) -> Result<Route, ConnectError> {
    let r = match (object, key.split_once('.')) {
        (_, None) if key == "status" => Some(Route::Status),
        (Object::Company, None) => find_key(COMPANY_KEYS, key).map(Route::Own),
        (Object::Contact, None) => find_key(CONTACT_KEYS, key).map(Route::Own),
        (Object::Company, Some(("postal_address", f))) => {
            find_key(ADDRESS_KEYS, f).map(Route::Address)
        }
        (Object::Contact, Some(("affiliation", f))) => {
            find_key(AFFILIATION_KEYS, f).map(Route::Affiliation)
        }
        _ => None,
    };
    r.ok_or_else(|| ConnectError::Invalid {
        system: System::Accelo,
        message: format!("`{key}` is not a writable field of an accelo {object}"),
    })
}

/// The changes split by resource.
#[derive(Debug, Default)]
struct Routed {
    own: Vec<(&'static str, Option<String>)>,
    status: Option<Option<String>>,
    address: Vec<(&'static str, Option<String>)>,
    affiliation: Vec<(&'static str, Option<String>)>,
}

fn split(object: Object, changes: &Changes) -> Result<Routed, ConnectError> {
    let mut r = Routed::default();
    for (k, v) in changes {
        match route(object, k)? {
            Route::Own(f) => r.own.push((f, v.clone())),
            Route::Status => r.status = Some(v.clone()),
            Route::Address(f) => r.address.push((f, v.clone())),
            Route::Affiliation(f) => r.affiliation.push((f, v.clone())),
        }
    }
    Ok(r)
}

fn form(fields: &[(&str, Option<String>)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone().unwrap_or_default()))
        .collect()
}

/// The page after `page`, or a protocol error when the page number would overflow.
fn next_page(page: u32, call: &Call) -> Result<u32, ConnectError> {
    page.checked_add(1).ok_or_else(|| ConnectError::Protocol {
        system: System::Accelo,
        request: call.label(),
        message: "paging ran past the last page number".into(),
    })
}

/// A full page that brought nothing new: following the pages would never end.
fn stuck(call: &Call) -> ConnectError {
    ConnectError::Protocol {
        system: System::Accelo,
        request: call.label(),
        message: "a full page repeated what was already read: the paging does not advance".into(),
    }
}

/// A value usable inside `_filters=f(…)`: the syntax has no escapes, so values with `(`, `)` or
/// `,` cannot be filtered on.
fn filterable(v: &str) -> bool {
    !v.is_empty() && !v.contains(['(', ')', ','])
}

/// Ids usable in an `id(…)` filter.
fn numeric(ids: &[String]) -> Vec<&str> {
    ids.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The value at a dotted path of a document (`affiliation.email`).
fn doc_value(r: &Record, key: &str) -> Option<String> {
    let mut v: Option<&Value> = None;
    for (n, part) in key.split('.').enumerate() {
        v = if n == 0 {
            r.doc.get(part)
        } else {
            v.and_then(|x| x.get(part))
        };
    }
    v.and_then(tandem_core::model::value_as_string)
}

/// The cursor of a scan.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct ScanCursor {
    /// 0: the object itself; 1 (contacts changed since): affiliations.
    phase: u8,
    page: u32,
}

impl Accelo {
    /// A connector for these settings. Makes no request.
    pub fn new(settings: AcceloSettings) -> Result<Accelo, ConnectError> {
        let auth = Arc::new(ClientCredentials::new(
            settings.client_id,
            settings.client_secret,
            settings.scope,
            settings.token_expires_in,
            settings.refresh_margin,
        ));
        let t = Transport::new(
            System::Accelo,
            &settings.base_url,
            settings.timeout,
            settings.retry,
            settings.rate_limit,
            // Accelo has no separate search budget.
            settings.rate_limit,
            auth.clone(),
            HeaderStyle::Accelo,
        )?
        .with_origin(settings.url_origin.clone());
        Ok(Accelo {
            t,
            auth,
            statuses: Mutex::new(HashMap::new()),
            concurrency: settings.write_concurrency.max(1),
        })
    }

    /// How many access tokens were obtained so far.
    pub async fn tokens_fetched(&self) -> u64 {
        self.auth.fetched().await
    }

    /// The request budget in force.
    pub fn rate_limit(&self) -> RateLimit {
        self.t.general_rate()
    }

    fn rejected(&self, call: &Call, ans: &Answer) -> ConnectError {
        let (category, message) = super::http::describe_error(&ans.body);
        ConnectError::Rejected {
            system: System::Accelo,
            request: call.label(),
            status: ans.status,
            category,
            message,
        }
    }

    fn protocol(&self, call: &Call, message: String) -> ConnectError {
        ConnectError::Protocol {
            system: System::Accelo,
            request: call.label(),
            message,
        }
    }

    /// The `response` of an answer, or the error its envelope reports.
    fn open<T: DeserializeOwned>(
        &self,
        call: &Call,
        ans: &Answer,
    ) -> Result<Option<T>, ConnectError> {
        if !(200..300).contains(&ans.status) {
            return Err(self.rejected(call, ans));
        }
        let env: Envelope<T> = serde_json::from_slice(&ans.body)
            .map_err(|e| self.protocol(call, format!("the body does not parse: {e}")))?;
        if let Some(m) = &env.meta
            && let Some(s) = &m.status
            && s != "ok"
        {
            return Err(ConnectError::Rejected {
                system: System::Accelo,
                request: call.label(),
                status: ans.status,
                category: s.clone(),
                message: m.message.clone().unwrap_or_default(),
            });
        }
        Ok(env.response)
    }

    async fn one<T: DeserializeOwned>(&self, call: &Call) -> Result<T, ConnectError> {
        let ans = self.t.send(call).await?;
        self.open(call, &ans)?
            .ok_or_else(|| self.protocol(call, "the answer has no `response`".into()))
    }

    async fn list<T: DeserializeOwned>(&self, call: &Call) -> Result<Vec<T>, ConnectError> {
        let ans = self.t.send(call).await?;
        Ok(self.open::<Vec<T>>(call, &ans)?.unwrap_or_default())
    }

    fn list_call(path: &str, fields: &str, filters: &[String], page: u32) -> Call {
        let mut c = Call::get(path)
            .query("_fields", fields)
            .query("_limit", PAGE.to_string())
            .query("_page", page.to_string());
        if !filters.is_empty() {
            c = c.query("_filters", filters.join(","));
        }
        c
    }

    /// Joins contacts with their affiliations: `prefer` first (a lookup's match), then each
    /// contact's default affiliation, then — only for contacts still without one — any
    /// affiliation of the contact (lowest id).
    async fn join(
        &self,
        contacts: Vec<Contact>,
        mut prefer: HashMap<String, Affiliation>,
    ) -> Result<Vec<Record>, ConnectError> {
        let mut by_default: BTreeMap<String, String> = BTreeMap::new();
        for c in &contacts {
            if prefer.contains_key(&c.id) {
                continue;
            }
            if let Some(a) = c.default_affiliation_id() {
                by_default.insert(a, c.id.clone());
            }
        }
        let wanted: Vec<String> = by_default.keys().cloned().collect();
        for chunk in wanted.chunks(PAGE) {
            let call = Self::list_call(
                AFFILIATIONS,
                AFFILIATION_FIELDS,
                &[format!("id({})", chunk.join(","))],
                0,
            );
            for a in self.list::<Affiliation>(&call).await? {
                if let Some(cid) = by_default.get(&a.id) {
                    prefer.entry(cid.clone()).or_insert(a);
                }
            }
        }
        let missing: Vec<String> = contacts
            .iter()
            .filter(|c| !prefer.contains_key(&c.id))
            .map(|c| c.id.clone())
            .collect();
        let missing = numeric(&missing)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        for chunk in missing.chunks(PAGE) {
            let mut page = 0;
            let mut seen_affiliations = HashSet::new();
            loop {
                let call = Self::list_call(
                    AFFILIATIONS,
                    AFFILIATION_FIELDS,
                    &[format!("contact({})", chunk.join(","))],
                    page,
                );
                let affs = self.list::<Affiliation>(&call).await?;
                let n = affs.len();
                let fresh = affs
                    .iter()
                    .filter(|a| seen_affiliations.insert(a.id.clone()))
                    .count();
                if n >= PAGE && fresh == 0 {
                    return Err(stuck(&call));
                }
                for a in affs {
                    if let Some(cid) = a.contact_id() {
                        let keep = match prefer.get(&cid) {
                            None => true,
                            Some(old) => {
                                old.id.parse::<u64>().unwrap_or(u64::MAX)
                                    > a.id.parse::<u64>().unwrap_or(u64::MAX)
                            }
                        };
                        if keep {
                            prefer.insert(cid, a);
                        }
                    }
                }
                if n < PAGE {
                    break;
                }
                page = next_page(page, &call)?;
            }
        }
        Ok(contacts
            .into_iter()
            .map(|c| {
                let a = prefer.get(&c.id).cloned();
                c.into_record(a.as_ref())
            })
            .collect())
    }

    /// The contacts whose (default) affiliation is with company `id`: its affiliations' contacts,
    /// read and joined as a scan joins them, those that belong to the company.
    async fn contacts_of_company(&self, id: &str) -> Result<Vec<Record>, ConnectError> {
        let Some(id) = numeric(&[id.to_string()]).first().map(|s| s.to_string()) else {
            return Ok(Vec::new());
        };
        let mut ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut seen_affiliations = HashSet::new();
        let mut page = 0;
        loop {
            let call = Self::list_call(AFFILIATIONS, "contact", &[format!("company({id})")], page);
            let affs = self.list::<Affiliation>(&call).await?;
            let n = affs.len();
            let fresh = affs
                .iter()
                .filter(|a| seen_affiliations.insert(a.id.clone()))
                .count();
            if n >= PAGE && fresh == 0 {
                return Err(stuck(&call));
            }
            for a in affs {
                if let Some(c) = a.contact_id()
                    && seen.insert(c.clone())
                {
                    ids.push(c);
                }
            }
            if n < PAGE {
                break;
            }
            page = next_page(page, &call)?;
        }
        let contacts = self.contacts_by_id(&ids).await?;
        let records = self.join(contacts, HashMap::new()).await?;
        Ok(records
            .into_iter()
            .filter(|r| r.company_id.as_deref() == Some(id.as_str()))
            .collect())
    }

    async fn contacts_by_id(&self, ids: &[String]) -> Result<Vec<Contact>, ConnectError> {
        let ids = numeric(ids);
        let mut out = Vec::new();
        for chunk in ids.chunks(PAGE) {
            let call = Self::list_call(
                CONTACTS,
                CONTACT_FIELDS,
                &[format!("id({})", chunk.join(","))],
                0,
            );
            out.extend(self.list::<Contact>(&call).await?);
        }
        Ok(out)
    }

    /// The statuses of `object`, by title, cached (re-read once when a title is unknown).
    async fn status_id(&self, object: Object, title: &str) -> Result<String, ConnectError> {
        let want = norm(title);
        for refresh in [false, true] {
            let mut cache = self.statuses.lock().await;
            if refresh || !cache.contains_key(&object) {
                let call = Call::get(format!("/api/v0/{}/statuses", object.plural()))
                    .query("_fields", "title,standing")
                    .query("_limit", PAGE.to_string());
                let list = self.list::<Status>(&call).await?;
                cache.insert(object, list);
            }
            if let Some(s) = cache.get(&object).and_then(|l| {
                l.iter()
                    .find(|s| s.title.as_deref().map(norm).as_deref() == Some(want.as_str()))
            }) && let Some(id) = s.id.clone()
            {
                return Ok(id);
            }
        }
        Err(ConnectError::Invalid {
            system: System::Accelo,
            message: format!("there is no accelo {object} status titled `{title}`"),
        })
    }

    /// Moves a company to the status titled `title` by running the progression that leads there.
    async fn progress_company(
        &self,
        id: &str,
        title: &str,
        current: Option<&str>,
    ) -> Result<(), ConnectError> {
        let target = self.status_id(Object::Company, title).await?;
        if current == Some(target.as_str()) {
            return Ok(());
        }
        let call = Call::get(format!("{COMPANIES}/{id}/progressions"))
            .query("_fields", "title,status(title,standing)");
        let progressions = self.list::<Progression>(&call).await?;
        let Some(p) = progressions.iter().find(|p| {
            p.status.as_ref().is_some_and(|s| {
                s.id().as_deref() == Some(target.as_str())
                    || s.obj()
                        .and_then(|o| o.title.as_deref())
                        .is_some_and(|t| norm(t) == norm(title))
            })
        }) else {
            // The list leaves out the status the company is in.
            if self.company_status(id).await?.as_deref() == Some(target.as_str()) {
                return Ok(());
            }
            return Err(ConnectError::Rejected {
                system: System::Accelo,
                request: call.label(),
                status: 200,
                category: "no_progression".into(),
                message: format!("no progression of company `{id}` leads to status `{title}`"),
            });
        };
        let call = Call::new(
            Method::POST,
            format!("{COMPANIES}/{id}/progressions/{}/auto", p.id),
            Body::Form(Vec::new()),
        )
        // Running it again after a lost answer is refused (the company is already there) and
        // settled below.
        .idempotent();
        match self.one::<Value>(&call).await {
            Ok(_) => Ok(()),
            Err(e @ ConnectError::Rejected { .. }) => {
                if self.company_status(id).await?.as_deref() == Some(target.as_str()) {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn company_status(&self, id: &str) -> Result<Option<String>, ConnectError> {
        let call = Call::get(format!("{COMPANIES}/{id}")).query("_fields", "status");
        let c: Company = self.one(&call).await?;
        Ok(c.status.as_ref().and_then(Linked::id))
    }

    /// Writes the postal address of company `id`: updates `address_id` when it has one,
    /// otherwise creates a postal address against the company. Returns the address as stored
    /// when the answer showed it (`None`: written, but its content is not known).
    async fn write_address(
        &self,
        id: &str,
        address_id: Option<String>,
        fields: &[(&'static str, Option<String>)],
    ) -> Result<Option<Address>, ConnectError> {
        let address_id = match address_id {
            Some(a) => Some(a),
            None => self.company_address(id).await?,
        };
        match address_id {
            Some(a) => {
                let call = Call::new(
                    Method::PUT,
                    format!("{ADDRESSES}/{a}"),
                    Body::Form(form(fields)),
                )
                .query("_fields", ADDRESS_FIELDS);
                self.one::<Address>(&call).await.map(Some)
            }
            None => {
                let mut f: Vec<(&str, Option<String>)> = fields
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .cloned()
                    .collect();
                if f.is_empty() {
                    // Clearing an address the company does not have: nothing to do.
                    return Ok(None);
                }
                f.push(("postal", Some("yes".into())));
                let call = Call::new(
                    Method::POST,
                    format!("{COMPANIES}/{id}/addresses"),
                    Body::Form(form(&f)),
                )
                .query("_fields", ADDRESS_FIELDS);
                match self.one::<Address>(&call).await {
                    Ok(a) => Ok(Some(a)),
                    Err(e @ ConnectError::OutcomeUnknown { .. }) => {
                        // Settle by looking: an address is there, or it is created once more.
                        if self.company_address(id).await?.is_some() {
                            Ok(None)
                        } else {
                            self.one::<Address>(&call).await.map(Some).map_err(|_| e)
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn company_address(&self, id: &str) -> Result<Option<String>, ConnectError> {
        let call = Call::get(format!("{COMPANIES}/{id}")).query("_fields", "postal_address");
        let c: IdOnly = self.one(&call).await?;
        Ok(c.postal_address.and_then(|a| a.id()))
    }

    /// The affiliation of contact `id`: its default one (one request), else any (lowest id).
    async fn affiliation_of(&self, id: &str) -> Result<Option<String>, ConnectError> {
        let call = Call::get(format!("{CONTACTS}/{id}")).query("_fields", "default_affiliation");
        let c: IdOnly = self.one(&call).await?;
        if let Some(a) = c.default_affiliation.as_ref().and_then(Linked::id) {
            return Ok(Some(a));
        }
        let call = Self::list_call(
            AFFILIATIONS,
            "contact",
            &[format!("contact({})", numeric(&[id.to_string()]).join(","))],
            0,
        );
        let affs = self.list::<Affiliation>(&call).await?;
        Ok(affs
            .into_iter()
            .map(|a| a.id)
            .min_by_key(|a| a.parse::<u64>().unwrap_or(u64::MAX)))
    }

    async fn create_one(&self, object: Object, input: &CreateInput) -> WriteResult {
        let routed = split(object, &input.changes)?;
        let mut last = None;
        for _round in 0..CREATE_ROUNDS {
            let attempt = match object {
                Object::Company => self.post_company(&routed).await,
                Object::Contact => self.post_contact(input, &routed).await,
            };
            match attempt {
                Err(e @ ConnectError::OutcomeUnknown { .. }) => {
                    let Some(l) = &input.lookup else {
                        return Err(e);
                    };
                    let found = match self.find(object, l, &[]).await {
                        Ok(found) => found,
                        Err(f) => return Err(e.still_unknown(&f)),
                    };
                    if let Some(r) = found.into_iter().next() {
                        tracing::info!(key = %l.key, "accelo create settled by lookup: the record exists");
                        let mut w = Written::new(r.id.clone(), WriteOutcome::Found);
                        w.affiliation_id = doc_value(&r, "affiliation.id");
                        w.stored = Some(Stored {
                            record: r,
                            complete: true,
                        });
                        return Ok(w);
                    }
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| ConnectError::OutcomeUnknown {
            system: System::Accelo,
            request: format!("POST /api/v0/{}", object.plural()),
            reason: "no attempt was made".into(),
        }))
    }

    async fn post_company(&self, r: &Routed) -> WriteResult {
        let mut f: Vec<(&str, Option<String>)> =
            r.own.iter().filter(|(_, v)| v.is_some()).cloned().collect();
        if !f.iter().any(|(k, _)| *k == "name") {
            return Err(ConnectError::Invalid {
                system: System::Accelo,
                message: "an accelo company needs a `name`".into(),
            });
        }
        if let Some(Some(title)) = &r.status {
            f.push((
                "status_id",
                Some(self.status_id(Object::Company, title).await?),
            ));
        }
        let call = Call::new(Method::POST, COMPANIES, Body::Form(form(&f)))
            .query("_fields", COMPANY_FIELDS);
        let mut created: Company = self.created(&call).await?;
        let mut w = Written::new(created.id.clone(), WriteOutcome::Created);
        let mut known = true;
        if r.address.iter().any(|(_, v)| v.is_some()) {
            match self.write_address(&created.id, None, &r.address).await {
                Ok(Some(a)) => created.postal_address = Some(Linked::Obj(a)),
                Ok(None) => known = false,
                Err(e) => w.failed_step(
                    e,
                    r.address.iter().map(|(k, _)| format!("postal_address.{k}")),
                ),
            }
        }
        // The answer is the company as stored (with the status Accelo gave it).
        if known {
            w.stored = Some(Stored {
                record: created.into_record(),
                complete: true,
            });
        }
        Ok(w)
    }

    async fn post_contact(&self, input: &CreateInput, r: &Routed) -> WriteResult {
        let Some(company) = input.company_id.as_deref().filter(|c| !c.is_empty()) else {
            return Err(ConnectError::Invalid {
                system: System::Accelo,
                message: "an accelo contact is created against a company: `company_id` is missing"
                    .into(),
            });
        };
        let mut f: Vec<(&str, Option<String>)> =
            r.own.iter().filter(|(_, v)| v.is_some()).cloned().collect();
        f.push(("company_id", Some(company.to_string())));
        let (with_post, later): (Vec<_>, Vec<_>) = r
            .affiliation
            .iter()
            .filter(|(_, v)| v.is_some())
            .cloned()
            .partition(|(k, _)| CONTACT_CREATE_AFFILIATION_KEYS.contains(k));
        f.extend(with_post);
        if let Some(Some(title)) = &r.status {
            f.push((
                "status",
                Some(self.status_id(Object::Contact, title).await?),
            ));
        }
        let call = Call::new(Method::POST, CONTACTS, Body::Form(form(&f)))
            .query("_fields", CONTACT_CREATE_FIELDS);
        let answer: Value = self.created(&call).await?;
        let contact: Contact = serde_json::from_value(answer.clone())
            .map_err(|e| self.protocol(&call, format!("the new contact does not parse: {e}")))?;
        // The affiliation `POST /contacts` made, as stored, when the answer expanded it.
        let mut affiliation: Option<Affiliation> = serde_json::from_value::<CreatedContact>(answer)
            .ok()
            .and_then(|c| c.default_affiliation)
            .and_then(|a| match a {
                Linked::Obj(a) => Some(a),
                Linked::Id(_) => None,
            });
        let mut w = Written::new(contact.id.clone(), WriteOutcome::Created);
        w.affiliation_id = affiliation
            .as_ref()
            .map(|a| a.id.clone())
            .or_else(|| contact.default_affiliation_id());
        if w.affiliation_id.is_none() {
            match self.affiliation_of(&contact.id).await {
                Ok(a) => w.affiliation_id = a,
                Err(e) => w.problems.push(e),
            }
        }
        let later_keys = || later.iter().map(|(k, _)| format!("affiliation.{k}"));
        if !later.is_empty() {
            match &w.affiliation_id {
                Some(a) => {
                    let call = Call::new(
                        Method::PUT,
                        format!("{AFFILIATIONS}/{a}"),
                        Body::Form(form(&later)),
                    )
                    .query("_fields", AFFILIATION_FIELDS);
                    match self.one::<Affiliation>(&call).await {
                        Ok(a) => affiliation = Some(a),
                        Err(e) => w.failed_step(e, later_keys()),
                    }
                }
                None => w.failed_step(
                    ConnectError::Protocol {
                        system: System::Accelo,
                        request: call.label(),
                        message: "the new contact has no affiliation to write its mobile to".into(),
                    },
                    later_keys(),
                ),
            }
        }
        // The answers are the contact and its affiliation as stored (with the status Accelo
        // gave the contact); without the affiliation only the contact's own fields are known.
        let complete = affiliation.is_some();
        w.stored = Some(Stored {
            record: contact.into_record(affiliation.as_ref()),
            complete,
        });
        Ok(w)
    }

    /// The answer of a create; a 2xx that cannot be read, or does not name the new record, is
    /// an unknown outcome.
    async fn created<T: DeserializeOwned>(&self, call: &Call) -> Result<T, ConnectError> {
        let ans = self.t.send(call).await?;
        let unknown = |reason: String| ConnectError::OutcomeUnknown {
            system: System::Accelo,
            request: call.label(),
            reason,
        };
        match self.open::<Value>(call, &ans) {
            Ok(Some(v)) if v.get("id").is_some_and(|id| !id.is_null()) => serde_json::from_value(v)
                // The record exists, but its answer cannot be read: looked up, never repeated.
                .map_err(|e| unknown(format!("the answer does not parse: {e}"))),
            Ok(_) | Err(ConnectError::Protocol { .. }) if (200..300).contains(&ans.status) => {
                Err(unknown("the answer does not name the new record".into()))
            }
            Ok(_) => Err(self.protocol(call, "the answer has no `response`".into())),
            Err(e) => Err(e),
        }
    }

    async fn update_one(&self, object: Object, input: &UpdateInput) -> WriteResult {
        let r = split(object, &input.changes)?;
        let id = input.id.as_str();
        let current = input.current.as_ref();
        let mut w = Written::new(id, WriteOutcome::Updated);
        match object {
            Object::Company => {
                if !r.own.is_empty() {
                    let call = Call::new(
                        Method::PUT,
                        format!("{COMPANIES}/{id}"),
                        Body::Form(form(&r.own)),
                    );
                    self.one::<Value>(&call).await?;
                }
                if !r.address.is_empty() {
                    let address_id = current.and_then(|c| doc_value(c, "postal_address.id"));
                    self.write_address(id, address_id, &r.address).await?;
                }
                if let Some(Some(title)) = &r.status {
                    let cur = current.and_then(|c| doc_value(c, "status.id"));
                    self.progress_company(id, title, cur.as_deref()).await?;
                }
            }
            Object::Contact => {
                let mut f = r.own.clone();
                if let Some(Some(title)) = &r.status {
                    f.push((
                        "status",
                        Some(self.status_id(Object::Contact, title).await?),
                    ));
                }
                if !f.is_empty() {
                    let call = Call::new(
                        Method::PUT,
                        format!("{CONTACTS}/{id}"),
                        Body::Form(form(&f)),
                    );
                    self.one::<Value>(&call).await?;
                }
                let known = current.and_then(|c| doc_value(c, "affiliation.id"));
                if !r.affiliation.is_empty() {
                    let aff = match known {
                        Some(a) => Some(a),
                        None => self.affiliation_of(id).await?,
                    };
                    let Some(aff) = aff else {
                        return Err(ConnectError::Invalid {
                            system: System::Accelo,
                            message: format!(
                                "accelo contact `{id}` has no affiliation to write `affiliation.*` to"
                            ),
                        });
                    };
                    let call = Call::new(
                        Method::PUT,
                        format!("{AFFILIATIONS}/{aff}"),
                        Body::Form(form(&r.affiliation)),
                    );
                    self.one::<Value>(&call).await?;
                    w.affiliation_id = Some(aff);
                } else {
                    w.affiliation_id = known;
                }
            }
        }
        Ok(w)
    }

    /// Runs the writes with bounded concurrency; once the system turns out unreachable the
    /// remaining writes are not started. `Err` only when nothing was written.
    async fn write_all<'a>(
        &'a self,
        writes: Vec<BoxFuture<'a, WriteResult>>,
    ) -> Result<Vec<WriteResult>, ConnectError> {
        let down = AtomicBool::new(false);
        let fatal: std::sync::Mutex<Option<ConnectError>> = std::sync::Mutex::new(None);
        let (down_ref, fatal_ref) = (&down, &fatal);
        let guarded: Vec<BoxFuture<'_, (usize, Option<WriteResult>)>> = writes
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                async move {
                    if down_ref.load(Ordering::SeqCst) {
                        return (i, None);
                    }
                    let r = w.await;
                    if let Err(e) = &r
                        && e.is_unreachable()
                    {
                        down_ref.store(true, Ordering::SeqCst);
                        let mut g = fatal_ref.lock().unwrap_or_else(|p| p.into_inner());
                        if g.is_none() {
                            *g = Some(e.clone());
                        }
                    }
                    (i, Some(r))
                }
                .boxed()
            })
            .collect();
        let mut results: Vec<(usize, Option<WriteResult>)> = stream::iter(guarded)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        results.sort_by_key(|(i, _)| *i);
        let fatal = fatal.into_inner().unwrap_or_else(|p| p.into_inner());
        let wrote = results.iter().any(|(_, r)| matches!(r, Some(Ok(_))));
        if let Some(e) = &fatal
            && !wrote
        {
            return Err(e.clone());
        }
        Ok(results
            .into_iter()
            .map(|(_, r)| {
                r.unwrap_or_else(|| {
                    Err(fatal.clone().unwrap_or_else(|| ConnectError::Protocol {
                        system: System::Accelo,
                        request: "write".into(),
                        message: "no result was recorded for this input".into(),
                    }))
                })
            })
            .collect())
    }

    async fn scan_companies(
        &self,
        filters: &[String],
        page: u32,
    ) -> Result<(Vec<Record>, bool), ConnectError> {
        let call = Self::list_call(COMPANIES, COMPANY_FIELDS, filters, page);
        let list = self.list::<Company>(&call).await?;
        let full = list.len() >= PAGE;
        Ok((list.into_iter().map(Company::into_record).collect(), full))
    }

    async fn scan_contacts(
        &self,
        filters: &[String],
        page: u32,
    ) -> Result<(Vec<Record>, bool), ConnectError> {
        let call = Self::list_call(CONTACTS, CONTACT_FIELDS, filters, page);
        let list = self.list::<Contact>(&call).await?;
        let full = list.len() >= PAGE;
        Ok((self.join(list, HashMap::new()).await?, full))
    }
}

/// `date_modified_after` is strict and in seconds: to read everything changed at or after
/// `since_ms`, ask for after `floor(since_ms / 1000) - 1`.
fn after_secs(since_ms: i64) -> i64 {
    since_ms.div_euclid(1000) - 1
}

#[async_trait]
impl Connector for Accelo {
    fn system(&self) -> System {
        System::Accelo
    }

    fn batch_size(&self) -> usize {
        1
    }

    async fn check(&self) -> Result<(), ConnectError> {
        let call = Call::get(COMPANIES).query("_limit", "1");
        self.list::<Value>(&call).await.map(|_| ())
    }

    async fn scan_page(
        &self,
        object: Object,
        scan: Scan,
        _properties: &[String],
        cursor: Option<&Cursor>,
    ) -> Result<Page, ConnectError> {
        let c: ScanCursor = match cursor {
            None => ScanCursor::default(),
            Some(c) => serde_json::from_str(&c.0).map_err(|e| ConnectError::Invalid {
                system: System::Accelo,
                message: format!("`{}` is not an accelo scan cursor: {e}", c.0),
            })?,
        };
        let too_far = || ConnectError::Protocol {
            system: System::Accelo,
            request: "GET /api/v0 (scan)".into(),
            message: "the scan ran past the last page number".into(),
        };
        let next = |phase: u8, page: u32| {
            serde_json::to_string(&ScanCursor { phase, page })
                .map(Cursor)
                .map_err(|e| ConnectError::Invalid {
                    system: System::Accelo,
                    message: format!("cannot encode a cursor: {e}"),
                })
        };
        let (filters, after) = match scan {
            Scan::All => (Vec::new(), None),
            Scan::ChangedSince(ms) => {
                let s = after_secs(ms);
                (
                    vec![
                        format!("date_modified_after({s})"),
                        "order_by_asc(date_modified)".to_string(),
                    ],
                    Some(s),
                )
            }
        };
        match (object, c.phase) {
            (Object::Company, _) => {
                let (records, full) = self.scan_companies(&filters, c.page).await?;
                Ok(Page {
                    records,
                    next: if full {
                        Some(next(0, c.page.checked_add(1).ok_or_else(too_far)?)?)
                    } else {
                        None
                    },
                })
            }
            (Object::Contact, 0) => {
                let (records, full) = self.scan_contacts(&filters, c.page).await?;
                let next = match (full, after) {
                    (true, _) => Some(next(0, c.page.checked_add(1).ok_or_else(too_far)?)?),
                    // Changed since: then the contacts whose affiliation changed.
                    (false, Some(_)) => Some(next(1, 0)?),
                    (false, None) => None,
                };
                Ok(Page { records, next })
            }
            (Object::Contact, _) => {
                let Some(s) = after else {
                    return Err(ConnectError::Invalid {
                        system: System::Accelo,
                        message: "an affiliation cursor belongs to a changed-since scan".into(),
                    });
                };
                let call = Self::list_call(AFFILIATIONS, "contact,date_modified", &filters, c.page);
                let affs = self.list::<Affiliation>(&call).await?;
                let full = affs.len() >= PAGE;
                let mut seen = HashSet::new();
                let ids: Vec<String> = affs
                    .iter()
                    .filter_map(Affiliation::contact_id)
                    .filter(|id| seen.insert(id.clone()))
                    .collect();
                // Contacts changed themselves were read in phase 0.
                let contacts: Vec<Contact> = self
                    .contacts_by_id(&ids)
                    .await?
                    .into_iter()
                    .filter(|c| c.modified_s().is_none_or(|m| m <= s))
                    .collect();
                let records = self.join(contacts, HashMap::new()).await?;
                Ok(Page {
                    records,
                    next: if full {
                        Some(next(1, c.page.checked_add(1).ok_or_else(too_far)?)?)
                    } else {
                        None
                    },
                })
            }
        }
    }

    async fn get(
        &self,
        object: Object,
        ids: &[String],
        _properties: &[String],
    ) -> Result<Vec<Record>, ConnectError> {
        let mut seen = HashSet::new();
        let ids: Vec<String> = ids.iter().filter(|i| seen.insert(*i)).cloned().collect();
        match object {
            Object::Company => {
                let mut out = Vec::new();
                for chunk in numeric(&ids).chunks(PAGE) {
                    let call = Self::list_call(
                        COMPANIES,
                        COMPANY_FIELDS,
                        &[format!("id({})", chunk.join(","))],
                        0,
                    );
                    out.extend(
                        self.list::<Company>(&call)
                            .await?
                            .into_iter()
                            .map(Company::into_record),
                    );
                }
                Ok(out)
            }
            Object::Contact => {
                let contacts = self.contacts_by_id(&ids).await?;
                self.join(contacts, HashMap::new()).await
            }
        }
    }

    async fn find(
        &self,
        object: Object,
        lookup: &Lookup,
        _properties: &[String],
    ) -> Result<Vec<Record>, ConnectError> {
        let value = lookup.value.trim();
        if value.is_empty() {
            return Ok(Vec::new());
        }
        if object == Object::Contact && lookup.key == super::COMPANY_ID_KEY {
            return self.contacts_of_company(value).await;
        }
        let want = norm(value);
        let key = match (object, lookup.key.as_str()) {
            // The contact's own email is deprecated; it lives on the affiliation.
            (Object::Contact, "email") => "affiliation.email",
            (_, k) => k,
        };
        let exact = |r: &Record| doc_value(r, key).is_some_and(|v| norm(&v) == want);
        let filter_or_search = |field: &str| -> (Vec<String>, Option<String>) {
            if filterable(value) {
                let mut vals = vec![value.to_string()];
                if want != value {
                    vals.push(want.clone());
                }
                (vec![format!("{field}({})", vals.join(","))], None)
            } else {
                (Vec::new(), Some(value.to_string()))
            }
        };
        let (path, fields, filters, search) = match (object, key) {
            (Object::Company, "website" | "custom_id" | "id" | "standing") => {
                let (f, s) = filter_or_search(key);
                (COMPANIES, COMPANY_FIELDS, f, s)
            }
            (Object::Company, "name" | "phone" | "fax") => (
                COMPANIES,
                COMPANY_FIELDS,
                Vec::new(),
                Some(value.to_string()),
            ),
            (Object::Contact, "affiliation.email") => {
                let (f, s) = filter_or_search("email");
                (AFFILIATIONS, AFFILIATION_FIELDS, f, s)
            }
            (Object::Contact, "affiliation.phone" | "affiliation.mobile" | "affiliation.fax") => (
                AFFILIATIONS,
                AFFILIATION_FIELDS,
                Vec::new(),
                Some(value.to_string()),
            ),
            (Object::Contact, "firstname" | "surname" | "id") => {
                if key == "id" {
                    let (f, s) = filter_or_search("id");
                    (CONTACTS, CONTACT_FIELDS, f, s)
                } else {
                    (
                        CONTACTS,
                        CONTACT_FIELDS,
                        Vec::new(),
                        Some(value.to_string()),
                    )
                }
            }
            _ => {
                return Err(ConnectError::Invalid {
                    system: System::Accelo,
                    message: format!("accelo {}s cannot be looked up by `{}`", object, lookup.key),
                });
            }
        };
        let mut raw: Vec<Value> = Vec::new();
        for page in 0..FIND_PAGES {
            let mut call = Self::list_call(path, fields, &filters, page);
            if let Some(s) = &search {
                call = call.query("_search", s.clone());
            }
            let list = self.list::<Value>(&call).await?;
            let n = list.len();
            raw.extend(list);
            if n < PAGE {
                break;
            }
        }
        let parse_err = |e: serde_json::Error| ConnectError::Protocol {
            system: System::Accelo,
            request: format!("GET {path}"),
            message: format!("a record does not parse: {e}"),
        };
        let records = match path {
            COMPANIES => raw
                .into_iter()
                .map(|v| serde_json::from_value::<Company>(v).map(Company::into_record))
                .collect::<Result<Vec<_>, _>>()
                .map_err(parse_err)?,
            CONTACTS => {
                let contacts = raw
                    .into_iter()
                    .map(serde_json::from_value::<Contact>)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(parse_err)?;
                self.join(contacts, HashMap::new()).await?
            }
            _ => {
                let affs = raw
                    .into_iter()
                    .map(serde_json::from_value::<Affiliation>)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(parse_err)?;
                let mut prefer: BTreeMap<String, Affiliation> = BTreeMap::new();
                for a in affs {
                    let matches = match key {
                        "affiliation.email" => a.email.as_deref(),
                        "affiliation.phone" => a.phone.as_deref(),
                        "affiliation.mobile" => a.mobile.as_deref(),
                        _ => a.fax.as_deref(),
                    }
                    .is_some_and(|v| norm(v) == want);
                    if matches && let Some(cid) = a.contact_id() {
                        prefer.entry(cid).or_insert(a);
                    }
                }
                let ids: Vec<String> = prefer.keys().cloned().collect();
                let contacts = self.contacts_by_id(&ids).await?;
                self.join(contacts, prefer.into_iter().collect()).await?
            }
        };
        Ok(records.into_iter().filter(|r| exact(r)).collect())
    }

    async fn search_text(
        &self,
        object: Object,
        text: &str,
        _properties: &[String],
    ) -> Result<Vec<Record>, ConnectError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        match object {
            Object::Company => {
                let mut out = Vec::new();
                for page in 0..FIND_PAGES {
                    let call = Self::list_call(COMPANIES, COMPANY_FIELDS, &[], page)
                        .query("_search", text.to_string());
                    let list = self.list::<Company>(&call).await?;
                    let n = list.len();
                    out.extend(list.into_iter().map(Company::into_record));
                    if n < PAGE || out.len() >= super::TEXT_SEARCH_LIMIT {
                        break;
                    }
                }
                out.truncate(super::TEXT_SEARCH_LIMIT);
                Ok(out)
            }
            Object::Contact => {
                // Affiliations search the contact's names and the affiliation's email and
                // phones: every contact with a company has one, so one search covers them.
                let mut ids: Vec<String> = Vec::new();
                let mut seen = HashSet::new();
                for page in 0..FIND_PAGES {
                    let call = Self::list_call(AFFILIATIONS, "contact", &[], page)
                        .query("_search", text.to_string());
                    let list = self.list::<Affiliation>(&call).await?;
                    let n = list.len();
                    for id in list.iter().filter_map(Affiliation::contact_id) {
                        if seen.insert(id.clone()) {
                            ids.push(id);
                        }
                    }
                    if n < PAGE || ids.len() >= super::TEXT_SEARCH_LIMIT {
                        break;
                    }
                }
                ids.truncate(super::TEXT_SEARCH_LIMIT);
                self.get(Object::Contact, &ids, &[]).await
            }
        }
    }

    fn write_requests(&self, object: Object, create: bool, changes: &Changes) -> u64 {
        let Ok(r) = split(object, changes) else {
            return 1;
        };
        let any = |v: &[(&str, Option<String>)]| u64::from(!v.is_empty());
        match (object, create) {
            // The record (with its status), then its address.
            (Object::Company, true) => 1 + any(&r.address),
            // The contact with its affiliation, then the affiliation fields the create cannot
            // carry.
            (Object::Contact, true) => {
                let later: Vec<_> = r
                    .affiliation
                    .iter()
                    .filter(|(k, _)| !CONTACT_CREATE_AFFILIATION_KEYS.contains(k))
                    .cloned()
                    .collect();
                1 + any(&later)
            }
            // Own fields; the address read and written; a status progression read and applied.
            (Object::Company, false) => {
                any(&r.own) + 2 * any(&r.address) + 2 * u64::from(r.status.is_some())
            }
            (Object::Contact, false) => {
                u64::from(!r.own.is_empty() || r.status.is_some()) + any(&r.affiliation)
            }
        }
        .max(1)
    }

    fn budget_windows(&self) -> Vec<super::BudgetWindow> {
        self.t.budget_windows()
    }

    fn clock_offset(&self) -> Option<chrono::TimeDelta> {
        self.t.clock_offset()
    }

    fn budget(&self) -> RateLimit {
        self.t.general_rate()
    }

    fn budget_waits(&self) -> Option<tokio::sync::broadcast::Receiver<super::BudgetWait>> {
        Some(self.t.budget_waits())
    }

    async fn status_titles(&self, object: Object) -> Result<Vec<String>, ConnectError> {
        let call = Call::get(format!("/api/v0/{}/statuses", object.plural()))
            .query("_fields", "title,standing")
            .query("_limit", PAGE.to_string());
        let list = self.list::<Status>(&call).await?;
        Ok(list.into_iter().filter_map(|s| s.title).collect())
    }

    async fn create(
        &self,
        object: Object,
        inputs: Vec<CreateInput>,
    ) -> Result<Vec<WriteResult>, ConnectError> {
        let writes = inputs
            .iter()
            .map(|input| self.create_one(object, input).boxed())
            .collect();
        self.write_all(writes).await
    }

    async fn update(
        &self,
        object: Object,
        inputs: Vec<UpdateInput>,
    ) -> Result<Vec<WriteResult>, ConnectError> {
        let writes = inputs
            .iter()
            .map(|input| self.update_one(object, input).boxed())
            .collect();
        self.write_all(writes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers_never_overflow() {
        let call = Call::get(AFFILIATIONS);
        assert_eq!(next_page(0, &call).unwrap(), 1);
        let e = next_page(u32::MAX, &call).unwrap_err();
        assert!(matches!(e, ConnectError::Protocol { .. }), "{e:?}");
        assert!(matches!(stuck(&call), ConnectError::Protocol { .. }));
    }

    #[test]
    fn write_keys_route_to_their_resource() {
        assert_eq!(route(Object::Company, "name").unwrap(), Route::Own("name"));
        assert_eq!(route(Object::Company, "status").unwrap(), Route::Status);
        assert_eq!(
            route(Object::Company, "postal_address.city").unwrap(),
            Route::Address("city")
        );
        assert_eq!(
            route(Object::Contact, "affiliation.email").unwrap(),
            Route::Affiliation("email")
        );
        assert_eq!(
            route(Object::Contact, "surname").unwrap(),
            Route::Own("surname")
        );
        assert_eq!(route(Object::Contact, "status").unwrap(), Route::Status);
        // Not writable: other object's fields, ids, unknown paths.
        for (o, k) in [
            (Object::Contact, "postal_address.city"),
            (Object::Company, "affiliation.email"),
            (Object::Company, "id"),
            (Object::Contact, "company.name"),
            (Object::Contact, "affiliation.id"),
            (Object::Company, "date_modified"),
        ] {
            let e = route(o, k).unwrap_err();
            assert!(e.to_string().contains(&format!("`{k}`")), "{e}");
        }
    }

    #[test]
    fn clearing_sends_an_empty_value() {
        let mut c = Changes::new();
        c.insert("phone".into(), None);
        c.insert("name".into(), Some("Acme".into()));
        let r = split(Object::Company, &c).unwrap();
        assert_eq!(
            form(&r.own),
            vec![
                ("name".to_string(), "Acme".to_string()),
                ("phone".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn filter_values_and_boundaries() {
        assert!(filterable("ann@acme.com"));
        assert!(!filterable("a,b"));
        assert!(!filterable("x(y)"));
        assert_eq!(
            numeric(&["12".into(), "x".into(), " 7 ".into(), "".into()]),
            vec!["12", "7"]
        );
        assert_eq!(after_secs(1_700_000_000_000), 1_699_999_999);
        assert_eq!(after_secs(1_700_000_000_999), 1_699_999_999);
    }
}
