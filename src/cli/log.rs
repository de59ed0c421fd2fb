//! `tandem log [--follow] [--json] [--job ID] [--record SYSTEM:OBJECT:ID] [--since TIME]`: the
//! sync log (B14) — runs with their counts and duration, and per record what happened and why,
//! field by field `from → to`; `--follow` streams new entries until interrupted.
//!
//! Text output is for people (local time, one line per entry, one indented line per changed
//! field); `--json` prints one [`LogEntry`] per line (the shape is in docs/operations.md).
//! Everything printed is scrubbed of secrets once more on the way out.

use std::future::Future;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDate, Utc};

use super::common::Exit;
use tandem_core::model::RecordKey;
use tandem_engine::notify::human_duration;
use tandem_engine::store::{
    JobId, JobState, LogBody, LogEntry, LogId, LogQuery, NoticeLevel, OpenOptions, Outcome, Store,
    StoreError,
};

/// The store used when neither `--store`, `TANDEM_STORE` nor `store.url` in
/// `rules/tandem.yaml` says otherwise.
pub const DEFAULT_STORE: &str = ".tandem/tandem.db";

/// How many entries `--follow` starts with when no filter narrows the log.
const FOLLOW_TAIL: u32 = 20;

/// How many entries are read from the store at a time.
const PAGE: u32 = 1000;

/// Arguments of `tandem log`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Keep printing entries as they are written, until interrupted (Ctrl-C). Without a filter
    /// it starts with the last 20 entries.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only the entries of this job.
    #[arg(long, value_name = "ID")]
    pub job: Option<JobId>,
    /// Only what happened to this record, as source or target (e.g. `hubspot:contact:5101`).
    #[arg(long, value_name = "SYSTEM:OBJECT:ID")]
    pub record: Option<RecordKey>,
    /// Only entries since TIME: RFC 3339 (`2026-11-28T09:00:00Z`), a date (`2026-11-28`, local
    /// midnight) or an age (`30s`, `10m`, `2h`, `1d`, `1w`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only the last N matching entries.
    #[arg(long, short = 'n', value_name = "N")]
    pub last: Option<u32>,
    /// The store: a SQLite file or a `postgres://` URL [default: `store.url` in the config,
    /// else .tandem/tandem.db].
    #[arg(long, env = "TANDEM_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The config file whose `store.url` names the store [default: rules/tandem.yaml].
    #[arg(long, env = "TANDEM_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// The rule files: accepted like on every command, not used by this one.
    #[arg(long, value_name = "DIR", hide = true)]
    pub rules: Option<std::path::PathBuf>,
    /// With `--follow`: how often to look for new entries, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500, hide = true)]
    pub poll_ms: u64,
}

/// What can stop `tandem log`.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LogError {
    /// `--since` is not a time.
    #[error(
        "`{0}` is not a time: use RFC 3339 (`2026-11-28T09:00:00Z`), a date (`2026-11-28`) or \
         an age (`10m`, `2h`, `1d`)"
    )]
    #[diagnostic(code(tandem::log::since))]
    Since(String),
    /// rules/tandem.yaml could not be read for the store URL.
    #[error("cannot read the store url from `{path}`: {message}")]
    #[diagnostic(
        code(tandem::log::config),
        help("or give the store with `--store` or `TANDEM_STORE`")
    )]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    /// Output failed.
    #[error("cannot write the log: {0}")]
    #[diagnostic(code(tandem::log::output))]
    Output(#[from] io::Error),
}

impl LogError {
    fn exit(&self) -> Exit {
        match self {
            LogError::Store(e) if e.is_unreachable() => Exit::Unreachable,
            LogError::Store(StoreError::Missing { .. } | StoreError::Open { .. }) => Exit::Invalid,
            LogError::Store(_) | LogError::Output(_) => Exit::Failures,
            LogError::Since(_) | LogError::Config { .. } => Exit::Invalid,
        }
    }
}

/// Runs `tandem log`.
pub fn run(args: Args) -> Exit {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failures;
        }
    };
    runtime.block_on(async {
        // Only `--follow` waits for a signal; otherwise Ctrl-C keeps its default effect.
        let stop: std::pin::Pin<Box<dyn Future<Output = ()>>> = if args.follow {
            match interrupted() {
                Ok(stop) => Box::pin(stop),
                Err(e) => {
                    eprintln!("error: cannot watch for Ctrl-C: {e}");
                    return Exit::Failures;
                }
            }
        } else {
            Box::pin(std::future::pending())
        };
        let stdout = io::stdout();
        let mut out = stdout.lock();
        match show(&args, &mut out, stop).await {
            Ok(()) => Exit::Ok,
            // `tandem log | head`: the reader has had enough.
            Err(LogError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Exit::Ok,
            Err(e) => {
                let exit = e.exit();
                eprintln!("{:?}", miette::Report::new(e));
                exit
            }
        }
    })
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed before this returns, so
/// a signal that arrives while the first entries are being printed is not lost.
fn interrupted() -> io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Prints the entries `args` select to `out`; with `--follow`, keeps printing new ones until
/// `stop` completes.
pub async fn show<W: Write>(
    args: &Args,
    out: &mut W,
    stop: impl Future<Output = ()>,
) -> Result<(), LogError> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, Utc::now()).ok_or_else(|| LogError::Since(s.to_string())))
        .transpose()?;
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| Path::new("rules").join("tandem.yaml"));
    let url = store_url(args.store.as_deref(), &config)?;
    let store = tandem_engine::store::open_with(
        &url,
        &OpenOptions {
            create: false,
            max_connections: Some(1),
        },
    )
    .await?;
    let result = print_log(store.as_ref(), args, since, out, stop).await;
    store.close().await;
    result
}

async fn print_log<W: Write>(
    store: &dyn Store,
    args: &Args,
    since: Option<DateTime<Utc>>,
    out: &mut W,
    stop: impl Future<Output = ()>,
) -> Result<(), LogError> {
    let unfiltered = args.job.is_none() && args.record.is_none() && since.is_none();
    let base = LogQuery {
        job: args.job,
        record: args.record.clone(),
        since,
        ..LogQuery::default()
    };
    let last = match args.last {
        Some(n) => Some(n),
        None if args.follow && unfiltered => Some(FOLLOW_TAIL),
        None => None,
    };
    // The newest entry now, read before anything is shown: when nothing matches yet, following
    // starts after it — an entry written while the first page is read is not skipped.
    let mark = if args.follow {
        store
            .log(&LogQuery {
                last: Some(1),
                ..LogQuery::default()
            })
            .await?
            .first()
            .map(|e| e.id)
    } else {
        None
    };
    let mut after: Option<LogId> = None;
    if let Some(n) = last {
        let entries = store
            .log(&LogQuery {
                last: Some(n),
                ..base.clone()
            })
            .await?;
        after = print_entries(&entries, args.json, out)?.or(after);
    } else {
        loop {
            let entries = store
                .log(&LogQuery {
                    after,
                    limit: Some(PAGE),
                    ..base.clone()
                })
                .await?;
            after = print_entries(&entries, args.json, out)?.or(after);
            if entries.len() < PAGE as usize {
                break;
            }
        }
    }
    out.flush()?;
    if after.is_none() {
        // Nothing matched: say so on stderr (stdout stays empty for scripts).
        eprintln!("{}", nothing_matches(args, store.location()));
    }
    if !args.follow {
        return Ok(());
    }
    // Entries after the last one shown; when nothing matched yet, those after the mark.
    if after.is_none() {
        after = mark;
    }
    let poll = Duration::from_millis(args.poll_ms.max(10));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(poll) => {}
        }
        loop {
            let entries = store
                .log(&LogQuery {
                    after,
                    limit: Some(PAGE),
                    ..base.clone()
                })
                .await?;
            after = print_entries(&entries, args.json, out)?.or(after);
            out.flush()?;
            if entries.len() < PAGE as usize {
                break;
            }
        }
    }
}

/// What `tandem log` says when no entry matches its filters.
fn nothing_matches(args: &Args, store: &str) -> String {
    let since = args
        .since
        .as_deref()
        .map(|t| format!(" since `{t}`"))
        .unwrap_or_default();
    let mut s = match (&args.record, args.job) {
        (Some(r), _) => format!(
            "no sync-log entries about {r}{since} in {store}: no run has synced, skipped or \
             failed it. `tandem why {} {} {}` shows what a run would do with it",
            r.system, r.object, r.id
        ),
        (None, Some(job)) => format!("no sync-log entries for job {job}{since} in {store}"),
        (None, None) if args.since.is_some() => format!("no sync-log entries{since} in {store}"),
        (None, None) => format!("the sync log in {store} is empty"),
    };
    if args.follow {
        s.push_str("; waiting for new entries (Ctrl-C stops)");
    }
    s
}

/// Prints entries; returns the id of the last one.
fn print_entries<W: Write>(
    entries: &[LogEntry],
    json: bool,
    out: &mut W,
) -> Result<Option<LogId>, LogError> {
    for entry in entries {
        let entry = LogEntry {
            body: entry.body.scrubbed(),
            ..entry.clone()
        };
        if json {
            let line = serde_json::to_string(&entry).map_err(io::Error::other)?;
            writeln!(out, "{line}")?;
        } else {
            out.write_all(render_text(&entry).as_bytes())?;
        }
    }
    Ok(entries.last().map(|e| e.id))
}

/// The text form of one entry: a line, plus one indented line per changed field.
pub fn render_text(entry: &LogEntry) -> String {
    let at = entry.at.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S");
    let job = match entry.job {
        Some(j) => format!("job {j}"),
        None => String::new(),
    };
    let head = format!("{at}  {job:<8} ");
    let mut s = head.clone();
    match &entry.body {
        LogBody::RunStarted(r) => {
            s.push_str(&format!("{} started", r.job_kind));
            if let Some(subject) = &r.subject {
                s.push_str(&format!(" for {subject}"));
            }
            let mut details = Vec::new();
            if let Some(d) = r.direction {
                details.push(format!("{} → {}", d.source(), d.target()));
            }
            if let Some(i) = r.initiator {
                details.push(format!("{i} values win"));
            }
            if let Some(t) = r.total {
                details.push(format!("{t} records"));
            }
            if !details.is_empty() {
                s.push_str(&format!(" ({})", details.join(", ")));
            }
        }
        LogBody::RunProgress(p) => match p.total {
            Some(t) => s.push_str(&format!("progress {}/{t}", p.done)),
            None => s.push_str(&format!("progress {}", p.done)),
        },
        LogBody::RunFinished(r) => {
            let verb = match r.state {
                JobState::Succeeded => "finished",
                JobState::Failed => "stopped with an error",
                JobState::Cancelled => "was cancelled",
                JobState::Queued | JobState::Running => "ended",
            };
            s.push_str(&format!("{} {verb}", r.job_kind));
            if let Some(subject) = &r.subject {
                s.push_str(&format!(" for {subject}"));
            }
            let c = &r.counts;
            s.push_str(&format!(
                " in {}: {}",
                human_duration(Duration::from_millis(r.duration_ms)),
                c.text()
            ));
            if r.interrupted > 0 {
                s.push_str(&format!(
                    " ({} interrupted attempt{} before)",
                    r.interrupted,
                    if r.interrupted == 1 { "" } else { "s" }
                ));
            }
            if let Some(e) = &r.error {
                s.push_str(&format!("\n{:indent$}error: {e}", "", indent = head.len()));
            }
        }
        LogBody::Record(r) => {
            let label = match r.outcome {
                Outcome::Noop => "unchanged",
                o => o.as_str(),
            };
            let side = |rr: &tandem_core::plan::RecordRef| match &rr.id {
                Some(id) => format!("{}:{}:{id}", rr.system, r.object),
                None => rr.system.to_string(),
            };
            s.push_str(&format!(
                "{label:<9} {:<7} {} → {}",
                r.object.as_str(),
                side(&r.source),
                side(&r.target)
            ));
            if !r.reason.is_empty() {
                s.push_str(&format!("  {}", r.reason));
            }
            let indent = head.len() + 2;
            if let Some(e) = &r.error {
                s.push_str(&format!("\n{:indent$}error: {e}", ""));
            }
            for c in &r.changes {
                s.push_str(&format!(
                    "\n{:indent$}{}: {} → {}",
                    "",
                    c.field,
                    show_value(c.from.as_deref()),
                    show_value(c.to.as_deref())
                ));
            }
        }
        LogBody::Notice(n) => {
            let level = match n.level {
                NoticeLevel::Info => "notice",
                NoticeLevel::Warn => "warning",
                NoticeLevel::Error => "error",
            };
            s.push_str(&format!("{level}: {}", n.message));
        }
    }
    s.push('\n');
    s
}

fn show_value(v: Option<&str>) -> String {
    match v {
        None => "(blank)".to_string(),
        Some(v) => format!("{v:?}"),
    }
}

/// Parses `--since`: RFC 3339, a date (local midnight), or an age before `now` (`30s`, `10m`,
/// `2h`, `1d`, `1w`).
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0)?;
        return midnight
            .and_local_timezone(Local)
            .earliest()
            .map(|t| t.with_timezone(&Utc));
    }
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let age = chrono::Duration::try_seconds(n.checked_mul(seconds)?)?;
    now.checked_sub_signed(age)
}

/// The store URL: `explicit` (`--store` / `TANDEM_STORE`) when given, else `store.url` from the
/// `config` file (`--config` / `TANDEM_CONFIG`) when that file sets it, else [`DEFAULT_STORE`].
pub fn store_url(explicit: Option<&str>, config: &Path) -> Result<String, LogError> {
    if let Some(url) = explicit.map(str::trim).filter(|u| !u.is_empty()) {
        return Ok(url.to_string());
    }
    let path = config;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DEFAULT_STORE.to_string()),
        Err(e) => {
            return Err(LogError::Config {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    #[derive(serde::Deserialize, Default)]
    struct Config {
        #[serde(default)]
        store: Option<StoreSection>,
    }
    #[derive(serde::Deserialize, Default)]
    struct StoreSection {
        #[serde(default)]
        url: Option<String>,
    }
    let config: Option<Config> = serde_saphyr::from_str(&text).map_err(|e| LogError::Config {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(config
        .and_then(|c| c.store)
        .and_then(|s| s.url)
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_STORE.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_dates_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| parse_since(s, now).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-11-28T09:30:00Z").unwrap(),
            "2026-11-28T09:30:00+00:00"
        );
        assert_eq!(
            at("2026-11-28T09:30:00+10:00").unwrap(),
            "2026-11-27T23:30:00+00:00"
        );
        assert_eq!(at("10m").unwrap(), "2026-11-28T11:50:00+00:00");
        assert_eq!(at("2h").unwrap(), "2026-11-28T10:00:00+00:00");
        assert_eq!(at("1d").unwrap(), "2026-11-27T12:00:00+00:00");
        assert_eq!(at("1w").unwrap(), "2026-11-21T12:00:00+00:00");
        assert_eq!(at("45s").unwrap(), "2026-11-28T11:59:15+00:00");
        let date = parse_since("2026-11-01", now).unwrap();
        assert_eq!(
            date.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            "2026-11-01 00:00"
        );
        for bad in [
            "",
            "yesterday",
            "10",
            "m",
            "10y",
            "-5m",
            "99999999999999999d",
        ] {
            assert_eq!(parse_since(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn store_url_comes_from_the_flag_then_tandem_yaml_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            store_url(None, &dir.path().join("tandem.yaml")).unwrap(),
            DEFAULT_STORE
        );
        assert_eq!(
            store_url(Some("x.db"), &dir.path().join("tandem.yaml")).unwrap(),
            "x.db"
        );
        std::fs::write(
            dir.path().join("tandem.yaml"),
            "hubspot:\n  token_env: HS\nstore:\n  url: postgres://db/sync\n",
        )
        .unwrap();
        assert_eq!(
            store_url(None, &dir.path().join("tandem.yaml")).unwrap(),
            "postgres://db/sync"
        );
        assert_eq!(
            store_url(Some("x.db"), &dir.path().join("tandem.yaml")).unwrap(),
            "x.db"
        );
        std::fs::write(dir.path().join("tandem.yaml"), "store: [1, 2\n").unwrap();
        let err = store_url(None, &dir.path().join("tandem.yaml")).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot read the store url from `{}",
                dir.path().display()
            )),
            "{err}"
        );
        std::fs::write(dir.path().join("tandem.yaml"), "notify: {}\n").unwrap();
        assert_eq!(
            store_url(None, &dir.path().join("tandem.yaml")).unwrap(),
            DEFAULT_STORE
        );
    }
}
