//! The console's pages, rendered on the server from the same functions the JSON API answers
//! with: sign-in, Integrations (home), Sync Log, a record, Plan preview and Rules. HTML is
//! escaped by construction (maud). Buttons call the API from the embedded script; every page
//! works by keyboard, and reads without the script (live updates aside).

use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::api::{
    self, ApiError, JobDoc, LogFilter, PlanRequest, RecordDoc, StatusDoc, sign_in, signed_in,
};
use super::auth::{CSRF_FIELD, Session};
use super::rules;
use super::state::Console;
use tandem_core::model::RecordKey;
use tandem_core::rules::config::Role;

fn page(
    title: &str,
    session: Option<&Session>,
    active: &str,
    console: &Console,
    body: Markup,
) -> Html<String> {
    let nav = [
        ("/", "Integrations"),
        ("/log", "Sync Log"),
        ("/plan", "Plan preview"),
        ("/rules", "Rules"),
    ];
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    @if let Some(s) = session {
                        meta name="csrf-token" content=(s.csrf);
                        meta name="tandem-role" content=(s.role.as_str());
                    }
                    title { (title) " · Tandem" }
                    link rel="stylesheet" href="/assets/console.css";
                    script src="/assets/console.js" defer {}
                }
                body {
                    a.skip href="#main" { "Skip to the content" }
                    header.top {
                        span.brand { "Tandem" }
                        @if let Some(s) = session {
                            nav aria-label="Pages" {
                                @for (href, label) in nav {
                                    a href=(href) aria-current=[(active == href).then_some("page")] { (label) }
                                }
                            }
                            form.signout method="post" action="/logout" {
                                input type="hidden" name=(CSRF_FIELD) value=(s.csrf);
                                span.who { (s.user) " · " (s.role.as_str()) }
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                    @if console.exposed {
                        p.banner.warn role="alert" {
                            "This console is reachable beyond this computer without HTTPS: passwords and sessions cross the network in the clear. Put it behind HTTPS."
                        }
                    }
                    main #main tabindex="-1" { (body) }
                }
            }
        }
        .into_string(),
    )
}

/// A page for someone not signed in: to the sign-in page, coming back here afterwards.
fn to_sign_in(path: &str) -> Response {
    let next: String =
        percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC).to_string();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

fn error_page(console: &Console, session: Option<&Session>, e: &ApiError) -> Response {
    let body = html! {
        h1 { "Something went wrong" }
        p.banner.error role="alert" { (e.message) }
        @for d in &e.details { p { (d) } }
        p { a href="/" { "Back to Integrations" } }
    };
    (e.status, page("Error", session, "", console, body)).into_response()
}

// ----- sign-in ------------------------------------------------------------------------------

/// The sign-in page's query.
#[derive(Debug, Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

fn safe_next(next: Option<&str>) -> String {
    match next {
        // Only paths on this server: never `//elsewhere` or a full URL.
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn sign_in_page(console: &Console, next: &str, error: Option<&str>) -> Html<String> {
    let no_users = console.users().is_empty();
    page(
        "Sign in",
        None,
        "",
        console,
        html! {
            section.signin {
                h1 { "Sign in to Tandem" }
                @if no_users {
                    p.banner.warn role="alert" {
                        "No one can sign in yet. Add a user on the server with "
                        code { "tandem user add NAME --role operator" }
                        ", then reload this page."
                    }
                }
                @if let Some(e) = error { p.banner.error role="alert" #signin-error { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="name" { "Name" }
                    input #name type="text" name="name" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    button.primary type="submit" #signin { "Sign in" }
                }
            }
        },
    )
}

async fn login_get(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if signed_in(&c, &headers).is_ok() {
        return Redirect::to(&next).into_response();
    }
    sign_in_page(&c, &next, None).into_response()
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    name: String,
    password: String,
    next: Option<String>,
}

async fn login_post(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match sign_in(&c, &headers, Some(peer), &f.name, &f.password) {
        Ok((_, cookie)) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (
                    header::LOCATION,
                    next.parse()
                        .unwrap_or(axum::http::HeaderValue::from_static("/")),
                ),
            ],
        )
            .into_response(),
        Err(e) => (e.status, sign_in_page(&c, &next, Some(&e.message))).into_response(),
    }
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

async fn logout_post(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = api::may_change(&c, &headers, f.csrf.as_deref(), Role::Viewer) {
        return error_page(&c, None, &e);
    }
    let cookie = api::sign_out(&c, &headers);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

// ----- pieces -------------------------------------------------------------------------------

fn when(t: &chrono::DateTime<chrono::Utc>) -> Markup {
    let ago = api::ago_words(chrono::Utc::now() - *t);
    html! { time datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { (ago) " ago" } }
}

fn kind_words(kind: &str) -> &str {
    match kind {
        "pull" => "Pull (HubSpot → Accelo)",
        "push" => "Push (Accelo → HubSpot)",
        "push_company" => "Push of a company",
        "push_contact" => "Push of a contact",
        "apply" => "Saved plan",
        "record" => "Automatic sync",
        other => other,
    }
}

fn duration_words(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn counts_words(f: &Value) -> String {
    let c = &f["counts"];
    let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
    format!(
        "{} created, {} updated, {} linked, {} unchanged, {} skipped, {} failed",
        n("created"),
        n("updated"),
        n("linked"),
        n("noop"),
        n("skipped"),
        n("failed")
    )
}

/// A job's line: its progress bar while it runs, its counts once it ended.
pub fn job_line(j: &JobDoc, session: &Session) -> Markup {
    let pct = match j.total {
        Some(t) if t > 0 => (j.done.min(t) * 100 / t) as u32,
        _ => 0,
    };
    html! {
        div.job data-job-id=(j.id) data-state=(j.state) {
            div.jobhead {
                strong { (kind_words(&j.kind)) }
                " · job " (j.id)
                @if let Some(s) = &j.subject { " · " code { (s) } }
                " · " span.state { (j.state) }
            }
            @if j.state == "queued" || j.state == "running" || j.total.is_some() {
                progress.progress max="100" value=(pct) aria-label=(format!("{} progress", kind_words(&j.kind))) { (pct) " %" }
                p.progresstext {
                    (j.done) " / " (j.total.map_or("…".to_string(), |t| t.to_string()))
                    " (" (pct) " %)"
                    @if let Some(r) = j.rate { " · " (format!("{r:.1}")) " records/s" }
                    @if let Some(s) = j.seconds_left { " · " (duration_words(s * 1000)) " left" }
                }
            }
            @if let Some(f) = &j.finished {
                p.counts { (counts_words(f)) " · took " (duration_words(f["duration_ms"].as_u64().unwrap_or(0))) }
                @if let Some(g) = f.get("guardrail").filter(|g| !g.is_null()) {
                    @let would = g["would"].as_str().unwrap_or("");
                    @let limit = g["limit"].as_str().unwrap_or("");
                    @let threshold = g["threshold"].as_str().unwrap_or("");
                    div.banner.warn role="alert" {
                        p { "Stopped by a safety limit before writing anything: it would " strong { (would) } ", and the limit (" code { "sync.guardrails." (threshold) } ") is " strong { (limit) } "." }
                        @if session.can_operate() {
                            button.danger type="button" data-run-anyway=(j.id)
                                data-confirm=(format!("This run would {would}; the limit is {limit}. Run it anyway?")) { "Run anyway" }
                        }
                    }
                } @else if let Some(e) = f.get("error").and_then(Value::as_str) {
                    p.banner.error { (e) }
                }
            }
        }
    }
}

fn operate_button(
    session: &Session,
    label: &str,
    class: &str,
    action: Option<&str>,
    id: Option<&str>,
) -> Markup {
    html! {
        @if session.can_operate() {
            button type="button" class=(class) data-action=[action] id=[id] { (label) }
        } @else {
            button type="button" class=(class) data-action=[action] id=[id] disabled title="Viewers can look but not run syncs or change rules" { (label) }
        }
    }
}

// ----- Integrations -------------------------------------------------------------------------

fn integrations(s: &StatusDoc, session: &Session) -> Markup {
    html! {
        h1 { "Integrations" }
        div.cards {
            @for sys in &s.systems {
                section.card data-system=(sys.system) aria-labelledby=(format!("card-{}", sys.system)) {
                    h2 id=(format!("card-{}", sys.system)) { (sys.title) }
                    @let (class, words) = match sys.state.as_str() {
                        "connected" => ("ok", "Connected"),
                        "refused" => ("error", "Credentials refused"),
                        _ => ("error", "Unreachable"),
                    };
                    p class=(format!("state {class}")) { (words) }
                    @if let Some(d) = &sys.detail { p.detail { (d) } }
                    p.small { "Checked " (when(&sys.checked_at)) " · " code { (sys.account) } }
                    @if sys.budgets.is_empty() {
                        p.small { "API budget: not reported yet (it shows after the first requests)." }
                    } @else {
                        ul.budgets {
                            @for b in &sys.budgets {
                                li {
                                    "Per " (b.window) ": "
                                    @match (b.remaining, b.limit) {
                                        (Some(r), Some(l)) => { (l.saturating_sub(r)) " of " (l) " used" },
                                        (Some(r), None) => { (r) " left" },
                                        (None, Some(l)) => { "limit " (l) },
                                        (None, None) => { "unknown" },
                                    }
                                    @if let Some(t) = &b.resets_at { ", resets at " (t.format("%H:%M UTC")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-health" {
            h2 #h-health { "Sync health" }
            table.health {
                thead { tr { th scope="col" { "Object" } th scope="col" { "In sync (linked)" } th scope="col" { "Excluded by the criteria" } th scope="col" { "Failing" } th scope="col" { "Waiting in the queue" } } }
                tbody {
                    @for h in &s.health {
                        tr {
                            th scope="row" { (h.object) }
                            td { (h.linked) }
                            td { (h.excluded) }
                            td { @if h.failing > 0 { a href=(format!("/log?object={}&outcome=errors", h.object)) { (h.failing) } } @else { "0" } }
                            td { (h.queued) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-runs" {
            h2 #h-runs { "Bulk runs" }
            div.actions {
                (operate_button(session, "Pull", "primary", Some("pull"), Some("run-pull")))
                (operate_button(session, "Push", "primary", Some("push"), Some("run-push")))
                span.small { "Pull copies HubSpot's companies and contacts into Accelo; Push copies Accelo's into HubSpot." }
            }
            div #jobs aria-live="polite" {
                @for j in s.active.iter().filter(|j| j.kind != "record") { (job_line(j, session)) }
            }
            div.lastruns {
                @for (label, run) in [("Last pull", &s.last_pull), ("Last push", &s.last_push)] {
                    div.lastrun {
                        h3 { (label) }
                        @match run {
                            Some(j) => {
                                p.small { @if let Some(t) = &j.finished_at { "Ended " (when(t)) } " · " a href=(format!("/log?job={}", j.id)) { "its log" } }
                                (job_line(j, session))
                            },
                            None => p.small { "None yet." },
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-setup" {
            h2 #h-setup { "Setup check" }
            p.small { "Checks the connections, credentials, mapped properties, statuses and the store, as "
                code { "tandem doctor" } " does, and says what to fix." }
            button type="button" #run-doctor { "Check the setup" }
            div #doctor aria-live="polite" {}
        }
        section aria-labelledby="h-auto" {
            h2 #h-auto { "Automatic sync" }
            p #automatic { (s.automatic.words) "." }
            ul.small {
                li { "Last HubSpot webhook: " @match &s.automatic.last_hubspot_webhook { Some(t) => (when(t)), None => "none" } }
                li { "Last Accelo webhook: " @match &s.automatic.last_accelo_webhook { Some(t) => (when(t)), None => "none" } }
                li { "Poller's last round: " @match &s.automatic.last_poll { Some(t) => (when(t)), None => "not yet" } }
            }
        }
    }
}

async fn home(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Ok(session) = signed_in(&c, &headers) else {
        return to_sign_in("/");
    };
    match api::status(&c).await {
        Ok(s) => page(
            "Integrations",
            Some(&session),
            "/",
            &c,
            integrations(&s, &session),
        )
        .into_response(),
        Err(e) => error_page(&c, Some(&session), &e),
    }
}

// ----- Sync Log -----------------------------------------------------------------------------

fn record_link(system: &str, object: &str, id: Option<&str>) -> Markup {
    html! {
        @match id {
            Some(id) => a href=(format!("/records/{system}/{object}/{id}")) { (system) " " (object) " " (id) },
            None => span { (system) " (new " (object) ")" },
        }
    }
}

fn show(v: &Value) -> Markup {
    html! {
        @match v.as_str() {
            Some(s) => q { (s) },
            None => em { "(blank)" },
        }
    }
}

/// One sync-log row.
pub fn log_row(e: &Value) -> Markup {
    let body = e;
    let kind = body["kind"].as_str().unwrap_or("");
    let at = e["at"].as_str().unwrap_or("");
    let id = e["id"].as_i64().unwrap_or(0);
    let job = e["job"].as_i64();
    let outcome = body["outcome"].as_str().unwrap_or(kind);
    html! {
        tr.entry data-id=(id) data-kind=(kind) data-outcome=(outcome) {
            td.at { time datetime=(at) { (at.get(..19).unwrap_or(at).replace('T', " ")) } }
            td { @if let Some(j) = job { a href=(format!("/log?job={j}")) { (j) } } }
            @match kind {
                "record" => {
                    td { span class=(format!("pill {outcome}")) { (if outcome == "noop" { "unchanged" } else { outcome }) } }
                    td {
                        (record_link(body["source"]["system"].as_str().unwrap_or(""), body["object"].as_str().unwrap_or(""), body["source"]["id"].as_str()))
                        " → "
                        (record_link(body["target"]["system"].as_str().unwrap_or(""), body["object"].as_str().unwrap_or(""), body["target"]["id"].as_str()))
                    }
                    td {
                        @if let Some(changes) = body["changes"].as_array() {
                            @if !changes.is_empty() {
                                ul.changes {
                                    @for ch in changes {
                                        li { code { (ch["field"].as_str().unwrap_or("")) } " " (show(&ch["from"])) " → " (show(&ch["to"])) }
                                    }
                                }
                            }
                        }
                        span.reason { (body["reason"].as_str().unwrap_or("")) }
                        @if let Some(err) = body["error"].as_str() { p.error { (err) } }
                    }
                },
                "notice" => {
                    td { span class=(format!("pill {}", body["level"].as_str().unwrap_or("info"))) { "notice" } }
                    td colspan="2" { pre.notice { (body["message"].as_str().unwrap_or("")) } }
                },
                "run_started" => {
                    td { span.pill.run { "started" } }
                    td colspan="2" { (kind_words(body["job_kind"].as_str().unwrap_or(""))) @if let Some(t) = body["total"].as_u64() { " · " (t) " records" } }
                },
                "run_progress" => {
                    td { span.pill.run { "progress" } }
                    td colspan="2" { (body["done"].as_u64().unwrap_or(0)) " / " (body["total"].as_u64().map_or("?".to_string(), |t| t.to_string())) }
                },
                _ => {
                    td { span class=(format!("pill {}", body["state"].as_str().unwrap_or(""))) { "finished" } }
                    td colspan="2" {
                        (kind_words(body["job_kind"].as_str().unwrap_or(""))) " " (body["state"].as_str().unwrap_or("")) " · " (counts_words(body)) " · " (duration_words(body["duration_ms"].as_u64().unwrap_or(0)))
                        @if let Some(err) = body["error"].as_str() { p.error { (err) } }
                    }
                },
            }
        }
    }
}

fn filter_query(f: &LogFilter) -> String {
    serde_urlencoded::to_string(LogFilter {
        before: None,
        after: None,
        limit: None,
        ..f.clone()
    })
    .unwrap_or_default()
}

fn select(name: &str, label: &str, current: Option<&str>, options: &[(&str, &str)]) -> Markup {
    html! {
        label { (label) " "
            select name=(name) {
                @for (v, l) in options {
                    option value=(v) selected[current.unwrap_or("") == *v] { (l) }
                }
            }
        }
    }
}

async fn log_view(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(f): Query<LogFilter>,
) -> Response {
    let Ok(session) = signed_in(&c, &headers) else {
        return to_sign_in("/log");
    };
    let page_data = match api::log_page(&c, &f).await {
        Ok(p) => p,
        Err(e) => return error_page(&c, Some(&session), &e),
    };
    let qs = filter_query(&f);
    let body = html! {
        h1 { "Sync Log" }
        form.filters method="get" action="/log" role="search" {
            label { "Job " input type="number" name="job" min="1" value=[f.job] size="6"; }
            (select("object", "Object", f.object.as_deref(), &[("", "all"), ("company", "companies"), ("contact", "contacts")]))
            (select("system", "System", f.system.as_deref(), &[("", "both"), ("hubspot", "HubSpot"), ("accelo", "Accelo")]))
            (select("outcome", "Outcome", f.outcome.as_deref(), &[("", "all"), ("errors", "errors only"), ("created", "created"), ("updated", "updated"), ("linked", "linked"), ("noop", "unchanged"), ("skipped", "skipped")]))
            label { "Name, email or id " input type="search" name="q" value=[f.q.as_deref()]; }
            button type="submit" { "Filter" }
            @if f.is_filtered() { a href="/log" { "Clear" } }
        }
        p.small {
            "Export these entries: "
            a href=(format!("/api/v1/log/export?format=csv&{qs}")) download { "CSV" } " · "
            a href=(format!("/api/v1/log/export?format=jsonl&{qs}")) download { "JSON lines" }
            @if f.before.is_none() { " · " span #live { "updates live" } }
        }
        table.log #log data-after=[page_data.newest.filter(|_| f.before.is_none())] data-filter=(qs) {
            thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "Job" } th scope="col" { "What" } th scope="col" { "Record" } th scope="col" { "Changes and reason" } } }
            tbody {
                @for e in &page_data.entries { (log_row(e)) }
            }
        }
        @if page_data.entries.is_empty() { p #empty { "No entries match." } }
        @if let Some(b) = page_data.next_before {
            p { a rel="next" href=(format!("/log?{qs}&before={b}")) { "Older entries" } }
        }
    };
    page("Sync Log", Some(&session), "/log", &c, body).into_response()
}

async fn log_rows(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(mut f): Query<LogFilter>,
) -> Response {
    if let Err(e) = signed_in(&c, &headers) {
        return e.into_response();
    }
    if f.after.is_none() {
        return ApiError::new(StatusCode::BAD_REQUEST, "`after` is required").into_response();
    }
    f.limit = Some(200);
    match api::log_page(&c, &f).await {
        Ok(p) => {
            Html(html! { @for e in &p.entries { (log_row(e)) } }.into_string()).into_response()
        }
        Err(e) => e.into_response(),
    }
}

// ----- record -------------------------------------------------------------------------------

fn action_words(a: &Value) -> String {
    let op = a["op"].as_str().unwrap_or("");
    let target = &a["target"];
    let t = match target["id"].as_str() {
        Some(id) => format!("{} {}", target["system"].as_str().unwrap_or(""), id),
        None => format!("a new {} record", target["system"].as_str().unwrap_or("")),
    };
    match op {
        "noop" => format!("unchanged ({t})"),
        "skip" => "skip".into(),
        "create" => format!("create {t}"),
        other => format!("{other} {t}"),
    }
}

fn record_view(r: &RecordDoc, session: &Session) -> Markup {
    let title = r
        .record
        .name
        .clone()
        .unwrap_or_else(|| format!("{} {}", r.object, r.id));
    let is_accelo = r.system == "accelo";
    html! {
        h1 { (title) }
        p.small { (r.system) " " (r.object) " " code { (r.id) }
            @match &r.twin {
                Some(t) => { " · linked to " a href=(format!("/records/{}/{}/{}", t.system, r.object, t.id)) { (t.system) " " (r.object) " " (t.id) } @if !t.exists { " (no longer exists)" } },
                None => { " · not linked" },
            }
        }
        div.actions {
            @let push_label = if is_accelo && r.object == "company" { "Push this company and its contacts" } else if is_accelo { "Push this contact" } else { "Push (from its Accelo twin)" };
            // A push starts from Accelo, a pull from HubSpot: the other side needs its twin.
            @if is_accelo || r.twin.is_some() {
                (operate_button(session, push_label, "danger record-action", Some("push"), Some("record-push")))
            }
            @if !is_accelo || r.twin.is_some() {
                (operate_button(session, "Pull this record", "record-action", Some("pull"), Some("record-pull")))
            }
            @if r.failing { (operate_button(session, "Retry", "record-action", Some("retry"), Some("record-retry"))) }
        }
        div #record-result aria-live="polite" {}
        @if r.failing { p.banner.error { "The last attempt on this record failed; see its history below." } }
        section aria-labelledby="h-fields" {
            h2 #h-fields { "Fields" }
            table.fields {
                thead { tr { th scope="col" { "Field" } th scope="col" { "HubSpot" } th scope="col" { "Accelo" } th scope="col" { "As last synced (HubSpot / Accelo)" } th scope="col" { "Flows" } } }
                tbody {
                    @for f in &r.fields {
                        tr class=[f.differs.then_some("differs")] {
                            th scope="row" { (f.name) br; span.small { code { (f.hubspot_field) } " · " code { (f.accelo_field) } } }
                            td { @if is_accelo && r.twin.is_none() { span.small { "no linked record" } } @else { (opt(&f.hubspot)) } }
                            td { @if !is_accelo && r.twin.is_none() { span.small { "no linked record" } } @else { (opt(&f.accelo)) } }
                            td.small { (opt(&f.synced_hubspot)) " / " (opt(&f.synced_accelo)) }
                            td { (f.direction) @if f.differs { " " span.pill.failed { "differs" } } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-why" {
            h2 #h-why { "Why is this (not) synced?" }
            @for (label, action) in [("A pull would", &r.pull), ("A push would", &r.push)] {
                @if let Some(a) = action {
                    p { strong { (label) } " " (action_words(a)) ": " span.reason { (a["reason"].as_str().unwrap_or("")) } }
                    @if let Some(changes) = a["changes"].as_array() {
                        @if !changes.is_empty() {
                            ul.changes { @for ch in changes { li { code { (ch["field"].as_str().unwrap_or("")) } " " (show(&ch["from"])) " → " (show(&ch["to"])) } } }
                        }
                    }
                }
            }
            @for n in &r.notes { p.small { (n) } }
        }
        section aria-labelledby="h-history" {
            h2 #h-history { "History" }
            @if r.history.is_empty() { p { "No sync-log entries about this record yet." } }
            @else {
                table.log { tbody { @for e in &r.history { (log_row(e)) } } }
            }
        }
    }
}

fn opt(v: &Option<String>) -> Markup {
    html! { @match v { Some(s) if !s.is_empty() => (s), _ => em { "(blank)" } } }
}

async fn record_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((system, object, id)): Path<(String, String, String)>,
) -> Response {
    let path = format!("/records/{system}/{object}/{id}");
    let Ok(session) = signed_in(&c, &headers) else {
        return to_sign_in(&path);
    };
    let key = match (system.parse(), object.parse()) {
        (Ok(system), Ok(object)) => RecordKey {
            system,
            object,
            id: id.clone(),
        },
        _ => {
            return error_page(
                &c,
                Some(&session),
                &ApiError::new(StatusCode::NOT_FOUND, "no such record page"),
            );
        }
    };
    match api::record(&c, &key).await {
        Ok(r) => page(&format!("{} {}", r.object, r.id), Some(&session), "", &c, html! {
            div #record data-system=(r.system) data-object=(r.object) data-id=(r.id) { (record_view(&r, &session)) }
        })
        .into_response(),
        Err(e) => error_page(&c, Some(&session), &e),
    }
}

/// The find-a-record form.
#[derive(Debug, Deserialize)]
pub struct FindForm {
    system: String,
    object: String,
    id: String,
}

async fn find_record(Query(f): Query<FindForm>) -> Response {
    let id: String =
        f.id.trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
    let system = if f.system == "accelo" {
        "accelo"
    } else {
        "hubspot"
    };
    let object = if f.object == "contact" {
        "contact"
    } else {
        "company"
    };
    Redirect::to(&format!("/records/{system}/{object}/{id}")).into_response()
}

// ----- plan preview -------------------------------------------------------------------------

async fn plan_view(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(req): Query<PlanRequest>,
) -> Response {
    let Ok(session) = signed_in(&c, &headers) else {
        return to_sign_in("/plan");
    };
    let asked = !req.direction.is_empty();
    let result = if asked {
        Some(match api::scope_of(&req) {
            Ok((direction, scope)) => api::make_plan(&c, direction, scope)
                .await
                .map(|(p, s)| api::plan_doc(&p, &s)),
            Err(e) => Err(e),
        })
    } else {
        None
    };
    let body = html! {
        h1 { "Plan preview" }
        p.small { "A dry run: what a run would do now, without writing anything." }
        form.filters method="get" action="/plan" {
            (select("direction", "Run", Some(if req.direction.is_empty() { "pull" } else { &req.direction }), &[("pull", "Pull (HubSpot → Accelo)"), ("push", "Push (Accelo → HubSpot)")]))
            label { "Only company " input type="text" name="company" inputmode="numeric" size="12" value=[req.company.as_deref()]; }
            label { "or only contact " input type="text" name="contact" inputmode="numeric" size="12" value=[req.contact.as_deref()]; }
            button.primary type="submit" #make-plan { "Preview" }
        }
        @match result {
            None => {},
            Some(Err(e)) => p.banner.error role="alert" { (e.message) },
            Some(Ok(doc)) => {
                p #plan-summary { strong { (doc.summary_line) } }
                div.actions {
                    (operate_button(&session, "Apply this plan", "primary", None, Some("apply-plan")))
                    label { "Filter actions " input #plan-filter type="search" placeholder="create, skip, a name, an id…"; }
                }
                div #apply-result aria-live="polite" {}
                textarea #saved-plan hidden aria-hidden="true" { (doc.saved.to_string()) }
                table.plan #plan-actions {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Object" } th scope="col" { "Action" } th scope="col" { "Record" } th scope="col" { "Changes" } th scope="col" { "Reason" } } }
                    tbody {
                        @for a in &doc.actions {
                            @let op = a["op"].as_str().unwrap_or("");
                            tr data-op=(op) {
                                td { (a["seq"].as_u64().unwrap_or(0)) }
                                td { (a["object"].as_str().unwrap_or("")) }
                                td { span class=(format!("pill {op}")) { (if op == "noop" { "unchanged" } else { op }) } }
                                td { (record_link(a["source"]["system"].as_str().unwrap_or(""), a["object"].as_str().unwrap_or(""), a["source"]["id"].as_str())) " → " (record_link(a["target"]["system"].as_str().unwrap_or(""), a["object"].as_str().unwrap_or(""), a["target"]["id"].as_str())) }
                                td { @if let Some(ch) = a["changes"].as_array() { ul.changes { @for c in ch { li { code { (c["field"].as_str().unwrap_or("")) } " " (show(&c["from"])) " → " (show(&c["to"])) } } } } }
                                td.reason { (a["reason"].as_str().unwrap_or("")) }
                            }
                        }
                    }
                }
            },
        }
    };
    page("Plan preview", Some(&session), "/plan", &c, body).into_response()
}

// ----- rules --------------------------------------------------------------------------------

/// Which file the Rules page shows.
#[derive(Debug, Deserialize, Default)]
pub struct FileQuery {
    file: Option<String>,
}

async fn rules_view(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<FileQuery>,
) -> Response {
    let Ok(session) = signed_in(&c, &headers) else {
        return to_sign_in("/rules");
    };
    let files = rules::read_files(&c);
    let current = q
        .file
        .as_deref()
        .and_then(|f| files.iter().find(|x| x.name == f))
        .or_else(|| files.iter().find(|x| x.kind == "rules"))
        .or(files.first());
    let Some(current) = current else {
        return error_page(
            &c,
            Some(&session),
            &ApiError::new(StatusCode::NOT_FOUND, "there are no rule files"),
        );
    };
    let versions = rules::versions(&c, &current.name).await.unwrap_or_default();
    let check = rules::load_edit(&c, &current.name, &current.text)
        .map(|(l, _)| match l {
            Ok(l) => rules::check_doc(&l.report),
            Err(r) => rules::check_doc(&r),
        })
        .ok();
    let body = html! {
        h1 { "Rules" }
        nav.tabs aria-label="Files" {
            @for f in &files {
                a href=(format!("/rules?file={}", f.name)) aria-current=[(f.name == current.name).then_some("page")] { (f.name) }
            }
        }
        div.editor #editor data-file=(current.name) {
            div.gutter #gutter aria-hidden="true" {}
            textarea #source spellcheck="false" aria-label=(format!("{} — edit, problems are marked as you type", current.name)) aria-describedby="diagnostics" { (current.text) }
        }
        div.actions {
            span #check-state aria-live="polite" {
                @match &check { Some(ch) if ch.ok => "No problems.", Some(ch) => (ch.summary), None => "" }
            }
            button type="button" #run-tests { "Run tests" }
            button type="button" #preview-impact { "Preview the impact" }
            (operate_button(&session, "Save", "primary", None, Some("save-rules")))
        }
        ul.diagnostics #diagnostics aria-label="Problems" {}
        div #rules-result aria-live="polite" {}
        section aria-labelledby="h-versions" {
            h2 #h-versions { "Saved versions" }
            @if versions.is_empty() { p.small { "None yet: versions are kept from the first save in the console on." } }
            @else {
                table.versions {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "Saved by" } th scope="col" { "When" } th {} } }
                    tbody {
                        @for v in &versions {
                            tr {
                                td { (v.id) }
                                td { (v.saved_by) }
                                td { (when(&v.saved_at)) }
                                td { @if session.can_operate() { button type="button" data-revert=(v.id) data-confirm=(format!("Restore version {} of {}? The current text is kept as a version too.", v.id, current.name)) { "Restore" } } }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Rules", Some(&session), "/rules", &c, body).into_response()
}

// ----- assets and routes --------------------------------------------------------------------

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        JS,
    )
        .into_response()
}

/// The page routes.
pub fn routes() -> axum::Router<Arc<Console>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/", get(home))
        .route("/login", get(login_get).post(login_post))
        .route("/logout", post(logout_post))
        .route("/log", get(log_view))
        .route("/log/rows", get(log_rows))
        .route("/records", get(find_record))
        .route("/records/{system}/{object}/{id}", get(record_page))
        .route("/plan", get(plan_view))
        .route("/rules", get(rules_view))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
}
