//! The console's JSON API against a real `tandem serve` and a sandbox, over HTTP: sign-in and
//! sessions, CSRF and same-origin refusals, roles, jobs queued from the console (the same jobs
//! as the commands), guardrails and Run anyway, the sync log's keyset paging, filters and
//! exports, record pages, plan preview and apply, the rules editor's check, save, versions and
//! reload, `tandem user`, and that no answer carries a secret. The API's conformance to its own
//! OpenAPI document is checked with schemathesis at the end.
//!
//! Every server runs with the poller off and the sandbox's HubSpot webhooks pointed nowhere, so
//! that only what a test does moves data.

use std::sync::Mutex;

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};
use tandem_core::model::Object;
use tandem_engine::server::console::api::CSV_COLUMNS;
use tandem_engine::store::{
    JobFilter, JobId, JobKind, LogBody, LogQuery, NewLogEntry, Notice, NoticeLevel,
};
use tandem_sandbox::{FaultConfig, Sandbox};

use crate::support::console::{self, Client, OPERATOR, VIEWER, anonymous};
use crate::support::exec::sandbox;
use crate::support::schemathesis::run_schemathesis_with_config;
use crate::support::serve::{Serving, edit, records, wait_for};

// ----- helpers --------------------------------------------------------------------------------

/// `tandem serve` with the console users, no poller and no HubSpot webhooks.
async fn serve(sb: &Sandbox, edit: impl Fn(&str, String) -> String) -> Serving {
    let s = console::start(sb, 0, edit).await;
    sb.set_hubspot_webhook(None, None);
    s
}

fn unchanged(_: &str, text: String) -> String {
    text
}

/// A signed-in client whose every answer is kept, to check that none carries a secret.
struct Api {
    c: Client,
    seen: Mutex<Vec<String>>,
}

impl Api {
    async fn sign_in(base: &str, user: (&str, &str)) -> Api {
        let c = Client::sign_in(base, user).await;
        Api {
            c,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn keep(&self, text: String) {
        self.seen.lock().unwrap().push(text);
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v) = self.c.get(path).await;
        self.keep(v.to_string());
        (s, v)
    }

    async fn get_text(&self, path: &str) -> (u16, String) {
        let (s, t) = self.c.get_text(path).await;
        self.keep(t.clone());
        (s, t)
    }

    async fn send(&self, method: Method, path: &str, body: &Value) -> (u16, Value) {
        let (s, v) = self.c.send(method, path, body).await;
        self.keep(v.to_string());
        (s, v)
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (s, v) = self.c.post(path, body).await;
        self.keep(v.to_string());
        (s, v)
    }

    /// Asserts no kept answer holds the sandbox's HubSpot token or Accelo client secret.
    fn assert_no_secrets(&self, sb: &Sandbox) {
        let seen = self.seen.lock().unwrap();
        assert!(!seen.is_empty());
        for text in seen.iter() {
            for secret in [sb.hubspot_token(), sb.accelo_client_secret()] {
                assert!(
                    !text.contains(secret),
                    "an API answer holds a secret: {text}"
                );
            }
        }
    }

    /// Waits until job `id` has ended; answers its document.
    async fn finished(&self, id: i64) -> Value {
        wait_for(&format!("job {id} to end"), || async move {
            let (status, doc) = self.get(&format!("/api/v1/jobs/{id}")).await;
            assert_eq!(status, 200, "{doc}");
            matches!(
                doc["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
            .then_some(doc)
        })
        .await
    }

    /// Queues a pull from the console and waits for it; answers the finished job.
    async fn pull(&self) -> Value {
        let (status, job) = self.post("/api/v1/jobs", &json!({"kind": "pull"})).await;
        assert_eq!(status, 202, "{job}");
        self.finished(job["id"].as_i64().unwrap()).await
    }
}

/// The id of a sandbox admin record (Accelo ids may be numbers).
fn id_of(record: &Value) -> String {
    match &record["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A POST with only the headers given (no client defaults).
async fn raw_post(base: &str, path: &str, headers: &[(&str, &str)], body: &Value) -> u16 {
    let mut r = anonymous().post(format!("{base}{path}")).json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap().status().as_u16()
}

async fn jobs_in_store(s: &Serving) -> usize {
    s.store.jobs(&JobFilter::default()).await.unwrap().len()
}

/// The records of a CSV text (fields may be quoted and hold commas, quotes and newlines).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "the CSV ends with a newline"
    );
    out
}

/// Every entry of the log under `query` (a query string without `before`), paging back.
async fn all_entries(api: &Api, query: &str) -> Vec<Value> {
    let (status, page) = api.get(&format!("/api/v1/log?{query}&limit=500")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["next_before"].is_null(), "fewer than 500 entries");
    page["entries"].as_array().unwrap().clone()
}

// ----- sign-in and sessions -------------------------------------------------------------------

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_limits_failures_and_sign_out_ends_the_session() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let base = s.url.as_str();
    let http = anonymous();
    let sign_in = |name: &str, password: &str, extra: &[(&str, &str)]| {
        let mut r = http
            .post(format!("{base}/api/v1/session"))
            .header(ORIGIN, base)
            .json(&json!({"name": name, "password": password}));
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.send()
    };

    // A wrong password: 401 and no cookie.
    let r = sign_in(OPERATOR.0, "not-the-password", &[]).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get(SET_COOKIE).is_none());
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    // The cookie: HttpOnly, SameSite=Strict, Path=/, and Secure only behind HTTPS.
    let api = Api::sign_in(base, OPERATOR).await;
    let attrs: Vec<&str> = api.c.set_cookie.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("tandem_session="), "{attrs:?}");
    for a in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&a), "{a} in {attrs:?}");
    }
    assert!(!attrs.contains(&"Secure"), "{attrs:?}");
    let r = sign_in(OPERATOR.0, OPERATOR.1, &[("X-Forwarded-Proto", "https")])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.split(';').map(str::trim).any(|a| a == "Secure"),
        "{cookie}"
    );

    // Five failures for a name, from five addresses: the sixth attempt is refused even with
    // the right password, and not counted against the addresses.
    for i in 0..5 {
        let ip = format!("10.0.0.{i}");
        let r = sign_in(VIEWER.0, "wrong", &[("X-Forwarded-For", &ip)])
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "failure {i}");
    }
    let r = sign_in(VIEWER.0, VIEWER.1, &[("X-Forwarded-For", "10.0.1.1")])
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get(SET_COOKIE).is_none());
    // Five failures from one address: every name is refused from it, not from elsewhere.
    for i in 0..5 {
        let r = sign_in(
            &format!("nobody{i}"),
            "wrong",
            &[("X-Forwarded-For", "10.9.9.9")],
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = sign_in(OPERATOR.0, OPERATOR.1, &[("X-Forwarded-For", "10.9.9.9")])
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let r = sign_in(OPERATOR.0, OPERATOR.1, &[("X-Forwarded-For", "10.9.9.8")])
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Signing out ends the session: the cookie no longer signs anything in.
    let (status, who) = api.get("/api/v1/session").await;
    assert_eq!((status, who["user"].as_str()), (200, Some(OPERATOR.0)));
    assert_eq!(who["role"], "operator");
    let r = api
        .c
        .request(Method::DELETE, "/api/v1/session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, _) = api.get("/api/v1/session").await;
    assert_eq!(status, 401);
    let (status, _) = api.post("/api/v1/jobs", &json!({"kind": "pull"})).await;
    assert_eq!(status, 401);
    assert_eq!(jobs_in_store(&s).await, 0);
    api.assert_no_secrets(&sb);
}

/// The smallest value `schema` (of the OpenAPI document `doc`) allows: the first of an enum,
/// an empty string, zero, an object of its required properties.
fn minimal(schema: &Value, doc: &Value) -> Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return minimal(&doc["components"]["schemas"][name], doc);
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    let ty = match &schema["type"] {
        Value::Array(types) => types.first().and_then(Value::as_str).unwrap_or("null"),
        Value::String(t) => t.as_str(),
        _ if schema["properties"].is_object() => "object",
        _ => "null",
    };
    match ty {
        "object" => Value::Object(
            schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|p| (p.to_string(), minimal(&schema["properties"][p], doc)))
                .collect(),
        ),
        "string" => json!(""),
        "integer" | "number" => json!(0),
        "boolean" => json!(false),
        "array" => json!([]),
        _ => Value::Null,
    }
}

#[tokio::test]
async fn without_a_session_the_api_answers_401_and_pages_send_to_the_sign_in() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let base = s.url.as_str();
    let http = anonymous();
    let company = id_of(&records(sb.hubspot_url(), "companies").await[0]);
    let gets = [
        "/api/v1/session".to_string(),
        "/api/v1/status".into(),
        "/api/v1/jobs".into(),
        "/api/v1/jobs/1".into(),
        "/api/v1/log".into(),
        "/api/v1/log?outcome=errors".into(),
        "/api/v1/log/export?format=csv".into(),
        format!("/api/v1/records/hubspot/company/{company}"),
        "/api/v1/rules".into(),
        "/api/v1/rules/files/companies.yaml/versions".into(),
        "/api/v1/events".into(),
    ];
    for path in &gets {
        for cookie in [None, Some("tandem_session=0123456789abcdef")] {
            let mut r = http.get(format!("{base}{path}"));
            if let Some(c) = cookie {
                r = r.header(COOKIE, c);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "GET {path} with {cookie:?}");
            let body: Value = r.json().await.unwrap();
            assert!(body["error"].is_string(), "GET {path}: {body}");
        }
    }
    // Every operation of the API's own document, whatever its method: 401 without a session
    // (sign-in aside), so that a route added without the check fails here.
    let doc: Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{system}", "hubspot")
            .replace("{object}", "company")
            .replace("{file}", "companies.yaml")
            .replace("{id}", "1");
        for method in ops.as_object().unwrap().keys() {
            if (method.as_str(), path.as_str()) == ("post", "/api/v1/session") {
                continue;
            }
            // A body of the documented shape, so that the request gets as far as the session
            // check (a malformed body is refused before it).
            let schema = &ops[method]["requestBody"]["content"]["application/json"]["schema"];
            let query: Vec<(String, String)> = ops[method]["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .map(|p| {
                    let v = minimal(&p["schema"], &doc);
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (p["name"].as_str().unwrap().to_string(), v)
                })
                .collect();
            let mut r = http
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{base}{concrete}"),
                )
                .query(&query)
                .header(ORIGIN, base);
            if schema.is_object() {
                r = r.json(&minimal(schema, &doc));
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {concrete}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} operations");
    assert_eq!(jobs_in_store(&s).await, 0);
    for (page, next) in [("/", "%2F"), ("/log", "%2Flog"), ("/rules", "%2Frules")] {
        let r = http.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(r.status(), 303, "GET {page}");
        let to = r.headers()[LOCATION].to_str().unwrap();
        assert_eq!(to, format!("/login?next={next}"), "GET {page}");
    }
    // The sign-in page itself is open.
    let r = http.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn malformed_requests_are_answered_with_a_json_error() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let api = Api::sign_in(&s.url, OPERATOR).await;
    let plain = api
        .c
        .request(Method::POST, "/api/v1/jobs")
        .header("content-type", "text/plain")
        .body("pull")
        .send()
        .await
        .unwrap();
    let cases = [
        (plain, 415),
        (
            api.c
                .request(Method::POST, "/api/v1/jobs")
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap(),
            400,
        ),
        (
            api.c
                .request(Method::POST, "/api/v1/jobs")
                .json(&json!({"kind": 5}))
                .send()
                .await
                .unwrap(),
            422,
        ),
        (
            api.c
                .request(Method::GET, "/api/v1/jobs/abc")
                .send()
                .await
                .unwrap(),
            400,
        ),
        (
            api.c
                .request(Method::GET, "/api/v1/log?limit=-1")
                .send()
                .await
                .unwrap(),
            400,
        ),
    ];
    for (r, status) in cases {
        assert_eq!(r.status(), status, "{}", r.url());
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("application/json"), "{ctype}");
        let body: Value = r.json().await.unwrap();
        assert!(!body["error"].as_str().unwrap().is_empty(), "{body}");
    }
    assert_eq!(jobs_in_store(&s).await, 0);
}

// ----- CSRF, origins and roles ----------------------------------------------------------------

#[tokio::test]
async fn posts_without_the_token_or_from_another_site_are_refused_and_queue_nothing() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let base = s.url.as_str();
    let api = Api::sign_in(base, OPERATOR).await;
    let cookie = api.c.cookie.as_str();
    let token = api.c.csrf.as_str();
    let other = format!("http://127.0.0.1:{}", crate::support::closed_port());
    let pull = json!({"kind": "pull"});
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("no token", vec![("Cookie", cookie), ("Origin", base)]),
        (
            "a wrong token",
            vec![
                ("Cookie", cookie),
                ("Origin", base),
                ("X-CSRF-Token", "0badc0de"),
            ],
        ),
        (
            "another origin",
            vec![
                ("Cookie", cookie),
                ("Origin", &other),
                ("X-CSRF-Token", token),
            ],
        ),
        (
            "Sec-Fetch-Site: cross-site",
            vec![
                ("Cookie", cookie),
                ("Origin", base),
                ("X-CSRF-Token", token),
                ("Sec-Fetch-Site", "cross-site"),
            ],
        ),
        (
            "a referer of another origin",
            vec![
                ("Cookie", cookie),
                ("Referer", &other),
                ("X-CSRF-Token", token),
            ],
        ),
    ];
    for (what, headers) in &cases {
        assert_eq!(
            raw_post(base, "/api/v1/jobs", headers, &pull).await,
            403,
            "{what}"
        );
    }
    assert_eq!(jobs_in_store(&s).await, 0, "nothing queued");
    // The same request with the token and the console's origin is accepted.
    let ok = [
        ("Cookie", cookie),
        ("Origin", base),
        ("X-CSRF-Token", token),
    ];
    assert_eq!(raw_post(base, "/api/v1/jobs", &ok, &pull).await, 202);
    assert_eq!(jobs_in_store(&s).await, 1);
    // Signing in from another site is refused too.
    let r = anonymous()
        .post(format!("{base}/api/v1/session"))
        .header(ORIGIN, &other)
        .json(&json!({"name": OPERATOR.0, "password": OPERATOR.1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_viewer_reads_but_is_refused_every_change() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let api = Api::sign_in(&s.url, VIEWER).await;
    let (status, who) = api.get("/api/v1/session").await;
    assert_eq!((status, who["role"].as_str()), (200, Some("viewer")));
    let (status, _) = api.get("/api/v1/status").await;
    assert_eq!(status, 200);
    // A dry run writes nothing: a viewer may make one.
    let (status, plan) = api
        .post("/api/v1/plans", &json!({"direction": "pull"}))
        .await;
    assert_eq!(status, 200, "{plan}");
    let accelo = id_of(&records(sb.accelo_url(), "companies").await[0]);
    let companies = s.rules.join("companies.yaml");
    let before = std::fs::read_to_string(&companies).unwrap();
    let edited = before.replace("trim(value)", "trim(lower(value))");
    assert_ne!(edited, before);
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/jobs".to_string(),
            json!({"kind": "pull"}),
        ),
        (Method::POST, "/api/v1/jobs".into(), json!({"kind": "push"})),
        (
            Method::POST,
            format!("/api/v1/records/accelo/company/{accelo}"),
            json!({"action": "push"}),
        ),
        (
            Method::POST,
            "/api/v1/plans/apply".into(),
            json!({"saved": plan["saved"]}),
        ),
        (
            Method::PUT,
            "/api/v1/rules/files/companies.yaml".into(),
            json!({"text": edited}),
        ),
    ] {
        let (status, body) = api.send(method.clone(), &path, &body).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("viewer"), "{body}");
    }
    assert_eq!(jobs_in_store(&s).await, 0, "nothing queued");
    assert_eq!(std::fs::read_to_string(&companies).unwrap(), before);
    assert!(
        s.store
            .rule_versions("companies.yaml", 10)
            .await
            .unwrap()
            .is_empty()
    );
    api.assert_no_secrets(&sb);
}

// ----- jobs -----------------------------------------------------------------------------------

#[tokio::test]
async fn an_operator_pull_is_the_job_tandem_pull_makes_and_runs_to_the_end() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let api = Api::sign_in(&s.url, OPERATOR).await;
    let (status, queued) = api.post("/api/v1/jobs", &json!({"kind": "pull"})).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["kind"], "pull");
    assert_eq!(queued["force"], false);
    let id = queued["id"].as_i64().unwrap();
    let done = api.finished(id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["finished"]["counts"].is_object(), "{done}");
    // The job `tandem pull` queues: kind pull, payload {}.
    let job = s.store.job(JobId(id)).await.unwrap().unwrap();
    assert_eq!(job.kind, JobKind::Pull);
    assert_eq!(
        job.payload,
        tandem_engine::exec::jobs::payload(JobKind::Pull, None, false)
    );
    assert_eq!(job.payload, json!({}));
    // Who asked for it is in the sync log, on that job.
    let log = s
        .store
        .log(&LogQuery {
            job: Some(JobId(id)),
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert!(
        log.iter().any(|e| matches!(&e.body, LogBody::Notice(n)
            if n.message == "olga queued a pull from the console")),
        "{log:?}"
    );
    // Accelo has the companies now: the pull really ran.
    let linked = s.store.links(Object::Company).await.unwrap();
    assert!(!linked.is_empty());
    // Bad kinds and ids are refused with 400 and queue nothing.
    for body in [
        json!({"kind": "delete"}),
        json!({"kind": "push_company"}),
        json!({"kind": "push_company", "id": "12; drop"}),
    ] {
        let (status, _) = api.post("/api/v1/jobs", &body).await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, jobs) = api.get("/api/v1/jobs").await;
    assert_eq!(status, 200);
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    let (status, _) = api.get("/api/v1/jobs/987654").await;
    assert_eq!(status, 404);
    api.assert_no_secrets(&sb);
}

#[tokio::test]
async fn a_pull_a_guardrail_stops_says_why_and_runs_anyway_on_request() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, |name, text| {
        if name == "tandem.yaml" {
            assert!(text.contains("max_create: 5000"));
            text.replace("max_create: 5000", "max_create: 1")
        } else {
            text
        }
    })
    .await;
    let api = Api::sign_in(&s.url, OPERATOR).await;
    let writes = || async { sb.accelo_stats()["writes"].as_u64().unwrap() };
    let writes_before = writes().await;
    let stopped = api.pull().await;
    assert_ne!(stopped["state"], "succeeded", "{stopped}");
    let g = &stopped["finished"]["guardrail"];
    assert_eq!(g["threshold"], "max_create", "{stopped}");
    assert_eq!(g["limit"], "1", "{stopped}");
    assert!(g["would"].as_str().unwrap().contains("create"), "{g}");
    assert_eq!(writes().await, writes_before, "nothing written");
    let id = stopped["id"].as_i64().unwrap();

    let (status, again) = api
        .post(&format!("/api/v1/jobs/{id}/run-anyway"), &json!({}))
        .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["force"], true);
    assert_eq!(again["kind"], "pull");
    let again_id = again["id"].as_i64().unwrap();
    assert_ne!(again_id, id);
    let done = api.finished(again_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(done["finished"]["guardrail"].is_null(), "{done}");
    assert!(writes().await > writes_before);
    let job = s.store.job(JobId(again_id)).await.unwrap().unwrap();
    assert_eq!(job.payload, json!({"force": true}));

    // A job no limit stopped cannot be run anyway.
    let (status, body) = api
        .post(&format!("/api/v1/jobs/{again_id}/run-anyway"), &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = api.post("/api/v1/jobs/987654/run-anyway", &json!({})).await;
    assert_eq!(status, 404);
    api.assert_no_secrets(&sb);
}

// ----- the sync log ---------------------------------------------------------------------------

#[tokio::test]
async fn the_log_pages_by_keyset_filters_and_exports() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let api = Api::sign_in(&s.url, OPERATOR).await;
    // Accelo refuses every company create: those companies (and their contacts) fail.
    sb.set_faults(FaultConfig {
        errors: [(400, 1.0)].into_iter().collect(),
        only: vec!["POST /api/v0/companies".into()],
        ..FaultConfig::default()
    })
    .unwrap();
    let pull = api.pull().await;
    assert!(
        pull["finished"]["counts"]["failed"].as_u64().unwrap() > 0,
        "{pull}"
    );
    sb.set_faults(FaultConfig::default()).unwrap();
    // A notice whose text a spreadsheet would take for a formula.
    s.store
        .append_log(&NewLogEntry {
            job: None,
            body: LogBody::Notice(Notice {
                level: NoticeLevel::Info,
                message: "=HYPERLINK(\"http://evil.example\")".into(),
            }),
        })
        .await
        .unwrap();

    // Keyset paging: five at a time, back to the start.
    let all = all_entries(&api, "").await;
    assert!(all.len() > 20, "{}", all.len());
    let mut paged: Vec<i64> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/v1/log?limit=5&before={b}"),
            None => "/api/v1/log?limit=5".to_string(),
        };
        let (status, page) = api.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let ids: Vec<i64> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert!(ids.len() <= 5);
        if let Some(first) = ids.first() {
            assert_eq!(page["newest"].as_i64(), Some(*first));
        }
        paged.extend(&ids);
        match page["next_before"].as_i64() {
            Some(b) => {
                assert_eq!(ids.len(), 5);
                assert_eq!(Some(&b), ids.last());
                before = Some(b);
            }
            None => break,
        }
    }
    assert!(paged.windows(2).all(|w| w[0] > w[1]), "strictly decreasing");
    let everything: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(paged, everything, "the pages are the whole log, once");
    // `after`: only newer entries.
    let mid = everything[everything.len() / 2];
    let (_, newer) = api.get(&format!("/api/v1/log?after={mid}&limit=500")).await;
    let newer: Vec<i64> = newer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(newer, everything[..everything.len() / 2].to_vec());

    // Errors only.
    let errors = all_entries(&api, "outcome=errors").await;
    assert!(!errors.is_empty());
    assert!(
        errors.iter().all(|e| e["outcome"] == "failed"),
        "{errors:?}"
    );
    let failed_in_all = all.iter().filter(|e| e["outcome"] == "failed").count();
    assert_eq!(errors.len(), failed_in_all);
    // Object and system.
    let companies = all_entries(&api, "object=company").await;
    assert!(!companies.is_empty());
    assert!(companies.iter().all(|e| e["object"] == "company"));
    assert_eq!(
        companies.len(),
        all.iter().filter(|e| e["object"] == "company").count()
    );
    let hubspot = all_entries(&api, "system=hubspot").await;
    assert!(!hubspot.is_empty());
    assert!(
        hubspot
            .iter()
            .all(|e| e["source"]["system"] == "hubspot" || e["target"]["system"] == "hubspot")
    );
    let (status, _) = api.get("/api/v1/log?object=planet").await;
    assert_eq!(status, 400);
    let (status, _) = api.get("/api/v1/log?outcome=exploded").await;
    assert_eq!(status, 400);
    // Text: by an id, by an email.
    let failed_id = errors[0]["source"]["id"].as_str().unwrap().to_string();
    let by_id = all_entries(&api, &format!("q={failed_id}")).await;
    assert!(by_id.iter().any(|e| e["id"] == errors[0]["id"]));
    assert!(by_id.iter().all(|e| e.to_string().contains(&failed_id)));
    let email = records(sb.hubspot_url(), "contacts")
        .await
        .iter()
        .filter_map(|c| c["properties"]["email"].as_str().map(str::to_string))
        .find(|m| all.iter().any(|e| e.to_string().contains(m.as_str())))
        .expect("a HubSpot contact's email in the log");
    let by_email = all_entries(&api, &format!("q={}", email.to_uppercase())).await;
    assert!(!by_email.is_empty());
    assert!(
        by_email
            .iter()
            .all(|e| e.to_string().to_lowercase().contains(&email.to_lowercase()))
    );

    // CSV export of the errors: the header and one record per entry.
    let (status, csv) = api
        .get_text("/api/v1/log/export?format=csv&outcome=errors")
        .await;
    assert_eq!(status, 200);
    let rows = csv_records(&csv);
    assert_eq!(rows[0].join(","), CSV_COLUMNS);
    assert_eq!(rows.len(), 1 + errors.len());
    let width = CSV_COLUMNS.split(',').count();
    assert!(rows.iter().all(|r| r.len() == width));
    let ids: Vec<String> = errors.iter().map(|e| e["id"].to_string()).collect();
    let csv_ids: Vec<String> = rows[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(csv_ids, ids);
    assert!(rows[1..].iter().all(|r| r[7] == "failed"));
    // A formula is shown as text.
    let (_, csv) = api.get_text("/api/v1/log/export?format=csv").await;
    let rows = csv_records(&csv);
    assert_eq!(rows.len(), 1 + all.len());
    let formula = rows
        .iter()
        .find(|r| r[11].contains("HYPERLINK"))
        .expect("the notice");
    assert_eq!(formula[11], "'=HYPERLINK(\"http://evil.example\")");
    assert!(
        rows.iter().flatten().all(|cell| !cell.starts_with('=')),
        "no cell starts a formula"
    );
    // JSON lines: the same entries.
    let (status, jsonl) = api
        .get_text("/api/v1/log/export?format=jsonl&outcome=errors")
        .await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines, errors);
    let (status, _) = api.get_text("/api/v1/log/export?format=xml").await;
    assert_eq!(status, 400);
    // Numeric filters work in an export too: one job's entries.
    let job = pull["id"].as_i64().unwrap();
    let (status, jsonl) = api
        .get_text(&format!(
            "/api/v1/log/export?format=jsonl&job={job}&limit=7"
        ))
        .await;
    assert_eq!(status, 200, "{jsonl}");
    let of_job = all.iter().filter(|e| e["job"] == job).count();
    assert!(of_job > 7);
    assert_eq!(jsonl.lines().count(), of_job, "an export is not paged");
    assert!(
        jsonl
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).unwrap()["job"] == job)
    );
    api.assert_no_secrets(&sb);
}

// ----- record pages ---------------------------------------------------------------------------

fn field<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("field {name} in {doc}"))
}

fn norm(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[tokio::test]
async fn a_record_page_shows_both_sides_field_by_field_and_its_history() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let api = Api::sign_in(&s.url, OPERATOR).await;
    let pull = api.pull().await;
    assert_eq!(pull["state"], "succeeded", "{pull}");
    let link = s.store.links(Object::Company).await.unwrap()[0].clone();
    let path = format!("/api/v1/records/hubspot/company/{}", link.hubspot_id);
    let (status, doc) = api.get(&path).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["record"]["exists"], true);
    assert_eq!(doc["twin"]["system"], "accelo");
    assert_eq!(doc["twin"]["id"], link.accelo_id.as_str());
    assert_eq!(doc["twin"]["exists"], true);
    let fields = doc["fields"].as_array().unwrap();
    assert!(fields.len() > 5);
    for f in fields {
        assert_eq!(
            f["differs"].as_bool().unwrap(),
            norm(&f["hubspot"]) != norm(&f["accelo"]),
            "{f}"
        );
    }
    let name = field(&doc, "name");
    assert!(name["hubspot"].is_string() && name["synced_hubspot"].is_string());
    assert_eq!(name["differs"], false, "{name}");
    assert_eq!(field(&doc, "phone")["differs"], false);
    // History: newest first, the pull's entry among it.
    let history = doc["history"].as_array().unwrap();
    assert!(!history.is_empty());
    let ids: Vec<i64> = history.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert!(history.iter().any(|e| e["job"] == pull["id"]));

    // A value changed in Accelo: the field differs now, the synced value stays.
    edit(
        sb.accelo_url(),
        "companies",
        Some(&link.accelo_id),
        json!({"phone": "+61 3 9999 0000"}),
    )
    .await;
    let (_, doc2) = api.get(&path).await;
    let phone = field(&doc2, "phone");
    assert_eq!(phone["accelo"], "+61 3 9999 0000", "{phone}");
    assert_eq!(phone["differs"], true, "{phone}");
    assert_eq!(phone["hubspot"], field(&doc, "phone")["hubspot"]);
    assert_eq!(
        phone["synced_accelo"],
        field(&doc, "phone")["synced_accelo"]
    );
    assert_eq!(field(&doc2, "name")["differs"], false);
    // The Accelo side's page: the same pair from the other end.
    let (status, ac) = api
        .get(&format!(
            "/api/v1/records/accelo/company/{}",
            link.accelo_id
        ))
        .await;
    assert_eq!(status, 200, "{ac}");
    assert_eq!(ac["twin"]["id"], link.hubspot_id.as_str());
    assert_eq!(field(&ac, "phone")["differs"], true);

    // Push the Accelo company: the same job as `tandem push company ID`.
    let (status, job) = api
        .post(
            &format!("/api/v1/records/accelo/company/{}", link.accelo_id),
            &json!({"action": "push"}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["kind"], "push_company");
    assert_eq!(job["subject"], format!("accelo:company:{}", link.accelo_id));
    let done = api.finished(job["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, doc3) = api.get(&path).await;
    assert_eq!(field(&doc3, "phone")["hubspot"], "+61 3 9999 0000");
    assert_eq!(field(&doc3, "phone")["differs"], false);
    // Nothing failed, so there is nothing to retry.
    let (status, _) = api.post(&path, &json!({"action": "retry"})).await;
    assert_eq!(status, 409);
    let (status, _) = api.post(&path, &json!({"action": "explode"})).await;
    assert_eq!(status, 400);

    // Unknown and malformed records.
    let (status, body) = api.get("/api/v1/records/hubspot/company/987654321").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api.get("/api/v1/records/hubspot/company/abc$").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = api.get("/api/v1/records/salesforce/company/1").await;
    assert_eq!(status, 400);
    api.assert_no_secrets(&sb);
}

// ----- plans ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_previewed_plan_applies_as_saved_and_is_refused_when_the_data_changed() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let api = Api::sign_in(&s.url, OPERATOR).await;
    let (status, plan) = api
        .post("/api/v1/plans", &json!({"direction": "pull"}))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["direction"], "pull");
    assert!(plan["summary"].is_object(), "{plan}");
    assert!(!plan["summary_line"].as_str().unwrap().is_empty());
    let actions = plan["actions"].as_array().unwrap();
    assert!(!actions.is_empty());
    assert!(plan["saved"].is_object());

    // A HubSpot company the plan covers changes: the plan is refused, naming it.
    let company = actions
        .iter()
        .find(|a| a["object"] == "company" && a["source"]["id"].is_string())
        .unwrap();
    let hs_id = company["source"]["id"].as_str().unwrap().to_string();
    edit(
        sb.hubspot_url(),
        "companies",
        Some(&hs_id),
        json!({"name": "Changed Meanwhile Pty Ltd"}),
    )
    .await;
    let (status, refused) = api
        .post("/api/v1/plans/apply", &json!({"saved": plan["saved"]}))
        .await;
    assert_eq!(status, 409, "{refused}");
    let details = refused["details"].to_string();
    assert!(details.contains(&hs_id), "{refused}");
    assert_eq!(jobs_in_store(&s).await, 0);

    // Preview again and apply: an `apply` job that succeeds.
    let (_, plan) = api
        .post("/api/v1/plans", &json!({"direction": "pull"}))
        .await;
    let (status, job) = api
        .post("/api/v1/plans/apply", &json!({"saved": plan["saved"]}))
        .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["kind"], "apply");
    let done = api.finished(job["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(!s.store.links(Object::Company).await.unwrap().is_empty());
    // One company's plan.
    let (status, one) = api
        .post(
            "/api/v1/plans",
            &json!({"direction": "pull", "company": hs_id}),
        )
        .await;
    assert_eq!(status, 200, "{one}");
    assert!(
        one["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["object"] == "company")
            .all(|a| a["source"]["id"] == hs_id.as_str())
    );
    // Malformed requests.
    for body in [
        json!({"direction": "sideways"}),
        json!({"direction": "pull", "company": "x'1"}),
        json!({"direction": "pull", "company": "1", "contact": "2"}),
    ] {
        let (status, _) = api.post("/api/v1/plans", &body).await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, _) = api
        .post("/api/v1/plans/apply", &json!({"saved": {"not": "a plan"}}))
        .await;
    assert_eq!(status, 400);
    api.assert_no_secrets(&sb);
}

// ----- rules ----------------------------------------------------------------------------------

const CRITERIA: &str = r#"'present(record.name) && record.lifecyclestage != "subscriber"'"#;

#[tokio::test]
async fn the_rules_editor_checks_saves_reloads_and_reverts() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let api = Api::sign_in(&s.url, OPERATOR).await;
    let path = s.rules.join("companies.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    assert!(original.contains(CRITERIA));

    // The files.
    let (status, files) = api.get("/api/v1/rules").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"tandem.yaml") && names.contains(&"companies.yaml"));

    // A broken expression: the same diagnostic, at the same place, as `tandem check`.
    let broken = original.replace(CRITERIA, "'record.name =='");
    let (status, check) = api
        .post(
            "/api/v1/rules/check",
            &json!({"file": "companies.yaml", "text": broken}),
        )
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], false);
    let errors: Vec<&Value> = check["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    assert!(!errors.is_empty(), "{check}");
    let line = broken
        .lines()
        .position(|l| l.contains("'record.name =='"))
        .unwrap()
        + 1;
    assert!(
        errors
            .iter()
            .all(|d| d["file"] == "companies.yaml" && d["line"] == line),
        "{check}"
    );
    let copy = tempfile::tempdir().unwrap();
    for f in ["tandem.yaml", "companies.yaml", "contacts.yaml"] {
        std::fs::copy(s.rules.join(f), copy.path().join(f)).unwrap();
    }
    std::fs::write(copy.path().join("companies.yaml"), &broken).unwrap();
    let cli = tandem::cli::check::render(
        &tandem::cli::check::Args {
            config: Some(copy.path().join("tandem.yaml")),
            format: tandem::cli::check::Format::Json,
            ..Default::default()
        },
        false,
    );
    let cli: Value = serde_json::from_str(&cli.stdout).unwrap();
    let located = |d: &Value| {
        (
            d["code"].as_str().unwrap().to_string(),
            d["line"].as_u64().unwrap(),
            d["column"].as_u64().unwrap(),
        )
    };
    let cli_errors: Vec<_> = cli["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(located)
        .collect();
    let api_errors: Vec<_> = errors.iter().map(|d| located(d)).collect();
    assert_eq!(api_errors, cli_errors);
    let column = api_errors[0].2 as usize;
    let text_line = broken.lines().nth(line - 1).unwrap();
    let quoted = text_line.find("'record.name ==").unwrap() + 1;
    assert!(
        (quoted + 1..=quoted + "record.name ==".len() + 1).contains(&column),
        "column {column} points into the expression: {text_line}"
    );

    // Saving it is refused; the file stays as it was.
    let (status, refused) = api
        .send(
            Method::PUT,
            "/api/v1/rules/files/companies.yaml",
            &json!({"text": broken}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(!refused["details"].as_array().unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);

    // The files' own cases pass.
    let (status, tests) = api
        .post(
            "/api/v1/rules/test",
            &json!({"file": "companies.yaml", "text": original}),
        )
        .await;
    assert_eq!(status, 200, "{tests}");
    assert_eq!(tests["failed"], 0, "{tests}");
    assert!(tests["passed"].as_u64().unwrap() > 0);
    let case_files: Vec<&str> = tests["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect();
    assert!(case_files.contains(&"companies.yaml") && case_files.contains(&"contacts.yaml"));
    assert!(
        tests["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true)
    );

    // The impact of excluding customers: their companies' actions disappear or change.
    let valid = original.replace(
        CRITERIA,
        r#"'present(record.name) && record.lifecyclestage != "subscriber" && record.lifecyclestage != "customer"'"#,
    );
    let (status, impact) = api
        .post(
            "/api/v1/rules/preview",
            &json!({"file": "companies.yaml", "text": valid, "direction": "pull"}),
        )
        .await;
    assert_eq!(status, 200, "{impact}");
    assert_eq!(impact["check"]["ok"], true);
    let rows = impact["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "{impact}");
    assert!(
        rows.iter().any(|r| r["object"] == "company"
            && matches!(r["change"].as_str(), Some("disappears" | "changes"))),
        "{impact}"
    );
    assert_ne!(impact["running"], impact["edited"]);
    let customers = records(sb.hubspot_url(), "companies")
        .await
        .iter()
        .filter(|c| c["properties"]["lifecyclestage"] == "customer")
        .map(id_of)
        .collect::<Vec<_>>();
    // Companies the running rules sync and the edit excludes: customers, skipped now. (Skips
    // change too: their reason quotes the criterion.)
    let excluded: Vec<&Value> = rows
        .iter()
        .filter(|r| r["object"] == "company")
        .filter(|r| !r["running"].as_str().unwrap_or("skip").starts_with("skip"))
        .collect();
    assert!(!excluded.is_empty(), "{impact}");
    for r in excluded {
        let id = r["record"].as_str().unwrap().trim_start_matches("hubspot:");
        assert!(customers.iter().any(|c| c == id), "{r}");
        assert!(r["edited"].as_str().unwrap().starts_with("skip"), "{r}");
    }

    // Saving a valid edit: written, kept as a version by olga, and the rules reload.
    let reloads = || async {
        s.store
            .log(&LogQuery::default())
            .await
            .unwrap()
            .iter()
            .filter(
                |e| matches!(&e.body, LogBody::Notice(n) if n.message.contains("rules reloaded")),
            )
            .count()
    };
    let reloads_before = reloads().await;
    let (_, status_before) = api.get("/api/v1/status").await;
    let (status, saved) = api
        .send(
            Method::PUT,
            "/api/v1/rules/files/companies.yaml",
            &json!({"text": valid}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["check"]["ok"], true);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), valid);
    wait_for("the rules to reload", || async {
        (reloads().await > reloads_before).then_some(())
    })
    .await;
    let (_, status_after) = api.get("/api/v1/status").await;
    assert_ne!(
        status_after["rules_hash"], status_before["rules_hash"],
        "the running rules are the saved ones"
    );
    let (status, versions) = api.get("/api/v1/rules/files/companies.yaml/versions").await;
    assert_eq!(status, 200);
    let versions = versions.as_array().unwrap().clone();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0]["saved_by"], "olga");
    assert_eq!(versions[0]["id"], saved["version"]);
    assert_eq!(versions[0]["bytes"], valid.len());
    assert_eq!(versions[1]["bytes"], original.len());
    let log = s.store.log(&LogQuery::default()).await.unwrap();
    assert!(log.iter().any(|e| matches!(&e.body, LogBody::Notice(n)
        if n.message.starts_with("olga saved companies.yaml from the console"))));
    let (status, _) = api
        .get("/api/v1/rules/files/nonexistent.yaml/versions")
        .await;
    assert_eq!(status, 404);

    // Revert to the text before the first save.
    let old = versions[1]["id"].as_i64().unwrap();
    let (status, reverted) = api
        .post(
            &format!("/api/v1/rules/files/companies.yaml/versions/{old}/revert"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{reverted}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    let (_, versions) = api.get("/api/v1/rules/files/companies.yaml/versions").await;
    assert_eq!(versions.as_array().unwrap().len(), 3);
    assert!(
        versions[0]["saved_by"]
            .as_str()
            .unwrap()
            .starts_with("olga")
    );
    let (status, _) = api
        .post(
            "/api/v1/rules/files/contacts.yaml/versions/{old}/revert"
                .replace("{old}", &old.to_string())
                .as_str(),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404, "a version of another file");
    api.assert_no_secrets(&sb);
}

// ----- tandem user ----------------------------------------------------------------------------

fn user_cmd(config: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"));
    c.arg("user")
        .args(args)
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

fn run_user(config: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (i32, String) {
    use std::io::Write;
    let mut c = user_cmd(config, args);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The password hash of `name` in tandem.yaml's text.
fn hash_of(text: &str, name: &str) -> String {
    let re = regex::Regex::new(&format!(
        r#"- name: "?{}"?\n(?:\s+\w+: .*\n)*?\s+password_hash: "?([^"\n]+)"?"#,
        regex::escape(name)
    ))
    .unwrap();
    re.captures(text)
        .unwrap_or_else(|| panic!("{name}'s hash in {text}"))[1]
        .to_string()
}

#[tokio::test]
async fn tandem_user_edits_tandem_yaml_in_place_and_serve_takes_the_user_at_once() {
    use tandem_engine::server::console::auth::verify_password;
    let dir = tempfile::tempdir().unwrap();
    let rules = crate::support::serve::rules_dir(dir.path(), unchanged);
    let config = rules.join("tandem.yaml");
    let original = std::fs::read_to_string(&config).unwrap();
    let comments: Vec<&str> = original
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .collect();
    assert!(comments.len() > 3);

    let (code, out) = run_user(
        &config,
        &["add", "ana", "--role", "operator", "--password-stdin"],
        Some("ana-password-1\n"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("ana-password-1"),
        "the password is not echoed"
    );
    let text = std::fs::read_to_string(&config).unwrap();
    for c in &comments {
        assert!(text.contains(c), "comment kept: {c}");
    }
    assert!(
        text.starts_with(original.trim_end()),
        "the rest is as it was"
    );
    assert!(!text.contains("ana-password-1"));
    let hash = hash_of(&text, "ana");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(verify_password(&hash, "ana-password-1"));
    assert!(!verify_password(&hash, "ana-password-2"));

    // Without --password-stdin a password is made and shown once.
    let (code, out) = run_user(&config, &["add", "ben", "--role", "viewer"], None);
    assert_eq!(code, 0, "{out}");
    let shown = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("the password shown")
        .trim()
        .to_string();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(verify_password(&hash_of(&text, "ben"), &shown));
    let (code, out) = run_user(&config, &["list"], None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ana\toperator") && out.contains("ben\tviewer"),
        "{out}"
    );

    // Refusals: exit 2, the file unchanged.
    let before = std::fs::read_to_string(&config).unwrap();
    for args in [
        vec!["add", "cid", "--role", "admin", "--password-stdin"],
        vec!["add", "bad name!", "--role", "viewer", "--password-stdin"],
        vec!["remove", "nobody"],
    ] {
        let (code, out) = run_user(&config, &args, Some("x-password-1\n"));
        assert_eq!(code, 2, "{args:?}: {out}");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    }
    let (code, out) = run_user(&config, &["remove", "ben"], None);
    assert_eq!(code, 0, "{out}");
    let (_, out) = run_user(&config, &["list"], None);
    assert!(out.contains("ana") && !out.contains("ben"), "{out}");

    // A running serve signs the new user in without a restart.
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let served = s.rules.join("tandem.yaml");
    let (code, out) = run_user(
        &served,
        &["add", "newbie", "--role", "viewer", "--password-stdin"],
        Some("newbie-password-1\n"),
    );
    assert_eq!(code, 0, "{out}");
    let base = s.url.clone();
    wait_for("serve to take the new user", || {
        let base = base.clone();
        async move {
            let r = anonymous()
                .post(format!("{base}/api/v1/session"))
                .header(ORIGIN, &base)
                .header("X-Forwarded-For", "10.1.2.3")
                .json(&json!({"name": "newbie", "password": "newbie-password-1"}))
                .send()
                .await
                .unwrap();
            (r.status() == 200).then_some(())
        }
    })
    .await;
    let api = Api::sign_in(&s.url, ("newbie", "newbie-password-1")).await;
    let (_, who) = api.get("/api/v1/session").await;
    assert_eq!(who["role"], "viewer");
    // Removed again: the session ends.
    let (code, out) = run_user(&served, &["remove", "newbie"], None);
    assert_eq!(code, 0, "{out}");
    wait_for("serve to drop the removed user", || async {
        (api.get("/api/v1/session").await.0 == 401).then_some(())
    })
    .await;
}

// ----- OpenAPI conformance --------------------------------------------------------------------

/// The conformance run's settings: the session cookie as the document's `session` security
/// scheme (schemathesis also sends requests without it, which must answer 401), and the checks
/// that cannot hold for one operation.
fn schemathesis_config(session: &str) -> String {
    format!(
        "[auth.openapi.session]\napi_key = \"{session}\"\n\n\
         # A saved plan is a document of its own (`tandem plan --out`), checked by the server,\n\
         # not by the API's schema: a generated object is refused with 400.\n\
         [[operations]]\ninclude-name = \"POST /api/v1/plans/apply\"\n\
         checks.positive_data_acceptance.enabled = false\n\n\
         # Saving is refused (422) while the rules checker finds an error in the text: any\n\
         # generated text but a valid rule file.\n\
         [[operations]]\ninclude-name = \"PUT /api/v1/rules/files/{{file}}\"\n\
         checks.positive_data_acceptance.enabled = false\n"
    )
}

#[tokio::test]
async fn the_api_conforms_to_its_openapi_document() {
    let sb = sandbox(3, 30, 120).await;
    let s = serve(&sb, unchanged).await;
    let api = Api::sign_in(&s.url, OPERATOR).await;
    // Some data to read: a pull, so that records, jobs and the log exist.
    let pull = api.pull().await;
    assert_eq!(pull["state"], "succeeded");
    let base = s.url.as_str();
    let (status, doc) = api.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let session = api
        .c
        .cookie
        .strip_prefix("tandem_session=")
        .expect("the session cookie");
    let result = run_schemathesis_with_config(
        &format!("{base}/api/openapi.json"),
        base,
        &schemathesis_config(session),
        &[("X-CSRF-Token", &api.c.csrf), ("Origin", base)],
        &[
            // The event stream never ends; signing out would sign the fuzzer out.
            "--exclude-name-regex",
            "^(GET /api/v1/events|DELETE /api/v1/session)$",
        ],
    )
    .await;
    if let Err(e) = result {
        panic!("{e}");
    }
    // The fuzzer's requests were answered: the server is still up and the session still valid.
    let (status, _) = api.get("/api/v1/session").await;
    assert_eq!(status, 200);
    api.assert_no_secrets(&sb);
}
