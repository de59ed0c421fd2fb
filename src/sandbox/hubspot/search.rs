//! `POST /crm/v3/objects/{objectType}/search`: filter groups (OR of ANDs) with the documented
//! operators, one sort, `query` text search, `limit` ≤ 200, the 10,000-result paging cap and
//! `total`. Limits: 5 groups, 6 filters per group, 18 filters in all (the strictest documented).
//! With the `search_lag_ms` fault, records written less than that long ago are not found yet
//! (HubSpot's search is eventually consistent; the notes say "may take a few moments").

use std::cmp::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::props::PropType;
use super::store::{HsStore, Kind, Record};
use super::{Hs, error, parse_body, unknown_object};
use crate::common::{json_response, parse_time_ms, value_to_string};

/// Maximum page size of a search.
pub const SEARCH_LIMIT: usize = 200;
/// Results reachable by paging.
pub const SEARCH_CAP: usize = 10_000;

#[derive(Debug, Deserialize)]
struct FilterIn {
    #[serde(rename = "propertyName")]
    property: String,
    operator: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    values: Option<Vec<Value>>,
    #[serde(rename = "highValue", default)]
    high: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct GroupIn {
    #[serde(default)]
    filters: Vec<FilterIn>,
}

#[derive(Debug, Deserialize)]
struct SearchIn {
    #[serde(rename = "filterGroups", default)]
    groups: Vec<GroupIn>,
    #[serde(default)]
    sorts: Vec<Value>,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
    #[serde(default)]
    query: Option<String>,
}

/// How a property compares in filters and sorts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Text,
    Exact,
    Numeric,
    Time,
}

fn cmp_kind(store: &HsStore, kind: Kind, prop: &str) -> Option<Cmp> {
    if prop == "hs_object_id" {
        return Some(Cmp::Numeric);
    }
    store.obj(kind).catalogue.get(prop).map(|d| match d.kind {
        PropType::String => Cmp::Text,
        PropType::Enumeration | PropType::Bool => Cmp::Exact,
        PropType::Number => Cmp::Numeric,
        PropType::Date | PropType::DateTime => Cmp::Time,
    })
}

fn compare(c: Cmp, stored: &str, given: &str) -> Option<Ordering> {
    match c {
        Cmp::Text => Some(stored.to_lowercase().cmp(&given.to_lowercase())),
        Cmp::Exact => Some(stored.cmp(given)),
        Cmp::Numeric => {
            let a = stored.trim().parse::<f64>().ok()?;
            let b = given.trim().parse::<f64>().ok()?;
            a.partial_cmp(&b)
        }
        Cmp::Time => Some(parse_time_ms(stored)?.cmp(&parse_time_ms(given)?)),
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    // `*` matches any run of characters.
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn contains_token(stored: &str, token: &str) -> bool {
    let s = stored.to_lowercase();
    let t = token.to_lowercase();
    if t.contains('*') {
        return glob(&t, &s)
            || s.split(|c: char| c.is_whitespace() || c == ';' || c == ',')
                .any(|w| glob(&t, w));
    }
    s == t
        || s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .any(|w| w == t)
}

/// A compiled filter.
struct Filter {
    prop: String,
    op: String,
    cmp: Cmp,
    value: Option<String>,
    values: Vec<String>,
    high: Option<String>,
}

/// System properties held as numbers on the record: no string parsing needed.
fn system_number(kind: Kind, rec: &Record, prop: &str) -> Option<f64> {
    if prop == "hs_object_id" {
        Some(rec.id as f64)
    } else if prop == "createdate" {
        Some(rec.created_ms as f64)
    } else if prop == kind.modified_prop() {
        Some(rec.updated_ms as f64)
    } else {
        None
    }
}

fn given_number(c: Cmp, v: &str) -> Option<f64> {
    match c {
        Cmp::Time => parse_time_ms(v).map(|t| t as f64),
        _ => v.trim().parse::<f64>().ok(),
    }
}

fn matches(store: &HsStore, kind: Kind, rec: &Record, f: &Filter) -> bool {
    if let Some(n) = system_number(kind, rec, &f.prop)
        && let (Some(v), false) = (
            f.value.as_deref().and_then(|v| given_number(f.cmp, v)),
            matches!(
                f.op.as_str(),
                "IN" | "NOT_IN" | "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN"
            ),
        )
    {
        let high = f.high.as_deref().and_then(|h| given_number(f.cmp, h));
        return match f.op.as_str() {
            "EQ" => n == v,
            "NEQ" => n != v,
            "LT" => n < v,
            "LTE" => n <= v,
            "GT" => n > v,
            "GTE" => n >= v,
            "BETWEEN" => high.is_some_and(|h| n >= v && n <= h),
            "HAS_PROPERTY" => true,
            "NOT_HAS_PROPERTY" => false,
            _ => false,
        };
    }
    if let Some(other) = f.prop.strip_prefix("associations.") {
        let linked: Vec<String> = match Kind::parse(other) {
            Some(o) if o == kind.other() => store
                .associations_of(kind, rec.id)
                .into_iter()
                .map(|(id, _)| id.to_string())
                .collect(),
            _ => vec![],
        };
        let want = f.value.clone().unwrap_or_default();
        return match f.op.as_str() {
            "EQ" => linked.contains(&want),
            "NEQ" => !linked.contains(&want),
            "IN" => f.values.iter().any(|v| linked.contains(v)),
            "HAS_PROPERTY" => !linked.is_empty(),
            "NOT_HAS_PROPERTY" => linked.is_empty(),
            _ => false,
        };
    }
    let stored = rec.props.get(&f.prop).map(String::as_str);
    let eq = |given: &str| -> bool {
        stored.is_some_and(|s| compare(f.cmp, s, given) == Some(Ordering::Equal))
    };
    let ord =
        |given: &Option<String>| -> Option<Ordering> { compare(f.cmp, stored?, given.as_deref()?) };
    // IN / NOT_IN on strings compare the lower-cased stored value with the values as given.
    let in_list = |s: &str| -> bool {
        match f.cmp {
            Cmp::Text => f.values.iter().any(|v| s.to_lowercase() == *v),
            c => f
                .values
                .iter()
                .any(|v| compare(c, s, v) == Some(Ordering::Equal)),
        }
    };
    match f.op.as_str() {
        "EQ" => eq(f.value.as_deref().unwrap_or_default()),
        "NEQ" => !eq(f.value.as_deref().unwrap_or_default()),
        "LT" => ord(&f.value) == Some(Ordering::Less),
        "LTE" => matches!(ord(&f.value), Some(Ordering::Less | Ordering::Equal)),
        "GT" => ord(&f.value) == Some(Ordering::Greater),
        "GTE" => matches!(ord(&f.value), Some(Ordering::Greater | Ordering::Equal)),
        "BETWEEN" => {
            matches!(ord(&f.value), Some(Ordering::Greater | Ordering::Equal))
                && matches!(ord(&f.high), Some(Ordering::Less | Ordering::Equal))
        }
        "IN" => stored.is_some_and(in_list),
        "NOT_IN" => !stored.is_some_and(in_list),
        "HAS_PROPERTY" => stored.is_some(),
        "NOT_HAS_PROPERTY" => stored.is_none(),
        "CONTAINS_TOKEN" => {
            stored.is_some_and(|s| contains_token(s, f.value.as_deref().unwrap_or("")))
        }
        "NOT_CONTAINS_TOKEN" => {
            !stored.is_some_and(|s| contains_token(s, f.value.as_deref().unwrap_or("")))
        }
        _ => false,
    }
}

fn query_props(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Companies => &["name", "domain", "website", "phone"],
        Kind::Contacts => &[
            "firstname",
            "lastname",
            "email",
            "phone",
            "mobilephone",
            "company",
            "hs_additional_emails",
        ],
    }
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

/// `POST /crm/v3/objects/{objectType}/search`.
pub async fn search(
    State(hs): State<Arc<Hs>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let Some(kind) = Kind::parse(&object) else {
        return unknown_object(&object);
    };
    let input: SearchIn = match parse_body(&body) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let limit = match input.limit.as_ref().map(value_to_string) {
        None => 10,
        Some(Some(s)) => match s.parse::<usize>() {
            Ok(n) if n <= SEARCH_LIMIT => n.max(1),
            Ok(n) => {
                return bad(format!(
                    "Limit {n} exceeds the maximum of {SEARCH_LIMIT} results per page"
                ));
            }
            Err(_) => return bad(format!("Invalid limit {s}")),
        },
        Some(None) => return bad("Invalid limit"),
    };
    let after = match input.after.as_ref().map(value_to_string) {
        None => 0,
        Some(Some(s)) if s.is_empty() => 0,
        Some(Some(s)) => match s.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return bad(format!("Invalid after {s}")),
        },
        Some(None) => return bad("Invalid after"),
    };
    if after >= SEARCH_CAP {
        return bad(format!(
            "The search cannot page past {SEARCH_CAP} results (after was {after})"
        ));
    }
    if input
        .query
        .as_deref()
        .is_some_and(|q| q.chars().count() > 3000)
    {
        return bad("query is longer than 3000 characters");
    }
    if input.groups.len() > 5 {
        return bad(format!(
            "Too many filter groups: {} given, at most 5 are allowed",
            input.groups.len()
        ));
    }
    let total_filters: usize = input.groups.iter().map(|g| g.filters.len()).sum();
    if input.groups.iter().any(|g| g.filters.len() > 6) {
        return bad("Too many filters in a group: at most 6 are allowed per filter group");
    }
    if total_filters > 18 {
        return bad(format!(
            "Too many filters: {total_filters} given, at most 18 are allowed in total"
        ));
    }
    if input.sorts.len() > 1 {
        return bad("Only one sort is allowed");
    }
    let store = hs.read();
    // Compile filters.
    let mut groups: Vec<Vec<Filter>> = Vec::new();
    for g in &input.groups {
        let mut fs = Vec::new();
        for f in &g.filters {
            const OPS: &[&str] = &[
                "EQ",
                "NEQ",
                "LT",
                "LTE",
                "GT",
                "GTE",
                "BETWEEN",
                "IN",
                "NOT_IN",
                "HAS_PROPERTY",
                "NOT_HAS_PROPERTY",
                "CONTAINS_TOKEN",
                "NOT_CONTAINS_TOKEN",
            ];
            if !OPS.contains(&f.operator.as_str()) {
                return bad(format!("Unknown filter operator {}", f.operator));
            }
            let cmp = if f.property.starts_with("associations.") {
                Cmp::Exact
            } else {
                match cmp_kind(&store, kind, &f.property) {
                    Some(c) => c,
                    None => {
                        return bad(format!(
                            "There was a problem with the request: Property {} does not exist on {}",
                            f.property,
                            kind.as_str()
                        ));
                    }
                }
            };
            let value = f.value.as_ref().and_then(value_to_string);
            let needs_value = !matches!(
                f.operator.as_str(),
                "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN"
            );
            if needs_value && value.is_none() {
                return bad(format!(
                    "Filter on {} with operator {} needs a value",
                    f.property, f.operator
                ));
            }
            let values: Vec<String> = f
                .values
                .as_ref()
                .map(|vs| vs.iter().filter_map(value_to_string).collect())
                .unwrap_or_default();
            if matches!(f.operator.as_str(), "IN" | "NOT_IN") && values.is_empty() {
                return bad(format!(
                    "Filter on {} with operator {} needs values",
                    f.property, f.operator
                ));
            }
            let high = f.high.as_ref().and_then(value_to_string);
            if f.operator == "BETWEEN" && high.is_none() {
                return bad(format!("BETWEEN filter on {} needs highValue", f.property));
            }
            fs.push(Filter {
                prop: f.property.clone(),
                op: f.operator.clone(),
                cmp,
                value,
                values,
                high,
            });
        }
        groups.push(fs);
    }
    // Sort.
    let sort: Option<(String, bool)> = match input.sorts.first() {
        None => None,
        Some(Value::String(s)) => Some(match s.strip_prefix('-') {
            Some(p) => (p.to_string(), false),
            None => (s.clone(), true),
        }),
        Some(Value::Object(o)) => {
            let Some(p) = o.get("propertyName").and_then(Value::as_str) else {
                return bad("A sort needs propertyName");
            };
            let asc = !o
                .get("direction")
                .and_then(Value::as_str)
                .is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING"));
            Some((p.to_string(), asc))
        }
        Some(_) => return bad("Invalid sort"),
    };
    if let Some((p, _)) = &sort
        && cmp_kind(&store, kind, p).is_none()
    {
        return bad(format!("Cannot sort by unknown property {p}"));
    }
    let q = input
        .query
        .as_deref()
        .map(str::to_lowercase)
        .filter(|q| !q.is_empty());
    let obj = store.obj(kind);
    // Eventual consistency (`search_lag_ms`): the index has not caught up with recent writes.
    let lag = i64::try_from(hs.faults.search_lag_ms()).unwrap_or(i64::MAX);
    let indexed_before = hs.clock.now_ms().saturating_sub(lag);
    let mut hits: Vec<&Record> = obj
        .records
        .values()
        .filter(|r| r.archived_ms.is_none())
        .filter(|r| lag == 0 || r.updated_ms <= indexed_before)
        .filter(|r| {
            groups.is_empty()
                || groups
                    .iter()
                    .any(|g| g.iter().all(|f| matches(&store, kind, r, f)))
        })
        .filter(|r| {
            q.as_ref().is_none_or(|q| {
                query_props(kind).iter().any(|p| {
                    r.props
                        .get(*p)
                        .is_some_and(|v| v.to_lowercase().contains(q.as_str()))
                })
            })
        })
        .collect();
    match &sort {
        None => hits.sort_by_key(|r| (r.created_ms, r.id)),
        Some((p, asc)) => {
            let c = cmp_kind(&store, kind, p).unwrap_or(Cmp::Text);
            // Precompute keys once.
            let mut keyed: Vec<(Option<SortKey>, &Record)> = hits
                .into_iter()
                .map(|r| {
                    let key = match system_number(kind, r, p) {
                        Some(n) => Some(SortKey::Num(n)),
                        None => r.props.get(p).and_then(|v| SortKey::of(c, v)),
                    };
                    (key, r)
                })
                .collect();
            keyed.sort_by(|(ka, ra), (kb, rb)| {
                let o = match (ka, kb) {
                    (Some(a), Some(b)) => a.cmp(b),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                let o = if *asc { o } else { o.reverse() };
                o.then(ra.id.cmp(&rb.id))
            });
            hits = keyed.into_iter().map(|(_, r)| r).collect();
        }
    }
    let total = hits.len();
    let end = (after + limit).min(total).min(SEARCH_CAP);
    let page: Vec<Value> = hits
        .get(after.min(total)..end)
        .unwrap_or_default()
        .iter()
        .map(|r| super::api::render(&store, kind, r, input.properties.as_deref(), &[]))
        .collect();
    let mut body = json!({"total": total, "results": page});
    if after + limit < total {
        body["paging"] = json!({"next": {"after": (after + limit).to_string()}});
    }
    json_response(StatusCode::OK, &body)
}

/// A precomputed sort key.
#[derive(Debug, PartialEq, PartialOrd)]
enum SortKey {
    Num(f64),
    Text(String),
}

impl SortKey {
    fn of(c: Cmp, v: &str) -> Option<SortKey> {
        match c {
            Cmp::Numeric => v.trim().parse::<f64>().ok().map(SortKey::Num),
            Cmp::Time => parse_time_ms(v).map(|t| SortKey::Num(t as f64)),
            Cmp::Text => Some(SortKey::Text(v.to_lowercase())),
            Cmp::Exact => Some(SortKey::Text(v.to_string())),
        }
    }

    fn cmp(&self, other: &SortKey) -> Ordering {
        self.partial_cmp(other).unwrap_or(Ordering::Equal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_wildcards() {
        assert!(contains_token("anna@hubspot.com", "*@hubspot.com"));
        assert!(!contains_token("anna@other.com", "*@hubspot.com"));
        assert!(contains_token("Blue Harbor Logistics", "harbor"));
        assert!(!contains_token("Blue Harbor Logistics", "harb"));
        assert!(contains_token("Blue Harbor Logistics", "harb*"));
    }

    #[test]
    fn comparisons_follow_the_property_type() {
        assert_eq!(compare(Cmp::Text, "ACME", "acme"), Some(Ordering::Equal));
        assert_eq!(compare(Cmp::Exact, "Lead", "lead"), Some(Ordering::Less));
        assert_eq!(compare(Cmp::Numeric, "10", "9"), Some(Ordering::Greater));
        assert_eq!(
            compare(Cmp::Time, "2024-01-02T00:00:00.000Z", "1704153600000"),
            Some(Ordering::Equal)
        );
    }
}
