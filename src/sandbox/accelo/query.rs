//! Accelo's response configuration: `_fields` (with `_ALL`, `obj()` and `obj(field,…)`
//! expansion, nested), `_filters` (basic, `_not`, date `_before`/`_after`, ranges, `empty()`,
//! `order_by_asc/desc`, `_OR`/`_AND`), `_search`, and `_limit`/`_page`/`_offset` paging.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::store::{AcStore, Field, Obj};

/// One requested field, possibly expanded: `name` or `name(sub,…)`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldReq {
    /// Field name (`_ALL` for every field).
    pub name: String,
    /// `Some` when written with parentheses (expand the linked object).
    pub sub: Option<Vec<FieldReq>>,
}

/// A parsed filter term: `name(args…)`, where an argument may itself be a term.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A plain value.
    Val(String),
    /// A nested term (`_OR(a(1),b(2))`, `owner(staff(17))`).
    Term(Term),
}

/// A filter term.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The filter name.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Arg>,
}

/// Splits a comma-separated list at depth 0.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced `)` at position {i} in `{s}`"));
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced `(` in `{s}`"));
    }
    out.push(&s[start..]);
    Ok(out)
}

/// Parses `_fields`.
pub fn parse_fields(s: &str) -> Result<Vec<FieldReq>, String> {
    let mut out = Vec::new();
    for part in split_top(s)? {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match part.find('(') {
            None => out.push(FieldReq {
                name: part.to_string(),
                sub: None,
            }),
            Some(i) => {
                let Some(inner) = part[i + 1..].strip_suffix(')') else {
                    return Err(format!("invalid field `{part}`"));
                };
                out.push(FieldReq {
                    name: part[..i].trim().to_string(),
                    sub: Some(parse_fields(inner)?),
                });
            }
        }
    }
    Ok(out)
}

/// Parses `_filters`.
pub fn parse_filters(s: &str) -> Result<Vec<Term>, String> {
    let mut out = Vec::new();
    for part in split_top(s)? {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        out.push(parse_term(part)?);
    }
    Ok(out)
}

fn parse_term(part: &str) -> Result<Term, String> {
    let Some(i) = part.find('(') else {
        return Err(format!("invalid filter `{part}`: expected `name(value,…)`"));
    };
    let Some(inner) = part[i + 1..].strip_suffix(')') else {
        return Err(format!("invalid filter `{part}`: missing `)`"));
    };
    let mut args = Vec::new();
    for a in split_top(inner)? {
        let a = a.trim();
        if a.contains('(') {
            args.push(Arg::Term(parse_term(a)?));
        } else {
            args.push(Arg::Val(a.to_string()));
        }
    }
    Ok(Term {
        name: part[..i].trim().to_string(),
        args,
    })
}

/// Renders one object with a field selection.
pub fn render(store: &AcStore, obj: Obj, id: u64, req: &[FieldReq], hide_defaults: bool) -> Value {
    let Some(fields) = store.fields(obj, id) else {
        return Value::Null;
    };
    let all = req.iter().any(|r| r.name == "_ALL");
    let mut out = Map::new();
    let scalar = |f: &Field| -> Value {
        match f {
            Field::Val(v) => v.clone(),
            Field::Link(_, Some(i)) => Value::String(i.to_string()),
            Field::Link(_, None) => Value::Null,
        }
    };
    for (name, f) in &fields {
        let is_default = obj.defaults().contains(name);
        if (is_default && !hide_defaults) || all {
            out.insert((*name).to_string(), scalar(f));
        }
    }
    for r in req {
        if r.name == "_ALL" {
            continue;
        }
        let Some((name, f)) = fields.iter().find(|(n, _)| *n == r.name) else {
            continue;
        };
        let v = match (f, &r.sub) {
            (Field::Link(o, Some(i)), Some(sub)) => render(store, *o, *i, sub, false),
            (Field::Link(_, None), Some(_)) => Value::Null,
            _ => scalar(f),
        };
        out.insert((*name).to_string(), v);
    }
    Value::Object(out)
}

/// Direct reads of the fields filters and orders use most (no rendering of the whole object).
fn fast_value(store: &AcStore, obj: Obj, id: u64, name: &str) -> Option<Option<Vec<String>>> {
    let one = |v: Option<String>| Some(Some(v.into_iter().collect::<Vec<_>>()));
    let num = |v: i64| one(Some(v.to_string()));
    match obj {
        Obj::Company => {
            let c = store.companies.get(&id)?;
            match name {
                "id" => num(c.id as i64),
                "date_modified" => num(c.date_modified),
                "date_created" => num(c.date_created),
                "date_last_interacted" => num(c.date_last_interacted),
                "standing" => one(Some(c.standing.clone())),
                "status" => one(c.status.map(|s| s.to_string())),
                "name" => one(Some(c.name.clone())),
                "website" => one(c.website.clone()),
                _ => None,
            }
        }
        Obj::Contact => {
            let c = store.contacts.get(&id)?;
            let default_affiliation = || c.default_affiliation.and_then(|a| store.affiliation(a));
            match name {
                // Every affiliation's email (from the contact → affiliations index).
                "email" => Some(Some(
                    store
                        .affiliations_of_contact(id)
                        .filter_map(|a| a.email.clone())
                        .collect(),
                )),
                // The contact's (deprecated) mobile mirrors its default affiliation.
                "mobile" => one(default_affiliation().and_then(|a| a.mobile.clone())),
                "id" => num(c.id as i64),
                "date_modified" => num(c.date_modified),
                "date_created" => num(c.date_created),
                "date_last_interacted" => num(c.date_last_interacted),
                "standing" => one(Some(c.standing.clone())),
                "status" | "contact_status_id" => one(c.status.map(|s| s.to_string())),
                "firstname" => one(Some(c.firstname.clone())),
                "surname" => one(Some(c.surname.clone())),
                _ => None,
            }
        }
        Obj::Affiliation => {
            let a = store.affiliation(id)?;
            match name {
                "id" => num(a.id as i64),
                "date_modified" => num(a.date_modified),
                "date_last_interacted" => num(a.date_last_interacted),
                "standing" => one(Some(a.standing.clone())),
                "email" => one(a.email.clone()),
                "phone" => one(a.phone.clone()),
                "mobile" => one(a.mobile.clone()),
                "fax" => one(a.fax.clone()),
                "firstname" | "surname" => {
                    let c = store.contacts.get(&a.contact);
                    one(c.map(|c| {
                        if name == "firstname" {
                            c.firstname.clone()
                        } else {
                            c.surname.clone()
                        }
                    }))
                }
                "company" => num(a.company as i64),
                "contact" => num(a.contact as i64),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The values a filter compares against, as strings (several for `contact_number`).
fn values_of(store: &AcStore, obj: Obj, id: u64, name: &str) -> Option<Vec<String>> {
    if let Some(v) = fast_value(store, obj, id, name) {
        return v;
    }
    let fields = store.fields(obj, id)?;
    let get = |n: &str| -> Option<String> {
        fields
            .iter()
            .find(|(k, _)| *k == n)
            .and_then(|(_, f)| match f {
                Field::Val(Value::String(s)) => Some(s.clone()),
                Field::Val(Value::Null) | Field::Link(_, None) => None,
                Field::Val(v) => Some(v.to_string()),
                Field::Link(_, Some(i)) => Some(i.to_string()),
            })
    };
    let one = |n: &str| Some(get(n).into_iter().collect::<Vec<_>>());
    match (obj, name) {
        (_, "contact_number") => Some(
            ["phone", "fax", "mobile"]
                .iter()
                .filter_map(|n| get(n))
                .collect(),
        ),
        (Obj::Contact, "affiliation") => one("default_affiliation"),
        (Obj::Contact, "contact_status_id") => one("status"),
        (Obj::Contact, "fullname") => Some(vec![format!(
            "{} {}",
            get("firstname").unwrap_or_default(),
            get("surname").unwrap_or_default()
        )]),
        (Obj::Affiliation, "status") => one("affiliation_status"),
        (Obj::Address, "country_id") => one("country"),
        (Obj::Address, "state_id") => one("state"),
        _ => {
            if fields.iter().any(|(k, _)| *k == name) {
                one(name)
            } else {
                None
            }
        }
    }
}

/// The filters each list accepts (basic / date / order / range / search fields).
fn allowed(
    obj: Obj,
) -> (
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
) {
    match obj {
        Obj::Company => (
            &[
                "id",
                "status",
                "standing",
                "default_affiliation",
                "postal_address",
                "contact_number",
                "custom_id",
                "website",
                "name",
            ],
            &["date_created", "date_modified", "date_last_interacted"],
            &[
                "id",
                "date_created",
                "date_modified",
                "date_last_interacted",
                "name",
                "standing",
                "status",
                "custom_id",
            ],
            &["id", "status", "custom_id"],
        ),
        Obj::Contact => (
            &[
                "id",
                "email",
                "title",
                "standing",
                "affiliation",
                "status",
                "username",
                "contact_number",
                "firstname",
                "surname",
            ],
            &["date_created", "date_modified", "date_last_interacted"],
            &[
                "id",
                "fullname",
                "firstname",
                "username",
                "surname",
                "title",
                "contact_status_id",
                "standing",
                "date_modified",
                "date_created",
                "date_last_interacted",
            ],
            &["id", "status"],
        ),
        Obj::Affiliation => (
            &[
                "id",
                "email",
                "standing",
                "status",
                "postal_address",
                "physical_address",
                "company",
                "contact",
                "contact_number",
                "invoice_method",
                "portal_access",
                "communication",
            ],
            &["date_modified", "date_last_interacted"],
            &[
                "id",
                "status",
                "standing",
                "date_modified",
                "date_last_interacted",
                "fullname",
            ],
            &["id"],
        ),
        Obj::Address => (
            &[
                "id",
                "against_type",
                "against_id",
                "physical",
                "postal",
                "country_id",
                "state_id",
                "zipcode",
            ],
            &["date_modified"],
            &["id", "title"],
            &["id"],
        ),
        Obj::CompanyStatus | Obj::ContactStatus => (
            &["id", "title", "standing", "color"],
            &[],
            &["id", "title", "standing", "color", "ordering"],
            &["id"],
        ),
        Obj::State | Obj::Country => (&["id", "title"], &[], &["id", "title"], &["id"]),
    }
}

/// Fields `_search` looks in.
fn search_fields(obj: Obj) -> &'static [&'static str] {
    match obj {
        Obj::Company => &["website", "name", "phone", "fax"],
        Obj::Contact => &["firstname", "surname", "email", "mobile"],
        Obj::Affiliation => &["firstname", "surname", "fax", "phone", "mobile", "email"],
        Obj::CompanyStatus | Obj::ContactStatus => &["title"],
        _ => &[],
    }
}

/// A compiled list query.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    terms: Vec<Term>,
    order: Option<(String, bool)>,
    search: Option<String>,
}

impl ListQuery {
    /// Validates `_filters` and `_search` for a list of `obj`.
    pub fn compile(
        obj: Obj,
        filters: Option<&str>,
        search: Option<&str>,
    ) -> Result<ListQuery, String> {
        let mut q = ListQuery {
            search: search.map(str::to_lowercase).filter(|s| !s.is_empty()),
            ..Default::default()
        };
        let Some(f) = filters else {
            return Ok(q);
        };
        let mut terms: Vec<Term> = Vec::new();
        for t in parse_filters(f)? {
            check_term(obj, &t, true)?;
            match t.name.as_str() {
                "order_by_asc" | "order_by_desc" => {
                    let Some(Arg::Val(field)) = t.args.first() else {
                        return Err(format!("`{}` needs a field", t.name));
                    };
                    q.order = Some((field.clone(), t.name == "order_by_asc"));
                }
                "search" => {
                    if let Some(Arg::Val(v)) = t.args.first() {
                        q.search = Some(v.to_lowercase());
                    }
                }
                _ => {
                    // The same filter twice: only the last counts.
                    terms.retain(|x| x.name != t.name);
                    terms.push(t);
                }
            }
        }
        q.terms = terms;
        Ok(q)
    }

    /// The ids that can match, ascending, when an index narrows them: an affiliation list
    /// filtered by `contact(…)` or `company(…)` reads those owners' affiliations instead of
    /// scanning every affiliation (the filters are still applied to each candidate).
    pub fn candidates(&self, store: &AcStore, obj: Obj) -> Option<Vec<u64>> {
        if obj != Obj::Affiliation {
            return None;
        }
        let t = self
            .terms
            .iter()
            .find(|t| t.name == "contact" || t.name == "company")?;
        let mut ids: Vec<u64> = t
            .args
            .iter()
            .filter_map(|a| match a {
                Arg::Val(v) => v.trim().parse::<u64>().ok(),
                Arg::Term(_) => None,
            })
            .flat_map(|owner| {
                let it: Box<dyn Iterator<Item = u64>> = if t.name == "contact" {
                    Box::new(store.affiliations_of_contact(owner).map(|a| a.id))
                } else {
                    Box::new(store.affiliations_of_company(owner).map(|a| a.id))
                };
                it
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }

    /// One page of matching ids: without an order it stops scanning once the page is full.
    pub fn page(
        &self,
        store: &AcStore,
        obj: Obj,
        ids: impl Iterator<Item = u64>,
        start: usize,
        limit: usize,
    ) -> Vec<u64> {
        if self.order.is_some() {
            return self
                .run(store, obj, ids)
                .into_iter()
                .skip(start)
                .take(limit)
                .collect();
        }
        ids.filter(|id| self.matches(store, obj, *id))
            .skip(start)
            .take(limit)
            .collect()
    }

    fn matches(&self, store: &AcStore, obj: Obj, id: u64) -> bool {
        self.terms.iter().all(|t| eval(store, obj, id, t))
            && self.search.as_ref().is_none_or(|s| {
                search_fields(obj).iter().any(|f| {
                    values_of(store, obj, id, f)
                        .unwrap_or_default()
                        .iter()
                        .any(|v| v.to_lowercase().contains(s.as_str()))
                })
            })
    }

    /// Filters, orders and returns the matching ids.
    pub fn run(&self, store: &AcStore, obj: Obj, ids: impl Iterator<Item = u64>) -> Vec<u64> {
        let mut hits: Vec<u64> = ids.filter(|id| self.matches(store, obj, *id)).collect();
        if let Some((field, asc)) = &self.order {
            let mut keyed: Vec<(Option<SortKey>, u64)> = hits
                .iter()
                .map(|id| {
                    let v = values_of(store, obj, *id, field).and_then(|v| v.into_iter().next());
                    (v.map(|s| SortKey::of(&s)), *id)
                })
                .collect();
            keyed.sort_by(|(a, ia), (b, ib)| {
                let o = match (a, b) {
                    (Some(a), Some(b)) => a.cmp(b),
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                let o = if *asc { o } else { o.reverse() };
                o.then(ia.cmp(ib))
            });
            hits = keyed.into_iter().map(|(_, id)| id).collect();
        }
        hits
    }
}

#[derive(Debug, PartialEq, PartialOrd)]
enum SortKey {
    Num(f64),
    Text(String),
}

impl SortKey {
    fn of(s: &str) -> SortKey {
        match s.parse::<f64>() {
            Ok(n) => SortKey::Num(n),
            Err(_) => SortKey::Text(s.to_lowercase()),
        }
    }

    fn cmp(&self, other: &SortKey) -> Ordering {
        self.partial_cmp(other).unwrap_or(Ordering::Equal)
    }
}

const RANGE_SUFFIXES: &[&str] = &[
    "_greater_than_or_equal",
    "_less_than_or_equal",
    "_greater_than",
    "_less_than",
];

fn check_term(obj: Obj, t: &Term, top: bool) -> Result<(), String> {
    let (basic, date, order, range) = allowed(obj);
    let name = t.name.as_str();
    let unknown = || {
        Err(format!(
            "the filter `{name}` is not supported on {} (basic filters: {}; date filters: {}; \
             order by: {}; ranges: {})",
            obj.resource(),
            basic.join(", "),
            date.join(", "),
            order.join(", "),
            range.join(", ")
        ))
    };
    match name {
        "_OR" | "_AND" => {
            if name == "_AND" && top {
                return Err("`_AND` may only appear inside `_OR`".into());
            }
            for a in &t.args {
                match a {
                    Arg::Term(inner) => {
                        if inner.name == "_OR" {
                            return Err("nested `_OR` is not supported".into());
                        }
                        check_term(obj, inner, false)?;
                    }
                    Arg::Val(v) => return Err(format!("`{name}` takes filters, not `{v}`")),
                }
            }
            Ok(())
        }
        "order_by_asc" | "order_by_desc" => match t.args.first() {
            Some(Arg::Val(f)) if order.contains(&f.as_str()) => Ok(()),
            Some(Arg::Val(f)) => Err(format!(
                "cannot order {} by `{f}` (allowed: {})",
                obj.resource(),
                order.join(", ")
            )),
            _ => Err(format!("`{name}` needs a field")),
        },
        "empty" => match t.args.first() {
            Some(Arg::Val(f)) if basic.contains(&f.as_str()) => Ok(()),
            _ => unknown(),
        },
        "search" => Ok(()),
        _ => {
            let base = name.strip_suffix("_not").unwrap_or(name);
            if basic.contains(&base) {
                return Ok(());
            }
            if let Some(f) = name
                .strip_suffix("_before")
                .or_else(|| name.strip_suffix("_after"))
                && date.contains(&f)
            {
                if !t
                    .args
                    .iter()
                    .all(|a| matches!(a, Arg::Val(v) if v.parse::<i64>().is_ok()))
                {
                    return Err(format!("`{name}` takes a unix timestamp"));
                }
                return Ok(());
            }
            for suf in RANGE_SUFFIXES {
                if let Some(f) = name.strip_suffix(suf)
                    && range.contains(&f)
                {
                    return Ok(());
                }
            }
            unknown()
        }
    }
}

fn eval(store: &AcStore, obj: Obj, id: u64, t: &Term) -> bool {
    let name = t.name.as_str();
    let vals = |f: &str| values_of(store, obj, id, f).unwrap_or_default();
    let args: Vec<String> = t
        .args
        .iter()
        .filter_map(|a| match a {
            Arg::Val(v) => Some(v.to_lowercase()),
            Arg::Term(_) => None,
        })
        .collect();
    match name {
        "_OR" => t.args.iter().any(|a| match a {
            Arg::Term(inner) => eval(store, obj, id, inner),
            Arg::Val(_) => false,
        }),
        "_AND" => t.args.iter().all(|a| match a {
            Arg::Term(inner) => eval(store, obj, id, inner),
            Arg::Val(_) => true,
        }),
        "empty" => args
            .first()
            .is_some_and(|f| vals(f).iter().all(|v| v.is_empty())),
        "search" => true,
        _ => {
            if let Some(f) = name.strip_suffix("_before") {
                let Some(ts) = args.first().and_then(|a| a.parse::<i64>().ok()) else {
                    return false;
                };
                return vals(f)
                    .iter()
                    .any(|v| v.parse::<i64>().is_ok_and(|x| x < ts));
            }
            if let Some(f) = name.strip_suffix("_after") {
                let Some(ts) = args.first().and_then(|a| a.parse::<i64>().ok()) else {
                    return false;
                };
                return vals(f)
                    .iter()
                    .any(|v| v.parse::<i64>().is_ok_and(|x| x > ts));
            }
            for suf in RANGE_SUFFIXES {
                if let Some(f) = name.strip_suffix(suf)
                    && allowed(obj).3.contains(&f)
                {
                    let Some(bound) = args.first().and_then(|a| a.parse::<f64>().ok()) else {
                        return false;
                    };
                    return vals(f).iter().any(|v| {
                        v.parse::<f64>().is_ok_and(|x| match *suf {
                            "_greater_than_or_equal" => x >= bound,
                            "_less_than_or_equal" => x <= bound,
                            "_greater_than" => x > bound,
                            _ => x < bound,
                        })
                    });
                }
            }
            let (base, negate) = match name.strip_suffix("_not") {
                Some(b) => (b, true),
                None => (name, false),
            };
            let hit = vals(base)
                .iter()
                .any(|v| args.iter().any(|a| v.to_lowercase() == *a));
            hit != negate
        }
    }
}

/// Paging: `_limit` (default 10, capped at 100), `_page` (0-based) overriding `_offset`.
pub fn page_bounds(
    limit: Option<&str>,
    page: Option<&str>,
    offset: Option<&str>,
) -> Result<(usize, usize), String> {
    let limit = match limit {
        None => 10,
        Some(s) => s
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("invalid _limit `{s}`"))?
            .clamp(1, 100),
    };
    let start = match (page, offset) {
        (Some(p), _) => {
            p.trim()
                .parse::<usize>()
                .map_err(|_| format!("invalid _page `{p}`"))?
                * limit
        }
        (None, Some(o)) => o
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("invalid _offset `{o}`"))?,
        (None, None) => 0,
    };
    Ok((start, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_with_nesting() {
        let f =
            parse_fields("website,status(standing),postal_address(state(),country(title)),_ALL")
                .unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[1].name, "status");
        assert_eq!(f[1].sub.as_ref().unwrap()[0].name, "standing");
        let pa = f[2].sub.as_ref().unwrap();
        assert_eq!(pa[0].name, "state");
        assert_eq!(pa[0].sub, Some(vec![]));
        assert!(parse_fields("status(").is_err());
    }

    #[test]
    fn filters_parse_and_check() {
        let t = parse_filters("id(1,2),date_modified_after(1700000000),order_by_desc(date_modified),_OR(standing(active),_AND(status(2),standing(potential)))").unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].args, vec![Arg::Val("1".into()), Arg::Val("2".into())]);
        assert!(
            ListQuery::compile(
                Obj::Company,
                Some("id(1),date_modified_after(5),order_by_desc(date_modified)"),
                None
            )
            .is_ok()
        );
        assert!(ListQuery::compile(Obj::Company, Some("bogus(1)"), None).is_err());
        assert!(
            ListQuery::compile(Obj::Company, Some("date_modified_after(yesterday)"), None).is_err()
        );
        assert!(ListQuery::compile(Obj::Company, Some("order_by_asc(phone)"), None).is_err());
        assert!(
            ListQuery::compile(
                Obj::Contact,
                Some("email(a@b.c),standing_not(inactive)"),
                None
            )
            .is_ok()
        );
        assert!(ListQuery::compile(Obj::Company, Some("_AND(id(1))"), None).is_err());
    }

    #[test]
    fn paging_caps_the_limit() {
        assert_eq!(page_bounds(None, None, None).unwrap(), (0, 10));
        assert_eq!(
            page_bounds(Some("500"), Some("2"), None).unwrap(),
            (200, 100)
        );
        assert_eq!(page_bounds(Some("20"), None, Some("7")).unwrap(), (7, 20));
        assert!(page_bounds(Some("x"), None, None).is_err());
    }
}
