//! The Accelo simulator over real HTTP with a plain client: tokens, the envelope, `_fields`,
//! `_filters`, `_search`, paging, form and JSON writes, the contact + affiliation create,
//! statuses and progressions, addresses, the hourly rate limit, faults and the admin API.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};

struct T {
    sb: Sandbox,
    http: reqwest::Client,
    token: String,
}

struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl T {
    async fn start() -> T {
        T::with(SandboxOptions {
            seed: 21,
            companies: 40,
            contacts: 150,
            rate_limits: RateLimits::unlimited(),
            ..Default::default()
        })
        .await
    }

    async fn with(opts: SandboxOptions) -> T {
        let sb = Sandbox::start(opts).await.unwrap();
        let http = reqwest::Client::new();
        let tok: Value = http
            .post(format!("{}/oauth2/v0/token", sb.accelo_url()))
            .basic_auth(sb.accelo_client_id(), Some(sb.accelo_client_secret()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = tok["access_token"].as_str().unwrap().to_string();
        T { sb, http, token }
    }

    async fn wrap(r: reqwest::Response) -> Resp {
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

    fn url(&self, path: &str) -> String {
        format!("{}/api/v0{}", self.sb.accelo_url(), path)
    }

    async fn get(&self, path: &str) -> Resp {
        T::wrap(
            self.http
                .get(self.url(path))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn form(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Resp {
        T::wrap(
            self.http
                .request(method, self.url(path))
                .bearer_auth(&self.token)
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.form(reqwest::Method::POST, path, form).await
    }

    async fn put(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.form(reqwest::Method::PUT, path, form).await
    }

    async fn admin(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{}", self.sb.accelo_url(), path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn admin_post(&self, path: &str, body: Value) -> Resp {
        T::wrap(
            self.http
                .post(format!("{}{}", self.sb.accelo_url(), path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

fn ok(r: &Resp) -> &Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["meta"]["status"], "ok");
    &r.body["response"]
}

fn invalid(r: &Resp) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["meta"]["status"], "invalid_request", "{}", r.body);
    assert!(
        r.body["meta"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(r.body["response"], Value::Null);
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn client_credentials_tokens_and_their_errors() {
    let t = T::start().await;
    let token_url = format!("{}/oauth2/v0/token", t.sb.accelo_url());
    let r = t
        .http
        .post(&token_url)
        .basic_auth(t.sb.accelo_client_id(), Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = t
        .http
        .post(&token_url)
        .basic_auth(t.sb.accelo_client_id(), Some(t.sb.accelo_client_secret()))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // Token response fields.
    let r: Value = t
        .http
        .post(&token_url)
        .basic_auth(t.sb.accelo_client_id(), Some(t.sb.accelo_client_secret()))
        .form(&[("grant_type", "client_credentials"), ("expires_in", "0")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["token_type"], "bearer");
    assert_eq!(r["deployment"], "sandbox");
    assert!(
        r.get("refresh_token").is_none(),
        "service apps get no refresh token"
    );
    let expired = r["access_token"].as_str().unwrap();
    let r = t
        .http
        .get(t.url("/companies"))
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["meta"]["status"],
        "invalid_client"
    );
    // No token; the query-string token; both at once.
    let r = T::wrap(t.http.get(t.url("/companies")).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["meta"]["status"], "invalid_client");
    let r = T::wrap(
        t.http
            .get(t.url(&format!("/companies?_bearer_token={}", t.token)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    ok(&r);
    let r = T::wrap(
        t.http
            .get(t.url(&format!("/companies?_bearer_token={}", t.token)))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    invalid(&r);
    // Token requests are neither limited nor counted as writes.
    let stats = t.admin("/_sandbox/stats").await;
    assert_eq!(stats["writes"], 0);
}

// ---------------------------------------------------------------------------------------------
// Reading

#[tokio::test]
async fn lists_return_default_fields_and_fields_expand() {
    let t = T::start().await;
    let r = t.get("/companies").await;
    let list = ok(&r).as_array().unwrap();
    assert_eq!(list.len(), 10, "default _limit is 10");
    let keys: Vec<&String> = list[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["id", "name"]);
    assert!(list[0]["id"].is_string(), "ids are strings");

    let r = t
        .get("/companies/1?_fields=website,date_modified,standing,status(standing),postal_address(street1,city,state(),country(title))")
        .await;
    let c = ok(&r);
    assert!(
        c["date_modified"].as_str().unwrap().parse::<i64>().is_ok(),
        "timestamps are strings"
    );
    assert_eq!(c["status"]["standing"], c["standing"]);
    assert!(
        c["status"]["title"].is_string(),
        "expanded objects keep their defaults"
    );
    if c["postal_address"].is_object() {
        assert!(c["postal_address"]["country"]["title"].is_string());
        assert!(c["postal_address"]["state"]["id"].is_string());
        assert!(c["postal_address"]["full"].is_string());
    }
    // Without parentheses a linked object is its id.
    let r = t.get("/companies/1?_fields=status,postal_address").await;
    assert!(ok(&r)["status"].is_string());
    // _ALL.
    let r = t.get("/contacts/1?_fields=_ALL").await;
    let c = ok(&r);
    for k in [
        "middlename",
        "title",
        "date_created",
        "date_modified",
        "default_affiliation",
        "status",
        "standing",
        "comments",
    ] {
        assert!(c.as_object().unwrap().contains_key(k), "{k} in _ALL");
    }
    // The joined contact shape the connector reads.
    let r = t
        .get("/affiliations?_fields=email,phone,mobile,fax,position,standing,date_modified,company(name),contact(firstname,surname,title,standing,date_modified,status(title,standing))&_limit=5")
        .await;
    let a = &ok(&r)[0];
    assert!(a["company"]["name"].is_string());
    assert!(a["contact"]["status"]["standing"].is_string());
    let r = t.get("/companies?_fields=status(").await;
    invalid(&r);
}

#[tokio::test]
async fn paging_counts_filters_order_and_search() {
    let t = T::start().await;
    let total = ok(&t.get("/contacts/count").await)["count"]
        .as_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert_eq!(total, 150);
    // _limit is capped at 100; _page is 0-based.
    let p0 = t.get("/contacts?_limit=500").await;
    assert_eq!(ok(&p0).as_array().unwrap().len(), 100);
    let mut ids = Vec::new();
    for page in 0.. {
        let r = t.get(&format!("/contacts?_limit=40&_page={page}")).await;
        let list = ok(&r).as_array().unwrap().clone();
        ids.extend(
            list.iter()
                .map(|c| c["id"].as_str().unwrap().parse::<u64>().unwrap()),
        );
        if list.len() < 40 {
            break;
        }
    }
    assert_eq!(ids.len(), 150);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "default order is ascending id"
    );
    // Basic filters (case-insensitive), _not, date filters (strict), ranges.
    let r = t.get("/affiliations/1?_fields=email,contact").await;
    let email = ok(&r)["email"].as_str().unwrap().to_uppercase();
    let contact = ok(&r)["contact"].as_str().unwrap().to_string();
    let r = t.get(&format!("/contacts?_filters=email({email})")).await;
    let found = ok(&r).as_array().unwrap();
    assert!(found.iter().any(|c| c["id"] == contact.as_str()));
    let active = ok(&t.get("/contacts/count?_filters=standing(active)").await)["count"]
        .as_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    let not_active = ok(&t.get("/contacts/count?_filters=standing_not(active)").await)["count"]
        .as_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert_eq!(active + not_active, 150);
    let r = t
        .get("/contacts?_fields=date_modified&_filters=order_by_desc(date_modified)&_limit=100")
        .await;
    let dates: Vec<i64> = ok(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["date_modified"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    let pivot = dates[50];
    let after = ok(&t
        .get(&format!(
            "/contacts/count?_filters=date_modified_after({pivot})"
        ))
        .await)["count"]
        .as_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    let before = ok(&t
        .get(&format!(
            "/contacts/count?_filters=date_modified_before({pivot})"
        ))
        .await)["count"]
        .as_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    let at = ok(&t
        .get(&format!(
            "/contacts/count?_filters=date_modified_after({}),date_modified_before({})",
            pivot - 1,
            pivot + 1
        ))
        .await)["count"]
        .as_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert_eq!(after + before + at, 150, "strictly before/after");
    let r = t.get("/companies?_filters=id(3,1,2)").await;
    assert_eq!(ok(&r).as_array().unwrap().len(), 3);
    let r = t
        .get("/companies/count?_filters=id_greater_than(10),id_less_than_or_equal(20)")
        .await;
    assert_eq!(ok(&r)["count"], "10");
    let r = t
        .get("/companies/count?_filters=_OR(id(1),id(2),_AND(id(3),standing(nonsense)))")
        .await;
    assert_eq!(ok(&r)["count"], "2");
    // The same filter twice: the last counts.
    let r = t.get("/companies/count?_filters=id(1),id(2,3)").await;
    assert_eq!(ok(&r)["count"], "2");
    // Affiliations by company / contact.
    let r = t
        .get("/affiliations?_filters=company(1)&_fields=company&_limit=100")
        .await;
    assert!(
        ok(&r)
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["company"] == "1")
    );
    // _search over name/website/phone/fax.
    let name = ok(&t.get("/companies/1").await)["name"]
        .as_str()
        .unwrap()
        .to_string();
    let word: String = name.split_whitespace().next().unwrap().to_string();
    let r = t
        .get(&format!("/companies?_search={}", urlencode(&word)))
        .await;
    assert!(ok(&r).as_array().unwrap().iter().any(|c| c["id"] == "1"));
    // Unknown filters and bad values are errors, not silently ignored.
    invalid(&t.get("/companies?_filters=favourite_colour(red)").await);
    invalid(
        &t.get("/companies?_filters=date_modified_after(yesterday)")
            .await,
    );
    invalid(&t.get("/companies?_filters=order_by_asc(phone)").await);
    invalid(&t.get("/companies?_limit=ten").await);
    // /recent and /newest orderings.
    let r = t
        .get("/companies/newest?_fields=date_modified&_limit=100")
        .await;
    let d: Vec<i64> = ok(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["date_modified"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] >= w[1]));
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_string()
}

#[tokio::test]
async fn missing_ids_and_unknown_urls() {
    let t = T::start().await;
    invalid(&t.get("/companies/99999").await);
    invalid(&t.get("/contacts/abc").await);
    invalid(&t.put("/affiliations/99999", &[("phone", "1")]).await);
    let r = t.get("/widgets").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body.as_str().unwrap().contains("<html>"),
        "404 is HTML, not the envelope"
    );
}

// ---------------------------------------------------------------------------------------------
// Writing

#[tokio::test]
async fn companies_are_created_and_updated_with_form_bodies() {
    let t = T::start().await;
    let r = t
        .post(
            "/companies",
            &[
                ("name", "Łódź Logistyka Sp. z o.o."),
                ("website", "https://lodz.example.pl"),
                (
                    "_fields",
                    "website,standing,status,date_created,date_modified",
                ),
            ],
        )
        .await;
    let c = ok(&r).clone();
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["website"], "https://lodz.example.pl");
    assert_eq!(c["standing"], "active", "default status");
    invalid(&t.post("/companies", &[("website", "x")]).await);
    invalid(
        &t.post("/companies", &[("name", "X"), ("status_id", "99")])
            .await,
    );
    let r = t
        .post(
            "/companies",
            &[
                ("name", "Prospective"),
                ("status_id", "2"),
                ("_fields", "standing"),
            ],
        )
        .await;
    assert_eq!(ok(&r)["standing"], "potential");
    let r = t
        .post(
            "/companies",
            &[
                ("name", "Standing only"),
                ("standing", "inactive"),
                ("_fields", "status(title)"),
            ],
        )
        .await;
    assert_eq!(ok(&r)["status"]["title"], "Inactive");

    // JSON bodies work as well.
    let r = T::wrap(
        t.http
            .post(t.url("/companies"))
            .bearer_auth(&t.token)
            .json(&json!({"name": "Jsonic", "phone": "+1 555 0100", "_fields": "phone"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok(&r)["phone"], "+1 555 0100");

    // PUT bumps date_modified; status_id on PUT is ignored (progressions change statuses).
    let created = c["date_modified"].as_str().unwrap().parse::<i64>().unwrap();
    let r = t
        .put(
            &format!("/companies/{id}"),
            &[
                ("comments", "Key account"),
                ("status_id", "4"),
                ("_fields", "comments,date_modified,status"),
            ],
        )
        .await;
    let u = ok(&r);
    assert_eq!(u["comments"], "Key account");
    assert_eq!(u["status"], c["status"]);
    assert!(u["date_modified"].as_str().unwrap().parse::<i64>().unwrap() >= created);
    // Clearing with an empty value.
    let r = t
        .put(
            &format!("/companies/{id}"),
            &[("website", ""), ("_fields", "website")],
        )
        .await;
    assert_eq!(ok(&r)["website"], "");
    invalid(&t.put(&format!("/companies/{id}"), &[("name", "")]).await);
    // Delete removes it.
    let r = t
        .form(reqwest::Method::DELETE, &format!("/companies/{id}"), &[])
        .await;
    ok(&r);
    invalid(&t.get(&format!("/companies/{id}")).await);
}

#[tokio::test]
async fn status_changes_go_through_progressions() {
    let t = T::start().await;
    let statuses = t
        .get("/companies/statuses?_fields=standing,color,ordering")
        .await;
    let list = ok(&statuses).as_array().unwrap();
    assert!(list.len() >= 3);
    assert!(list.iter().any(|s| s["standing"] == "potential"));
    let r = t.get("/companies/1?_fields=status").await;
    let current = ok(&r)["status"].as_str().unwrap().to_string();
    let r = t.get("/companies/1/progressions").await;
    let progs = ok(&r).as_array().unwrap().clone();
    assert!(
        progs.iter().all(|p| p["status"]["id"] != current.as_str()),
        "no progression to the current status"
    );
    let target = progs
        .iter()
        .find(|p| p["status"]["standing"] == "inactive")
        .unwrap();
    let pid = target["id"].as_str().unwrap();
    let r = t
        .post(
            &format!("/companies/1/progressions/{pid}/auto"),
            &[("_fields", "status(title),standing")],
        )
        .await;
    let c = ok(&r);
    assert_eq!(c["standing"], "inactive");
    assert_eq!(c["status"]["title"], target["status"]["title"]);
    invalid(&t.post("/companies/1/progressions/999/auto", &[]).await);
    let r = t.get("/companies/1/status").await;
    assert_eq!(ok(&r)["id"], target["status"]["id"]);
    // Contacts: status on PUT, and progressions too.
    let r = t.get("/contacts/statuses").await;
    assert!(!ok(&r).as_array().unwrap().is_empty());
    let r = t
        .put(
            "/contacts/1",
            &[("status", "3"), ("_fields", "standing,status")],
        )
        .await;
    assert_eq!(ok(&r)["standing"], "inactive");
    invalid(&t.put("/contacts/1", &[("status", "42")]).await);
    let r = t
        .put(
            "/contacts/1/progressions/1/auto",
            &[("_fields", "standing")],
        )
        .await;
    assert_eq!(ok(&r)["standing"], "active");
}

#[tokio::test]
async fn contact_create_makes_the_affiliation_and_validates() {
    let t = T::start().await;
    let r = t
        .post(
            "/contacts",
            &[
                ("firstname", "Søren"),
                ("surname", "Ångström"),
                ("company_id", "2"),
                ("email", "soren@angstrom.example"),
                ("phone", "+46 8 000 00"),
                ("position", "CTO"),
                (
                    "_fields",
                    "_ALL,default_affiliation(email,phone,position,company(name))",
                ),
            ],
        )
        .await;
    let c = ok(&r).clone();
    assert_eq!(c["firstname"], "Søren");
    assert_eq!(c["default_affiliation"]["email"], "soren@angstrom.example");
    assert_eq!(c["default_affiliation"]["company"]["id"], "2");
    assert_eq!(
        c["email"], "soren@angstrom.example",
        "the deprecated contact email mirrors it"
    );
    let cid = c["id"].as_str().unwrap();
    let r = t
        .get(&format!(
            "/affiliations?_filters=contact({cid})&_fields=company,position"
        ))
        .await;
    let affs = ok(&r).as_array().unwrap();
    assert_eq!(affs.len(), 1);
    assert_eq!(affs[0]["position"], "CTO");
    for form in [
        vec![("firstname", "A"), ("surname", "B")],
        vec![("firstname", "A"), ("company_id", "2")],
        vec![
            ("firstname", "A"),
            ("surname", "B"),
            ("company_id", "99999"),
        ],
        vec![
            ("firstname", "A"),
            ("surname", "B"),
            ("company_id", "2"),
            ("email", "not an email"),
        ],
    ] {
        invalid(&t.post("/contacts", &form).await);
    }
    let n = ok(&t.get("/contacts/count").await)["count"].clone();
    assert_eq!(n, "151", "the failed creates created nothing");
    // Usernames are unique: `duplicate`, naming the field.
    ok(&t
        .put(&format!("/contacts/{cid}"), &[("username", "soren")])
        .await);
    let r = t.put("/contacts/1", &[("username", "soren")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["meta"]["status"], "duplicate");
    assert!(
        r.body["meta"]["message"]
            .as_str()
            .unwrap()
            .contains("username")
    );
    // A second affiliation, updates and deletion.
    let r = t
        .post(
            "/affiliations",
            &[
                ("company_id", "3"),
                ("contact_id", cid),
                ("email", "soren@board.example"),
                ("_fields", "email,company"),
            ],
        )
        .await;
    let aff = ok(&r)["id"].as_str().unwrap().to_string();
    let r = t
        .put(
            &format!("/affiliations/{aff}"),
            &[
                ("mobile", "+46 70 000 0000"),
                ("_fields", "mobile,date_modified"),
            ],
        )
        .await;
    assert_eq!(ok(&r)["mobile"], "+46 70 000 0000");
    invalid(&t.post("/affiliations", &[("company_id", "3")]).await);
    ok(&t
        .form(
            reqwest::Method::DELETE,
            &format!("/affiliations/{aff}"),
            &[],
        )
        .await);
    invalid(&t.get(&format!("/affiliations/{aff}")).await);
    // DELETE /contacts only deactivates.
    ok(&t
        .form(reqwest::Method::DELETE, &format!("/contacts/{cid}"), &[])
        .await);
    let r = t.get(&format!("/contacts/{cid}?_fields=standing")).await;
    assert_eq!(ok(&r)["standing"], "inactive");
    // Company contacts.
    let r = t.get("/companies/2/contacts?_limit=100").await;
    assert!(ok(&r).as_array().unwrap().iter().any(|c| c["id"] == cid));
}

#[tokio::test]
async fn addresses_link_postal_address_and_resolve_names() {
    let t = T::start().await;
    let r = t.post("/companies", &[("name", "Addressless")]).await;
    let id = ok(&r)["id"].as_str().unwrap().to_string();
    let r = t
        .post(
            &format!("/companies/{id}/addresses"),
            &[
                ("street1", "1 George St"),
                ("city", "Sydney"),
                ("zipcode", "2000"),
                ("state", "New South Wales"),
                ("country", "Australia"),
                ("_fields", "_ALL,state(abbreviation),country()"),
            ],
        )
        .await;
    let a = ok(&r).clone();
    assert_eq!(a["state"]["abbreviation"], "NSW");
    assert_eq!(a["country"]["title"], "Australia");
    assert_eq!(a["postal"], "yes");
    assert!(a["full"].as_str().unwrap().contains("Sydney"));
    let r = t
        .get(&format!("/companies/{id}?_fields=postal_address(city)"))
        .await;
    assert_eq!(
        ok(&r)["postal_address"]["city"],
        "Sydney",
        "the first postal address becomes the company's"
    );
    let aid = a["id"].as_str().unwrap();
    let r = t
        .put(
            &format!("/addresses/{aid}"),
            &[
                ("state", "VIC"),
                ("city", "Melbourne"),
                ("_fields", "city,state(title)"),
            ],
        )
        .await;
    assert_eq!(ok(&r)["state"]["title"], "Victoria");
    invalid(
        &t.put(&format!("/addresses/{aid}"), &[("country", "Atlantis")])
            .await,
    );
    invalid(
        &t.put(&format!("/addresses/{aid}"), &[("state", "Bayern")])
            .await,
    );
    let r = t
        .post(
            "/addresses",
            &[
                ("against_type", "contact"),
                ("against_id", "1"),
                ("city", "Kraków"),
                ("country", "PL"),
            ],
        )
        .await;
    ok(&r);
    invalid(
        &t.post(
            "/addresses",
            &[("against_type", "planet"), ("against_id", "1")],
        )
        .await,
    );
    let r = t.get("/contacts/1/addresses?_fields=city").await;
    assert!(
        ok(&r)
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["city"] == "Kraków")
    );
    let r = t.get("/addresses/count").await;
    assert!(ok(&r)["count"].as_str().unwrap().parse::<u64>().unwrap() >= 2);
}

#[tokio::test]
async fn method_override_and_write_counting() {
    let t = T::start().await;
    // A POST carrying `_method=get` is a read.
    let r = T::wrap(
        t.http
            .post(t.url("/companies?_method=get&_limit=3"))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok(&r).as_array().unwrap().len(), 3);
    let stats = t.admin("/_sandbox/stats").await;
    assert_eq!(stats["writes"], 0, "{stats}");
    assert_eq!(stats["requests"]["GET /api/v0/companies"], 1);
    // A GET carrying `_method=delete` deletes.
    let r = T::wrap(
        t.http
            .get(t.url("/contacts/2?_method=delete"))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    ok(&r);
    let stats = t.admin("/_sandbox/stats").await;
    assert_eq!(stats["writes"], 1);
    assert_eq!(stats["requests"]["DELETE /api/v0/contacts/{id}"], 1);
}

#[tokio::test]
async fn hourly_rate_limit_with_headers() {
    let t = T::with(SandboxOptions {
        rate_limits: RateLimits {
            accelo_per_hour: Some(3),
            ..RateLimits::unlimited()
        },
        ..Default::default()
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = t.get("/companies?_limit=1").await;
        ok(&r);
        assert_eq!(r.headers["x-ratelimit-limit"], "3");
        let reset: u64 = r.headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            reset > chrono::Utc::now().timestamp() as u64,
            "reset is a future unix time"
        );
        remaining.push(
            r.headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, vec!["2", "1", "0"]);
    let r = t.get("/companies?_limit=1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["meta"]["status"], "too_many_requests");
    // The 429 carries the same headers: the limit, nothing left, and when the window resets.
    assert_eq!(r.headers["x-ratelimit-limit"], "3");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    let reset: u64 = r.headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > chrono::Utc::now().timestamp() as u64, "{reset}");
    // Token requests are not limited.
    let r = t
        .http
        .post(format!("{}/oauth2/v0/token", t.sb.accelo_url()))
        .basic_auth(t.sb.accelo_client_id(), Some(t.sb.accelo_client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(t.admin("/_sandbox/stats").await["throttled"], 1);
}

#[tokio::test]
async fn injected_server_errors_do_not_write() {
    let t = T::start().await;
    let before = t.admin("/_sandbox/records/companies").await;
    let r = t
        .admin_post("/_sandbox/faults", json!({"errors": {"500": 1.0}}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t.post("/companies", &[("name", "Never")]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body["meta"]["status"], "server_error");
    assert_eq!(t.admin("/_sandbox/records/companies").await, before);
    t.admin_post(
        "/_sandbox/faults",
        json!({"latency_ms": 1, "errors": {"502": 1.0}}),
    )
    .await;
    let r = t.get("/companies").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    t.admin_post("/_sandbox/faults", json!({})).await;
    ok(&t.get("/companies").await);
}

// ---------------------------------------------------------------------------------------------
// Admin

#[tokio::test]
async fn admin_edits_records_and_lists_every_object() {
    let t = T::start().await;
    let before = ok(&t.get("/companies/5?_fields=date_modified").await)["date_modified"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    let r = t
        .admin_post("/_sandbox/edit", json!({"object": "companies", "id": "5", "fields": {"name": "Renamed Pty Ltd", "status": "Inactive", "postal_address.city": "Hobart", "postal_address.country": "Australia"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "Renamed Pty Ltd");
    assert_eq!(r.body["standing"], "inactive");
    let c = ok(&t
        .get("/companies/5?_fields=date_modified,postal_address(city)")
        .await)
    .clone();
    assert!(
        c["date_modified"].as_str().unwrap().parse::<i64>().unwrap() > before,
        "a seeded company (modified long ago) is modified now"
    );
    assert_eq!(c["postal_address"]["city"], "Hobart");

    let r = t
        .admin_post("/_sandbox/edit", json!({"object": "contacts", "id": 3, "fields": {"affiliation.email": "new@mail.example", "title": "Dr"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c = ok(&t
        .get("/contacts/3?_fields=title,default_affiliation(email)")
        .await)
    .clone();
    assert_eq!(c["title"], "Dr");
    assert_eq!(c["default_affiliation"]["email"], "new@mail.example");
    let r = t
        .admin_post("/_sandbox/edit", json!({"object": "contacts", "id": null, "fields": {"firstname": "Nils", "surname": "Persson", "company_id": "1", "email": "nils@persson.example"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t
        .admin_post(
            "/_sandbox/edit",
            json!({"object": "contacts", "id": null, "fields": {"firstname": "No company"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for obj in ["companies", "contacts", "affiliations", "addresses"] {
        let all = t.admin(&format!("/_sandbox/records/{obj}")).await;
        assert!(!all.as_array().unwrap().is_empty(), "{obj}");
    }
    let affs = t.admin("/_sandbox/records/affiliations").await;
    assert!(affs[0]["company"].is_string() && affs[0]["contact"].is_string());
    // Reset brings it all back.
    let r = t.admin_post("/_sandbox/reset", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(ok(&t.get("/companies/5").await)["name"], "Renamed Pty Ltd");
    assert_eq!(t.admin("/_sandbox/stats").await["total"], 1);
}

#[tokio::test]
async fn seeded_data_overlaps_with_hubspot() {
    let sb = Sandbox::start(SandboxOptions {
        seed: 9,
        companies: 60,
        contacts: 200,
        rate_limits: RateLimits::unlimited(),
        ..Default::default()
    })
    .await
    .unwrap();
    let hs: Value = reqwest::get(format!("{}/_sandbox/records/companies", sb.hubspot_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ac: Value = reqwest::get(format!("{}/_sandbox/records/companies", sb.accelo_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let domains: Vec<String> = hs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["properties"]["domain"].as_str().map(str::to_string))
        .collect();
    let shared: Vec<&Value> = ac
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["website"]
                .as_str()
                .is_some_and(|w| domains.iter().any(|d| w.contains(d.as_str())))
        })
        .collect();
    assert!(
        shared.len() >= 15,
        "about 40 % shared by domain, got {}",
        shared.len()
    );
    // Names of shared companies differ at least sometimes (case / legal suffix).
    let differing = shared
        .iter()
        .filter(|a| {
            let w = a["website"].as_str().unwrap();
            hs.as_array().unwrap().iter().any(|h| {
                h["properties"]["domain"]
                    .as_str()
                    .is_some_and(|d| w.contains(d))
                    && h["properties"]["name"] != a["name"]
            })
        })
        .count();
    assert!(differing > 0);
    // Some HubSpot contacts have no company.
    let contacts: Value = reqwest::get(format!("{}/_sandbox/records/contacts", sb.hubspot_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        contacts
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["properties"]["associatedcompanyid"].is_null())
    );
    let _ = Duration::ZERO;
    sb.shutdown().await;
}

#[tokio::test]
async fn a_hundred_failed_logins_lock_the_token_endpoint() {
    let t = T::start().await;
    let token_url = format!("{}/oauth2/v0/token", t.sb.accelo_url());
    for _ in 0..100 {
        let r = t
            .http
            .post(&token_url)
            .basic_auth(t.sb.accelo_client_id(), Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right secret is refused, with Retry-After.
    let r = t
        .http
        .post(&token_url)
        .basic_auth(t.sb.accelo_client_id(), Some(t.sb.accelo_client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["retry-after"], "300");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "too_many_failed_logins"
    );
    // Tokens issued before keep working.
    ok(&t.get("/companies?_limit=1").await);
}

#[tokio::test]
async fn affiliation_counts_and_ascending_orders() {
    let t = T::start().await;
    let count = |r: &Resp| -> usize { ok(r)["count"].as_str().unwrap().parse().unwrap() };
    let all = t.admin("/_sandbox/records/affiliations").await;
    let all = all.as_array().unwrap();
    assert!(all.len() >= 150, "one affiliation per contact at least");
    assert_eq!(count(&t.get("/affiliations/count").await), all.len());
    let of_company_1 = all.iter().filter(|a| a["company"] == "1").count();
    assert!(of_company_1 > 0);
    assert_eq!(
        count(&t.get("/affiliations/count?_filters=company(1)").await),
        of_company_1
    );
    let contact = all[0]["contact"].as_str().unwrap();
    let of_contact = all.iter().filter(|a| a["contact"] == contact).count();
    assert_eq!(
        count(
            &t.get(&format!("/affiliations/count?_filters=contact({contact})"))
                .await
        ),
        of_contact
    );
    invalid(
        &t.get("/affiliations/count?_filters=favourite_colour(red)")
            .await,
    );

    // order_by_asc on a text field (case-insensitive, ties by id) and on a date.
    let r = t
        .get("/contacts?_fields=surname&_filters=order_by_asc(surname)&_limit=100")
        .await;
    let rows: Vec<(String, u64)> = ok(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["surname"].as_str().unwrap().to_lowercase(),
                c["id"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 100);
    assert!(rows.windows(2).all(|w| w[0] <= w[1]), "{rows:?}");
    // The first page of the ascending order starts with the smallest surname overall.
    let smallest = t
        .admin("/_sandbox/records/contacts")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["surname"].as_str().unwrap().to_lowercase())
        .min()
        .unwrap();
    assert_eq!(rows[0].0, smallest);
    let r = t
        .get("/affiliations?_fields=date_modified&_filters=order_by_asc(date_modified)&_limit=100&_page=1")
        .await;
    let dates: Vec<i64> = ok(&r)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["date_modified"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(!dates.is_empty());
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
}

#[tokio::test]
async fn updating_old_records_moves_date_modified_strictly_forward() {
    let t = T::start().await;
    let modified = |r: &Resp| -> i64 { ok(r)["date_modified"].as_str().unwrap().parse().unwrap() };
    let now = chrono::Utc::now().timestamp();
    for (path, form) in [
        (
            "/companies/2",
            vec![("comments", "Touched"), ("_fields", "date_modified")],
        ),
        (
            "/contacts/2",
            vec![
                ("comments", "Touched by the timestamp test"),
                ("_fields", "date_modified"),
            ],
        ),
        (
            "/affiliations/2",
            vec![("position", "Timekeeper"), ("_fields", "date_modified")],
        ),
    ] {
        let before = modified(&t.get(&format!("{path}?_fields=date_modified")).await);
        assert!(
            before < now,
            "{path}: the seeded record was modified in the past"
        );
        let after = modified(&t.put(path, &form).await);
        assert!(
            after > before,
            "{path}: {after} must be later than {before}"
        );
        assert_eq!(
            modified(&t.get(&format!("{path}?_fields=date_modified")).await),
            after
        );
    }
}

#[tokio::test]
async fn revoking_tokens_refuses_issued_tokens_until_a_new_one_is_fetched() {
    let t = T::start().await;
    ok(&t.get("/companies?_limit=1").await);
    let r = t.admin_post("/_sandbox/revoke_tokens", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revoked"], 1);
    let r = t.get("/companies?_limit=1").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["meta"]["status"], "invalid_client");
    let tok: Value = t
        .http
        .post(format!("{}/oauth2/v0/token", t.sb.accelo_url()))
        .basic_auth(t.sb.accelo_client_id(), Some(t.sb.accelo_client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = tok["access_token"].as_str().unwrap();
    let r = t
        .http
        .get(t.url("/companies?_limit=1"))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stats = t.admin("/_sandbox/stats").await;
    assert!(
        stats["requests"]
            .get("POST /_sandbox/revoke_tokens")
            .is_none()
    );
    assert_eq!(
        stats["total"], 5,
        "two token requests and three reads: {stats}"
    );
}
