//! The HubSpot property catalogue: every standard company and contact property the simulator
//! knows (at least every trigger property of the default rules plus the system ones), with its
//! type, field type, options and read-only flag; custom properties join it at runtime
//! (`POST /crm/v3/properties/{objectType}`). Also value validation per property type.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::store::Kind;
use crate::common::{iso_ms, parse_time_ms};

/// The trigger lists of the default rules (a copy of reference/trigger-properties.yaml).
pub const TRIGGER_PROPERTIES_YAML: &str = include_str!("trigger-properties.yaml");

/// The default webhook subscriptions: `(object, property)` pairs, `created` for creation.
pub fn trigger_lists() -> BTreeMap<String, Vec<String>> {
    serde_saphyr::from_str::<BTreeMap<String, Vec<String>>>(TRIGGER_PROPERTIES_YAML)
        .unwrap_or_default()
}

/// A property's data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    /// Text.
    String,
    /// A number.
    Number,
    /// One (or, for checkboxes, several `;`-separated) of the options.
    Enumeration,
    /// Midnight UTC date.
    Date,
    /// Date and time.
    DateTime,
    /// `true` / `false`.
    Bool,
}

impl PropType {
    /// HubSpot's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::Number => "number",
            PropType::Enumeration => "enumeration",
            PropType::Date => "date",
            PropType::DateTime => "datetime",
            PropType::Bool => "bool",
        }
    }

    /// Parses HubSpot's name of a type.
    pub fn parse(s: &str) -> Option<PropType> {
        Some(match s {
            "string" => PropType::String,
            "number" => PropType::Number,
            "enumeration" => PropType::Enumeration,
            "date" => PropType::Date,
            "datetime" => PropType::DateTime,
            "bool" => PropType::Bool,
            _ => return None,
        })
    }

    /// The field types valid for this type.
    pub fn field_types(self) -> &'static [&'static str] {
        match self {
            PropType::String => &[
                "text",
                "textarea",
                "html",
                "phonenumber",
                "file",
                "calculation_equation",
            ],
            PropType::Number => &["number", "calculation_equation"],
            PropType::Enumeration => &[
                "booleancheckbox",
                "checkbox",
                "radio",
                "select",
                "calculation_equation",
            ],
            PropType::Date | PropType::DateTime => &["date"],
            PropType::Bool => &["booleancheckbox", "calculation_equation"],
        }
    }
}

/// One property definition.
#[derive(Debug, Clone)]
pub struct PropertyDef {
    /// Internal name.
    pub name: String,
    /// Display label.
    pub label: String,
    /// Data type.
    pub kind: PropType,
    /// UI field type.
    pub field_type: String,
    /// Property group.
    pub group: String,
    /// Description.
    pub description: String,
    /// Enumeration options: (value, label).
    pub options: Vec<(String, String)>,
    /// The value cannot be written through the API.
    pub read_only: bool,
    /// Computed by HubSpot.
    pub calculated: bool,
    /// Values are unique across records (usable as `idProperty`).
    pub unique: bool,
    /// Defined by HubSpot (not custom).
    pub hubspot_defined: bool,
    /// Display order.
    pub display_order: i64,
    /// When the definition was created (ms).
    pub created_ms: i64,
}

/// Why a property value was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct PropError {
    /// The property.
    pub name: String,
    /// HubSpot's error code (`PROPERTY_DOESNT_EXIST`, `READ_ONLY_VALUE`, `INVALID_OPTION`, …).
    pub code: &'static str,
    /// Human message.
    pub message: String,
}

const LIFECYCLE_OPTIONS: &[(&str, &str)] = &[
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];
const LEAD_STATUS_OPTIONS: &[(&str, &str)] = &[
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
];
const COMPANY_TYPE_OPTIONS: &[(&str, &str)] = &[
    ("PROSPECT", "Prospect"),
    ("PARTNER", "Partner"),
    ("RESELLER", "Reseller"),
    ("VENDOR", "Vendor"),
    ("OTHER", "Other"),
];
const INDUSTRY_OPTIONS: &[(&str, &str)] = &[
    ("ACCOUNTING", "Accounting"),
    ("AIRLINES_AVIATION", "Airlines/Aviation"),
    ("APPAREL_FASHION", "Apparel & Fashion"),
    ("ARCHITECTURE_PLANNING", "Architecture & Planning"),
    ("AUTOMOTIVE", "Automotive"),
    ("BANKING", "Banking"),
    ("BIOTECHNOLOGY", "Biotechnology"),
    ("BROADCAST_MEDIA", "Broadcast Media"),
    ("BUILDING_MATERIALS", "Building Materials"),
    ("CHEMICALS", "Chemicals"),
    ("COMPUTER_HARDWARE", "Computer Hardware"),
    ("COMPUTER_SOFTWARE", "Computer Software"),
    ("CONSTRUCTION", "Construction"),
    ("CONSUMER_GOODS", "Consumer Goods"),
    ("DESIGN", "Design"),
    ("EDUCATION_MANAGEMENT", "Education Management"),
    ("ENTERTAINMENT", "Entertainment"),
    ("FINANCIAL_SERVICES", "Financial Services"),
    ("FOOD_BEVERAGES", "Food & Beverages"),
    ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
    ("HOSPITALITY", "Hospitality"),
    (
        "INFORMATION_TECHNOLOGY_AND_SERVICES",
        "Information Technology and Services",
    ),
    ("INSURANCE", "Insurance"),
    ("LEGAL_SERVICES", "Legal Services"),
    ("LOGISTICS_AND_SUPPLY_CHAIN", "Logistics and Supply Chain"),
    ("MANAGEMENT_CONSULTING", "Management Consulting"),
    ("MARKETING_AND_ADVERTISING", "Marketing and Advertising"),
    (
        "MECHANICAL_OR_INDUSTRIAL_ENGINEERING",
        "Mechanical or Industrial Engineering",
    ),
    (
        "NONPROFIT_ORGANIZATION_MANAGEMENT",
        "Non-Profit Organization Management",
    ),
    ("REAL_ESTATE", "Real Estate"),
    ("RETAIL", "Retail"),
    ("TELECOMMUNICATIONS", "Telecommunications"),
    ("UTILITIES", "Utilities"),
];
const NUMEMPLOYEES_OPTIONS: &[(&str, &str)] = &[
    ("1-5", "1-5"),
    ("5-25", "5-25"),
    ("25-50", "25-50"),
    ("50-100", "50-100"),
    ("100-500", "100-500"),
    ("500-1000", "500-1000"),
    ("1000+", "1000+"),
];
const ANALYTICS_SOURCE_OPTIONS: &[(&str, &str)] = &[
    ("ORGANIC_SEARCH", "Organic search"),
    ("PAID_SEARCH", "Paid search"),
    ("EMAIL_MARKETING", "Email marketing"),
    ("SOCIAL_MEDIA", "Organic social"),
    ("REFERRALS", "Referrals"),
    ("OTHER_CAMPAIGNS", "Other campaigns"),
    ("DIRECT_TRAFFIC", "Direct traffic"),
    ("OFFLINE", "Offline sources"),
    ("PAID_SOCIAL", "Paid social"),
];

/// A standard property: (name, type, fieldType, read-only, options).
type Standard = (
    &'static str,
    PropType,
    &'static str,
    bool,
    &'static [(&'static str, &'static str)],
);

/// Every standard property of `kind`.
fn standard(kind: Kind) -> Vec<Standard> {
    use PropType::*;
    const NONE: &[(&str, &str)] = &[];
    let mut v = vec![
        ("hs_object_id", Number, "number", true, NONE),
        ("createdate", DateTime, "date", true, NONE),
        (
            "lifecyclestage",
            Enumeration,
            "radio",
            false,
            LIFECYCLE_OPTIONS,
        ),
        (
            "hs_lead_status",
            Enumeration,
            "radio",
            false,
            LEAD_STATUS_OPTIONS,
        ),
        ("hubspot_owner_id", Enumeration, "select", false, NONE),
        ("hubspot_team_id", Enumeration, "select", true, NONE),
        ("address", String, "text", false, NONE),
        ("city", String, "text", false, NONE),
        ("state", String, "text", false, NONE),
        ("zip", String, "text", false, NONE),
        ("country", String, "text", false, NONE),
        ("phone", String, "phonenumber", false, NONE),
        ("website", String, "text", false, NONE),
        ("annualrevenue", Number, "number", false, NONE),
        ("closedate", DateTime, "date", false, NONE),
        ("first_deal_created_date", DateTime, "date", true, NONE),
        ("notes_last_contacted", DateTime, "date", true, NONE),
        ("notes_last_updated", DateTime, "date", true, NONE),
        ("notes_next_activity_date", DateTime, "date", true, NONE),
        ("recent_deal_amount", Number, "number", true, NONE),
        ("recent_deal_close_date", DateTime, "date", true, NONE),
        ("total_revenue", Number, "number", true, NONE),
        ("linkedinbio", String, "textarea", false, NONE),
        ("twitterbio", String, "textarea", false, NONE),
        ("twitterhandle", String, "text", false, NONE),
        (
            "hs_analytics_source",
            Enumeration,
            "select",
            true,
            ANALYTICS_SOURCE_OPTIONS,
        ),
    ];
    match kind {
        Kind::Companies => v.extend([
            ("name", String, "text", false, NONE),
            ("domain", String, "text", false, NONE),
            ("hs_lastmodifieddate", DateTime, "date", true, NONE),
            ("hs_additional_domains", String, "text", false, NONE),
            ("hs_merged_object_ids", Enumeration, "checkbox", true, NONE),
            ("about_us", String, "textarea", false, NONE),
            ("address2", String, "text", false, NONE),
            ("description", String, "textarea", false, NONE),
            ("founded_year", String, "text", false, NONE),
            ("industry", Enumeration, "select", false, INDUSTRY_OPTIONS),
            ("is_public", Bool, "booleancheckbox", false, NONE),
            ("numberofemployees", Number, "number", false, NONE),
            ("timezone", String, "text", false, NONE),
            ("total_money_raised", String, "text", false, NONE),
            ("type", Enumeration, "select", false, COMPANY_TYPE_OPTIONS),
            ("web_technologies", String, "text", false, NONE),
            ("facebook_company_page", String, "text", false, NONE),
            ("facebookfans", Number, "number", false, NONE),
            ("googleplus_page", String, "text", false, NONE),
            ("linkedin_company_page", String, "text", false, NONE),
            ("twitterfollowers", Number, "number", false, NONE),
            ("num_associated_contacts", Number, "number", true, NONE),
        ]),
        Kind::Contacts => v.extend([
            ("email", String, "text", false, NONE),
            ("firstname", String, "text", false, NONE),
            ("lastname", String, "text", false, NONE),
            ("lastmodifieddate", DateTime, "date", true, NONE),
            ("associatedcompanyid", Number, "number", true, NONE),
            ("hs_additional_emails", Enumeration, "checkbox", true, NONE),
            ("mobilephone", String, "phonenumber", false, NONE),
            ("fax", String, "phonenumber", false, NONE),
            ("jobtitle", String, "text", false, NONE),
            ("company", String, "text", false, NONE),
            ("salutation", String, "text", false, NONE),
            ("message", String, "textarea", false, NONE),
            ("industry", String, "text", false, NONE),
            (
                "numemployees",
                Enumeration,
                "select",
                false,
                NUMEMPLOYEES_OPTIONS,
            ),
            ("days_to_close", Number, "number", true, NONE),
            (
                "hs_lifecyclestage_customer_date",
                DateTime,
                "date",
                true,
                NONE,
            ),
            (
                "hs_lifecyclestage_evangelist_date",
                DateTime,
                "date",
                true,
                NONE,
            ),
            ("hs_lifecyclestage_lead_date", DateTime, "date", true, NONE),
            (
                "hs_lifecyclestage_marketingqualifiedlead_date",
                DateTime,
                "date",
                true,
                NONE,
            ),
            (
                "hs_lifecyclestage_opportunity_date",
                DateTime,
                "date",
                true,
                NONE,
            ),
            ("hs_lifecyclestage_other_date", DateTime, "date", true, NONE),
            (
                "hs_lifecyclestage_salesqualifiedlead_date",
                DateTime,
                "date",
                true,
                NONE,
            ),
            (
                "hs_lifecyclestage_subscriber_date",
                DateTime,
                "date",
                true,
                NONE,
            ),
            ("hs_sales_email_last_clicked", DateTime, "date", true, NONE),
            ("hs_sales_email_last_opened", DateTime, "date", true, NONE),
            ("hs_sales_email_last_replied", DateTime, "date", true, NONE),
            (
                "hs_sequences_is_enrolled",
                Bool,
                "booleancheckbox",
                true,
                NONE,
            ),
            ("webinareventlastupdated", Number, "number", true, NONE),
            ("hs_email_optout_1234723", Enumeration, "select", true, NONE),
            ("followercount", Number, "number", true, NONE),
            ("hs_facebookid", String, "text", false, NONE),
            ("hs_googleplusid", String, "text", false, NONE),
            ("hs_linkedinid", String, "text", false, NONE),
            ("hs_twitterid", String, "text", false, NONE),
            ("kloutscoregeneral", Number, "number", true, NONE),
            ("linkedinconnections", Number, "number", true, NONE),
            ("photo", String, "text", false, NONE),
            ("twitterprofilephoto", String, "text", false, NONE),
        ]),
    }
    v
}

fn label_of(name: &str) -> String {
    let mut s = name.replace('_', " ");
    if let Some(first) = s.get(0..1) {
        let up = first.to_uppercase();
        s.replace_range(0..1, &up);
    }
    s
}

/// The standard catalogue of `kind`, keyed by name.
pub fn catalogue(kind: Kind) -> BTreeMap<String, PropertyDef> {
    let mut out = BTreeMap::new();
    for (i, (name, ty, field, ro, opts)) in standard(kind).into_iter().enumerate() {
        let unique = name == "hs_object_id" || (kind == Kind::Contacts && name == "email");
        out.insert(
            name.to_string(),
            PropertyDef {
                name: name.to_string(),
                label: label_of(name),
                kind: ty,
                field_type: field.to_string(),
                group: match kind {
                    Kind::Companies => "companyinformation".to_string(),
                    Kind::Contacts => "contactinformation".to_string(),
                },
                description: String::new(),
                options: opts
                    .iter()
                    .map(|(v, l)| ((*v).to_string(), (*l).to_string()))
                    .collect(),
                read_only: ro,
                calculated: ro && name != "hs_object_id",
                unique,
                hubspot_defined: true,
                display_order: i as i64,
                created_ms: 1_262_304_000_000,
            },
        );
    }
    out
}

impl PropertyDef {
    /// Validates (and normalises) a value about to be written: `Ok(None)` clears.
    pub fn check(&self, raw: &str) -> Result<Option<String>, PropError> {
        if raw.is_empty() {
            return Ok(None);
        }
        let err = |code: &'static str, message: String| PropError {
            name: self.name.clone(),
            code,
            message,
        };
        if raw.chars().count() > 65_536 {
            return Err(err(
                "INVALID_LENGTH",
                format!(
                    "{} was too long: values are limited to 65536 characters",
                    self.name
                ),
            ));
        }
        match self.kind {
            PropType::String => Ok(Some(raw.to_string())),
            PropType::Number => {
                if raw.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                    Ok(Some(raw.trim().to_string()))
                } else {
                    Err(err(
                        "INVALID_DECIMAL",
                        format!("{raw} was not a valid number"),
                    ))
                }
            }
            PropType::Bool => match raw {
                "true" | "false" => Ok(Some(raw.to_string())),
                _ => Err(err(
                    "INVALID_BOOLEAN",
                    format!("{raw} was not a valid boolean (true or false)"),
                )),
            },
            PropType::Date => {
                let Some(ms) = parse_time_ms(raw) else {
                    return Err(err("INVALID_DATE", format!("{raw} was not a valid date")));
                };
                if ms.rem_euclid(86_400_000) != 0 {
                    return Err(err("INVALID_DATE", format!("{raw} is not at midnight UTC")));
                }
                Ok(Some(iso_ms(ms)[..10].to_string()))
            }
            PropType::DateTime => match parse_time_ms(raw) {
                Some(ms) => Ok(Some(iso_ms(ms))),
                None => Err(err(
                    "INVALID_DATE",
                    format!("{raw} was not a valid datetime"),
                )),
            },
            PropType::Enumeration => {
                if self.options.is_empty() {
                    return Ok(Some(raw.to_string()));
                }
                let values: Vec<&str> = if self.field_type == "checkbox" {
                    raw.trim_start_matches(';').split(';').collect()
                } else {
                    vec![raw]
                };
                for v in values {
                    if !self.options.iter().any(|(o, _)| o == v) {
                        let allowed: Vec<&str> =
                            self.options.iter().map(|(o, _)| o.as_str()).collect();
                        return Err(err(
                            "INVALID_OPTION",
                            format!(
                                "{v} was not one of the allowed options: [{}]",
                                allowed.join(", ")
                            ),
                        ));
                    }
                }
                Ok(Some(raw.to_string()))
            }
        }
    }

    /// The definition in HubSpot's `Property` shape.
    pub fn to_json(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .enumerate()
            .map(|(i, (v, l))| {
                json!({"label": l, "value": v, "displayOrder": i, "hidden": false, "description": ""})
            })
            .collect();
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind.as_str(),
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group,
            "options": options,
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": self.name == "hubspot_owner_id",
            "hasUniqueValue": self.unique,
            "hidden": false,
            "hubspotDefined": self.hubspot_defined,
            "archived": false,
            "formField": !self.read_only,
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.created_ms),
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_covers_every_trigger_property() {
        let lists = trigger_lists();
        assert!(lists.contains_key("company") && lists.contains_key("contact"));
        for (obj, kind) in [("company", Kind::Companies), ("contact", Kind::Contacts)] {
            let cat = catalogue(kind);
            for p in &lists[obj] {
                if p != "created" {
                    assert!(cat.contains_key(p), "{obj} property {p} missing");
                }
            }
        }
    }

    #[test]
    fn values_are_validated_by_type() {
        let c = catalogue(Kind::Contacts);
        assert_eq!(
            c["lifecyclestage"].check("lead").unwrap().as_deref(),
            Some("lead")
        );
        assert_eq!(
            c["lifecyclestage"].check("Lead").unwrap_err().code,
            "INVALID_OPTION"
        );
        assert_eq!(c["lifecyclestage"].check("").unwrap(), None);
        let co = catalogue(Kind::Companies);
        assert_eq!(
            co["numberofemployees"].check("12x").unwrap_err().code,
            "INVALID_DECIMAL"
        );
        assert_eq!(
            co["is_public"].check("yes").unwrap_err().code,
            "INVALID_BOOLEAN"
        );
        assert_eq!(
            c["closedate"].check("1700000000000").unwrap().as_deref(),
            Some("2023-11-14T22:13:20.000Z")
        );
        assert!(c["hs_object_id"].read_only);
        assert!(c["email"].unique);
    }
}
