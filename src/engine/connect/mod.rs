//! Connectors: the HubSpot and Accelo API clients behind one [`Connector`] trait.
//!
//! This module owns everything Tandem says to the two remote systems: authentication, paging,
//! batching, lookups, rate limiting before sending, retries with backoff, and the rule that a
//! create whose outcome is unknown is never blindly repeated (it is looked up first). Wire types
//! stay inside [`hubspot`] and [`accelo`]; what leaves this module is [`model::Record`] in the
//! document shapes of the shared contract, and what enters it is a write by *write key*
//! (a HubSpot property name, or an Accelo dotted path such as `affiliation.email`).
//!
//! [`model::Record`]: tandem_core::model::Record

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use tandem_core::model::{Object, Record, System};

pub mod accelo;
mod de;
mod error;
mod http;
pub mod hubspot;
pub use hubspot::app::{AppSubscription, HubSpotApp};

pub use error::ConnectError;
pub use http::{
    API_BUDGET_REMAINING, API_REQUESTS, BudgetWait, BudgetWindow, NOTICE_TARGET, RateLimit,
    RetryPolicy,
};
pub use tandem_core::secret::Secret;

/// A field as the system defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    /// Its internal name.
    pub name: String,
    /// Its data type, in the system's words (HubSpot: `string`, `number`, `enumeration`, …).
    pub kind: String,
    /// The values an enumeration allows.
    pub options: Vec<String>,
    /// Whether the API refuses writes to it.
    pub read_only: bool,
}

/// The scopes a system's credentials were granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedScopes {
    /// The scope names (HubSpot: `crm.objects.contacts.write`, …).
    pub scopes: Vec<String>,
    /// Where they were read (`GET /oauth/v1/access-tokens/{token}`, …), for messages.
    pub source: String,
}

/// The changes of one write, by write key. `None` clears the field.
pub type Changes = BTreeMap<String, Option<String>>;

/// What to scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scan {
    /// Every record of the object.
    All,
    /// Records changed at or after this time (unix milliseconds). The result may repeat a record
    /// changed exactly at the boundary; callers keep the latest `updated_at` as their watermark.
    ChangedSince(i64),
}

/// Where the next page of a scan starts. Opaque; it serializes so a resumable job can store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

/// One page of a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records of this page, in the system's order.
    pub records: Vec<Record>,
    /// The cursor of the next page, `None` on the last one.
    pub next: Option<Cursor>,
}

/// Most records [`Connector::search_text`] returns.
pub const TEXT_SEARCH_LIMIT: usize = 1000;

/// The [`Lookup`] key that finds the contacts of a company (value: the company's id in the
/// connector's system): HubSpot contacts whose primary company it is, Accelo contacts whose
/// (default) affiliation is with it — the contacts whose [`Record::company_id`] it is.
pub const COMPANY_ID_KEY: &str = "company_id";

/// A field value to find records by: dedup lookups and crash recovery.
///
/// `key` is a write key: a HubSpot property (`email`, `domain`, `name`) or an Accelo path
/// (`affiliation.email`, `website`, `name`), or [`COMPANY_ID_KEY`] for a company's contacts.
/// Matching is exact, ignoring case and surrounding white space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lookup {
    /// The field.
    pub key: String,
    /// The value it must have.
    pub value: String,
}

impl Lookup {
    /// A lookup of `key` = `value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Lookup {
        Lookup {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One record to create.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateInput {
    /// The initial field values by write key (`None` values are left out).
    pub changes: Changes,
    /// For contacts: the company (in the target system) to attach the contact to — HubSpot: the
    /// primary association (typeId 1); Accelo: the affiliation's company (required).
    pub company_id: Option<String>,
    /// How to find the record if the create's outcome is unknown (timeout, dropped connection,
    /// 5xx): it is looked up by this before being created again. Without it such a create fails
    /// with [`ConnectError::OutcomeUnknown`] instead of risking a duplicate.
    pub lookup: Option<Lookup>,
}

/// One record to update.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateInput {
    /// The record's id in the target system.
    pub id: String,
    /// The changed fields by write key; `None` clears.
    pub changes: Changes,
    /// For contacts: make this company the primary one (HubSpot v4 association typeId 1).
    /// Accelo affiliations are not moved between companies; there it is ignored.
    pub company_id: Option<String>,
    /// The record as last read, when the caller has it: lets the Accelo connector find the
    /// affiliation, the postal address and the current status without reading again.
    pub current: Option<Record>,
}

/// What a successful write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOutcome {
    /// The record was created.
    Created,
    /// The record was updated.
    Updated,
    /// A create's outcome was unknown and the record was found by its lookup: it exists (created
    /// by the lost attempt, or by someone else) and was not created again. Only its existence is
    /// established ([`Written::stored`] is the record found): the executor writes what it lacks
    /// of the create's values before linking it.
    Found,
}

/// The result of one successful write.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The record's id in the target system.
    pub id: String,
    /// Accelo contacts: the affiliation carrying email, phone and position.
    pub affiliation_id: Option<String>,
    /// What happened.
    pub outcome: WriteOutcome,
    /// Steps that failed after the record itself was written (Accelo: the postal address or the
    /// mobile number of a new record). The record exists and must be linked; the fields of
    /// [`Written::unwritten`] were not written.
    pub problems: Vec<ConnectError>,
    /// Write keys of the input that were not written (each because of one of `problems`).
    pub unwritten: Vec<String>,
    /// The record as the system holds it after the write, when the write's answers (or a read
    /// that came with them) showed it: values the system assigned itself (an Accelo record's
    /// default status) or normalised are there, so they are not mistaken for edits later.
    pub stored: Option<Stored>,
}

impl Written {
    /// A write that did everything it was asked.
    pub fn new(id: impl Into<String>, outcome: WriteOutcome) -> Written {
        Written {
            id: id.into(),
            affiliation_id: None,
            outcome,
            problems: Vec::new(),
            unwritten: Vec::new(),
            stored: None,
        }
    }

    /// Adds a failed step and the write keys it left unwritten.
    pub fn failed_step<K: Into<String>>(
        &mut self,
        error: ConnectError,
        keys: impl IntoIterator<Item = K>,
    ) {
        self.problems.push(error);
        for k in keys {
            let k = k.into();
            if !self.unwritten.contains(&k) {
                self.unwritten.push(k);
            }
        }
    }
}

/// A record as its system holds it, read back with a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The record in the shared document shape.
    pub record: Record,
    /// Every field of the document was read, so a field absent from it is blank (Accelo
    /// documents, which leave blank fields out). Otherwise only the fields present are known
    /// (a HubSpot answer carries the properties written plus a few defaults).
    pub complete: bool,
}

impl Stored {
    /// The value of field `key` (a write key or dotted document path: `name`,
    /// `affiliation.mobile`, `status` — an Accelo status by its title), `""` when blank, or
    /// `None` when this read does not tell. A JSONPath (`$…`) is never told.
    pub fn value(&self, key: &str) -> Option<String> {
        if key.starts_with('$') || key.is_empty() {
            return None;
        }
        let unknown = || (self.complete).then(String::new);
        let mut v: Option<&serde_json::Value> = None;
        for (n, part) in key.split('.').enumerate() {
            let next = if n == 0 {
                self.record.doc.get(part)
            } else {
                v.and_then(|x| x.get(part))
            };
            match next {
                Some(x) => v = Some(x),
                None => return unknown(),
            }
        }
        let v = v?;
        let v = match v {
            serde_json::Value::Object(o) if self.record.system == System::Accelo => {
                o.get("title")?
            }
            other => other,
        };
        Some(tandem_core::model::value_as_string(v).unwrap_or_default())
    }
}

/// The result of one input of a batch write: each input fails alone.
pub type WriteResult = Result<Written, ConnectError>;

/// What the rest of Tandem needs from a remote system.
///
/// Every method's outer `Err` means the call as a whole failed. For writes that happens only
/// when the system turned out unusable ([`ConnectError::is_unreachable`], the exit-code-3 kind)
/// before any record was written; every other failure — a refused value, a duplicate, an
/// unknown outcome, or the system going away half-way — is the inner result of the inputs it
/// concerns, one result per input, in input order.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// Which system this is.
    fn system(&self) -> System;

    /// How many records one write request takes (HubSpot 100, Accelo 1). Callers may pass more;
    /// the connector splits.
    fn batch_size(&self) -> usize;

    /// About how many requests writing one record takes — a create when `create`, else an
    /// update of `changes` — for a connector that writes one record per call (a batching
    /// connector's cost is counted per batch). An estimate for telling a person what a run will
    /// cost, never a limit.
    fn write_requests(&self, object: Object, create: bool, changes: &Changes) -> u64 {
        let _ = (object, create, changes);
        1
    }

    /// The request budget in force (after any retuning by the system's headers).
    fn budget(&self) -> RateLimit;

    /// The long waits on the system's budget that begin from now on ([`BudgetWait`]), for a
    /// run to log; `None` where the connector has no budget to wait on.
    fn budget_waits(&self) -> Option<tokio::sync::broadcast::Receiver<BudgetWait>> {
        None
    }

    /// The fields the system defines for `object`, as it describes them (HubSpot: its property
    /// definitions); empty where the system has no such list. For `tandem doctor`.
    async fn fields(&self, object: Object) -> Result<Vec<FieldInfo>, ConnectError> {
        let _ = object;
        Ok(Vec::new())
    }

    /// The status titles the system has for `object` (Accelo); empty where it has none. For
    /// `tandem doctor`.
    async fn status_titles(&self, object: Object) -> Result<Vec<String>, ConnectError> {
        let _ = object;
        Ok(Vec::new())
    }

    /// How far the system's clock is ahead of this machine's (negative: behind), by the `Date`
    /// header of its last answer; `None` before any answer with one. For `tandem doctor`.
    fn clock_offset(&self) -> Option<chrono::TimeDelta> {
        None
    }

    /// The scopes the credentials were granted, where the system can tell (HubSpot's token
    /// information); `None` where it cannot. For `tandem doctor`.
    async fn granted_scopes(&self) -> Result<Option<GrantedScopes>, ConnectError> {
        Ok(None)
    }

    /// One authenticated request: fails with the exit-code-3 kind of error when the system cannot
    /// be reached or refuses the credentials.
    async fn check(&self) -> Result<(), ConnectError>;

    /// The request budgets as the system's rate headers last reported them (none before the
    /// first answer).
    fn budget_windows(&self) -> Vec<BudgetWindow> {
        Vec::new()
    }

    /// One page of a scan. `properties` are the HubSpot properties to read (the connector adds
    /// those it needs itself); Accelo documents have a fixed shape and ignore it.
    async fn scan_page(
        &self,
        object: Object,
        scan: Scan,
        properties: &[String],
        cursor: Option<&Cursor>,
    ) -> Result<Page, ConnectError>;

    /// Records by id. Ids that do not exist are absent from the result.
    async fn get(
        &self,
        object: Object,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<Record>, ConnectError>;

    /// Records whose field `lookup.key` equals `lookup.value` (ignoring case and surrounding
    /// white space). HubSpot contacts by `email` are read consistently (batch read by
    /// `idProperty=email`); other HubSpot keys go through search, which HubSpot documents as
    /// eventually consistent (a record created seconds ago may not be found yet).
    async fn find(
        &self,
        object: Object,
        lookup: &Lookup,
        properties: &[String],
    ) -> Result<Vec<Record>, ConnectError>;

    /// How long after a write `find` with `lookup` may still miss the written record (a
    /// search index catching up): a lookup that finds nothing proves a record absent only for
    /// writes older than this. Zero for consistent reads.
    fn lookup_lag(&self, object: Object, lookup: &Lookup) -> std::time::Duration {
        let _ = (object, lookup);
        std::time::Duration::ZERO
    }

    /// Records whose searchable text contains `text`, ignoring case: a *superset* of the
    /// records a duplicate-detection key could match, for planning one record without reading
    /// a whole side. HubSpot: search `query` (companies: name, domain, website, phone; contacts:
    /// names, email, phone, company); Accelo: `_search` (companies: name, website, phone, fax;
    /// contacts: through their affiliations — names, email, phone, mobile, fax). At most
    /// [`TEXT_SEARCH_LIMIT`] records; an empty `text` finds nothing.
    async fn search_text(
        &self,
        object: Object,
        text: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, ConnectError> {
        let _ = (object, text, properties);
        Err(ConnectError::Invalid {
            system: self.system(),
            message: "this connector cannot search by text".into(),
        })
    }

    /// Creates records; one result per input, in input order. `Err` means nothing at all was
    /// written; a create that may have happened (its answer lost, and its lookup inconclusive)
    /// is that input's [`ConnectError::OutcomeUnknown`], never folded into an `Err` of the
    /// whole call.
    async fn create(
        &self,
        object: Object,
        inputs: Vec<CreateInput>,
    ) -> Result<Vec<WriteResult>, ConnectError>;

    /// Updates records; one result per input, in input order.
    async fn update(
        &self,
        object: Object,
        inputs: Vec<UpdateInput>,
    ) -> Result<Vec<WriteResult>, ConnectError>;

    /// Every record of a scan, page by page. Holds one page at a time.
    fn scan<'a>(
        &'a self,
        object: Object,
        scan: Scan,
        properties: &'a [String],
    ) -> BoxStream<'a, Result<Vec<Record>, ConnectError>> {
        stream::try_unfold(Some(None::<Cursor>), move |state| async move {
            let Some(cursor) = state else {
                return Ok(None);
            };
            let page = self
                .scan_page(object, scan, properties, cursor.as_ref())
                .await?;
            Ok(Some((page.records, page.next.map(Some))))
        })
        .boxed()
    }
}

/// Both connectors, as the readers and the executor use them.
#[derive(Debug, Clone)]
pub struct Systems {
    /// HubSpot.
    pub hubspot: Arc<dyn Connector>,
    /// Accelo.
    pub accelo: Arc<dyn Connector>,
}

impl Systems {
    /// The connector of `system`.
    pub fn get(&self, system: System) -> &Arc<dyn Connector> {
        match system {
            System::HubSpot => &self.hubspot,
            System::Accelo => &self.accelo,
        }
    }
}
