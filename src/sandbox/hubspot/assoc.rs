//! CRM v4 associations between contacts and companies: default (unlabelled) and labelled
//! (primary typeId 1/2, unlabelled 279/280) single-record endpoints, the batch endpoints
//! (associate/default, create, read, archive, labels/archive) and the label list.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{
    HsStore, Kind, PRIMARY_CONTACT_TO_COMPANY, Source, StoreError, UNLABELED_CONTACT_TO_COMPANY,
    from_contact_direction, to_contact_direction,
};
use super::{Hs, error, parse_body, store_error, unknown_object};
use crate::common::{iso_ms, json_response, query_pairs, value_to_string};

/// Batch read input limit.
pub const READ_LIMIT: usize = 1_000;
/// Batch create input limit.
pub const CREATE_LIMIT: usize = 2_000;

fn pair_kinds(from: &str, to: &str) -> Result<(Kind, Kind), Response> {
    let f = Kind::parse(from).ok_or_else(|| unknown_object(from))?;
    let t = Kind::parse(to).ok_or_else(|| unknown_object(to))?;
    if f == t {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "The sandbox supports associations between contacts and companies only, not {} to {}",
                f.as_str(),
                t.as_str()
            ),
        ));
    }
    Ok((f, t))
}

fn label(type_id: u32) -> Value {
    if type_id == PRIMARY_CONTACT_TO_COMPANY
        || type_id == from_contact_direction(Kind::Companies, PRIMARY_CONTACT_TO_COMPANY)
    {
        json!("Primary")
    } else {
        Value::Null
    }
}

fn spec_list(from: Kind, types: &[u32]) -> Vec<Value> {
    types
        .iter()
        .map(|t| {
            let t = from_contact_direction(from, *t);
            json!({"category": "HUBSPOT_DEFINED", "typeId": t, "label": label(t)})
        })
        .collect()
}

fn parse_id(s: &str) -> Option<u64> {
    s.trim().parse::<u64>().ok()
}

/// (contact, company) of a pair given from `from`'s side.
fn orient(from: Kind, a: u64, b: u64) -> (u64, u64) {
    match from {
        Kind::Contacts => (a, b),
        Kind::Companies => (b, a),
    }
}

fn exists(store: &HsStore, kind: Kind, id: u64) -> bool {
    store.obj(kind).live(id).is_some()
}

fn missing(kind: Kind, id: &str) -> StoreError {
    StoreError::Invalid(format!("{} {id} was not found", kind.singular()))
}

fn labels_pair(store: &HsStore, from: Kind, to: Kind, a: u64, b: u64) -> Value {
    let (contact, company) = orient(from, a, b);
    let types: Vec<u32> = store
        .association_types(contact, company)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    let labels: Vec<Value> = types
        .iter()
        .map(|t| label(from_contact_direction(from, *t)))
        .filter(|l| !l.is_null())
        .collect();
    json!({
        "fromObjectTypeId": from.type_id(),
        "fromObjectId": a,
        "toObjectTypeId": to.type_id(),
        "toObjectId": b,
        "labels": labels,
    })
}

fn default_results(from: Kind, a: u64, b: u64) -> Vec<Value> {
    let unl = |k: Kind| from_contact_direction(k, UNLABELED_CONTACT_TO_COMPANY);
    vec![
        json!({"from": {"id": a.to_string()}, "to": {"id": b.to_string()},
               "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": unl(from)}}),
        json!({"from": {"id": b.to_string()}, "to": {"id": a.to_string()},
               "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": unl(from.other())}}),
    ]
}

fn batch_ok(
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

fn err_item(category: &str, message: String, context: Value) -> Value {
    json!({"status": "error", "category": category, "message": message, "context": context, "errors": [], "links": {}})
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}`.
pub async fn put_default(
    State(hs): State<Arc<Hs>>,
    Path((from, a, to, b)): Path<(String, String, String, String)>,
) -> Response {
    let (f, t) = match pair_kinds(&from, &to) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let started = hs.clock.now_ms();
    let mut store = hs.write();
    let (Some(an), Some(bn)) = (
        parse_id(&a).filter(|n| exists(&store, f, *n)),
        parse_id(&b).filter(|n| exists(&store, t, *n)),
    ) else {
        let which = if parse_id(&a).is_some_and(|n| exists(&store, f, n)) {
            missing(t, &b)
        } else {
            missing(f, &a)
        };
        return store_error(&which);
    };
    let (contact, company) = orient(f, an, bn);
    if let Err(e) = store.associate(
        contact,
        company,
        &[UNLABELED_CONTACT_TO_COMPANY],
        Source::Api,
        started,
    ) {
        return store_error(&e);
    }
    batch_ok(
        default_results(f, an, bn),
        vec![],
        started,
        hs.clock.now_ms(),
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
struct SpecIn {
    #[serde(rename = "associationCategory", default)]
    category: Option<String>,
    #[serde(rename = "associationTypeId")]
    type_id: u32,
}

fn resolve_types(from: Kind, specs: &[SpecIn]) -> Result<Vec<u32>, StoreError> {
    if specs.is_empty() {
        return Err(StoreError::Invalid(
            "At least one association type is required".into(),
        ));
    }
    specs
        .iter()
        .map(|s| {
            if s.category
                .as_deref()
                .is_some_and(|c| c != "HUBSPOT_DEFINED")
            {
                return Err(StoreError::Invalid(format!(
                    "association type {} of category {} does not exist from {} to {}",
                    s.type_id,
                    s.category.as_deref().unwrap_or_default(),
                    from.as_str(),
                    from.other().as_str()
                )));
            }
            to_contact_direction(from, s.type_id).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "association type id {} is not valid from {} to {}",
                    s.type_id,
                    from.as_str(),
                    from.other().as_str()
                ))
            })
        })
        .collect()
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId}` with a body of types (201).
pub async fn put_labelled(
    State(hs): State<Arc<Hs>>,
    Path((from, a, to, b)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    let (f, t) = match pair_kinds(&from, &to) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let specs: Vec<SpecIn> = match parse_body(&body) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let types = match resolve_types(f, &specs) {
        Ok(t) => t,
        Err(e) => return store_error(&e),
    };
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    let Some(an) = parse_id(&a).filter(|n| exists(&store, f, *n)) else {
        return store_error(&missing(f, &a));
    };
    let Some(bn) = parse_id(&b).filter(|n| exists(&store, t, *n)) else {
        return store_error(&missing(t, &b));
    };
    let (contact, company) = orient(f, an, bn);
    if let Err(e) = store.associate(contact, company, &types, Source::Api, now) {
        return store_error(&e);
    }
    json_response(StatusCode::CREATED, &labels_pair(&store, f, t, an, bn))
}

/// `DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}`: removes every type (204).
pub async fn delete_pair(
    State(hs): State<Arc<Hs>>,
    Path((from, a, to, b)): Path<(String, String, String, String)>,
) -> Response {
    let (f, _) = match pair_kinds(&from, &to) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = hs.clock.now_ms();
    if let (Some(an), Some(bn)) = (parse_id(&a), parse_id(&b)) {
        let (contact, company) = orient(f, an, bn);
        hs.write()
            .remove_association(contact, company, None, Source::Api, now);
    }
    no_content()
}

fn no_content() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// `GET /crm/v4/objects/{from}/{id}/associations/{to}` (limit default 500, `after` cursor).
pub async fn list(
    State(hs): State<Arc<Hs>>,
    Path((from, a, to)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let (f, t) = match pair_kinds(&from, &to) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let _ = t;
    let params = query_pairs(q.as_deref());
    let get = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
    };
    let limit = match get("limit").map(str::parse::<usize>) {
        None => 500,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "limit must be between 1 and 500",
            );
        }
    };
    let after: u64 = get("after").and_then(|s| s.parse().ok()).unwrap_or(0);
    let store = hs.read();
    let Some(an) = parse_id(&a) else {
        return json_response(StatusCode::OK, &json!({"results": []}));
    };
    let all: Vec<(u64, Vec<u32>)> = store
        .associations_of(f, an)
        .into_iter()
        .filter(|(id, _)| *id >= after)
        .collect();
    let results: Vec<Value> = all
        .iter()
        .take(limit)
        .map(|(id, types)| {
            let contact_dir: Vec<u32> = types
                .iter()
                .map(|x| to_contact_direction(f, *x).unwrap_or(*x))
                .collect();
            json!({"toObjectId": id, "associationTypes": spec_list(f, &contact_dir)})
        })
        .collect();
    let mut body = json!({"results": results});
    if let Some((next, _)) = all.get(limit) {
        body["paging"] = json!({"next": {"after": next.to_string(), "link": Value::Null}});
    }
    json_response(StatusCode::OK, &body)
}

#[derive(Debug, Deserialize)]
struct Id {
    id: Value,
}

#[derive(Debug, Deserialize)]
struct BatchIn<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct DefaultIn {
    from: Id,
    to: Id,
}

#[derive(Debug, Deserialize)]
struct CreateIn {
    from: Id,
    to: Id,
    types: Vec<SpecIn>,
}

#[derive(Debug, Deserialize)]
struct ReadIn {
    id: Value,
}

#[derive(Debug, Deserialize)]
struct ArchiveIn {
    from: Id,
    to: Vec<Id>,
}

fn sid(v: &Value) -> String {
    value_to_string(v).unwrap_or_default()
}

fn too_many(n: usize, limit: usize) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        format!("Batch input limit exceeded: {n} inputs given, the limit is {limit}"),
    )
}

/// `POST /crm/v4/associations/{from}/{to}/batch/associate/default`.
pub async fn batch_default(
    State(hs): State<Arc<Hs>>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (f, t) = match pair_kinds(&from, &to) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let input: BatchIn<DefaultIn> = match parse_body(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if input.inputs.len() > CREATE_LIMIT {
        return too_many(input.inputs.len(), CREATE_LIMIT);
    }
    let started = hs.clock.now_ms();
    let mut store = hs.write();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for i in &input.inputs {
        let (a, b) = (sid(&i.from.id), sid(&i.to.id));
        match (
            parse_id(&a).filter(|n| exists(&store, f, *n)),
            parse_id(&b).filter(|n| exists(&store, t, *n)),
        ) {
            (Some(an), Some(bn)) => {
                let (contact, company) = orient(f, an, bn);
                if store
                    .associate(
                        contact,
                        company,
                        &[UNLABELED_CONTACT_TO_COMPANY],
                        Source::Api,
                        started,
                    )
                    .is_ok()
                {
                    results.extend(default_results(f, an, bn));
                }
            }
            _ => errors.push(err_item(
                "VALIDATION_ERROR",
                format!("{} {a} or {} {b} was not found", f.singular(), t.singular()),
                json!({"fromId": [a], "toId": [b]}),
            )),
        }
    }
    batch_ok(results, errors, started, hs.clock.now_ms(), StatusCode::OK)
}

/// `POST /crm/v4/associations/{from}/{to}/batch/{create|read|archive}`.
pub async fn batch(
    State(hs): State<Arc<Hs>>,
    Path((from, to, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (f, t) = match pair_kinds(&from, &to) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let started = hs.clock.now_ms();
    match action.as_str() {
        "create" => {
            let input: BatchIn<CreateIn> = match parse_body(&body) {
                Ok(i) => i,
                Err(r) => return r,
            };
            if input.inputs.len() > CREATE_LIMIT {
                return too_many(input.inputs.len(), CREATE_LIMIT);
            }
            let mut store = hs.write();
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for i in &input.inputs {
                let (a, b) = (sid(&i.from.id), sid(&i.to.id));
                let types = match resolve_types(f, &i.types) {
                    Ok(t) => t,
                    Err(e) => {
                        errors.push(err_item(
                            "VALIDATION_ERROR",
                            e.message(),
                            json!({"fromId": [a], "toId": [b]}),
                        ));
                        continue;
                    }
                };
                match (
                    parse_id(&a).filter(|n| exists(&store, f, *n)),
                    parse_id(&b).filter(|n| exists(&store, t, *n)),
                ) {
                    (Some(an), Some(bn)) => {
                        let (contact, company) = orient(f, an, bn);
                        if store
                            .associate(contact, company, &types, Source::Api, started)
                            .is_ok()
                        {
                            results.push(labels_pair(&store, f, t, an, bn));
                        }
                    }
                    _ => errors.push(err_item(
                        "VALIDATION_ERROR",
                        format!("{} {a} or {} {b} was not found", f.singular(), t.singular()),
                        json!({"fromId": [a], "toId": [b]}),
                    )),
                }
            }
            batch_ok(
                results,
                errors,
                started,
                hs.clock.now_ms(),
                StatusCode::CREATED,
            )
        }
        "read" => {
            let input: BatchIn<ReadIn> = match parse_body(&body) {
                Ok(i) => i,
                Err(r) => return r,
            };
            if input.inputs.len() > READ_LIMIT {
                return too_many(input.inputs.len(), READ_LIMIT);
            }
            let store = hs.read();
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for i in &input.inputs {
                let a = sid(&i.id);
                let list = parse_id(&a)
                    .map(|n| store.associations_of(f, n))
                    .unwrap_or_default();
                if list.is_empty() {
                    errors.push(err_item(
                        "OBJECT_NOT_FOUND",
                        format!(
                            "No {} is associated with {} {a}.",
                            t.singular(),
                            f.singular()
                        ),
                        json!({"fromObjectId": [a]}),
                    ));
                    continue;
                }
                let to_list: Vec<Value> = list
                    .iter()
                    .map(|(id, types)| {
                        let contact_dir: Vec<u32> = types
                            .iter()
                            .map(|x| to_contact_direction(f, *x).unwrap_or(*x))
                            .collect();
                        json!({"toObjectId": id, "associationTypes": spec_list(f, &contact_dir)})
                    })
                    .collect();
                results.push(json!({"from": {"id": a}, "to": to_list}));
            }
            batch_ok(results, errors, started, hs.clock.now_ms(), StatusCode::OK)
        }
        "archive" => {
            let input: BatchIn<ArchiveIn> = match parse_body(&body) {
                Ok(i) => i,
                Err(r) => return r,
            };
            if input.inputs.len() > CREATE_LIMIT {
                return too_many(input.inputs.len(), CREATE_LIMIT);
            }
            let mut store = hs.write();
            for i in &input.inputs {
                let Some(an) = parse_id(&sid(&i.from.id)) else {
                    continue;
                };
                for to in &i.to {
                    if let Some(bn) = parse_id(&sid(&to.id)) {
                        let (contact, company) = orient(f, an, bn);
                        store.remove_association(contact, company, None, Source::Api, started);
                    }
                }
            }
            no_content()
        }
        other => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("unknown association batch action {other}"),
        ),
    }
}

/// `POST /crm/v4/associations/{from}/{to}/batch/labels/archive`: removes the listed types.
pub async fn batch_archive_labels(
    State(hs): State<Arc<Hs>>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (f, _) = match pair_kinds(&from, &to) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let input: BatchIn<CreateIn> = match parse_body(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if input.inputs.len() > CREATE_LIMIT {
        return too_many(input.inputs.len(), CREATE_LIMIT);
    }
    let now = hs.clock.now_ms();
    let mut store = hs.write();
    for i in &input.inputs {
        let types = match resolve_types(f, &i.types) {
            Ok(t) => t,
            Err(e) => return store_error(&e),
        };
        if let (Some(an), Some(bn)) = (parse_id(&sid(&i.from.id)), parse_id(&sid(&i.to.id))) {
            let (contact, company) = orient(f, an, bn);
            store.remove_association(contact, company, Some(&types), Source::Api, now);
        }
    }
    no_content()
}

/// `GET /crm/v4/associations/{from}/{to}/labels`.
pub async fn labels(Path((from, to)): Path<(String, String)>) -> Response {
    let (f, _) = match pair_kinds(&from, &to) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let results = spec_list(
        f,
        &[PRIMARY_CONTACT_TO_COMPANY, UNLABELED_CONTACT_TO_COMPANY],
    );
    json_response(StatusCode::OK, &json!({"results": results}))
}
