//! The Rules page's API: the files, the live check of an edit (the same located diagnostics as
//! `tandem check`), the files' own test cases on the edit, the impact of an edit on the plans,
//! and saving — refused while the check fails, written atomically so that the hot reload picks
//! it up as any edit on disk, every saved version kept with who saved it.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::api::{ApiError, ApiResult, answer, log_action, may_change, signed_in};
use super::state::Console;
use crate::snapshot;
use tandem_core::compile::{Loaded, load_sources};
use tandem_core::model::Direction;
use tandem_core::plan::saved::Scope;
use tandem_core::plan::{Action, Mode, plan};
use tandem_core::rules::config::Role;
use tandem_core::rules::diag::line_col;
use tandem_core::rules::{Report, Source};

/// A file the Rules page edits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileDoc {
    /// Its name (`companies.yaml`, `tandem.yaml`).
    pub name: String,
    /// `config` or `rules`.
    pub kind: String,
    /// Its text now.
    pub text: String,
}

/// One problem, located.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DiagDoc {
    /// The file's name.
    pub file: String,
    /// The stable code (`E0xx`, `W0xx`).
    pub code: String,
    /// `error` or `warning`.
    pub severity: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Where the marked text ends (line).
    pub end_line: usize,
    /// Where the marked text ends (column).
    pub end_column: usize,
}

/// The outcome of a check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckDoc {
    /// True when there is no error (warnings allowed): the edit may be saved.
    pub ok: bool,
    /// `2 errors, 1 warning`.
    pub summary: String,
    /// Every problem, in every file.
    pub diagnostics: Vec<DiagDoc>,
}

/// An edit of one file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct Edit {
    /// The file's name.
    pub file: String,
    /// Its edited text.
    pub text: String,
    /// For a preview: `pull` or `push` (default `pull`).
    #[serde(default)]
    #[schemars(extend("enum" = ["pull", "push", "", null]))]
    pub direction: Option<String>,
}

/// One test case's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CaseDoc {
    /// The rule file.
    pub file: String,
    /// The case's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Expected → actual, when it failed.
    pub diff: Option<String>,
}

/// The test cases' outcomes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TestsDoc {
    /// The check of the edit (the cases run only when it passes).
    pub check: CheckDoc,
    /// Every case.
    pub cases: Vec<CaseDoc>,
    /// How many passed.
    pub passed: usize,
    /// How many failed.
    pub failed: usize,
}

/// One action that an edit changes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ImpactRow {
    /// `company` or `contact`.
    pub object: String,
    /// The record (`hubspot:12`).
    pub record: String,
    /// `appears`, `disappears` or `changes`.
    pub change: String,
    /// With the running rules (`update: name "A" → "B"`), when there.
    pub running: Option<String>,
    /// With the edited rules.
    pub edited: Option<String>,
}

/// An edit's impact on a plan.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ImpactDoc {
    /// The check of the edit (the plans are made only when it passes).
    pub check: CheckDoc,
    /// `pull` or `push`.
    pub direction: String,
    /// The summary with the running rules.
    pub running: String,
    /// The summary with the edited rules.
    pub edited: String,
    /// Actions that appear, disappear or change.
    pub rows: Vec<ImpactRow>,
}

/// A saved version.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionDoc {
    /// Its id.
    pub id: i64,
    /// Who saved it.
    pub saved_by: String,
    /// When.
    pub saved_at: chrono::DateTime<chrono::Utc>,
    /// Its size in bytes.
    pub bytes: usize,
}

/// What saving did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SavedDoc {
    /// The file.
    pub file: String,
    /// The version kept.
    pub version: i64,
    /// The check of what was saved (warnings, if any).
    pub check: CheckDoc,
}

/// The file names the page may edit and their paths: tandem.yaml and the rule files.
pub fn files(console: &Console) -> Vec<(String, String, PathBuf)> {
    let mut out = Vec::new();
    let name = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    out.push((
        name(&console.paths.config),
        "config".to_string(),
        console.paths.config.clone(),
    ));
    if let Ok(rules) = console.paths.rule_files() {
        for p in rules {
            out.push((name(&p), "rules".to_string(), p));
        }
    }
    out
}

fn path_of(console: &Console, file: &str) -> Result<PathBuf, ApiError> {
    files(console)
        .into_iter()
        .find(|(n, _, _)| n == file)
        .map(|(_, _, p)| p)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("there is no rule file `{file}`"),
            )
        })
}

/// What the page shows instead of a console user's password hash.
pub const KEPT_HASH: &str = "(kept)";

/// tandem.yaml as the page shows it: every `password_hash` value replaced by [`KEPT_HASH`], so
/// that no hash reaches a browser.
pub fn mask_hashes(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        match t.strip_prefix("password_hash:") {
            Some(_) => {
                let pad = &line[..line.len() - t.len()];
                out.push(format!("{pad}password_hash: \"{KEPT_HASH}\""));
            }
            None => out.push(line.to_string()),
        }
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

/// An edited tandem.yaml with each [`KEPT_HASH`] replaced by the hash the file on disk has for
/// the user named above it (a user added in the page has none: the check then fails on it).
pub fn unmask_hashes(edited: &str, on_disk: &str) -> String {
    let mut hashes = std::collections::BTreeMap::new();
    let mut name: Option<String> = None;
    let value = |t: &str, key: &str| {
        t.strip_prefix(key)
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    };
    for line in on_disk.lines() {
        let t = line.trim_start().trim_start_matches("- ");
        if let Some(n) = value(t, "name:") {
            name = Some(n);
        } else if let (Some(h), Some(n)) = (value(t, "password_hash:"), &name) {
            hashes.insert(n.clone(), h);
        }
    }
    let mut name: Option<String> = None;
    let mut out: Vec<String> = Vec::new();
    for line in edited.lines() {
        let t = line.trim_start().trim_start_matches("- ");
        if let Some(n) = value(t, "name:") {
            name = Some(n);
        }
        match (value(t, "password_hash:"), &name) {
            (Some(h), Some(n)) if h == KEPT_HASH => match hashes.get(n) {
                Some(real) => {
                    let pad = &line[..line.len() - line.trim_start().len()];
                    let dash = if line.trim_start().starts_with("- ") {
                        "- "
                    } else {
                        ""
                    };
                    out.push(format!("{pad}{dash}password_hash: \"{real}\""));
                }
                None => out.push(line.to_string()),
            },
            _ => out.push(line.to_string()),
        }
    }
    let mut joined = out.join("\n");
    if edited.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

/// Every file's text now (tandem.yaml with its password hashes masked).
pub fn read_files(console: &Console) -> Vec<FileDoc> {
    files(console)
        .into_iter()
        .map(|(name, kind, path)| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            FileDoc {
                text: if kind == "config" {
                    mask_hashes(&text)
                } else {
                    text
                },
                name,
                kind,
            }
        })
        .collect()
}

/// The diagnostics of `report` as documents, file names shortened to the page's names.
pub fn check_doc(report: &Report) -> CheckDoc {
    let short = |f: &str| {
        std::path::Path::new(f)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| f.to_string())
    };
    let diagnostics = report
        .diagnostics()
        .iter()
        .map(|d| {
            let (line, column) = report.position(d);
            let (end_line, end_column) = match (&d.span, report.source(&d.file)) {
                (Some(span), Some(text)) => line_col(text, span.end.max(span.start)),
                _ => (line, column),
            };
            DiagDoc {
                file: short(&d.file),
                code: d.code.as_str().to_string(),
                severity: d.severity().as_str().to_string(),
                message: d.message.clone(),
                help: d.help.clone(),
                line,
                column,
                end_line,
                end_column,
            }
        })
        .collect();
    CheckDoc {
        ok: !report.has_errors(),
        summary: report.summary(),
        diagnostics,
    }
}

/// Checks and compiles every file with `file` replaced by `text`, as `tandem check` would.
pub fn load_edit(
    console: &Console,
    file: &str,
    text: &str,
) -> Result<(Result<Loaded, Report>, PathBuf), ApiError> {
    let path = path_of(console, file)?;
    let is_config = path == console.paths.config;
    let unmasked;
    let text = if is_config && text.contains(KEPT_HASH) {
        unmasked = unmask_hashes(text, &std::fs::read_to_string(&path).unwrap_or_default());
        unmasked.as_str()
    } else {
        text
    };
    let mut report = Report::new();
    let (config, rules, dir) = tandem_core::rules::paths::read(&console.paths, &mut report);
    let edited = Source {
        name: path.display().to_string(),
        text: Arc::from(text),
    };
    let replace = |s: Source| {
        if s.name == edited.name {
            edited.clone()
        } else {
            s
        }
    };
    let is_config = path == console.paths.config;
    let config = if is_config {
        Some(edited.clone())
    } else {
        config.map(replace)
    };
    let rules: Vec<Source> = rules.into_iter().map(replace).collect();
    let loaded = load_sources(config.as_ref(), &rules, &dir);
    // Problems reading the other files come first.
    let loaded = match loaded {
        Err(mut r) => {
            for d in report.diagnostics() {
                r.push(d.clone());
            }
            Err(r)
        }
        ok if report.has_errors() => {
            drop(ok);
            Err(report)
        }
        ok => ok,
    };
    Ok((loaded, path))
}

fn checked(loaded: &Result<Loaded, Report>) -> CheckDoc {
    match loaded {
        Ok(l) => check_doc(&l.report),
        Err(r) => check_doc(r),
    }
}

async fn files_get(State(c): State<Arc<Console>>, headers: HeaderMap) -> ApiResult<Vec<FileDoc>> {
    signed_in(&c, &headers)?;
    Ok(Json(read_files(&c)))
}

async fn check_post(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Json(edit): Json<Edit>,
) -> ApiResult<CheckDoc> {
    may_change(&c, &headers, None, Role::Viewer)?;
    let (loaded, _) = load_edit(&c, &edit.file, &edit.text)?;
    Ok(Json(checked(&loaded)))
}

/// Runs the test cases of the rule set with the edit.
pub fn run_tests(console: &Console, edit: &Edit) -> Result<TestsDoc, ApiError> {
    let (loaded, _) = load_edit(console, &edit.file, &edit.text)?;
    let check = checked(&loaded);
    let mut cases = Vec::new();
    if let Ok(l) = &loaded {
        let mut all: Vec<_> = l.program.tests().collect();
        all.sort_by(|a, b| a.file.cmp(&b.file));
        for case in all {
            let o = tandem_core::plan::cases::run_case(&l.program, case);
            cases.push(CaseDoc {
                file: std::path::Path::new(&o.file)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or(o.file.clone()),
                name: o.name,
                passed: o.passed,
                diff: o.diff,
            });
        }
    }
    let passed = cases.iter().filter(|c| c.passed).count();
    Ok(TestsDoc {
        check,
        failed: cases.len() - passed,
        passed,
        cases,
    })
}

async fn tests_post(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Json(edit): Json<Edit>,
) -> ApiResult<TestsDoc> {
    may_change(&c, &headers, None, Role::Viewer)?;
    Ok(Json(run_tests(&c, &edit)?))
}

fn describe(a: &Action) -> String {
    let mut s = a.op.label().to_string();
    let changes: Vec<String> = a
        .changes
        .iter()
        .map(|ch| {
            format!(
                "{} {} → {}",
                ch.field,
                ch.from
                    .as_deref()
                    .map_or("(blank)".into(), |v| format!("\"{v}\"")),
                ch.to
                    .as_deref()
                    .map_or("(blank)".into(), |v| format!("\"{v}\""))
            )
        })
        .collect();
    if !changes.is_empty() {
        s.push_str(": ");
        s.push_str(&changes.join(", "));
    }
    if matches!(a.op, tandem_core::plan::Op::Skip) {
        s.push_str(&format!(" ({})", a.reason));
    }
    s
}

fn record_of(a: &Action) -> String {
    format!(
        "{}:{}",
        a.source.system,
        a.source.id.as_deref().unwrap_or("(new)")
    )
}

/// The plan with the edited rules beside the plan with the running ones.
pub async fn impact(console: &Console, edit: &Edit) -> Result<ImpactDoc, ApiError> {
    let direction = match edit.direction.as_deref().map(str::trim) {
        None | Some("") | Some("pull") => Direction::Pull,
        Some("push") => Direction::Push,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown direction `{other}`"),
            ));
        }
    };
    let (loaded, _) = load_edit(console, &edit.file, &edit.text)?;
    let check = checked(&loaded);
    let Ok(loaded) = loaded else {
        return Ok(ImpactDoc {
            check,
            direction: direction.to_string(),
            running: String::new(),
            edited: String::new(),
            rows: Vec::new(),
        });
    };
    let running = console.program();
    let edited = loaded.program;
    // Read once with what either rule set reads, plan twice.
    let snap = snapshot::read(
        &console.systems,
        &edited,
        Some(console.store.as_ref()),
        direction,
        &Scope::All,
    )
    .await?;
    let before = plan(&running, &snap.input(Mode::Bulk));
    let after = plan(&edited, &snap.input(Mode::Bulk));
    let key = |a: &Action| (a.object, record_of(a));
    let mut rows = Vec::new();
    let old: std::collections::BTreeMap<_, &Action> =
        before.actions.iter().map(|a| (key(a), a)).collect();
    let new: std::collections::BTreeMap<_, &Action> =
        after.actions.iter().map(|a| (key(a), a)).collect();
    for (k, a) in &new {
        match old.get(k) {
            None => rows.push(ImpactRow {
                object: a.object.to_string(),
                record: k.1.clone(),
                change: "appears".into(),
                running: None,
                edited: Some(describe(a)),
            }),
            Some(b) => {
                // A skip that stays a skip is no change, whatever its reason now says.
                let same = b.op == a.op && b.changes == a.changes;
                let (x, y) = (describe(b), describe(a));
                if !same {
                    rows.push(ImpactRow {
                        object: a.object.to_string(),
                        record: k.1.clone(),
                        change: "changes".into(),
                        running: Some(x),
                        edited: Some(y),
                    });
                }
            }
        }
    }
    for (k, b) in &old {
        if !new.contains_key(k) {
            rows.push(ImpactRow {
                object: b.object.to_string(),
                record: k.1.clone(),
                change: "disappears".into(),
                running: Some(describe(b)),
                edited: None,
            });
        }
    }
    Ok(ImpactDoc {
        check,
        direction: direction.to_string(),
        running: tandem_core::plan::render::summary_line(&before),
        edited: tandem_core::plan::render::summary_line(&after),
        rows,
    })
}

async fn preview_post(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Json(edit): Json<Edit>,
) -> ApiResult<ImpactDoc> {
    may_change(&c, &headers, None, Role::Viewer)?;
    Ok(Json(impact(&c, &edit).await?))
}

/// Writes `text` to `path` atomically: a temporary file beside it, then a rename.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "rules".into());
    // A name the rules loader skips (not .yaml), so the reload never sees half a file.
    let tmp = dir.join(format!(".{name}.{}.saving", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Saves an edit: refused while its check fails; the previous text is kept as a version the
/// first time, and so is the new one.
pub async fn save(
    console: &Console,
    who: &str,
    file: &str,
    text: &str,
) -> Result<SavedDoc, ApiError> {
    let (loaded, path) = load_edit(console, file, text)?;
    let check = checked(&loaded);
    if !check.ok {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("not saved: the check fails ({})", check.summary),
        );
        e.details = check
            .diagnostics
            .iter()
            .filter(|d| d.severity == "error")
            .map(|d| {
                format!(
                    "{}:{}:{}: {} {}",
                    d.file, d.line, d.column, d.code, d.message
                )
            })
            .collect();
        return Err(e);
    }
    // Keep what was there before the first save from the console, so it can be restored.
    if console.store.rule_versions(file, 1).await?.is_empty()
        && let Ok(before) = std::fs::read_to_string(&path)
    {
        console
            .store
            .save_rule_version(file, &before, "(before the first save)")
            .await?;
    }
    write_atomically(&path, text).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not write {}: {e}", path.display()),
        )
    })?;
    let version = console.store.save_rule_version(file, text, who).await?;
    log_action(
        console,
        None,
        format!("{who} saved {file} from the console (version {version})"),
    )
    .await;
    Ok(SavedDoc {
        file: file.to_string(),
        version,
        check,
    })
}

/// A file's new text.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SaveRequest {
    /// The whole text.
    pub text: String,
}

async fn file_put(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(file): Path<String>,
    Json(body): Json<SaveRequest>,
) -> Response {
    let run = async {
        let who = may_change(&c, &headers, None, Role::Operator)?;
        save(&c, &who.user, &file, &body.text).await
    };
    answer(StatusCode::OK, run.await)
}

/// A file's saved versions, newest first.
pub async fn versions(console: &Console, file: &str) -> Result<Vec<VersionDoc>, ApiError> {
    path_of(console, file)?;
    Ok(console
        .store
        .rule_versions(file, 100)
        .await?
        .into_iter()
        .map(|v| VersionDoc {
            id: v.id,
            saved_by: v.saved_by,
            saved_at: v.saved_at,
            bytes: v.text.len(),
        })
        .collect())
}

async fn versions_get(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> ApiResult<Vec<VersionDoc>> {
    signed_in(&c, &headers)?;
    Ok(Json(versions(&c, &file).await?))
}

async fn revert_post(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Path((file, id)): Path<(String, i64)>,
) -> Response {
    let run = async {
        let who = may_change(&c, &headers, None, Role::Operator)?;
        let v = c
            .store
            .rule_version(id)
            .await?
            .filter(|v| v.file == file)
            .ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, format!("{file} has no version {id}"))
            })?;
        save(
            &c,
            &format!("{} (restoring version {id})", who.user),
            &file,
            &v.text,
        )
        .await
    };
    answer(StatusCode::OK, run.await)
}

/// The Rules page's routes.
pub fn routes() -> axum::Router<Arc<Console>> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/api/v1/rules", get(files_get))
        .route("/api/v1/rules/check", post(check_post))
        .route("/api/v1/rules/test", post(tests_post))
        .route("/api/v1/rules/preview", post(preview_post))
        .route("/api/v1/rules/files/{file}", put(file_put))
        .route("/api/v1/rules/files/{file}/versions", get(versions_get))
        .route(
            "/api/v1/rules/files/{file}/versions/{id}/revert",
            post(revert_post),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_never_leave_and_come_back() {
        let disk = "console:\n  users:\n    - name: ana\n      role: operator\n      password_hash: \"$argon2id$A\"\n    - name: bo\n      password_hash: \"$argon2id$B\"\n";
        let shown = mask_hashes(disk);
        assert!(!shown.contains("argon2"), "{shown}");
        assert_eq!(unmask_hashes(&shown, disk), disk);
        // Users reordered and one role changed in the page: each keeps its own hash.
        let edited = shown.replace("operator", "viewer");
        let back = unmask_hashes(&edited, disk);
        assert!(
            back.contains("role: viewer\n      password_hash: \"$argon2id$A\""),
            "{back}"
        );
        assert!(
            back.contains("- name: bo\n      password_hash: \"$argon2id$B\""),
            "{back}"
        );
    }
}
