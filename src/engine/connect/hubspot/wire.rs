//! HubSpot CRM v3/v4 wire types (request and response bodies) and their conversion to
//! [`Record`]. Nothing here leaves the HubSpot connector.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connect::de;
use tandem_core::model::{Object, Record, System};

/// `SimplePublicObject` (list, get, batch, search results).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Obj {
    #[serde(deserialize_with = "de::id")]
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub associations: Option<BTreeMap<String, AssocList>>,
    #[serde(default)]
    pub object_write_trace_id: Option<String>,
}

/// The `associations.{type}` block of a v3 object.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AssocList {
    #[serde(default)]
    pub results: Vec<AssocRef>,
}

/// One associated record.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AssocRef {
    #[serde(deserialize_with = "de::id")]
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// `{results, paging}` of a list or search.
#[derive(Debug, Deserialize)]
pub(crate) struct Collection {
    #[serde(default)]
    pub results: Vec<Obj>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextPage {
    #[serde(deserialize_with = "de::id")]
    pub after: String,
}

impl Collection {
    pub(crate) fn next_after(&self) -> Option<String> {
        self.paging
            .as_ref()
            .and_then(|p| p.next.as_ref())
            .map(|n| n.after.clone())
    }
}

/// `BatchResponseSimplePublicObject[WithErrors]`.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchAnswer {
    #[serde(default)]
    pub results: Vec<Obj>,
    #[serde(default)]
    pub errors: Vec<StandardError>,
}

/// v4 association batch answers: results are not objects, only errors matter.
#[derive(Debug, Deserialize)]
pub(crate) struct AssocBatchAnswer {
    #[serde(default)]
    pub errors: Vec<StandardError>,
}

/// `StandardError` (batch `errors[]`) and the top-level error body.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StandardError {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, Value>,
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<String>,
}

impl StandardError {
    /// The strings of one context entry (HubSpot sends arrays of strings; a bare string is
    /// accepted too).
    pub(crate) fn context_values(&self, key: &str) -> Vec<String> {
        match self.context.get(key) {
            Some(Value::Array(a)) => a.iter().filter_map(de::scalar_string).collect(),
            Some(v) => de::scalar_string(v).into_iter().collect(),
            None => Vec::new(),
        }
    }
}

/// `{"id": …}` of batch read / archive inputs.
#[derive(Debug, Serialize)]
pub(crate) struct IdInput<'a> {
    pub id: &'a str,
}

/// The body of `batch/read`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchRead<'a> {
    pub inputs: Vec<IdInput<'a>>,
    pub properties: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_property: Option<&'a str>,
}

/// An association to make on create, or through v4 batch create.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssocType {
    pub association_category: &'static str,
    pub association_type_id: u32,
}

/// The primary contact→company association (typeId 1).
pub(crate) const PRIMARY_CONTACT_TO_COMPANY: AssocType = AssocType {
    association_category: "HUBSPOT_DEFINED",
    association_type_id: 1,
};

#[derive(Debug, Serialize)]
pub(crate) struct AssocTo<'a> {
    pub id: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct CreateAssoc<'a> {
    pub to: AssocTo<'a>,
    pub types: Vec<AssocType>,
}

/// One input of `batch/create`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateIn<'a> {
    pub properties: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub associations: Vec<CreateAssoc<'a>>,
    pub object_write_trace_id: &'a str,
}

/// One input of `batch/update`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateIn<'a> {
    pub id: &'a str,
    pub properties: BTreeMap<&'a str, &'a str>,
    pub object_write_trace_id: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct Inputs<T> {
    pub inputs: Vec<T>,
}

/// One input of v4 `associations/{from}/{to}/batch/create`.
#[derive(Debug, Serialize)]
pub(crate) struct AssocIn<'a> {
    pub from: AssocTo<'a>,
    pub to: AssocTo<'a>,
    pub types: Vec<AssocType>,
}

/// The property holding a record's last-modified time.
pub(crate) fn modified_property(object: Object) -> &'static str {
    match object {
        Object::Company => "hs_lastmodifieddate",
        Object::Contact => "lastmodifieddate",
    }
}

/// An ISO-8601 time or epoch milliseconds as unix milliseconds.
pub(crate) fn parse_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Obj {
    /// The record in the shared shape: the flat property map without blank values; `updated_at`
    /// from `updatedAt` (or the last-modified property); a contact's company from its primary
    /// company association, else `associatedcompanyid`.
    pub(crate) fn into_record(self, object: Object) -> Record {
        let mut doc = Map::new();
        for (k, v) in self.properties {
            if let Some(s) = de::scalar_string(&v)
                && !s.is_empty()
            {
                doc.insert(k, Value::String(s));
            }
        }
        let updated_at = self
            .updated_at
            .as_deref()
            .and_then(parse_time_ms)
            .or_else(|| {
                doc.get(modified_property(object))
                    .and_then(Value::as_str)
                    .and_then(parse_time_ms)
            });
        let company_id = match object {
            Object::Company => None,
            Object::Contact => {
                let primary = self.associations.as_ref().and_then(|a| {
                    a.get("companies").and_then(|l| {
                        l.results
                            .iter()
                            .find(|r| is_primary_company(r.kind.as_deref()))
                            .map(|r| r.id.clone())
                    })
                });
                primary.or_else(|| {
                    doc.get("associatedcompanyid")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
            }
        };
        Record {
            system: System::HubSpot,
            object,
            id: self.id,
            doc,
            updated_at,
            company_id,
        }
    }
}

impl Obj {
    /// The record as a write answer shows it (see [`Obj::into_record`]), except that a property
    /// the answer names without a value stays in the document as `null`: known to be blank.
    pub(crate) fn into_stored(self, object: Object) -> Record {
        let blanks: Vec<String> = self
            .properties
            .iter()
            .filter(|(_, v)| de::scalar_string(v).is_none_or(|s| s.is_empty()))
            .map(|(k, _)| k.clone())
            .collect();
        let mut r = self.into_record(object);
        for k in blanks {
            r.doc.insert(k, Value::Null);
        }
        r
    }
}

/// The v3 association type names of the primary contact→company association (`contact_to_company`,
/// as opposed to `contact_to_company_unlabeled`), or its numeric type id `1`.
fn is_primary_company(kind: Option<&str>) -> bool {
    matches!(kind, Some("contact_to_company") | Some("1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_with_primary_association() {
        let o: Obj = serde_json::from_value(serde_json::json!({
            "id": "5101",
            "properties": {"email": "a@b.com", "firstname": "Ann", "lastname": "", "phone": null,
                           "hs_object_id": "5101", "associatedcompanyid": "77",
                           "lastmodifieddate": "2024-01-02T03:04:05.678Z"},
            "createdAt": "2024-01-01T00:00:00Z",
            "updatedAt": "2024-01-02T03:04:05.678Z",
            "archived": false,
            "associations": {"companies": {"results": [
                {"id": "12", "type": "contact_to_company_unlabeled"},
                {"id": "12", "type": "contact_to_company"},
                {"id": "99", "type": "contact_to_company_unlabeled"}
            ]}}
        }))
        .unwrap();
        let r = o.into_record(Object::Contact);
        assert_eq!(r.id, "5101");
        assert_eq!(r.company_id.as_deref(), Some("12"));
        assert_eq!(r.updated_at, Some(1_704_164_645_678));
        assert_eq!(r.get("email").as_deref(), Some("a@b.com"));
        // Blank and null properties are absent.
        assert!(!r.doc.contains_key("lastname"));
        assert!(!r.doc.contains_key("phone"));
    }

    #[test]
    fn contact_without_association_block_uses_associatedcompanyid() {
        let o: Obj = serde_json::from_value(serde_json::json!({
            "id": 5102,
            "properties": {"associatedcompanyid": "77"},
            "updatedAt": "2024-01-02T03:04:05Z"
        }))
        .unwrap();
        let r = o.into_record(Object::Contact);
        assert_eq!(r.id, "5102");
        assert_eq!(r.company_id.as_deref(), Some("77"));
        // Only unlabeled associations: no primary company; falls back to the property, and
        // without it there is no company.
        let o: Obj = serde_json::from_value(serde_json::json!({
            "id": "5103", "properties": {},
            "associations": {"companies": {"results": [{"id": "9", "type": "contact_to_company_unlabeled"}]}}
        }))
        .unwrap();
        assert_eq!(o.into_record(Object::Contact).company_id, None);
    }

    #[test]
    fn companies_have_no_company_id() {
        let o: Obj = serde_json::from_value(serde_json::json!({
            "id": "1", "properties": {"name": "Acme", "hs_lastmodifieddate": "1700000000000"}
        }))
        .unwrap();
        let r = o.into_record(Object::Company);
        assert_eq!(r.company_id, None);
        assert_eq!(r.updated_at, Some(1_700_000_000_000));
    }

    #[test]
    fn batch_errors_map_by_context() {
        let a: BatchAnswer = serde_json::from_value(serde_json::json!({
            "status": "COMPLETE",
            "results": [{"id": "1", "properties": {}, "objectWriteTraceId": "t-1"}],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "bad",
                        "context": {"objectWriteTraceId": ["t-2"]}}]
        }))
        .unwrap();
        assert_eq!(a.results[0].object_write_trace_id.as_deref(), Some("t-1"));
        assert_eq!(
            a.errors[0].context_values("objectWriteTraceId"),
            vec!["t-2"]
        );
        assert!(a.errors[0].context_values("ids").is_empty());
    }

    #[test]
    fn create_body_shape() {
        let mut props = BTreeMap::new();
        props.insert("email", "a@b.com");
        let body = Inputs {
            inputs: vec![CreateIn {
                properties: props,
                associations: vec![CreateAssoc {
                    to: AssocTo { id: "12" },
                    types: vec![PRIMARY_CONTACT_TO_COMPANY],
                }],
                object_write_trace_id: "t-1",
            }],
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"inputs": [{
                "properties": {"email": "a@b.com"},
                "associations": [{"to": {"id": "12"}, "types": [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}],
                "objectWriteTraceId": "t-1"
            }]})
        );
    }
}
