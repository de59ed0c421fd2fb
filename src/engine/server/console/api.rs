//! The console's JSON API (`/api/v1/…`): the documents it answers with, the functions that
//! build them (which the pages call too, so that nothing on a page bypasses the API), and the
//! handlers. Every state-changing request needs a signed-in operator, the session's CSRF token
//! in `X-CSRF-Token`, and an origin that is the console's own.
//!
//! Buttons run exactly what the commands run: a Pull queues the same `pull` job as `tandem
//! pull`, with the same guardrails, log and resume, for `tandem serve`'s worker to run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use super::access::{
    ApiError, ApiResult, ErrorDoc, answer, log_action, may_change, sign_out, signed_in,
};
use super::auth::{self, Refused, Session};
pub use super::log::{
    CSV_COLUMNS, EXPORT_MAX, ExportFormat, ExportQuery, LogFilter, LogPage, csv_line, entry_json,
    log_page,
};
use super::state::{Checked, Console, STATUS_TTL};
use crate::exec::jobs;
use crate::snapshot;
use crate::store::{Job, JobFilter, JobId, JobKind, JobState, LogBody, LogQuery, Outcome};
use tandem_core::model::{Direction, Object, RecordKey, System};
use tandem_core::plan::saved::{SavedPlan, Scope};
use tandem_core::plan::{Mode, Plan, plan};
use tandem_core::rules::config::Role;

// ----- session --------------------------------------------------------------------------------

/// Credentials to sign in with.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SignIn {
    /// The user's name.
    pub name: String,
    /// The password.
    pub password: String,
}

/// Who is signed in.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SessionDoc {
    /// The user's name.
    pub user: String,
    /// `viewer` or `operator`.
    pub role: String,
    /// The token to send in `X-CSRF-Token` with every state-changing request.
    pub csrf: String,
}

impl From<&Session> for SessionDoc {
    fn from(s: &Session) -> SessionDoc {
        SessionDoc {
            user: s.user.clone(),
            role: s.role.as_str().to_string(),
            csrf: s.csrf.clone(),
        }
    }
}

/// Signs in; the answer's `Set-Cookie` holds the session. Shared by the API and the sign-in
/// form.
pub fn sign_in(
    console: &Console,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    name: &str,
    password: &str,
) -> Result<(Session, HeaderValue), ApiError> {
    if !auth::same_origin(headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "refused: the request did not come from the console's own pages",
        ));
    }
    let users = console.users();
    if users.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no console users are set up: add one with `tandem user add NAME --role operator`",
        ));
    }
    let client = auth::client_of(headers, peer);
    match console.sessions.sign_in(&users, name, password, &client) {
        Ok((id, session)) => {
            let secure = console.secure_cookies() || auth::is_https(headers);
            let ttl = std::time::Duration::from_secs(
                console.config.console.session_hours.clamp(1, 24 * 30) * 3600,
            );
            let cookie = HeaderValue::from_str(&auth::set_cookie(&id, secure, ttl))
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            tracing::info!(target: "tandem::console", user = %session.user, "signed in");
            Ok((session, cookie))
        }
        Err(Refused::Wrong) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong name or password",
        )),
        Err(Refused::Throttled(wait)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed sign-ins: try again in {} min",
                wait.as_secs().div_ceil(60).max(1)
            ),
        )),
    }
}

async fn session_create(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Response {
    match sign_in(&c, &headers, Some(peer), &body.name, &body.password) {
        Ok((session, cookie)) => (
            StatusCode::OK,
            [(header::SET_COOKIE, cookie)],
            Json(SessionDoc::from(&session)),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn session_get(State(c): State<Arc<Console>>, headers: HeaderMap) -> ApiResult<SessionDoc> {
    let s = signed_in(&c, &headers)?;
    Ok(Json(SessionDoc::from(&s)))
}

async fn session_delete(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if let Err(e) = may_change(&c, &headers, None, Role::Viewer) {
        return e.into_response();
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, sign_out(&c, &headers))],
    )
        .into_response()
}

// ----- status ---------------------------------------------------------------------------------

/// One request budget, as the system's rate headers last reported it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BudgetDoc {
    /// The window: `10 seconds`, `day`, `hour`.
    pub window: String,
    /// Requests allowed in the window.
    pub limit: Option<u64>,
    /// Requests left.
    pub remaining: Option<u64>,
    /// When the window starts again.
    pub resets_at: Option<DateTime<Utc>>,
    /// When this was reported.
    pub seen_at: DateTime<Utc>,
}

/// One system's card.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SystemDoc {
    /// `hubspot` or `accelo`.
    pub system: String,
    /// `HubSpot` or `Accelo`.
    pub title: String,
    /// `connected`, `refused` (the credentials were refused) or `unreachable`.
    pub state: String,
    /// What went wrong, when something did.
    pub detail: Option<String>,
    /// When the live check was made.
    pub checked_at: DateTime<Utc>,
    /// The portal or deployment: the address Tandem talks to.
    pub account: String,
    /// The request budgets in use.
    pub budgets: Vec<BudgetDoc>,
}

/// Sync health of one object.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HealthDoc {
    /// `company` or `contact`.
    pub object: String,
    /// Linked pairs.
    pub linked: u64,
    /// Records the last bulk runs left alone because the criteria exclude them.
    pub excluded: u64,
    /// Records whose last attempt failed.
    pub failing: u64,
    /// Jobs about records of this object waiting in the queue.
    pub queued: u64,
}

/// A job, as the console shows it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct JobDoc {
    /// The job's id.
    pub id: i64,
    /// `pull`, `push`, `push_company`, `push_contact`, `apply` or `record`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// What it covers, when not everything (`accelo:company:12`).
    pub subject: Option<String>,
    /// Records done.
    pub done: u64,
    /// Records in all, once known.
    pub total: Option<u64>,
    /// Records per second so far.
    pub rate: Option<f64>,
    /// Seconds left at that rate.
    pub seconds_left: Option<u64>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether it runs past the guardrails.
    pub force: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Its end in the sync log: counts, duration, and the safety limit that stopped it.
    pub finished: Option<Value>,
}

/// The automatic channel: webhooks and the poller.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ChannelDoc {
    /// When the last HubSpot webhook arrived.
    pub last_hubspot_webhook: Option<DateTime<Utc>>,
    /// When the last Accelo webhook arrived.
    pub last_accelo_webhook: Option<DateTime<Utc>>,
    /// When the poller last went over both systems.
    pub last_poll: Option<DateTime<Utc>>,
    /// What that round reported, when it failed.
    pub last_poll_error: Option<String>,
    /// The state in words (`nothing has arrived for 3 days`).
    pub words: String,
}

/// The Integrations page.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StatusDoc {
    /// Both systems.
    pub systems: Vec<SystemDoc>,
    /// Per object.
    pub health: Vec<HealthDoc>,
    /// The last bulk pull.
    pub last_pull: Option<JobDoc>,
    /// The last bulk push.
    pub last_push: Option<JobDoc>,
    /// Queued and running jobs.
    pub active: Vec<JobDoc>,
    /// Webhooks and the poller.
    pub automatic: ChannelDoc,
    /// The rules in use (their hash).
    pub rules_hash: String,
}

fn system_title(s: System) -> &'static str {
    match s {
        System::HubSpot => "HubSpot",
        System::Accelo => "Accelo",
    }
}

async fn live_checks(console: &Console) -> Vec<(System, Checked)> {
    let mut cache = console.checks.lock().await;
    if let Some((at, checks)) = cache.as_ref()
        && at.elapsed() < STATUS_TTL
    {
        return checks.clone();
    }
    let (h, a) = tokio::join!(
        check_one(console, System::HubSpot),
        check_one(console, System::Accelo)
    );
    let checks = vec![h, a];
    *cache = Some((Instant::now(), checks.clone()));
    checks
}

async fn check_one(console: &Console, system: System) -> (System, Checked) {
    let r = console.systems.get(system).check().await;
    let (state, detail) = match r {
        Ok(()) => ("connected", None),
        Err(e) if is_refusal(&e.to_string()) => ("refused", Some(e.to_string())),
        Err(e) => ("unreachable", Some(e.to_string())),
    };
    (
        system,
        Checked {
            at: Utc::now(),
            state,
            detail,
        },
    )
}

fn is_refusal(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("credential") || t.contains("401") || t.contains("403") || t.contains("refused the")
}

/// A job as the console shows it; `finished` from its last log entries.
pub async fn job_doc(console: &Console, job: &Job) -> Result<JobDoc, ApiError> {
    let finished = if matches!(
        job.state,
        JobState::Succeeded | JobState::Failed | JobState::Cancelled
    ) {
        let entries = console
            .store
            .log(&LogQuery {
                job: Some(job.id),
                last: Some(5),
                ..LogQuery::default()
            })
            .await?;
        entries.into_iter().rev().find_map(|e| match e.body {
            LogBody::RunFinished(f) => serde_json::to_value(f).ok(),
            _ => None,
        })
    } else {
        None
    };
    let elapsed = job
        .started_at
        .and_then(|t| (Utc::now() - t).to_std().ok())
        .map(|d| d.as_secs_f64());
    let rate = match (job.state, elapsed) {
        (JobState::Running, Some(s)) if s > 0.5 && job.progress_done > 0 => {
            Some(job.progress_done as f64 / s)
        }
        _ => None,
    };
    let seconds_left = match (rate, job.progress_total) {
        (Some(r), Some(t)) if r > 0.0 => {
            Some(((t.saturating_sub(job.progress_done)) as f64 / r).ceil() as u64)
        }
        _ => None,
    };
    Ok(JobDoc {
        id: job.id.0,
        kind: job.kind.to_string(),
        state: job.state.to_string(),
        subject: subject_of(job),
        done: job.progress_done,
        total: job.progress_total,
        rate,
        seconds_left,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        force: job.payload.get("force") == Some(&Value::Bool(true)),
        error: job.error.clone(),
        finished,
    })
}

fn subject_of(job: &Job) -> Option<String> {
    let p = &job.payload;
    let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
    match job.kind {
        JobKind::PushCompany => s("company").map(|id| format!("accelo:company:{id}")),
        JobKind::PushContact => s("contact").map(|id| format!("accelo:contact:{id}")),
        JobKind::Record => p
            .get("record")
            .and_then(|r| {
                Some(format!(
                    "{}:{}:{}",
                    r.get("system")?.as_str()?,
                    r.get("object")?.as_str()?,
                    r.get("id")?.as_str()?
                ))
            })
            .or_else(|| job.coalesce_key.clone()),
        JobKind::Apply => p
            .get("plan")
            .and_then(|pl| pl.get("scope"))
            .map(|sc| sc.to_string()),
        _ => None,
    }
}

/// Queued and running jobs, oldest first.
pub async fn active_jobs(console: &Console) -> Result<Vec<JobDoc>, ApiError> {
    let jobs = console
        .store
        .jobs(&JobFilter {
            states: vec![JobState::Running, JobState::Queued],
            kinds: Vec::new(),
            limit: Some(50),
        })
        .await?;
    let mut out = Vec::new();
    for j in jobs.iter().rev() {
        out.push(job_doc(console, j).await?);
    }
    Ok(out)
}

async fn last_of(console: &Console, kind: JobKind) -> Result<Option<JobDoc>, ApiError> {
    let jobs = console
        .store
        .jobs(&JobFilter {
            states: vec![JobState::Succeeded, JobState::Failed, JobState::Cancelled],
            kinds: vec![kind],
            limit: Some(1),
        })
        .await?;
    match jobs.first() {
        Some(j) => Ok(Some(job_doc(console, j).await?)),
        None => Ok(None),
    }
}

/// "3 days", "5 min", "40 s".
pub fn ago_words(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => {
            let days = s / 86_400;
            format!("{days} day{}", if days == 1 { "" } else { "s" })
        }
    }
}

/// Quiet this long, the channel says so.
const QUIET: chrono::Duration = chrono::Duration::hours(24);

async fn channel(console: &Console) -> Result<ChannelDoc, ApiError> {
    let hs = console.store.last_event_at(System::HubSpot).await?;
    let ac = console.store.last_event_at(System::Accelo).await?;
    let poll = console
        .store
        .cursor(crate::server::poll::LAST_PASS_CURSOR)
        .await?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    let poll_error = console
        .store
        .cursor(crate::server::poll::LAST_ERROR_CURSOR)
        .await?
        .filter(|e| !e.is_empty());
    let now = Utc::now();
    let newest = [hs, ac].into_iter().flatten().max();
    let mut words = match newest {
        None => "no webhook has arrived yet".to_string(),
        Some(t) if now - t > QUIET => format!(
            "no webhook has arrived for {}: check the webhook subscriptions",
            ago_words(now - t)
        ),
        Some(t) => format!("the last webhook arrived {} ago", ago_words(now - t)),
    };
    match (poll, &poll_error) {
        (None, _) => words.push_str("; the poller has not run yet"),
        (Some(_), Some(e)) => words.push_str(&format!("; the poller's last round failed: {e}")),
        (Some(t), None) if now - t > QUIET => words.push_str(&format!(
            "; the poller has not run for {}",
            ago_words(now - t)
        )),
        (Some(t), None) => words.push_str(&format!(
            "; the poller went over both systems {} ago",
            ago_words(now - t)
        )),
    }
    Ok(ChannelDoc {
        last_hubspot_webhook: hs,
        last_accelo_webhook: ac,
        last_poll: poll,
        last_poll_error: poll_error,
        words,
    })
}

/// The Integrations page's data.
pub async fn status(console: &Console) -> Result<StatusDoc, ApiError> {
    let checks = live_checks(console).await;
    let mut systems = Vec::new();
    for (system, c) in checks {
        let budgets = console
            .systems
            .get(system)
            .budget_windows()
            .into_iter()
            .map(|w| BudgetDoc {
                window: w.window,
                limit: w.limit,
                remaining: w.remaining,
                resets_at: w.resets_at,
                seen_at: w.seen_at,
            })
            .collect();
        let account = match system {
            System::HubSpot => console.config.hubspot.url.clone(),
            System::Accelo => console.config.accelo.url.clone(),
        };
        systems.push(SystemDoc {
            system: system.as_str().to_string(),
            title: system_title(system).to_string(),
            state: c.state.to_string(),
            detail: c.detail,
            checked_at: c.at,
            account,
            budgets,
        });
    }
    let last_pull = last_of(console, JobKind::Pull).await?;
    let last_push = last_of(console, JobKind::Push).await?;
    let active = active_jobs(console).await?;
    let mut health = Vec::new();
    let runs: Vec<i64> = [&last_pull, &last_push]
        .into_iter()
        .flatten()
        .map(|j| j.id)
        .collect();
    let excluded = excluded_counts(console, runs).await?;
    for h in console.store.health().await? {
        let queued = active
            .iter()
            .filter(|j| {
                j.state == "queued"
                    && j.subject
                        .as_deref()
                        .is_some_and(|s| s.contains(&format!(":{}:", h.object)))
            })
            .count() as u64;
        health.push(HealthDoc {
            object: h.object.to_string(),
            linked: h.linked,
            excluded: excluded.get(&h.object).copied().unwrap_or(0),
            failing: h.failing,
            queued,
        });
    }
    Ok(StatusDoc {
        systems,
        health,
        last_pull,
        last_push,
        active,
        automatic: channel(console).await?,
        rules_hash: console.program().rules_hash().to_string(),
    })
}

/// Records the last bulk runs skipped because of the criteria, per object (counted by the
/// store: a run over 100,000 records has as many entries).
async fn excluded_counts(
    console: &Console,
    runs: Vec<i64>,
) -> Result<BTreeMap<Object, u64>, ApiError> {
    let mut out = BTreeMap::new();
    for run in runs {
        for (object, n) in console.store.count_skipped(JobId(run), "criteria").await? {
            *out.entry(object).or_insert(0) += n;
        }
    }
    Ok(out)
}

async fn status_get(State(c): State<Arc<Console>>, headers: HeaderMap) -> ApiResult<StatusDoc> {
    signed_in(&c, &headers)?;
    Ok(Json(status(&c).await?))
}

// ----- jobs -----------------------------------------------------------------------------------

/// A run to queue.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(extend(
    "if" = {"properties": {"kind": {"enum": ["push_company", "push_contact"]}}},
    "then" = {"required": ["id"], "properties": {"id": {"type": "string", "pattern": "^\\s*[0-9]+\\s*$"}}}
))]
pub struct JobRequest {
    /// `pull`, `push`, `push_company` (an Accelo company and its contacts) or `push_contact`
    /// (one Accelo contact, criteria bypassed).
    #[schemars(extend("enum" = ["pull", "push", "push_company", "push_contact"]))]
    pub kind: String,
    /// The Accelo id, for `push_company` and `push_contact` (digits).
    #[serde(default)]
    pub id: Option<String>,
    /// Run past the guardrails (after a run they stopped).
    #[serde(default)]
    pub force: bool,
}

/// Queues a run as the command of the same name does, logging who asked for it.
pub async fn queue_job(
    console: &Console,
    who: &Session,
    kind: JobKind,
    id: Option<&str>,
    force: bool,
) -> Result<JobDoc, ApiError> {
    let id = id.map(str::trim).filter(|s| !s.is_empty());
    if matches!(kind, JobKind::PushCompany | JobKind::PushContact) {
        let Some(id) = id else {
            return Err(ApiError::bad(format!("a {kind} needs the Accelo id")));
        };
        if id.len() > 20 || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(ApiError::bad(format!("`{id}` is not an Accelo id")));
        }
        // The record must exist before a job is queued for it, as `tandem push` checks.
        let object = if kind == JobKind::PushCompany {
            Object::Company
        } else {
            Object::Contact
        };
        let found = console
            .systems
            .accelo
            .get(object, &[id.to_string()], &[])
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("could not read Accelo: {e}"),
                )
            })?;
        if !found.iter().any(|r| r.id == id) {
            return Err(ApiError::not_found(format!(
                "there is no Accelo {object} `{id}`"
            )));
        }
    }
    let payload = jobs::payload(kind, id, force);
    let job_id = jobs::queue(console.store.as_ref(), kind, &payload)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let what = match (kind, id) {
        (JobKind::PushCompany, Some(id)) => {
            format!("a push of Accelo company {id} and its contacts")
        }
        (JobKind::PushContact, Some(id)) => format!("a push of Accelo contact {id}"),
        (k, _) => format!("a {k}"),
    };
    log_action(
        console,
        Some(job_id),
        format!(
            "{} queued {what} from the console{}",
            who.user,
            if force {
                ", past the safety limits"
            } else {
                ""
            }
        ),
    )
    .await;
    let job = console
        .store
        .job(job_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the job just queued is gone"))?;
    job_doc(console, &job).await
}

fn kind_of(s: &str) -> Result<JobKind, ApiError> {
    match s.trim() {
        "pull" => Ok(JobKind::Pull),
        "push" => Ok(JobKind::Push),
        "push_company" => Ok(JobKind::PushCompany),
        "push_contact" => Ok(JobKind::PushContact),
        other => Err(ApiError::bad(format!(
            "unknown kind `{other}`: use `pull`, `push`, `push_company` or `push_contact`"
        ))),
    }
}

async fn jobs_post(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Json(body): Json<JobRequest>,
) -> Response {
    let run = async {
        let who = may_change(&c, &headers, None, Role::Operator)?;
        let kind = kind_of(&body.kind)?;
        queue_job(&c, &who, kind, body.id.as_deref(), body.force).await
    };
    answer(StatusCode::ACCEPTED, run.await)
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct JobsQuery {
    /// Only queued and running ones.
    #[serde(default)]
    pub active: Option<bool>,
    /// At most this many (default 50, at most 500).
    #[serde(default)]
    #[schemars(extend("maximum" = 4_294_967_295_u32))]
    pub limit: Option<u32>,
}

async fn jobs_get(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Vec<JobDoc>> {
    signed_in(&c, &headers)?;
    let states = if q.active == Some(true) {
        vec![JobState::Running, JobState::Queued]
    } else {
        Vec::new()
    };
    let jobs = c
        .store
        .jobs(&JobFilter {
            states,
            kinds: Vec::new(),
            limit: Some(q.limit.unwrap_or(50).clamp(1, 500)),
        })
        .await?;
    let mut out = Vec::new();
    for j in &jobs {
        out.push(job_doc(&c, j).await?);
    }
    Ok(Json(out))
}

async fn job_get(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<JobDoc> {
    signed_in(&c, &headers)?;
    let job = c
        .store
        .job(JobId(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no job {id}")))?;
    Ok(Json(job_doc(&c, &job).await?))
}

/// Runs a job that a safety limit stopped again, past the limits.
pub async fn run_anyway(console: &Console, who: &Session, id: i64) -> Result<JobDoc, ApiError> {
    let job = console
        .store
        .job(JobId(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no job {id}")))?;
    let doc = job_doc(console, &job).await?;
    let stopped = doc
        .finished
        .as_ref()
        .and_then(|f| f.get("guardrail"))
        .is_some_and(|g| !g.is_null());
    if !stopped {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {id} was not stopped by a safety limit"),
        ));
    }
    let kind = job.kind;
    let target = job
        .payload
        .get("company")
        .or(job.payload.get("contact"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if kind == JobKind::Apply {
        let mut payload = job.payload.clone();
        if let Some(m) = payload.as_object_mut() {
            m.insert("force".into(), Value::Bool(true));
        }
        let new = jobs::queue(console.store.as_ref(), kind, &payload)
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        log_action(
            console,
            Some(new),
            format!(
                "{} ran the saved plan of job {id} past the safety limits",
                who.user
            ),
        )
        .await;
        let j = console
            .store
            .job(new)
            .await?
            .ok_or_else(|| ApiError::not_found("the job just queued is gone"))?;
        return job_doc(console, &j).await;
    }
    queue_job(console, who, kind, target.as_deref(), true).await
}

async fn job_run_anyway(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let run = async {
        let who = may_change(&c, &headers, None, Role::Operator)?;
        run_anyway(&c, &who, id).await
    };
    answer(StatusCode::ACCEPTED, run.await)
}

// ----- records --------------------------------------------------------------------------------

/// One mapped field of a record and its twin.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FieldDoc {
    /// The mapping's name.
    pub name: String,
    /// The HubSpot property.
    pub hubspot_field: String,
    /// The Accelo field.
    pub accelo_field: String,
    /// HubSpot's value now.
    pub hubspot: Option<String>,
    /// Accelo's value now.
    pub accelo: Option<String>,
    /// HubSpot's value as last synced.
    pub synced_hubspot: Option<String>,
    /// Accelo's value as last synced.
    pub synced_accelo: Option<String>,
    /// Whether the two sides hold different values now.
    pub differs: bool,
    /// Which way the field flows: `both`, `pull` or `push`.
    pub direction: String,
}

/// One side of a record page.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SideDoc {
    /// `hubspot` or `accelo`.
    pub system: String,
    /// The id.
    pub id: String,
    /// The record's name as people know it.
    pub name: Option<String>,
    /// Whether it exists now.
    pub exists: bool,
}

/// A record page.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RecordDoc {
    /// `hubspot`, `company`, the id.
    pub system: String,
    /// `company` or `contact`.
    pub object: String,
    /// The id.
    pub id: String,
    /// The record.
    pub record: SideDoc,
    /// Its twin, when linked.
    pub twin: Option<SideDoc>,
    /// Every mapped field.
    pub fields: Vec<FieldDoc>,
    /// What a pull would do now (as `tandem plan --json` prints an action).
    pub pull: Option<Value>,
    /// What a push would do now.
    pub push: Option<Value>,
    /// Why a direction has no action, and other remarks.
    pub notes: Vec<String>,
    /// Its sync-log entries, newest first.
    pub history: Vec<Value>,
    /// Whether its last attempt failed.
    pub failing: bool,
}

fn key_of(system: &str, object: &str, id: &str) -> Result<RecordKey, ApiError> {
    let system: System = system.parse().map_err(ApiError::bad)?;
    let object: Object = object.parse().map_err(ApiError::bad)?;
    let id = id.trim();
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::bad(format!("`{id}` is not a record id")));
    }
    Ok(RecordKey {
        system,
        object,
        id: id.to_string(),
    })
}

/// A record page's data.
pub async fn record(console: &Console, key: &RecordKey) -> Result<RecordDoc, ApiError> {
    let program = console.program();
    let story = crate::explain::story(
        &console.systems,
        &program,
        Some(console.store.as_ref()),
        key,
    )
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no {} {} `{}`",
            system_title(key.system),
            key.object,
            key.id
        ))
    })?;
    // The record and its twin as the story read them.
    let link = story.link.clone();
    let this = Some(story.found.clone());
    let twin = story.twin_found.clone();
    let (hs, ac) = match key.system {
        System::HubSpot => (this.as_ref(), twin.as_ref()),
        System::Accelo => (twin.as_ref(), this.as_ref()),
    };
    let mut fields = Vec::new();
    if let Some(rules) = program.object(key.object) {
        for m in &rules.mappings {
            let hubspot = hs.and_then(|r| text_of(r.doc.get(&m.hubspot)));
            let accelo = ac.and_then(|r| m.accelo.read(&r.doc));
            let synced = |k: String| link.as_ref().and_then(|l| l.last_synced.get(&k).cloned());
            let accelo_key = m.accelo.dotted().unwrap_or_else(|| m.accelo.source.clone());
            let norm = |v: &Option<String>| {
                v.as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            fields.push(FieldDoc {
                name: m.name.clone(),
                hubspot_field: m.hubspot.clone(),
                accelo_field: accelo_key.clone(),
                differs: twin.is_some() && norm(&hubspot) != norm(&accelo),
                hubspot,
                accelo,
                synced_hubspot: synced(tandem_core::plan::synced_key(System::HubSpot, &m.hubspot)),
                synced_accelo: synced(tandem_core::plan::synced_key(System::Accelo, &accelo_key)),
                direction: format!("{:?}", m.direction).to_lowercase(),
            });
        }
    }
    let history = console
        .store
        .log(&LogQuery {
            record: Some(key.clone()),
            last: Some(50),
            ..LogQuery::default()
        })
        .await?;
    let failing = history
        .iter()
        .rev()
        .find_map(|e| match &e.body {
            LogBody::Record(r) => Some(r.outcome == Outcome::Failed),
            _ => None,
        })
        .unwrap_or(false);
    let side = |system: System, id: &str, r: Option<&tandem_core::model::Record>| SideDoc {
        system: system.as_str().to_string(),
        id: id.to_string(),
        name: r.and_then(crate::explain::display_name),
        exists: r.is_some(),
    };
    Ok(RecordDoc {
        system: key.system.as_str().to_string(),
        object: key.object.to_string(),
        id: key.id.clone(),
        record: side(key.system, &key.id, this.as_ref()),
        twin: story
            .twin
            .as_ref()
            .map(|t| side(t.system, &t.id, twin.as_ref())),
        fields,
        pull: story
            .pull
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok()),
        push: story
            .push
            .as_ref()
            .and_then(|a| serde_json::to_value(a).ok()),
        notes: story
            .notes
            .iter()
            .map(|(d, n)| format!("{d}: {n}"))
            .collect(),
        history: history.iter().rev().map(entry_json).collect(),
        failing,
    })
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

async fn record_get(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((system, object, id)): Path<(String, String, String)>,
) -> ApiResult<RecordDoc> {
    signed_in(&c, &headers)?;
    let key = key_of(&system, &object, &id)?;
    Ok(Json(record(&c, &key).await?))
}

/// What to do with one record.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RecordAction {
    /// `push` (an Accelo company and its contacts, or one Accelo contact), `pull` (this
    /// HubSpot record), or `retry` (the direction whose last attempt failed).
    #[schemars(extend("enum" = ["push", "pull", "retry"]))]
    pub action: String,
}

/// Runs one record's Push, Pull or Retry.
pub async fn record_action(
    console: &Console,
    who: &Session,
    key: &RecordKey,
    action: &str,
) -> Result<JobDoc, ApiError> {
    let direction = match action {
        "push" => Direction::Push,
        "pull" => Direction::Pull,
        "retry" => {
            let last = console
                .store
                .log(&LogQuery {
                    record: Some(key.clone()),
                    outcomes: vec![Outcome::Failed],
                    last: Some(1),
                    ..LogQuery::default()
                })
                .await?;
            match last.first().map(|e| &e.body) {
                Some(LogBody::Record(r)) => Direction::from_source(r.source.system),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "nothing to retry: no attempt on this record failed",
                    ));
                }
            }
        }
        other => {
            return Err(ApiError::bad(format!(
                "unknown action `{other}`: use `push`, `pull` or `retry`"
            )));
        }
    };
    // The record in the direction's source system: the record itself or its twin.
    let source = if key.system == direction.source() {
        key.clone()
    } else {
        let link = console
            .store
            .link(key.object, key.system, &key.id)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "a {direction} starts from {}: this record has no linked {} {} to start from",
                        system_title(direction.source()),
                        system_title(direction.source()),
                        key.object
                    ),
                )
            })?;
        RecordKey {
            system: direction.source(),
            object: key.object,
            id: link.id_on(direction.source()).to_string(),
        }
    };
    match direction {
        Direction::Push => {
            let kind = match source.object {
                Object::Company => JobKind::PushCompany,
                Object::Contact => JobKind::PushContact,
            };
            queue_job(console, who, kind, Some(&source.id), false).await
        }
        Direction::Pull => {
            // One HubSpot record: its plan, applied as a saved plan (the same job as
            // `tandem apply`).
            let scope = Scope::Record {
                system: source.system,
                object: source.object,
                id: source.id.clone(),
            };
            let (_, saved) = make_plan(console, Direction::Pull, scope).await?;
            apply_saved(
                console,
                who,
                saved,
                &format!("a pull of HubSpot {} {}", source.object, source.id),
            )
            .await
        }
    }
}

async fn record_post(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((system, object, id)): Path<(String, String, String)>,
    Json(body): Json<RecordAction>,
) -> Response {
    let run = async {
        let who = may_change(&c, &headers, None, Role::Operator)?;
        let key = key_of(&system, &object, &id)?;
        record_action(&c, &who, &key, body.action.trim()).await
    };
    answer(StatusCode::ACCEPTED, run.await)
}

// ----- plans ----------------------------------------------------------------------------------

/// A dry run to make.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("not" = {
    "required": ["company", "contact"],
    "properties": {
        "company": {"type": "string", "pattern": "[0-9]"},
        "contact": {"type": "string", "pattern": "[0-9]"}
    }
}))]
pub struct PlanRequest {
    /// `pull` or `push`.
    #[schemars(extend("enum" = ["pull", "push"]))]
    pub direction: String,
    /// One company (its id in the direction's source system) and its contacts; not with
    /// `contact`.
    #[serde(default)]
    #[schemars(extend("pattern" = "^\\s*[0-9]{0,32}\\s*$"))]
    pub company: Option<String>,
    /// One contact (its id in the direction's source system); not with `company`.
    #[serde(default)]
    #[schemars(extend("pattern" = "^\\s*[0-9]{0,32}\\s*$"))]
    pub contact: Option<String>,
}

/// A plan preview.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PlanDoc {
    /// `pull` or `push`.
    pub direction: String,
    /// The summary line, as `tandem plan` ends with it.
    pub summary_line: String,
    /// The counts.
    pub summary: Value,
    /// Every action (as `tandem plan --json` prints them).
    pub actions: Vec<Value>,
    /// The plan, saved: send it back to apply exactly this plan.
    pub saved: Value,
}

/// The direction and scope a plan request names, checked.
pub fn scope_of(req: &PlanRequest) -> Result<(Direction, Scope), ApiError> {
    let direction = match req.direction.trim() {
        "pull" => Direction::Pull,
        "push" => Direction::Push,
        other => {
            return Err(ApiError::bad(format!(
                "unknown direction `{other}`: use `pull` or `push`"
            )));
        }
    };
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let check = |id: String| {
        if id.len() <= 32 && id.chars().all(|c| c.is_ascii_digit()) {
            Ok(id)
        } else {
            Err(ApiError::bad(format!("`{id}` is not a record id")))
        }
    };
    let scope = match (blank(&req.company), blank(&req.contact)) {
        (Some(_), Some(_)) => return Err(ApiError::bad("name a company or a contact, not both")),
        (Some(id), None) => Scope::Company { id: check(id)? },
        (None, Some(id)) => Scope::Contact { id: check(id)? },
        (None, None) => Scope::All,
    };
    Ok((direction, scope))
}

/// Reads `scope` and plans it with the running rules, as `tandem plan` does.
pub async fn make_plan(
    console: &Console,
    direction: Direction,
    scope: Scope,
) -> Result<(Plan, SavedPlan), ApiError> {
    let program = console.program();
    let snap = snapshot::read(
        &console.systems,
        &program,
        Some(console.store.as_ref()),
        direction,
        &scope,
    )
    .await?;
    let p = plan(&program, &snap.input(Mode::Bulk));
    let saved = SavedPlan::new(p.clone(), scope, snap.basis());
    Ok((p, saved))
}

/// A plan's document.
pub fn plan_doc(p: &Plan, saved: &SavedPlan) -> PlanDoc {
    PlanDoc {
        direction: p.direction.to_string(),
        summary_line: tandem_core::plan::render::summary_line(p),
        summary: serde_json::to_value(p.summary).unwrap_or(Value::Null),
        actions: p
            .actions
            .iter()
            .filter_map(|a| serde_json::to_value(a).ok())
            .collect(),
        saved: serde_json::from_str(&saved.to_json()).unwrap_or(Value::Null),
    }
}

async fn plans_post(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Json(req): Json<PlanRequest>,
) -> ApiResult<PlanDoc> {
    // A dry run writes nothing: viewers may make one, but it is a POST with a body, so it
    // carries the form token like every POST.
    may_change(&c, &headers, None, Role::Viewer)?;
    let (direction, scope) = scope_of(&req)?;
    let (p, saved) = make_plan(&c, direction, scope).await?;
    Ok(Json(plan_doc(&p, &saved)))
}

/// A saved plan to apply.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ApplyRequest {
    /// The `saved` of a plan preview, unchanged.
    pub saved: Value,
}

/// Queues an `apply` job for `saved`, refused when the data changed since it was made.
pub async fn apply_saved(
    console: &Console,
    who: &Session,
    saved: SavedPlan,
    what: &str,
) -> Result<JobDoc, ApiError> {
    let program = console.program();
    let check = snapshot::check_saved(
        &console.systems,
        &program,
        Some(console.store.as_ref()),
        &saved,
    )
    .await?;
    if check.rules_changed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the rules changed since this plan was made: preview it again",
        ));
    }
    if !check.is_fresh() {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            "the data changed since this plan was made: preview it again",
        );
        e.details = check.changes.clone();
        return Err(e);
    }
    let payload = json!({
        "plan": serde_json::from_str::<Value>(&saved.to_json()).unwrap_or(Value::Null),
        "file": "console",
    });
    let id = jobs::queue(console.store.as_ref(), JobKind::Apply, &payload)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    log_action(
        console,
        Some(id),
        format!("{} applied {what} from the console", who.user),
    )
    .await;
    let job = console
        .store
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("the job just queued is gone"))?;
    job_doc(console, &job).await
}

async fn plans_apply(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Json(req): Json<ApplyRequest>,
) -> Response {
    let run = async {
        let who = may_change(&c, &headers, None, Role::Operator)?;
        let saved = SavedPlan::from_json(&req.saved.to_string())
            .map_err(|e| ApiError::bad(format!("not a saved plan: {e}")))?;
        let what = format!("a saved {} plan", saved.plan.direction);
        apply_saved(&c, &who, saved, &what).await
    };
    answer(StatusCode::ACCEPTED, run.await)
}

// ----- setup check ----------------------------------------------------------------------------

/// One finding of the setup check, as `tandem doctor --json` gives it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FindingDoc {
    /// What was checked.
    pub check: String,
    /// `ok`, `problem` or `skipped`.
    pub status: String,
    /// What was found.
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
}

/// The setup check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DoctorDoc {
    /// Every finding, in the order `tandem doctor` prints them.
    pub findings: Vec<FindingDoc>,
    /// How many are problems (checks that could not run are not counted).
    pub problems: usize,
}

/// Runs `tandem doctor`'s checks.
pub async fn doctor(console: &Console) -> Result<DoctorDoc, ApiError> {
    let rt = console.doctor.as_ref().ok_or_else(|| {
        ApiError::not_found("the setup check is not available here: run `tandem doctor`")
    })?;
    let findings: Vec<FindingDoc> = crate::doctor::examine(rt)
        .await
        .into_iter()
        .map(|f| FindingDoc {
            check: f.check,
            status: f.status.to_string(),
            message: f.message,
            fix: f.fix,
        })
        .collect();
    Ok(DoctorDoc {
        problems: findings.iter().filter(|f| f.status == "problem").count(),
        findings,
    })
}

async fn doctor_get(State(c): State<Arc<Console>>, headers: HeaderMap) -> ApiResult<DoctorDoc> {
    signed_in(&c, &headers)?;
    Ok(Json(doctor(&c).await?))
}

// ----- router ---------------------------------------------------------------------------------

/// The API routes, under `/api/v1`.
pub fn routes() -> axum::Router<Arc<Console>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/api/v1/session",
            get(session_get).post(session_create).delete(session_delete),
        )
        .route("/api/v1/status", get(status_get))
        .route("/api/v1/jobs", get(jobs_get).post(jobs_post))
        .route("/api/v1/jobs/{id}", get(job_get))
        .route("/api/v1/jobs/{id}/run-anyway", post(job_run_anyway))
        .route(
            "/api/v1/records/{system}/{object}/{id}",
            get(record_get).post(record_post),
        )
        .route("/api/v1/plans", post(plans_post))
        .route("/api/v1/plans/apply", post(plans_apply))
        .route("/api/v1/doctor", get(doctor_get))
}

/// Rejections of the request by axum's extractors (a malformed path, query or body, a body
/// that is not JSON) answer in plain text; the API answers every error as an [`ErrorDoc`].
pub async fn json_rejections(response: Response) -> Response {
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    if !(plain && response.status().is_client_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("invalid request")
            .to_string()
    } else {
        text
    };
    ApiError::new(parts.status, message).into_response()
}
