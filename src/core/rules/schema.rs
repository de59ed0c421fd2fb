//! The JSON Schemas of `tandem.yaml` and the rule files, generated from the Rust types
//! ([`super::raw::RuleFile`], [`super::config::Config`]) as draft-07 (what every
//! yaml-language-server version understands), and validation of a file's tree against them with
//! the `jsonschema` crate.
//!
//! `tandem check` validates against schemas generated in memory from the same types — not by
//! reading `schemas/` — so they are identical to the checked-in files (what editors use) as long
//! as `tandem schema --check` passes (CI and `tests/it/rules_schema.rs` run it); an editor and
//! the engine then never disagree about structure. Validation errors come back as JSON pointers;
//! they are mapped to spans through the file's [`SpanIndex`] and reported with the codes
//! `E003`–`E006`.

use std::path::Path;
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::catalog::suggest;
use super::config::Config;
use super::diag::{Code, Diagnostic, Report};
use super::raw::RuleFile;
use super::yaml::{SpanIndex, push_pointer};

/// File name of the rule-file schema inside `schemas/`.
pub const RULES_SCHEMA_FILE: &str = "rules.schema.json";
/// File name of the config schema inside `schemas/`.
pub const CONFIG_SCHEMA_FILE: &str = "tandem.schema.json";

/// Which format a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `tandem.yaml`.
    Config,
    /// A rule file.
    Rules,
}

fn generate<T: JsonSchema>() -> Value {
    let schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut v = schema.to_value();
    strip_null(&mut v, false);
    v
}

/// An optional key means "may be absent", not "may be null": drop schemars' `null` alternatives
/// so that errors inside optional sections are reported precisely (a failed `anyOf` only says
/// that nothing matched). Only the schemas of named properties are touched; a type that
/// deliberately accepts `null` (a test's "cleared" value) keeps it.
fn strip_null(v: &mut Value, property: bool) {
    match v {
        Value::Object(map) => {
            if !property {
                for (key, child) in map.iter_mut() {
                    if key == "properties" {
                        if let Value::Object(props) = child {
                            props.values_mut().for_each(|p| strip_null(p, true));
                        }
                    } else {
                        strip_null(child, false);
                    }
                }
                return;
            }
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let t = types.remove(0);
                    map.insert("type".into(), t);
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            let nullable_any_of = match map.get("anyOf") {
                Some(Value::Array(alts)) => {
                    alts.len() == 2 && alts.iter().any(|a| a.get("type") == Some(&"null".into()))
                }
                _ => false,
            };
            if nullable_any_of && let Some(Value::Array(alts)) = map.remove("anyOf") {
                let keep = alts
                    .into_iter()
                    .find(|a| a.get("type") != Some(&"null".into()))
                    .unwrap_or(Value::Bool(true));
                match keep {
                    Value::Object(k) if k.contains_key("$ref") => {
                        map.insert("allOf".into(), Value::Array(vec![Value::Object(k)]));
                    }
                    Value::Object(k) => {
                        for (key, val) in k {
                            map.entry(key).or_insert(val);
                        }
                    }
                    _ => {}
                }
            }
            for child in map.values_mut() {
                strip_null(child, false);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip_null(x, false)),
        _ => {}
    }
}

/// The draft-07 schema of rule files.
pub fn rules_schema() -> Value {
    generate::<RuleFile>()
}

/// The draft-07 schema of `tandem.yaml`.
pub fn config_schema() -> Value {
    generate::<Config>()
}

/// A schema as written to `schemas/` (pretty JSON, trailing newline).
pub fn render(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

/// The files `tandem schema` writes: `(file name, content)`.
pub fn files() -> Vec<(&'static str, String)> {
    vec![
        (CONFIG_SCHEMA_FILE, render(&config_schema())),
        (RULES_SCHEMA_FILE, render(&rules_schema())),
    ]
}

/// Writes every schema into `dir` (created if needed).
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, content) in files() {
        std::fs::write(dir.join(name), content)?;
    }
    Ok(())
}

/// The schema files in `dir` that are missing or differ from what the types generate.
pub fn stale(dir: &Path) -> Vec<String> {
    files()
        .into_iter()
        .filter(|(name, content)| {
            std::fs::read_to_string(dir.join(name)).map_or(true, |c| c != *content)
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

struct Compiled {
    schema: Value,
    validator: Option<jsonschema::Validator>,
}

fn compile(schema: Value) -> Compiled {
    let validator = jsonschema::draft7::new(&schema).ok();
    Compiled { schema, validator }
}

static RULES: LazyLock<Compiled> = LazyLock::new(|| compile(rules_schema()));
static CONFIG: LazyLock<Compiled> = LazyLock::new(|| compile(config_schema()));

fn json_type_name(t: &str) -> &'static str {
    match t {
        "string" => "text",
        "object" => "a mapping",
        "array" => "a list",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "`true` or `false`",
        "null" => "nothing",
        _ => "a value",
    }
}

fn found_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "`true`/`false`",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "a whole number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first line of a (possibly multi-line) span, so carets stay readable.
fn first_line(src: &str, span: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let start = span.start.min(src.len());
    let end = span.end.min(src.len()).max(start);
    match src[start..end].find('\n') {
        Some(i) => start..start + i,
        None => start..end,
    }
}

/// Validates `value` (the tree of `file`) against its schema, pushing one diagnostic per
/// problem. Returns true when the file is structurally valid.
pub fn validate(
    kind: FileKind,
    file: &str,
    src: &str,
    value: &Value,
    index: &SpanIndex,
    report: &mut Report,
) -> bool {
    let compiled: &Compiled = match kind {
        FileKind::Config => &CONFIG,
        FileKind::Rules => &RULES,
    };
    let Some(validator) = &compiled.validator else {
        return true;
    };
    if value.is_null() {
        report.push(Diagnostic::whole(
            Code::WrongType,
            file,
            "the file is empty; expected a mapping",
        ));
        return false;
    }
    let mut ok = true;
    for err in validator.iter_errors(value) {
        ok = false;
        let ptr = err.instance_path().as_str().to_string();
        let schema_ptr = err.schema_path().as_str().to_string();
        let parent_schema = schema_ptr
            .rfind('/')
            .and_then(|i| compiled.schema.pointer(&schema_ptr[..i]));
        match err.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed: Vec<String> = parent_schema
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for key in unexpected {
                    let key_ptr = push_pointer(&ptr, key);
                    let mut d = Diagnostic::new(
                        Code::UnknownKey,
                        file,
                        index.key_span(&key_ptr),
                        format!("unknown key `{key}`"),
                    );
                    d = match suggest(key, allowed.iter().map(String::as_str)) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None if !allowed.is_empty() => {
                            d.help(format!("expected one of {}", quoted_list(&allowed)))
                        }
                        None => d,
                    };
                    report.push(d);
                }
            }
            ValidationErrorKind::Type { .. } => {
                let expected = compiled
                    .schema
                    .pointer(&schema_ptr)
                    .map(|t| match t {
                        Value::String(s) => json_type_name(s).to_string(),
                        Value::Array(a) => a
                            .iter()
                            .filter_map(Value::as_str)
                            .map(json_type_name)
                            .collect::<Vec<_>>()
                            .join(" or "),
                        _ => "another type".into(),
                    })
                    .unwrap_or_else(|| "another type".into());
                let found = value.pointer(&ptr).map_or("nothing", found_name);
                report.push(
                    Diagnostic::new(
                        Code::WrongType,
                        file,
                        first_line(src, index.value_span(&ptr)),
                        format!("expected {expected}, found {found}"),
                    )
                    .label(format!("expected {expected}")),
                );
            }
            ValidationErrorKind::Required { property } => {
                let name = show(property);
                let span = first_line(src, index.key_span(&ptr));
                let at = if ptr.is_empty() {
                    "the file".to_string()
                } else {
                    "this entry".to_string()
                };
                report.push(
                    Diagnostic::new(
                        Code::MissingKey,
                        file,
                        span,
                        format!("missing required key `{name}`"),
                    )
                    .label(format!("{at} needs `{name}`")),
                );
            }
            ValidationErrorKind::Enum { options } => {
                let allowed: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(show).collect())
                    .unwrap_or_default();
                let got = value.pointer(&ptr).map(show).unwrap_or_default();
                let mut d = Diagnostic::new(
                    Code::InvalidValue,
                    file,
                    first_line(src, index.value_span(&ptr)),
                    format!("`{got}` is not one of {}", quoted_list(&allowed)),
                );
                if let Some(s) = suggest(&got, allowed.iter().map(String::as_str)) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                report.push(d);
            }
            ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. }
                if choices(compiled.schema.pointer(&schema_ptr)).is_some() =>
            {
                let allowed = choices(compiled.schema.pointer(&schema_ptr)).unwrap_or_default();
                let got = value.pointer(&ptr).map(show).unwrap_or_default();
                let mut d = Diagnostic::new(
                    Code::InvalidValue,
                    file,
                    first_line(src, index.value_span(&ptr)),
                    format!("`{got}` is not one of {}", quoted_list(&allowed)),
                );
                if let Some(s) = suggest(&got, allowed.iter().map(String::as_str)) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                report.push(d);
            }
            _ => {
                let msg = err.masked().to_string();
                report.push(Diagnostic::new(
                    Code::InvalidValue,
                    file,
                    first_line(src, index.value_span(&ptr)),
                    lower_first(&msg),
                ));
            }
        }
    }
    ok
}

/// The allowed values of a `oneOf`/`anyOf` made only of `const`/`enum` alternatives (how
/// schemars writes a documented enum).
fn choices(alternatives: Option<&Value>) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for alt in alternatives?.as_array()? {
        if let Some(c) = alt.get("const") {
            out.push(show(c));
        } else if let Some(e) = alt.get("enum").and_then(Value::as_array) {
            out.extend(e.iter().map(show));
        } else {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::yaml;

    fn check(kind: FileKind, src: &str) -> Report {
        let doc = yaml::parse(src);
        let mut r = Report::new();
        r.add_source("f.yaml", src.into());
        validate(
            kind,
            "f.yaml",
            src,
            doc.value.as_ref().unwrap(),
            &doc.index,
            &mut r,
        );
        r
    }

    #[test]
    fn schemas_are_draft07_with_descriptions() {
        let s = rules_schema();
        assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
        assert!(
            s["definitions"]["FieldMapping"]["properties"]["accelo"]["description"].is_string()
        );
        assert_eq!(s["required"], serde_json::json!(["object"]));
        assert_eq!(s["additionalProperties"], false);
        let c = config_schema();
        assert!(c["properties"]["hubspot"].is_object());
        assert!(
            !render(&c).contains("\"null\""),
            "optional keys must not accept null"
        );
        let target = &s["definitions"]["Expectation"]["properties"]["target"];
        assert!(target.get("anyOf").is_none(), "{target}");
        assert!(render(&s["definitions"]["ExpectedValue"]).contains("\"null\""));
    }

    #[test]
    fn structural_errors_are_located() {
        let src = "object: company\nfeilds: []\nfields:\n  - hubspot: name\n    accelo: $.name\n    direction: sideways\n  - accelo: 3\n";
        let r = check(FileKind::Rules, src);
        let codes: Vec<_> = r.diagnostics().iter().map(|d| d.code).collect();
        assert!(codes.contains(&Code::UnknownKey), "{codes:?}");
        assert!(codes.contains(&Code::InvalidValue), "{codes:?}");
        assert!(codes.contains(&Code::MissingKey), "{codes:?}");
        assert!(codes.contains(&Code::WrongType), "{codes:?}");
        let unknown = r
            .diagnostics()
            .iter()
            .find(|d| d.code == Code::UnknownKey)
            .unwrap();
        assert_eq!(&src[unknown.span.clone().unwrap()], "feilds");
        assert_eq!(unknown.help.as_deref(), Some("did you mean `fields`?"));
    }

    #[test]
    fn config_schema_accepts_a_full_config() {
        let src = "hubspot:\n  token_env: HS\naccelo:\n  url: https://x.api.accelo.com\n  client_id: a\n  client_secret_env: S\nsync:\n  guardrails:\n    max_share: 0.5\n";
        let r = check(FileKind::Config, src);
        assert!(r.diagnostics().is_empty(), "{:?}", r.diagnostics());
        let r = check(
            FileKind::Config,
            "accelo: {url: x, client_id: a, client_secret_env: S}\nsync: {guardrails: {max_share: 2}}\n",
        );
        assert_eq!(r.diagnostics()[0].code, Code::InvalidValue);
    }
}
