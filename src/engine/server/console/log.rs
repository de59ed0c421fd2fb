//! The Sync Log's API: its filters and keyset pages (newest first, `before` for the next page,
//! `after` for live updates), an entry as `tandem log --json` prints it, and the CSV and
//! JSON-lines exports, streamed page by page.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::state::Console;
use crate::store::{JobId, LogBody, LogEntry, LogId, LogQuery, Outcome};
use tandem_core::model::{Object, System};

use super::access::{ApiError, ApiResult, signed_in};

// ----- sync log -------------------------------------------------------------------------------

/// A number in a query string, where an empty value (a form's blank field) means none.
fn blank_is_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// The schema of a number in a query string within `minimum..=maximum`, which a blank form
/// field may leave empty.
fn number_or_blank(description: &str, minimum: i64, maximum: i64) -> schemars::Schema {
    schemars::json_schema!({
        "description": description,
        "anyOf": [
            {"type": "integer", "minimum": minimum, "maximum": maximum},
            {"type": "string", "maxLength": 0},
            {"type": "null"}
        ]
    })
}

/// The schema of an id or a job number in a query string, which may be left empty.
pub struct NumberOrBlank;

impl JsonSchema for NumberOrBlank {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NumberOrBlank".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        number_or_blank("A whole number, or empty for none.", -i64::MAX, i64::MAX)
    }
}

/// The schema of a count in a query string, which may be left empty.
pub struct CountOrBlank;

impl JsonSchema for CountOrBlank {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CountOrBlank".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        number_or_blank("A count, or empty for the default.", 0, i64::from(u32::MAX))
    }
}

/// The Sync Log's filters and page position.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
pub struct LogFilter {
    /// Only this job's entries.
    #[serde(default, deserialize_with = "blank_is_none")]
    #[schemars(with = "NumberOrBlank")]
    pub job: Option<i64>,
    /// `company` or `contact`.
    #[serde(default)]
    #[schemars(extend("enum" = ["company", "contact", "companies", "contacts", "", null]))]
    pub object: Option<String>,
    /// `hubspot` or `accelo`.
    #[serde(default)]
    #[schemars(extend("enum" = ["hubspot", "accelo", "", null]))]
    pub system: Option<String>,
    /// `created`, `updated`, `linked`, `noop` (or `unchanged`), `skipped`, `failed`, or
    /// `errors` (failed only).
    #[serde(default)]
    #[schemars(extend("enum" = [
        "created", "updated", "linked", "noop", "unchanged", "skipped", "failed", "errors", "",
        null
    ]))]
    pub outcome: Option<String>,
    /// A name, email or id.
    #[serde(default)]
    pub q: Option<String>,
    /// Entries older than this id (the next page).
    #[serde(default, deserialize_with = "blank_is_none")]
    #[schemars(with = "NumberOrBlank")]
    pub before: Option<i64>,
    /// Entries newer than this id (live updates).
    #[serde(default, deserialize_with = "blank_is_none")]
    #[schemars(with = "NumberOrBlank")]
    pub after: Option<i64>,
    /// Entries per page (default 50, at most 500).
    #[serde(default, deserialize_with = "blank_is_none")]
    #[schemars(with = "CountOrBlank")]
    pub limit: Option<u32>,
}

impl LogFilter {
    /// The store query (newest first when paging back).
    pub fn query(&self) -> Result<LogQuery, ApiError> {
        let blank = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let object = match blank(&self.object) {
            Some(o) => Some(o.parse::<Object>().map_err(ApiError::bad)?),
            None => None,
        };
        let system = match blank(&self.system) {
            Some(s) => Some(s.parse::<System>().map_err(ApiError::bad)?),
            None => None,
        };
        let outcomes = match blank(&self.outcome).as_deref() {
            None => Vec::new(),
            Some("errors") => vec![Outcome::Failed],
            Some("unchanged") => vec![Outcome::Noop],
            Some(o) => vec![o.parse::<Outcome>().map_err(ApiError::bad)?],
        };
        Ok(LogQuery {
            job: self.job.map(JobId),
            object,
            system,
            outcomes,
            text: blank(&self.q),
            before: self.before.map(LogId),
            after: self.after.map(LogId),
            last: Some(self.limit.unwrap_or(50).clamp(1, 500)),
            ..LogQuery::default()
        })
    }

    /// Whether any filter is set.
    pub fn is_filtered(&self) -> bool {
        self.job.is_some()
            || [&self.object, &self.system, &self.outcome, &self.q]
                .iter()
                .any(|v| v.as_deref().is_some_and(|s| !s.trim().is_empty()))
    }
}

/// One page of the Sync Log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LogPage {
    /// The entries, newest first (each as `tandem log --json` prints it).
    pub entries: Vec<Value>,
    /// `before` for the next (older) page, when there may be one.
    pub next_before: Option<i64>,
    /// The newest id on this page (`after` for live updates).
    pub newest: Option<i64>,
}

/// An entry as `tandem log --json` prints it, secrets scrubbed.
pub fn entry_json(e: &LogEntry) -> Value {
    let e = LogEntry {
        body: e.body.scrubbed(),
        ..e.clone()
    };
    serde_json::to_value(&e).unwrap_or(Value::Null)
}

/// A page of the log under `filter`.
pub async fn log_page(console: &Console, filter: &LogFilter) -> Result<LogPage, ApiError> {
    let query = filter.query()?;
    let limit = query.last.unwrap_or(50) as usize;
    let mut entries = console.store.log(&query).await?;
    entries.reverse();
    let next_before = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.0))
        .flatten();
    Ok(LogPage {
        newest: entries.first().map(|e| e.id.0),
        entries: entries.iter().map(entry_json).collect(),
        next_before,
    })
}

async fn log_get(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(f): Query<LogFilter>,
) -> ApiResult<LogPage> {
    signed_in(&c, &headers)?;
    Ok(Json(log_page(&c, &f).await?))
}

/// The export format.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ExportQuery {
    /// `csv` or `jsonl`.
    #[schemars(extend("enum" = ["csv", "jsonl"]))]
    pub format: String,
    /// The filters, as for the log.
    #[serde(flatten)]
    pub filter: LogFilter,
}

/// The export format alone: the handler reads the filters as a [`LogFilter`] of the same query
/// string (serde's `flatten` cannot read numbers from a query string).
#[derive(Debug, Clone, Deserialize)]
pub struct ExportFormat {
    format: String,
}

/// The CSV columns of an export.
pub const CSV_COLUMNS: &str =
    "id,at,job,kind,object,source,target,outcome,reason,changes,error,message";

fn csv_field(s: &str) -> String {
    // Formula injection: a cell starting with = + - @ is shown as text by spreadsheets.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One entry as a CSV line (no newline).
pub fn csv_line(e: &LogEntry) -> String {
    /// The columns after id, time and job; empty where an entry has nothing to say.
    #[derive(Default)]
    struct Row {
        kind: &'static str,
        object: String,
        source: String,
        target: String,
        outcome: String,
        reason: String,
        changes: String,
        error: String,
        message: String,
    }
    let r = |x: &tandem_core::plan::RecordRef| {
        format!("{}:{}", x.system, x.id.as_deref().unwrap_or("(new)"))
    };
    let row = match e.body.scrubbed() {
        LogBody::Record(rec) => Row {
            kind: "record",
            object: rec.object.to_string(),
            source: r(&rec.source),
            target: r(&rec.target),
            outcome: rec.outcome.to_string(),
            changes: rec
                .changes
                .iter()
                .map(|c| {
                    format!(
                        "{}: {} → {}",
                        c.field,
                        c.from.as_deref().unwrap_or("(blank)"),
                        c.to.as_deref().unwrap_or("(blank)")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            reason: rec.reason,
            error: rec.error.unwrap_or_default(),
            ..Row::default()
        },
        LogBody::Notice(n) => Row {
            kind: "notice",
            message: n.message,
            ..Row::default()
        },
        LogBody::RunStarted(s) => Row {
            kind: "run_started",
            message: format!("{} started", s.job_kind),
            ..Row::default()
        },
        LogBody::RunProgress(p) => Row {
            kind: "run_progress",
            message: format!(
                "{} of {}",
                p.done,
                p.total.map_or("?".to_string(), |t| t.to_string())
            ),
            ..Row::default()
        },
        LogBody::RunFinished(f) => Row {
            kind: "run_finished",
            outcome: f.state.to_string(),
            error: f.error.clone().unwrap_or_default(),
            message: f.counts.text(),
            ..Row::default()
        },
    };
    [
        e.id.0.to_string(),
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        e.job.map(|j| j.0.to_string()).unwrap_or_default(),
        row.kind.to_string(),
        row.object,
        row.source,
        row.target,
        row.outcome,
        row.reason,
        row.changes,
        row.error,
        row.message,
    ]
    .iter()
    .map(|f| csv_field(f))
    .collect::<Vec<_>>()
    .join(",")
}

/// At most this many entries in one export.
pub const EXPORT_MAX: usize = 1_000_000;

struct ExportState {
    console: Arc<Console>,
    filter: LogFilter,
    csv: bool,
    sent: usize,
    header: bool,
    done: bool,
}

/// The next chunk of an export: a page of entries (500), newest first; `None` at the end. A
/// store failure midway ends the file with a line saying so.
async fn export_chunk(
    mut st: ExportState,
) -> Option<(Result<String, std::io::Error>, ExportState)> {
    if st.done {
        return None;
    }
    let mut out = String::new();
    if st.header {
        st.header = false;
        if st.csv {
            out.push_str(CSV_COLUMNS);
            out.push('\n');
        }
    }
    let page = match st.filter.query() {
        Ok(q) => st.console.store.log(&q).await,
        Err(e) => {
            st.done = true;
            return Some((Err(std::io::Error::other(e.message)), st));
        }
    };
    let mut page = match page {
        Ok(p) => p,
        Err(e) => {
            st.done = true;
            return Some((Err(std::io::Error::other(e.to_string())), st));
        }
    };
    page.reverse();
    for e in &page {
        if st.csv {
            out.push_str(&csv_line(e));
        } else {
            out.push_str(&entry_json(e).to_string());
        }
        out.push('\n');
    }
    st.sent += page.len();
    match page.last() {
        Some(last) if page.len() == 500 && st.sent < EXPORT_MAX => {
            st.filter.before = Some(last.id.0)
        }
        _ => st.done = true,
    }
    Some((Ok(out), st))
}

async fn log_export(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<ExportFormat>,
    Query(filter): Query<LogFilter>,
) -> Response {
    if let Err(e) = signed_in(&c, &headers) {
        return e.into_response();
    }
    let csv = match q.format.as_str() {
        "csv" => true,
        "jsonl" => false,
        other => {
            return ApiError::bad(format!("unknown format `{other}`: use `csv` or `jsonl`"))
                .into_response();
        }
    };
    let mut filter = filter;
    filter.limit = Some(500);
    if let Err(e) = filter.query() {
        return e.into_response();
    }
    let (ctype, name) = if csv {
        ("text/csv; charset=utf-8", "tandem-sync-log.csv")
    } else {
        ("application/x-ndjson", "tandem-sync-log.jsonl")
    };
    let state = ExportState {
        console: c,
        filter,
        csv,
        sent: 0,
        header: true,
        done: false,
    };
    let body = axum::body::Body::from_stream(futures::stream::unfold(state, export_chunk));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The Sync Log's routes.
pub fn routes() -> axum::Router<Arc<Console>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/log", get(log_get))
        .route("/api/v1/log/export", get(log_export))
}
