//! What Tandem knows about each side before reading any rule: the standard HubSpot properties of
//! companies and contacts (type, read-only flag, enumeration values where HubSpot fixes them) and
//! the Accelo fields of the record documents (shapes in `model::Record`), with the writable ones
//! marked. Rule files add the portal's custom HubSpot properties.
//!
//! Every name in `reference/trigger-properties.yaml` is here, plus the system properties
//! (`hs_object_id`, `createdate`, `lastmodifieddate` / `hs_lastmodifieddate`,
//! `associatedcompanyid`) and the other common standard ones.

use std::collections::BTreeMap;

use super::raw::PropertyType;
use crate::model::Object;

use PropertyType::{Bool, Date, Datetime, Enumeration, Number, PhoneNumber, String as Text};

/// `(name, type, read_only)`.
type Std = (&'static str, PropertyType, bool);

/// Values of `lifecyclestage` (both objects), in HubSpot's forward order.
pub const LIFECYCLE_STAGES: &[&str] = &[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];

/// Values of `hs_lead_status` (both objects).
pub const LEAD_STATUSES: &[&str] = &[
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
];

/// Values of a company's `type`.
pub const COMPANY_TYPES: &[&str] = &["PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER"];

const COMPANY: &[Std] = &[
    // system
    ("hs_object_id", Number, true),
    ("createdate", Datetime, true),
    ("hs_lastmodifieddate", Datetime, true),
    ("hs_merged_object_ids", Enumeration, true),
    ("num_associated_contacts", Number, true),
    ("hs_additional_domains", Text, false),
    // the guide's trigger list
    ("name", Text, false),
    ("about_us", Text, false),
    ("address", Text, false),
    ("address2", Text, false),
    ("annualrevenue", Number, false),
    ("city", Text, false),
    ("closedate", Datetime, false),
    ("country", Text, false),
    ("description", Text, false),
    ("domain", Text, false),
    ("first_deal_created_date", Datetime, true),
    ("founded_year", Text, false),
    ("hs_lead_status", Enumeration, false),
    ("hubspot_owner_id", Enumeration, false),
    ("hubspot_team_id", Enumeration, true),
    ("industry", Enumeration, false),
    ("is_public", Bool, false),
    ("lifecyclestage", Enumeration, false),
    ("notes_last_contacted", Datetime, true),
    ("notes_last_updated", Datetime, true),
    ("notes_next_activity_date", Datetime, true),
    ("numberofemployees", Number, false),
    ("phone", PhoneNumber, false),
    ("recent_deal_amount", Number, true),
    ("recent_deal_close_date", Datetime, true),
    ("state", Text, false),
    ("timezone", Enumeration, false),
    ("total_money_raised", Text, false),
    ("total_revenue", Number, true),
    ("type", Enumeration, false),
    ("web_technologies", Enumeration, false),
    ("website", Text, false),
    ("zip", Text, false),
    ("facebook_company_page", Text, false),
    ("facebookfans", Number, false),
    ("googleplus_page", Text, false),
    ("linkedin_company_page", Text, false),
    ("linkedinbio", Text, false),
    ("twitterbio", Text, false),
    ("twitterfollowers", Number, false),
    ("twitterhandle", Text, false),
];

const CONTACT: &[Std] = &[
    // system
    ("hs_object_id", Number, true),
    ("createdate", Datetime, true),
    ("lastmodifieddate", Datetime, true),
    ("hs_lastmodifieddate", Datetime, true),
    ("associatedcompanyid", Number, true),
    ("hs_additional_emails", Enumeration, true),
    // the guide's trigger list
    ("firstname", Text, false),
    ("address", Text, false),
    ("annualrevenue", Text, false),
    ("city", Text, false),
    ("closedate", Datetime, false),
    ("company", Text, false),
    ("country", Text, false),
    ("days_to_close", Number, true),
    ("email", Text, false),
    ("fax", PhoneNumber, false),
    ("first_deal_created_date", Datetime, true),
    ("hs_lead_status", Enumeration, false),
    ("hs_lifecyclestage_customer_date", Datetime, true),
    ("hs_lifecyclestage_evangelist_date", Datetime, true),
    ("hs_lifecyclestage_lead_date", Datetime, true),
    (
        "hs_lifecyclestage_marketingqualifiedlead_date",
        Datetime,
        true,
    ),
    ("hs_lifecyclestage_opportunity_date", Datetime, true),
    ("hs_lifecyclestage_other_date", Datetime, true),
    ("hs_lifecyclestage_salesqualifiedlead_date", Datetime, true),
    ("hs_lifecyclestage_subscriber_date", Datetime, true),
    ("hs_sales_email_last_clicked", Datetime, true),
    ("hs_sales_email_last_opened", Datetime, true),
    ("hs_sales_email_last_replied", Datetime, true),
    ("hs_sequences_is_enrolled", Bool, true),
    ("hubspot_owner_id", Enumeration, false),
    ("hubspot_team_id", Enumeration, true),
    ("industry", Text, false),
    ("jobtitle", Text, false),
    ("lastname", Text, false),
    ("lifecyclestage", Enumeration, false),
    ("message", Text, false),
    ("mobilephone", PhoneNumber, false),
    ("notes_last_contacted", Datetime, true),
    ("notes_last_updated", Datetime, true),
    ("notes_next_activity_date", Datetime, true),
    ("numemployees", Enumeration, false),
    ("phone", PhoneNumber, false),
    ("recent_deal_amount", Number, true),
    ("recent_deal_close_date", Datetime, true),
    ("salutation", Text, false),
    ("state", Text, false),
    ("total_revenue", Number, true),
    ("webinareventlastupdated", Number, true),
    ("website", Text, false),
    ("zip", Text, false),
    ("hs_email_optout_1234723", Enumeration, true),
    ("followercount", Number, true),
    ("hs_facebookid", Text, false),
    ("hs_googleplusid", Text, false),
    ("hs_linkedinid", Text, false),
    ("hs_twitterid", Text, false),
    ("kloutscoregeneral", Number, true),
    ("linkedinbio", Text, false),
    ("linkedinconnections", Number, true),
    ("photo", Text, false),
    ("twitterbio", Text, false),
    ("twitterhandle", Text, false),
    ("twitterprofilephoto", Text, false),
    ("hs_analytics_source", Enumeration, true),
    ("date_of_birth", Date, false),
];

/// What Tandem knows about one HubSpot property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Internal name.
    pub name: String,
    /// HubSpot type.
    pub kind: PropertyType,
    /// Never written by Tandem.
    pub read_only: bool,
    /// Allowed values when HubSpot fixes them (empty = not checked).
    pub options: Vec<String>,
    /// Declared in the rule file's `custom_properties`.
    pub custom: bool,
}

fn standard_options(name: &str, object: Object) -> Vec<String> {
    let list: &[&str] = match (name, object) {
        ("lifecyclestage", _) => LIFECYCLE_STAGES,
        ("hs_lead_status", _) => LEAD_STATUSES,
        ("type", Object::Company) => COMPANY_TYPES,
        ("is_public" | "hs_sequences_is_enrolled", _) => &["true", "false"],
        _ => &[],
    };
    list.iter().map(|s| s.to_string()).collect()
}

/// The standard HubSpot properties of `object`.
pub fn standard_properties(object: Object) -> Vec<Property> {
    let table = match object {
        Object::Company => COMPANY,
        Object::Contact => CONTACT,
    };
    table
        .iter()
        .map(|(name, kind, read_only)| Property {
            name: name.to_string(),
            kind: *kind,
            read_only: *read_only,
            options: standard_options(name, object),
            custom: false,
        })
        .collect()
}

/// The HubSpot properties one rule file may use: the standard ones plus its custom ones.
#[derive(Debug, Clone)]
pub struct HubSpotCatalog {
    props: BTreeMap<String, Property>,
}

impl HubSpotCatalog {
    /// The standard properties of `object`.
    pub fn standard(object: Object) -> HubSpotCatalog {
        HubSpotCatalog {
            props: standard_properties(object)
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
        }
    }

    /// Adds (or, for a standard name, replaces) a property.
    pub fn declare(&mut self, p: Property) {
        self.props.insert(p.name.clone(), p);
    }

    /// The property called `name`.
    pub fn get(&self, name: &str) -> Option<&Property> {
        self.props.get(name)
    }

    /// Every property name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.props.keys().map(String::as_str)
    }

    /// True when `name` is a standard (not custom) property.
    pub fn is_standard(object: Object, name: &str) -> bool {
        let table = match object {
            Object::Company => COMPANY,
            Object::Contact => CONTACT,
        };
        table.iter().any(|(n, ..)| *n == name)
    }
}

/// The closest candidate to `name`, for "did you mean": the one at the smallest edit distance
/// (optimal string alignment: a swap of two neighbouring letters counts as one edit, as do an
/// insertion, a deletion and a substitution; case is ignored), when that distance is at most a
/// third of the name's length, and at least 1 — `nmae` → `name`, `phnoe` → `phone`. Ties go to
/// the alphabetically first candidate.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (osa_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// The optimal-string-alignment (restricted Damerau–Levenshtein) distance of `a` and `b`, in
/// characters.
fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one before the previous (for transpositions), the previous, the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_list_is_all_known() {
        let text = include_str!("../../../tests/fixtures/rules/trigger-properties.yaml");
        let mut object = None;
        let mut count = 0;
        for line in text.lines() {
            let line = line.trim_end();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            if let Some(o) = line.strip_suffix(':') {
                object = Some(o.parse::<Object>().unwrap());
                continue;
            }
            let name = line.trim_start_matches([' ', '-']).trim();
            if name == "created" {
                continue;
            }
            let o = object.unwrap();
            assert!(
                HubSpotCatalog::standard(o).get(name).is_some(),
                "{o} `{name}` missing from the catalogue"
            );
            count += 1;
        }
        assert!(count > 100);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("nme", ["name", "phone"]), Some("name"));
        assert_eq!(
            suggest("lifecylestage", ["lifecyclestage"]),
            Some("lifecyclestage")
        );
        assert_eq!(suggest("zzzz", ["name"]), None);
        // Swapped neighbours are one edit.
        assert_eq!(suggest("nmae", ["name", "phone"]), Some("name"));
        assert_eq!(suggest("phnoe", ["name", "phone"]), Some("phone"));
        assert_eq!(suggest("Emial", ["email", "fax"]), Some("email"));
        assert_eq!(osa_distance("ca", "abc"), 3);
        assert_eq!(osa_distance("", "abc"), 3);
        assert_eq!(osa_distance("abc", ""), 3);
    }
}
