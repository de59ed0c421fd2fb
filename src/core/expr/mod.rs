//! The sandboxed Rhai engine that runs rule expressions, and compiled expressions ([`Expr`]).
//!
//! One engine serves every rule set (it holds no per-rule state). It is sealed the way
//! `reference/crates.md` §2 says: the module resolver is replaced (no `import` of files), `eval`
//! is disabled, `print`/`debug` go to `tracing`, and operations, call depth, expression depth,
//! string, array and map sizes are limited so a runaway rule fails *that evaluation* with an
//! [`EvalError`] — never the engine or the process. Variables are strict: an undefined name is
//! a compile error with its position. There is no clock (`timestamp()` fails): a plan depends
//! only on its input.
//!
//! Two limits need more than Rhai's settings:
//!
//! - **Time.** A few operations can still be slow when each one is expensive (a loop of
//!   `s.to_upper()` on a 256 KiB string), so every evaluation also has a wall-clock budget,
//!   [`MAX_EVAL_TIME`], checked from Rhai's progress callback between operations against a
//!   per-thread deadline set by [`Expr::eval`]. Only a runaway rule ever reaches it; a rule
//!   that does fails that record whatever the machine's speed, so plans stay a function of
//!   their input for every rule that finishes.
//! - **Size of one operation's result.** Rhai checks a string's size only after an operation
//!   built it, and `replace` can multiply it (`s.replace("x", s)` on a 256 KiB `s` would build
//!   64 GiB first). The engine's own `replace` computes the result's length before building it
//!   and fails like any other over-size value.
//!
//! Expressions see `record` (the source record's document as a map; every value is text, a
//! missing property is `()`, Accelo's nested objects are always maps) and, in transforms,
//! `value` (the mapped field's value). Helpers live in [`helpers`].

pub mod helpers;

use std::cell::Cell;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, ParseErrorType, Position, Scope};
use serde_json::Value;
use thiserror::Error;

use crate::model::{Object, Record, System};

/// Most operations one evaluation may perform.
pub const MAX_OPERATIONS: u64 = 100_000;
/// Longest string an evaluation may build (bytes).
pub const MAX_STRING: usize = 256 * 1024;
/// Largest array or map an evaluation may build.
pub const MAX_COLLECTION: usize = 10_000;
/// Longest one evaluation may run (wall clock). Documented in docs/rules.md ("The sandbox").
pub const MAX_EVAL_TIME: Duration = Duration::from_millis(100);

/// The time limit of [`Expr::probe`]'s run on a sample record: ten times [`MAX_EVAL_TIME`], so
/// that an expression under the other limits is reported for time only when it is far over.
pub const PROBE_TIME: Duration = Duration::from_secs(1);

static ENGINE: LazyLock<Engine> = LazyLock::new(build_engine);

/// The progress callback reads the clock every this many operations: often enough that even
/// the most expensive operations (a pass over a 256 KiB string: well under a millisecond in a
/// release build) overrun the budget by little, rarely enough that cheap operations do not pay
/// for a clock read each.
const CLOCK_EVERY: u64 = 16;

thread_local! {
    /// When the evaluation running on this thread must stop; `None` outside evaluations.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The token the progress callback stops an evaluation with when its time is up.
const TIME_UP: &str = "tandem: evaluation time limit";

/// The deadline of one evaluation on this thread, restored to the previous one on drop.
struct Deadline(Option<Instant>);

impl Deadline {
    fn start(budget: Duration) -> Deadline {
        let now = Instant::now();
        let mine = now.checked_add(budget).unwrap_or(now);
        let previous = DEADLINE.with(|d| d.get());
        // A nested evaluation never extends its caller's deadline.
        let deadline = previous.map_or(mine, |p| p.min(mine));
        DEADLINE.with(|d| d.set(Some(deadline)));
        Deadline(previous)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.0));
    }
}

/// Rhai's progress callback (called before every operation with the count so far): every
/// [`CLOCK_EVERY`] operations, stops the evaluation once this thread's deadline has passed.
fn over_time(operations: u64) -> Option<Dynamic> {
    if !operations.is_multiple_of(CLOCK_EVERY) {
        return None;
    }
    let late = DEADLINE.with(|d| d.get().is_some_and(|d| Instant::now() >= d));
    late.then(|| Dynamic::from(ImmutableString::from(TIME_UP)))
}

/// `string.replace(find, substitute)` that fails before building a result longer than
/// [`MAX_STRING`] (Rhai's own checks the size only after building it).
fn bounded_replace(
    string: &str,
    find: &str,
    substitute: &str,
) -> Result<ImmutableString, Box<EvalAltResult>> {
    if string.is_empty() {
        // Rhai leaves an empty string alone, even for an empty `find`.
        return Ok(ImmutableString::new());
    }
    if substitute.len() > find.len() {
        let matches = if find.is_empty() {
            string.chars().count() + 1
        } else {
            string.matches(find).count()
        };
        let grown = matches.saturating_mul(substitute.len() - find.len());
        if string.len().saturating_add(grown) > MAX_STRING {
            return Err(EvalAltResult::ErrorDataTooLarge(
                "Length of string".into(),
                Position::NONE,
            )
            .into());
        }
    }
    Ok(string.replace(find, substitute).into())
}

/// Replaces the standard `replace` overloads that can grow a string with [`bounded_replace`]
/// (functions registered on the engine win over its packages').
fn register_bounded_replace(e: &mut Engine) {
    e.register_fn(
        "replace",
        |s: &mut ImmutableString, find: &str, sub: &str| -> Result<(), Box<EvalAltResult>> {
            *s = bounded_replace(s, find, sub)?;
            Ok(())
        },
    );
    e.register_fn(
        "replace",
        |s: &mut ImmutableString, find: char, sub: &str| -> Result<(), Box<EvalAltResult>> {
            *s = bounded_replace(s, find.encode_utf8(&mut [0; 4]), sub)?;
            Ok(())
        },
    );
    e.register_fn(
        "replace",
        |s: &mut ImmutableString, find: &str, sub: char| -> Result<(), Box<EvalAltResult>> {
            *s = bounded_replace(s, find, sub.encode_utf8(&mut [0; 4]))?;
            Ok(())
        },
    );
}

fn build_engine() -> Engine {
    let mut e = Engine::new();
    e.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    e.set_max_modules(0);
    e.disable_symbol("eval");
    e.set_max_operations(MAX_OPERATIONS)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(MAX_STRING)
        .set_max_array_size(MAX_COLLECTION)
        .set_max_map_size(MAX_COLLECTION)
        .set_max_call_levels(16)
        .set_max_variables(256)
        .set_strict_variables(true);
    e.on_progress(over_time);
    register_bounded_replace(&mut e);
    e.on_print(|s| tracing::info!(target: "tandem::rules", "{s}"));
    e.on_debug(|s, src, pos| {
        tracing::debug!(target: "tandem::rules", source = src.unwrap_or(""), %pos, "{s}");
    });
    helpers::register(&mut e);
    // Plans are deterministic: rules get no clock.
    e.register_fn("timestamp", || -> Result<Dynamic, Box<EvalAltResult>> {
        Err("the clock is not available to rules (plans must not depend on the time)".into())
    });
    e
}

/// The shared sandboxed engine.
pub fn engine() -> &'static Engine {
    &ENGINE
}

/// Which variables an expression may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vars {
    /// `record` (criteria, dedup keys).
    Record,
    /// `record` and `value` (transforms).
    RecordAndValue,
}

impl Vars {
    fn names(self) -> &'static [&'static str] {
        match self {
            Vars::Record => &["record"],
            Vars::RecordAndValue => &["record", "value"],
        }
    }
}

/// Why an expression did not compile. `line`/`column` are 1-based inside the expression text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct CompileError {
    /// What kind of problem.
    pub kind: CompileErrorKind,
    /// Lower-case description.
    pub message: String,
    /// Line inside the expression.
    pub line: usize,
    /// Column (characters) inside that line.
    pub column: usize,
}

/// Kinds of compile error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileErrorKind {
    /// Not valid Rhai.
    Syntax,
    /// A name that is not a variable here.
    UndefinedVariable(String),
}

/// Where an expression sits in its rule file, so that an evaluation error names the file's own
/// line and column rather than a place inside the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The rule file, as `tandem check` names it.
    pub file: Arc<str>,
    /// For each character of the expression as decoded (and one past its end), its 1-based
    /// (line, column) in the file: block scalars (`|`, `>`) and quoted scalars map each
    /// character back to where it was written.
    pub positions: Arc<[(usize, usize)]>,
}

impl Origin {
    /// The file's (line, column) of the character at 1-based (`line`, `column`) of `source`.
    pub fn at(&self, source: &str, line: usize, column: usize) -> Option<(usize, usize)> {
        let mut idx = 0;
        let mut cur = 1;
        let mut chars = source.chars();
        while cur < line {
            match chars.next() {
                Some('\n') => {
                    cur += 1;
                    idx += 1;
                }
                Some(_) => idx += 1,
                None => break,
            }
        }
        let idx = idx + column.saturating_sub(1);
        let last = self.positions.len().checked_sub(1)?;
        self.positions.get(idx.min(last)).copied()
    }
}

/// Why an evaluation failed: a limit, a runtime error, or a result of the wrong type. Fails the
/// record being evaluated, never the engine.
#[derive(Debug, Clone, PartialEq, Eq, Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(tandem::rules::eval))]
pub struct EvalError {
    /// Lower-case description. Includes the position when known: the rule file's line and
    /// column when the expression knows its [`Origin`], else the place inside the expression.
    pub message: String,
    /// Line inside the expression, when known.
    pub line: Option<usize>,
    /// Column inside that line, when known.
    pub column: Option<usize>,
    /// Whether one of the sandbox's limits stopped the evaluation (operations, time, size of a
    /// string, list or map, call depth) rather than an error in the expression's logic.
    pub limit: bool,
}

impl EvalError {
    fn from_rhai(e: &EvalAltResult, source: &str, origin: Option<&Origin>) -> EvalError {
        let inner = e.unwrap_inner();
        let pos = inner.position();
        let limit = matches!(
            inner,
            EvalAltResult::ErrorTooManyOperations(_)
                | EvalAltResult::ErrorDataTooLarge(..)
                | EvalAltResult::ErrorStackOverflow(_)
                | EvalAltResult::ErrorTerminated(..)
        );
        let what = match inner {
            EvalAltResult::ErrorTooManyOperations(_) => format!(
                "the rule exceeded its limit of {MAX_OPERATIONS} operations (an endless loop?)"
            ),
            EvalAltResult::ErrorDataTooLarge(what, _) => format!(
                "the rule built a value that is too large ({}; limit {MAX_STRING} bytes per \
                 string, {MAX_COLLECTION} items per list or map)",
                what.to_lowercase()
            ),
            EvalAltResult::ErrorStackOverflow(_) => "the rule nested calls too deeply".into(),
            EvalAltResult::ErrorTerminated(token, _)
                if token
                    .read_lock::<ImmutableString>()
                    .is_some_and(|t| t.as_str() == TIME_UP) =>
            {
                format!(
                    "the rule took longer than {} ms, its time limit per evaluation (an \
                     expensive loop?)",
                    MAX_EVAL_TIME.as_millis()
                )
            }
            EvalAltResult::ErrorFunctionNotFound(sig, _) => {
                format!("no function `{}`", readable_signature(sig))
            }
            other => lower_first(&strip_position(&other.to_string())),
        };
        let (line, column) = split_pos(pos);
        let message = match (line, column) {
            (Some(l), Some(c)) => match origin.and_then(|o| o.at(source, l, c).map(|p| (o, p))) {
                Some((o, (fl, fc))) => format!("{what} ({}, line {fl}, column {fc})", o.file),
                None => format!("{what} (line {l}, column {c})"),
            },
            _ => what,
        };
        EvalError {
            message,
            line,
            column,
            limit,
        }
    }

    fn result(what: impl Into<String>) -> EvalError {
        EvalError {
            message: what.into(),
            line: None,
            column: None,
            limit: false,
        }
    }
}

/// `lowr (&str | ImmutableString | String)` → `lowr (string)`.
fn readable_signature(sig: &str) -> String {
    sig.replace("&str | ImmutableString | String", "string")
        .replace("ImmutableString", "string")
        .replace("i64", "integer")
        .replace("f64", "number")
}

fn split_pos(p: Position) -> (Option<usize>, Option<usize>) {
    (p.line(), p.position())
}

fn strip_position(s: &str) -> String {
    match s.rfind(" (line ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s.to_string(),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A compiled rule expression: its source text and Rhai AST, compiled once, evaluated many
/// times, shareable across threads.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    ast: Arc<rhai::AST>,
    vars: Vars,
    origin: Option<Origin>,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.vars == other.vars
    }
}

impl Expr {
    /// Compiles `source` (a Rhai script whose last expression is the result) with `vars` in
    /// scope.
    pub fn compile(source: &str, vars: Vars) -> Result<Expr, CompileError> {
        let mut scope = Scope::new();
        for v in vars.names() {
            scope.push_dynamic(*v, Dynamic::UNIT);
        }
        match engine().compile_with_scope(&scope, source) {
            Ok(ast) => Ok(Expr {
                source: Arc::from(source),
                ast: Arc::new(ast),
                vars,
                origin: None,
            }),
            Err(e) => {
                let (line, column) = split_pos(e.position());
                let (kind, message) = match e.err_type() {
                    ParseErrorType::VariableUndefined(name) => (
                        CompileErrorKind::UndefinedVariable(name.clone()),
                        format!(
                            "undefined variable `{name}` (available here: {})",
                            vars.names()
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    other => (
                        CompileErrorKind::Syntax,
                        lower_first(&strip_position(&other.to_string())),
                    ),
                };
                Err(CompileError {
                    kind,
                    message,
                    line: line.unwrap_or(1),
                    column: column.unwrap_or(1),
                })
            }
        }
    }

    /// The same expression, knowing where it sits in its rule file: its evaluation errors then
    /// give the file's line and column.
    pub fn with_origin(mut self, origin: Option<Origin>) -> Expr {
        self.origin = origin;
        self
    }

    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with `record` (see [`RecordValue`]) and, for transforms, `value`, within the
    /// sandbox's limits (operations, sizes, [`MAX_EVAL_TIME`]).
    pub fn eval(&self, record: &RecordValue, value: Option<&str>) -> Result<Dynamic, EvalError> {
        self.eval_within(record, value, MAX_EVAL_TIME)
    }

    /// [`Expr::eval`] with another time budget (tests).
    fn eval_within(
        &self,
        record: &RecordValue,
        value: Option<&str>,
        budget: Duration,
    ) -> Result<Dynamic, EvalError> {
        let mut scope = Scope::new();
        scope.push_constant_dynamic("record", record.0.clone());
        if self.vars == Vars::RecordAndValue {
            scope.push_dynamic("value", text_dynamic(value));
        }
        let _deadline = Deadline::start(budget);
        engine()
            .eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast)
            .map_err(|e| EvalError::from_rhai(&e, &self.source, self.origin.as_ref()))
    }

    /// Evaluates a condition: the result must be `true` or `false`.
    pub fn eval_bool(&self, record: &RecordValue) -> Result<bool, EvalError> {
        let v = self.eval(record, None)?;
        v.as_bool().map_err(|t| {
            EvalError::result(format!(
                "a condition must give `true` or `false`, this one gave {}",
                describe(t, &v)
            ))
        })
    }

    /// Evaluates to text: `()` and `""` are blank (`None`); numbers and booleans are formatted;
    /// lists and maps are an error.
    pub fn eval_text(
        &self,
        record: &RecordValue,
        value: Option<&str>,
    ) -> Result<Option<String>, EvalError> {
        let v = self.eval(record, value)?;
        dynamic_text(&v)
    }

    /// Runs the expression once on a sample record whose every known field holds text, and
    /// reports a call to a function that does not exist for the argument types (Rhai resolves
    /// functions only when called). Other runtime errors are ignored here.
    pub fn probe_functions(&self, sample: &RecordValue) -> Option<EvalError> {
        match self.eval(sample, Some("x")) {
            Err(e) if e.message.starts_with("no function") => Some(e),
            _ => None,
        }
    }

    /// Runs the expression once on `sample` (with `value` = `"x"` in transforms) under the
    /// limits every evaluation has, and returns the error when it failed: a call to a function
    /// that does not exist for its arguments, or a limit the expression hit
    /// ([`EvalError::limit`]). Other runtime errors (a value of the wrong type, …) are `None`:
    /// they may depend on the record.
    ///
    /// The time limit of this run is [`PROBE_TIME`], not [`MAX_EVAL_TIME`]: what `tandem check`
    /// reports must not depend on how busy the machine is, and every other limit is exact.
    pub fn probe(&self, sample: &RecordValue) -> Option<EvalError> {
        match self.eval_within(sample, Some("x"), PROBE_TIME) {
            Err(e) if e.limit || e.message.starts_with("no function") => Some(e),
            _ => None,
        }
    }
}

fn describe(type_name: &str, v: &Dynamic) -> String {
    if v.is_unit() {
        "`()` (a missing value)".into()
    } else {
        format!("a value of type `{type_name}`")
    }
}

/// Text of an expression result (see [`Expr::eval_text`]).
pub fn dynamic_text(v: &Dynamic) -> Result<Option<String>, EvalError> {
    if v.is_unit() {
        return Ok(None);
    }
    if let Some(s) = v.read_lock::<ImmutableString>() {
        return Ok(if s.is_empty() {
            None
        } else {
            Some(s.to_string())
        });
    }
    if v.is_int() || v.is_float() || v.is_bool() || v.is_char() {
        return Ok(Some(v.to_string()));
    }
    Err(EvalError::result(format!(
        "a value must be text, this one is a `{}`",
        v.type_name()
    )))
}

fn text_dynamic(v: Option<&str>) -> Dynamic {
    match v {
        Some(s) if !s.is_empty() => Dynamic::from(ImmutableString::from(s)),
        _ => Dynamic::UNIT,
    }
}

/// A record prepared for rule evaluation: its document as a read-only Rhai map.
/// Prepare once per record and evaluate every expression against it.
#[derive(Debug, Clone)]
pub struct RecordValue(Dynamic);

impl RecordValue {
    /// Converts `record.doc`: scalars become text (`null` becomes `()`), objects become maps,
    /// and for Accelo records every known nested object (`postal_address`, `affiliation`, …)
    /// is present (empty when the record has none). HubSpot records get `hs_object_id` = the id
    /// when their document lacks it.
    pub fn new(record: &Record) -> RecordValue {
        let mut map = rhai::Map::new();
        for (k, v) in &record.doc {
            map.insert(k.as_str().into(), json_dynamic(v));
        }
        match record.system {
            System::Accelo => {
                for nested in crate::model::accelo::accelo_nested(record.object) {
                    let empty = map
                        .get(nested)
                        .is_none_or(|d| d.is_unit() || d.read_lock::<rhai::Map>().is_none());
                    if empty {
                        map.insert(nested.into(), Dynamic::from_map(rhai::Map::new()));
                    }
                }
                if !map.contains_key("id") {
                    map.insert("id".into(), Dynamic::from(record.id.clone()));
                }
            }
            System::HubSpot => {
                if !map.contains_key("hs_object_id") {
                    map.insert("hs_object_id".into(), Dynamic::from(record.id.clone()));
                }
            }
        }
        RecordValue(Dynamic::from_map(map).into_read_only())
    }

    /// A sample record for `system`/`object` in which every known field holds `"x"` (used to
    /// probe expressions at check time).
    pub fn sample(system: System, object: Object, properties: &[String]) -> RecordValue {
        let mut r = Record::new(system, object, "1");
        match system {
            System::HubSpot => {
                for p in properties {
                    r.doc.insert(p.clone(), Value::String("x".into()));
                }
            }
            System::Accelo => {
                for f in crate::model::accelo::accelo_fields(object) {
                    if f.object {
                        continue;
                    }
                    insert_path(&mut r.doc, f.path, Value::String("x".into()));
                }
            }
        }
        RecordValue::new(&r)
    }
}

fn insert_path(doc: &mut serde_json::Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let entry = doc
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Value::Object(m) = entry {
                insert_path(m, rest, v);
            }
        }
    }
}

fn json_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Number(n) => Dynamic::from(ImmutableString::from(n.to_string())),
        Value::Bool(b) => Dynamic::from(ImmutableString::from(b.to_string())),
        Value::Array(a) => Dynamic::from_array(a.iter().map(json_dynamic).collect()),
        Value::Object(o) => Dynamic::from_map(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), json_dynamic(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hs(doc: Value) -> RecordValue {
        let mut r = Record::new(System::HubSpot, Object::Company, "1");
        r.doc = doc.as_object().unwrap().clone();
        RecordValue::new(&r)
    }

    #[test]
    fn missing_properties_are_unit_and_helpers_accept_them() {
        let r = hs(json!({"name": "Acme Pty Ltd"}));
        let e = Expr::compile("normalize_name(record.name)", Vars::Record).unwrap();
        assert_eq!(e.eval_text(&r, None).unwrap().as_deref(), Some("acme"));
        let e = Expr::compile("domain(record.website) ?? \"none\"", Vars::Record).unwrap();
        assert_eq!(e.eval_text(&r, None).unwrap().as_deref(), Some("none"));
        let e = Expr::compile("first(record.website, record.name)", Vars::Record).unwrap();
        assert_eq!(
            e.eval_text(&r, None).unwrap().as_deref(),
            Some("Acme Pty Ltd")
        );
        let e = Expr::compile("lower(value)", Vars::RecordAndValue).unwrap();
        assert_eq!(e.eval_text(&r, None).unwrap(), None);
        assert_eq!(e.eval_text(&r, Some("AB")).unwrap().as_deref(), Some("ab"));
    }

    #[test]
    fn accelo_nested_objects_are_always_maps() {
        let r = Record::new(System::Accelo, Object::Contact, "7");
        let rv = RecordValue::new(&r);
        let e = Expr::compile("email(record.affiliation.email)", Vars::Record).unwrap();
        assert_eq!(e.eval_text(&rv, None).unwrap(), None);
        let e = Expr::compile("record.id", Vars::Record).unwrap();
        assert_eq!(e.eval_text(&rv, None).unwrap().as_deref(), Some("7"));
    }

    #[test]
    fn undefined_variables_are_compile_errors_with_positions() {
        let err = Expr::compile("lower(valu)", Vars::RecordAndValue).unwrap_err();
        assert_eq!(err.kind, CompileErrorKind::UndefinedVariable("valu".into()));
        assert_eq!((err.line, err.column), (1, 7));
        let err = Expr::compile("value", Vars::Record).unwrap_err();
        assert!(matches!(err.kind, CompileErrorKind::UndefinedVariable(_)));
        let err = Expr::compile("record.name +* 2", Vars::Record).unwrap_err();
        assert_eq!(err.kind, CompileErrorKind::Syntax);
        assert_eq!(err.column, 14);
    }

    #[test]
    fn sandbox_is_sealed() {
        let err = Expr::compile("eval(\"1\")", Vars::Record).unwrap_err();
        assert!(err.message.contains("eval"), "{}", err.message);
        let e = Expr::compile("import \"secrets\" as s; s::x", Vars::Record);
        match e {
            Err(_) => {}
            Ok(e) => {
                let r = hs(json!({}));
                assert!(e.eval(&r, None).is_err());
            }
        }
        // No clock: plans must be deterministic.
        let e = Expr::compile("timestamp()", Vars::Record).unwrap();
        let err = e.eval(&hs(json!({})), None).unwrap_err();
        assert!(err.message.contains("clock"), "{}", err.message);
        // print goes to tracing, not stdout, and does not fail.
        let e = Expr::compile("print(\"hi\"); true", Vars::Record).unwrap();
        assert!(e.eval_bool(&hs(json!({}))).unwrap());
    }

    /// A loop of few but expensive operations: `rounds` replacements of every character of a
    /// string of `len` bytes (built by doubling).
    fn expensive_loop(len: usize, rounds: usize) -> String {
        format!(
            "let s = \"x\"; while s.len() < {len} {{ s += s; }} \
             let n = 0; while n < {rounds} {{ let t = s; t.replace(\"x\", \"y\"); n += 1; }} n"
        )
    }

    /// After a runaway evaluation the engine evaluates a normal rule, and the thread has no
    /// deadline left over.
    fn engine_still_works(r: &RecordValue) {
        assert_eq!(DEADLINE.with(|d| d.get()), None);
        let ok = Expr::compile("lower(\"A\") + (1 + 1)", Vars::Record).unwrap();
        assert_eq!(ok.eval_text(r, None).unwrap().as_deref(), Some("a2"));
    }

    #[test]
    fn an_expensive_loop_under_the_operation_limit_fails_on_time() {
        let r = hs(json!({}));
        // The same loop on a one-byte string and without a time limit finishes: it stays under
        // the operation limit…
        let short = Expr::compile(&expensive_loop(1, 5_000), Vars::Record).unwrap();
        let n = short
            .eval_within(&r, None, Duration::from_secs(24 * 3600))
            .unwrap();
        assert_eq!(n.as_int().unwrap(), 5_000);
        // …but 5,000 passes over 256 KiB (1.3 billion characters) take far longer than the
        // time limit on any machine: the evaluation is stopped by the clock.
        let long = Expr::compile(&expensive_loop(MAX_STRING, 5_000), Vars::Record).unwrap();
        let err = long.eval(&r, None).unwrap_err();
        assert!(
            err.message
                .starts_with("the rule took longer than 100 ms, its time limit"),
            "{}",
            err.message
        );
        assert!(err.line.is_some() && err.column.is_some(), "{err:?}");
        engine_still_works(&r);
        // A criterion or transform fails the same way (the record, not the program).
        let err = long.eval_bool(&r).unwrap_err();
        assert!(err.message.contains("took longer than"), "{}", err.message);
        engine_still_works(&r);
    }

    #[test]
    fn an_endless_loop_fails_on_the_operation_limit() {
        let r = hs(json!({}));
        let looping = Expr::compile("loop { }", Vars::Record).unwrap();
        let err = looping.eval(&r, None).unwrap_err();
        assert!(
            err.message
                .starts_with("the rule exceeded its limit of 100000 operations"),
            "{}",
            err.message
        );
        engine_still_works(&r);
        // Errors that stop a runaway rule cannot be caught by the rule.
        let caught = Expr::compile("try { loop { } } catch { 1 }", Vars::Record).unwrap();
        let err = caught.eval(&r, None).unwrap_err();
        assert!(err.message.contains("operations"), "{}", err.message);
        engine_still_works(&r);
        let recurse = Expr::compile("fn f(x) { f(x) } f(1)", Vars::Record).unwrap();
        assert!(recurse.eval(&r, None).is_err());
        engine_still_works(&r);
    }

    #[test]
    fn growing_values_fail_on_the_size_limit() {
        let r = hs(json!({}));
        let huge = Expr::compile("let s = \"xxxxxxxx\"; loop { s += s; }", Vars::Record).unwrap();
        let err = huge.eval(&r, None).unwrap_err();
        assert!(
            err.message
                .starts_with("the rule built a value that is too large (length of string;"),
            "{}",
            err.message
        );
        engine_still_works(&r);
        // `replace` would multiply a string in one operation (here to 64 GiB): it fails before
        // building it.
        let multiplied = format!(
            "let s = \"x\"; while s.len() < {MAX_STRING} {{ s += s; }} let t = s; t.replace(\"x\", s); t"
        );
        let err = Expr::compile(&multiplied, Vars::Record)
            .unwrap()
            .eval(&r, None)
            .unwrap_err();
        assert!(err.message.contains("too large"), "{}", err.message);
        engine_still_works(&r);
        for grow in [
            "let s = \"ab\"; while s.len() < 200000 { s += s; } s.replace(\"\", \"xyz\"); s",
            "let s = \"ab\"; while s.len() < 200000 { s += s; } s.replace('a', \"xyz\"); s",
        ] {
            let err = Expr::compile(grow, Vars::Record)
                .unwrap()
                .eval(&r, None)
                .unwrap_err();
            assert!(err.message.contains("too large"), "{grow}: {}", err.message);
        }
        engine_still_works(&r);
        // `replace` still works as documented within the limit.
        for (src, want) in [
            (
                "let s = \"hello, hello\"; s.replace(\"hello\", \"hey\"); s",
                "hey, hey",
            ),
            ("let s = \"abc\"; s.replace(\"\", \"-\"); s", "-a-b-c-"),
            ("let s = \"hello\"; s.replace('l', \"(^)\"); s", "he(^)(^)o"),
            ("let s = \"hello\"; s.replace(\"ll\", '*'); s", "he*o"),
            ("let s = \"hello\"; s.replace('l', '*'); s", "he**o"),
            ("let s = \"\"; s.replace(\"\", \"x\"); s + \"!\"", "!"),
        ] {
            let e = Expr::compile(src, Vars::Record).unwrap();
            assert_eq!(
                e.eval_text(&r, None).unwrap().as_deref(),
                Some(want),
                "{src}"
            );
        }
    }

    #[test]
    fn deadlines_nest_and_are_restored() {
        assert_eq!(DEADLINE.with(|d| d.get()), None);
        {
            let _outer = Deadline::start(Duration::from_secs(60));
            let outer = DEADLINE.with(|d| d.get()).unwrap();
            {
                let _inner = Deadline::start(Duration::from_secs(3600));
                // An inner evaluation never extends the outer one's deadline.
                assert_eq!(DEADLINE.with(|d| d.get()), Some(outer));
            }
            assert_eq!(DEADLINE.with(|d| d.get()), Some(outer));
            // A deadline already passed stops the evaluation at the next clock reading.
            let _now = Deadline::start(Duration::ZERO);
            assert!(over_time(CLOCK_EVERY - 1).is_none());
            assert!(over_time(CLOCK_EVERY).is_some());
            assert!(over_time(7 * CLOCK_EVERY).is_some());
        }
        assert_eq!(DEADLINE.with(|d| d.get()), None);
        // Outside an evaluation nothing is ever stopped.
        assert!(over_time(CLOCK_EVERY).is_none());
    }

    #[test]
    fn records_are_read_only() {
        let r = hs(json!({"name": "a"}));
        let e = Expr::compile("record.name = \"b\"; record.name", Vars::Record).unwrap();
        assert!(e.eval(&r, None).is_err());
        let e = Expr::compile("record.name", Vars::Record).unwrap();
        assert_eq!(e.eval_text(&r, None).unwrap().as_deref(), Some("a"));
    }

    #[test]
    fn result_types_are_checked() {
        let r = hs(json!({}));
        let e = Expr::compile("record.name", Vars::Record).unwrap();
        let err = e.eval_bool(&r).unwrap_err();
        assert!(err.message.contains("`()`"), "{}", err.message);
        let e = Expr::compile("[1, 2]", Vars::Record).unwrap();
        assert!(e.eval_text(&r, None).is_err());
        let e = Expr::compile("42", Vars::Record).unwrap();
        assert_eq!(e.eval_text(&r, None).unwrap().as_deref(), Some("42"));
    }

    #[test]
    fn unknown_functions_are_found_by_probing() {
        let sample = RecordValue::sample(System::HubSpot, Object::Company, &["name".into()]);
        let e = Expr::compile("lowr(record.name)", Vars::Record).unwrap();
        let err = e.probe_functions(&sample).unwrap();
        assert!(err.message.contains("lowr"), "{}", err.message);
        assert_eq!((err.line, err.column), (Some(1), Some(1)));
        let e = Expr::compile("lower(record.name)", Vars::Record).unwrap();
        assert!(e.probe_functions(&sample).is_none());
    }
}
