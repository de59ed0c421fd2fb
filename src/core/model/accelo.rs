//! The shape of Accelo record documents as the rest of Tandem sees them (the connector builds
//! them, rules read them): every field by dotted path, the writable ones marked, and the nested
//! objects that are always present when rules read a record.

use super::Object;

/// One field of an Accelo record document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceloField {
    /// Dotted path from the document root (`postal_address.city`) — the write key when
    /// writable.
    pub path: &'static str,
    /// Tandem may write it through a field mapping.
    pub writable: bool,
    /// A nested object (`postal_address`), not a value.
    pub object: bool,
}

const fn f(path: &'static str, writable: bool) -> AcceloField {
    AcceloField {
        path,
        writable,
        object: false,
    }
}

const fn obj(path: &'static str) -> AcceloField {
    AcceloField {
        path,
        writable: false,
        object: true,
    }
}

const ACCELO_COMPANY: &[AcceloField] = &[
    f("id", false),
    f("name", true),
    f("website", true),
    f("phone", true),
    f("fax", true),
    f("comments", true),
    f("custom_id", false),
    f("standing", false),
    f("date_created", false),
    f("date_modified", false),
    f("date_last_interacted", false),
    obj("status"),
    f("status.id", false),
    f("status.title", false),
    f("status.standing", false),
    obj("postal_address"),
    f("postal_address.id", false),
    f("postal_address.full", false),
    f("postal_address.street1", true),
    f("postal_address.street2", true),
    f("postal_address.city", true),
    f("postal_address.zipcode", true),
    f("postal_address.state", true),
    f("postal_address.country", true),
];

const ACCELO_CONTACT: &[AcceloField] = &[
    f("id", false),
    f("firstname", true),
    f("middlename", true),
    f("surname", true),
    f("title", true),
    f("comments", true),
    f("standing", false),
    f("date_created", false),
    f("date_modified", false),
    f("date_last_interacted", false),
    obj("status"),
    f("status.id", false),
    f("status.title", false),
    f("status.standing", false),
    obj("affiliation"),
    f("affiliation.id", false),
    f("affiliation.email", true),
    f("affiliation.phone", true),
    f("affiliation.mobile", true),
    f("affiliation.fax", true),
    f("affiliation.position", true),
    f("affiliation.standing", false),
    f("affiliation.date_modified", false),
    obj("company"),
    f("company.id", false),
    f("company.name", false),
];

/// Every field of an Accelo `object` document.
pub fn accelo_fields(object: Object) -> &'static [AcceloField] {
    match object {
        Object::Company => ACCELO_COMPANY,
        Object::Contact => ACCELO_CONTACT,
    }
}

/// The field at dotted `path`.
pub fn accelo_field(object: Object, path: &str) -> Option<AcceloField> {
    accelo_fields(object)
        .iter()
        .copied()
        .find(|f| f.path == path)
}

/// The nested objects of an Accelo document (always present, possibly empty, when rules read
/// a record: `record.postal_address.city` is `()` rather than an error when there is none).
pub fn accelo_nested(object: Object) -> impl Iterator<Item = &'static str> {
    accelo_fields(object)
        .iter()
        .filter(|f| f.object)
        .map(|f| f.path)
}

/// The Accelo write key of the status (its value is a status title).
pub const ACCELO_STATUS_KEY: &str = "status";

/// The names of a singular name-selector JSONPath (`$.a.b`, `$['a']["b"]`), or `None` for any
/// other path (wildcards, filters, indexes, descendants).
pub fn name_segments(path: &str) -> Option<Vec<String>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if r.starts_with('.') {
                return None;
            }
            let end = r
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || !c.is_ascii()))
                .map_or(r.len(), |(i, _)| i);
            if end == 0 || r.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            out.push(r[..end].to_string());
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let r = r.trim_start();
            let quote = r.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            let r = &r[1..];
            let end = r.find(quote)?;
            let name = &r[..end];
            if name.contains('\\') {
                return None;
            }
            let after = r[end + 1..].trim_start().strip_prefix(']')?;
            out.push(name.to_string());
            rest = after;
        } else {
            return None;
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_paths() {
        assert_eq!(
            name_segments("$.affiliation.email"),
            Some(vec!["affiliation".into(), "email".into()])
        );
        assert_eq!(
            name_segments("$['postal_address'][\"city\"]"),
            Some(vec!["postal_address".into(), "city".into()])
        );
        assert_eq!(name_segments("$"), None);
        assert_eq!(name_segments("$..email"), None);
        assert_eq!(name_segments("$.a[0]"), None);
        assert_eq!(name_segments("$.a[*]"), None);
        assert_eq!(name_segments("name"), None);
    }
}
