//! A small WebDriver client for the browser tests: [`Browser::start`] runs Debian's
//! `/usr/bin/chromedriver` on a port the OS picks and a headless `/usr/bin/chromium` under it, and
//! the [`Browser`] drives that one window over the W3C WebDriver protocol (plain HTTP, with
//! reqwest): navigation, finding elements by CSS selector, clicks and typing, the keyboard,
//! scripts, cookies, `window.confirm`/`alert` dialogs and screenshots.
//!
//! Waiting is by polling a condition with a deadline ([`WAIT`], or [`Browser::set_wait`]), never
//! by sleeping; a wait that times out panics naming what it waited for, the page's URL and the
//! start of the page's visible text. A missing Chromium or chromedriver is a failed test, never
//! a skipped one (`tests/run` installs both). Dropping the `Browser` ends the WebDriver session
//! (which closes Chromium) and kills chromedriver; [`Browser::close`] does the same and waits.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

/// The browser (Debian package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Its WebDriver server (Debian package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a wait polls before the test fails, unless [`Browser::set_wait`] says otherwise.
pub const WAIT: Duration = Duration::from_secs(15);
/// The arguments Chromium runs with: headless, as root in a container, in a fixed window size,
/// without traffic of its own and without any proxy from the environment.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--window-size=1280,900",
    "--no-proxy-server",
];

/// Between two polls of a condition.
const POLL: Duration = Duration::from_millis(50);
/// How much of the page's text a failure message shows.
const EXCERPT_CHARS: usize = 2000;
/// The key under which WebDriver names an element (W3C WebDriver, "web element identifier").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WebDriver key codes for [`Browser::press_keys`] and [`Browser::type_into`]; put them in a
/// string, e.g. `format!("{TAB}{ENTER}")` or `format!("{SHIFT}{TAB}")`.
#[allow(
    dead_code,
    reason = "the keyboard's keys, for tests to come; not every one is used yet"
)]
pub mod keys {
    /// Backspace.
    pub const BACKSPACE: &str = "\u{E003}";
    /// Tab.
    pub const TAB: &str = "\u{E004}";
    /// Enter (the main keyboard's Return).
    pub const ENTER: &str = "\u{E007}";
    /// Shift: held down until the end of the keys in [`super::Browser::press_keys`].
    pub const SHIFT: &str = "\u{E008}";
    /// Control: held like [`SHIFT`].
    pub const CONTROL: &str = "\u{E009}";
    /// Alt: held like [`SHIFT`].
    pub const ALT: &str = "\u{E00A}";
    /// Escape.
    pub const ESCAPE: &str = "\u{E00C}";
    /// Space.
    pub const SPACE: &str = "\u{E00D}";
    /// End.
    pub const END: &str = "\u{E010}";
    /// Home.
    pub const HOME: &str = "\u{E011}";
    /// Left arrow.
    pub const LEFT: &str = "\u{E012}";
    /// Up arrow.
    pub const UP: &str = "\u{E013}";
    /// Right arrow.
    pub const RIGHT: &str = "\u{E014}";
    /// Down arrow.
    pub const DOWN: &str = "\u{E015}";
    /// Meta (Command, Windows key): held like [`SHIFT`].
    pub const META: &str = "\u{E03D}";

    /// The keys [`super::Browser::press_keys`] holds down rather than presses.
    pub(super) const MODIFIERS: &[&str] = &[SHIFT, CONTROL, ALT, META];
}

/// An element of the current page, as WebDriver names it. Two `Element`s are equal when they are
/// the same node (WebDriver gives a node the same id every time it is found in a session).
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
    /// How it was found, for messages.
    css: String,
}

impl Element {
    /// The element as a script argument of [`Browser::execute`] (`arguments[i]` is the node).
    pub fn arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    /// The CSS selector it was found by (`:focus` for [`Browser::active_element`]).
    pub fn selector(&self) -> &str {
        &self.css
    }
}

impl PartialEq for Element {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Element {}

/// A cookie of the current page's site, as WebDriver reports it (HttpOnly ones included).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// `Path`.
    #[serde(default)]
    pub path: Option<String>,
    /// `Domain` (the host when the cookie named none).
    #[serde(default)]
    pub domain: Option<String>,
    /// `Secure`.
    #[serde(default)]
    pub secure: bool,
    /// `HttpOnly`: not readable from `document.cookie`.
    #[serde(default)]
    pub http_only: bool,
    /// `SameSite`: `Strict`, `Lax` or `None`.
    #[serde(default)]
    pub same_site: Option<String>,
    /// When it expires, in seconds since the epoch; `None` for a session cookie.
    #[serde(default)]
    pub expiry: Option<u64>,
}

/// An error answer of chromedriver (or no answer at all).
#[derive(Debug)]
struct WdError {
    /// The WebDriver error code, e.g. `no such element`, `no such alert`; `transport` when there
    /// was no answer.
    code: String,
    message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // chromedriver's messages carry a multi-line "Session info"/stack; the first line says it.
        let first = self.message.lines().next().unwrap_or("");
        write!(f, "{}: {first}", self.code)
    }
}

/// Headless Chromium under its own chromedriver, one session, one window.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`: every command's URL starts with it.
    session: String,
    wait: Duration,
    driver: Child,
    closed: bool,
    /// Chromium's profile (`profile/`) and chromedriver's and Chromium's `TMPDIR`: whatever they
    /// leave behind goes with it. Declared last: removed after both have stopped.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a port the OS picks (`--port=0`; the port is read from the line it
    /// prints), waits until its `/status` says it is ready, and opens a session: Chromium with
    /// [`CHROMIUM_ARGS`], prompts (`confirm`, `alert`) left open for the test to handle.
    ///
    /// Panics when Chromium or chromedriver is missing (`tests/run` installs them) or does not
    /// start within [`WAIT`].
    pub async fn start() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "the browser tests need {path} (Debian package `{package}`), which is missing; \
                 tests/run installs it (as root: apt-get install chromium chromium-driver)"
            );
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let profile = dir.path().join("profile");
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}"));
        let stdout = driver
            .stdout
            .take()
            .expect("chromedriver's stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let said = timeout(WAIT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = started_on_port(&line) {
                    return Ok(Some(port));
                }
            }
            Ok::<_, io::Error>(None)
        })
        .await;
        let port = match said {
            Ok(Ok(Some(port))) => port,
            Ok(Ok(None)) => panic!("{CHROMEDRIVER} exited without saying it started"),
            Ok(Err(e)) => panic!("reading {CHROMEDRIVER}'s output: {e}"),
            Err(_) => panic!("{CHROMEDRIVER} did not say its port within {WAIT:?}"),
        };
        // Keep reading its output, so that chromedriver never blocks on a full pipe nor dies
        // writing to a closed one.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        loop {
            if driver_ready(&http, &base).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} on port {port} was not ready within {WAIT:?}"
            );
            sleep(POLL).await;
        }

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 30_000 },
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap_or_else(|e| panic!("asking chromedriver for a session: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("chromedriver's answer to a new session: {e}"));
        let Some(id) = answer["value"]["sessionId"].as_str() else {
            panic!(
                "chromedriver did not start Chromium: {}",
                answer["value"]["message"]
            )
        };
        Browser {
            session: format!("{base}/session/{id}"),
            http,
            wait: WAIT,
            driver,
            closed: false,
            dir,
        }
    }

    /// How long the waits poll from now on (default [`WAIT`]).
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait;
    }

    /// Ends the session (Chromium closes) and chromedriver, and waits for chromedriver to exit.
    /// Dropping the `Browser` does the same without waiting.
    pub async fn close(mut self) {
        self.closed = true;
        if self.call(Method::DELETE, "", None).await.is_err() {
            self.kill_chromium();
        }
        let _ = self.driver.kill().await;
    }

    // --- navigation -------------------------------------------------------------------------

    /// Opens `url` and returns once the page has loaded (its `load` event).
    pub async fn goto(&self, url: &str) {
        self.must(self.post("/url", json!({ "url": url })).await, || {
            format!("opening {url}")
        });
    }

    /// The current page's URL.
    pub async fn current_url(&self) -> String {
        let v = self.must(self.get("/url").await, || "reading the URL".into());
        v.as_str().unwrap_or_default().to_string()
    }

    /// The current page's title.
    pub async fn title(&self) -> String {
        let v = self.must(self.get("/title").await, || "reading the title".into());
        v.as_str().unwrap_or_default().to_string()
    }

    /// Reloads the current page.
    pub async fn refresh(&self) {
        self.must(self.post("/refresh", json!({})).await, || {
            "reloading".into()
        });
    }

    /// Back in the window's history.
    pub async fn back(&self) {
        self.must(self.post("/back", json!({})).await, || "going back".into());
    }

    // --- elements ---------------------------------------------------------------------------

    /// The first element matching `css` now; panics (with the page's text) when there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(el) => el,
            None => panic!(
                "no element matches `{css}` on {}{}",
                self.url_for_message().await,
                self.excerpt().await
            ),
        }
    }

    /// The first element matching `css` now, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        match self.find_raw(css).await {
            Ok(el) => Some(el),
            Err(e) if e.code == "no such element" => None,
            Err(e) => panic!("finding `{css}`: {e}"),
        }
    }

    /// Every element matching `css` now, in document order.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.must(
            self.post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await,
            || format!("finding all `{css}`"),
        );
        v.as_array()
            .map(|a| a.iter().filter_map(|e| element(e, css)).collect())
            .unwrap_or_default()
    }

    /// The element that has the focus (`document.activeElement`).
    pub async fn active_element(&self) -> Element {
        let v = self.must(self.get("/element/active").await, || {
            "reading the focused element".into()
        });
        element(&v, ":focus").unwrap_or_else(|| panic!("no focused element: {v}"))
    }

    /// Polls until an element matches `css` and returns the first.
    pub async fn wait_for(&self, css: &str) -> Element {
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(el) = self.try_find(css).await {
                return el;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {:?} waiting for `{css}` on {}{}",
                    self.wait,
                    self.url_for_message().await,
                    self.excerpt().await
                );
            }
            sleep(POLL).await;
        }
    }

    /// Polls until no element matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + self.wait;
        while self.try_find(css).await.is_some() {
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {:?} waiting for `{css}` to go from {}{}",
                    self.wait,
                    self.url_for_message().await,
                    self.excerpt().await
                );
            }
            sleep(POLL).await;
        }
    }

    /// Polls until the first element matching `css` has a text (as rendered, `innerText`)
    /// containing `needle`, and returns that text. The element is looked up again on every
    /// poll, so it may be replaced meanwhile.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + self.wait;
        loop {
            let last = match self.find_raw(css).await {
                Ok(el) => match self.get(&format!("/element/{}/text", el.id)).await {
                    Ok(v) => {
                        let text = v.as_str().unwrap_or_default().to_string();
                        if text.contains(needle) {
                            return text;
                        }
                        format!("its text is {text:?}")
                    }
                    Err(e) => format!("reading its text: {e}"),
                },
                Err(e) if e.code == "no such element" => "no element matches it".to_string(),
                Err(e) => panic!("finding `{css}`: {e}"),
            };
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {:?} waiting for `{css}` to contain {needle:?} ({last}) on {}{}",
                    self.wait,
                    self.url_for_message().await,
                    self.excerpt().await
                );
            }
            sleep(POLL).await;
        }
    }

    /// Polls until the script `js` (a function body, as in [`Browser::execute`]) returns a
    /// truthy value, and returns that value; `what` says what is awaited, for the failure.
    pub async fn wait_script(&self, what: &str, js: &str) -> Value {
        let deadline = Instant::now() + self.wait;
        loop {
            let v = self.execute(js, &[]).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(_) | Value::Object(_) => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {:?} waiting for {what} on {}{}",
                    self.wait,
                    self.url_for_message().await,
                    self.excerpt().await
                );
            }
            sleep(POLL).await;
        }
    }

    /// Clicks `el` (scrolled into view; fails if something else covers it).
    pub async fn click(&self, el: &Element) {
        self.must(
            self.post(&format!("/element/{}/click", el.id), json!({}))
                .await,
            || format!("clicking `{}`", el.css),
        );
    }

    /// Types `text` into `el` (focusing it first), key by key; [`keys`] codes are pressed.
    pub async fn type_into(&self, el: &Element, text: &str) {
        self.must(
            self.post(
                &format!("/element/{}/value", el.id),
                json!({ "text": text }),
            )
            .await,
            || format!("typing into `{}`", el.css),
        );
    }

    /// Empties the input or text area `el`.
    pub async fn clear(&self, el: &Element) {
        self.must(
            self.post(&format!("/element/{}/clear", el.id), json!({}))
                .await,
            || format!("clearing `{}`", el.css),
        );
    }

    /// The text of `el` as rendered (`innerText`: hidden parts left out).
    pub async fn text(&self, el: &Element) -> String {
        let v = self.must(self.get(&format!("/element/{}/text", el.id)).await, || {
            format!("reading the text of `{}`", el.css)
        });
        v.as_str().unwrap_or_default().to_string()
    }

    /// The attribute `name` of `el` as written in the page, `None` when it has none.
    pub async fn attr(&self, el: &Element, name: &str) -> Option<String> {
        let v = self.must(
            self.get(&format!("/element/{}/attribute/{name}", el.id))
                .await,
            || format!("reading attribute `{name}` of `{}`", el.css),
        );
        v.as_str().map(str::to_string)
    }

    /// The DOM property `name` of `el` (e.g. an input's current `value`, `checked`, `disabled`).
    pub async fn property(&self, el: &Element, name: &str) -> Value {
        self.must(
            self.get(&format!("/element/{}/property/{name}", el.id))
                .await,
            || format!("reading property `{name}` of `{}`", el.css),
        )
    }

    // --- keyboard, scripts, cookies, dialogs, screenshots -------------------------------------

    /// Presses `keys` one after the other on the focused element, as a person would: each key
    /// down then up, except modifiers ([`keys::SHIFT`], [`keys::CONTROL`], [`keys::ALT`],
    /// [`keys::META`]), which stay down until the end (`format!("{SHIFT}{TAB}")` is Shift+Tab).
    pub async fn press_keys(&self, keys: &str) {
        let mut actions = Vec::new();
        let mut held = Vec::new();
        for c in keys.chars() {
            let key = c.to_string();
            actions.push(json!({ "type": "keyDown", "value": key }));
            if keys::MODIFIERS.contains(&key.as_str()) {
                held.push(key);
            } else {
                actions.push(json!({ "type": "keyUp", "value": key }));
            }
        }
        for key in held.into_iter().rev() {
            actions.push(json!({ "type": "keyUp", "value": key }));
        }
        let body = json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] });
        self.must(self.post("/actions", body).await, || {
            format!("pressing keys {keys:?}")
        });
    }

    /// Runs `js` as the body of a function (`return …` gives the result; `arguments[i]` are
    /// `args`, where [`Element::arg`] passes a node) and returns what it returned, as JSON.
    pub async fn execute(&self, js: &str, args: &[Value]) -> Value {
        self.must(
            self.post("/execute/sync", json!({ "script": js, "args": args }))
                .await,
            || format!("running the script {js:?}"),
        )
    }

    /// Every cookie the browser holds for the current page, HttpOnly ones included.
    pub async fn cookies(&self) -> Vec<Cookie> {
        let v = self.must(self.get("/cookie").await, || "reading the cookies".into());
        serde_json::from_value(v).unwrap_or_else(|e| panic!("chromedriver's cookies: {e}"))
    }

    /// The cookie `name` of the current page, if the browser holds it.
    pub async fn cookie(&self, name: &str) -> Option<Cookie> {
        self.cookies().await.into_iter().find(|c| c.name == name)
    }

    /// Saves the window as `target/screenshots/NAME.png` (see [`screenshot_dir`]) and returns
    /// the file's path. `name` is a file name without extension: letters, digits, `-`, `_`, `.`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        assert!(
            !name.is_empty()
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            "a screenshot's name is letters, digits, `-`, `_` and `.`, not {name:?}"
        );
        let v = self.must(self.get("/screenshot").await, || {
            "taking a screenshot".into()
        });
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("chromedriver's screenshot is not base64: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// The message of the open dialog (`confirm`, `alert`, `prompt`), if one is open now.
    pub async fn try_alert_text(&self) -> Option<String> {
        match self.get("/alert/text").await {
            Ok(v) => Some(v.as_str().unwrap_or_default().to_string()),
            Err(e) if e.code == "no such alert" => None,
            Err(e) => panic!("reading the dialog's text: {e}"),
        }
    }

    /// Polls until a dialog is open and returns its message.
    pub async fn alert_text(&self) -> String {
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(text) = self.try_alert_text().await {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {:?} waiting for a dialog on {}",
                self.wait,
                self.url_for_message().await
            );
            sleep(POLL).await;
        }
    }

    /// Waits for a dialog and presses its OK (`confirm` returns true); returns its message.
    pub async fn accept_alert(&self) -> String {
        let text = self.alert_text().await;
        self.must(self.post("/alert/accept", json!({})).await, || {
            "accepting the dialog".into()
        });
        text
    }

    /// Waits for a dialog and presses its Cancel (`confirm` returns false); returns its message.
    pub async fn dismiss_alert(&self) -> String {
        let text = self.alert_text().await;
        self.must(self.post("/alert/dismiss", json!({})).await, || {
            "dismissing the dialog".into()
        });
        text
    }

    // --- the protocol -----------------------------------------------------------------------

    async fn find_raw(&self, css: &str) -> Result<Element, WdError> {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await?;
        element(&v, css).ok_or_else(|| WdError {
            code: "bad answer".into(),
            message: format!("not an element: {v}"),
        })
    }

    async fn get(&self, path: &str) -> Result<Value, WdError> {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, WdError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// One WebDriver command under the session: `value` of its answer, or its error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let transport = |e: reqwest::Error| WdError {
            code: "transport".into(),
            message: e.to_string(),
        };
        let answer = request.send().await.map_err(transport)?;
        let ok = answer.status().is_success();
        let mut v: Value = answer.json().await.map_err(transport)?;
        let value = v["value"].take();
        if ok {
            Ok(value)
        } else {
            Err(WdError {
                code: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            })
        }
    }

    /// The value, or a panic saying what was being done and what chromedriver answered.
    fn must(&self, r: Result<Value, WdError>, doing: impl FnOnce() -> String) -> Value {
        r.unwrap_or_else(|e| panic!("{}: {e}", doing()))
    }

    /// The current URL for a failure message, or why it cannot be read (e.g. a dialog is open).
    async fn url_for_message(&self) -> String {
        match self.get("/url").await {
            Ok(v) => v.as_str().unwrap_or_default().to_string(),
            Err(e) => format!("(the page's URL cannot be read: {e})"),
        }
    }

    /// The start of the page's visible text, for a failure message.
    async fn excerpt(&self) -> String {
        let script =
            "return document.body ? document.body.innerText : document.documentElement.outerHTML;";
        match self
            .post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
        {
            Ok(v) => {
                let text = v.as_str().unwrap_or_default();
                let mut shown: String = text.chars().take(EXCERPT_CHARS).collect();
                if shown.len() < text.len() {
                    shown.push_str("\n[…]");
                }
                format!("\n--- the page's text ---\n{shown}\n---")
            }
            Err(e) => format!("\n(the page's text cannot be read: {e})"),
        }
    }
}

impl Browser {
    /// The process id of Chromium's main process, from its profile's `SingletonLock` (a
    /// symbolic link to `HOSTNAME-PID`); `None` before it started or after it stopped.
    pub fn chromium_pid(&self) -> Option<u32> {
        let lock = self.dir.path().join("profile").join("SingletonLock");
        let target = std::fs::read_link(lock).ok()?;
        target.to_string_lossy().rsplit('-').next()?.parse().ok()
    }

    /// The process id of chromedriver, while it runs.
    pub fn chromedriver_pid(&self) -> Option<u32> {
        self.driver.id()
    }

    /// Stops Chromium by its process id when its session could not be ended (chromedriver does
    /// not answer): killing chromedriver alone would leave it running.
    fn kill_chromium(&self) {
        let Some(pid) = self.chromium_pid() else {
            return;
        };
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            // Ending the session closes Chromium, which killing chromedriver would leave running.
            // Drop cannot await, so a thread with a runtime of its own sends it.
            let url = self.session.clone();
            let ended = std::thread::spawn(move || end_session(url))
                .join()
                .unwrap_or(false);
            if !ended {
                self.kill_chromium();
            }
        }
        let _ = self.driver.start_kill();
    }
}

/// `DELETE`s the session at `url`, blocking (for [`Browser`]'s `Drop`); whether chromedriver
/// said it ended.
fn end_session(url: String) -> bool {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return false;
    };
    runtime.block_on(async move {
        let Ok(http) = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
        else {
            return false;
        };
        match http.delete(url).send().await {
            Ok(answer) => answer.status().is_success(),
            Err(_) => false,
        }
    })
}

/// The port in chromedriver's `ChromeDriver was started successfully on port 40805.`
fn started_on_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("started successfully on port ")?;
    rest.trim().trim_end_matches('.').parse().ok()
}

/// Whether chromedriver's `/status` says it is ready for a session.
async fn driver_ready(http: &reqwest::Client, base: &str) -> bool {
    let Ok(answer) = http.get(format!("{base}/status")).send().await else {
        return false;
    };
    let Ok(v) = answer.json::<Value>().await else {
        return false;
    };
    v["value"]["ready"].as_bool().unwrap_or(false)
}

/// The element WebDriver names in `v`, found by `css`.
fn element(v: &Value, css: &str) -> Option<Element> {
    Some(Element {
        id: v[ELEMENT_KEY].as_str()?.to_string(),
        css: css.to_string(),
    })
}

/// Where screenshots go: `screenshots/` in `CARGO_TARGET_DIR` when that is set (a relative one
/// taken from the workspace root), else in the workspace's `target/`.
pub fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    };
    target.join("screenshots")
}
