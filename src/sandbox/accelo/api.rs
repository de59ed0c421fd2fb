//! Accelo `/api/v0` handlers and the mutations behind them (shared with the admin API's
//! "edit as a person would"): companies, contacts (+ the affiliation `POST /contacts` creates),
//! affiliations, addresses, statuses and progressions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::query::{FieldReq, ListQuery, page_bounds, parse_fields, render};
use super::store::{AcStore, Address, Affiliation, Company, Contact, Obj};
use super::{Ac, invalid, ok, params, path_id};
use crate::common::{json_response, query_pairs, value_to_string};

type Params = BTreeMap<String, String>;

fn field_sel(p: &Params) -> Result<(Vec<FieldReq>, bool), Response> {
    let fields = match p.get("_fields") {
        Some(f) => parse_fields(f).map_err(invalid)?,
        None => vec![],
    };
    let hide = p
        .get("_hide_defaults")
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("yes") || v == "true");
    Ok((fields, hide))
}

fn q_params(q: &Option<String>) -> Params {
    query_pairs(q.as_deref()).into_iter().collect()
}

/// Lists `ids` of `obj` after filters, search, order and paging.
fn list_of(ac: &Ac, obj: Obj, p: &Params, ids: Option<Vec<u64>>, forced: Option<&str>) -> Response {
    let (fields, hide) = match field_sel(p) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let filters = match (p.get("_filters"), forced) {
        (Some(f), Some(o)) => Some(format!("{f},{o}")),
        (Some(f), None) => Some(f.clone()),
        (None, Some(o)) => Some(o.to_string()),
        (None, None) => None,
    };
    let q = match ListQuery::compile(
        obj,
        filters.as_deref(),
        p.get("_search").map(String::as_str),
    ) {
        Ok(q) => q,
        Err(e) => return invalid(e),
    };
    let (start, limit) = match page_bounds(
        p.get("_limit").map(String::as_str),
        p.get("_page").map(String::as_str),
        p.get("_offset").map(String::as_str),
    ) {
        Ok(b) => b,
        Err(e) => return invalid(e),
    };
    let store = ac.read();
    let ids: Box<dyn Iterator<Item = u64> + '_> = match ids.or_else(|| q.candidates(&store, obj)) {
        Some(v) => Box::new(v.into_iter()),
        None => store.id_iter(obj),
    };
    let page: Vec<Value> = q
        .page(&store, obj, ids, start, limit)
        .iter()
        .map(|id| render(&store, obj, *id, &fields, hide))
        .collect();
    ok(Value::Array(page))
}

fn count_of(ac: &Ac, obj: Obj, p: &Params, ids: Option<Vec<u64>>) -> Response {
    let q = match ListQuery::compile(
        obj,
        p.get("_filters").map(String::as_str),
        p.get("_search").map(String::as_str),
    ) {
        Ok(q) => q,
        Err(e) => return invalid(e),
    };
    let store = ac.read();
    let ids: Box<dyn Iterator<Item = u64> + '_> = match ids.or_else(|| q.candidates(&store, obj)) {
        Some(v) => Box::new(v.into_iter()),
        None => store.id_iter(obj),
    };
    ok(json!({"count": q.run(&store, obj, ids).len().to_string()}))
}

fn one_of(ac: &Ac, obj: Obj, raw: &str, p: &Params) -> Response {
    let id = match path_id(obj, raw) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let (fields, hide) = match field_sel(p) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let store = ac.read();
    if !store.exists(obj, id) {
        return not_found(obj, raw);
    }
    ok(render(&store, obj, id, &fields, hide))
}

fn not_found(obj: Obj, raw: &str) -> Response {
    let noun = match obj {
        Obj::Company => "company",
        Obj::Contact => "contact",
        Obj::Affiliation => "affiliation",
        Obj::Address => "address",
        Obj::CompanyStatus | Obj::ContactStatus => "status",
        Obj::State => "state",
        Obj::Country => "country",
    };
    invalid(format!("Unknown {noun} id `{raw}`"))
}

// ---------------------------------------------------------------------------------------------
// Mutations (API and admin)

/// Why a mutation was refused: `invalid_request`, or `duplicate` for a value that must be
/// unique (the message names the field).
#[derive(Debug, Clone, PartialEq)]
pub enum MutError {
    /// 400 `invalid_request`.
    Invalid(String),
    /// 400 `duplicate`.
    Duplicate(String),
}

impl From<String> for MutError {
    fn from(s: String) -> MutError {
        MutError::Invalid(s)
    }
}

impl From<&str> for MutError {
    fn from(s: &str) -> MutError {
        MutError::Invalid(s.to_string())
    }
}

impl MutError {
    fn message(&self) -> &str {
        match self {
            MutError::Invalid(m) | MutError::Duplicate(m) => m,
        }
    }

    fn response(&self) -> Response {
        match self {
            MutError::Invalid(m) => invalid(m.clone()),
            MutError::Duplicate(m) => super::fail(StatusCode::BAD_REQUEST, "duplicate", m.clone()),
        }
    }
}

/// The outcome of a mutation.
type Mut<T> = Result<T, MutError>;

fn opt(p: &Params, k: &str) -> Option<Option<String>> {
    p.get(k).map(|v| Some(v.clone()))
}

fn valid_email(s: &str) -> bool {
    crate::hubspot::store::valid_email(s)
}

fn yes_no(v: &str) -> Mut<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "y" => Ok(true),
        "0" | "no" | "false" | "n" | "" => Ok(false),
        other => Err(MutError::Invalid(format!("`{other}` is not yes or no"))),
    }
}

/// Resolves a status given by id (or, for the admin API, by title).
fn find_status(store: &AcStore, obj: Obj, v: &str, by_title: bool) -> Mut<u64> {
    let table = store.status_table(obj);
    if let Ok(n) = v.trim().parse::<u64>()
        && table.iter().any(|s| s.id == n)
    {
        return Ok(n);
    }
    if by_title
        && let Some(s) = table
            .iter()
            .find(|s| s.title.eq_ignore_ascii_case(v.trim()))
    {
        return Ok(s.id);
    }
    Err(MutError::Invalid(format!(
        "`{v}` is not a valid status (valid: {})",
        table
            .iter()
            .map(|s| format!("{} {}", s.id, s.title))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn standing_status(store: &AcStore, obj: Obj, standing: &str) -> Mut<u64> {
    store
        .status_table(obj)
        .iter()
        .find(|s| s.standing.eq_ignore_ascii_case(standing))
        .map(|s| s.id)
        .ok_or_else(|| MutError::Invalid(format!("`{standing}` is not a valid standing")))
}

fn set_status(store: &AcStore, obj: Obj, status: u64) -> (Option<u64>, String) {
    let standing = store
        .status_table(obj)
        .iter()
        .find(|s| s.id == status)
        .map(|s| s.standing.clone())
        .unwrap_or_default();
    (Some(status), standing)
}

fn set_str(target: &mut Option<String>, v: Option<Option<String>>, changed: &mut bool) {
    if let Some(v) = v
        && *target != v
    {
        *target = v;
        *changed = true;
    }
}

/// `POST /companies`.
pub fn create_company_in(store: &mut AcStore, p: &Params, now: i64, by_title: bool) -> Mut<u64> {
    let name = p
        .get("name")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if name.is_empty() {
        return Err("the field `name` is required".into());
    }
    let status = match (
        p.get("status_id")
            .or(if by_title { p.get("status") } else { None }),
        p.get("standing"),
    ) {
        (Some(s), _) => find_status(store, Obj::Company, s, by_title)?,
        (None, Some(st)) => standing_status(store, Obj::Company, st)?,
        (None, None) => store
            .company_statuses
            .iter()
            .filter(|s| s.start)
            .min_by_key(|s| s.ordering)
            .map(|s| s.id)
            .unwrap_or(1),
    };
    let (status, standing) = set_status(store, Obj::Company, status);
    let id = store.next_id("companies");
    let g = |k: &str| p.get(k).cloned();
    store.companies.insert(
        id,
        Company {
            id,
            name,
            custom_id: g("custom_id"),
            website: g("website"),
            phone: g("phone"),
            fax: g("fax"),
            comments: g("comments"),
            status,
            standing,
            postal_address: None,
            default_affiliation: None,
            date_created: now,
            date_modified: now,
            date_last_interacted: now,
        },
    );
    store.emit("create_company", id);
    Ok(id)
}

/// `PUT /companies/{id}`: name, website, phone, fax, comments (custom_id too); other fields,
/// including status, are ignored — status changes go through progressions.
pub fn update_company_in(store: &mut AcStore, id: u64, p: &Params, now: i64) -> Mut<bool> {
    if let Some(n) = p.get("name")
        && n.trim().is_empty()
    {
        return Err("the field `name` cannot be empty".into());
    }
    let Some(c) = store.companies.get_mut(&id) else {
        return Err(MutError::Invalid(format!("Unknown company id `{id}`")));
    };
    let mut changed = false;
    if let Some(n) = p.get("name")
        && c.name != *n
    {
        c.name = n.clone();
        changed = true;
    }
    set_str(&mut c.website, opt(p, "website"), &mut changed);
    set_str(&mut c.phone, opt(p, "phone"), &mut changed);
    set_str(&mut c.fax, opt(p, "fax"), &mut changed);
    set_str(&mut c.comments, opt(p, "comments"), &mut changed);
    set_str(&mut c.custom_id, opt(p, "custom_id"), &mut changed);
    if changed {
        c.date_modified = now;
        store.emit("update_company", id);
    }
    Ok(changed)
}

fn progress(store: &mut AcStore, obj: Obj, id: u64, status: u64, now: i64) -> Mut<bool> {
    let (st, standing) = set_status(store, obj, status);
    let changed = match obj {
        Obj::Company => {
            let c = store.companies.get_mut(&id).ok_or("unknown company")?;
            let changed = c.status != st;
            c.status = st;
            c.standing = standing;
            if changed {
                c.date_modified = now;
            }
            changed
        }
        _ => {
            let c = store.contacts.get_mut(&id).ok_or("unknown contact")?;
            let changed = c.status != st;
            c.status = st;
            c.standing = standing;
            if changed {
                c.date_modified = now;
            }
            changed
        }
    };
    if changed {
        store.emit(
            if obj == Obj::Company {
                "update_company"
            } else {
                "update_contact"
            },
            id,
        );
    }
    Ok(changed)
}

fn remove_affiliation(store: &mut AcStore, aff: u64) {
    let Some(a) = store.remove_affiliation(aff) else {
        return;
    };
    let contact_others: Option<u64> = store
        .affiliations_of_contact(a.contact)
        .next()
        .map(|x| x.id);
    if let Some(c) = store.contacts.get_mut(&a.contact)
        && c.default_affiliation == Some(aff)
    {
        c.default_affiliation = contact_others;
    }
    let company_others: Option<u64> = store
        .affiliations_of_company(a.company)
        .next()
        .map(|x| x.id);
    if let Some(c) = store.companies.get_mut(&a.company)
        && c.default_affiliation == Some(aff)
    {
        c.default_affiliation = company_others;
    }
}

fn delete_company_in(store: &mut AcStore, id: u64) -> Mut<()> {
    if store.companies.remove(&id).is_none() {
        return Err(MutError::Invalid(format!("Unknown company id `{id}`")));
    }
    let affs: Vec<u64> = store.affiliations_of_company(id).map(|a| a.id).collect();
    for a in affs {
        remove_affiliation(store, a);
    }
    store
        .addresses
        .retain(|_, a| !(a.against_type == "company" && a.against_id == id));
    Ok(())
}

fn affiliation_fields(
    store: &AcStore,
    a: &mut Affiliation,
    p: &Params,
    changed: &mut bool,
) -> Mut<()> {
    if let Some(e) = p.get("email")
        && !e.is_empty()
        && !valid_email(e)
    {
        return Err(MutError::Invalid(format!(
            "`{e}` is not a valid email address"
        )));
    }
    for k in ["postal_address_id", "physical_address_id"] {
        if let Some(v) = p.get(k).filter(|v| !v.is_empty()) {
            let n = v
                .parse::<u64>()
                .ok()
                .filter(|n| store.addresses.contains_key(n))
                .ok_or_else(|| format!("`{k}` `{v}` is not a valid address"))?;
            let target = if k == "postal_address_id" {
                &mut a.postal_address
            } else {
                &mut a.physical_address
            };
            if *target != Some(n) {
                *target = Some(n);
                *changed = true;
            }
        }
    }
    set_str(&mut a.email, opt(p, "email"), changed);
    set_str(&mut a.phone, opt(p, "phone"), changed);
    set_str(&mut a.mobile, opt(p, "mobile"), changed);
    set_str(&mut a.fax, opt(p, "fax"), changed);
    set_str(&mut a.position, opt(p, "position"), changed);
    for (k, target) in [
        ("communication", &mut a.communication),
        ("invoice_method", &mut a.invoice_method),
        ("standing", &mut a.standing),
    ] {
        if let Some(v) = p.get(k)
            && target != v
        {
            *target = v.clone();
            *changed = true;
        }
    }
    Ok(())
}

/// `POST /affiliations` (and the affiliation part of `POST /contacts`).
pub fn create_affiliation_in(
    store: &mut AcStore,
    company: u64,
    contact: u64,
    p: &Params,
    now: i64,
) -> Mut<u64> {
    if !store.companies.contains_key(&company) {
        return Err(MutError::Invalid(format!(
            "`company_id` `{company}` is not a valid company"
        )));
    }
    if !store.contacts.contains_key(&contact) {
        return Err(MutError::Invalid(format!(
            "`contact_id` `{contact}` is not a valid contact"
        )));
    }
    let mut a = Affiliation {
        company,
        contact,
        standing: "active".into(),
        communication: "yes".into(),
        invoice_method: "email".into(),
        portal_access: "no".into(),
        date_modified: now,
        date_last_interacted: now,
        ..Default::default()
    };
    let mut changed = false;
    affiliation_fields(store, &mut a, p, &mut changed)?;
    let id = store.next_id("affiliations");
    a.id = id;
    store.insert_affiliation(a);
    if let Some(c) = store.contacts.get_mut(&contact)
        && c.default_affiliation.is_none()
    {
        c.default_affiliation = Some(id);
    }
    if let Some(c) = store.companies.get_mut(&company)
        && c.default_affiliation.is_none()
    {
        c.default_affiliation = Some(id);
    }
    Ok(id)
}

/// `PUT /affiliations/{id}`.
pub fn update_affiliation_in(store: &mut AcStore, id: u64, p: &Params, now: i64) -> Mut<bool> {
    let Some(mut a) = store.affiliation(id).cloned() else {
        return Err(MutError::Invalid(format!("Unknown affiliation id `{id}`")));
    };
    let mut changed = false;
    affiliation_fields(store, &mut a, p, &mut changed)?;
    if changed {
        a.date_modified = now;
        store.insert_affiliation(a);
    }
    Ok(changed)
}

fn contact_fields(
    store: &AcStore,
    c: &mut Contact,
    p: &Params,
    changed: &mut bool,
    by_title: bool,
) -> Mut<()> {
    if let Some(u) = p.get("username").filter(|u| !u.is_empty())
        && store
            .contacts
            .values()
            .any(|x| x.id != c.id && x.username.as_deref() == Some(u.as_str()))
    {
        return Err(MutError::Duplicate(format!(
            "the username `{u}` is already taken: `username` must be unique"
        )));
    }
    for k in ["firstname", "surname"] {
        if let Some(v) = p.get(k) {
            if v.trim().is_empty() {
                return Err(MutError::Invalid(format!(
                    "the field `{k}` cannot be empty"
                )));
            }
            let target = if k == "firstname" {
                &mut c.firstname
            } else {
                &mut c.surname
            };
            if target != v {
                *target = v.clone();
                *changed = true;
            }
        }
    }
    set_str(&mut c.middlename, opt(p, "middlename"), changed);
    set_str(&mut c.username, opt(p, "username"), changed);
    set_str(&mut c.title, opt(p, "title"), changed);
    set_str(&mut c.comments, opt(p, "comments"), changed);
    set_str(&mut c.timezone, opt(p, "timezone"), changed);
    let status = match (p.get("status"), p.get("standing")) {
        (Some(s), _) => Some(find_status(store, Obj::Contact, s, by_title)?),
        (None, Some(st)) => Some(standing_status(store, Obj::Contact, st)?),
        (None, None) => None,
    };
    if let Some(s) = status {
        let (st, standing) = set_status(store, Obj::Contact, s);
        if c.status != st {
            c.status = st;
            c.standing = standing;
            *changed = true;
        }
    }
    Ok(())
}

/// `POST /contacts`: the contact and its affiliation to `company_id`.
pub fn create_contact_in(
    store: &mut AcStore,
    p: &Params,
    now: i64,
    by_title: bool,
) -> Mut<(u64, u64)> {
    for k in ["firstname", "surname", "company_id"] {
        if p.get(k).is_none_or(|v| v.trim().is_empty()) {
            return Err(MutError::Invalid(format!("the field `{k}` is required")));
        }
    }
    let company = p
        .get("company_id")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| store.companies.contains_key(n))
        .ok_or_else(|| {
            format!(
                "`company_id` `{}` is not a valid company",
                p.get("company_id").cloned().unwrap_or_default()
            )
        })?;
    let start = store
        .contact_statuses
        .iter()
        .filter(|s| s.start)
        .min_by_key(|s| s.ordering)
        .map(|s| s.id)
        .unwrap_or(1);
    let (status, standing) = set_status(store, Obj::Contact, start);
    let mut c = Contact {
        status,
        standing,
        date_created: now,
        date_modified: now,
        date_last_interacted: now,
        ..Default::default()
    };
    let mut changed = false;
    contact_fields(store, &mut c, p, &mut changed, by_title)?;
    // Validate the affiliation part before creating anything.
    let mut probe = Affiliation::default();
    affiliation_fields(store, &mut probe, p, &mut changed)?;
    let id = store.next_id("contacts");
    c.id = id;
    store.contacts.insert(id, c);
    let aff = match create_affiliation_in(store, company, id, p, now) {
        Ok(a) => a,
        Err(e) => {
            store.contacts.remove(&id);
            return Err(e);
        }
    };
    store.emit("create_contact", id);
    Ok((id, aff))
}

/// `PUT /contacts/{id}`.
pub fn update_contact_in(
    store: &mut AcStore,
    id: u64,
    p: &Params,
    now: i64,
    by_title: bool,
) -> Mut<bool> {
    let Some(mut c) = store.contacts.get(&id).cloned() else {
        return Err(MutError::Invalid(format!("Unknown contact id `{id}`")));
    };
    let mut changed = false;
    contact_fields(store, &mut c, p, &mut changed, by_title)?;
    if changed {
        c.date_modified = now;
        store.contacts.insert(id, c);
        store.emit("update_contact", id);
    }
    Ok(changed)
}

fn address_fields(store: &AcStore, a: &mut Address, p: &Params, changed: &mut bool) -> Mut<()> {
    let country = match p.get("country_id").or(p.get("country")) {
        Some(v) if v.is_empty() => Some(None),
        Some(v) => Some(Some(
            store
                .find_country(v)
                .ok_or_else(|| format!("`{v}` is not a known country"))?,
        )),
        None => None,
    };
    let country_ctx = country.flatten().or(a.country);
    let state = match p.get("state_id").or(p.get("state")) {
        Some(v) if v.is_empty() => Some(None),
        Some(v) => Some(Some(store.find_state(v, country_ctx).ok_or_else(|| {
            format!("`{v}` is not a known state of the address's country")
        })?)),
        None => None,
    };
    if let Some(c) = country
        && a.country != c
    {
        a.country = c;
        *changed = true;
    }
    if let Some(s) = state
        && a.state != s
    {
        a.state = s;
        *changed = true;
    }
    set_str(&mut a.title, opt(p, "title"), changed);
    set_str(&mut a.street1, opt(p, "street1"), changed);
    set_str(&mut a.street2, opt(p, "street2"), changed);
    set_str(&mut a.city, opt(p, "city"), changed);
    set_str(
        &mut a.zipcode,
        opt(p, "zipcode").or(opt(p, "postcode")),
        changed,
    );
    for (k, target) in [("postal", &mut a.postal), ("physical", &mut a.physical)] {
        if let Some(v) = p.get(k) {
            let b = yes_no(v)?;
            if *target != b {
                *target = b;
                *changed = true;
            }
        }
    }
    Ok(())
}

/// Links a company's first postal address and bumps the company when its address changes.
fn touch_owner(store: &mut AcStore, address: u64, now: i64) {
    let Some(a) = store.addresses.get(&address).cloned() else {
        return;
    };
    if a.against_type != "company" {
        return;
    }
    let Some(c) = store.companies.get_mut(&a.against_id) else {
        return;
    };
    if c.postal_address.is_none() && a.postal {
        c.postal_address = Some(address);
    }
    if c.postal_address == Some(address) {
        c.date_modified = now;
        store.emit("update_company", a.against_id);
    }
}

/// `POST /addresses` (or `POST /{companies|contacts}/{id}/addresses`).
pub fn create_address_in(
    store: &mut AcStore,
    against_type: &str,
    against_id: u64,
    p: &Params,
    now: i64,
) -> Mut<u64> {
    let exists = match against_type {
        "company" => store.companies.contains_key(&against_id),
        "contact" => store.contacts.contains_key(&against_id),
        other => {
            return Err(MutError::Invalid(format!(
                "`against_type` must be company or contact, not `{other}`"
            )));
        }
    };
    if !exists {
        return Err(MutError::Invalid(format!(
            "`against_id` `{against_id}` is not a valid {against_type}"
        )));
    }
    let mut a = Address {
        against_type: against_type.into(),
        against_id,
        postal: true,
        date_modified: now,
        ..Default::default()
    };
    let mut changed = false;
    address_fields(store, &mut a, p, &mut changed)?;
    let id = store.next_id("addresses");
    a.id = id;
    store.addresses.insert(id, a);
    touch_owner(store, id, now);
    Ok(id)
}

/// `PUT /addresses/{id}`.
pub fn update_address_in(store: &mut AcStore, id: u64, p: &Params, now: i64) -> Mut<bool> {
    let Some(mut a) = store.addresses.get(&id).cloned() else {
        return Err(MutError::Invalid(format!("Unknown address id `{id}`")));
    };
    let mut changed = false;
    address_fields(store, &mut a, p, &mut changed)?;
    if changed {
        a.date_modified = now;
        store.addresses.insert(id, a);
        touch_owner(store, id, now);
    }
    Ok(changed)
}

// ---------------------------------------------------------------------------------------------
// Handlers

macro_rules! handler_params {
    ($q:expr, $headers:expr, $body:expr) => {
        match params($q.as_deref(), &$headers, &$body) {
            Ok(p) => p,
            Err(r) => return r,
        }
    };
}

/// `GET /tokeninfo`.
pub async fn tokeninfo(State(ac): State<Arc<Ac>>) -> Response {
    ok(json!({
        "email": "api@sandbox.invalid",
        "firstname": "Sandbox",
        "surname": "Service",
        "deployment": ac.creds.deployment,
        "locale": {"timezone": "UTC"},
        "staff_id": "1",
    }))
}

/// `GET /companies`.
pub async fn list_companies(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(&ac, Obj::Company, &q_params(&q), None, None)
}
/// `GET /companies/count`.
pub async fn count_companies(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    count_of(&ac, Obj::Company, &q_params(&q), None)
}
/// `GET /companies/recent`.
pub async fn recent_companies(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(
        &ac,
        Obj::Company,
        &q_params(&q),
        None,
        Some("order_by_desc(date_created)"),
    )
}
/// `GET /companies/newest`.
pub async fn newest_companies(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(
        &ac,
        Obj::Company,
        &q_params(&q),
        None,
        Some("order_by_desc(date_modified)"),
    )
}
/// `GET /companies/statuses`.
pub async fn company_statuses(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(&ac, Obj::CompanyStatus, &q_params(&q), None, None)
}
/// `GET /companies/statuses/{id}`.
pub async fn company_status(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_of(&ac, Obj::CompanyStatus, &id, &q_params(&q))
}
/// `GET /contacts/statuses`.
pub async fn contact_statuses(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(&ac, Obj::ContactStatus, &q_params(&q), None, None)
}
/// `GET /contacts/statuses/{id}`.
pub async fn contact_status(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_of(&ac, Obj::ContactStatus, &id, &q_params(&q))
}
/// `GET /companies/{id}`.
pub async fn get_company(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_of(&ac, Obj::Company, &id, &q_params(&q))
}

fn status_of(ac: &Ac, obj: Obj, raw: &str, p: &Params) -> Response {
    let id = match path_id(obj, raw) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let status = {
        let store = ac.read();
        match obj {
            Obj::Company => store.companies.get(&id).map(|c| c.status),
            _ => store.contacts.get(&id).map(|c| c.status),
        }
    };
    let status_obj = if obj == Obj::Company {
        Obj::CompanyStatus
    } else {
        Obj::ContactStatus
    };
    match status {
        None => not_found(obj, raw),
        Some(None) => ok(Value::Null),
        Some(Some(s)) => one_of(ac, status_obj, &s.to_string(), p),
    }
}

/// `GET /companies/{id}/status`.
pub async fn company_status_of(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    status_of(&ac, Obj::Company, &id, &q_params(&q))
}
/// `GET /contacts/{id}/status`.
pub async fn contact_status_of(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    status_of(&ac, Obj::Contact, &id, &q_params(&q))
}

fn contacts_of_company(ac: &Ac, raw: &str) -> Result<Vec<u64>, Response> {
    let id = path_id(Obj::Company, raw)?;
    let store = ac.read();
    if !store.companies.contains_key(&id) {
        return Err(not_found(Obj::Company, raw));
    }
    let mut ids: Vec<u64> = store
        .affiliations_of_company(id)
        .map(|a| a.contact)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// `GET /companies/{id}/contacts`.
pub async fn company_contacts(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    match contacts_of_company(&ac, &id) {
        Ok(ids) => list_of(&ac, Obj::Contact, &q_params(&q), Some(ids), None),
        Err(r) => r,
    }
}
/// `GET /companies/{id}/contacts/count`.
pub async fn company_contacts_count(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    match contacts_of_company(&ac, &id) {
        Ok(ids) => count_of(&ac, Obj::Contact, &q_params(&q), Some(ids)),
        Err(r) => r,
    }
}
/// `GET /companies/{id}/contact`: the contact of the default affiliation.
pub async fn company_main_contact(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Ok(n) = path_id(Obj::Company, &id) else {
        return not_found(Obj::Company, &id);
    };
    let contact = {
        let store = ac.read();
        let Some(c) = store.companies.get(&n) else {
            return not_found(Obj::Company, &id);
        };
        c.default_affiliation
            .and_then(|a| store.affiliation(a))
            .map(|a| a.contact)
    };
    match contact {
        Some(c) => one_of(&ac, Obj::Contact, &c.to_string(), &q_params(&q)),
        None => ok(Value::Null),
    }
}

fn addresses_of(ac: &Ac, obj: Obj, raw: &str) -> Result<Vec<u64>, Response> {
    let id = path_id(obj, raw)?;
    let store = ac.read();
    if !store.exists(obj, id) {
        return Err(not_found(obj, raw));
    }
    let t = if obj == Obj::Company {
        "company"
    } else {
        "contact"
    };
    Ok(store
        .addresses
        .values()
        .filter(|a| a.against_type == t && a.against_id == id)
        .map(|a| a.id)
        .collect())
}

/// `GET /companies/{id}/addresses`.
pub async fn company_addresses(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    match addresses_of(&ac, Obj::Company, &id) {
        Ok(ids) => list_of(&ac, Obj::Address, &q_params(&q), Some(ids), None),
        Err(r) => r,
    }
}
/// `GET /contacts/{id}/addresses`.
pub async fn contact_addresses(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    match addresses_of(&ac, Obj::Contact, &id) {
        Ok(ids) => list_of(&ac, Obj::Address, &q_params(&q), Some(ids), None),
        Err(r) => r,
    }
}

fn respond_created(ac: &Ac, obj: Obj, id: u64, p: &Params) -> Response {
    one_of(ac, obj, &id.to_string(), p)
}

fn create_address_for(ac: &Ac, t: &str, obj: Obj, raw: &str, p: &Params) -> Response {
    let id = match path_id(obj, raw) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let now = ac.clock.now_s();
    let result = create_address_in(&mut ac.write(), t, id, p, now);
    match result {
        Ok(a) => respond_created(ac, Obj::Address, a, p),
        Err(e) => e.response(),
    }
}

/// `POST /companies/{id}/addresses`.
pub async fn create_company_address(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    create_address_for(&ac, "company", Obj::Company, &id, &p)
}
/// `POST /contacts/{id}/addresses`.
pub async fn create_contact_address(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    create_address_for(&ac, "contact", Obj::Contact, &id, &p)
}

fn progressions(ac: &Ac, obj: Obj, raw: &str) -> Response {
    let id = match path_id(obj, raw) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let store = ac.read();
    let current = match obj {
        Obj::Company => store.companies.get(&id).map(|c| c.status),
        _ => store.contacts.get(&id).map(|c| c.status),
    };
    let Some(current) = current else {
        return not_found(obj, raw);
    };
    let list: Vec<Value> = store
        .status_table(obj)
        .iter()
        .filter(|s| Some(s.id) != current)
        .map(|s| {
            json!({
                "id": s.id.to_string(),
                "title": format!("Move to {}", s.title),
                "standing": s.standing,
                "color": s.color,
                "status": {"id": s.id.to_string(), "title": s.title, "standing": s.standing, "color": s.color, "ordering": s.ordering.to_string()},
            })
        })
        .collect();
    ok(Value::Array(list))
}

/// `GET /companies/{id}/progressions`.
pub async fn company_progressions(State(ac): State<Arc<Ac>>, Path(id): Path<String>) -> Response {
    progressions(&ac, Obj::Company, &id)
}
/// `GET /contacts/{id}/progressions`.
pub async fn contact_progressions(State(ac): State<Arc<Ac>>, Path(id): Path<String>) -> Response {
    progressions(&ac, Obj::Contact, &id)
}

fn run_progression(ac: &Ac, obj: Obj, raw: &str, pid: &str, p: &Params) -> Response {
    let id = match path_id(obj, raw) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let now = ac.clock.now_s();
    {
        let mut store = ac.write();
        let current = match obj {
            Obj::Company => store.companies.get(&id).map(|c| c.status),
            _ => store.contacts.get(&id).map(|c| c.status),
        };
        let Some(current) = current else {
            return not_found(obj, raw);
        };
        let target = pid
            .parse::<u64>()
            .ok()
            .filter(|n| Some(*n) != current && store.status_table(obj).iter().any(|s| s.id == *n));
        let Some(target) = target else {
            return invalid(format!(
                "progression `{pid}` is not available for this {}",
                if obj == Obj::Company {
                    "company"
                } else {
                    "contact"
                }
            ));
        };
        if let Err(e) = progress(&mut store, obj, id, target, now) {
            return e.response();
        }
    }
    one_of(ac, obj, raw, p)
}

/// `POST|PUT /companies/{id}/progressions/{progression}/auto`.
pub async fn run_company_progression(
    State(ac): State<Arc<Ac>>,
    Path((id, pid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    run_progression(&ac, Obj::Company, &id, &pid, &p)
}
/// `POST|PUT /contacts/{id}/progressions/{progression}/auto`.
pub async fn run_contact_progression(
    State(ac): State<Arc<Ac>>,
    Path((id, pid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    run_progression(&ac, Obj::Contact, &id, &pid, &p)
}

/// `POST /companies`.
pub async fn create_company(
    State(ac): State<Arc<Ac>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    let now = ac.clock.now_s();
    let r = create_company_in(&mut ac.write(), &p, now, false);
    match r {
        Ok(id) => respond_created(&ac, Obj::Company, id, &p),
        Err(e) => e.response(),
    }
}

/// `PUT /companies/{id}`.
pub async fn update_company(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    let n = match path_id(Obj::Company, &id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let now = ac.clock.now_s();
    let r = update_company_in(&mut ac.write(), n, &p, now);
    match r {
        Ok(_) => one_of(&ac, Obj::Company, &id, &p),
        Err(e) => e.response(),
    }
}

/// `DELETE /companies/{id}`.
pub async fn delete_company(State(ac): State<Arc<Ac>>, Path(id): Path<String>) -> Response {
    let n = match path_id(Obj::Company, &id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let r = delete_company_in(&mut ac.write(), n);
    match r {
        Ok(()) => ok(Value::Null),
        Err(e) => e.response(),
    }
}

/// `GET /contacts`.
pub async fn list_contacts(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(&ac, Obj::Contact, &q_params(&q), None, None)
}
/// `GET /contacts/count`.
pub async fn count_contacts(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    count_of(&ac, Obj::Contact, &q_params(&q), None)
}
/// `GET /contacts/recent`.
pub async fn recent_contacts(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(
        &ac,
        Obj::Contact,
        &q_params(&q),
        None,
        Some("order_by_desc(date_created)"),
    )
}
/// `GET /contacts/newest`.
pub async fn newest_contacts(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(
        &ac,
        Obj::Contact,
        &q_params(&q),
        None,
        Some("order_by_desc(date_modified)"),
    )
}
/// `GET /contacts/{id}`.
pub async fn get_contact(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_of(&ac, Obj::Contact, &id, &q_params(&q))
}

/// `POST /contacts`.
pub async fn create_contact(
    State(ac): State<Arc<Ac>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    let now = ac.clock.now_s();
    let r = create_contact_in(&mut ac.write(), &p, now, false);
    match r {
        Ok((id, _)) => respond_created(&ac, Obj::Contact, id, &p),
        Err(e) => e.response(),
    }
}

/// `PUT /contacts/{id}`.
pub async fn update_contact(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    let n = match path_id(Obj::Contact, &id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let now = ac.clock.now_s();
    let r = update_contact_in(&mut ac.write(), n, &p, now, false);
    match r {
        Ok(_) => one_of(&ac, Obj::Contact, &id, &p),
        Err(e) => e.response(),
    }
}

/// `DELETE /contacts/{id}`: deactivates (standing inactive); answers only `meta`.
pub async fn deactivate_contact(State(ac): State<Arc<Ac>>, Path(id): Path<String>) -> Response {
    let n = match path_id(Obj::Contact, &id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let now = ac.clock.now_s();
    let mut store = ac.write();
    if !store.contacts.contains_key(&n) {
        return not_found(Obj::Contact, &id);
    }
    let inactive = store
        .contact_statuses
        .iter()
        .find(|s| s.standing == "inactive")
        .map(|s| s.id);
    if let Some(s) = inactive
        && let Err(e) = progress(&mut store, Obj::Contact, n, s, now)
    {
        return e.response();
    }
    ok(Value::Null)
}

/// `GET /affiliations`.
pub async fn list_affiliations(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(&ac, Obj::Affiliation, &q_params(&q), None, None)
}
/// `GET /affiliations/count`.
pub async fn count_affiliations(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    count_of(&ac, Obj::Affiliation, &q_params(&q), None)
}
/// `GET /affiliations/{id}`.
pub async fn get_affiliation(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_of(&ac, Obj::Affiliation, &id, &q_params(&q))
}

/// `POST /affiliations`.
pub async fn create_affiliation(
    State(ac): State<Arc<Ac>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    let num = |k: &str| -> Result<u64, Response> {
        p.get(k)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| invalid(format!("the field `{k}` is required")))
    };
    let (company, contact) = match (num("company_id"), num("contact_id")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let now = ac.clock.now_s();
    let r = create_affiliation_in(&mut ac.write(), company, contact, &p, now);
    match r {
        Ok(id) => respond_created(&ac, Obj::Affiliation, id, &p),
        Err(e) => e.response(),
    }
}

/// `PUT /affiliations/{id}`.
pub async fn update_affiliation(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    let n = match path_id(Obj::Affiliation, &id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let now = ac.clock.now_s();
    let r = update_affiliation_in(&mut ac.write(), n, &p, now);
    match r {
        Ok(_) => one_of(&ac, Obj::Affiliation, &id, &p),
        Err(e) => e.response(),
    }
}

/// `DELETE /affiliations/{id}`.
pub async fn delete_affiliation(State(ac): State<Arc<Ac>>, Path(id): Path<String>) -> Response {
    let n = match path_id(Obj::Affiliation, &id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut store = ac.write();
    if store.affiliation(n).is_none() {
        return not_found(Obj::Affiliation, &id);
    }
    remove_affiliation(&mut store, n);
    ok(Value::Null)
}

/// `GET /addresses`.
pub async fn list_addresses(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    list_of(&ac, Obj::Address, &q_params(&q), None, None)
}
/// `GET /addresses/count`.
pub async fn count_addresses(State(ac): State<Arc<Ac>>, RawQuery(q): RawQuery) -> Response {
    count_of(&ac, Obj::Address, &q_params(&q), None)
}
/// `GET /addresses/{id}`.
pub async fn get_address(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    one_of(&ac, Obj::Address, &id, &q_params(&q))
}

/// `POST /addresses` (`against_type`, `against_id`).
pub async fn create_address(
    State(ac): State<Arc<Ac>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    let Some(t) = p.get("against_type").cloned() else {
        return invalid("the field `against_type` is required");
    };
    let Some(id) = p
        .get("against_id")
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return invalid("the field `against_id` is required");
    };
    let now = ac.clock.now_s();
    let r = create_address_in(&mut ac.write(), &t, id, &p, now);
    match r {
        Ok(a) => respond_created(&ac, Obj::Address, a, &p),
        Err(e) => e.response(),
    }
}

/// `PUT /addresses/{id}`.
pub async fn update_address(
    State(ac): State<Arc<Ac>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = handler_params!(q, headers, body);
    let n = match path_id(Obj::Address, &id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let now = ac.clock.now_s();
    let r = update_address_in(&mut ac.write(), n, &p, now);
    match r {
        Ok(_) => one_of(&ac, Obj::Address, &id, &p),
        Err(e) => e.response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Admin

const ADMIN_FIELDS: &str = "_ALL";

fn admin_err(status: StatusCode, m: impl Into<String>) -> Response {
    json_response(status, &json!({"error": m.into()}))
}

fn admin_render(store: &AcStore, obj: Obj, id: u64) -> Value {
    let fields = parse_fields(ADMIN_FIELDS).unwrap_or_default();
    render(store, obj, id, &fields, false)
}

/// `POST /_sandbox/edit`: create (`id` null) or change a record as a person in the UI would.
///
/// Companies take their API fields plus `status` (title or id) and `postal_address.<field>`;
/// contacts take theirs plus `status` (title or id), `company_id` (create) and the default
/// affiliation's `affiliation.<field>` (or plain `email`, `phone`, `mobile`, `fax`,
/// `position`); `"delete": true` deletes a company or affiliation and deactivates a contact.
pub async fn admin_edit(State(ac): State<Arc<Ac>>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Edit {
        object: String,
        #[serde(default)]
        id: Option<Value>,
        #[serde(default)]
        fields: Map<String, Value>,
        #[serde(default)]
        delete: bool,
    }
    let edit: Edit = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return admin_err(StatusCode::BAD_REQUEST, format!("invalid edit: {e}")),
    };
    let Some(obj) = Obj::parse_resource(&edit.object) else {
        return admin_err(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown object `{}` (expected companies, contacts, affiliations or addresses)",
                edit.object
            ),
        );
    };
    let id = match &edit.id {
        None | Some(Value::Null) => None,
        Some(v) => match value_to_string(v).and_then(|s| s.parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return admin_err(StatusCode::BAD_REQUEST, format!("invalid id `{v}`")),
        },
    };
    let mut top = Params::new();
    let mut aff = Params::new();
    let mut addr = Params::new();
    for (k, v) in &edit.fields {
        let Some(s) = value_to_string(v) else {
            return admin_err(
                StatusCode::BAD_REQUEST,
                format!("field `{k}` must be a scalar"),
            );
        };
        if let Some(rest) = k.strip_prefix("affiliation.") {
            aff.insert(rest.to_string(), s);
        } else if let Some(rest) = k.strip_prefix("postal_address.") {
            addr.insert(rest.to_string(), s);
        } else if obj == Obj::Contact
            && id.is_some()
            && ["email", "phone", "mobile", "fax", "position"].contains(&k.as_str())
        {
            aff.insert(k.clone(), s);
        } else {
            top.insert(k.clone(), s);
        }
    }
    let now = ac.clock.now_s();
    let mut store = ac.write();
    if let Some(n) = id
        && !store.exists(obj, n)
    {
        return admin_err(StatusCode::NOT_FOUND, format!("no {} `{n}`", edit.object));
    }
    let result: Mut<u64> = (|| {
        if edit.delete {
            let n = id.ok_or("`delete` needs an `id`")?;
            match obj {
                Obj::Company => delete_company_in(&mut store, n)?,
                Obj::Affiliation => remove_affiliation(&mut store, n),
                Obj::Contact => {
                    let s = store
                        .contact_statuses
                        .iter()
                        .find(|s| s.standing == "inactive")
                        .map(|s| s.id)
                        .ok_or("no inactive status")?;
                    progress(&mut store, Obj::Contact, n, s, now)?;
                }
                _ => return Err("addresses cannot be deleted".into()),
            }
            return Ok(n);
        }
        match (obj, id) {
            (Obj::Company, None) => {
                let n = create_company_in(&mut store, &top, now, true)?;
                if !addr.is_empty() {
                    create_address_in(&mut store, "company", n, &addr, now)?;
                }
                Ok(n)
            }
            (Obj::Company, Some(n)) => {
                update_company_in(&mut store, n, &top, now)?;
                if let Some(s) = top.get("status").or(top.get("status_id")) {
                    let st = find_status(&store, Obj::Company, s, true)?;
                    progress(&mut store, Obj::Company, n, st, now)?;
                }
                if !addr.is_empty() {
                    match store.companies.get(&n).and_then(|c| c.postal_address) {
                        Some(a) => {
                            update_address_in(&mut store, a, &addr, now)?;
                        }
                        None => {
                            create_address_in(&mut store, "company", n, &addr, now)?;
                        }
                    }
                }
                Ok(n)
            }
            (Obj::Contact, None) => {
                let mut p = top.clone();
                p.extend(aff.clone());
                Ok(create_contact_in(&mut store, &p, now, true)?.0)
            }
            (Obj::Contact, Some(n)) => {
                update_contact_in(&mut store, n, &top, now, true)?;
                if !aff.is_empty() {
                    let a = store
                        .contacts
                        .get(&n)
                        .and_then(|c| c.default_affiliation)
                        .ok_or("the contact has no affiliation")?;
                    update_affiliation_in(&mut store, a, &aff, now)?;
                }
                Ok(n)
            }
            (Obj::Affiliation, None) => {
                let num = |k: &str| {
                    top.get(k)
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or(format!("`{k}` is required"))
                };
                create_affiliation_in(
                    &mut store,
                    num("company_id")?,
                    num("contact_id")?,
                    &top,
                    now,
                )
            }
            (Obj::Affiliation, Some(n)) => {
                update_affiliation_in(&mut store, n, &top, now)?;
                Ok(n)
            }
            (Obj::Address, None) => {
                let t = top.get("against_type").cloned().unwrap_or_default();
                let a = top
                    .get("against_id")
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or("`against_id` is required")?;
                create_address_in(&mut store, &t, a, &top, now)
            }
            (Obj::Address, Some(n)) => {
                update_address_in(&mut store, n, &top, now)?;
                Ok(n)
            }
            _ => Err("unsupported object".into()),
        }
    })();
    match result {
        Ok(n) => {
            let v = if store.exists(obj, n) {
                admin_render(&store, obj, n)
            } else {
                json!({"id": n.to_string(), "deleted": true})
            };
            json_response(StatusCode::OK, &v)
        }
        Err(e) => admin_err(StatusCode::BAD_REQUEST, e.message()),
    }
}

/// `GET /_sandbox/records/{object}`: every record, `_fields=_ALL` unless `_fields` is given.
pub async fn admin_records(
    State(ac): State<Arc<Ac>>,
    Path(object): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(obj) = Obj::parse_resource(&object) else {
        return admin_err(
            StatusCode::NOT_FOUND,
            format!(
                "unknown object `{object}` (expected companies, contacts, affiliations or addresses)"
            ),
        );
    };
    let p = q_params(&q);
    let fields = match p.get("_fields") {
        Some(f) => match parse_fields(f) {
            Ok(f) => f,
            Err(e) => return admin_err(StatusCode::BAD_REQUEST, e),
        },
        None => parse_fields(ADMIN_FIELDS).unwrap_or_default(),
    };
    let store = ac.read();
    let all: Vec<Value> = store
        .ids(obj)
        .into_iter()
        .map(|id| render(&store, obj, id, &fields, false))
        .collect();
    json_response(StatusCode::OK, &Value::Array(all))
}
