//! The HubSpot connector: CRM v3 objects (list with `after` paging, batch read / create /
//! update, search) and v4 associations, for companies and contacts.
//!
//! Request budget per operation (N records, 100 per page or batch):
//! - full scan: ceil(N/100) list requests per object; a contact's primary company comes in the
//!   same request (`associations=companies` plus the `associatedcompanyid` property);
//! - changed since: ceil(N/200) search requests (search pages hold 200), moving the time window
//!   before the 10,000-result cap;
//! - get by ids: ceil(N/100) batch reads; find: one search (or one batch read by `email`);
//! - create / update: ceil(N/100) batch requests, plus ceil(M/100) v4 association batches for
//!   the M updates that move a contact to another company.
//!
//! A create whose outcome is unknown (timeout, dropped connection, 5xx) is settled by its
//! lookup before anything is sent again. HubSpot's search is eventually consistent (a new
//! record "may take a few moments" to be found), so a lookup through search that finds
//! nothing is not taken as "absent" until the create is older than
//! [`HubSpotSettings::search_index_lag`] (default 10 s): the connector searches again with
//! backoff until then, and creates again only if the record is still not found after the
//! window. A contact looked up by `email` is read with a batch read (`idProperty=email`), which
//! is consistent, so it needs no wait. The window bounds the risk, it cannot remove it: an
//! index more than the window behind would still let a lost create be repeated. The
//! alternative — reporting such creates `OutcomeUnknown` and leaving them to the next run —
//! was not chosen: the next run settles open intents with the same search and no knowledge of
//! when the create was sent, so it would be no safer, only later.

pub mod app;
mod auth;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::auth::OAuthToken;
use self::wire::*;
use super::http::{Answer, Body, Call, HeaderStyle, Lane, StaticToken, TokenSource, Transport};
use super::{
    ConnectError, Connector, CreateInput, Cursor, Lookup, Page, RateLimit, RetryPolicy, Scan,
    Stored, UpdateInput, WriteOutcome, WriteResult, Written,
};
use tandem_core::model::{Object, Record, System};
use tandem_core::rules::catalog::LIFECYCLE_STAGES;

/// Inputs per batch request and records per list page.
const BATCH: usize = 100;
/// Records per search page (HubSpot's maximum).
const SEARCH_PAGE: u64 = 200;
/// Results one search query can reach.
const SEARCH_CAP: u64 = 10_000;
/// Longest search `query` HubSpot accepts.
const MAX_QUERY: usize = 3000;
/// Rounds of "create, look up what was lost, create what is absent".
const CREATE_ROUNDS: usize = 3;
/// The default of [`HubSpotSettings::search_index_lag`].
pub const DEFAULT_SEARCH_INDEX_LAG: Duration = Duration::from_secs(10);
/// First pause between two searches for a lost create (doubles, up to the window's end).
const LAG_RETRY_FIRST: Duration = Duration::from_millis(250);

pub use tandem_core::rules::config::HubSpotAuth;

/// Everything the HubSpot connector needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpotSettings {
    /// API root, `https://api.hubapi.com` in production.
    pub base_url: String,
    /// Credentials.
    pub auth: HubSpotAuth,
    /// The 10-second burst budget (default 190 / 10 s; lowered automatically when HubSpot's
    /// headers report less).
    pub rate_limit: RateLimit,
    /// The search budget (default 5 / s).
    pub search_rate_limit: RateLimit,
    /// Retries and backoff.
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub timeout: Duration,
    /// OAuth: refresh this long before the access token expires.
    pub refresh_margin: Duration,
    /// How long a write may take to reach HubSpot's search index (search is eventually
    /// consistent: "may take a few moments"). A create whose outcome is unknown is looked up;
    /// a lookup that goes through search concludes "absent" — and the record is created again
    /// — only once the create is older than this (default 10 s), searching again with backoff
    /// until then.
    pub search_index_lag: Duration,
    /// Where `base_url` was configured (`TANDEM_HUBSPOT_URL`, …), named when that address
    /// cannot work.
    pub url_origin: Option<String>,
}

impl HubSpotSettings {
    /// Settings with the documented defaults.
    pub fn new(base_url: impl Into<String>, auth: HubSpotAuth) -> HubSpotSettings {
        HubSpotSettings {
            base_url: base_url.into(),
            auth,
            rate_limit: RateLimit::HUBSPOT_BURST,
            search_rate_limit: RateLimit::HUBSPOT_SEARCH,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            refresh_margin: Duration::from_secs(300),
            search_index_lag: DEFAULT_SEARCH_INDEX_LAG,
            url_origin: None,
        }
    }
}

/// The HubSpot connector.
#[derive(Debug)]
pub struct HubSpot {
    t: Transport,
    oauth: Option<Arc<OAuthToken>>,
    search_index_lag: Duration,
}

/// The cursor of a changed-since scan: the window start and the offset inside it.
#[derive(Debug, Serialize, Deserialize)]
struct SearchCursor {
    since: i64,
    after: Option<String>,
}

/// The result of one association input.
type AssocResult = Result<(), ConnectError>;

enum Attempt {
    Done(WriteResult),
    Unknown(ConnectError),
}

impl HubSpot {
    /// A connector for these settings. Makes no request.
    pub fn new(settings: HubSpotSettings) -> Result<HubSpot, ConnectError> {
        let (auth, oauth): (Arc<dyn TokenSource>, _) = match settings.auth {
            HubSpotAuth::Token(t) => (Arc::new(StaticToken(t)), None),
            HubSpotAuth::OAuth {
                client_id,
                client_secret,
                refresh_token,
            } => {
                let o = Arc::new(OAuthToken::new(
                    client_id,
                    client_secret,
                    refresh_token,
                    settings.refresh_margin,
                ));
                (o.clone(), Some(o))
            }
        };
        let t = Transport::new(
            System::HubSpot,
            &settings.base_url,
            settings.timeout,
            settings.retry,
            settings.rate_limit,
            settings.search_rate_limit,
            auth,
            HeaderStyle::HubSpot,
        )?
        .with_origin(settings.url_origin.clone());
        Ok(HubSpot {
            t,
            oauth,
            search_index_lag: settings.search_index_lag,
        })
    }

    /// OAuth: how many access tokens were obtained so far (0 with a static token).
    pub async fn token_refreshes(&self) -> u64 {
        match &self.oauth {
            Some(o) => o.refreshes().await,
            None => 0,
        }
    }

    /// The general request budget in force.
    pub fn rate_limit(&self) -> RateLimit {
        self.t.general_rate()
    }

    fn path(object: Object) -> String {
        format!("/crm/v3/objects/{}", object.plural())
    }

    /// The properties to read: the caller's plus those the record model needs.
    fn read_properties(object: Object, requested: &[String]) -> Vec<String> {
        let mut set: BTreeSet<String> = requested
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        set.insert("hs_object_id".into());
        set.insert(modified_property(object).into());
        if object == Object::Contact {
            set.insert("associatedcompanyid".into());
        }
        set.into_iter().collect()
    }

    fn parse<T: DeserializeOwned>(&self, call: &Call, ans: &Answer) -> Result<T, ConnectError> {
        serde_json::from_slice(&ans.body).map_err(|e| ConnectError::Protocol {
            system: System::HubSpot,
            request: call.label(),
            message: format!("the body does not parse: {e}"),
        })
    }

    fn rejected(&self, call: &Call, ans: &Answer) -> ConnectError {
        let (category, message) = super::http::describe_error(&ans.body);
        ConnectError::Rejected {
            system: System::HubSpot,
            request: call.label(),
            status: ans.status,
            category,
            message,
        }
    }

    fn error_of(&self, call: &Call, e: &StandardError) -> ConnectError {
        ConnectError::Rejected {
            system: System::HubSpot,
            request: call.label(),
            // `status` is usually the word "error"; the category tells the kind.
            status: e.status.as_deref().and_then(|s| s.parse().ok()).unwrap_or(
                match e.category.as_deref() {
                    Some("OBJECT_NOT_FOUND") => 404,
                    Some("CONFLICT") => 409,
                    _ => 400,
                },
            ),
            category: e.category.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
        }
    }

    async fn search(
        &self,
        object: Object,
        body: serde_json::Value,
    ) -> Result<Collection, ConnectError> {
        let call = Call::new(
            Method::POST,
            format!("{}/search", Self::path(object)),
            Body::Json(body),
        )
        .idempotent()
        .lane(Lane::Search);
        let ans = self.t.send(&call).await?;
        if ans.status != 200 {
            return Err(self.rejected(&call, &ans));
        }
        self.parse(&call, &ans)
    }

    /// Every page of a search (`body` without `limit` / `after`), up to `max` records.
    async fn search_pages(
        &self,
        object: Object,
        mut body: serde_json::Value,
        max: u64,
    ) -> Result<Vec<Record>, ConnectError> {
        let max = max.min(SEARCH_CAP);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        let mut offset = 0u64;
        loop {
            let have = out.len() as u64;
            body["limit"] = json!(SEARCH_PAGE.min(max.saturating_sub(have)));
            match &after {
                Some(a) => body["after"] = json!(a),
                None => {
                    if let Some(o) = body.as_object_mut() {
                        o.remove("after");
                    }
                }
            }
            let col = self.search(object, body.clone()).await?;
            let next = col.next_after();
            let empty = col.results.is_empty();
            out.extend(col.results.into_iter().map(|o| o.into_record(object)));
            let have = out.len() as u64;
            match next_offset(next.as_deref(), offset, empty) {
                Next::Page(n) if have < max && n < SEARCH_CAP => {
                    offset = n;
                    after = next;
                }
                Next::Stuck(a) => return Err(self.stuck(object, &a)),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The error of a search whose paging does not move forward.
    fn stuck(&self, object: Object, after: &str) -> ConnectError {
        ConnectError::Protocol {
            system: System::HubSpot,
            request: format!("POST {}/search", Self::path(object)),
            message: format!("the search's paging does not advance (next `after` is `{after}`)"),
        }
    }

    async fn batch_read(
        &self,
        object: Object,
        ids: &[&str],
        properties: &[String],
        id_property: Option<&str>,
    ) -> Result<Vec<Record>, ConnectError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let body = BatchRead {
                inputs: chunk.iter().map(|id| IdInput { id }).collect(),
                properties,
                id_property,
            };
            let body = serde_json::to_value(&body).map_err(|e| ConnectError::Invalid {
                system: System::HubSpot,
                message: format!("cannot encode a batch read: {e}"),
            })?;
            let call = Call::new(
                Method::POST,
                format!("{}/batch/read", Self::path(object)),
                Body::Json(body),
            )
            .idempotent();
            let ans = self.t.send(&call).await?;
            match ans.status {
                200 | 207 => {
                    let b: BatchAnswer = self.parse(&call, &ans)?;
                    out.extend(b.results.into_iter().map(|o| o.into_record(object)));
                }
                // Every input missing.
                404 => {}
                _ => return Err(self.rejected(&call, &ans)),
            }
        }
        Ok(out)
    }

    /// Records matching any of `lookups`, keyed by (key, lower-cased value).
    async fn find_many(
        &self,
        object: Object,
        lookups: &[&Lookup],
        properties: &[String],
    ) -> Result<HashMap<(String, String), Vec<Record>>, ConnectError> {
        let mut by_key: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for l in lookups {
            by_key
                .entry(l.key.as_str())
                .or_default()
                .insert(norm(&l.value));
        }
        let mut out: HashMap<(String, String), Vec<Record>> = HashMap::new();
        for (key, values) in by_key {
            let mut props = Self::read_properties(object, properties);
            if !props.iter().any(|p| p == key) {
                props.push(key.to_string());
            }
            let values: Vec<String> = values.into_iter().collect();
            let found = if object == Object::Contact && key == "email" {
                let ids: Vec<&str> = values.iter().map(String::as_str).collect();
                self.batch_read(object, &ids, &props, Some("email")).await?
            } else {
                let mut found = Vec::new();
                for chunk in values.chunks(BATCH) {
                    let mut after: Option<String> = None;
                    let mut offset = 0u64;
                    loop {
                        let mut body = json!({
                            "filterGroups": [{"filters": [
                                {"propertyName": key, "operator": "IN", "values": chunk}
                            ]}],
                            "properties": props,
                            "limit": SEARCH_PAGE,
                        });
                        if let Some(a) = &after {
                            body["after"] = json!(a);
                        }
                        let col = self.search(object, body).await?;
                        let next = col.next_after();
                        let empty = col.results.is_empty();
                        found.extend(col.results.into_iter().map(|o| o.into_record(object)));
                        match next_offset(next.as_deref(), offset, empty) {
                            Next::Page(n)
                                if n.checked_add(SEARCH_PAGE).is_some_and(|e| e <= SEARCH_CAP) =>
                            {
                                offset = n;
                                after = next;
                            }
                            Next::Stuck(a) => return Err(self.stuck(object, &a)),
                            _ => break,
                        }
                    }
                }
                found
            };
            for r in found {
                if let Some(v) = r.get(key) {
                    let v = norm(&v);
                    if values.binary_search(&v).is_ok() {
                        out.entry((key.to_string(), v)).or_default().push(r);
                    }
                }
            }
        }
        Ok(out)
    }

    /// One batch create of `pending` (≤ 100); a whole-batch 4xx is split in halves so that a
    /// failing input fails alone.
    fn create_once<'a>(
        &'a self,
        object: Object,
        pending: &'a [(usize, CreateInput)],
    ) -> BoxFuture<'a, Result<Vec<(usize, Attempt)>, ConnectError>> {
        Box::pin(async move {
            let traces: Vec<String> = pending
                .iter()
                .map(|_| format!("tandem-{}", uuid::Uuid::new_v4()))
                .collect();
            let inputs: Vec<CreateIn<'_>> = pending
                .iter()
                .zip(&traces)
                .map(|((_, input), trace)| CreateIn {
                    properties: input
                        .changes
                        .iter()
                        .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
                        .collect(),
                    associations: match (&input.company_id, object) {
                        (Some(c), Object::Contact) => vec![CreateAssoc {
                            to: AssocTo { id: c },
                            types: vec![PRIMARY_CONTACT_TO_COMPANY],
                        }],
                        _ => Vec::new(),
                    },
                    object_write_trace_id: trace,
                })
                .collect();
            let body =
                serde_json::to_value(Inputs { inputs }).map_err(|e| ConnectError::Invalid {
                    system: System::HubSpot,
                    message: format!("cannot encode a batch create: {e}"),
                })?;
            let call = Call::new(
                Method::POST,
                format!("{}/batch/create", Self::path(object)),
                Body::Json(body),
            );
            let ans = match self.t.send(&call).await {
                Ok(a) => a,
                Err(e @ ConnectError::OutcomeUnknown { .. }) => {
                    return Ok(pending
                        .iter()
                        .map(|(i, _)| (*i, Attempt::Unknown(e.clone())))
                        .collect());
                }
                Err(e) => return Err(e),
            };
            match ans.status {
                200 | 201 | 207 => {
                    let b: BatchAnswer = match self.parse(&call, &ans) {
                        Ok(b) => b,
                        // A 2xx we cannot read: the records may exist.
                        Err(e) => {
                            return Ok(pending
                                .iter()
                                .map(|(i, _)| (*i, Attempt::Unknown(e.clone())))
                                .collect());
                        }
                    };
                    Ok(self.map_create_answer(object, &call, pending, &traces, b))
                }
                _ if pending.len() > 1 => {
                    // Halves, so one refused input does not fail the others. A half that
                    // fails as a whole wrote nothing; it never hides what the other half wrote.
                    let (l, r) = pending.split_at(pending.len() / 2);
                    let mut out = Vec::with_capacity(pending.len());
                    let mut failed = Vec::new();
                    for half in [l, r] {
                        match self.create_once(object, half).await {
                            Ok(attempts) => out.extend(attempts),
                            Err(e) => failed.push((half, e)),
                        }
                    }
                    if out.is_empty()
                        && let Some((_, e)) = failed.first()
                    {
                        return Err(e.clone());
                    }
                    for (half, e) in failed {
                        out.extend(
                            half.iter()
                                .map(|(i, _)| (*i, Attempt::Done(Err(e.clone())))),
                        );
                    }
                    Ok(out)
                }
                _ => Ok(vec![(
                    pending[0].0,
                    Attempt::Done(Err(self.rejected(&call, &ans))),
                )]),
            }
        })
    }

    fn map_create_answer(
        &self,
        object: Object,
        call: &Call,
        pending: &[(usize, CreateInput)],
        traces: &[String],
        b: BatchAnswer,
    ) -> Vec<(usize, Attempt)> {
        let mut by_trace: HashMap<String, Obj> = HashMap::new();
        let mut untraced: Vec<Obj> = Vec::new();
        for o in b.results {
            match o.object_write_trace_id.clone() {
                Some(t) => {
                    by_trace.insert(t, o);
                }
                None => untraced.push(o),
            }
        }
        // The answer shows each new record with the properties written and a few defaults.
        let created = |o: Obj| {
            let mut w = Written::new(o.id.clone(), WriteOutcome::Created);
            w.stored = Some(Stored {
                record: o.into_stored(object),
                complete: false,
            });
            w
        };
        let mut errors: HashMap<String, ConnectError> = HashMap::new();
        let mut unmapped_errors = 0usize;
        for e in &b.errors {
            let ts = e.context_values("objectWriteTraceId");
            if ts.is_empty() {
                unmapped_errors += 1;
            }
            for t in ts {
                errors.insert(t, self.error_of(call, e));
            }
        }
        // Without trace ids in the answer, results come in input order (only usable when
        // nothing failed).
        let zip_in_order =
            by_trace.is_empty() && b.errors.is_empty() && untraced.len() == pending.len();
        pending
            .iter()
            .zip(traces)
            .enumerate()
            .map(|(n, ((i, _), trace))| {
                let attempt = if let Some(o) = by_trace.remove(trace) {
                    Attempt::Done(Ok(created(o)))
                } else if let Some(e) = errors.remove(trace) {
                    Attempt::Done(Err(e))
                } else if zip_in_order && let Some(o) = untraced.get(n).cloned() {
                    Attempt::Done(Ok(created(o)))
                } else {
                    Attempt::Unknown(ConnectError::OutcomeUnknown {
                        system: System::HubSpot,
                        request: call.label(),
                        reason: if unmapped_errors > 0 {
                            "the answer has errors that name no input".into()
                        } else {
                            "the answer has no result for this input".into()
                        },
                    })
                };
                (*i, attempt)
            })
            .collect()
    }

    /// Creates a chunk of ≤ 100 inputs, settling unknown outcomes by lookup.
    async fn create_chunk(
        &self,
        object: Object,
        chunk: Vec<(usize, CreateInput)>,
        out: &mut [Option<WriteResult>],
    ) -> Result<(), ConnectError> {
        let mut pending = chunk;
        for _round in 0..CREATE_ROUNDS {
            if pending.is_empty() {
                return Ok(());
            }
            let attempts = self.create_once(object, &pending).await?;
            // The outcome of the lost creates became unknown by now: the index-lag window of
            // search-based lookups counts from here.
            let lost_at = tokio::time::Instant::now();
            let mut unknown: Vec<(usize, CreateInput, ConnectError)> = Vec::new();
            let mut inputs: HashMap<usize, CreateInput> = pending.drain(..).collect();
            for (i, a) in attempts {
                match a {
                    Attempt::Done(r) => out[i] = Some(r),
                    Attempt::Unknown(e) => {
                        if let Some(input) = inputs.remove(&i) {
                            unknown.push((i, input, e));
                        }
                    }
                }
            }
            if unknown.is_empty() {
                return Ok(());
            }
            let lookups: Vec<&Lookup> = unknown
                .iter()
                .filter_map(|(_, c, _)| c.lookup.as_ref())
                .collect();
            let found = match self.find_lost(object, &lookups, lost_at).await {
                Ok(found) => found,
                Err(f) => {
                    // Whether these were created is still unknown: they stay so (never "not
                    // written"), and the rest of the run stops on the lookup's error.
                    for (i, _, e) in unknown {
                        out[i] = Some(Err(e.still_unknown(&f)));
                    }
                    return Err(f);
                }
            };
            for (i, input, e) in unknown {
                let Some(l) = &input.lookup else {
                    out[i] = Some(Err(e));
                    continue;
                };
                match found.get(&(l.key.clone(), norm(&l.value))) {
                    Some(rs) if !rs.is_empty() => {
                        tracing::info!(key = %l.key, "hubspot create settled by lookup: the record exists");
                        let mut w = Written::new(rs[0].id.clone(), WriteOutcome::Found);
                        w.stored = Some(Stored {
                            record: rs[0].clone(),
                            complete: false,
                        });
                        out[i] = Some(Ok(w));
                    }
                    _ => {
                        out[i] = Some(Err(e));
                        pending.push((i, input));
                    }
                }
            }
        }
        Ok(())
    }

    /// Looks up the records of lost creates. A lookup answered by a consistent read (a
    /// contact's `email`: batch read by `idProperty`) is final at once. One answered by search
    /// is final only when it found the record, or once the create is older than the index-lag
    /// window: until then the absent ones are searched again with backoff (250 ms, doubling),
    /// and the last search happens after the window ended.
    async fn find_lost(
        &self,
        object: Object,
        lookups: &[&Lookup],
        lost_at: tokio::time::Instant,
    ) -> Result<HashMap<(String, String), Vec<Record>>, ConnectError> {
        if lookups.is_empty() {
            return Ok(HashMap::new());
        }
        let mut found = self.find_many(object, lookups, &[]).await?;
        let deadline = super::http::instant_after(lost_at, self.search_index_lag);
        let mut delay = LAG_RETRY_FIRST;
        loop {
            let absent: Vec<&Lookup> = lookups
                .iter()
                .copied()
                .filter(|l| !consistent_lookup(object, &l.key))
                .filter(|l| {
                    found
                        .get(&(l.key.clone(), norm(&l.value)))
                        .is_none_or(Vec::is_empty)
                })
                .collect();
            let now = tokio::time::Instant::now();
            if absent.is_empty() || now >= deadline {
                return Ok(found);
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = delay.saturating_mul(2);
            tracing::debug!(
                lookups = absent.len(),
                "hubspot: searching again for lost creates (index lag)"
            );
            found.extend(self.find_many(object, &absent, &[]).await?);
        }
    }

    fn update_once<'a>(
        &'a self,
        object: Object,
        pending: &'a [(usize, &'a UpdateInput)],
    ) -> BoxFuture<'a, Result<Vec<(usize, WriteResult)>, ConnectError>> {
        Box::pin(async move {
            let traces: Vec<String> = pending
                .iter()
                .map(|_| format!("tandem-{}", uuid::Uuid::new_v4()))
                .collect();
            let inputs: Vec<UpdateIn<'_>> = pending
                .iter()
                .zip(&traces)
                .map(|((_, u), trace)| UpdateIn {
                    id: &u.id,
                    properties: u
                        .changes
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or("")))
                        .collect(),
                    object_write_trace_id: trace,
                })
                .collect();
            let body =
                serde_json::to_value(Inputs { inputs }).map_err(|e| ConnectError::Invalid {
                    system: System::HubSpot,
                    message: format!("cannot encode a batch update: {e}"),
                })?;
            let call = Call::new(
                Method::POST,
                format!("{}/batch/update", Self::path(object)),
                Body::Json(body),
            )
            .idempotent();
            let ans = self.t.send(&call).await?;
            match ans.status {
                200 | 207 => {
                    let b: BatchAnswer = self.parse(&call, &ans)?;
                    // Each updated record as the answer shows it: the properties written (as
                    // HubSpot stored them) and a few defaults.
                    let ok: HashMap<String, Obj> = b
                        .results
                        .iter()
                        .map(|o| (o.id.clone(), o.clone()))
                        .collect();
                    let mut errors: HashMap<String, ConnectError> = HashMap::new();
                    for e in &b.errors {
                        for key in e
                            .context_values("objectWriteTraceId")
                            .into_iter()
                            .chain(e.context_values("ids"))
                            .chain(e.context_values("id"))
                            .chain(e.id.clone())
                        {
                            errors.insert(key, self.error_of(&call, e));
                        }
                    }
                    Ok(pending
                        .iter()
                        .zip(&traces)
                        .map(|((i, u), trace)| {
                            let r = if let Some(e) = errors.get(trace).or_else(|| errors.get(&u.id))
                            {
                                Err(e.clone())
                            } else if let Some(o) = ok.get(u.id.as_str()).cloned() {
                                let mut w = Written::new(u.id.clone(), WriteOutcome::Updated);
                                w.stored = Some(Stored {
                                    record: o.into_stored(object),
                                    complete: false,
                                });
                                Ok(w)
                            } else {
                                Err(ConnectError::Protocol {
                                    system: System::HubSpot,
                                    request: call.label(),
                                    message: format!("the answer has no result for `{}`", u.id),
                                })
                            };
                            (*i, r)
                        })
                        .collect())
                }
                _ if pending.len() > 1 => {
                    let (l, r) = pending.split_at(pending.len() / 2);
                    let mut out = self.update_once(object, l).await?;
                    out.extend(self.update_once(object, r).await?);
                    Ok(out)
                }
                404 => Ok(vec![(
                    pending[0].0,
                    Err(ConnectError::NotFound {
                        system: System::HubSpot,
                        object,
                        id: pending[0].1.id.clone(),
                    }),
                )]),
                _ => Ok(vec![(pending[0].0, Err(self.rejected(&call, &ans)))]),
            }
        })
    }

    /// Makes `company` the primary company of each contact (v4 batch create, typeId 1).
    fn associate_once<'a>(
        &'a self,
        pending: &'a [(usize, &'a str, &'a str)],
    ) -> BoxFuture<'a, Result<Vec<(usize, AssocResult)>, ConnectError>> {
        Box::pin(async move {
            let inputs: Vec<AssocIn<'_>> = pending
                .iter()
                .map(|(_, from, to)| AssocIn {
                    from: AssocTo { id: from },
                    to: AssocTo { id: to },
                    types: vec![PRIMARY_CONTACT_TO_COMPANY],
                })
                .collect();
            let body =
                serde_json::to_value(Inputs { inputs }).map_err(|e| ConnectError::Invalid {
                    system: System::HubSpot,
                    message: format!("cannot encode an association batch: {e}"),
                })?;
            let call = Call::new(
                Method::POST,
                "/crm/v4/associations/contacts/companies/batch/create",
                Body::Json(body),
            )
            .idempotent();
            let ans = self.t.send(&call).await?;
            let errors = match ans.status {
                200 | 201 | 207 => self.parse::<AssocBatchAnswer>(&call, &ans)?.errors,
                _ => {
                    if pending.len() > 1 {
                        let (l, r) = pending.split_at(pending.len() / 2);
                        let mut out = self.associate_once(l).await?;
                        out.extend(self.associate_once(r).await?);
                        return Ok(out);
                    }
                    return Ok(vec![(pending[0].0, Err(self.rejected(&call, &ans)))]);
                }
            };
            if errors.is_empty() {
                return Ok(pending.iter().map(|(i, _, _)| (*i, Ok(()))).collect());
            }
            if pending.len() > 1 {
                // v4 errors do not reliably name their input: isolate by halves.
                let (l, r) = pending.split_at(pending.len() / 2);
                let mut out = self.associate_once(l).await?;
                out.extend(self.associate_once(r).await?);
                return Ok(out);
            }
            Ok(vec![(pending[0].0, Err(self.error_of(&call, &errors[0])))])
        })
    }
}

/// What a search page's `paging.next.after` means for the loop reading the pages.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// No next page (no cursor, or an empty page: nothing more to read).
    End,
    /// The next page starts at this offset (strictly after the current one).
    Page(u64),
    /// A cursor that does not move forward (or is not a number): following it could loop
    /// forever.
    Stuck(String),
}

/// Reads `after` (HubSpot sends a number-like string, the offset of the next page) against the
/// offset of the page just read. An offset must grow, so every loop over search pages ends: at
/// most `SEARCH_CAP` pages per window.
fn next_offset(after: Option<&str>, current: u64, page_was_empty: bool) -> Next {
    let Some(a) = after else {
        return Next::End;
    };
    if page_was_empty {
        return Next::End;
    }
    match a.trim().parse::<u64>() {
        Ok(n) if n > current => Next::Page(n),
        _ => Next::Stuck(a.to_string()),
    }
}

/// Whether a lookup by `key` reads HubSpot consistently (a contact's email is a batch read by
/// `idProperty=email`); every other lookup goes through the eventually consistent search.
fn consistent_lookup(object: Object, key: &str) -> bool {
    object == Object::Contact && key == "email"
}

/// A lookup value as compared: trimmed, lower-cased.
fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Applies `f` to chunks of ≤ 100; once a chunk fails with an unreachable-kind error the rest
/// is not sent. `Err` only when nothing at all was written.
fn settle(
    out: Vec<Option<WriteResult>>,
    fatal: Option<ConnectError>,
    wrote_something: bool,
) -> Result<Vec<WriteResult>, ConnectError> {
    match fatal {
        Some(e) if !wrote_something => Err(e),
        fatal => Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(fatal.clone().unwrap_or_else(|| ConnectError::Protocol {
                        system: System::HubSpot,
                        request: "batch".into(),
                        message: "no result was recorded for this input".into(),
                    }))
                })
            })
            .collect()),
    }
}

/// The lifecycle stage property.
const LIFECYCLE: &str = "lifecyclestage";

/// True when `u` sets `lifecyclestage` to a stage before the record's current one (known from
/// `u.current`), or to another stage when either is a custom stage whose order is unknown.
fn moves_lifecycle_back(u: &UpdateInput) -> bool {
    let Some(Some(to)) = u.changes.get(LIFECYCLE) else {
        return false;
    };
    let Some(from) = u.current.as_ref().and_then(|r| r.get(LIFECYCLE)) else {
        return false;
    };
    if from == *to {
        return false;
    }
    let rank = |s: &str| LIFECYCLE_STAGES.iter().position(|x| *x == s);
    match (rank(&from), rank(to)) {
        (Some(f), Some(t)) => t < f,
        _ => true,
    }
}

#[async_trait]
impl Connector for HubSpot {
    fn system(&self) -> System {
        System::HubSpot
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    async fn check(&self) -> Result<(), ConnectError> {
        let call = Call::get(Self::path(Object::Company))
            .query("limit", "1")
            .query("properties", "hs_object_id");
        let ans = self.t.send(&call).await?;
        if ans.status == 200 {
            Ok(())
        } else {
            Err(self.rejected(&call, &ans))
        }
    }

    async fn scan_page(
        &self,
        object: Object,
        scan: Scan,
        properties: &[String],
        cursor: Option<&Cursor>,
    ) -> Result<Page, ConnectError> {
        let props = Self::read_properties(object, properties);
        match scan {
            Scan::All => {
                let mut call = Call::get(Self::path(object))
                    .query("limit", BATCH.to_string())
                    .query("properties", props.join(","))
                    .query("archived", "false");
                if object == Object::Contact {
                    call = call.query("associations", "companies");
                }
                if let Some(c) = cursor {
                    call = call.query("after", c.0.clone());
                }
                let ans = self.t.send(&call).await?;
                if ans.status != 200 {
                    return Err(self.rejected(&call, &ans));
                }
                let col: Collection = self.parse(&call, &ans)?;
                let next = col.next_after().map(Cursor);
                Ok(Page {
                    records: col
                        .results
                        .into_iter()
                        .map(|o| o.into_record(object))
                        .collect(),
                    next,
                })
            }
            Scan::ChangedSince(start) => {
                let (since, after) = match cursor {
                    None => (start, None),
                    Some(c) => {
                        let sc: SearchCursor =
                            serde_json::from_str(&c.0).map_err(|e| ConnectError::Invalid {
                                system: System::HubSpot,
                                message: format!("`{}` is not a changed-since cursor: {e}", c.0),
                            })?;
                        (sc.since, sc.after)
                    }
                };
                let mp = modified_property(object);
                let mut body = json!({
                    "filterGroups": [{"filters": [
                        {"propertyName": mp, "operator": "GTE", "value": since.to_string()}
                    ]}],
                    "sorts": [{"propertyName": mp, "direction": "ASCENDING"}],
                    "properties": props,
                    "limit": SEARCH_PAGE,
                });
                if let Some(a) = &after {
                    body["after"] = json!(a);
                }
                let col = self.search(object, body).await?;
                let next_after = col.next_after();
                let records: Vec<Record> = col
                    .results
                    .into_iter()
                    .map(|o| o.into_record(object))
                    .collect();
                // The offset this page was read at (our own cursor; 0 for the first page).
                let offset = after
                    .as_deref()
                    .and_then(|a| a.parse::<u64>().ok())
                    .unwrap_or(0);
                let next = match next_offset(next_after.as_deref(), offset, records.is_empty()) {
                    Next::End => None,
                    Next::Stuck(a) => return Err(self.stuck(object, &a)),
                    Next::Page(n) if n.saturating_add(SEARCH_PAGE) > SEARCH_CAP => {
                        // Move the window: restart from the newest time seen (records at
                        // exactly that time are read again).
                        let newest = records.iter().filter_map(|r| r.updated_at).max();
                        let next_since = match newest {
                            Some(t) if t > since => t,
                            _ => since.saturating_add(1),
                        };
                        Some(SearchCursor {
                            since: next_since,
                            after: None,
                        })
                    }
                    Next::Page(_) => Some(SearchCursor {
                        since,
                        after: next_after,
                    }),
                };
                let next = next
                    .map(|c| serde_json::to_string(&c).map(Cursor))
                    .transpose()
                    .map_err(|e| ConnectError::Invalid {
                        system: System::HubSpot,
                        message: format!("cannot encode a cursor: {e}"),
                    })?;
                Ok(Page { records, next })
            }
        }
    }

    async fn get(
        &self,
        object: Object,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<Record>, ConnectError> {
        let props = Self::read_properties(object, properties);
        let mut seen = BTreeSet::new();
        let ids: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect();
        self.batch_read(object, &ids, &props, None).await
    }

    fn lookup_lag(&self, object: Object, lookup: &Lookup) -> Duration {
        // Contacts by email are a (consistent) batch read; everything else is a search.
        if object == Object::Contact && lookup.key == "email" {
            Duration::ZERO
        } else {
            self.search_index_lag
        }
    }

    async fn find(
        &self,
        object: Object,
        lookup: &Lookup,
        properties: &[String],
    ) -> Result<Vec<Record>, ConnectError> {
        if lookup.value.trim().is_empty() {
            return Ok(Vec::new());
        }
        if object == Object::Contact && lookup.key == super::COMPANY_ID_KEY {
            let id = lookup.value.trim();
            let body = json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "associatedcompanyid", "operator": "EQ", "value": id}
                ]}],
                "properties": Self::read_properties(object, properties),
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            });
            let found = self.search_pages(object, body, SEARCH_CAP).await?;
            return Ok(found
                .into_iter()
                .filter(|r| r.company_id.as_deref() == Some(id))
                .collect());
        }
        let mut props = Self::read_properties(object, properties);
        if !props.contains(&lookup.key) {
            props.push(lookup.key.clone());
        }
        let want = norm(&lookup.value);
        let found = if object == Object::Contact && lookup.key == "email" {
            self.batch_read(object, &[want.as_str()], &props, Some("email"))
                .await?
        } else {
            let body = json!({
                "filterGroups": [{"filters": [
                    {"propertyName": lookup.key, "operator": "EQ", "value": lookup.value.trim()}
                ]}],
                "properties": props,
                "limit": BATCH,
            });
            let col = self.search(object, body).await?;
            col.results
                .into_iter()
                .map(|o| o.into_record(object))
                .collect()
        };
        Ok(found
            .into_iter()
            .filter(|r| r.get(&lookup.key).is_some_and(|v| norm(&v) == want))
            .collect())
    }

    async fn search_text(
        &self,
        object: Object,
        text: &str,
        properties: &[String],
    ) -> Result<Vec<Record>, ConnectError> {
        let text = text.trim();
        // HubSpot refuses a query over 3,000 characters; no dedup key is that long.
        if text.is_empty() || text.chars().count() > MAX_QUERY {
            return Ok(Vec::new());
        }
        let body = json!({
            "query": text,
            "properties": Self::read_properties(object, properties),
        });
        self.search_pages(object, body, super::TEXT_SEARCH_LIMIT as u64)
            .await
    }

    fn budget_windows(&self) -> Vec<super::BudgetWindow> {
        self.t.budget_windows()
    }

    fn clock_offset(&self) -> Option<chrono::TimeDelta> {
        self.t.clock_offset()
    }

    async fn granted_scopes(&self) -> Result<Option<super::GrantedScopes>, ConnectError> {
        #[derive(Deserialize)]
        struct Info {
            #[serde(default)]
            scopes: Vec<String>,
        }
        // OAuth: the access token's metadata; a private app: the token-info endpoint, which
        // takes the token in its body.
        let token = self.t.token().await?;
        let call = match &self.oauth {
            Some(_) => Call::get(format!("/oauth/v1/access-tokens/{}", token.expose()))
                .shown_as("/oauth/v1/access-tokens/{token}"),
            None => Call::new(
                Method::POST,
                "/oauth/v2/private-apps/get/access-token-info",
                Body::Json(json!({"tokenKey": token.expose()})),
            )
            .idempotent(),
        };
        let ans = self.t.send(&call).await?;
        if ans.status == 404 {
            return Ok(None);
        }
        if ans.status != 200 {
            return Err(self.rejected(&call, &ans));
        }
        let info: Info = self.parse(&call, &ans)?;
        Ok(Some(super::GrantedScopes {
            scopes: info.scopes,
            source: call.label(),
        }))
    }

    fn budget(&self) -> RateLimit {
        self.t.general_rate()
    }

    fn budget_waits(&self) -> Option<tokio::sync::broadcast::Receiver<super::BudgetWait>> {
        Some(self.t.budget_waits())
    }

    async fn fields(&self, object: Object) -> Result<Vec<super::FieldInfo>, ConnectError> {
        #[derive(Deserialize)]
        struct Options {
            value: String,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Modification {
            #[serde(default)]
            read_only_value: bool,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Def {
            name: String,
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(default)]
            options: Vec<Options>,
            #[serde(default)]
            modification_metadata: Option<Modification>,
        }
        #[derive(Deserialize)]
        struct Defs {
            results: Vec<Def>,
        }
        let call = Call::get(format!("/crm/v3/properties/{}", object.plural()));
        let ans = self.t.send(&call).await?;
        if ans.status != 200 {
            return Err(self.rejected(&call, &ans));
        }
        let defs: Defs = self.parse(&call, &ans)?;
        Ok(defs
            .results
            .into_iter()
            .map(|d| super::FieldInfo {
                name: d.name,
                kind: d.kind,
                options: d.options.into_iter().map(|o| o.value).collect(),
                read_only: d.modification_metadata.is_some_and(|m| m.read_only_value),
            })
            .collect())
    }

    async fn create(
        &self,
        object: Object,
        inputs: Vec<CreateInput>,
    ) -> Result<Vec<WriteResult>, ConnectError> {
        let mut out: Vec<Option<WriteResult>> = vec![None; inputs.len()];
        let mut fatal = None;
        let mut wrote = false;
        let indexed: Vec<(usize, CreateInput)> = inputs.into_iter().enumerate().collect();
        let mut chunks = Vec::new();
        let mut it = indexed.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(BATCH).collect::<Vec<_>>());
        }
        for chunk in chunks {
            if fatal.is_some() {
                break;
            }
            match self.create_chunk(object, chunk, &mut out).await {
                Ok(()) => wrote = true,
                Err(e) => {
                    // Any input with a result of its own (created, refused, or of unknown
                    // outcome) is reported as such: a failure of the whole call would be read as
                    // "nothing was written".
                    wrote |= out.iter().any(Option::is_some);
                    fatal = Some(e);
                }
            }
        }
        settle(out, fatal, wrote)
    }

    async fn update(
        &self,
        object: Object,
        inputs: Vec<UpdateInput>,
    ) -> Result<Vec<WriteResult>, ConnectError> {
        let mut out: Vec<Option<WriteResult>> = vec![None; inputs.len()];
        let mut fatal = None;
        let mut wrote = false;
        // `lifecyclestage` only moves forward through the API; moving it back takes clearing it
        // first (the notes, [DOC-CT]). Those clears go in batches of their own, first.
        let clears: Vec<UpdateInput> = inputs
            .iter()
            .filter(|u| moves_lifecycle_back(u))
            .map(|u| UpdateInput {
                id: u.id.clone(),
                changes: BTreeMap::from([(LIFECYCLE.to_string(), None)]),
                company_id: None,
                current: None,
            })
            .collect();
        let clear_refs: Vec<(usize, &UpdateInput)> = inputs
            .iter()
            .enumerate()
            .filter(|(_, u)| moves_lifecycle_back(u))
            .map(|(i, _)| i)
            .zip(clears.iter())
            .collect();
        for chunk in clear_refs.chunks(BATCH) {
            match self.update_once(object, chunk).await {
                Ok(rs) => {
                    wrote = true;
                    for (i, r) in rs {
                        if let Err(e) = r {
                            out[i] = Some(Err(e));
                        }
                    }
                }
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            }
        }
        let with_changes: Vec<(usize, &UpdateInput)> = inputs
            .iter()
            .enumerate()
            .filter(|(i, u)| !u.changes.is_empty() && out[*i].is_none())
            .collect();
        for chunk in with_changes.chunks(BATCH) {
            if fatal.is_some() {
                break;
            }
            match self.update_once(object, chunk).await {
                Ok(rs) => {
                    wrote = true;
                    for (i, r) in rs {
                        out[i] = Some(r);
                    }
                }
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            }
        }
        for (i, u) in inputs.iter().enumerate() {
            if u.changes.is_empty() && out[i].is_none() {
                out[i] = Some(Ok(Written::new(u.id.clone(), WriteOutcome::Updated)));
            }
        }
        if object == Object::Contact && fatal.is_none() {
            let moves: Vec<(usize, &str, &str)> = inputs
                .iter()
                .enumerate()
                .filter(|(i, _)| matches!(out[*i], Some(Ok(_))))
                .filter_map(|(i, u)| u.company_id.as_deref().map(|c| (i, u.id.as_str(), c)))
                .collect();
            for chunk in moves.chunks(BATCH) {
                match self.associate_once(chunk).await {
                    Ok(rs) => {
                        wrote = true;
                        for (i, r) in rs {
                            if let Err(e) = r {
                                out[i] = Some(Err(e));
                            }
                        }
                    }
                    Err(e) => {
                        for (i, _, _) in chunk {
                            out[*i] = Some(Err(e.clone()));
                        }
                        fatal = Some(e);
                        break;
                    }
                }
            }
        }
        settle(out, fatal, wrote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::Secret;

    #[test]
    fn lifecycle_moves_back_only_against_a_known_later_stage() {
        let input = |from: Option<&str>, to: Option<&str>| {
            let mut current = Record::new(System::HubSpot, Object::Company, "1");
            if let Some(f) = from {
                current.doc.insert(LIFECYCLE.into(), f.into());
            }
            UpdateInput {
                id: "1".into(),
                changes: BTreeMap::from([(LIFECYCLE.to_string(), to.map(str::to_string))]),
                company_id: None,
                current: Some(current),
            }
        };
        assert!(moves_lifecycle_back(&input(Some("customer"), Some("lead"))));
        assert!(!moves_lifecycle_back(&input(
            Some("lead"),
            Some("customer")
        )));
        assert!(!moves_lifecycle_back(&input(Some("lead"), Some("lead"))));
        assert!(!moves_lifecycle_back(&input(None, Some("lead"))));
        assert!(!moves_lifecycle_back(&input(Some("customer"), None)));
        // Custom stages (numeric ids): order unknown, clear first.
        assert!(moves_lifecycle_back(&input(Some("1234567"), Some("lead"))));
        let mut no_current = input(Some("customer"), Some("lead"));
        no_current.current = None;
        assert!(!moves_lifecycle_back(&no_current));
    }

    fn connector() -> HubSpot {
        HubSpot::new(HubSpotSettings::new(
            "http://127.0.0.1:9",
            HubSpotAuth::Token(Secret::new("t")),
        ))
        .unwrap()
    }

    fn pending(n: usize) -> (Vec<(usize, CreateInput)>, Vec<String>) {
        (
            (0..n).map(|i| (i + 10, CreateInput::default())).collect(),
            (0..n).map(|i| format!("t-{i}")).collect(),
        )
    }

    fn answer(v: serde_json::Value) -> BatchAnswer {
        serde_json::from_value(v).unwrap()
    }

    fn call() -> Call {
        Call::new(
            Method::POST,
            "/crm/v3/objects/contacts/batch/create",
            Body::None,
        )
    }

    fn ids(out: &[(usize, Attempt)]) -> Vec<String> {
        out.iter()
            .map(|(i, a)| match a {
                Attempt::Done(Ok(w)) => format!("{i}:{}", w.id),
                Attempt::Done(Err(e)) => format!("{i}:err {e}"),
                Attempt::Unknown(_) => format!("{i}:unknown"),
            })
            .collect()
    }

    #[test]
    fn results_map_back_by_trace_id_in_any_order() {
        let (p, t) = pending(3);
        let b = answer(json!({
            "results": [{"id": "c", "objectWriteTraceId": "t-2"}, {"id": "a", "objectWriteTraceId": "t-0"}],
            "errors": [{"category": "CONFLICT", "message": "taken", "context": {"objectWriteTraceId": ["t-1"]}}]
        }));
        let out = connector().map_create_answer(Object::Contact, &call(), &p, &t, b);
        let s = ids(&out);
        assert_eq!(s[0], "10:a");
        assert!(
            s[1].starts_with("11:err") && s[1].contains("409 CONFLICT"),
            "{}",
            s[1]
        );
        assert_eq!(s[2], "12:c");
    }

    #[test]
    fn untraced_results_are_zipped_only_when_nothing_failed() {
        let (p, t) = pending(2);
        let b = answer(json!({"results": [{"id": "x"}, {"id": "y"}]}));
        let out = connector().map_create_answer(Object::Contact, &call(), &p, &t, b);
        assert_eq!(ids(&out), vec!["10:x", "11:y"]);
        // An error that names no input: nothing can be attributed; the outcomes are unknown
        // (settled by lookup), never guessed.
        let b = answer(json!({
            "results": [{"id": "x"}],
            "errors": [{"category": "VALIDATION_ERROR", "message": "bad", "context": {}}]
        }));
        let out = connector().map_create_answer(Object::Contact, &call(), &p, &t, b);
        assert_eq!(ids(&out), vec!["10:unknown", "11:unknown"]);
    }

    #[test]
    fn writes_fail_as_a_whole_only_when_nothing_was_written() {
        let down = ConnectError::Unreachable {
            system: System::HubSpot,
            url: "u".into(),
            reason: "r".into(),
        };
        assert!(settle(vec![None, None], Some(down.clone()), false).is_err());
        let out = settle(
            vec![Some(Ok(Written::new("1", WriteOutcome::Created))), None],
            Some(down.clone()),
            true,
        )
        .unwrap();
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err(), &down);
    }

    #[test]
    fn search_cursors_must_advance_and_never_overflow() {
        assert_eq!(next_offset(None, 0, false), Next::End);
        assert_eq!(next_offset(Some("200"), 0, false), Next::Page(200));
        assert_eq!(next_offset(Some(" 400 "), 200, false), Next::Page(400));
        // An empty page ends the reading even if a cursor came with it.
        assert_eq!(next_offset(Some("400"), 200, true), Next::End);
        // Cursors that stand still, go back, or are not numbers would loop forever.
        for (after, current) in [("200", 200), ("0", 200), ("-1", 0), ("abc", 0), ("", 0)] {
            assert_eq!(
                next_offset(Some(after), current, false),
                Next::Stuck(after.to_string()),
                "{after} at {current}"
            );
        }
        // A huge cursor is a number, and the arithmetic on it saturates or is checked.
        let huge = u64::MAX.to_string();
        assert_eq!(next_offset(Some(&huge), 0, false), Next::Page(u64::MAX));
        assert!(u64::MAX.checked_add(SEARCH_PAGE).is_none());
        assert!(u64::MAX.saturating_add(SEARCH_PAGE) > SEARCH_CAP);
        assert_eq!(
            next_offset(Some("18446744073709551616"), 0, false),
            Next::Stuck("18446744073709551616".into())
        );
    }

    #[test]
    fn read_properties_add_what_the_model_needs() {
        let p = HubSpot::read_properties(Object::Contact, &["email".into(), " ".into()]);
        assert_eq!(
            p,
            vec![
                "associatedcompanyid",
                "email",
                "hs_object_id",
                "lastmodifieddate"
            ]
        );
        let p = HubSpot::read_properties(Object::Company, &[]);
        assert_eq!(p, vec!["hs_lastmodifieddate", "hs_object_id"]);
    }
}
