//! The console tests' server and client: `tandem serve` in-process against a sandbox with an
//! operator and a viewer in tandem.yaml, and an HTTP client that signs in through the API and
//! sends the session cookie, the CSRF token and the console's own origin, as the pages do.

use reqwest::header::{COOKIE, HeaderMap, HeaderValue, ORIGIN, SET_COOKIE};
use serde_json::Value;

use super::serve::Serving;
use tandem_sandbox::Sandbox;

/// The operator the console tests sign in as.
pub const OPERATOR: (&str, &str) = ("olga", "operator-password-1");
/// The viewer.
pub const VIEWER: (&str, &str) = ("vic", "viewer-password-1");

/// tandem.yaml's `console:` block with [`OPERATOR`] and [`VIEWER`].
pub fn users_block() -> String {
    let hash = |pw: &str| tandem_engine::server::console::auth::hash_password(pw).expect("hash");
    format!(
        "\nconsole:\n  users:\n    - name: {}\n      role: operator\n      password_hash: \"{}\"\n    \
         - name: {}\n      role: viewer\n      password_hash: \"{}\"\n",
        OPERATOR.0,
        hash(OPERATOR.1),
        VIEWER.0,
        hash(VIEWER.1)
    )
}

/// `tandem serve` with the console users (poller every `poll` seconds, 0 = off); `edit`
/// changes the shipped files first (tandem.yaml gets the users after it).
pub async fn start(sb: &Sandbox, poll: u64, edit: impl Fn(&str, String) -> String) -> Serving {
    let users = users_block();
    Serving::start(sb, poll, move |name, text| {
        let text = edit(name, text);
        if name == "tandem.yaml" {
            format!("{text}{users}")
        } else {
            text
        }
    })
    .await
}

/// A signed-in API client.
pub struct Client {
    /// The server, `http://127.0.0.1:PORT`.
    pub base: String,
    /// The session cookie (`tandem_session=…`).
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// The whole `Set-Cookie` the sign-in answered with.
    pub set_cookie: String,
    http: reqwest::Client,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl Client {
    /// Signs in as `user` (name, password); panics when refused.
    pub async fn sign_in(base: &str, user: (&str, &str)) -> Client {
        let http = http();
        let r = http
            .post(format!("{base}/api/v1/session"))
            .header(ORIGIN, base)
            .json(&serde_json::json!({"name": user.0, "password": user.1}))
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), 200, "signing in as {}", user.0);
        let set_cookie = r
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie")
            .to_string();
        let cookie = set_cookie.split(';').next().unwrap_or("").to_string();
        let body: Value = r.json().await.expect("json");
        Client {
            base: base.to_string(),
            cookie,
            csrf: body["csrf"].as_str().expect("csrf").to_string(),
            set_cookie,
            http,
        }
    }

    /// The headers a page's script sends.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(&self.cookie).expect("cookie"));
        h.insert(
            "x-csrf-token",
            HeaderValue::from_str(&self.csrf).expect("csrf"),
        );
        h.insert(ORIGIN, HeaderValue::from_str(&self.base).expect("origin"));
        h
    }

    /// A request with the page's headers.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .headers(self.headers())
    }

    /// GET `path`: status and JSON (Null when the body is not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET `path` as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// `method` `path` with a JSON body: status and JSON.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .request(method, path)
            .json(body)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST `path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }
}

/// A client that is not signed in (no cookie, no token).
pub fn anonymous() -> reqwest::Client {
    http()
}
