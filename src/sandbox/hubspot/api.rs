//! CRM v3 object endpoints (list, get, create, update, archive, batch read/create/update/
//! upsert/archive) and v3 property endpoints, with HubSpot's record shape
//! (`SimplePublicObject`) and batch shapes (`BatchResponse…`, 207 with `errors[]`).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::props::{PropType, PropertyDef};
use super::store::{
    HsStore, Kind, PRIMARY_CONTACT_TO_COMPANY, Record, Source, StoreError, from_contact_direction,
    to_contact_direction,
};
use super::{Hs, error, parse_body, store_error, unknown_object};
use crate::common::{iso_ms, json_response, query_pairs, value_to_string};

/// Associations to make after a create: (other id, contact→company type ids).
type AssocPlan = Vec<(u64, Vec<u32>)>;
/// One batch-update input: (resolved id, raw id, properties, trace id).
type UpdatePlan = (Option<u64>, String, Vec<(String, String)>, Option<String>);

/// Maximum inputs of a batch request.
pub const BATCH_LIMIT: usize = 100;
/// Maximum `limit` of a list page.
pub const LIST_LIMIT: usize = 100;

/// Collects a multi-valued query parameter (repeated and/or comma-separated).
pub fn multi(params: &[(String, String)], key: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut seen = false;
    for (k, v) in params {
        if k == key {
            seen = true;
            out.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
    }
    seen.then_some(out)
}

fn single<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn flag(params: &[(String, String)], key: &str) -> bool {
    single(params, key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Renders a record: the selected properties (requested ones without a value are `null`), the
/// timestamps, and the requested associations.
pub fn render(
    store: &HsStore,
    kind: Kind,
    rec: &Record,
    props: Option<&[String]>,
    assoc: &[Kind],
) -> Value {
    let mut p = Map::new();
    match props {
        None => {
            for name in kind.default_props() {
                p.insert(
                    (*name).to_string(),
                    rec.props.get(*name).map_or(Value::Null, |v| json!(v)),
                );
            }
        }
        Some(list) => {
            for name in list {
                if store.obj(kind).catalogue.contains_key(name) {
                    p.insert(
                        name.clone(),
                        rec.props.get(name).map_or(Value::Null, |v| json!(v)),
                    );
                }
            }
            // HubSpot always includes these three.
            for name in ["createdate", kind.modified_prop(), "hs_object_id"] {
                p.entry(name.to_string())
                    .or_insert_with(|| rec.props.get(name).map_or(Value::Null, |v| json!(v)));
            }
        }
    }
    let mut o = Map::new();
    o.insert("id".into(), json!(rec.id.to_string()));
    o.insert("properties".into(), Value::Object(p));
    o.insert("createdAt".into(), json!(iso_ms(rec.created_ms)));
    o.insert("updatedAt".into(), json!(iso_ms(rec.updated_ms)));
    o.insert("archived".into(), json!(rec.archived_ms.is_some()));
    if let Some(at) = rec.archived_ms {
        o.insert("archivedAt".into(), json!(iso_ms(at)));
    }
    let mut assocs = Map::new();
    for other in assoc {
        if *other != kind.other() {
            continue;
        }
        let list = store.associations_of(kind, rec.id);
        if list.is_empty() {
            continue;
        }
        let mut results = Vec::new();
        for (id, types) in list {
            for t in types {
                results.push(json!({"id": id.to_string(), "type": v3_type_name(kind, t)}));
            }
        }
        assocs.insert(other.as_str().to_string(), json!({"results": results}));
    }
    if !assocs.is_empty() {
        o.insert("associations".into(), Value::Object(assocs));
    }
    Value::Object(o)
}

/// The v3 association type name of a type id seen from `kind`.
fn v3_type_name(kind: Kind, type_id: u32) -> String {
    let base = match kind {
        Kind::Contacts => "contact_to_company",
        Kind::Companies => "company_to_contact",
    };
    if type_id == from_contact_direction(kind, PRIMARY_CONTACT_TO_COMPANY) {
        base.to_string()
    } else {
        format!("{base}_unlabeled")
    }
}

/// A record with every property it has and its associations (the admin API's shape).
pub fn render_full(store: &HsStore, kind: Kind, id: u64) -> Value {
    let Some(rec) = store.obj(kind).records.get(&id) else {
        return Value::Null;
    };
    let names: Vec<String> = rec.props.keys().cloned().collect();
    let mut v = render(store, kind, rec, Some(&names), &[kind.other()]);
    // Only the properties with values.
    if let Some(p) = v.get_mut("properties").and_then(Value::as_object_mut) {
        p.retain(|_, val| !val.is_null());
    }
    v
}

/// Converts an input `properties` object to raw string values.
pub fn props_input(map: &Map<String, Value>) -> Result<Vec<(String, String)>, Response> {
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        match value_to_string(v) {
            Some(s) => out.push((k.clone(), s)),
            None => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    format!("Property values must be strings: {k} had a {v} value"),
                ));
            }
        }
    }
    Ok(out)
}

fn parse_kind(object: &str) -> Result<Kind, Response> {
    Kind::parse(object).ok_or_else(|| unknown_object(object))
}

/// `GET /crm/v3/objects/{objectType}`.
pub async fn list(
    State(hs): State<Arc<Hs>>,
    Path(object): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let params = query_pairs(q.as_deref());
    let limit = match single(&params, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=LIST_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("limit must be between 1 and {LIST_LIMIT}"),
            );
        }
    };
    let after = match single(&params, "after")
        .filter(|a| !a.is_empty())
        .map(str::parse::<u64>)
    {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "after must be a paging cursor returned by a previous page",
            );
        }
    };
    let archived = flag(&params, "archived");
    let props = multi(&params, "properties");
    let assoc: Vec<Kind> = multi(&params, "associations")
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Kind::parse(s))
        .collect();
    let store = hs.read();
    let obj = store.obj(kind);
    let mut page = obj
        .records
        .range(after..)
        .map(|(_, r)| r)
        .filter(|r| r.archived_ms.is_some() == archived)
        .take(limit + 1);
    let results: Vec<Value> = page
        .by_ref()
        .take(limit)
        .map(|r| render(&store, kind, r, props.as_deref(), &assoc))
        .collect();
    let next = page.next().map(|r| r.id);
    let mut body = json!({"results": results});
    if let Some(next) = next {
        body["paging"] = json!({"next": {
            "after": next.to_string(),
            "link": format!("{}/crm/v3/objects/{}?after={next}&limit={limit}", hs.base_url, kind.as_str()),
        }});
    }
    json_response(StatusCode::OK, &body)
}

/// `GET /crm/v3/objects/{objectType}/{objectId}`.
pub async fn get_one(
    State(hs): State<Arc<Hs>>,
    Path((object, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let params = query_pairs(q.as_deref());
    let props = multi(&params, "properties");
    let assoc: Vec<Kind> = multi(&params, "associations")
        .unwrap_or_default()
        .iter()
        .filter_map(|s| Kind::parse(s))
        .collect();
    let store = hs.read();
    let obj = store.obj(kind);
    let found = if flag(&params, "archived") {
        Ok(obj.resolve_archived(&id))
    } else {
        obj.resolve(&id, single(&params, "idProperty"))
    };
    match found {
        Err(e) => store_error(&e),
        Ok(None) => store_error(&StoreError::NotFound(id)),
        Ok(Some(n)) => match obj.records.get(&n) {
            Some(rec) => json_response(
                StatusCode::OK,
                &render(&store, kind, rec, props.as_deref(), &assoc),
            ),
            None => store_error(&StoreError::NotFound(id)),
        },
    }
}

#[derive(Debug, Deserialize)]
struct AssocTypeIn {
    #[serde(rename = "associationCategory", default)]
    category: Option<String>,
    #[serde(rename = "associationTypeId")]
    type_id: u32,
}

#[derive(Debug, Deserialize)]
struct IdIn {
    id: Value,
}

#[derive(Debug, Deserialize)]
struct AssocIn {
    to: IdIn,
    types: Vec<AssocTypeIn>,
}

#[derive(Debug, Deserialize)]
struct CreateIn {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    associations: Vec<AssocIn>,
    #[serde(rename = "objectWriteTraceId", default)]
    trace: Option<String>,
}

/// Resolves `associations` of a create body to (other id, contact→company type ids).
fn check_create_assocs(
    store: &HsStore,
    kind: Kind,
    assocs: &[AssocIn],
) -> Result<Vec<(u64, Vec<u32>)>, StoreError> {
    let mut out = Vec::new();
    for a in assocs {
        let id_s = value_to_string(&a.to.id).unwrap_or_default();
        let Some(other) = id_s
            .parse::<u64>()
            .ok()
            .filter(|n| store.obj(kind.other()).live(*n).is_some())
        else {
            return Err(StoreError::Invalid(format!(
                "One or more associations are invalid: {} {id_s} does not exist",
                kind.other().singular()
            )));
        };
        let mut types = Vec::new();
        for t in &a.types {
            if t.category
                .as_deref()
                .is_some_and(|c| c != "HUBSPOT_DEFINED")
            {
                return Err(StoreError::Invalid(format!(
                    "association type {} of category {} does not exist between {} and {}",
                    t.type_id,
                    t.category.as_deref().unwrap_or_default(),
                    kind.singular(),
                    kind.other().singular()
                )));
            }
            match to_contact_direction(kind, t.type_id) {
                Some(x) => types.push(x),
                None => {
                    return Err(StoreError::Invalid(format!(
                        "association type id {} is not valid from {} to {}",
                        t.type_id,
                        kind.as_str(),
                        kind.other().as_str()
                    )));
                }
            }
        }
        out.push((other, types));
    }
    Ok(out)
}

fn link(store: &mut HsStore, kind: Kind, id: u64, other: u64, types: &[u32], now: i64) {
    let (contact, company) = match kind {
        Kind::Contacts => (id, other),
        Kind::Companies => (other, id),
    };
    // Both records were checked to exist under the same lock.
    let _ = store.associate(contact, company, types, Source::Api, now);
}

/// Properties shown in a write response: the defaults plus those written.
fn written_props(kind: Kind, input: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = kind.default_props().iter().map(|s| s.to_string()).collect();
    for (k, _) in input {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    names
}

/// `POST /crm/v3/objects/{objectType}`.
pub async fn create(
    State(hs): State<Arc<Hs>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let input: CreateIn = match parse_body(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let props = match props_input(&input.properties) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    let assocs = match check_create_assocs(&store, kind, &input.associations) {
        Ok(a) => a,
        Err(e) => return store_error(&e),
    };
    match store.create(kind, &props, Source::Api, now) {
        Ok(id) => {
            for (other, types) in &assocs {
                link(&mut store, kind, id, *other, types, now);
            }
            let names = written_props(kind, &props);
            match store.obj(kind).records.get(&id) {
                Some(rec) => json_response(
                    StatusCode::CREATED,
                    &render(&store, kind, rec, Some(&names), &[]),
                ),
                None => store_error(&StoreError::NotFound(id.to_string())),
            }
        }
        Err(e) => store_error(&e),
    }
}

#[derive(Debug, Deserialize)]
struct UpdateIn {
    #[serde(default)]
    properties: Map<String, Value>,
}

/// `PATCH /crm/v3/objects/{objectType}/{objectId}`.
pub async fn update(
    State(hs): State<Arc<Hs>>,
    Path((object, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let params = query_pairs(q.as_deref());
    let input: UpdateIn = match parse_body(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let props = match props_input(&input.properties) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    let n = match store.obj(kind).resolve(&id, single(&params, "idProperty")) {
        Ok(Some(n)) => n,
        Ok(None) => return store_error(&StoreError::NotFound(id)),
        Err(e) => return store_error(&e),
    };
    match store.update(kind, n, &props, Source::Api, now) {
        Ok(_) => {
            let names = written_props(kind, &props);
            match store.obj(kind).records.get(&n) {
                Some(rec) => json_response(
                    StatusCode::OK,
                    &render(&store, kind, rec, Some(&names), &[]),
                ),
                None => store_error(&StoreError::NotFound(id)),
            }
        }
        Err(e) => store_error(&e),
    }
}

/// `DELETE /crm/v3/objects/{objectType}/{objectId}`: archive; 204 even when already gone.
pub async fn archive(
    State(hs): State<Arc<Hs>>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    if let Ok(Some(n)) = store.obj(kind).resolve(&id, None) {
        store.archive(kind, n, Source::Api, now);
    }
    no_content()
}

fn no_content() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

// ---------------------------------------------------------------------------------------------
// Batch

#[derive(Debug, Deserialize)]
struct BatchIn<T> {
    inputs: Vec<T>,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(rename = "idProperty", default)]
    id_property: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchUpdateIn {
    id: Value,
    #[serde(rename = "idProperty", default)]
    id_property: Option<String>,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(rename = "objectWriteTraceId", default)]
    trace: Option<String>,
}

fn batch_body(
    results: Vec<Value>,
    errors: Vec<Value>,
    started: i64,
    now: i64,
    ok: StatusCode,
) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso_ms(started),
        "completedAt": iso_ms(now),
    });
    if errors.is_empty() {
        json_response(ok, &body)
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        json_response(StatusCode::MULTI_STATUS, &body)
    }
}

fn standard_error(category: &str, message: String, context: Value) -> Value {
    json!({
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    })
}

fn not_found_error(kind: Kind, ids: Vec<String>) -> Value {
    standard_error(
        "OBJECT_NOT_FOUND",
        format!(
            "Could not get some {} objects, they may be deleted or not exist. Check that ids are \
             valid.",
            kind.singular().to_uppercase()
        ),
        json!({"ids": ids}),
    )
}

/// `POST /crm/v3/objects/{objectType}/batch/{action}`.
pub async fn batch(
    State(hs): State<Arc<Hs>>,
    Path((object, action)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let count = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("inputs").and_then(Value::as_array).map(Vec::len));
    if let Some(n) = count
        && n > BATCH_LIMIT
    {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Batch input limit exceeded: {n} inputs given, the limit is {BATCH_LIMIT}"),
        );
    }
    let params = query_pairs(q.as_deref());
    match action.as_str() {
        "read" => batch_read(&hs, kind, &params, &body),
        "create" => batch_create(&hs, kind, &body),
        "update" => batch_update(&hs, kind, &body),
        "upsert" => batch_upsert(&hs, kind, &body),
        "archive" => batch_archive(&hs, kind, &body),
        other => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("unknown batch action {other}"),
        ),
    }
}

fn batch_read(hs: &Hs, kind: Kind, params: &[(String, String)], body: &Bytes) -> Response {
    let started = hs.clock.now_ms();
    let input: BatchIn<IdIn> = match parse_body(body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let archived = flag(params, "archived");
    let store = hs.read();
    let obj = store.obj(kind);
    let mut results = Vec::new();
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    for i in &input.inputs {
        let id = value_to_string(&i.id).unwrap_or_default();
        let found = if archived {
            Ok(obj.resolve_archived(&id))
        } else {
            obj.resolve(&id, input.id_property.as_deref())
        };
        match found {
            Err(e) => return store_error(&e),
            Ok(Some(n)) => {
                if seen.insert(n)
                    && let Some(rec) = obj.records.get(&n)
                {
                    results.push(render(&store, kind, rec, input.properties.as_deref(), &[]));
                }
            }
            Ok(None) => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        vec![]
    } else {
        vec![not_found_error(kind, missing)]
    };
    batch_body(results, errors, started, hs.clock.now_ms(), StatusCode::OK)
}

fn batch_create(hs: &Hs, kind: Kind, body: &Bytes) -> Response {
    let started = hs.clock.now_ms();
    let input: BatchIn<CreateIn> = match parse_body(body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut prepared = Vec::new();
    for i in &input.inputs {
        match props_input(&i.properties) {
            Ok(p) => prepared.push(p),
            Err(r) => return r,
        }
    }
    let partial = !input.inputs.is_empty() && input.inputs.iter().all(|i| i.trace.is_some());
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    // Validate everything first: without trace ids one bad input fails the whole batch.
    let mut verdicts: Vec<Result<AssocPlan, StoreError>> = Vec::new();
    let mut batch_uniques: HashSet<(String, String)> = HashSet::new();
    for (i, props) in input.inputs.iter().zip(&prepared) {
        let v = store
            .check_create(kind, props)
            .and_then(|changes| {
                for (k, v) in &changes {
                    if let Some(v) = v
                        && store.obj(kind).catalogue.get(k).is_some_and(|d| d.unique)
                        && !batch_uniques.insert((k.clone(), v.to_lowercase()))
                    {
                        return Err(StoreError::Invalid(format!(
                            "Duplicate {k} found in batch input: {v}"
                        )));
                    }
                }
                Ok(())
            })
            .and_then(|_| check_create_assocs(&store, kind, &i.associations));
        if let Err(e) = &v
            && !partial
        {
            return store_error(e);
        }
        verdicts.push(v);
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for ((i, props), verdict) in input.inputs.iter().zip(&prepared).zip(verdicts) {
        let assocs = match verdict {
            Ok(a) => a,
            Err(e) => {
                errors.push(write_error(&e, i.trace.as_deref()));
                continue;
            }
        };
        match store.create(kind, props, Source::Api, now) {
            Ok(id) => {
                for (other, types) in &assocs {
                    link(&mut store, kind, id, *other, types, now);
                }
                if let Some(rec) = store.obj(kind).records.get(&id) {
                    let names = written_props(kind, props);
                    let mut r = render(&store, kind, rec, Some(&names), &[]);
                    if let Some(t) = &i.trace {
                        r["objectWriteTraceId"] = json!(t);
                    }
                    results.push(r);
                }
            }
            Err(e) => errors.push(write_error(&e, i.trace.as_deref())),
        }
    }
    batch_body(
        results,
        errors,
        started,
        hs.clock.now_ms(),
        StatusCode::CREATED,
    )
}

fn write_error(e: &StoreError, trace: Option<&str>) -> Value {
    let category = match e {
        StoreError::Validation(_) | StoreError::Invalid(_) => "VALIDATION_ERROR",
        StoreError::Conflict { .. } => "CONFLICT",
        StoreError::NotFound(_) => "OBJECT_NOT_FOUND",
    };
    let mut context = json!({});
    if let Some(t) = trace {
        context["objectWriteTraceId"] = json!([t]);
    }
    if let StoreError::NotFound(id) = e {
        context["ids"] = json!([id]);
    }
    standard_error(category, e.message(), context)
}

fn batch_update(hs: &Hs, kind: Kind, body: &Bytes) -> Response {
    let started = hs.clock.now_ms();
    let input: BatchIn<BatchUpdateIn> = match parse_body(body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let partial = !input.inputs.is_empty() && input.inputs.iter().all(|i| i.trace.is_some());
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    let mut plan: Vec<UpdatePlan> = Vec::new();
    let mut ids = BTreeSet::new();
    let mut dups = Vec::new();
    for i in &input.inputs {
        let raw = value_to_string(&i.id).unwrap_or_default();
        let props = match props_input(&i.properties) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let id_prop = i.id_property.as_deref().or(input.id_property.as_deref());
        let n = match store.obj(kind).resolve(&raw, id_prop) {
            Ok(n) => n,
            Err(e) => return store_error(&e),
        };
        if let Some(n) = n
            && !ids.insert(n)
        {
            dups.push(n.to_string());
        }
        plan.push((n, raw, props, i.trace.clone()));
    }
    if !dups.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Duplicate IDs found in batch input: [{}]. IDs must be unique",
                dups.join(", ")
            ),
        );
    }
    let mut verdicts = Vec::new();
    for (n, _, props, _) in &plan {
        let v = match n {
            Some(n) => store.check_update(kind, *n, props).map(|_| ()),
            None => Ok(()),
        };
        if let Err(e) = &v
            && !partial
        {
            return store_error(e);
        }
        verdicts.push(v);
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let mut missing = Vec::new();
    for ((n, raw, props, trace), verdict) in plan.into_iter().zip(verdicts) {
        let Some(n) = n else {
            missing.push(raw);
            continue;
        };
        if let Err(e) = verdict {
            errors.push(write_error(&e, trace.as_deref()));
            continue;
        }
        match store.update(kind, n, &props, Source::Api, now) {
            Ok(_) => {
                if let Some(rec) = store.obj(kind).records.get(&n) {
                    let names = written_props(kind, &props);
                    let mut r = render(&store, kind, rec, Some(&names), &[]);
                    if let Some(t) = &trace {
                        r["objectWriteTraceId"] = json!(t);
                    }
                    results.push(r);
                }
            }
            Err(e) => errors.push(write_error(&e, trace.as_deref())),
        }
    }
    if !missing.is_empty() {
        errors.push(not_found_error(kind, missing));
    }
    batch_body(results, errors, started, hs.clock.now_ms(), StatusCode::OK)
}

fn batch_upsert(hs: &Hs, kind: Kind, body: &Bytes) -> Response {
    let started = hs.clock.now_ms();
    let input: BatchIn<BatchUpdateIn> = match parse_body(body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    let mut plan = Vec::new();
    let mut seen = HashSet::new();
    for i in &input.inputs {
        let raw = value_to_string(&i.id).unwrap_or_default();
        let Some(id_prop) = i.id_property.clone().or(input.id_property.clone()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "idProperty is required for upsert",
            );
        };
        if id_prop == "hs_object_id" {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "hs_object_id cannot be used as idProperty for upsert: use a unique property",
            );
        }
        if !seen.insert((id_prop.clone(), raw.to_lowercase())) {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("Duplicate IDs found in batch input: [{raw}]. IDs must be unique"),
            );
        }
        let mut props = match props_input(&i.properties) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let existing = match store.obj(kind).resolve(&raw, Some(&id_prop)) {
            Ok(n) => n,
            Err(e) => return store_error(&e),
        };
        if existing.is_none() && !props.iter().any(|(k, _)| *k == id_prop) {
            props.push((id_prop.clone(), raw.clone()));
        }
        let check = match existing {
            Some(n) => store.check_update(kind, n, &props).map(|_| ()),
            None => store.check_create(kind, &props).map(|_| ()),
        };
        if let Err(e) = check {
            return store_error(&e);
        }
        plan.push((existing, props, i.trace.clone()));
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (existing, props, trace) in plan {
        let outcome = match existing {
            Some(n) => store
                .update(kind, n, &props, Source::Api, now)
                .map(|_| (n, false)),
            None => store
                .create(kind, &props, Source::Api, now)
                .map(|n| (n, true)),
        };
        match outcome {
            Ok((n, new)) => {
                if let Some(rec) = store.obj(kind).records.get(&n) {
                    let names = written_props(kind, &props);
                    let mut r = render(&store, kind, rec, Some(&names), &[]);
                    r["new"] = json!(new);
                    if let Some(t) = &trace {
                        r["objectWriteTraceId"] = json!(t);
                    }
                    results.push(r);
                }
            }
            Err(e) => errors.push(write_error(&e, trace.as_deref())),
        }
    }
    batch_body(results, errors, started, hs.clock.now_ms(), StatusCode::OK)
}

fn batch_archive(hs: &Hs, kind: Kind, body: &Bytes) -> Response {
    let input: BatchIn<IdIn> = match parse_body(body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    for i in &input.inputs {
        let raw = value_to_string(&i.id).unwrap_or_default();
        if let Ok(Some(n)) = store.obj(kind).resolve(&raw, None) {
            store.archive(kind, n, Source::Api, now);
        }
    }
    no_content()
}

// ---------------------------------------------------------------------------------------------
// Properties

/// `GET /crm/v3/properties/{objectType}`.
pub async fn list_properties(State(hs): State<Arc<Hs>>, Path(object): Path<String>) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let store = hs.read();
    let results: Vec<Value> = store
        .obj(kind)
        .catalogue
        .values()
        .map(PropertyDef::to_json)
        .collect();
    json_response(StatusCode::OK, &json!({"results": results}))
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}`.
pub async fn get_property(
    State(hs): State<Arc<Hs>>,
    Path((object, name)): Path<(String, String)>,
) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let store = hs.read();
    match store.obj(kind).catalogue.get(&name) {
        Some(def) => json_response(StatusCode::OK, &def.to_json()),
        None => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!(
                "Unable to find property {name} for object type {}",
                kind.as_str()
            ),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct OptionIn {
    label: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PropertyIn {
    name: Option<String>,
    label: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    field_type: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Vec<OptionIn>,
    #[serde(default)]
    has_unique_value: bool,
    #[serde(default)]
    display_order: Option<i64>,
}

/// `POST /crm/v3/properties/{objectType}`: a custom property (201).
pub async fn create_property(
    State(hs): State<Arc<Hs>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let kind = match parse_kind(&object) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let input: PropertyIn = match parse_body(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let mut missing = Vec::new();
    for (field, v) in [
        ("name", &input.name),
        ("label", &input.label),
        ("type", &input.kind),
        ("fieldType", &input.field_type),
        ("groupName", &input.group_name),
    ] {
        if v.as_deref().is_none_or(str::is_empty) {
            missing.push(field);
        }
    }
    if !missing.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Missing required fields: {}", missing.join(", ")),
        );
    }
    let name = input.name.unwrap_or_default();
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name || name.starts_with("hs_") {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Property name {name} is invalid: use lower-case letters, digits and underscores, \
                 starting with a letter, not with hs_"
            ),
        );
    }
    let type_s = input.kind.unwrap_or_default();
    let Some(ty) = PropType::parse(&type_s) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Invalid property type {type_s}"),
        );
    };
    let field_type = input.field_type.unwrap_or_default();
    if !ty.field_types().contains(&field_type.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Invalid fieldType {field_type} for type {type_s}: valid are {}",
                ty.field_types().join(", ")
            ),
        );
    }
    if ty == PropType::Enumeration && input.options.is_empty() && field_type != "booleancheckbox" {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Enumeration properties need options",
        );
    }
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    let obj = store.obj_mut(kind);
    if obj.catalogue.contains_key(&name) {
        return error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("Property named '{name}' already exists."),
        );
    }
    if input.has_unique_value && obj.unique_count() >= 10 {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Limit of 10 unique value properties reached for {}",
                kind.as_str()
            ),
        );
    }
    let def = PropertyDef {
        name: name.clone(),
        label: input.label.unwrap_or_default(),
        kind: ty,
        field_type,
        group: input.group_name.unwrap_or_default(),
        description: input.description.unwrap_or_default(),
        options: input
            .options
            .into_iter()
            .map(|o| (o.value, o.label))
            .collect(),
        read_only: false,
        calculated: false,
        unique: input.has_unique_value,
        hubspot_defined: false,
        display_order: input.display_order.unwrap_or(-1),
        created_ms: now,
    };
    let json = def.to_json();
    obj.add_property(def);
    json_response(StatusCode::CREATED, &json)
}
