//! The HubSpot simulator over real HTTP with a plain client: auth, objects, batch, search,
//! associations, properties, rate limits, faults, admin API — every documented behaviour and
//! error path the sync engine relies on.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tandem_sandbox::{FaultConfig, RateLimits, Sandbox, SandboxOptions};

struct T {
    sb: Sandbox,
    http: reqwest::Client,
}

struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl T {
    async fn start() -> T {
        T::with(SandboxOptions {
            seed: 11,
            companies: 30,
            contacts: 120,
            rate_limits: RateLimits::unlimited(),
            ..Default::default()
        })
        .await
    }

    async fn with(opts: SandboxOptions) -> T {
        T {
            sb: Sandbox::start(opts).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.sb.hubspot_url(), path))
            .bearer_auth(self.sb.hubspot_token());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Option<Value>) -> Resp {
        self.send(reqwest::Method::PUT, path, body).await
    }
    async fn delete(&self, path: &str) -> Resp {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn admin(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{}", self.sb.hubspot_url(), path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn admin_post(&self, path: &str, body: Value) -> Resp {
        let r = self
            .http
            .post(format!("{}{}", self.sb.hubspot_url(), path))
            .json(&body)
            .send()
            .await
            .unwrap();
        Resp {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.json().await.unwrap_or(Value::Null),
        }
    }

    /// The first seeded contact with a primary company: (contact id, company id).
    async fn contact_with_company(&self) -> (String, String) {
        let all = self.admin("/_sandbox/records/contacts").await;
        for c in all.as_array().unwrap() {
            if let Some(co) = c["properties"]["associatedcompanyid"].as_str() {
                return (c["id"].as_str().unwrap().to_string(), co.to_string());
            }
        }
        panic!("no contact with a company");
    }
}

fn error_shape(r: &Resp, status: StatusCode, category: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert_eq!(r.body["status"], "error");
    assert_eq!(r.body["category"], category, "body: {}", r.body);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        r.body["correlationId"]
            .as_str()
            .is_some_and(|c| c.len() == 36)
    );
}

// ---------------------------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn missing_and_wrong_tokens_get_401_in_hubspot_shape() {
    let t = T::start().await;
    let url = format!("{}/crm/v3/objects/contacts", t.sb.hubspot_url());
    let r = t.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    let r = t
        .http
        .get(&url)
        .bearer_auth("pat-na1-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert!(!body.to_string().contains(t.sb.hubspot_token()));
}

#[tokio::test]
async fn oauth_refresh_issues_access_tokens_that_expire() {
    let t = T::with(SandboxOptions {
        hubspot_access_token_ttl: Duration::from_millis(300),
        rate_limits: RateLimits::unlimited(),
        ..Default::default()
    })
    .await;
    let token_url = format!("{}/oauth/v1/token", t.sb.hubspot_url());
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", t.sb.hubspot_client_id()),
        ("client_secret", t.sb.hubspot_client_secret()),
        ("refresh_token", t.sb.hubspot_refresh_token()),
    ];
    let r = t.http.post(&token_url).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tok: Value = r.json().await.unwrap();
    assert_eq!(tok["token_type"], "bearer");
    assert_eq!(tok["expires_in"], 0, "300 ms rounds down to 0 s");
    let access = tok["access_token"].as_str().unwrap().to_string();
    let list = format!("{}/crm/v3/objects/companies", t.sb.hubspot_url());
    let r = t.http.get(&list).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Poll until the token has expired (deadline, no fixed sleep as synchronisation).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = t.http.get(&list).bearer_auth(&access).send().await.unwrap();
        if r.status() == StatusCode::UNAUTHORIZED {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "token never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A wrong refresh token or secret is refused.
    let mut bad = form;
    bad[3] = ("refresh_token", "na1-nope");
    let r = t.http.post(&token_url).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["status"],
        "BAD_REFRESH_TOKEN"
    );
    let mut bad = form;
    bad[2] = ("client_secret", "nope");
    let r = t.http.post(&token_url).form(&bad).send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["status"],
        "BAD_CLIENT_SECRET"
    );
}

// ---------------------------------------------------------------------------------------------
// Objects

#[tokio::test]
async fn list_pages_with_after_cursor_until_paging_is_absent() {
    let t = T::start().await;
    let first = t.get("/crm/v3/objects/contacts").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.body["results"].as_array().unwrap().len(),
        10,
        "default limit 10"
    );
    // Default properties for contacts.
    let props = first.body["results"][0]["properties"].as_object().unwrap();
    for p in [
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ] {
        assert!(props.contains_key(p), "default property {p}");
    }
    assert!(!props.contains_key("phone"));
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => {
                format!("/crm/v3/objects/contacts?limit=50&after={a}&properties=email,phone")
            }
            None => "/crm/v3/objects/contacts?limit=50&properties=email,phone".to_string(),
        };
        let r = t.get(&path).await;
        assert_eq!(r.status, StatusCode::OK);
        for rec in r.body["results"].as_array().unwrap() {
            seen.push(rec["id"].as_str().unwrap().to_string());
            // Requested properties without a value come back as null.
            assert!(rec["properties"].as_object().unwrap().contains_key("phone"));
            assert!(rec["createdAt"].as_str().unwrap().ends_with('Z'));
        }
        match r.body.get("paging") {
            Some(p) => after = Some(p["next"]["after"].as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 120);
    let mut sorted = seen.clone();
    sorted.sort_by_key(|s| s.parse::<u64>().unwrap());
    sorted.dedup();
    assert_eq!(sorted, seen, "each record exactly once, ascending");
    assert!(
        seen.iter()
            .all(|id| id.parse::<u64>().unwrap() > u64::from(u32::MAX))
    );

    let r = t.get("/crm/v3/objects/contacts?limit=101").await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t.get("/crm/v3/objects/contacts?after=garbage").await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t.get("/crm/v3/objects/deals").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.get("/crm/v2/nothing/here").await;
    error_shape(&r, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
    assert_eq!(
        t.admin("/_sandbox/stats").await["requests"]["GET (unmatched)"],
        1
    );
}

#[tokio::test]
async fn object_type_ids_work_like_names() {
    let t = T::start().await;
    let a = t.get("/crm/v3/objects/0-2?limit=5").await;
    let b = t.get("/crm/v3/objects/companies?limit=5").await;
    assert_eq!(a.body, b.body);
    let stats = t.admin("/_sandbox/stats").await;
    assert_eq!(stats["requests"]["GET /crm/v3/objects/companies"], 2);
}

#[tokio::test]
async fn create_get_update_archive_round_trip() {
    let t = T::start().await;
    let r = t
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Zürich Treuhand AG", "domain": "zh-treuhand.ch", "lifecyclestage": "lead", "numberofemployees": 12}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["properties"]["name"], "Zürich Treuhand AG");
    assert_eq!(
        r.body["properties"]["numberofemployees"], "12",
        "values are strings"
    );
    assert_eq!(r.body["properties"]["hs_object_id"], id.as_str());
    let created_at = r.body["createdAt"].as_str().unwrap().to_string();

    let got = t
        .get(&format!(
            "/crm/v3/objects/companies/{id}?properties=name,lifecyclestage,phone"
        ))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["properties"]["lifecyclestage"], "lead");
    assert_eq!(got.body["properties"]["phone"], Value::Null);
    assert_eq!(got.body["archived"], false);

    // Empty string clears; updatedAt moves on.
    let r = t
        .patch(
            &format!("/crm/v3/objects/companies/{id}"),
            json!({"properties": {"domain": "", "phone": "+41 44 000 0000"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["properties"]["domain"], Value::Null);
    assert_eq!(r.body["properties"]["phone"], "+41 44 000 0000");
    assert!(r.body["updatedAt"].as_str().unwrap() >= created_at.as_str());
    assert_eq!(
        r.body["properties"]["hs_lastmodifieddate"], r.body["updatedAt"],
        "hs_lastmodifieddate follows updatedAt"
    );

    // Archive: 204, then 404, then visible with archived=true.
    let r = t.delete(&format!("/crm/v3/objects/companies/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t.get(&format!("/crm/v3/objects/companies/{id}")).await;
    error_shape(&r, StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND");
    let r = t
        .get(&format!("/crm/v3/objects/companies/{id}?archived=true"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["archived"], true);
    assert!(r.body["archivedAt"].is_string());
    let r = t.get("/crm/v3/objects/companies?archived=true").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    let r = t.delete(&format!("/crm/v3/objects/companies/{id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "archiving twice is fine");
}

#[tokio::test]
async fn unknown_read_only_and_invalid_values_are_validation_errors_naming_the_property() {
    let t = T::start().await;
    let before = t
        .admin("/_sandbox/records/contacts")
        .await
        .as_array()
        .unwrap()
        .len();
    for (props, name, code) in [
        (
            json!({"email": "a@b.co", "favourite_colour": "red"}),
            "favourite_colour",
            "PROPERTY_DOESNT_EXIST",
        ),
        (
            json!({"email": "a@b.co", "hs_object_id": "1"}),
            "hs_object_id",
            "READ_ONLY_VALUE",
        ),
        (
            json!({"email": "a@b.co", "lastmodifieddate": "2024-01-01"}),
            "lastmodifieddate",
            "READ_ONLY_VALUE",
        ),
        (
            json!({"email": "a@b.co", "associatedcompanyid": "1"}),
            "associatedcompanyid",
            "READ_ONLY_VALUE",
        ),
        (
            json!({"email": "a@b.co", "lifecyclestage": "Lead"}),
            "lifecyclestage",
            "INVALID_OPTION",
        ),
        (json!({"email": "not-an-email"}), "email", "INVALID_EMAIL"),
    ] {
        let r = t
            .post("/crm/v3/objects/contacts", json!({"properties": props}))
            .await;
        error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(
            r.body["message"].as_str().unwrap().contains(name),
            "{}",
            r.body
        );
        assert_eq!(r.body["errors"][0]["code"], code);
        assert_eq!(r.body["errors"][0]["context"]["propertyName"][0], name);
    }
    let r = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"phone": "1"}}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .post("/crm/v3/objects/contacts", json!({"properties": "nope"}))
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .http
        .post(format!("{}/crm/v3/objects/contacts", t.sb.hubspot_url()))
        .bearer_auth(t.sb.hubspot_token())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let after = t
        .admin("/_sandbox/records/contacts")
        .await
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing was created");
    // PATCH with an unknown property changes nothing either.
    let (cid, _) = t.contact_with_company().await;
    let before = t.get(&format!("/crm/v3/objects/contacts/{cid}")).await.body;
    let r = t
        .patch(
            &format!("/crm/v3/objects/contacts/{cid}"),
            json!({"properties": {"firstname": "X", "nope": "1"}}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(
        t.get(&format!("/crm/v3/objects/contacts/{cid}")).await.body,
        before
    );
}

#[tokio::test]
async fn duplicate_email_is_a_409_conflict_and_email_works_as_id_property() {
    let t = T::start().await;
    let r = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "Dup@Example.com", "firstname": "A"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "dup@example.com"}}),
        )
        .await;
    error_shape(&r, StatusCode::CONFLICT, "CONFLICT");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("Existing ID: {id}"))
    );
    let r = t
        .get("/crm/v3/objects/contacts/dup@example.com?idProperty=email")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id.as_str());
    let r = t
        .patch(
            "/crm/v3/objects/contacts/DUP@example.com?idProperty=email",
            json!({"properties": {"lastname": "Ōkubo"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["properties"]["lastname"], "Ōkubo");
    let r = t
        .get("/crm/v3/objects/contacts/x@y.z?idProperty=firstname")
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
}

#[tokio::test]
async fn create_with_association_sets_the_primary_company() {
    let t = T::start().await;
    let co = t
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Acme"}}),
        )
        .await;
    let co_id = co.body["id"].as_str().unwrap().to_string();
    let r = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "p@acme.test"},
                   "associations": [{"to": {"id": co_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let got = t
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?properties=associatedcompanyid&associations=companies"
        ))
        .await;
    assert_eq!(
        got.body["properties"]["associatedcompanyid"],
        co_id.as_str()
    );
    let types: Vec<&str> = got.body["associations"]["companies"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["contact_to_company", "contact_to_company_unlabeled"]
    );
    // An association to a missing record refuses the whole create.
    let r = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "q@acme.test"},
                   "associations": [{"to": {"id": "1"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .get("/crm/v3/objects/contacts/q@acme.test?idProperty=email")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// Batch

#[tokio::test]
async fn batch_limits_and_partial_failures() {
    let t = T::start().await;
    let too_many: Vec<Value> = (0..101).map(|i| json!({"id": i.to_string()})).collect();
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": too_many}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    let (cid, _) = t.contact_with_company().await;
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": cid}, {"id": "999"}], "properties": ["email", "associatedcompanyid"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.body["status"], "COMPLETE");
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["numErrors"], 1);
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(r.body["errors"][0]["context"]["ids"][0], "999");
    assert!(r.body["startedAt"].is_string() && r.body["completedAt"].is_string());

    // Without trace ids one bad input fails the whole batch and nothing is created.
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [{"properties": {"email": "ok1@x.test"}}, {"properties": {"email": "ok2@x.test", "bogus": "1"}}]}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert_eq!(
        t.get("/crm/v3/objects/contacts/ok1@x.test?idProperty=email")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // With trace ids: 207, the good ones created, errors carry the trace id.
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [
                {"properties": {"email": "ok1@x.test"}, "objectWriteTraceId": "t1"},
                {"properties": {"email": "ok2@x.test", "bogus": "1"}, "objectWriteTraceId": "t2"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["results"][0]["objectWriteTraceId"], "t1");
    assert_eq!(
        r.body["errors"][0]["context"]["objectWriteTraceId"][0],
        "t2"
    );
    // All good: 201.
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [{"properties": {"email": "ok3@x.test"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Duplicate emails inside one batch are refused.
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": [{"properties": {"email": "twin@x.test"}}, {"properties": {"email": "TWIN@x.test"}}]}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    // Update: a missing id is a partial failure; duplicates are refused.
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": cid, "properties": {"jobtitle": "CTO"}}, {"id": "12345", "properties": {"jobtitle": "x"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.body["results"][0]["properties"]["jobtitle"], "CTO");
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": cid, "properties": {}}, {"id": cid, "properties": {}}]}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    // Upsert by email: one new, one existing.
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [
                {"id": "ok3@x.test", "idProperty": "email", "properties": {"firstname": "Three"}},
                {"id": "new@x.test", "idProperty": "email", "properties": {"firstname": "New"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let news: Vec<bool> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["new"].as_bool().unwrap())
        .collect();
    assert_eq!(news, vec![false, true]);
    assert_eq!(
        t.get("/crm/v3/objects/contacts/new@x.test?idProperty=email")
            .await
            .status,
        StatusCode::OK
    );

    // Archive: 204, missing ids ignored.
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/archive",
            json!({"inputs": [{"id": cid}, {"id": "1"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get(&format!("/crm/v3/objects/contacts/{cid}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

// ---------------------------------------------------------------------------------------------
// Search

#[tokio::test]
async fn search_filters_sorts_pages_and_counts() {
    let t = T::start().await;
    let all = t.admin("/_sandbox/records/companies").await;
    let all = all.as_array().unwrap();
    let with_domain = all
        .iter()
        .filter(|c| c["properties"]["domain"].is_string())
        .count();
    let r = t
        .post(
            "/crm/v3/objects/companies/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "HAS_PROPERTY"}]}],
                   "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                   "properties": ["domain", "hs_lastmodifieddate"], "limit": 200}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["total"], with_domain);
    assert!(
        r.headers.get("x-hubspot-ratelimit-max").is_none(),
        "search has no rate-limit headers"
    );
    let dates: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["properties"]["hs_lastmodifieddate"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted);

    // EQ is case-insensitive on strings; IN needs lower-case values.
    let one = &all[0];
    let domain = one["properties"]["domain"].as_str().unwrap_or("acme.test");
    let eq = t
        .post("/crm/v3/objects/companies/search", json!({"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ", "value": domain.to_uppercase()}]}]}))
        .await;
    assert_eq!(eq.body["total"], 1, "{}", eq.body);
    let in_upper = t
        .post("/crm/v3/objects/companies/search", json!({"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "IN", "values": [domain.to_uppercase()]}]}]}))
        .await;
    assert_eq!(in_upper.body["total"], 0);
    // Groups are ORed, filters ANDed; a group that can never match adds nothing.
    let or = t
        .post(
            "/crm/v3/objects/companies/search",
            json!({"filterGroups": [
                {"filters": [{"propertyName": "domain", "operator": "EQ", "value": domain}]},
                {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "1"}]}]}),
        )
        .await;
    assert_eq!(or.body["total"], 1);
    // BETWEEN on a date, CONTAINS_TOKEN with a wildcard.
    let r = t
        .post(
            "/crm/v3/objects/companies/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "BETWEEN", "value": "2023-01-01T00:00:00.000Z", "highValue": "2030-01-01T00:00:00.000Z"}]}]}),
        )
        .await;
    assert_eq!(r.body["total"], all.len());
    let contacts = t
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@gmail.com"}]}], "limit": 200}),
        )
        .await;
    for c in contacts.body["results"].as_array().unwrap() {
        assert!(
            c["properties"]["email"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .ends_with("@gmail.com")
        );
    }
    // Paging with after, the 200 limit and the 10,000 cap.
    let p1 = t
        .post("/crm/v3/objects/contacts/search", json!({"limit": 100}))
        .await;
    assert_eq!(p1.body["total"], 120);
    assert_eq!(p1.body["paging"]["next"]["after"], "100");
    let p2 = t
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"limit": 100, "after": "100"}),
        )
        .await;
    assert_eq!(p2.body["results"].as_array().unwrap().len(), 20);
    assert!(p2.body.get("paging").is_none());
    let r = t
        .post("/crm/v3/objects/contacts/search", json!({"limit": 201}))
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .post("/crm/v3/objects/contacts/search", json!({"after": "10000"}))
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    // Filter limits: 6 per group, 5 groups, 18 in all; one sort; known properties only.
    let f = json!({"propertyName": "email", "operator": "HAS_PROPERTY"});
    let r = t
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": vec![f.clone(); 7]}]}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": vec![json!({"filters": [f.clone()]}); 6]}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": vec![json!({"filters": vec![f.clone(); 4]}); 5]}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"sorts": ["email", "firstname"]}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t.post("/crm/v3/objects/contacts/search", json!({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]})).await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    // Incremental-sync shape: modified since, ascending.
    let r = t
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1700000000000"}]}],
                   "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Associated-company filter.
    let (cid, coid) = t.contact_with_company().await;
    let r = t
        .post("/crm/v3/objects/contacts/search", json!({"filterGroups": [{"filters": [{"propertyName": "associations.company", "operator": "EQ", "value": coid}]}], "limit": 200}))
        .await;
    assert!(
        r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == cid.as_str())
    );
}

#[tokio::test]
async fn search_is_limited_to_five_requests_per_window() {
    let t = T::with(SandboxOptions {
        rate_limits: RateLimits {
            hubspot_search_per_second: Some(5),
            // A long window makes the test independent of how fast it runs.
            hubspot_search_window: Duration::from_secs(3600),
            ..RateLimits::unlimited()
        },
        ..Default::default()
    })
    .await;
    for _ in 0..5 {
        let r = t.post("/crm/v3/objects/contacts/search", json!({})).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = t.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["message"], "You have reached your secondly limit.");
    assert_eq!(r.body["errorType"], "RATE_LIMIT");
    assert!(r.headers.get("x-hubspot-ratelimit-remaining").is_none());
    // Search does not consume the ten-secondly budget, and other endpoints still work.
    let r = t.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(r.status, StatusCode::OK);
    let stats = t.admin("/_sandbox/stats").await;
    assert_eq!(stats["throttled"], 1);
}

#[tokio::test]
async fn ten_second_rolling_limit_answers_429_with_headers_and_policy() {
    let t = T::with(SandboxOptions {
        rate_limits: RateLimits {
            hubspot_per_window: Some(5),
            hubspot_window: Duration::from_secs(3600),
            ..RateLimits::unlimited()
        },
        ..Default::default()
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let r = t.get("/crm/v3/objects/companies?limit=1").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-hubspot-ratelimit-max"], "5");
        assert_eq!(
            r.headers["x-hubspot-ratelimit-interval-milliseconds"],
            "3600000"
        );
        remaining.push(
            r.headers["x-hubspot-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, vec!["4", "3", "2", "1", "0"]);
    let r = t.get("/crm/v3/objects/companies?limit=1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(r.body["errorType"], "RATE_LIMIT");
    assert_eq!(r.headers["x-hubspot-ratelimit-remaining"], "0");
    // The admin API is outside the limit, and counts the 429.
    let stats = t.admin("/_sandbox/stats").await;
    assert_eq!(stats["throttled"], 1);
    assert_eq!(stats["requests"]["GET /crm/v3/objects/companies"], 6);
}

// ---------------------------------------------------------------------------------------------
// Associations

#[tokio::test]
async fn v4_associations_default_labelled_batch_and_primary() {
    let t = T::start().await;
    let c1 = t
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "One"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c2 = t
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Two"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "assoc@x.test"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    let r = t
        .put(
            &format!("/crm/v4/objects/contacts/{p}/associations/default/companies/{c1}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["associationSpec"]["associationTypeId"],
        279
    );
    assert_eq!(
        r.body["results"][1]["associationSpec"]["associationTypeId"],
        280
    );
    let prop = |v: &Value| v["properties"]["associatedcompanyid"].clone();
    let got = t
        .get(&format!(
            "/crm/v3/objects/contacts/{p}?properties=associatedcompanyid"
        ))
        .await;
    assert_eq!(
        prop(&got.body),
        json!(c1),
        "the first company becomes primary"
    );

    // Labelled primary to c2 moves the primary; c1 stays unlabelled.
    let r = t
        .put(
            &format!("/crm/v4/objects/contacts/{p}/associations/companies/{c2}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["labels"], json!(["Primary"]));
    assert_eq!(r.body["fromObjectTypeId"], "0-1");
    let got = t
        .get(&format!(
            "/crm/v3/objects/contacts/{p}?properties=associatedcompanyid"
        ))
        .await;
    assert_eq!(prop(&got.body), json!(c2));
    let list = t
        .get(&format!(
            "/crm/v4/objects/contacts/{p}/associations/companies"
        ))
        .await;
    let results = list.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        let ids: Vec<i64> = r["associationTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["typeId"].as_i64().unwrap())
            .collect();
        if r["toObjectId"].as_u64().unwrap().to_string() == c2 {
            assert_eq!(ids, vec![1, 279]);
            assert_eq!(r["associationTypes"][0]["label"], "Primary");
        } else {
            assert_eq!(ids, vec![279]);
        }
    }
    // Seen from the company: 2/280.
    let from_company = t
        .get(&format!(
            "/crm/v4/objects/companies/{c2}/associations/contacts"
        ))
        .await;
    let ids: Vec<i64> = from_company.body["results"][0]["associationTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["typeId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 280]);
    // Wrong type ids are refused.
    let r = t
        .put(
            &format!("/crm/v4/objects/contacts/{p}/associations/companies/{c1}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 2}])),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    // Batch read: one with associations, one without (207 with an error for it).
    let lonely = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "lonely@x.test"}}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .post(
            "/crm/v4/associations/contacts/companies/batch/read",
            json!({"inputs": [{"id": p}, {"id": lonely}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(r.body["results"][0]["from"]["id"], p.as_str());
    assert_eq!(r.body["results"][0]["to"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["errors"][0]["category"], "OBJECT_NOT_FOUND");

    // Batch create and archive.
    let r = t
        .post(
            "/crm/v4/associations/contacts/companies/batch/create",
            json!({"inputs": [{"from": {"id": lonely}, "to": {"id": c1}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let got = t
        .get(&format!(
            "/crm/v3/objects/contacts/{lonely}?properties=associatedcompanyid"
        ))
        .await;
    assert_eq!(prop(&got.body), json!(c1));
    let r = t
        .post(
            "/crm/v4/associations/contacts/companies/batch/archive",
            json!({"inputs": [{"from": {"id": lonely}, "to": [{"id": c1}]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let got = t
        .get(&format!(
            "/crm/v3/objects/contacts/{lonely}?properties=associatedcompanyid"
        ))
        .await;
    assert_eq!(prop(&got.body), Value::Null);
    // Default batch from the company side.
    let r = t
        .post(
            "/crm/v4/associations/companies/contacts/batch/associate/default",
            json!({"inputs": [{"from": {"id": c2}, "to": {"id": lonely}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = t
        .get(&format!(
            "/crm/v3/objects/contacts/{lonely}?properties=associatedcompanyid"
        ))
        .await;
    assert_eq!(prop(&got.body), json!(c2));
    // Single delete removes all types.
    let r = t
        .delete(&format!(
            "/crm/v4/objects/contacts/{p}/associations/companies/{c2}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let got = t
        .get(&format!(
            "/crm/v3/objects/contacts/{p}?properties=associatedcompanyid"
        ))
        .await;
    assert_eq!(prop(&got.body), Value::Null, "no primary any more");
    let labels = t
        .get("/crm/v4/associations/contacts/companies/labels")
        .await;
    assert_eq!(labels.body["results"][0]["typeId"], 1);
}

// ---------------------------------------------------------------------------------------------
// Properties

#[tokio::test]
async fn properties_list_and_custom_unique_properties() {
    let t = T::start().await;
    let r = t.get("/crm/v3/properties/companies").await;
    let names: Vec<&str> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in [
        "name",
        "domain",
        "lifecyclestage",
        "hs_lastmodifieddate",
        "about_us",
        "zip",
        "twitterhandle",
    ] {
        assert!(names.contains(&n), "{n} listed");
    }
    let lc = t.get("/crm/v3/properties/contacts/lifecyclestage").await;
    assert_eq!(lc.body["type"], "enumeration");
    assert!(
        lc.body["options"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["value"] == "customer")
    );
    let ro = t.get("/crm/v3/properties/contacts/hs_object_id").await;
    assert_eq!(ro.body["modificationMetadata"]["readOnlyValue"], true);

    let def = json!({"name": "accelo_id", "label": "Accelo ID", "type": "string", "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": true});
    let r = t.post("/crm/v3/properties/contacts", def.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["hasUniqueValue"], true);
    assert_eq!(r.body["hubspotDefined"], false);
    let r = t.post("/crm/v3/properties/contacts", def).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = t
        .post("/crm/v3/properties/contacts", json!({"name": "x", "label": "X", "type": "string", "fieldType": "select", "groupName": "g"}))
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .post("/crm/v3/properties/contacts", json!({"name": "x"}))
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");

    let a = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "u1@x.test", "accelo_id": "77"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let r = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "u2@x.test", "accelo_id": "77"}}),
        )
        .await;
    error_shape(&r, StatusCode::CONFLICT, "CONFLICT");
    let r = t
        .get("/crm/v3/objects/contacts/77?idProperty=accelo_id&properties=accelo_id")
        .await;
    assert_eq!(r.body["id"], a.body["id"]);
    assert_eq!(r.body["properties"]["accelo_id"], "77");
    // Upsert by the custom unique property.
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({"inputs": [{"id": "78", "idProperty": "accelo_id", "properties": {"email": "u3@x.test"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["results"][0]["new"], true);
    assert_eq!(r.body["results"][0]["properties"]["accelo_id"], "78");
}

// ---------------------------------------------------------------------------------------------
// Faults, stats, reset, admin

#[tokio::test]
async fn injected_errors_change_nothing_and_are_reproducible() {
    let t = T::start().await;
    let before = t.admin("/_sandbox/records/companies").await;
    let r = t
        .admin_post(
            "/_sandbox/faults",
            json!({"errors": {"500": 1.0}, "seed": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    for _ in 0..3 {
        let r = t
            .post(
                "/crm/v3/objects/companies",
                json!({"properties": {"name": "Ghost"}}),
            )
            .await;
        error_shape(&r, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR");
    }
    assert_eq!(
        t.admin("/_sandbox/records/companies").await,
        before,
        "no state change"
    );
    // 502/503 come back as HTML from the "gateway".
    t.admin_post("/_sandbox/faults", json!({"errors": {"503": 1.0}}))
        .await;
    let r = t.get("/crm/v3/objects/companies").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.as_str().unwrap().contains("<html>"));
    // Dropped connections: the client sees an error, not a response.
    t.admin_post("/_sandbox/faults", json!({"drop_rate": 1.0}))
        .await;
    let e = t
        .http
        .get(format!("{}/crm/v3/objects/companies", t.sb.hubspot_url()))
        .bearer_auth(t.sb.hubspot_token())
        .send()
        .await;
    match e {
        Err(_) => {}
        Ok(r) => assert!(r.bytes().await.is_err(), "the body must not arrive"),
    }
    // drop_after: the request is served, then the connection drops — the change happened.
    t.admin_post("/_sandbox/faults", json!({"drop_after_rate": 1.0}))
        .await;
    let e = t
        .http
        .post(format!("{}/crm/v3/objects/companies", t.sb.hubspot_url()))
        .bearer_auth(t.sb.hubspot_token())
        .json(&json!({"properties": {"name": "Ambiguous Ltd"}}))
        .send()
        .await;
    match e {
        Err(_) => {}
        Ok(r) => assert!(r.bytes().await.is_err(), "the response must not arrive"),
    }
    let all = t.admin("/_sandbox/records/companies").await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|c| c["properties"]["name"] == "Ambiguous Ltd")
    );
    // A 429 storm: the next N requests.
    t.admin_post("/_sandbox/faults", json!({"storm_429": 3}))
        .await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            t.get("/crm/v3/objects/companies?limit=1")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(codes, vec![429, 429, 429, 200]);
    // Reproducible: the same seed gives the same sequence.
    let mut seqs = Vec::new();
    for _ in 0..2 {
        t.admin_post(
            "/_sandbox/faults",
            json!({"errors": {"500": 0.3, "429": 0.2}, "seed": 42}),
        )
        .await;
        let mut s = Vec::new();
        for _ in 0..30 {
            s.push(
                t.get("/crm/v3/objects/companies?limit=1")
                    .await
                    .status
                    .as_u16(),
            );
        }
        seqs.push(s);
    }
    assert_eq!(seqs[0], seqs[1]);
    assert!(seqs[0].contains(&500) && seqs[0].contains(&200));
    let stats = t.admin("/_sandbox/stats").await;
    assert!(stats["faults"]["500"].as_u64().unwrap() >= 3);
    assert_eq!(stats["faults"]["drop"], 1);
    assert_eq!(stats["faults"]["drop_after"], 1);
    // Back to no faults.
    let r = t.admin_post("/_sandbox/faults", json!({})).await;
    assert_eq!(r.body["errors"], json!({}));
    let r = t
        .admin_post("/_sandbox/faults", json!({"errors": {"500": 2.0}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stats_count_by_route_template_and_writes() {
    let t = T::start().await;
    let (cid, _) = t.contact_with_company().await;
    t.get("/crm/v3/objects/contacts").await;
    t.get(&format!("/crm/v3/objects/contacts/{cid}")).await;
    t.post("/crm/v3/objects/contacts/search", json!({})).await;
    t.post(
        "/crm/v3/objects/contacts/batch/read",
        json!({"inputs": [{"id": cid}]}),
    )
    .await;
    t.post(
        "/crm/v4/associations/contacts/companies/batch/read",
        json!({"inputs": [{"id": cid}]}),
    )
    .await;
    let stats = t.admin("/_sandbox/stats").await;
    assert_eq!(
        stats["writes"], 0,
        "reads, searches and batch reads are not writes: {stats}"
    );
    assert_eq!(stats["total"], 5);
    assert_eq!(
        stats["requests"]["GET /crm/v3/objects/contacts/{objectId}"],
        1
    );
    assert_eq!(stats["requests"]["POST /crm/v3/objects/contacts/search"], 1);
    assert_eq!(
        stats["requests"]["POST /crm/v3/objects/contacts/batch/read"],
        1
    );
    t.patch(
        &format!("/crm/v3/objects/contacts/{cid}"),
        json!({"properties": {"jobtitle": "x"}}),
    )
    .await;
    t.post(
        "/crm/v3/objects/contacts/batch/update",
        json!({"inputs": [{"id": cid, "properties": {"jobtitle": "y"}}]}),
    )
    .await;
    let stats = t.admin("/_sandbox/stats").await;
    assert_eq!(stats["writes"], 2);
    assert_eq!(
        stats["requests"]["PATCH /crm/v3/objects/contacts/{objectId}"],
        1
    );
    assert_eq!(
        stats["requests"]["POST /crm/v3/objects/contacts/batch/update"],
        1
    );
}

#[tokio::test]
async fn reset_restores_the_seeded_state() {
    let t = T::start().await;
    let companies = t.admin("/_sandbox/records/companies").await;
    let contacts = t.admin("/_sandbox/records/contacts").await;
    let (cid, _) = t.contact_with_company().await;
    t.post(
        "/crm/v3/objects/companies",
        json!({"properties": {"name": "Extra"}}),
    )
    .await;
    t.patch(
        &format!("/crm/v3/objects/contacts/{cid}"),
        json!({"properties": {"firstname": "Changed"}}),
    )
    .await;
    t.delete(&format!("/crm/v3/objects/contacts/{cid}")).await;
    assert_ne!(t.admin("/_sandbox/records/contacts").await, contacts);
    let r = t.admin_post("/_sandbox/reset", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(t.admin("/_sandbox/records/companies").await, companies);
    assert_eq!(t.admin("/_sandbox/records/contacts").await, contacts);
    assert_eq!(t.admin("/_sandbox/stats").await["total"], 0);
}

#[tokio::test]
async fn admin_edit_creates_and_changes_records_like_the_ui() {
    let t = T::start().await;
    let r = t
        .admin_post("/_sandbox/edit", json!({"object": "companies", "id": null, "fields": {"name": "Café Ñandú", "domain": "nandu.es"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let co = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["properties"]["name"], "Café Ñandú");
    let (cid, old) = t.contact_with_company().await;
    let r = t
        .admin_post("/_sandbox/edit", json!({"object": "contacts", "id": cid, "fields": {"jobtitle": "Chef", "associatedcompanyid": co}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["properties"]["associatedcompanyid"], co.as_str());
    let companies: Vec<&str> = r.body["associations"]["companies"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(
        companies.contains(&old.as_str()),
        "the old company stays associated"
    );
    let r = t
        .admin_post(
            "/_sandbox/edit",
            json!({"object": "contacts", "id": cid, "fields": {"bogus": "1"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"].as_str().unwrap().contains("bogus"));
    let r = t
        .admin_post("/_sandbox/edit", json!({"object": "deals", "fields": {}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = t
        .admin_post(
            "/_sandbox/edit",
            json!({"object": "contacts", "id": "1", "fields": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .admin_post(
            "/_sandbox/edit",
            json!({"object": "companies", "id": co, "delete": true}),
        )
        .await;
    assert_eq!(r.body["archived"], true);
    // Admin requests are not counted.
    assert_eq!(t.admin("/_sandbox/stats").await["total"], 0);
}

#[tokio::test]
async fn large_portals_page_quickly_enough_to_list_everything() {
    let t = T::with(SandboxOptions {
        seed: 5,
        companies: 2_000,
        contacts: 8_000,
        rate_limits: RateLimits::unlimited(),
        faults: FaultConfig::default(),
        ..Default::default()
    })
    .await;
    let mut after = String::new();
    let mut n = 0;
    loop {
        let r = t
            .get(&format!("/crm/v3/objects/contacts?limit=100&after={after}"))
            .await;
        n += r.body["results"].as_array().unwrap().len();
        match r.body["paging"]["next"]["after"].as_str() {
            Some(a) => after = a.to_string(),
            None => break,
        }
    }
    assert_eq!(n, 8_000);
}

#[tokio::test]
async fn lifecycle_stage_moves_back_only_after_clearing() {
    let t = T::start().await;
    let r = t
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "stage@x.test", "lifecyclestage": "customer"}}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("/crm/v3/objects/contacts/{id}");
    // Backwards: 200, but the stage does not change (HubSpot ignores it silently).
    let r = t
        .patch(
            &path,
            json!({"properties": {"lifecyclestage": "lead", "jobtitle": "CFO"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let got = t
        .get(&format!("{path}?properties=lifecyclestage,jobtitle"))
        .await;
    assert_eq!(got.body["properties"]["lifecyclestage"], "customer");
    assert_eq!(got.body["properties"]["jobtitle"], "CFO");
    // Clear first, then set.
    t.patch(&path, json!({"properties": {"lifecyclestage": ""}}))
        .await;
    t.patch(&path, json!({"properties": {"lifecyclestage": "lead"}}))
        .await;
    let got = t.get(&format!("{path}?properties=lifecyclestage")).await;
    assert_eq!(got.body["properties"]["lifecyclestage"], "lead");
    // Forward is fine.
    t.patch(
        &path,
        json!({"properties": {"lifecyclestage": "opportunity"}}),
    )
    .await;
    let got = t.get(&format!("{path}?properties=lifecyclestage")).await;
    assert_eq!(got.body["properties"]["lifecyclestage"], "opportunity");
}

// ---------------------------------------------------------------------------------------------
// Batch limits of the write actions, 207 updates, search operators, timestamps, headers

/// Ids of a search's single page (the caller keeps the result set under 200).
fn ids_of(r: &Resp) -> Vec<u64> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.get("paging").is_none(),
        "one page expected: {}",
        r.body
    );
    let mut ids: Vec<u64> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn record_id(r: &Value) -> u64 {
    r["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_batch_write_action_refuses_more_than_100_inputs_and_changes_nothing() {
    let t = T::start().await;
    let before = t.admin("/_sandbox/records/contacts").await;
    let ids: Vec<String> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    let n = 101;
    let bodies = [
        (
            "create",
            (0..n)
                .map(|i| json!({"properties": {"email": format!("many{i}@x.test")}}))
                .collect::<Vec<_>>(),
        ),
        (
            "update",
            (0..n)
                .map(|i| json!({"id": ids[i % ids.len()], "properties": {"jobtitle": "Many"}}))
                .collect(),
        ),
        (
            "upsert",
            (0..n)
                .map(|i| json!({"id": format!("many{i}@x.test"), "idProperty": "email", "properties": {"firstname": "Many"}}))
                .collect(),
        ),
        (
            "archive",
            (0..n).map(|i| json!({"id": ids[i % ids.len()]})).collect(),
        ),
    ];
    for (action, inputs) in bodies {
        assert_eq!(inputs.len(), 101);
        let r = t
            .post(
                &format!("/crm/v3/objects/contacts/batch/{action}"),
                json!({"inputs": inputs}),
            )
            .await;
        error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
        assert!(
            r.body["message"].as_str().unwrap().contains("100"),
            "{action}: {}",
            r.body
        );
        // Exactly 100 is allowed (checked on the read-only action, so nothing changes).
    }
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": ids.iter().take(100).map(|i| json!({"id": i})).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        t.admin("/_sandbox/records/contacts").await,
        before,
        "refused batches change nothing"
    );
}

#[tokio::test]
async fn batch_update_with_trace_ids_is_207_and_maps_each_input() {
    let t = T::start().await;
    let all = t.admin("/_sandbox/records/contacts").await;
    let all = all.as_array().unwrap();
    let (a, b) = (
        all[0]["id"].as_str().unwrap().to_string(),
        all[1]["id"].as_str().unwrap().to_string(),
    );
    let b_before = t.get(&format!("/crm/v3/objects/contacts/{b}")).await.body;
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [
                {"id": a, "properties": {"jobtitle": "Head of Tracing"}, "objectWriteTraceId": "u-1"},
                {"id": b, "properties": {"jobtitle": "Never", "bogus_property": "1"}, "objectWriteTraceId": "u-2"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(r.body["status"], "COMPLETE");
    assert_eq!(r.body["numErrors"], 1);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["id"], a.as_str());
    assert_eq!(results[0]["objectWriteTraceId"], "u-1");
    assert_eq!(results[0]["properties"]["jobtitle"], "Head of Tracing");
    let err = &r.body["errors"][0];
    assert_eq!(err["category"], "VALIDATION_ERROR");
    assert_eq!(err["context"]["objectWriteTraceId"], json!(["u-2"]));
    // The good input was applied, the bad one not at all.
    let got = t
        .get(&format!("/crm/v3/objects/contacts/{a}?properties=jobtitle"))
        .await;
    assert_eq!(got.body["properties"]["jobtitle"], "Head of Tracing");
    assert_eq!(
        t.get(&format!("/crm/v3/objects/contacts/{b}")).await.body,
        b_before
    );
}

#[tokio::test]
async fn search_negations_ranges_and_refusals() {
    let t = T::start().await;
    let companies = t.admin("/_sandbox/records/companies").await;
    let companies = companies.as_array().unwrap();
    let mut ids: Vec<u64> = companies.iter().map(record_id).collect();
    ids.sort_unstable();
    let pivot = ids[ids.len() / 2];
    let search = |filters: Value| {
        t.post(
            "/crm/v3/objects/companies/search",
            json!({"filterGroups": [{"filters": filters}], "limit": 200}),
        )
    };
    let id_filter = |op: &str| json!([{"propertyName": "hs_object_id", "operator": op, "value": pivot.to_string()}]);
    let expect = |keep: &dyn Fn(u64) -> bool| -> Vec<u64> {
        ids.iter().copied().filter(|i| keep(*i)).collect()
    };
    assert_eq!(
        ids_of(&search(id_filter("LT")).await),
        expect(&|i| i < pivot)
    );
    assert_eq!(
        ids_of(&search(id_filter("LTE")).await),
        expect(&|i| i <= pivot)
    );
    assert_eq!(
        ids_of(&search(id_filter("GT")).await),
        expect(&|i| i > pivot)
    );
    assert_eq!(
        ids_of(&search(id_filter("NEQ")).await),
        expect(&|i| i != pivot)
    );
    assert_eq!(
        ids_of(&search(id_filter("GTE")).await).len(),
        ids.len() - ids.len() / 2
    );

    // NEQ on a string is case-insensitive like EQ.
    let name = companies[0]["properties"]["name"].as_str().unwrap();
    let same_name: Vec<u64> = companies
        .iter()
        .filter(|c| {
            c["properties"]["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(record_id)
        .collect();
    let r =
        search(json!([{"propertyName": "name", "operator": "NEQ", "value": name.to_uppercase()}]))
            .await;
    assert_eq!(
        ids_of(&r),
        expect(&|i| !same_name.contains(&i)),
        "NEQ {name}"
    );

    // NOT_IN (lower-case values) among the companies that have a domain.
    let with_domain: Vec<(u64, String)> = companies
        .iter()
        .filter_map(|c| {
            c["properties"]["domain"]
                .as_str()
                .map(|d| (record_id(c), d.to_lowercase()))
        })
        .collect();
    assert!(with_domain.len() >= 3, "the seed has domains");
    let excluded = [with_domain[0].1.clone(), with_domain[1].1.clone()];
    let r = search(json!([
        {"propertyName": "domain", "operator": "HAS_PROPERTY"},
        {"propertyName": "domain", "operator": "NOT_IN", "values": excluded}
    ]))
    .await;
    let mut want: Vec<u64> = with_domain
        .iter()
        .filter(|(_, d)| !excluded.contains(d))
        .map(|(i, _)| *i)
        .collect();
    want.sort_unstable();
    assert_eq!(ids_of(&r), want, "NOT_IN");

    // NOT_HAS_PROPERTY: exactly the companies without the property.
    let without: Vec<u64> = {
        let mut v: Vec<u64> = companies
            .iter()
            .filter(|c| c["properties"]["phone"].as_str().is_none())
            .map(record_id)
            .collect();
        v.sort_unstable();
        v
    };
    let r = search(json!([{"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"}])).await;
    assert_eq!(ids_of(&r), without, "NOT_HAS_PROPERTY phone");
    let r = search(json!([{"propertyName": "phone", "operator": "HAS_PROPERTY"}])).await;
    assert_eq!(ids_of(&r).len() + without.len(), ids.len());

    // NOT_CONTAINS_TOKEN with a wildcard, on contacts that have an email.
    let contacts = t.admin("/_sandbox/records/contacts").await;
    let emails: Vec<(u64, String)> = contacts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            c["properties"]["email"]
                .as_str()
                .map(|e| (record_id(c), e.to_lowercase()))
        })
        .collect();
    let domain = emails[0].1.split('@').nth(1).unwrap().to_string();
    let suffix = format!("@{domain}");
    let mut want: Vec<u64> = emails
        .iter()
        .filter(|(_, e)| !e.ends_with(&suffix))
        .map(|(i, _)| *i)
        .collect();
    want.sort_unstable();
    assert!(want.len() < emails.len(), "some emails are @{domain}");
    let r = t
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [{"filters": [
                {"propertyName": "email", "operator": "HAS_PROPERTY"},
                {"propertyName": "email", "operator": "NOT_CONTAINS_TOKEN", "value": format!("*{suffix}")}
            ]}], "limit": 200}),
        )
        .await;
    assert_eq!(ids_of(&r), want, "NOT_CONTAINS_TOKEN *{suffix}");

    // An unknown operator and a query over 3,000 characters are 400s; 3,000 is fine.
    let r = search(json!([{"propertyName": "name", "operator": "LIKE", "value": "a"}])).await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    assert!(r.body["message"].as_str().unwrap().contains("LIKE"));
    let r = t
        .post(
            "/crm/v3/objects/companies/search",
            json!({"query": "x".repeat(3001)}),
        )
        .await;
    error_shape(&r, StatusCode::BAD_REQUEST, "VALIDATION_ERROR");
    let r = t
        .post(
            "/crm/v3/objects/companies/search",
            json!({"query": "ü".repeat(3000)}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "3,000 characters (not bytes) are allowed"
    );
    assert_eq!(r.body["total"], 0);
}

#[tokio::test]
async fn updating_an_old_record_moves_updated_at_strictly_forward() {
    let t = T::start().await;
    let all = t.admin("/_sandbox/records/companies").await;
    let old = &all.as_array().unwrap()[0];
    let id = old["id"].as_str().unwrap();
    let time = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let before = time(&old["updatedAt"]);
    let created = time(&old["createdAt"]);
    assert!(
        before < chrono::Utc::now().timestamp_millis() - 1000,
        "seeded records were last modified in the past"
    );
    let r = t
        .patch(
            &format!("/crm/v3/objects/companies/{id}"),
            json!({"properties": {"description": "Touched by the timestamp test"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = time(&r.body["updatedAt"]);
    assert!(
        after > before,
        "updatedAt {after} must be later than {before}"
    );
    assert_eq!(time(&r.body["createdAt"]), created, "createdAt stays");
    let got = t
        .get(&format!(
            "/crm/v3/objects/companies/{id}?properties=hs_lastmodifieddate"
        ))
        .await;
    assert_eq!(time(&got.body["updatedAt"]), after);
    assert_eq!(
        prop_time_ms(&got.body["properties"]["hs_lastmodifieddate"]),
        after
    );
    // The same through batch update on a contact.
    let contacts = t.admin("/_sandbox/records/contacts").await;
    let c = &contacts.as_array().unwrap()[0];
    let before = time(&c["updatedAt"]);
    let r = t
        .post(
            "/crm/v3/objects/contacts/batch/update",
            json!({"inputs": [{"id": c["id"], "properties": {"jobtitle": "Chief Timekeeper"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(time(&r.body["results"][0]["updatedAt"]) > before);
}

/// A HubSpot datetime property value (ISO-8601 or epoch ms) as epoch milliseconds.
fn prop_time_ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap();
    s.parse::<i64>().unwrap_or_else(|_| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    })
}

#[tokio::test]
async fn default_limits_send_190_per_10_seconds_and_daily_headers_only_to_private_apps() {
    // The defaults of a Professional private app.
    let t = T::with(SandboxOptions {
        seed: 3,
        companies: 5,
        contacts: 5,
        ..Default::default()
    })
    .await;
    let r = t.get("/crm/v3/objects/companies?limit=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-hubspot-ratelimit-max"], "190");
    assert_eq!(
        r.headers["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    assert_eq!(r.headers["x-hubspot-ratelimit-remaining"], "189");
    // A private-app token gets the daily headers …
    assert_eq!(r.headers["x-hubspot-ratelimit-daily"], "625000");
    assert_eq!(r.headers["x-hubspot-ratelimit-daily-remaining"], "624999");

    // … an OAuth access token does not (hubspot-api-notes §8: not sent for OAuth).
    let tok: Value = t
        .http
        .post(format!("{}/oauth/v1/token", t.sb.hubspot_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", t.sb.hubspot_client_id()),
            ("client_secret", t.sb.hubspot_client_secret()),
            ("refresh_token", t.sb.hubspot_refresh_token()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tok["access_token"].as_str().unwrap();
    let r = t
        .http
        .get(format!(
            "{}/crm/v3/objects/companies?limit=1",
            t.sb.hubspot_url()
        ))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert_eq!(h["x-hubspot-ratelimit-max"], "190");
    assert_eq!(h["x-hubspot-ratelimit-remaining"], "188");
    assert!(h.get("x-hubspot-ratelimit-daily").is_none(), "{h:?}");
    assert!(
        h.get("x-hubspot-ratelimit-daily-remaining").is_none(),
        "{h:?}"
    );
}

#[tokio::test]
async fn search_lag_hides_recent_writes_from_search_only() {
    let t = T::start().await;
    let r = t
        .admin_post("/_sandbox/faults", json!({"search_lag_ms": 60_000}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["search_lag_ms"], 60_000);
    let seeded_total = t
        .post("/crm/v3/objects/companies/search", json!({"limit": 1}))
        .await
        .body["total"]
        .as_u64()
        .unwrap();
    let created = t
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Fresh Ink Ltd", "domain": "fresh-ink.example"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_string();
    let by_domain = json!({"filterGroups": [{"filters": [
        {"propertyName": "domain", "operator": "EQ", "value": "fresh-ink.example"}]}]});
    // Not searchable yet, by filter, by text or in the total …
    let r = t
        .post("/crm/v3/objects/companies/search", by_domain.clone())
        .await;
    assert_eq!(r.body["total"], 0, "{}", r.body);
    let r = t
        .post(
            "/crm/v3/objects/companies/search",
            json!({"query": "Fresh Ink"}),
        )
        .await;
    assert_eq!(r.body["total"], 0);
    let r = t
        .post("/crm/v3/objects/companies/search", json!({"limit": 1}))
        .await;
    assert_eq!(r.body["total"].as_u64(), Some(seeded_total));
    // … but read at once by GET, list and batch read.
    assert_eq!(
        t.get(&format!("/crm/v3/objects/companies/{id}"))
            .await
            .status,
        StatusCode::OK
    );
    let r = t
        .post(
            "/crm/v3/objects/companies/batch/read",
            json!({"inputs": [{"id": id}], "properties": ["domain"]}),
        )
        .await;
    assert_eq!(
        r.body["results"][0]["properties"]["domain"],
        "fresh-ink.example"
    );
    // An update hides a seeded record from search for the lag as well.
    let seeded = t.admin("/_sandbox/records/companies").await;
    let sid = seeded.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let by_id = json!({"filterGroups": [{"filters": [
        {"propertyName": "hs_object_id", "operator": "EQ", "value": sid}]}]});
    assert_eq!(
        t.post("/crm/v3/objects/companies/search", by_id.clone())
            .await
            .body["total"],
        1
    );
    t.patch(
        &format!("/crm/v3/objects/companies/{sid}"),
        json!({"properties": {"description": "just edited"}}),
    )
    .await;
    assert_eq!(
        t.post("/crm/v3/objects/companies/search", by_id.clone())
            .await
            .body["total"],
        0
    );
    // With a short lag the record shows up once the lag has passed (polled, with a deadline).
    t.admin_post("/_sandbox/faults", json!({"search_lag_ms": 300}))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = t
            .post("/crm/v3/objects/companies/search", by_domain.clone())
            .await;
        if r.body["total"] == 1 {
            assert_eq!(r.body["results"][0]["id"], id.as_str());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never indexed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No lag (the default): immediate.
    t.admin_post("/_sandbox/faults", json!({})).await;
    assert_eq!(
        t.post("/crm/v3/objects/companies/search", by_id).await.body["total"],
        1
    );
}

#[tokio::test]
async fn revoking_tokens_refuses_issued_oauth_tokens_until_refreshed() {
    let t = T::start().await;
    let token_url = format!("{}/oauth/v1/token", t.sb.hubspot_url());
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", t.sb.hubspot_client_id()),
        ("client_secret", t.sb.hubspot_client_secret()),
        ("refresh_token", t.sb.hubspot_refresh_token()),
    ];
    let access = |v: Value| v["access_token"].as_str().unwrap().to_string();
    let old = access(
        t.http
            .post(&token_url)
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    let list = format!("{}/crm/v3/objects/companies?limit=1", t.sb.hubspot_url());
    let status = |token: String| {
        let (http, list) = (t.http.clone(), list.clone());
        async move {
            http.get(&list)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(old.clone()).await, StatusCode::OK);
    let r = t.admin_post("/_sandbox/revoke_tokens", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revoked"], 1);
    let refused = t.http.get(&list).bearer_auth(&old).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["category"],
        "INVALID_AUTHENTICATION"
    );
    // The private-app token is not an OAuth token: it still works; a refresh gives a new one.
    assert_eq!(
        t.get("/crm/v3/objects/companies?limit=1").await.status,
        StatusCode::OK
    );
    let new = access(
        t.http
            .post(&token_url)
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(status(new).await, StatusCode::OK);
    // The admin route is outside the counters.
    let stats = t.admin("/_sandbox/stats").await;
    assert!(
        stats["requests"]
            .get("POST /_sandbox/revoke_tokens")
            .is_none()
    );
    assert_eq!(stats["requests"]["POST /oauth/v1/token"], 2);
}

/// The rules' property catalogue and the simulator agree on every enumeration option the
/// catalogue fixes: a value the catalogue spells differently from HubSpot (a lead status
/// `ATTEMPTED_TO_CONNECT` where HubSpot says `ATTEMPTED_TO_CONTACT`) would let `tandem check`
/// accept status tables that never match a real record.
#[tokio::test]
async fn catalogue_enumeration_options_match_the_simulators_property_definitions() {
    use tandem_core::model::Object;
    use tandem_core::rules::catalog::standard_properties;
    use tandem_core::rules::raw::PropertyType;
    let t = T::start().await;
    let mut compared = 0;
    for (object, path) in [
        (Object::Company, "companies"),
        (Object::Contact, "contacts"),
    ] {
        for p in standard_properties(object) {
            if p.options.is_empty() || p.kind != PropertyType::Enumeration {
                continue;
            }
            let r = t
                .get(&format!("/crm/v3/properties/{path}/{}", p.name))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{path}.{}: {}", p.name, r.body);
            let mut hubspot: Vec<String> = r.body["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["value"].as_str().unwrap().to_string())
                .collect();
            let mut catalogue = p.options.clone();
            hubspot.sort();
            catalogue.sort();
            assert_eq!(catalogue, hubspot, "{path}.{} options", p.name);
            compared += 1;
        }
    }
    // lifecyclestage and hs_lead_status of both objects, and a company's type.
    assert_eq!(compared, 5);
    t.sb.shutdown().await;
}
