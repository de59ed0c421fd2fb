//! The HubSpot and Accelo connectors against the sandbox's simulators, over real HTTP on
//! loopback: full reads and their request cost (from `/_sandbox/stats`), lookups, batch and
//! routed writes with per-input results, changed-since scans, token expiry and renewal, refused
//! credentials, and identical results under 429 storms, 5xx and dropped connections.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::TryStreamExt;
use serde_json::{Value, json};
use tandem_core::model::{Object, Record};
use tandem_engine::connect::accelo::{Accelo, AcceloSettings};
use tandem_engine::connect::hubspot::{HubSpot, HubSpotAuth, HubSpotSettings};
use tandem_engine::connect::{
    Changes, ConnectError, Connector, CreateInput, Lookup, RetryPolicy, Scan, Secret, UpdateInput,
    WriteOutcome, Written,
};
use tandem_sandbox::{Sandbox, SandboxOptions};

use crate::support::{
    accelo_connector, fast_retry, hubspot_connector, read_all, requests, seeded_sandbox,
};

// ---------------------------------------------------------------------------------------------
// Helpers

struct Admin {
    http: reqwest::Client,
}

impl Admin {
    fn new() -> Admin {
        Admin {
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, url: String) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .expect("admin request")
            .json()
            .await
            .expect("admin json")
    }

    async fn post(&self, url: String, body: Value) -> Value {
        let r = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("admin request");
        assert!(r.status().is_success(), "admin answered {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    async fn stats(&self, base: &str) -> Value {
        self.get(format!("{base}/_sandbox/stats")).await
    }

    async fn records(&self, base: &str, object: &str) -> Vec<Value> {
        match self.get(format!("{base}/_sandbox/records/{object}")).await {
            Value::Array(a) => a,
            other => panic!("records of `{object}` are not an array: {other}"),
        }
    }

    async fn faults(&self, base: &str, faults: Value) {
        self.post(format!("{base}/_sandbox/faults"), faults).await;
    }

    async fn edit(&self, base: &str, object: &str, id: Option<&str>, fields: Value) -> Value {
        self.post(
            format!("{base}/_sandbox/edit"),
            json!({"object": object, "id": id, "fields": fields}),
        )
        .await
    }
}

fn txt(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn by_id(records: Vec<Record>) -> BTreeMap<String, Record> {
    records.into_iter().map(|r| (r.id.clone(), r)).collect()
}

fn props(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn changes(pairs: &[(&str, Option<&str>)]) -> Changes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

const COMPANY_PROPS: &[&str] = &["name", "domain", "phone", "city", "lifecyclestage"];
const CONTACT_PROPS: &[&str] = &["email", "firstname", "lastname", "phone", "jobtitle"];

// ---------------------------------------------------------------------------------------------
// Reads

#[tokio::test]
async fn full_reads_cost_one_request_per_page_and_match_the_data() {
    // Sizes that are not multiples of 100.
    let sb = seeded_sandbox(11, 250, 430).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let hs = hubspot_connector(&sb);
    let ac = accelo_connector(&sb);

    let companies = read_all(&hs, Object::Company, &props(COMPANY_PROPS)).await;
    let contacts = read_all(&hs, Object::Contact, &props(CONTACT_PROPS)).await;
    assert_eq!(companies.len(), 250);
    assert_eq!(contacts.len(), 430);
    let st = admin.stats(&hs_url).await;
    assert_eq!(requests(&st, "GET /crm/v3/objects/companies"), 3, "{st}");
    assert_eq!(requests(&st, "GET /crm/v3/objects/contacts"), 5, "{st}");
    assert_eq!(
        st["total"].as_u64(),
        Some(8),
        "nothing else was requested: {st}"
    );

    // Content: the simulator's own view of every contact, its properties and primary company.
    let truth = admin.records(&hs_url, "contacts").await;
    let contacts = by_id(contacts);
    for t in &truth {
        let id = txt(&t["id"]);
        let r = &contacts[&id];
        for p in CONTACT_PROPS {
            let want = t["properties"][p].as_str().filter(|v| !v.is_empty());
            assert_eq!(r.get(p).as_deref(), want, "contact {id} property {p}");
        }
        let primary = t["associations"]["companies"]["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == "contact_to_company")
            .map(|a| txt(&a["id"]));
        assert_eq!(r.company_id, primary, "contact {id} primary company");
        assert!(r.updated_at.is_some());
    }

    let companies_ac = read_all(&ac, Object::Company, &[]).await;
    let contacts_ac = read_all(&ac, Object::Contact, &[]).await;
    assert_eq!(companies_ac.len(), 250);
    assert_eq!(contacts_ac.len(), 430);
    let st = admin.stats(&ac_url).await;
    assert_eq!(requests(&st, "GET /api/v0/companies"), 3, "{st}");
    assert_eq!(requests(&st, "GET /api/v0/contacts"), 5, "{st}");
    // One affiliation read per page of contacts (by their default affiliations).
    assert_eq!(requests(&st, "GET /api/v0/affiliations"), 5, "{st}");

    // Accelo contacts are joined with their default affiliation and its company.
    let affs: BTreeMap<String, Value> = admin
        .records(&ac_url, "affiliations")
        .await
        .into_iter()
        .map(|a| (txt(&a["id"]), a))
        .collect();
    let contacts_ac = by_id(contacts_ac);
    for t in admin.records(&ac_url, "contacts").await {
        let id = txt(&t["id"]);
        let r = &contacts_ac[&id];
        assert_eq!(
            r.get("firstname"),
            t["firstname"].as_str().map(str::to_string)
        );
        let aff = &affs[&txt(&t["default_affiliation"])];
        let doc_aff = &r.doc["affiliation"];
        assert_eq!(doc_aff["id"], json!(txt(&aff["id"])));
        let email = aff["email"].as_str().filter(|e| !e.is_empty());
        assert_eq!(doc_aff.get("email").and_then(Value::as_str), email);
        assert_eq!(r.company_id.as_deref(), Some(txt(&aff["company"]).as_str()));
        assert_eq!(r.doc["company"]["id"], json!(txt(&aff["company"])));
        assert!(r.doc["company"]["name"].is_string());
    }
    let companies_ac = by_id(companies_ac);
    for t in admin.records(&ac_url, "companies").await {
        let r = &companies_ac[&txt(&t["id"])];
        assert_eq!(r.get("name"), t["name"].as_str().map(str::to_string));
        assert!(r.doc["status"]["title"].is_string(), "{:?}", r.doc);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn get_and_find_read_exactly_what_was_asked() {
    let sb = seeded_sandbox(12, 60, 120).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let hs = hubspot_connector(&sb);
    let ac = accelo_connector(&sb);

    // HubSpot: batch read by ids (one request), unknown ids absent.
    let truth = admin.records(&hs_url, "contacts").await;
    let mut ids: Vec<String> = truth.iter().take(30).map(|t| txt(&t["id"])).collect();
    ids.push("999999999999".into());
    let got = hs
        .get(Object::Contact, &ids, &props(CONTACT_PROPS))
        .await
        .expect("get");
    assert_eq!(got.len(), 30);
    assert_eq!(
        requests(
            &admin.stats(&hs_url).await,
            "POST /crm/v3/objects/contacts/batch/read"
        ),
        1
    );

    // HubSpot: find a contact by email, whatever its case; a company by domain.
    let with_email = truth
        .iter()
        .find(|t| t["properties"]["email"].is_string())
        .expect("a contact with an email");
    let email = with_email["properties"]["email"]
        .as_str()
        .unwrap_or_default();
    let found = hs
        .find(
            Object::Contact,
            &Lookup::new("email", email.to_uppercase()),
            &props(CONTACT_PROPS),
        )
        .await
        .expect("find");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, txt(&with_email["id"]));
    let company = admin
        .records(&hs_url, "companies")
        .await
        .into_iter()
        .find(|c| c["properties"]["domain"].is_string())
        .expect("a company with a domain");
    let domain = company["properties"]["domain"].as_str().unwrap_or_default();
    let found = hs
        .find(Object::Company, &Lookup::new("domain", domain), &[])
        .await
        .expect("find");
    assert!(
        found.iter().any(|r| r.id == txt(&company["id"])),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .all(|r| r.get("domain").as_deref() == Some(domain))
    );
    let none = hs
        .find(
            Object::Contact,
            &Lookup::new("email", "nobody@nowhere.invalid"),
            &[],
        )
        .await
        .expect("find");
    assert!(none.is_empty());

    // Accelo: by ids, and a contact by its affiliation email (case-insensitive).
    let contacts = admin.records(&ac_url, "contacts").await;
    let ids: Vec<String> = contacts.iter().take(25).map(|t| txt(&t["id"])).collect();
    let got = ac.get(Object::Contact, &ids, &[]).await.expect("get");
    assert_eq!(
        got.iter().map(|r| r.id.clone()).collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect::<BTreeSet<_>>()
    );
    let aff = admin
        .records(&ac_url, "affiliations")
        .await
        .into_iter()
        .find(|a| a["email"].as_str().is_some_and(|e| !e.is_empty()))
        .expect("an affiliation with an email");
    let email = aff["email"].as_str().unwrap_or_default().to_string();
    let found = ac
        .find(
            Object::Contact,
            &Lookup::new("affiliation.email", email.to_uppercase()),
            &[],
        )
        .await
        .expect("find");
    assert!(
        found.iter().any(|r| r.id == txt(&aff["contact"])),
        "{found:?}"
    );
    for r in &found {
        assert_eq!(
            r.doc["affiliation"]["email"]
                .as_str()
                .map(str::to_lowercase),
            Some(email.to_lowercase())
        );
    }
    let company = admin
        .records(&ac_url, "companies")
        .await
        .into_iter()
        .find(|c| c["website"].as_str().is_some_and(|w| !w.is_empty()))
        .expect("a company with a website");
    let website = company["website"].as_str().unwrap_or_default();
    let found = ac
        .find(Object::Company, &Lookup::new("website", website), &[])
        .await
        .expect("find");
    assert!(found.iter().any(|r| r.id == txt(&company["id"])));
    let name = company["name"].as_str().unwrap_or_default();
    let found = ac
        .find(
            Object::Company,
            &Lookup::new("name", name.to_lowercase()),
            &[],
        )
        .await
        .expect("find");
    assert!(found.iter().any(|r| r.id == txt(&company["id"])));
    assert!(matches!(
        ac.find(Object::Company, &Lookup::new("industry", "x"), &[])
            .await,
        Err(ConnectError::Invalid { .. })
    ));
    sb.shutdown().await;
}

#[tokio::test]
async fn changed_since_reads_only_what_changed() {
    let sb = seeded_sandbox(13, 40, 80).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let hs = hubspot_connector(&sb);
    let ac = accelo_connector(&sb);
    // Seeded data is older than 2025; everything edited now is newer.
    let since = chrono::Utc::now().timestamp_millis() - 1000;

    let hs_companies = admin.records(&hs_url, "companies").await;
    let edited: BTreeSet<String> = hs_companies.iter().take(3).map(|c| txt(&c["id"])).collect();
    for id in &edited {
        admin
            .edit(
                &hs_url,
                "companies",
                Some(id),
                json!({"city": "Changed City"}),
            )
            .await;
    }
    let pages: Vec<Vec<Record>> = hs
        .scan(
            Object::Company,
            Scan::ChangedSince(since),
            &props(&["city"]),
        )
        .try_collect()
        .await
        .expect("scan");
    let got: BTreeSet<String> = pages.into_iter().flatten().map(|r| r.id).collect();
    assert_eq!(got, edited);

    // Accelo: one contact edited itself, another only through its affiliation.
    let contacts = admin.records(&ac_url, "contacts").await;
    let c1 = txt(&contacts[0]["id"]);
    let c2 = txt(&contacts[1]["id"]);
    admin
        .edit(
            &ac_url,
            "contacts",
            Some(&c1),
            json!({"comments": "edited"}),
        )
        .await;
    let aff2 = txt(&contacts[1]["default_affiliation"]);
    admin
        .edit(
            &ac_url,
            "affiliations",
            Some(&aff2),
            json!({"position": "Chief Tester"}),
        )
        .await;
    let pages: Vec<Vec<Record>> = ac
        .scan(Object::Contact, Scan::ChangedSince(since), &[])
        .try_collect()
        .await
        .expect("scan");
    let got: Vec<Record> = pages.into_iter().flatten().collect();
    let ids: BTreeSet<String> = got.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([c1.clone(), c2.clone()]));
    let r2 = got.iter().find(|r| r.id == c2).expect("c2");
    assert_eq!(r2.doc["affiliation"]["position"], json!("Chief Tester"));
    assert!(r2.updated_at.is_some_and(|t| t >= since - 1000));
    let companies: Vec<Vec<Record>> = ac
        .scan(Object::Company, Scan::ChangedSince(since), &[])
        .try_collect()
        .await
        .expect("scan");
    assert!(companies.into_iter().flatten().next().is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn changed_since_moves_the_search_window_past_10000_results() {
    let sb = Sandbox::start(SandboxOptions {
        seed: 23,
        companies: 10_300,
        contacts: 1,
        rate_limits: tandem_sandbox::RateLimits::unlimited(),
        ..Default::default()
    })
    .await
    .expect("sandbox");
    let admin = Admin::new();
    let mut s = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::Token(Secret::new(sb.hubspot_token())),
    );
    s.retry = fast_retry();
    s.search_rate_limit = tandem_engine::connect::RateLimit {
        requests: 1000,
        per: Duration::from_secs(1),
    };
    let hs = HubSpot::new(s).expect("connector");
    // Every seeded record changed after 1970.
    let pages: Vec<Vec<Record>> = hs
        .scan(Object::Company, Scan::ChangedSince(0), &[])
        .try_collect()
        .await
        .expect("scan past the cap");
    let records: Vec<Record> = pages.into_iter().flatten().collect();
    let ids: BTreeSet<String> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 10_300, "every record, once the window moved");
    // Ascending by modification time; repeats only at the window's boundary.
    assert!(
        records
            .windows(2)
            .all(|w| w[0].updated_at <= w[1].updated_at)
    );
    assert!(
        records.len() - ids.len() <= 5,
        "{} repeats",
        records.len() - ids.len()
    );
    let st = admin.stats(sb.hubspot_url()).await;
    let searches = requests(&st, "POST /crm/v3/objects/companies/search");
    assert!((52..=54).contains(&searches), "{searches} searches: {st}");
    sb.shutdown().await;
}

#[tokio::test]
async fn the_hubspot_budget_follows_the_rate_limit_headers() {
    // A portal with a tighter budget than the configured 190 / 10 s.
    let sb = Sandbox::start(SandboxOptions {
        seed: 24,
        companies: 2_400,
        contacts: 1,
        rate_limits: tandem_sandbox::RateLimits {
            hubspot_per_window: Some(12),
            hubspot_window: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("sandbox");
    let admin = Admin::new();
    let hs = hubspot_connector(&sb);
    assert_eq!(
        hs.rate_limit(),
        tandem_engine::connect::RateLimit::HUBSPOT_BURST
    );
    let records = read_all(&hs, Object::Company, &[]).await;
    assert_eq!(records.len(), 2_400);
    // The first answer's headers set the budget; the remaining 23 requests were spaced by it.
    assert_eq!(
        hs.rate_limit(),
        tandem_engine::connect::RateLimit {
            requests: 12,
            per: Duration::from_secs(1)
        }
    );
    let st = admin.stats(sb.hubspot_url()).await;
    let throttled = st["throttled"].as_u64().unwrap_or(0);
    // Spaced at the budget, at most an occasional 429 from arrival jitter (and retried).
    assert!(throttled <= 2, "{st}");
    sb.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Writes

#[tokio::test]
async fn hubspot_batch_writes_report_each_input_alone() {
    let sb = seeded_sandbox(14, 10, 20).await;
    let admin = Admin::new();
    let hs_url = sb.hubspot_url().to_string();
    let hs = hubspot_connector(&sb);
    let company = txt(&admin.records(&hs_url, "companies").await[0]["id"]);
    let taken = admin
        .records(&hs_url, "contacts")
        .await
        .into_iter()
        .find_map(|c| c["properties"]["email"].as_str().map(str::to_string))
        .expect("an email in use");

    let inputs = vec![
        CreateInput {
            changes: changes(&[
                ("email", Some("new.one@example.org")),
                ("firstname", Some("New")),
                ("lastname", Some("One")),
            ]),
            company_id: Some(company.clone()),
            lookup: Some(Lookup::new("email", "new.one@example.org")),
        },
        // Refused by HubSpot: the email belongs to another contact.
        CreateInput {
            changes: changes(&[("email", Some(&taken)), ("firstname", Some("Dup"))]),
            company_id: None,
            lookup: None,
        },
        // Refused: no such property.
        CreateInput {
            changes: changes(&[
                ("email", Some("new.two@example.org")),
                ("no_such_property_xyz", Some("1")),
            ]),
            company_id: None,
            lookup: None,
        },
        CreateInput {
            changes: changes(&[
                ("email", Some("new.three@example.org")),
                ("lastname", Some("Three")),
            ]),
            company_id: None,
            lookup: None,
        },
    ];
    let out = hs.create(Object::Contact, inputs).await.expect("create");
    assert_eq!(out.len(), 4);
    let first = out[0].as_ref().expect("first created");
    assert_eq!(first.outcome, WriteOutcome::Created);
    assert!(
        matches!(out[1], Err(ConnectError::Rejected { .. })),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(out[2], Err(ConnectError::Rejected { .. })),
        "{:?}",
        out[2]
    );
    let fourth = out[3].as_ref().expect("fourth created");
    let st = admin.stats(&hs_url).await;
    assert_eq!(
        requests(&st, "POST /crm/v3/objects/contacts/batch/create"),
        1,
        "{st}"
    );

    // The new contact is associated with its company as primary.
    let got = hs
        .get(
            Object::Contact,
            &[first.id.clone(), fourth.id.clone()],
            &props(CONTACT_PROPS),
        )
        .await
        .expect("get");
    let got = by_id(got);
    assert_eq!(got[&first.id].company_id.as_deref(), Some(company.as_str()));
    assert_eq!(got[&first.id].get("firstname").as_deref(), Some("New"));
    assert_eq!(got[&fourth.id].company_id, None);

    // Batch update: one unknown id fails alone; `None` clears; the company moves.
    let other_company = txt(&admin.records(&hs_url, "companies").await[1]["id"]);
    let updates = vec![
        UpdateInput {
            id: first.id.clone(),
            changes: changes(&[("firstname", Some("Renamed")), ("lastname", None)]),
            company_id: None,
            current: None,
        },
        UpdateInput {
            id: "999999999999".into(),
            changes: changes(&[("firstname", Some("Ghost"))]),
            company_id: None,
            current: None,
        },
        UpdateInput {
            id: fourth.id.clone(),
            changes: changes(&[("jobtitle", Some("Tester"))]),
            company_id: Some(other_company.clone()),
            current: None,
        },
    ];
    let out = hs.update(Object::Contact, updates).await.expect("update");
    assert!(out[0].is_ok(), "{:?}", out[0]);
    assert!(
        matches!(out[1], Err(ConnectError::Rejected { status: 404, .. })),
        "{:?}",
        out[1]
    );
    assert!(out[2].is_ok(), "{:?}", out[2]);
    // One batch update (the 207 names the failing input) and one association batch.
    let st = admin.stats(&hs_url).await;
    assert_eq!(
        requests(&st, "POST /crm/v3/objects/contacts/batch/update"),
        1,
        "{st}"
    );
    let got = by_id(
        hs.get(
            Object::Contact,
            &[first.id.clone(), fourth.id.clone()],
            &props(CONTACT_PROPS),
        )
        .await
        .expect("get"),
    );
    assert_eq!(got[&first.id].get("firstname").as_deref(), Some("Renamed"));
    assert_eq!(got[&first.id].get("lastname"), None);
    assert_eq!(got[&fourth.id].get("jobtitle").as_deref(), Some("Tester"));
    assert_eq!(
        got[&fourth.id].company_id.as_deref(),
        Some(other_company.as_str())
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn hubspot_batches_hold_at_most_100_inputs() {
    let sb = seeded_sandbox(15, 5, 5).await;
    let admin = Admin::new();
    let hs = hubspot_connector(&sb);
    let inputs: Vec<CreateInput> = (0..250)
        .map(|i| CreateInput {
            changes: changes(&[
                ("name", Some(&format!("Bulk {i}"))),
                ("domain", Some(&format!("bulk{i}.example.org"))),
            ]),
            company_id: None,
            lookup: Some(Lookup::new("domain", format!("bulk{i}.example.org"))),
        })
        .collect();
    let out = hs.create(Object::Company, inputs).await.expect("create");
    assert!(out.iter().all(|r| r.is_ok()));
    let ids: BTreeSet<String> = out
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|w| w.id.clone())
        .collect();
    assert_eq!(ids.len(), 250);
    let updates: Vec<UpdateInput> = ids
        .iter()
        .map(|id| UpdateInput {
            id: id.clone(),
            changes: changes(&[("city", Some("Batchton"))]),
            ..Default::default()
        })
        .collect();
    let out = hs.update(Object::Company, updates).await.expect("update");
    assert!(out.iter().all(|r| r.is_ok()));
    let st = admin.stats(sb.hubspot_url()).await;
    assert_eq!(
        requests(&st, "POST /crm/v3/objects/companies/batch/create"),
        3,
        "{st}"
    );
    assert_eq!(
        requests(&st, "POST /crm/v3/objects/companies/batch/update"),
        3,
        "{st}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn accelo_writes_route_each_key_to_its_resource() {
    let sb = seeded_sandbox(16, 10, 20).await;
    let admin = Admin::new();
    let ac_url = sb.accelo_url().to_string();
    let ac = accelo_connector(&sb);

    let out = ac
        .create(
            Object::Company,
            vec![CreateInput {
                changes: changes(&[
                    ("name", Some("Routed Pty Ltd")),
                    ("website", Some("https://routed.example.org")),
                    ("phone", Some("+61 2 5550 0000")),
                    ("status", Some("Prospect")),
                    ("postal_address.street1", Some("1 Test St")),
                    ("postal_address.city", Some("Sydney")),
                    ("postal_address.zipcode", Some("2000")),
                    ("postal_address.state", Some("New South Wales")),
                    ("postal_address.country", Some("Australia")),
                ]),
                company_id: None,
                lookup: Some(Lookup::new("website", "https://routed.example.org")),
            }],
        )
        .await
        .expect("create");
    let company = out[0].as_ref().expect("company created").clone();
    assert!(company.problems.is_empty(), "{:?}", company.problems);
    let got = ac
        .get(Object::Company, std::slice::from_ref(&company.id), &[])
        .await
        .expect("get");
    let doc = &got[0].doc;
    assert_eq!(doc["name"], json!("Routed Pty Ltd"));
    assert_eq!(doc["status"]["title"], json!("Prospect"));
    assert_eq!(doc["postal_address"]["city"], json!("Sydney"));
    assert_eq!(doc["postal_address"]["state"], json!("New South Wales"));
    assert_eq!(doc["postal_address"]["country"], json!("Australia"));

    let out = ac
        .create(
            Object::Contact,
            vec![
                CreateInput {
                    changes: changes(&[
                        ("firstname", Some("Rita")),
                        ("surname", Some("Route")),
                        ("title", Some("Dr")),
                        ("affiliation.email", Some("rita@routed.example.org")),
                        ("affiliation.position", Some("CTO")),
                        ("affiliation.mobile", Some("+61 400 000 000")),
                    ]),
                    company_id: Some(company.id.clone()),
                    lookup: Some(Lookup::new("affiliation.email", "rita@routed.example.org")),
                },
                // No company: an Accelo contact cannot be created; fails alone.
                CreateInput {
                    changes: changes(&[("firstname", Some("No")), ("surname", Some("Company"))]),
                    company_id: None,
                    lookup: None,
                },
            ],
        )
        .await
        .expect("create");
    let contact = out[0].as_ref().expect("contact created").clone();
    assert!(contact.problems.is_empty(), "{:?}", contact.problems);
    assert!(contact.affiliation_id.is_some());
    assert!(
        matches!(out[1], Err(ConnectError::Invalid { .. })),
        "{:?}",
        out[1]
    );
    let got = ac
        .get(Object::Contact, std::slice::from_ref(&contact.id), &[])
        .await
        .expect("get");
    let r = &got[0];
    assert_eq!(r.company_id.as_deref(), Some(company.id.as_str()));
    assert_eq!(
        r.doc["affiliation"]["email"],
        json!("rita@routed.example.org")
    );
    assert_eq!(r.doc["affiliation"]["mobile"], json!("+61 400 000 000"));
    assert_eq!(r.doc["affiliation"]["position"], json!("CTO"));
    assert_eq!(r.doc["title"], json!("Dr"));
    assert_eq!(
        r.doc["affiliation"]["id"],
        json!(contact.affiliation_id.clone().unwrap_or_default())
    );

    // Updates: affiliation fields, a cleared field, the company's address and status.
    let st_before = admin.stats(&ac_url).await;
    let out = ac
        .update(
            Object::Contact,
            vec![UpdateInput {
                id: contact.id.clone(),
                changes: changes(&[
                    ("surname", Some("Routed")),
                    ("affiliation.email", Some("rita.r@routed.example.org")),
                    ("affiliation.mobile", None),
                ]),
                company_id: None,
                current: Some(r.clone()),
            }],
        )
        .await
        .expect("update");
    assert!(out[0].is_ok(), "{:?}", out[0]);
    let st_after = admin.stats(&ac_url).await;
    assert_eq!(
        requests(&st_after, "PUT /api/v0/contacts/{id}")
            - requests(&st_before, "PUT /api/v0/contacts/{id}"),
        1
    );
    assert_eq!(
        requests(&st_after, "PUT /api/v0/affiliations/{id}")
            - requests(&st_before, "PUT /api/v0/affiliations/{id}"),
        1
    );
    let out = ac
        .update(
            Object::Company,
            vec![UpdateInput {
                id: company.id.clone(),
                changes: changes(&[
                    ("postal_address.city", Some("Melbourne")),
                    ("postal_address.state", Some("Victoria")),
                    ("status", Some("Active")),
                    ("comments", Some("routed")),
                ]),
                company_id: None,
                current: None,
            }],
        )
        .await
        .expect("update");
    assert!(out[0].is_ok(), "{:?}", out[0]);
    let c = &ac
        .get(Object::Company, std::slice::from_ref(&company.id), &[])
        .await
        .expect("get")[0];
    assert_eq!(c.doc["postal_address"]["city"], json!("Melbourne"));
    assert_eq!(c.doc["status"]["title"], json!("Active"));
    assert_eq!(c.doc["comments"], json!("routed"));
    let p = &ac
        .get(Object::Contact, std::slice::from_ref(&contact.id), &[])
        .await
        .expect("get")[0];
    assert_eq!(p.doc["surname"], json!("Routed"));
    assert_eq!(
        p.doc["affiliation"]["email"],
        json!("rita.r@routed.example.org")
    );
    assert!(p.doc["affiliation"].get("mobile").is_none());

    // Setting the status the company already has runs no progression (none leads there).
    let before = admin.stats(&ac_url).await;
    let out = ac
        .update(
            Object::Company,
            vec![UpdateInput {
                id: company.id.clone(),
                changes: changes(&[("status", Some("active"))]),
                ..Default::default()
            }],
        )
        .await
        .expect("update");
    assert!(out[0].is_ok(), "{:?}", out[0]);
    let after = admin.stats(&ac_url).await;
    let key = "POST /api/v0/companies/{id}/progressions/{progression}/auto";
    assert_eq!(requests(&after, key), requests(&before, key), "{after}");
    assert_eq!(
        requests(&after, key),
        1,
        "one progression ran, for Prospect → Active"
    );

    // Unknown write keys fail that record only, before any request.
    let out = ac
        .update(
            Object::Company,
            vec![UpdateInput {
                id: company.id.clone(),
                changes: changes(&[("affiliation.email", Some("x@y.z"))]),
                ..Default::default()
            }],
        )
        .await
        .expect("update");
    assert!(matches!(out[0], Err(ConnectError::Invalid { .. })));
    sb.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn reads_under_429_storms_and_5xx_equal_the_fault_free_reads() {
    let sb = seeded_sandbox(17, 230, 340).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let hs = hubspot_connector(&sb);
    let ac = accelo_connector(&sb);
    let hp = props(COMPANY_PROPS);
    let cp = props(CONTACT_PROPS);

    let clean = (
        read_all(&hs, Object::Company, &hp).await,
        read_all(&hs, Object::Contact, &cp).await,
        read_all(&ac, Object::Company, &[]).await,
        read_all(&ac, Object::Contact, &[]).await,
    );
    let faults =
        json!({"seed": 5, "storm_429": 12, "errors": {"500": 0.04, "502": 0.03, "503": 0.03}});
    admin.faults(&hs_url, faults.clone()).await;
    admin.faults(&ac_url, faults).await;
    let faulty = (
        read_all(&hs, Object::Company, &hp).await,
        read_all(&hs, Object::Contact, &cp).await,
        read_all(&ac, Object::Company, &[]).await,
        read_all(&ac, Object::Contact, &[]).await,
    );
    assert_eq!(clean, faulty);
    for url in [&hs_url, &ac_url] {
        let st = admin.stats(url).await;
        assert!(st["throttled"].as_u64().unwrap_or(0) >= 12, "{st}");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn creates_after_dropped_connections_never_duplicate() {
    let sb = seeded_sandbox(18, 10, 10).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let hs = hubspot_connector(&sb);
    let ac = accelo_connector(&sb);
    // Connections dropped before the request is served, and after (the record exists but the
    // answer is lost).
    let faults = json!({"seed": 9, "drop_rate": 0.15, "drop_after_rate": 0.15});
    admin.faults(&hs_url, faults.clone()).await;
    admin.faults(&ac_url, faults).await;

    let hs_inputs: Vec<CreateInput> = (0..30)
        .map(|i| {
            let email = format!("drop{i}@example.org");
            CreateInput {
                changes: changes(&[("email", Some(&email)), ("firstname", Some("Drop"))]),
                company_id: None,
                lookup: Some(Lookup::new("email", email)),
            }
        })
        .collect();
    // Small batches so that several requests are dropped.
    let mut results = Vec::new();
    for chunk in hs_inputs.chunks(5) {
        results.extend(
            hs.create(Object::Contact, chunk.to_vec())
                .await
                .expect("create"),
        );
    }
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");

    let companies = admin.records(&ac_url, "companies").await;
    let company = txt(&companies[0]["id"]);
    let ac_inputs = accelo_contact_inputs("drop", "Drop", 20, &company);
    let out = ac.create(Object::Contact, ac_inputs).await.expect("create");
    assert!(out.iter().all(|r| r.is_ok()), "{out:?}");

    admin.faults(&hs_url, json!({})).await;
    admin.faults(&ac_url, json!({})).await;
    let hs_st = admin.stats(&hs_url).await;
    let ac_st = admin.stats(&ac_url).await;
    assert!(
        hs_st["faults"].as_object().is_some_and(|f| !f.is_empty()),
        "{hs_st}"
    );
    assert!(
        ac_st["faults"].as_object().is_some_and(|f| !f.is_empty()),
        "{ac_st}"
    );

    // Exactly one record per email on each side.
    let mut per_email: BTreeMap<String, usize> = BTreeMap::new();
    for c in admin.records(&hs_url, "contacts").await {
        if let Some(e) = c["properties"]["email"].as_str()
            && e.starts_with("drop")
        {
            *per_email.entry(e.to_string()).or_default() += 1;
        }
    }
    assert_eq!(per_email.len(), 30);
    assert!(per_email.values().all(|n| *n == 1), "{per_email:?}");
    let mut per_email: BTreeMap<String, usize> = BTreeMap::new();
    for a in admin.records(&ac_url, "affiliations").await {
        if let Some(e) = a["email"].as_str()
            && e.starts_with("drop")
        {
            *per_email.entry(e.to_string()).or_default() += 1;
        }
    }
    assert_eq!(per_email.len(), 20);
    assert!(per_email.values().all(|n| *n == 1), "{per_email:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_create_with_unknown_outcome_is_never_blindly_repeated() {
    let sb = seeded_sandbox(19, 5, 5).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let hs = hubspot_connector(&sb);
    let ac = accelo_connector(&sb);
    // Get the Accelo token first: with every request dropped, the token request would fail too.
    ac.check().await.expect("check");
    admin.faults(&hs_url, json!({"drop_rate": 1.0})).await;
    admin.faults(&ac_url, json!({"drop_rate": 1.0})).await;

    // Without a lookup: the create is sent once and reported unknown.
    let out = hs
        .create(
            Object::Company,
            vec![CreateInput {
                changes: changes(&[("name", Some("Lost Co"))]),
                ..Default::default()
            }],
        )
        .await;
    assert!(
        matches!(
            out.as_deref(),
            Ok([Err(ConnectError::OutcomeUnknown { .. })])
        ),
        "{out:?}"
    );
    let st = admin.stats(&hs_url).await;
    assert_eq!(
        requests(&st, "POST /crm/v3/objects/companies/batch/create"),
        1,
        "{st}"
    );

    let out = ac
        .create(
            Object::Company,
            vec![CreateInput {
                changes: changes(&[("name", Some("Lost Pty Ltd"))]),
                ..Default::default()
            }],
        )
        .await;
    assert!(
        matches!(
            out.as_deref(),
            Ok([Err(ConnectError::OutcomeUnknown { .. })])
        ),
        "{out:?}"
    );
    let st = admin.stats(&ac_url).await;
    assert_eq!(requests(&st, "POST /api/v0/companies"), 1, "{st}");

    // With a lookup that cannot be answered either (the system is unreachable): still one
    // create, whose outcome stays unknown (the record may exist: it is never reported "not
    // written"), and here no record exists.
    let out = ac
        .create(
            Object::Company,
            vec![CreateInput {
                changes: changes(&[("name", Some("Lost Again"))]),
                lookup: Some(Lookup::new("name", "Lost Again")),
                ..Default::default()
            }],
        )
        .await;
    assert!(
        matches!(
            out.as_deref(),
            Ok([Err(e @ ConnectError::OutcomeUnknown { .. })])
                if e.to_string().contains("looking the record up failed too")
        ),
        "{out:?}"
    );
    let st = admin.stats(&ac_url).await;
    assert_eq!(requests(&st, "POST /api/v0/companies"), 2, "{st}");
    admin.faults(&ac_url, json!({})).await;
    assert!(
        !admin
            .records(&ac_url, "companies")
            .await
            .iter()
            .any(|c| c["name"].as_str().is_some_and(|n| n.starts_with("Lost")))
    );
    sb.shutdown().await;
}

/// Creates `input` once per fault seed until both outcomes were seen: the create went through
/// (one more record), or it was lost and the existing record was found by the lookup (no new
/// record). Returns how many times each happened.
async fn create_under_drops(
    c: &dyn Connector,
    admin: &Admin,
    base: &str,
    object: Object,
    input: CreateInput,
    count_matches: impl AsyncFn() -> usize,
) -> (usize, usize) {
    let (mut created, mut found) = (0, 0);
    for seed in 0..40 {
        if created > 0 && found > 0 {
            break;
        }
        admin
            .faults(base, json!({"seed": seed, "drop_rate": 0.5}))
            .await;
        let before = count_matches().await;
        let out = c.create(object, vec![input.clone()]).await.expect("create");
        admin.faults(base, json!({})).await;
        let after = count_matches().await;
        let w = out[0].as_ref().expect("settled");
        match w.outcome {
            WriteOutcome::Created => {
                assert_eq!(after, before + 1);
                created += 1;
            }
            WriteOutcome::Found => {
                assert_eq!(after, before, "a lost create was repeated");
                found += 1;
            }
            WriteOutcome::Updated => panic!("a create reported an update"),
        }
    }
    (created, found)
}

#[tokio::test]
async fn a_lost_create_whose_record_exists_is_found_not_repeated() {
    let sb = seeded_sandbox(22, 10, 10).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let hs = hubspot_connector(&sb);
    let ac = accelo_connector(&sb);

    let website = admin
        .records(&ac_url, "companies")
        .await
        .into_iter()
        .find_map(|c| {
            c["website"]
                .as_str()
                .filter(|w| !w.is_empty())
                .map(str::to_string)
        })
        .expect("a company with a website");
    let input = CreateInput {
        changes: changes(&[("name", Some("Twin Pty Ltd")), ("website", Some(&website))]),
        company_id: None,
        lookup: Some(Lookup::new("website", website.clone())),
    };
    let count = || async {
        admin
            .records(&ac_url, "companies")
            .await
            .iter()
            .filter(|c| c["website"].as_str() == Some(website.as_str()))
            .count()
    };
    let (created, found) =
        create_under_drops(&ac, &admin, &ac_url, Object::Company, input, count).await;
    assert!(created > 0 && found > 0, "created {created}, found {found}");

    let domain = admin
        .records(&hs_url, "companies")
        .await
        .into_iter()
        .find_map(|c| c["properties"]["domain"].as_str().map(str::to_string))
        .expect("a company with a domain");
    let input = CreateInput {
        changes: changes(&[("name", Some("Twin Inc")), ("domain", Some(&domain))]),
        company_id: None,
        lookup: Some(Lookup::new("domain", domain.clone())),
    };
    let count = || async {
        admin
            .records(&hs_url, "companies")
            .await
            .iter()
            .filter(|c| c["properties"]["domain"].as_str() == Some(domain.as_str()))
            .count()
    };
    let (created, found) =
        create_under_drops(&hs, &admin, &hs_url, Object::Company, input, count).await;
    assert!(created > 0 && found > 0, "created {created}, found {found}");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_create_served_but_unanswered_is_found_not_repeated() {
    let sb = seeded_sandbox(25, 5, 5).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let hs = hubspot_connector(&sb);
    let ac = accelo_connector(&sb);
    let company = txt(&admin.records(&ac_url, "companies").await[0]["id"]);
    let (mut hs_found, mut ac_found) = (0, 0);
    for seed in 0..40u64 {
        if hs_found > 0 && ac_found > 0 {
            break;
        }
        // Half of the answers are lost after the request was served.
        let faults = json!({"seed": seed, "drop_after_rate": 0.5});
        let email = format!("served{seed}@example.org");

        admin.faults(&hs_url, faults.clone()).await;
        let out = hs
            .create(
                Object::Contact,
                vec![CreateInput {
                    changes: changes(&[("email", Some(&email)), ("lastname", Some("Served"))]),
                    company_id: None,
                    lookup: Some(Lookup::new("email", email.clone())),
                }],
            )
            .await
            .expect("create");
        admin.faults(&hs_url, json!({})).await;
        let w = out[0].as_ref().expect("settled");
        let matching: Vec<String> = admin
            .records(&hs_url, "contacts")
            .await
            .iter()
            .filter(|c| c["properties"]["email"].as_str() == Some(email.as_str()))
            .map(|c| txt(&c["id"]))
            .collect();
        assert_eq!(matching, vec![w.id.clone()], "exactly the one record");
        if w.outcome == WriteOutcome::Found {
            hs_found += 1;
        }

        admin.faults(&ac_url, faults).await;
        let out = ac
            .create(
                Object::Contact,
                vec![CreateInput {
                    changes: changes(&[
                        ("firstname", Some("Served")),
                        ("surname", Some("Once")),
                        ("affiliation.email", Some(&email)),
                    ]),
                    company_id: Some(company.clone()),
                    lookup: Some(Lookup::new("affiliation.email", email.clone())),
                }],
            )
            .await
            .expect("create");
        admin.faults(&ac_url, json!({})).await;
        let w = out[0].as_ref().expect("settled");
        let matching: Vec<String> = admin
            .records(&ac_url, "affiliations")
            .await
            .iter()
            .filter(|a| a["email"].as_str() == Some(email.as_str()))
            .map(|a| txt(&a["contact"]))
            .collect();
        assert_eq!(matching, vec![w.id.clone()], "exactly the one record");
        assert!(w.affiliation_id.is_some());
        if w.outcome == WriteOutcome::Found {
            ac_found += 1;
        }
    }
    assert!(
        hs_found > 0 && ac_found > 0,
        "hubspot {hs_found}, accelo {ac_found}"
    );
    sb.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[tokio::test]
async fn refused_credentials_and_unreachable_systems_are_the_exit_3_kind() {
    let sb = seeded_sandbox(20, 3, 3).await;
    let mut s = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::Token(Secret::new("pat-wrong-token-1234")),
    );
    s.retry = fast_retry();
    let e = HubSpot::new(s)
        .expect("connector")
        .check()
        .await
        .unwrap_err();
    assert!(
        matches!(e, ConnectError::Credentials { status: 401, .. }),
        "{e:?}"
    );
    assert!(e.is_unreachable());
    assert!(!format!("{e} {e:?}").contains("pat-wrong-token-1234"));
    let settings = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::OAuth {
            client_id: "client".into(),
            client_secret: Secret::new("shh-client-secret"),
            refresh_token: Secret::new("shh-refresh-token"),
        },
    );
    let c = HubSpot::new(settings.clone()).expect("connector");
    let printed = format!("{settings:?} {c:?}");
    assert!(!printed.contains("shh-"), "{printed}");

    let mut s = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new("wrong-secret-5678"),
    );
    s.retry = fast_retry();
    let e = Accelo::new(s)
        .expect("connector")
        .check()
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectError::Credentials { .. }), "{e:?}");
    assert!(e.is_unreachable());
    assert!(!format!("{e} {e:?}").contains("wrong-secret-5678"));

    // Nothing listens on a port we just released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut s = HubSpotSettings::new(
        format!("http://127.0.0.1:{port}"),
        HubSpotAuth::Token(Secret::new("t")),
    );
    s.retry = RetryPolicy {
        retries: 2,
        ..fast_retry()
    };
    let e = HubSpot::new(s)
        .expect("connector")
        .check()
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectError::Unreachable { .. }), "{e:?}");
    assert!(e.is_unreachable());
    sb.shutdown().await;
}

#[tokio::test]
async fn oauth_and_client_credentials_tokens_are_renewed() {
    let sb = Sandbox::start(SandboxOptions {
        seed: 21,
        companies: 3,
        contacts: 3,
        hubspot_access_token_ttl: Duration::from_secs(2),
        ..Default::default()
    })
    .await
    .expect("sandbox");
    let mut s = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::OAuth {
            client_id: sb.hubspot_client_id().to_string(),
            client_secret: Secret::new(sb.hubspot_client_secret()),
            refresh_token: Secret::new(sb.hubspot_refresh_token()),
        },
    );
    s.retry = fast_retry();
    let hs = HubSpot::new(s).expect("connector");
    hs.check().await.expect("first request");
    assert_eq!(hs.token_refreshes().await, 1);
    hs.check().await.expect("second request");
    assert_eq!(
        hs.token_refreshes().await,
        1,
        "the token is reused while fresh"
    );
    // A 2-second token is refreshed a second ahead of expiry; keep using the connector until it
    // has refreshed, with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hs.token_refreshes().await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no refresh");
        hs.check().await.expect("request across expiry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Accelo: ask for 2-second tokens; renewed on expiry.
    let mut s = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new(sb.accelo_client_secret()),
    );
    s.retry = fast_retry();
    s.token_expires_in = Some(2);
    let ac = Accelo::new(s).expect("connector");
    ac.check().await.expect("first");
    assert_eq!(ac.tokens_fetched().await, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ac.tokens_fetched().await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no renewal");
        ac.check().await.expect("request across expiry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sb.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Eventually consistent search, revoked tokens, write faults, honoured budgets

/// How many live HubSpot companies carry each domain starting with `prefix`.
async fn companies_per_domain(
    admin: &Admin,
    hs_url: &str,
    prefix: &str,
) -> BTreeMap<String, usize> {
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for c in admin.records(hs_url, "companies").await {
        if let Some(d) = c["properties"]["domain"].as_str()
            && d.starts_with(prefix)
        {
            *per.entry(d.to_string()).or_default() += 1;
        }
    }
    per
}

/// `n` Accelo contacts of `company` (`{prefix}{i}@accelo.example.org`), each with its email
/// lookup.
fn accelo_contact_inputs(
    prefix: &str,
    firstname: &str,
    n: usize,
    company: &str,
) -> Vec<CreateInput> {
    (0..n)
        .map(|i| {
            let email = format!("{prefix}{i}@accelo.example.org");
            CreateInput {
                changes: changes(&[
                    ("firstname", Some(firstname)),
                    ("surname", Some(&format!("N{i}"))),
                    ("affiliation.email", Some(&email)),
                ]),
                company_id: Some(company.to_string()),
                lookup: Some(Lookup::new("affiliation.email", email)),
            }
        })
        .collect()
}

fn company_inputs(prefix: &str, n: usize) -> Vec<CreateInput> {
    (0..n)
        .map(|i| {
            let domain = format!("{prefix}{i}.example.com");
            CreateInput {
                changes: changes(&[
                    ("name", Some(&format!("Lagging {i} Ltd"))),
                    ("domain", Some(&domain)),
                ]),
                company_id: None,
                lookup: Some(Lookup::new("domain", domain)),
            }
        })
        .collect()
}

fn hubspot_with_lag_window(sb: &Sandbox, window: Duration) -> HubSpot {
    let mut s = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::Token(Secret::new(sb.hubspot_token())),
    );
    s.retry = fast_retry();
    s.search_index_lag = window;
    HubSpot::new(s).expect("hubspot connector")
}

#[tokio::test]
async fn lost_company_creates_under_a_lagging_search_index_never_duplicate() {
    let sb = seeded_sandbox(31, 5, 5).await;
    let admin = Admin::new();
    let hs_url = sb.hubspot_url().to_string();
    // Search sees a write only 1.5 s after it; a third of the answers are lost after the
    // request was served (the company exists, the client cannot know).
    let faults = json!({"seed": 4, "drop_after_rate": 0.3, "search_lag_ms": 1500});

    // Control: a connector that believes the first search (no index-lag window) creates
    // duplicates — the sandbox's lag is real.
    admin.faults(&hs_url, faults.clone()).await;
    let naive = hubspot_with_lag_window(&sb, Duration::ZERO);
    let mut results = Vec::new();
    for chunk in company_inputs("naive", 12).chunks(3) {
        results.extend(
            naive
                .create(Object::Company, chunk.to_vec())
                .await
                .expect("create"),
        );
    }
    admin.faults(&hs_url, json!({})).await;
    let per = companies_per_domain(&admin, &hs_url, "naive").await;
    assert!(
        per.values().any(|n| *n > 1),
        "without the window a lost create is repeated: {per:?} {results:?}"
    );

    // The connector waits for the index before concluding "absent".
    admin.faults(&hs_url, faults).await;
    let hs = hubspot_with_lag_window(&sb, Duration::from_secs(3));
    let mut results = Vec::new();
    for chunk in company_inputs("robust", 12).chunks(3) {
        results.extend(
            hs.create(Object::Company, chunk.to_vec())
                .await
                .expect("create"),
        );
    }
    admin.faults(&hs_url, json!({})).await;
    let st = admin.stats(&hs_url).await;
    assert!(st["faults"]["drop_after"].as_u64().unwrap_or(0) > 0, "{st}");
    let written: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().expect("every create settled"))
        .collect();
    assert!(
        written.iter().any(|w| w.outcome == WriteOutcome::Found),
        "some lost create was found once the index caught up: {written:?}"
    );
    let per = companies_per_domain(&admin, &hs_url, "robust").await;
    assert_eq!(per.len(), 12, "{per:?}");
    assert!(per.values().all(|n| *n == 1), "{per:?}");
    // Each result names the one company of its domain.
    let truth: BTreeMap<String, String> = admin
        .records(&hs_url, "companies")
        .await
        .iter()
        .filter_map(|c| {
            c["properties"]["domain"]
                .as_str()
                .map(|d| (d.to_string(), txt(&c["id"])))
        })
        .collect();
    for (i, w) in written.iter().enumerate() {
        assert_eq!(
            truth.get(&format!("robust{i}.example.com")),
            Some(&w.id),
            "input {i}"
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn revoked_tokens_are_replaced_after_one_401() {
    let sb = seeded_sandbox(32, 3, 3).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    let mut s = HubSpotSettings::new(
        sb.hubspot_url(),
        HubSpotAuth::OAuth {
            client_id: sb.hubspot_client_id().to_string(),
            client_secret: Secret::new(sb.hubspot_client_secret()),
            refresh_token: Secret::new(sb.hubspot_refresh_token()),
        },
    );
    s.retry = fast_retry();
    let hs = HubSpot::new(s).expect("connector");
    let ac = accelo_connector(&sb);
    hs.check().await.expect("hubspot");
    ac.check().await.expect("accelo");
    assert_eq!(hs.token_refreshes().await, 1);
    assert_eq!(ac.tokens_fetched().await, 1);

    for url in [&hs_url, &ac_url] {
        let r = admin
            .post(format!("{url}/_sandbox/revoke_tokens"), json!({}))
            .await;
        assert_eq!(r["revoked"], 1, "{url}: {r}");
    }
    // The next request is refused with 401, the token source is told, a new token is fetched
    // and the request succeeds — once.
    hs.check().await.expect("hubspot after revocation");
    ac.check().await.expect("accelo after revocation");
    assert_eq!(hs.token_refreshes().await, 2);
    assert_eq!(ac.tokens_fetched().await, 2);
    let st = admin.stats(&hs_url).await;
    assert_eq!(requests(&st, "POST /oauth/v1/token"), 2, "{st}");
    assert_eq!(
        requests(&st, "GET /crm/v3/objects/companies"),
        3,
        "first check, the refused request, its repetition: {st}"
    );
    let st = admin.stats(&ac_url).await;
    assert_eq!(requests(&st, "POST /oauth2/v0/token"), 2, "{st}");
    assert_eq!(requests(&st, "GET /api/v0/companies"), 3, "{st}");
    // And the new tokens stay in use.
    hs.check().await.expect("hubspot");
    ac.check().await.expect("accelo");
    assert_eq!(hs.token_refreshes().await, 2);
    assert_eq!(ac.tokens_fetched().await, 2);
    sb.shutdown().await;
}

/// Creates every input the way successive runs would: a run creates (settling lost creates by
/// lookup as far as it can); what it leaves `OutcomeUnknown` is looked up first by the next run
/// (as open intents are settled) and created again only when absent. At most six runs.
async fn create_until_settled(
    c: &dyn Connector,
    object: Object,
    inputs: &[CreateInput],
    chunk: usize,
) -> Vec<Written> {
    let mut out: Vec<Option<Written>> = vec![None; inputs.len()];
    for run in 0..6 {
        let mut to_create = Vec::new();
        let open: Vec<usize> = (0..inputs.len()).filter(|i| out[*i].is_none()).collect();
        for i in open {
            if run > 0 {
                let lookup = inputs[i].lookup.as_ref().expect("inputs have lookups");
                if let Some(r) = c.find(object, lookup, &[]).await.expect("lookup").first() {
                    out[i] = Some(Written::new(r.id.clone(), WriteOutcome::Found));
                    continue;
                }
            }
            to_create.push(i);
        }
        for ch in to_create.chunks(chunk) {
            let batch: Vec<CreateInput> = ch.iter().map(|i| inputs[*i].clone()).collect();
            let results = c.create(object, batch).await.expect("create");
            for (i, r) in ch.iter().zip(results) {
                match r {
                    Ok(w) => out[*i] = Some(w),
                    Err(ConnectError::OutcomeUnknown { .. }) => {}
                    Err(e) => panic!("input {i}: {e}"),
                }
            }
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, w)| w.unwrap_or_else(|| panic!("input {i} unsettled after six runs")))
        .collect()
}

#[tokio::test]
async fn creates_under_5xx_and_429_storms_are_made_exactly_once() {
    let sb = seeded_sandbox(33, 10, 10).await;
    let admin = Admin::new();
    let (hs_url, ac_url) = (sb.hubspot_url().to_string(), sb.accelo_url().to_string());
    // The lookups of lost creates find what exists at once here (no search lag), so a short
    // index-lag window keeps the test quick.
    let hs = hubspot_with_lag_window(&sb, Duration::from_millis(200));
    let ac = accelo_connector(&sb);
    ac.check().await.expect("token first");
    let company = txt(&admin.records(&ac_url, "companies").await[0]["id"]);
    let faults = json!({"seed": 2, "errors": {"500": 0.1, "503": 0.1}, "storm_429": 5});

    let hs_contacts: Vec<CreateInput> = (0..30)
        .map(|i| {
            let email = format!("storm{i}@example.org");
            CreateInput {
                changes: changes(&[("email", Some(&email)), ("firstname", Some("Storm"))]),
                company_id: None,
                lookup: Some(Lookup::new("email", email)),
            }
        })
        .collect();
    let hs_companies = company_inputs("storm", 10);
    let ac_contacts = accelo_contact_inputs("storm", "Storm", 20, &company);

    admin.faults(&hs_url, faults.clone()).await;
    let contacts = create_until_settled(&hs, Object::Contact, &hs_contacts, 5).await;
    let companies = create_until_settled(&hs, Object::Company, &hs_companies, 5).await;
    admin.faults(&hs_url, json!({})).await;
    admin.faults(&ac_url, faults).await;
    let ac_out = create_until_settled(&ac, Object::Contact, &ac_contacts, 20).await;
    admin.faults(&ac_url, json!({})).await;

    // The faults happened on both sides …
    for url in [&hs_url, &ac_url] {
        let st = admin.stats(url).await;
        assert!(st["throttled"].as_u64().unwrap_or(0) >= 5, "{st}");
        let f = &st["faults"];
        assert!(
            f["500"].as_u64().unwrap_or(0) + f["503"].as_u64().unwrap_or(0) > 0,
            "{st}"
        );
    }
    // … and every input exists exactly once, under the id its result names.
    let mut per_email: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in admin.records(&hs_url, "contacts").await {
        if let Some(e) = c["properties"]["email"].as_str()
            && e.starts_with("storm")
        {
            per_email
                .entry(e.to_string())
                .or_default()
                .push(txt(&c["id"]));
        }
    }
    assert_eq!(per_email.len(), 30);
    for (i, w) in contacts.iter().enumerate() {
        assert_eq!(
            per_email[&format!("storm{i}@example.org")],
            vec![w.id.clone()]
        );
    }
    let per = companies_per_domain(&admin, &hs_url, "storm").await;
    assert_eq!(per.len(), 10);
    assert!(per.values().all(|n| *n == 1), "{per:?}");
    let truth: BTreeMap<String, String> = admin
        .records(&hs_url, "companies")
        .await
        .iter()
        .filter_map(|c| {
            c["properties"]["domain"]
                .as_str()
                .map(|d| (d.to_string(), txt(&c["id"])))
        })
        .collect();
    for (i, w) in companies.iter().enumerate() {
        assert_eq!(truth.get(&format!("storm{i}.example.com")), Some(&w.id));
    }
    let mut per_email: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in admin.records(&ac_url, "affiliations").await {
        if let Some(e) = a["email"].as_str()
            && e.starts_with("storm")
        {
            per_email
                .entry(e.to_string())
                .or_default()
                .push(txt(&a["contact"]));
        }
    }
    assert_eq!(per_email.len(), 20);
    for (i, w) in ac_out.iter().enumerate() {
        assert_eq!(
            per_email[&format!("storm{i}@accelo.example.org")],
            vec![w.id.clone()]
        );
    }
    // No stray contact either (an Accelo contact create that failed half-way).
    let stormy = admin
        .records(&ac_url, "contacts")
        .await
        .iter()
        .filter(|c| c["firstname"] == "Storm")
        .count();
    assert_eq!(stormy, 20);
    sb.shutdown().await;
}

#[tokio::test]
async fn the_accelo_budget_waits_for_the_window_when_nothing_remains() {
    // 3 requests per 2-second window: the third answer says `X-RateLimit-Remaining: 0` and when
    // the window resets.
    let sb = Sandbox::start(SandboxOptions {
        seed: 34,
        companies: 3,
        contacts: 3,
        rate_limits: tandem_sandbox::RateLimits {
            accelo_per_hour: Some(3),
            accelo_window: Duration::from_secs(2),
            ..tandem_sandbox::RateLimits::unlimited()
        },
        ..Default::default()
    })
    .await
    .expect("sandbox");
    let admin = Admin::new();
    let ac_url = sb.accelo_url().to_string();
    let mut s = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new(sb.accelo_client_secret()),
    );
    // The connector's own budget counts over the same 2 seconds (it cannot learn the window's
    // length: Accelo reports only the limit, what remains and when it resets). Its GCRA lets 3
    // requests through at once and then one every 2/3 s, faster than the rolling window frees:
    // only the pause on `X-RateLimit-Remaining: 0` keeps the fourth out of the full window.
    s.rate_limit = tandem_engine::connect::RateLimit {
        requests: 5000,
        per: Duration::from_secs(2),
    };
    // Long enough to wait out the window the system announces; no retries, so a request sent
    // into a full window fails instead of being repeated.
    s.retry = RetryPolicy {
        retries: 0,
        max_server_wait: Duration::from_secs(60),
        ..fast_retry()
    };
    let ac = Accelo::new(s).expect("connector");
    for round in 0..3 {
        // Three requests fill the window; the fourth is held until the announced reset.
        for _ in 0..4 {
            ac.check()
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    let st = admin.stats(&ac_url).await;
    assert_eq!(requests(&st, "GET /api/v0/companies"), 12, "{st}");
    assert_eq!(
        st["throttled"], 0,
        "the connector never sent a request into a full window: {st}"
    );
    assert_eq!(
        ac.rate_limit().requests,
        3,
        "the budget follows X-RateLimit-Limit"
    );
    sb.shutdown().await;
}

/// A 429 while Accelo's hourly budget still has plenty left is transient: only that request is
/// retried, after a short backoff, and nothing waits for the announced reset (a minute away in
/// the simulator's injected 429s). With the production cap on server waits (15 minutes), a
/// connector that paused for every such 429 would not finish within the deadline.
#[tokio::test]
async fn a_transient_accelo_429_does_not_pause_every_request_until_the_reset() {
    let sb = seeded_sandbox(35, 5, 5).await;
    let admin = Admin::new();
    let ac_url = sb.accelo_url().to_string();
    let mut s = AcceloSettings::new(
        sb.accelo_url(),
        sb.accelo_client_id(),
        Secret::new(sb.accelo_client_secret()),
    );
    s.retry = RetryPolicy {
        max_server_wait: RetryPolicy::default().max_server_wait,
        ..fast_retry()
    };
    let ac = Accelo::new(s).expect("connector");
    // One clean answer: it reports thousands of requests left.
    ac.check().await.unwrap();
    // The next two requests are answered 429 (`X-RateLimit-Remaining: 0`, reset in 60 s).
    admin.faults(&ac_url, json!({"storm_429": 2})).await;
    let run = async {
        for _ in 0..20 {
            ac.check().await.unwrap();
        }
    };
    tokio::time::timeout(crate::support::serve::DEADLINE, run)
        .await
        .expect("transient 429s are retried without waiting for the reset");
    let st = admin.stats(&ac_url).await;
    assert_eq!(st["throttled"], 2, "{st}");
    sb.shutdown().await;
}
