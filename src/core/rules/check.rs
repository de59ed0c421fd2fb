//! Loading and checking: the config file and every rule file → a [`RuleSet`] plus a [`Report`]
//! holding *every* problem found, each at its exact span.
//!
//! Per file: YAML (`E001`, `E002`) → JSON Schema (`E003`–`E006`) → meaning (unknown properties,
//! triggers, JSONPaths, Rhai, statuses, duplicates). Across files: one file per object, then the
//! test cases (which may reference records of both objects). The rule set is returned only when
//! no error was found; warnings do not block it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::catalog::{HubSpotCatalog, Property, suggest};
use super::config::Config;
use super::diag::{Code, Diagnostic, Report};
use super::lenient::Lenient;
use super::raw::{self, PropertyType, RuleFile};
use super::schema::{self, FileKind};
use super::set::{
    Code as Checked_, DedupKey, Expected, FieldPath, Mapping, ObjectRules, RuleSet, StatusMap,
    TestCase,
};
use super::yaml::{self, SpanIndex, push_pointer};
use crate::expr::{CompileErrorKind, Expr, RecordValue, Vars};
use crate::model::accelo::{self, accelo_field};
use crate::model::{Direction, Link, Object, Record, System};

/// The default config file.
pub const DEFAULT_CONFIG: &str = "rules/tandem.yaml";
/// The environment variable that overrides the default config file.
pub const CONFIG_ENV: &str = "TANDEM_CONFIG";

/// Where the config file and the rule files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The config file.
    pub config: PathBuf,
    /// The directory whose `*.yaml`/`*.yml` files (except the config) are rule files.
    pub rules_dir: PathBuf,
}

impl Paths {
    /// `--config` (else `$TANDEM_CONFIG`, else `rules/tandem.yaml`) and `--rules` (else the
    /// config file's directory).
    pub fn resolve(config: Option<PathBuf>, rules: Option<PathBuf>) -> Paths {
        Paths::resolve_with(config, rules, |k| std::env::var(k).ok())
    }

    /// [`Paths::resolve`] with an explicit environment (for tests).
    pub fn resolve_with(
        config: Option<PathBuf>,
        rules: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Paths {
        let config = config
            .or_else(|| env(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let rules_dir = rules.unwrap_or_else(|| match config.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        });
        Paths { config, rules_dir }
    }

    /// The rule files, sorted by name.
    pub fn rule_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let config_canon = std::fs::canonicalize(&self.config).ok();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.rules_dir)? {
            let path = entry?.path();
            let is_yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if !is_yaml || !path.is_file() {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if stem == "tandem" {
                continue;
            }
            if config_canon.is_some() && std::fs::canonicalize(&path).ok() == config_canon {
                continue;
            }
            out.push(path);
        }
        out.sort();
        Ok(out)
    }
}

/// One file's text and display name.
#[derive(Debug, Clone)]
pub struct Source {
    /// As displayed in diagnostics.
    pub name: String,
    /// Content.
    pub text: Arc<str>,
}

/// The outcome of a check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The config, when it was readable and structurally valid.
    pub config: Option<Config>,
    /// The rules, when there was no error at all.
    pub rules: Option<RuleSet>,
    /// Every problem found.
    pub report: Report,
}

impl Checked {
    /// True when config and rules are both usable.
    pub fn is_ok(&self) -> bool {
        !self.report.has_errors() && self.config.is_some() && self.rules.is_some()
    }
}

/// Reads and checks the config file and every rule file under `paths`.
pub fn check(paths: &Paths) -> Checked {
    let mut report = Report::new();
    let config_name = display(&paths.config);
    let config = match std::fs::read_to_string(&paths.config) {
        Ok(text) => Some(Source {
            name: config_name,
            text: Arc::from(text),
        }),
        Err(e) => {
            report.push(Diagnostic::whole(
                Code::Unreadable,
                &config_name,
                format!("cannot read the config file: {}", io_reason(&e)),
            ));
            None
        }
    };
    let dir_name = display(&paths.rules_dir);
    let mut sources = Vec::new();
    match paths.rule_files() {
        Ok(files) => {
            for f in files {
                let name = display(&f);
                match std::fs::read_to_string(&f) {
                    Ok(text) => sources.push(Source {
                        name,
                        text: Arc::from(text),
                    }),
                    Err(e) => report.push(Diagnostic::whole(
                        Code::Unreadable,
                        &name,
                        format!("cannot read the rule file: {}", io_reason(&e)),
                    )),
                }
            }
        }
        Err(e) => report.push(Diagnostic::whole(
            Code::Unreadable,
            &dir_name,
            format!("cannot read the rules directory: {}", io_reason(&e)),
        )),
    }
    let mut checked = check_sources(config.as_ref(), &sources, &dir_name);
    report.extend(checked.report);
    report.sort();
    checked.report = report;
    if checked.report.has_errors() {
        checked.rules = None;
    }
    checked
}

/// Reads and checks only the config file (for commands that need no rules, e.g. `tandem log`
/// reading `store.url`). `Err` holds every problem.
pub fn check_config_file(path: &Path) -> Result<Config, Report> {
    let name = display(path);
    let mut report = Report::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.push(Diagnostic::whole(
                Code::Unreadable,
                &name,
                format!("cannot read the config file: {}", io_reason(&e)),
            ));
            return Err(report);
        }
    };
    let src = Source {
        name,
        text: Arc::from(text),
    };
    let config = check_config(&src, &mut report);
    report.sort();
    match config {
        Some(c) if !report.has_errors() => Ok(c),
        _ => Err(report),
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::InvalidData => "not UTF-8 text".into(),
        _ => e.to_string().to_lowercase(),
    }
}

/// Checks already-read sources (no file system access; what tests and the fuzz test call).
/// `rules_dir` names the directory in whole-set diagnostics.
pub fn check_sources(config: Option<&Source>, rules: &[Source], rules_dir: &str) -> Checked {
    let mut report = Report::new();
    let config = config.and_then(|c| check_config(c, &mut report));

    let mut files: Vec<FileState> = Vec::new();
    let mut objects: BTreeMap<Object, ObjectRules> = BTreeMap::new();
    let mut first_file: HashMap<Object, String> = HashMap::new();
    for src in rules {
        let Some(mut state) = load(src, FileKind::Rules, &mut report) else {
            continue;
        };
        let Some(rules) = state.check_rule_file(&mut report) else {
            continue;
        };
        let object = rules.object;
        if let Some(first) = first_file.get(&object) {
            report.push(
                Diagnostic::new(
                    Code::DuplicateObject,
                    &src.name,
                    state.val("/object"),
                    format!("`{object}` is already described by `{first}`"),
                )
                .help("keep one rule file per object"),
            );
            continue;
        }
        first_file.insert(object, src.name.clone());
        objects.insert(object, rules);
        files.push(state);
    }
    if rules.is_empty() {
        report.push(Diagnostic::whole(
            Code::Unreadable,
            rules_dir,
            "no rule files (`*.yaml`) found",
        ));
    } else if !objects.is_empty() {
        for o in Object::ALL {
            if !objects.contains_key(&o) && !first_file.contains_key(&o) {
                report.push(Diagnostic::whole(
                    Code::MissingObject,
                    rules_dir,
                    format!("no rule file for `{o}`: {} will not sync", o.plural()),
                ));
            }
        }
    }
    // Test cases, now that every object's rules are known.
    for state in &mut files {
        let tests = std::mem::take(&mut state.raw_tests);
        let object = state.object;
        let mut cases = Vec::new();
        for (i, t) in tests {
            if let Some(case) = state.check_test(i, t, &objects, &mut report) {
                cases.push(case);
            }
        }
        if let Some(o) = objects.get_mut(&object) {
            o.tests = cases;
        }
    }

    report.sort();
    let rules = if report.has_errors() {
        None
    } else {
        let hash = rules_hash(&files);
        Some(RuleSet { objects, hash })
    };
    Checked {
        config,
        rules,
        report,
    }
}

/// sha256 over the canonical JSON (sorted keys) of every rule file, in object order.
fn rules_hash(files: &[FileState]) -> String {
    let mut sorted: Vec<&FileState> = files.iter().collect();
    sorted.sort_by_key(|f| f.object);
    let mut h = Sha256::new();
    for f in sorted {
        let s = crate::model::canonical_json(&f.value);
        h.update(f.object.as_str().as_bytes());
        h.update([0u8]);
        h.update(s.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// One side's view for checking expressions: which record `record` is, and a sample of it.
struct Side<'c> {
    system: System,
    object: Object,
    cat: &'c HubSpotCatalog,
    sample: &'c RecordValue,
}

/// A parsed file with its spans.
struct FileState {
    name: String,
    src: Arc<str>,
    value: Value,
    index: SpanIndex,
    object: Object,
    raw_tests: Vec<(usize, raw::TestCase)>,
}

fn load(src: &Source, kind: FileKind, report: &mut Report) -> Option<FileState> {
    report.add_source(&src.name, src.text.clone());
    let doc = yaml::parse(&src.text);
    for e in &doc.errors {
        let d = match &e.kind {
            yaml::YamlErrorKind::DuplicateKey { first } => {
                Diagnostic::new(Code::DuplicateKey, &src.name, e.span.clone(), &e.message)
                    .related(first.clone(), "first defined here")
            }
            _ => Diagnostic::new(Code::YamlSyntax, &src.name, e.span.clone(), &e.message),
        };
        report.push(d);
    }
    let value = doc.value?;
    schema::validate(kind, &src.name, &src.text, &value, &doc.index, report);
    Some(FileState {
        name: src.name.clone(),
        src: src.text.clone(),
        value,
        index: doc.index,
        object: Object::Company,
        raw_tests: Vec::new(),
    })
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_config(src: &Source, report: &mut Report) -> Option<Config> {
    let state = load(src, FileKind::Config, report)?;
    let config: Config = serde_json::from_value(state.value.clone()).ok()?;
    let name = src.name.as_str();
    let push = |report: &mut Report, ptr: &str, msg: String, help: Option<&str>| {
        let mut d = Diagnostic::new(Code::InvalidConfig, name, state.val(ptr), msg);
        if let Some(h) = help {
            d = d.help(h);
        }
        report.push(d);
    };
    // HubSpot auth: exactly one of token_env / oauth.
    match (&config.hubspot.token_env, &config.hubspot.oauth) {
        (Some(_), Some(_)) => push(
            report,
            "/hubspot/oauth",
            "set either `token_env` or `oauth`, not both".into(),
            Some("`token_env` is for a private app, `oauth` for a public app"),
        ),
        (None, None) => push(
            report,
            "/hubspot",
            "HubSpot authentication is not configured".into(),
            Some("set `hubspot.token_env` (private app) or `hubspot.oauth`"),
        ),
        _ => {}
    }
    for (ptr, url, what) in [
        ("/hubspot/url", &config.hubspot.url, "hubspot.url"),
        ("/accelo/url", &config.accelo.url, "accelo.url"),
    ] {
        let ok = url::Url::parse(url)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .unwrap_or(false);
        if !ok {
            push(
                report,
                ptr,
                format!("`{what}` must be an http(s) URL, found `{url}`"),
                None,
            );
        }
    }
    if let Some(url) = &config.server.public_url {
        let ok = url::Url::parse(url)
            .map(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            })
            .unwrap_or(false);
        if !ok {
            push(
                report,
                "/server/public_url",
                format!(
                    "`server.public_url` must be an http(s) base URL without query, found `{url}`"
                ),
                Some("the scheme and host HubSpot calls, e.g. `https://sync.example.com`"),
            );
        }
    }
    let store = &config.store.url;
    if store.trim().is_empty() {
        push(report, "/store/url", "`store.url` is empty".into(), None);
    } else if (store.starts_with("postgres://") || store.starts_with("postgresql://"))
        && url::Url::parse(store).is_err()
    {
        push(
            report,
            "/store/url",
            "`store.url` is not a valid PostgreSQL URL".into(),
            None,
        );
    }
    if !valid_host_port(&config.server.listen) {
        push(
            report,
            "/server/listen",
            format!(
                "`server.listen` must be `address:port`, found `{}`",
                config.server.listen
            ),
            None,
        );
    }
    if let Some(email) = &config.notify.email {
        if !valid_host_port(&email.server) {
            push(
                report,
                "/notify/email/server",
                format!(
                    "`notify.email.server` must be `host:port`, found `{}`",
                    email.server
                ),
                None,
            );
        }
        if crate::expr::helpers::email(&email.from).is_none() {
            push(
                report,
                "/notify/email/from",
                format!("`{}` is not an email address", email.from),
                None,
            );
        }
        if email.to.is_empty() {
            push(
                report,
                "/notify/email/to",
                "`notify.email.to` lists no recipient".into(),
                None,
            );
        }
        for (i, to) in email.to.iter().enumerate() {
            if crate::expr::helpers::email(to).is_none() {
                push(
                    report,
                    &format!("/notify/email/to/{i}"),
                    format!("`{to}` is not an email address"),
                    None,
                );
            }
        }
    }
    if config.sync.poll_interval_seconds == 0 {
        push(
            report,
            "/sync/poll_interval_seconds",
            "`sync.poll_interval_seconds` must be at least 1".into(),
            None,
        );
    }
    if !(1..=64).contains(&config.sync.accelo_concurrency) {
        push(
            report,
            "/sync/accelo_concurrency",
            "`sync.accelo_concurrency` must be between 1 and 64".into(),
            None,
        );
    }
    // Environment-variable names. The value is never echoed: it may be a pasted secret.
    let mut env_names: Vec<(String, &str)> = Vec::new();
    if let Some(t) = &config.hubspot.token_env {
        env_names.push(("/hubspot/token_env".into(), t));
    }
    if let Some(o) = &config.hubspot.oauth {
        env_names.push((
            "/hubspot/oauth/client_secret_env".into(),
            &o.client_secret_env,
        ));
        env_names.push((
            "/hubspot/oauth/refresh_token_env".into(),
            &o.refresh_token_env,
        ));
    }
    env_names.push((
        "/accelo/client_secret_env".into(),
        &config.accelo.client_secret_env,
    ));
    if let Some(w) = &config.server.webhook_secret_env {
        env_names.push(("/server/webhook_secret_env".into(), w));
    }
    if let Some(w) = &config.server.accelo_webhook_secret_env {
        env_names.push(("/server/accelo_webhook_secret_env".into(), w));
    }
    if let Some(e) = &config.notify.email {
        if let Some(u) = &e.username_env {
            env_names.push(("/notify/email/username_env".into(), u));
        }
        if let Some(p) = &e.password_env {
            env_names.push(("/notify/email/password_env".into(), p));
        }
    }
    for (ptr, v) in env_names {
        // A key that is not in the file is the schema's to report (E005), not a pasted value.
        if state.index.get(&ptr).is_none() {
            continue;
        }
        if !is_env_name(v) {
            let key = ptr.rsplit('/').next().unwrap_or("");
            // The value may be the secret itself: mask it in every rendering, and quote no
            // snippet for this diagnostic.
            let span = state.val(&ptr);
            report.redact(name, state.index.value_span(&ptr));
            report.push(
                Diagnostic::new(
                    Code::InvalidConfig,
                    name,
                    span,
                    format!(
                        "`{key}` must name an environment variable (letters, digits and `_`), \
                         not hold a value"
                    ),
                )
                .without_snippet()
                .help("put the secret in the environment and write the variable's name here"),
            );
        }
    }
    Some(config)
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The field paths an expression reads from `record` (`record.a.b`, `record?.a`,
/// `record["a"]`), each segment with its character index in `src`. Method calls
/// (`record.name.to_lower()`) end a path. String and character literals and comments (`//`,
/// nested `/* */`) are skipped — except the code inside a back-tick string's `${…}`
/// interpolations, which is read like the rest.
fn record_paths(src: &str) -> Vec<Vec<(String, usize)>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    scan_code(&chars, 0, false, &mut out);
    out
}

/// Scans code from `i` to the end, or — `interpolation` — to the `}` closing a `${`; returns
/// the index after where it stopped.
fn scan_code(
    chars: &[char],
    mut i: usize,
    interpolation: bool,
    out: &mut Vec<Vec<(String, usize)>>,
) -> usize {
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let skip_ws = |mut i: usize| {
        while at(i).is_whitespace() {
            i += 1;
        }
        i
    };
    let mut depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                // Rhai escapes with `\`; a doubled quote is two literals for this purpose.
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            '`' => {
                i = scan_backtick(chars, i + 1, out);
                continue;
            }
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if at(i + 1) == '*' => {
                let mut nesting = 0usize;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        nesting += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        nesting -= 1;
                        i += 2;
                        if nesting == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            '{' => depth += 1,
            '}' if depth == 0 && interpolation => return i + 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if !ident_start(c) || (i > 0 && (ident_char(chars[i - 1]) || chars[i - 1] == '.')) {
            i += 1;
            continue;
        }
        let start = i;
        while ident_char(at(i)) {
            i += 1;
        }
        if chars[start..i].iter().collect::<String>() != "record" {
            continue;
        }
        let mut segs = Vec::new();
        loop {
            let mut j = skip_ws(i);
            if at(j) == '?' && at(j + 1) == '.' {
                j += 2;
            } else if at(j) == '.' {
                j += 1;
            } else if at(j) == '[' && segs.is_empty() {
                let k = skip_ws(j + 1);
                if at(k) != '"' {
                    break;
                }
                let name_start = k + 1;
                let mut e = name_start;
                while e < chars.len() && chars[e] != '"' {
                    e += 1;
                }
                segs.push((chars[name_start..e].iter().collect(), name_start));
                i = e + 1;
                break;
            } else {
                break;
            }
            j = skip_ws(j);
            if !ident_start(at(j)) {
                break;
            }
            let s0 = j;
            while ident_char(at(j)) {
                j += 1;
            }
            if at(skip_ws(j)) == '(' {
                break;
            }
            segs.push((chars[s0..j].iter().collect(), s0));
            i = j;
        }
        if !segs.is_empty() {
            out.push(segs);
        }
    }
    i
}

/// Skips a back-tick string from `i` (after its opening back-tick), scanning the code of its
/// `${…}` interpolations; returns the index after the closing back-tick. Back-tick strings
/// have no escapes except a doubled back-tick and `\${` (a literal `${`).
fn scan_backtick(chars: &[char], mut i: usize, out: &mut Vec<Vec<(String, usize)>>) -> usize {
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        match chars[i] {
            '`' if at(i + 1) == '`' => i += 2,
            '`' => return i + 1,
            '\\' if at(i + 1) == '$' => i += 2,
            '$' if at(i + 1) == '{' => i = scan_code(chars, i + 2, true, out),
            _ => i += 1,
        }
    }
    i
}

/// Index of the character of `text` that contains byte `offset` (the character count for an
/// offset at or past the end).
fn char_index_of_byte(text: &str, offset: usize) -> usize {
    text.char_indices()
        .take_while(|(b, c)| b + c.len_utf8() <= offset)
        .count()
}

/// Index of the character at 1-based (`line`, `column`) of `text`.
fn char_index(text: &str, line: usize, column: usize) -> usize {
    let mut idx = 0;
    let mut cur_line = 1;
    let mut chars = text.chars();
    while cur_line < line {
        match chars.next() {
            Some('\n') => {
                cur_line += 1;
                idx += 1;
            }
            Some(_) => idx += 1,
            None => return idx,
        }
    }
    idx + column.saturating_sub(1)
}

impl FileState {
    /// Span of the value at `ptr`, limited to its first line.
    /// A mapping or list with a key is pointed at by its key.
    fn val(&self, ptr: &str) -> Range<usize> {
        if let Some(yaml::Node {
            key: Some(k),
            style: yaml::Style::Collection,
            ..
        }) = self.index.get(ptr)
        {
            return k.clone();
        }
        let r = self.index.value_span(ptr);
        let start = r.start.min(self.src.len());
        let end = r.end.min(self.src.len()).max(start);
        match self.src[start..end].find('\n') {
            Some(i) => start..start + i,
            None => start..end,
        }
    }

    /// Span of the key naming `ptr` (or its value).
    fn key(&self, ptr: &str) -> Range<usize> {
        self.index.key_span(ptr)
    }

    fn diag(&self, code: Code, span: Range<usize>, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, &self.name, span, msg)
    }

    /// The source span of the character at (`line`, `column`) of the expression at `ptr`.
    fn expr_span(&self, ptr: &str, text: &str, line: usize, column: usize) -> Range<usize> {
        self.expr_span_len(ptr, text, char_index(text, line, column), 1)
    }

    /// The source span of `len` characters from character `idx` of the expression at `ptr`.
    fn expr_span_len(&self, ptr: &str, text: &str, idx: usize, len: usize) -> Range<usize> {
        let Some(node) = self.index.get(ptr) else {
            return self.val(ptr);
        };
        let offsets = yaml::scalar_offsets(&self.src, node, text);
        let last = offsets.len().saturating_sub(1);
        let at = offsets
            .get(idx.min(last))
            .copied()
            .unwrap_or(node.value.start);
        let end_idx = (idx + len.max(1) - 1).min(last);
        let end_at = offsets.get(end_idx).copied().unwrap_or(at).max(at);
        let width = self.src[end_at.min(self.src.len())..]
            .chars()
            .next()
            .map_or(0, char::len_utf8);
        at..end_at + width
    }

    /// Reports `record.x` paths that name no field of the record: a HubSpot property that the
    /// object does not have, or an Accelo field that its record does not have.
    fn check_record_paths(
        &self,
        ptr: &str,
        text: &str,
        system: System,
        object: Object,
        cat: &HubSpotCatalog,
        report: &mut Report,
    ) -> bool {
        let mut ok = true;
        for path in record_paths(text) {
            match system {
                System::HubSpot => {
                    let Some((name, idx)) = path.first() else {
                        continue;
                    };
                    if cat.get(name).is_none() {
                        ok = false;
                        let span = self.expr_span_len(ptr, text, *idx, name.chars().count());
                        let d = self
                            .diag(
                                Code::UnknownProperty,
                                span,
                                format!("unknown HubSpot {object} property `{name}`"),
                            )
                            .label("`record` here is a HubSpot record");
                        report.push(match suggest(name, cat.names()) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None => d.help(
                                "declare the portal's custom properties under `custom_properties`",
                            ),
                        });
                    }
                }
                System::Accelo => {
                    let mut dotted = String::new();
                    for (name, idx) in &path {
                        if !dotted.is_empty() {
                            dotted.push('.');
                        }
                        dotted.push_str(name);
                        match accelo_field(object, &dotted) {
                            Some(f) if f.object => continue,
                            Some(_) => break,
                            None => {
                                ok = false;
                                let span =
                                    self.expr_span_len(ptr, text, *idx, name.chars().count());
                                let mut d = self
                                    .diag(
                                        Code::UnknownAcceloField,
                                        span,
                                        format!("unknown Accelo {object} field `{dotted}`"),
                                    )
                                    .label("`record` here is an Accelo record");
                                if let Some(s) = suggest(
                                    &dotted,
                                    accelo::accelo_fields(object).iter().map(|f| f.path),
                                ) {
                                    d = d.help(format!("did you mean `record.{s}`?"));
                                }
                                report.push(d);
                                break;
                            }
                        }
                    }
                }
            }
        }
        ok
    }

    /// Compiles the expression at `ptr`; on success probes it for unknown functions against
    /// `sample`.
    fn expr(
        &self,
        ptr: &str,
        text: &str,
        vars: Vars,
        side: &Side<'_>,
        report: &mut Report,
    ) -> Option<Checked_> {
        match Expr::compile(text, vars) {
            Ok(e) => {
                if !self.check_record_paths(ptr, text, side.system, side.object, side.cat, report) {
                    return None;
                }
                if let Some(err) = e.probe_functions(side.sample) {
                    let span = match (err.line, err.column) {
                        (Some(l), Some(c)) => self.expr_span(ptr, text, l, c),
                        _ => self.val(ptr),
                    };
                    let msg = err
                        .message
                        .split(" (line ")
                        .next()
                        .unwrap_or(&err.message)
                        .to_string();
                    report.push(
                        self.diag(Code::UnknownFunction, span, msg)
                            .label("not defined for these arguments")
                            .help(
                                "helpers: domain, normalize_name, email, digits, lower, upper, \
                                 trim, first, blank, present, url (see docs/rules.md)",
                            ),
                    );
                    return None;
                }
                // Valid: compiling it for the program is `crate::compile`'s job.
                Some(Checked_ {
                    source: text.to_string(),
                    vars,
                })
            }
            Err(err) => {
                let span = self.expr_span(ptr, text, err.line, err.column);
                let d = match &err.kind {
                    CompileErrorKind::UndefinedVariable(_) => self
                        .diag(Code::UndefinedVariable, span, err.message.clone())
                        .label("not defined here"),
                    CompileErrorKind::Syntax => self
                        .diag(Code::RhaiSyntax, span, format!("rhai: {}", err.message))
                        .label("here"),
                };
                report.push(d);
                None
            }
        }
    }

    fn check_rule_file(&mut self, report: &mut Report) -> Option<ObjectRules> {
        let file: RuleFile = serde_json::from_value(self.value.clone()).ok()?;
        let object: Object = (*file.object.get()?).into();
        self.object = object;

        // Catalogue: standard + custom properties.
        let mut cat = HubSpotCatalog::standard(object);
        for (i, c) in items(&file.custom_properties) {
            let ptr = format!("/custom_properties/{i}/name");
            if HubSpotCatalog::is_standard(object, &c.name) {
                report.push(
                    self.diag(
                        Code::ShadowedProperty,
                        self.val(&ptr),
                        format!(
                            "`{}` is a standard {object} property; this declaration replaces it",
                            c.name
                        ),
                    )
                    .help("declare a standard property only to change its options (custom values)"),
                );
            }
            let p = Property {
                name: c.name.clone(),
                kind: c.r#type,
                read_only: c.read_only,
                options: c.options.clone(),
                custom: true,
            };
            cat.declare(p);
        }
        let names: Vec<String> = cat.names().map(str::to_string).collect();
        let hs_sample = RecordValue::sample(System::HubSpot, object, &names);
        let ac_sample = RecordValue::sample(System::Accelo, object, &[]);
        let hs_side = Side {
            system: System::HubSpot,
            object,
            cat: &cat,
            sample: &hs_sample,
        };
        let ac_side = Side {
            system: System::Accelo,
            object,
            cat: &cat,
            sample: &ac_sample,
        };

        // requires_company
        if file.requires_company.is_present() && object == Object::Company {
            report.push(
                self.diag(
                    Code::MisplacedOption,
                    self.key("/requires_company"),
                    "`requires_company` applies to contacts only",
                )
                .help("remove it from the company rules"),
            );
        }
        let requires_company =
            object == Object::Contact && file.requires_company.get().copied().unwrap_or(true);

        // triggers
        let mut triggers = BTreeSet::new();
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        for (i, t) in items(&file.triggers) {
            let ptr = format!("/triggers/{i}");
            let span = self.val(&ptr);
            if let Some(first) = seen.get(t) {
                report.push(
                    self.diag(
                        Code::DuplicateTrigger,
                        span,
                        format!("trigger `{t}` is listed twice"),
                    )
                    .related(first.clone(), "first listed here"),
                );
                continue;
            }
            seen.insert(t.clone(), span.clone());
            if t == "created" {
                triggers.insert(t.clone());
                continue;
            }
            match cat.get(t) {
                None => {
                    let mut d = self
                        .diag(Code::UnknownTrigger, span, format!("unknown trigger `{t}`"))
                        .label(format!("not a HubSpot {object} property"));
                    d = match suggest(t, cat.names().chain(["created"])) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help(
                            "a trigger is `created` or the internal name of a standard property",
                        ),
                    };
                    report.push(d);
                }
                Some(p) => {
                    if p.custom {
                        report.push(
                            self.diag(
                                Code::CustomTrigger,
                                span,
                                format!(
                                    "`{t}` is a custom property: HubSpot sends no webhook when it \
                                     changes"
                                ),
                            )
                            .help("polling still picks up its changes (B16)"),
                        );
                    }
                    triggers.insert(t.clone());
                }
            }
        }

        // criteria
        let mut criteria_pull = None;
        let mut criteria_push = None;
        if let Some(c) = file.criteria.get() {
            if let Some(src) = &c.pull {
                criteria_pull = self.expr("/criteria/pull", src, Vars::Record, &hs_side, report);
            }
            if let Some(src) = &c.push {
                criteria_push = self.expr("/criteria/push", src, Vars::Record, &ac_side, report);
            }
        }

        // dedup keys
        let mut dedup = Vec::new();
        let mut dedup_names: HashMap<String, Range<usize>> = HashMap::new();
        for (i, k) in items(&file.dedup) {
            let name_ptr = format!("/dedup/{i}/name");
            if let Some(first) = dedup_names.get(&k.name) {
                report.push(
                    self.diag(
                        Code::MappedTwice,
                        self.val(&name_ptr),
                        format!("dedup key `{}` is defined twice", k.name),
                    )
                    .related(first.clone(), "first defined here"),
                );
            } else {
                dedup_names.insert(k.name.clone(), self.val(&name_ptr));
            }
            let h = self.expr(
                &format!("/dedup/{i}/hubspot"),
                &k.hubspot,
                Vars::Record,
                &hs_side,
                report,
            );
            let a = self.expr(
                &format!("/dedup/{i}/accelo"),
                &k.accelo,
                Vars::Record,
                &ac_side,
                report,
            );
            if let (Some(hubspot), Some(accelo)) = (h, a) {
                dedup.push(DedupKey {
                    name: k.name.clone(),
                    hubspot,
                    accelo,
                });
            }
        }

        // fields
        let mut mappings = Vec::new();
        let mut names_seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut hs_written: HashMap<String, Range<usize>> = HashMap::new();
        let mut ac_written: HashMap<String, Range<usize>> = HashMap::new();
        for (i, m) in items(&file.fields) {
            let base = format!("/fields/{i}");
            let hs_ptr = format!("{base}/hubspot");
            let ac_ptr = format!("{base}/accelo");
            let name = m.name.clone().unwrap_or_else(|| m.hubspot.clone());
            let name_span = if m.name.is_some() {
                self.val(&format!("{base}/name"))
            } else {
                self.val(&hs_ptr)
            };
            if let Some(first) = names_seen.get(&name) {
                report.push(
                    self.diag(
                        Code::MappedTwice,
                        name_span.clone(),
                        format!("field `{name}` is mapped twice"),
                    )
                    .related(first.clone(), "first mapped here")
                    .help("give one of the mappings a distinct `name`"),
                );
            } else {
                names_seen.insert(name.clone(), name_span);
            }
            let mut ok = true;
            let pushes = m.direction.flows(Direction::Push);
            let pulls = m.direction.flows(Direction::Pull);
            // HubSpot side.
            match cat.get(&m.hubspot) {
                None => {
                    ok = false;
                    report.push(self.unknown_property(&hs_ptr, &m.hubspot, object, &cat));
                }
                Some(p) => {
                    if pushes && p.read_only {
                        ok = false;
                        report.push(
                            self.diag(
                                Code::ReadOnlyProperty,
                                self.val(&hs_ptr),
                                format!(
                                    "HubSpot property `{}` is read-only and cannot be written",
                                    m.hubspot
                                ),
                            )
                            .help("set `direction: pull` to only read it"),
                        );
                    }
                }
            }
            if pushes {
                if let Some(first) = hs_written.get(&m.hubspot) {
                    report.push(
                        self.diag(
                            Code::MappedTwice,
                            self.val(&hs_ptr),
                            format!(
                                "HubSpot property `{}` is written by two mappings",
                                m.hubspot
                            ),
                        )
                        .related(first.clone(), "also written here")
                        .help("make one of them `direction: pull` or `none`"),
                    );
                } else {
                    hs_written.insert(m.hubspot.clone(), self.val(&hs_ptr));
                }
            }
            // Accelo side.
            let accelo = self.accelo_path(&ac_ptr, &m.accelo, object, pulls, report);
            if accelo.is_none() {
                ok = false;
            }
            if let (Some(p), true) = (&accelo, pulls)
                && let Some(key) = &p.write_key
            {
                if let Some(first) = ac_written.get(key) {
                    report.push(
                        self.diag(
                            Code::MappedTwice,
                            self.val(&ac_ptr),
                            format!("Accelo field `{key}` is written by two mappings"),
                        )
                        .related(first.clone(), "also written here")
                        .help("make one of them `direction: push` or `none`"),
                    );
                } else {
                    ac_written.insert(key.clone(), self.val(&ac_ptr));
                }
            }
            let tp = m.transform.pull.as_ref().and_then(|src| {
                self.expr(
                    &format!("{base}/transform/pull"),
                    src,
                    Vars::RecordAndValue,
                    &hs_side,
                    report,
                )
                .or_else(|| {
                    ok = false;
                    None
                })
            });
            let tq = m.transform.push.as_ref().and_then(|src| {
                self.expr(
                    &format!("{base}/transform/push"),
                    src,
                    Vars::RecordAndValue,
                    &ac_side,
                    report,
                )
            });
            if m.transform.push.is_some() && tq.is_none() {
                ok = false;
            }
            if let (true, Some(accelo)) = (ok, accelo) {
                mappings.push(Mapping {
                    name,
                    hubspot: m.hubspot.clone(),
                    accelo,
                    direction: m.direction,
                    transform_pull: tp,
                    transform_push: tq,
                    precedence: m.precedence,
                    blank: m.blank,
                });
            }
        }

        // accelo statuses + status tables
        let accelo_statuses: Vec<String> = items(&file.accelo_statuses)
            .map(|(_, s)| s.clone())
            .collect();
        let status = file.status.get().and_then(|s| {
            self.check_status(s, object, &cat, &accelo_statuses, &hs_written, report)
        });

        // read properties
        let mut read_properties: BTreeSet<String> =
            mappings.iter().map(|m| m.hubspot.clone()).collect();
        if let Some(s) = &status {
            read_properties.insert(s.hubspot.clone());
        }
        let mut pull_exprs: Vec<&Checked_> = Vec::new();
        pull_exprs.extend(criteria_pull.as_ref());
        pull_exprs.extend(dedup.iter().map(|d| &d.hubspot));
        pull_exprs.extend(mappings.iter().filter_map(|m| m.transform_pull.as_ref()));
        for e in pull_exprs {
            for path in record_paths(&e.source) {
                if let Some((first, _)) = path.first()
                    && cat.get(first).is_some()
                {
                    read_properties.insert(first.clone());
                }
            }
        }

        self.raw_tests = items(&file.tests).map(|(i, t)| (i, t.clone())).collect();

        Some(ObjectRules {
            object,
            file: self.name.clone(),
            requires_company,
            triggers,
            properties: cat
                .names()
                .filter_map(|n| cat.get(n).map(|p| (n.to_string(), p.clone())))
                .collect(),
            criteria_pull,
            criteria_push,
            dedup,
            mappings,
            status,
            accelo_statuses,
            tests: Vec::new(),
            read_properties,
        })
    }

    fn unknown_property(
        &self,
        ptr: &str,
        name: &str,
        object: Object,
        cat: &HubSpotCatalog,
    ) -> Diagnostic {
        let d = self
            .diag(
                Code::UnknownProperty,
                self.val(ptr),
                format!("unknown HubSpot {object} property `{name}`"),
            )
            .label(format!("not a {object} property"));
        match suggest(name, cat.names()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help("declare the portal's custom properties under `custom_properties`"),
        }
    }

    /// Parses and classifies an Accelo JSONPath; `None` when an error was reported.
    fn accelo_path(
        &self,
        ptr: &str,
        text: &str,
        object: Object,
        written: bool,
        report: &mut Report,
    ) -> Option<FieldPath> {
        let mut path = FieldPath {
            source: text.to_string(),
            write_key: None,
        };
        match serde_json_path::JsonPath::parse(text) {
            Ok(_) => {}
            Err(e) => {
                // serde_json_path reports a 0-based byte offset into the path (its docs say
                // "1-indexed"; the parser computes `input.offset(rest)`).
                let idx = char_index_of_byte(text, e.position());
                let span = self.expr_span_len(ptr, text, idx, 1);
                report.push(
                    self.diag(
                        Code::JsonPathSyntax,
                        span,
                        format!("invalid JSONPath `{text}`: {}", e.message()),
                    )
                    .help("Accelo fields are written like `$.name` or `$.affiliation.email`"),
                );
                return None;
            }
        };
        let fields = accelo::accelo_fields(object);
        match accelo::name_segments(text).map(|s| s.join(".")) {
            Some(dotted) => match accelo_field(object, &dotted) {
                None => {
                    let mut d = self
                        .diag(
                            Code::UnknownAcceloField,
                            self.val(ptr),
                            format!("unknown Accelo {object} field `{dotted}`"),
                        )
                        .label(format!("not in the Accelo {object} record"));
                    if let Some(s) = suggest(&dotted, fields.iter().map(|f| f.path)) {
                        d = d.help(format!("did you mean `$.{s}`?"));
                    }
                    report.push(d);
                    return None;
                }
                Some(f) => {
                    if f.writable {
                        path.write_key = Some(dotted.clone());
                    } else if written {
                        let help = if dotted.starts_with("status") {
                            "map statuses in the `status:` section".to_string()
                        } else if f.object {
                            format!("map a field inside it, e.g. `$.{dotted}.…`")
                        } else {
                            "set `direction: push` to only read it".to_string()
                        };
                        report.push(
                            self.diag(
                                Code::UnwritableAcceloPath,
                                self.val(ptr),
                                format!("Accelo field `{dotted}` cannot be written"),
                            )
                            .help(help),
                        );
                        return None;
                    }
                }
            },
            None => {
                if written {
                    report.push(
                        self.diag(
                            Code::UnwritableAcceloPath,
                            self.val(ptr),
                            format!("`{text}` selects no single field and cannot be written"),
                        )
                        .help(
                            "only a plain path like `$.postal_address.city` can be written; \
                               set `direction: push` to only read it",
                        ),
                    );
                    return None;
                }
            }
        }
        Some(path)
    }

    fn check_status(
        &self,
        s: &raw::StatusMapping,
        object: Object,
        cat: &HubSpotCatalog,
        accelo_statuses: &[String],
        hs_written: &HashMap<String, Range<usize>>,
        report: &mut Report,
    ) -> Option<StatusMap> {
        let mut ok = true;
        let prop = match cat.get(&s.hubspot) {
            None => {
                report.push(self.unknown_property("/status/hubspot", &s.hubspot, object, cat));
                return None;
            }
            Some(p) => p,
        };
        if s.direction.flows(Direction::Push) {
            if prop.read_only {
                ok = false;
                report.push(self.diag(
                    Code::ReadOnlyProperty,
                    self.val("/status/hubspot"),
                    format!(
                        "HubSpot property `{}` is read-only and cannot be written",
                        s.hubspot
                    ),
                ));
            }
            if let Some(first) = hs_written.get(&s.hubspot) {
                ok = false;
                report.push(
                    self.diag(
                        Code::MappedTwice,
                        self.val("/status/hubspot"),
                        format!(
                            "HubSpot property `{}` is written by a field mapping and the status",
                            s.hubspot
                        ),
                    )
                    .related(first.clone(), "also written here"),
                );
            }
        }
        if prop.kind != PropertyType::Enumeration && prop.options.is_empty() {
            report.push(
                self.diag(
                    Code::UnknownStatusValue,
                    self.val("/status/hubspot"),
                    format!("HubSpot property `{}` is not an enumeration", s.hubspot),
                )
                .help("use `lifecyclestage`, `hs_lead_status` or a custom enumeration"),
            );
            return None;
        }
        let hs_value_ok = |v: &str| prop.options.is_empty() || prop.options.iter().any(|o| o == v);
        let title_ok = |t: &str| accelo_statuses.iter().any(|a| a == t);
        let unknown_title = |span: Range<usize>, t: &str| {
            let mut d = self
                .diag(
                    Code::UnknownStatus,
                    span,
                    format!("unknown Accelo status `{t}`"),
                )
                .label("not in `accelo_statuses`");
            d = if accelo_statuses.is_empty() {
                d.help("list the deployment's status titles in `accelo_statuses`")
            } else if let Some(sug) = suggest(t, accelo_statuses.iter().map(String::as_str)) {
                d.help(format!("did you mean `{sug}`?"))
            } else {
                d.help(format!(
                    "known statuses: {}",
                    accelo_statuses
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            d
        };
        let unknown_value = |span: Range<usize>, v: &str| {
            let mut d = self
                .diag(
                    Code::UnknownStatusValue,
                    span,
                    format!("`{v}` is not a value of HubSpot property `{}`", s.hubspot),
                )
                .label(format!("not a `{}` value", s.hubspot));
            if let Some(sug) = suggest(v, prop.options.iter().map(String::as_str)) {
                d = d.help(format!("did you mean `{sug}`?"));
            }
            d
        };
        for (hs, title) in &s.pull {
            let p = push_pointer("/status/pull", hs);
            if !hs_value_ok(hs) {
                ok = false;
                report.push(unknown_value(self.key(&p), hs));
            }
            if !title_ok(title) {
                ok = false;
                report.push(unknown_title(self.val(&p), title));
            }
        }
        for (title, hs) in &s.push {
            let p = push_pointer("/status/push", title);
            if !title_ok(title) {
                ok = false;
                report.push(unknown_title(self.key(&p), title));
            }
            if !hs_value_ok(hs) {
                ok = false;
                report.push(unknown_value(self.val(&p), hs));
            }
        }
        ok.then(|| StatusMap {
            hubspot: s.hubspot.clone(),
            direction: s.direction,
            pull: s.pull.clone(),
            push: s.push.clone(),
        })
    }

    fn check_test(
        &self,
        i: usize,
        t: raw::TestCase,
        objects: &BTreeMap<Object, ObjectRules>,
        report: &mut Report,
    ) -> Option<TestCase> {
        let base = format!("/tests/{i}");
        let direction: Direction = t.direction.into();
        let mut ok = true;
        let mut records = |list: &[raw::TestRecord], system: System, key: &str| -> Vec<Record> {
            let mut out = Vec::new();
            for (j, r) in list.iter().enumerate() {
                let object: Object = r.object.map_or(self.object, Into::into);
                let rptr = format!("{base}/{key}/{j}/values");
                let mut doc = Map::new();
                for (k, v) in &r.values {
                    let vptr = push_pointer(&rptr, k);
                    match self.test_value(system, object, k, v, objects, &vptr, report) {
                        Some(Some(v)) => {
                            doc.insert(k.clone(), v);
                        }
                        Some(None) => {}
                        None => ok = false,
                    }
                }
                out.push(Record {
                    system,
                    object,
                    id: r.id.0.clone(),
                    doc,
                    updated_at: None,
                    company_id: r.company.as_ref().map(|c| c.0.clone()),
                });
            }
            out
        };
        let hubspot = records(&t.hubspot, System::HubSpot, "hubspot");
        let accelo = records(&t.accelo, System::Accelo, "accelo");
        let links: Vec<Link> = t
            .links
            .iter()
            .map(|l| Link {
                object: l.object.map_or(self.object, Into::into),
                hubspot_id: l.hubspot.0.clone(),
                accelo_id: l.accelo.0.clone(),
                affiliation_id: None,
                last_synced: BTreeMap::new(),
            })
            .collect();
        let sources = match direction.source() {
            System::HubSpot => &hubspot,
            System::Accelo => &accelo,
        };
        let mut expect = Vec::new();
        for (j, e) in t.expect.iter().enumerate() {
            let eptr = format!("{base}/expect/{j}");
            let object: Object = e.object.map_or(self.object, Into::into);
            if !sources
                .iter()
                .any(|r| r.object == object && r.id == e.source.0)
            {
                ok = false;
                report.push(
                    self.diag(
                        Code::UnknownTestRecord,
                        self.val(&format!("{eptr}/source")),
                        format!(
                            "the case has no {} {object} `{}` to sync",
                            direction.source(),
                            e.source.0
                        ),
                    )
                    .help(format!(
                        "a `{direction}` case syncs its `{}` records",
                        direction.source()
                    )),
                );
            }
            let mut changes = None;
            if let Some(c) = &e.changes {
                let known = objects
                    .get(&object)
                    .map(|o| o.target_fields(direction))
                    .unwrap_or_default();
                let mut map = BTreeMap::new();
                for (field, v) in c {
                    if objects.contains_key(&object) && !known.contains(field) {
                        ok = false;
                        let cptr = push_pointer(&format!("{eptr}/changes"), field);
                        let mut d = self
                            .diag(
                                Code::UnknownTestField,
                                self.key(&cptr),
                                format!(
                                    "a `{direction}` of {} writes no {} field `{field}`",
                                    object.plural(),
                                    direction.target(),
                                ),
                            )
                            .label("not written by any mapping");
                        if let Some(s) = suggest(field, known.iter().map(String::as_str)) {
                            d = d.help(format!("did you mean `{s}`?"));
                        }
                        report.push(d);
                    }
                    map.insert(field.clone(), v.0.clone());
                }
                changes = Some(map);
            }
            expect.push(Expected {
                object,
                op: e.op.into(),
                source: e.source.0.clone(),
                target: e.target.as_ref().map(|t| t.0.clone()),
                changes,
                reason: e.reason.clone(),
            });
        }
        ok.then(|| TestCase {
            file: self.name.clone(),
            name: t.name.clone(),
            object: self.object,
            direction,
            initiator: t.initiator.map_or(direction.source(), Into::into),
            bypass_criteria: t.bypass_criteria,
            hubspot,
            accelo,
            links,
            expect,
        })
    }

    /// One value of a test record. `None` = reported error; `Some(None)` = blank (dropped).
    #[allow(clippy::too_many_arguments)]
    fn test_value(
        &self,
        system: System,
        object: Object,
        key: &str,
        v: &Value,
        objects: &BTreeMap<Object, ObjectRules>,
        ptr: &str,
        report: &mut Report,
    ) -> Option<Option<Value>> {
        match system {
            System::HubSpot => {
                let known = match objects.get(&object) {
                    Some(o) => o.properties.contains_key(key),
                    None => HubSpotCatalog::standard(object).get(key).is_some(),
                };
                if !known {
                    let cat = objects.get(&object).map_or_else(
                        || HubSpotCatalog::standard(object),
                        |o| {
                            let mut c = HubSpotCatalog::standard(object);
                            for p in o.properties.values() {
                                c.declare(p.clone());
                            }
                            c
                        },
                    );
                    let mut d = self
                        .diag(
                            Code::UnknownTestField,
                            self.key(ptr),
                            format!("unknown HubSpot {object} property `{key}`"),
                        )
                        .label("not a known property");
                    if let Some(s) = suggest(key, cat.names()) {
                        d = d.help(format!("did you mean `{s}`?"));
                    }
                    report.push(d);
                    return None;
                }
                match v {
                    Value::Null => Some(None),
                    Value::String(s) => Some(Some(Value::String(s.clone()))),
                    Value::Number(n) => Some(Some(Value::String(n.to_string()))),
                    Value::Bool(b) => Some(Some(Value::String(b.to_string()))),
                    _ => {
                        report.push(self.diag(
                            Code::WrongType,
                            self.val(ptr),
                            "HubSpot values are plain text, not lists or mappings",
                        ));
                        None
                    }
                }
            }
            System::Accelo => self.accelo_value(object, key, v, ptr, report),
        }
    }

    fn accelo_value(
        &self,
        object: Object,
        path: &str,
        v: &Value,
        ptr: &str,
        report: &mut Report,
    ) -> Option<Option<Value>> {
        let Some(field) = accelo_field(object, path) else {
            let mut d = self
                .diag(
                    Code::UnknownTestField,
                    self.key(ptr),
                    format!("unknown Accelo {object} field `{path}`"),
                )
                .label("not in the Accelo record");
            if let Some(s) = suggest(path, accelo::accelo_fields(object).iter().map(|f| f.path)) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            report.push(d);
            return None;
        };
        match (v, field.object) {
            (Value::Null, _) => Some(None),
            (Value::Object(m), true) => {
                let mut out = Map::new();
                let mut ok = true;
                for (k, child) in m {
                    let cptr = push_pointer(ptr, k);
                    match self.accelo_value(object, &format!("{path}.{k}"), child, &cptr, report) {
                        Some(Some(c)) => {
                            out.insert(k.clone(), c);
                        }
                        Some(None) => {}
                        None => ok = false,
                    }
                }
                ok.then_some(Some(Value::Object(out)))
            }
            (Value::String(s), false) => Some(Some(Value::String(s.clone()))),
            (Value::Number(n), false) => Some(Some(Value::String(n.to_string()))),
            (Value::Bool(b), false) => Some(Some(Value::String(b.to_string()))),
            (_, true) => {
                report.push(self.diag(
                    Code::WrongType,
                    self.val(ptr),
                    format!("Accelo `{path}` is a mapping of fields"),
                ));
                None
            }
            (_, false) => {
                report.push(self.diag(
                    Code::WrongType,
                    self.val(ptr),
                    format!("Accelo `{path}` is a plain value, not a list or mapping"),
                ));
                None
            }
        }
    }
}

/// The valid entries of a lenient list, with their indexes.
fn items<T>(l: &Lenient<Vec<Lenient<T>>>) -> impl Iterator<Item = (usize, &T)> {
    l.get()
        .into_iter()
        .flat_map(|v| v.iter().enumerate())
        .filter_map(|(i, x)| x.get().map(|x| (i, x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_default_from_env_then_file() {
        let p = Paths::resolve_with(None, None, |_| None);
        assert_eq!(p.config, PathBuf::from("rules/tandem.yaml"));
        assert_eq!(p.rules_dir, PathBuf::from("rules"));
        let p = Paths::resolve_with(None, None, |k| {
            (k == CONFIG_ENV).then(|| "/etc/tandem/tandem.yaml".to_string())
        });
        assert_eq!(p.rules_dir, PathBuf::from("/etc/tandem"));
        let p = Paths::resolve_with(Some("x.yaml".into()), Some("r".into()), |_| None);
        assert_eq!(
            (p.config, p.rules_dir),
            (PathBuf::from("x.yaml"), PathBuf::from("r"))
        );
        let p = Paths::resolve_with(Some("x.yaml".into()), None, |_| None);
        assert_eq!(p.rules_dir, PathBuf::from("."));
    }

    #[test]
    fn config_alone_can_be_loaded() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let c = check_config_file(&repo.join("rules/tandem.yaml")).unwrap();
        assert_eq!(c.store.url, ".tandem/tandem.db");
        assert_eq!(c.hubspot.token_env.as_deref(), Some("HUBSPOT_TOKEN"));
        let e = check_config_file(
            &repo.join("tests/fixtures/rules/invalid/E080_invalid_config/tandem.yaml"),
        )
        .unwrap_err();
        assert!(e.has_errors());
    }

    #[test]
    fn rules_hash_ignores_comments_and_formatting() {
        let config = Source {
            name: "tandem.yaml".into(),
            text: Arc::from(include_str!(
                "../../../tests/fixtures/rules/valid/tandem.yaml"
            )),
        };
        let a = "object: company\nfields:\n  - hubspot: name\n    accelo: $.name\n";
        let b = "# a comment\nobject: company\nfields: [{accelo: '$.name', hubspot: name}]\n";
        let c = "object: company\nfields:\n  - hubspot: phone\n    accelo: $.phone\n";
        let hash = |t: &str| {
            let s = Source {
                name: "companies.yaml".into(),
                text: Arc::from(t),
            };
            check_sources(Some(&config), &[s], "rules")
                .rules
                .unwrap()
                .hash
        };
        assert_eq!(hash(a), hash(b));
        assert_ne!(hash(a), hash(c));
        assert_eq!(hash(a).len(), 64);
    }
}

#[cfg(test)]
mod path_tests {
    use super::{char_index_of_byte, record_paths};

    #[test]
    fn jsonpath_errors_are_byte_offsets() {
        // What serde_json_path reports: the byte offset of the first character it rejects.
        for (path, at) in [
            ("$.web[site", '['),
            ("$.名前[x", '['),
            ("$.ärä[x", '['),
            ("$.a.🎉.b[", '['),
        ] {
            let e = serde_json_path::JsonPath::parse(path).unwrap_err();
            assert_eq!(Some(e.position()), path.find(at), "{path}");
            let idx = char_index_of_byte(path, e.position());
            assert_eq!(path.chars().nth(idx), Some(at), "{path}");
        }
        assert_eq!(char_index_of_byte("aé", 0), 0);
        assert_eq!(char_index_of_byte("aé", 1), 1);
        assert_eq!(char_index_of_byte("aé", 2), 1); // inside `é`
        assert_eq!(char_index_of_byte("aé", 3), 2);
        assert_eq!(char_index_of_byte("aé", 99), 2);
    }

    fn names(src: &str) -> Vec<Vec<String>> {
        record_paths(src)
            .into_iter()
            .map(|p| p.into_iter().map(|(n, _)| n).collect())
            .collect()
    }

    #[test]
    fn finds_field_paths_not_methods_or_strings() {
        assert_eq!(
            names("record.name.to_lower() == \"record.x\" && record?.affiliation.email != ()"),
            vec![
                vec!["name".to_string()],
                vec!["affiliation".into(), "email".into()]
            ]
        );
        assert_eq!(
            names("record[\"name\"] + myrecord.x"),
            vec![vec!["name".to_string()]]
        );
        assert_eq!(
            names("// record.x\nrecord . status . title"),
            vec![vec!["status".to_string(), "title".into()]]
        );
        let p = record_paths("a + record.bc");
        assert_eq!(p[0][0].1, 11);
    }

    #[test]
    fn reads_interpolations_but_not_text() {
        assert_eq!(
            names("`${record.nmae} and ${ if true { `${record.a.b}` } else { \"\" } }` + record.c"),
            vec![
                vec!["nmae".to_string()],
                vec!["a".into(), "b".into()],
                vec!["c".into()]
            ]
        );
        // Text around the interpolations, `\${`, and other literals are not code; a doubled
        // back-tick is one inside the string, which goes on.
        assert_eq!(
            names("`record.x \\${record.y} ``${record.z}`` $record.w {}` + \"${record.v}\""),
            vec![vec!["z".to_string()]]
        );
        // …but the back-tick string ends where it ends.
        assert_eq!(
            names("`a``b` + record.after"),
            vec![vec!["after".to_string()]]
        );
        // Comments, nested block comments included.
        assert_eq!(
            names("/* record.x /* record.y */ record.z */ record.k // record.q"),
            vec![vec!["k".to_string()]]
        );
        // Positions are character indexes into the whole source.
        let src = "`é ${record.nmae}`";
        let p = record_paths(src);
        assert_eq!(p[0][0].1, src.chars().position(|c| c == 'n').unwrap());
        // Unterminated input never panics.
        for s in [
            "`${record.a",
            "`${",
            "/* record.x",
            "\"record.",
            "`${ `${ }",
        ] {
            let _ = record_paths(s);
        }
    }
}
