//! The browser and schemathesis test support checked on pages and an API of its own: a tiny
//! axum server on 127.0.0.1:0 serves a form whose script fetches, a `confirm()`, cookies (one
//! HttpOnly) and a button reached by the keyboard, and [`Browser`] drives them in headless
//! Chromium; two tiny OpenAPI 3.1 APIs, one that keeps to its document and one that does not,
//! show that [`run_schemathesis`] passes the first and reports the second. These tests fail,
//! never skip, when Chromium, chromedriver or schemathesis is missing (`tests/run` installs them).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use futures::FutureExt as _;
use serde_json::{Value, json};

use crate::support::browser::keys::{ENTER, SHIFT, TAB};
use crate::support::browser::{Browser, screenshot_dir};
use crate::support::schemathesis::run_schemathesis;

/// The page under test: inline script only, no other resource.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Harness page</title></head>
<body>
<h1>Harness page</h1>
<form id="greet">
  <label for="name">Name</label>
  <input id="name" name="name" value="placeholder">
  <button id="send" type="submit">Send</button>
</form>
<p id="greeting"></p>
<p id="pending">waiting for a name</p>
<button id="danger" type="button">Delete everything</button>
<p id="verdict">undecided</p>
<input id="before" aria-label="before the keyboard button">
<button id="kbd" type="button">Keyboard</button>
<p id="kbd-out">not yet</p>
<script>
document.getElementById('greet').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = document.getElementById('name').value;
  const answer = await fetch('/api/greet?name=' + encodeURIComponent(name));
  const body = await answer.json();
  document.getElementById('greeting').textContent = body.greeting;
  document.getElementById('pending')?.remove();
});
document.getElementById('danger').addEventListener('click', () => {
  document.getElementById('verdict').textContent =
    confirm('Delete everything?') ? 'confirmed' : 'cancelled';
});
document.getElementById('kbd').addEventListener('click', () => {
  document.getElementById('kbd-out').textContent = 'activated';
});
</script>
</body>
</html>
"#;

/// Serves `app` on 127.0.0.1 at a port the OS picks; returns `http://127.0.0.1:PORT`.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The page, its fetch, and a login that sets two cookies.
fn site() -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/api/greet",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let name = q.get("name").map(String::as_str).unwrap_or("nobody");
                Json(json!({ "greeting": format!("Hello, {name}!") }))
            }),
        )
        .route(
            "/login",
            get(|| async {
                let mut headers = HeaderMap::new();
                headers.append(
                    header::SET_COOKIE,
                    "session=s3cr3t-session; Path=/; HttpOnly; SameSite=Strict"
                        .parse()
                        .expect("header"),
                );
                headers.append(
                    header::SET_COOKIE,
                    "theme=dark; Path=/; SameSite=Lax".parse().expect("header"),
                );
                (
                    headers,
                    Html("<!doctype html><title>Signed in</title><p id=\"who\">signed in</p>"),
                )
            }),
        )
}

#[tokio::test]
async fn form_fetch_and_navigation() {
    let url = serve(site()).await;
    let b = Browser::start().await;
    b.goto(&format!("{url}/")).await;
    assert_eq!(b.title().await, "Harness page");
    assert_eq!(b.current_url().await, format!("{url}/"));

    let name = b.wait_for("#name").await;
    assert_eq!(name.selector(), "#name");
    assert_eq!(b.attr(&name, "value").await.as_deref(), Some("placeholder"));
    b.clear(&name).await;
    b.type_into(&name, "Ada & Grace").await;
    assert_eq!(b.property(&name, "value").await, json!("Ada & Grace"));
    assert_eq!(b.attr(&name, "no-such-attribute").await, None);

    b.click(&b.find("#send").await).await;
    let greeting = b.wait_text("#greeting", "Hello").await;
    assert_eq!(greeting, "Hello, Ada & Grace!");
    assert_eq!(b.text(&b.find("#greeting").await).await, greeting);
    b.wait_gone("#pending").await;
    let length = b
        .wait_script(
            "a greeting",
            "return document.getElementById('greeting').textContent.length;",
        )
        .await;
    assert_eq!(length, json!(greeting.len()));

    let buttons = b.find_all("button").await;
    assert_eq!(buttons.len(), 3);
    assert_eq!(b.text(&buttons[1]).await, "Delete everything");
    assert!(b.find_all(".nothing-has-this-class").await.is_empty());
    assert!(b.try_find("#nothing").await.is_none());

    let tag = b
        .execute(
            "return [arguments[0].tagName, arguments[1] + 1];",
            &[buttons[0].arg(), json!(41)],
        )
        .await;
    assert_eq!(tag, json!(["BUTTON", 42]));

    b.refresh().await;
    b.wait_for("#pending").await;
    assert_eq!(b.text(&b.find("#greeting").await).await, "");

    b.goto(&format!("{url}/login")).await;
    b.wait_text("#who", "signed in").await;
    b.back().await;
    b.wait_for("#greet").await;
    assert_eq!(b.current_url().await, format!("{url}/"));
    b.close().await;
}

#[tokio::test]
async fn confirm_accepted_and_dismissed() {
    let url = serve(site()).await;
    let b = Browser::start().await;
    b.goto(&url).await;
    let danger = b.wait_for("#danger").await;
    assert_eq!(b.try_alert_text().await, None);

    b.click(&danger).await;
    assert_eq!(b.alert_text().await, "Delete everything?");
    assert_eq!(b.accept_alert().await, "Delete everything?");
    b.wait_text("#verdict", "confirmed").await;
    assert_eq!(b.try_alert_text().await, None);

    b.click(&danger).await;
    assert_eq!(b.dismiss_alert().await, "Delete everything?");
    b.wait_text("#verdict", "cancelled").await;
}

#[tokio::test]
async fn cookies_http_only_hidden_from_scripts() {
    let url = serve(site()).await;
    let b = Browser::start().await;
    b.goto(&format!("{url}/login")).await;
    b.wait_for("#who").await;

    let session = b
        .cookie("session")
        .await
        .expect("the session cookie is set");
    assert_eq!(session.value, "s3cr3t-session");
    assert!(session.http_only);
    assert_eq!(session.same_site.as_deref(), Some("Strict"));
    assert_eq!(session.path.as_deref(), Some("/"));
    assert_eq!(session.domain.as_deref(), Some("127.0.0.1"));
    assert!(!session.secure);
    assert_eq!(session.expiry, None, "a session cookie");
    let theme = b.cookie("theme").await.expect("the theme cookie is set");
    assert!(!theme.http_only);
    assert_eq!(b.cookies().await.len(), 2);

    let visible = b.execute("return document.cookie;", &[]).await;
    let visible = visible.as_str().expect("document.cookie is a string");
    assert!(visible.contains("theme=dark"), "{visible}");
    assert!(!visible.contains("session"), "HttpOnly leaked: {visible}");
}

#[tokio::test]
async fn keyboard_tab_and_enter() {
    let url = serve(site()).await;
    let b = Browser::start().await;
    b.goto(&url).await;
    let before = b.wait_for("#before").await;
    b.click(&before).await;
    assert_eq!(b.active_element().await, before);

    b.press_keys(TAB).await;
    let kbd = b.find("#kbd").await;
    assert_eq!(
        b.active_element().await,
        kbd,
        "Tab moves to the next button"
    );
    assert_eq!(b.text(&b.find("#kbd-out").await).await, "not yet");
    b.press_keys(ENTER).await;
    b.wait_text("#kbd-out", "activated").await;

    b.press_keys(&format!("{SHIFT}{TAB}")).await;
    assert_eq!(b.active_element().await, before, "Shift+Tab moves back");
}

#[tokio::test]
async fn screenshot_is_a_png() {
    let url = serve(site()).await;
    let b = Browser::start().await;
    b.goto(&url).await;
    b.wait_for("#greet").await;
    let path = b.screenshot("browser_harness").await;
    assert_eq!(path, screenshot_dir().join("browser_harness.png"));
    let png = std::fs::read(&path).expect("the screenshot is written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert!(
        png.len() > 1000,
        "{} is {} bytes",
        path.display(),
        png.len()
    );
}

#[tokio::test]
async fn timed_out_waits_say_what_and_where() {
    let url = serve(site()).await;
    let mut b = Browser::start().await;
    b.set_wait(Duration::from_millis(300));
    b.goto(&url).await;

    let message = |e: Box<dyn std::any::Any + Send>| match e.downcast::<String>() {
        Ok(s) => *s,
        Err(e) => e.downcast_ref::<&str>().unwrap_or(&"?").to_string(),
    };
    let e = std::panic::AssertUnwindSafe(b.wait_for("#never-there"))
        .catch_unwind()
        .await
        .expect_err("waiting for a missing element fails");
    let e = message(e);
    assert!(e.contains("`#never-there`"), "{e}");
    assert!(e.contains(&url), "{e}");
    assert!(e.contains("Delete everything"), "the page's text: {e}");

    let e = std::panic::AssertUnwindSafe(b.wait_text("#verdict", "confirmed"))
        .catch_unwind()
        .await
        .expect_err("waiting for text that never comes fails");
    let e = message(e);
    assert!(e.contains("`#verdict`"), "{e}");
    assert!(e.contains("\"undecided\""), "the element's last text: {e}");

    // The browser is still usable after a failed wait.
    assert_eq!(b.title().await, "Harness page");
}

/// Whether process `pid` runs (a zombie, stopped and not yet reaped, does not).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls until process `pid` no longer runs; fails the test after 15 s.
async fn wait_stopped(pid: u32, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while running(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} (process {pid}) still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn dropping_the_browser_stops_chromium() {
    let b = Browser::start().await;
    let chromium = b.chromium_pid().expect("Chromium runs");
    let driver = b.chromedriver_pid().expect("chromedriver runs");
    assert!(running(chromium) && running(driver));
    drop(b);
    wait_stopped(chromium, "Chromium").await;
    wait_stopped(driver, "chromedriver").await;

    // Also when chromedriver died first and cannot end the session.
    let b = Browser::start().await;
    let chromium = b.chromium_pid().expect("Chromium runs");
    let driver = b.chromedriver_pid().expect("chromedriver runs");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &driver.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    wait_stopped(driver, "chromedriver").await;
    assert!(running(chromium), "Chromium outlives chromedriver");
    drop(b);
    wait_stopped(chromium, "Chromium").await;
}

// --- schemathesis ----------------------------------------------------------------------------

/// The bearer token the little API wants.
const TOKEN: &str = "harness-token-7";

/// An OpenAPI 3.1 document of `GET /health` and `GET /items` (which wants the bearer token and
/// takes an optional `limit` of 1..=50); with `broken`, also `GET /broken`, which answers a
/// string where the document promises an integer.
fn openapi(broken: bool) -> Value {
    let error = json!({
        "description": "What is wrong",
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    });
    let mut paths = json!({
        "/health": { "get": {
            "operationId": "health",
            "responses": { "200": {
                "description": "Up",
                "content": { "application/json": { "schema": {
                    "type": "object", "required": ["status"],
                    "properties": { "status": { "const": "ok" } }
                }}}
            }}
        }},
        "/items": { "get": {
            "operationId": "listItems",
            "security": [{ "bearer": [] }],
            "parameters": [{
                "name": "limit", "in": "query", "required": false,
                "schema": { "type": "integer", "minimum": 1, "maximum": 50 }
            }],
            "responses": {
                "200": {
                    "description": "The items",
                    "content": { "application/json": { "schema": {
                        "type": "object", "required": ["items"],
                        "properties": { "items": { "type": "array", "items": {
                            "type": "object", "required": ["id", "name"],
                            "properties": {
                                "id": { "type": "integer", "minimum": 1 },
                                "name": { "type": "string" }
                            }
                        }}}
                    }}}
                },
                "400": error.clone(),
                "401": error.clone(),
            }
        }}
    });
    if broken {
        paths["/broken"] = json!({ "get": {
            "operationId": "broken",
            "responses": { "200": {
                "description": "A count",
                "content": { "application/json": { "schema": {
                    "type": "object", "required": ["count"],
                    "properties": { "count": { "type": "integer" } }
                }}}
            }}
        }});
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "harness", "version": "1" },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": {
                "type": "object", "required": ["error"],
                "properties": { "error": { "type": "string" } }
            }}
        }
    })
}

fn error(status: StatusCode, what: &str) -> Response {
    (status, Json(json!({ "error": what }))).into_response()
}

/// `GET /items`: the token, then `limit` checked by hand so that every answer is one the
/// document lists (axum's own rejections are plain text). Counts the requests with the token.
async fn items(
    State(authorized): State<Arc<AtomicUsize>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let expected = format!("Bearer {TOKEN}");
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return error(StatusCode::UNAUTHORIZED, "a bearer token is required");
    }
    authorized.fetch_add(1, Ordering::Relaxed);
    let pairs: Vec<(String, String)> =
        match serde_urlencoded::from_str(query.as_deref().unwrap_or("")) {
            Ok(p) => p,
            Err(_) => return error(StatusCode::BAD_REQUEST, "the query is not valid"),
        };
    let mut limit = 3;
    for (k, v) in pairs {
        if k != "limit" {
            continue;
        }
        match v.parse::<u32>() {
            Ok(n) if (1..=50).contains(&n) => limit = n,
            _ => return error(StatusCode::BAD_REQUEST, "limit is a whole number 1 to 50"),
        }
    }
    let items: Vec<Value> = (1..=limit)
        .map(|i| json!({ "id": i, "name": format!("item {i}") }))
        .collect();
    Json(json!({ "items": items })).into_response()
}

/// The little API; `authorized` counts the requests to `GET /items` that carried the token.
fn api(authorized: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route("/openapi.json", get(|| async { Json(openapi(false)) }))
        .route(
            "/openapi-broken.json",
            get(|| async { Json(openapi(true)) }),
        )
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/items", get(items))
        .route(
            "/broken",
            get(|| async { Json(json!({ "count": "three" })) }),
        )
        .with_state(authorized)
}

#[tokio::test]
async fn schemathesis_passes_a_conforming_api() {
    let authorized = Arc::new(AtomicUsize::new(0));
    let url = serve(api(authorized.clone())).await;
    let auth = format!("Bearer {TOKEN}");
    let result = run_schemathesis(
        &format!("{url}/openapi.json"),
        &url,
        &[("Authorization", &auth)],
        &[],
    )
    .await;
    if let Err(output) = result {
        panic!("schemathesis found problems in a conforming API:\n{output}");
    }
    // The header reached the API (a 401 is documented, so its absence alone would pass).
    assert!(authorized.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn schemathesis_reports_a_nonconforming_operation() {
    let url = serve(api(Arc::default())).await;
    let auth = format!("Bearer {TOKEN}");
    let output = run_schemathesis(
        &format!("{url}/openapi-broken.json"),
        &url,
        &[("Authorization", &auth)],
        &[],
    )
    .await
    .expect_err("GET /broken answers against its schema");
    // A section per failing operation, titled `____ GET /broken ____`.
    assert!(output.contains(" GET /broken _"), "{output}");
    assert!(output.contains("Response violates schema"), "{output}");
    assert!(
        output.contains(r#""three" is not of type "integer""#),
        "{output}"
    );
    assert!(!output.contains(" GET /items _"), "{output}");
    assert!(!output.contains(" GET /health _"), "{output}");
    assert!(!output.contains(TOKEN), "the token is not shown: {output}");
}
