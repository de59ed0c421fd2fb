//! Diagnostics: every problem found in the config and rule files, with a stable code, a
//! severity and the exact span, rendered for people (miette, with the real file name and a caret)
//! or for tools (JSON, 1-based line and column).
//!
//! Checks never stop at the first problem: they push into a [`Report`], which owns the source
//! text of every file it mentions so it can render snippets.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde_json::{Value, json};

/// How bad a diagnostic is. Errors make `tandem check` exit 2; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The rule set cannot be used.
    Error,
    /// Suspicious but usable.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $title:literal;)*) => {
        /// Every kind of diagnostic, with its stable code (`E…` errors, `W…` warnings).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(
                #[doc = $title]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable code, e.g. `E021`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            /// The severity this kind of problem always has.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev),* }
            }

            /// One line saying what the code means (used by docs/rules.md).
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title),* }
            }
        }
    };
}

codes! {
    YamlSyntax = "E001", Error, "the file is not well-formed YAML";
    DuplicateKey = "E002", Error, "a key appears twice in the same mapping";
    UnknownKey = "E003", Error, "a key the schema does not know";
    WrongType = "E004", Error, "a value of the wrong type (e.g. a list where text is expected)";
    MissingKey = "E005", Error, "a required key is missing";
    InvalidValue = "E006", Error, "a value outside the allowed set or range";
    RhaiSyntax = "E010", Error, "a Rhai expression does not parse";
    UndefinedVariable = "E011", Error, "a Rhai expression uses a variable that does not exist there";
    UnknownFunction = "E012", Error, "a Rhai expression calls a function that does not exist for those arguments";
    UnknownProperty = "E020", Error, "a HubSpot property that the object does not have";
    UnknownTrigger = "E021", Error, "a trigger that is not `created` or a known HubSpot property of the object";
    ReadOnlyProperty = "E022", Error, "a mapping writes a read-only HubSpot property";
    JsonPathSyntax = "E030", Error, "an Accelo JSONPath does not parse";
    UnknownAcceloField = "E031", Error, "an Accelo JSONPath names a field the object does not have";
    UnwritableAcceloPath = "E032", Error, "a mapping writes an Accelo path that cannot be written";
    MappedTwice = "E040", Error, "a field is mapped twice";
    UnknownStatus = "E050", Error, "a status table names an Accelo status not listed in `accelo_statuses`";
    UnknownStatusValue = "E051", Error, "a status table names a value the HubSpot property does not allow";
    UnknownTestField = "E060", Error, "a test case references a field that is not mapped or not known";
    UnknownTestRecord = "E061", Error, "a test case expects an action for a record it does not define";
    DuplicateObject = "E070", Error, "two rule files describe the same object";
    MisplacedOption = "E071", Error, "an option that does not apply to this object";
    InvalidConfig = "E080", Error, "a config value that cannot work (URL, address, auth choice, limits)";
    Unreadable = "E090", Error, "a file or directory that cannot be read";
    DuplicateTrigger = "W001", Warning, "a trigger listed twice";
    CustomTrigger = "W002", Warning, "a custom property as trigger (HubSpot sends no webhooks for custom properties; only polling sees them)";
    MissingObject = "W003", Warning, "no rule file for an object (that object will not sync)";
    ShadowedProperty = "W004", Warning, "a custom property declared with the name of a standard one";
    RuleLimit = "W010", Warning, "a Rhai expression hits an evaluation limit on a sample record (operations, time, size, call depth): every record it runs on would fail";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secondary location shown with a diagnostic (e.g. "first mapped here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// Byte range in the same file.
    pub span: Range<usize>,
    /// What it is.
    pub label: String,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Which kind of problem.
    pub code: Code,
    /// Lower-case, no trailing period, user values in backticks.
    pub message: String,
    /// The file, as displayed (the path as given on the command line).
    pub file: String,
    /// Byte range in the file; `None` for problems about a file as a whole.
    pub span: Option<Range<usize>>,
    /// Text under the caret.
    pub label: Option<String>,
    /// Other locations in the same file.
    pub related: Vec<Related>,
    /// A hint on how to fix it.
    pub help: Option<String>,
    /// False when the human rendering must not quote the source (it may hold a secret).
    pub snippet: bool,
}

impl Diagnostic {
    /// A diagnostic at `span` of `file`.
    pub fn new(code: Code, file: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            file: file.to_string(),
            span: Some(span),
            label: None,
            related: Vec::new(),
            help: None,
            snippet: true,
        }
    }

    /// A diagnostic about a file or directory as a whole.
    pub fn whole(code: Code, file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            file: file.to_string(),
            span: None,
            label: None,
            related: Vec::new(),
            help: None,
            snippet: true,
        }
    }

    /// Keeps the position but never quotes the source line (it may hold a secret).
    pub fn without_snippet(mut self) -> Self {
        self.snippet = false;
        self
    }

    /// Sets the text under the caret.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary location.
    pub fn related(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related.push(Related {
            span,
            label: label.into(),
        });
        self
    }

    /// The severity of this diagnostic's code.
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// Every diagnostic of one check, plus the text of the files they point into.
#[derive(Debug, Clone, Default)]
pub struct Report {
    sources: BTreeMap<String, Arc<str>>,
    diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Report {
        Report::default()
    }

    /// Registers the text of `file` so its diagnostics can show snippets.
    pub fn add_source(&mut self, file: &str, text: Arc<str>) {
        self.sources.insert(file.to_string(), text);
    }

    /// Masks `range` of `file`'s registered text: no rendering can then quote what was there,
    /// e.g. a secret pasted into the config. Each character becomes a mask character of the
    /// same UTF-8 length (`*` for ASCII) and line breaks stay, so every byte span, line and
    /// column computed on the masked text is the same as on the original.
    pub fn redact(&mut self, file: &str, range: Range<usize>) {
        if let Some(text) = self.sources.get_mut(file) {
            let masked: String = text
                .char_indices()
                .map(|(i, c)| {
                    if i < range.start || i >= range.end || c == '\n' || c == '\r' {
                        c
                    } else {
                        match c.len_utf8() {
                            1 => '*',
                            2 => '\u{d7}',    // ×
                            3 => '\u{2217}',  // ∗
                            _ => '\u{1f7b1}', // 🞱
                        }
                    }
                })
                .collect();
            *text = Arc::from(masked);
        }
    }

    /// Adds one diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// Moves every diagnostic and source of `other` into `self`.
    pub fn extend(&mut self, other: Report) {
        self.sources.extend(other.sources);
        self.diagnostics.extend(other.diagnostics);
    }

    /// The diagnostics, in the order they were found (see [`Report::sort`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// True when at least one error was found.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity() == Severity::Error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }

    /// Orders diagnostics by file, then position, then code — a stable order for output.
    pub fn sort(&mut self) {
        self.diagnostics.sort_by(|a, b| {
            (
                &a.file,
                a.span.as_ref().map(|s| s.start),
                a.code,
                &a.message,
            )
                .cmp(&(
                    &b.file,
                    b.span.as_ref().map(|s| s.start),
                    b.code,
                    &b.message,
                ))
        });
        self.diagnostics.dedup();
    }

    /// The source text registered for `file`.
    pub fn source(&self, file: &str) -> Option<&Arc<str>> {
        self.sources.get(file)
    }

    /// 1-based (line, column) of a diagnostic; `(1, 1)` for whole-file diagnostics.
    pub fn position(&self, d: &Diagnostic) -> (usize, usize) {
        match (&d.span, self.sources.get(&d.file)) {
            (Some(span), Some(text)) => line_col(text, span.start),
            _ => (1, 1),
        }
    }

    /// The JSON form: `{"diagnostics":[{"file","line","column","severity","code","message"}]}`.
    pub fn to_json(&self) -> Value {
        let items: Vec<Value> = self
            .diagnostics
            .iter()
            .map(|d| {
                let (line, column) = self.position(d);
                let mut v = json!({
                    "file": d.file,
                    "line": line,
                    "column": column,
                    "severity": d.severity().as_str(),
                    "code": d.code.as_str(),
                    "message": d.message,
                });
                if let (Some(help), Some(obj)) = (&d.help, v.as_object_mut()) {
                    obj.insert("help".into(), Value::String(help.clone()));
                }
                v
            })
            .collect();
        json!({ "diagnostics": items })
    }

    /// The human form: one miette report per diagnostic, then a summary line. `color` selects
    /// ANSI colours (for terminals); without it the output is plain Unicode (stable for tests).
    pub fn render_human(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        let mut out = String::new();
        for d in &self.diagnostics {
            let view = View {
                d,
                source: self.sources.get(&d.file).filter(|_| d.snippet).map(|text| {
                    NamedSource::new(d.file.clone(), text.to_string()).with_language("yaml")
                }),
                position: self.position(d),
            };
            if handler.render_report(&mut out, &view).is_err() {
                out.push_str(&format!("{}: {}\n", d.code, d.message));
            }
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// `2 errors, 1 warning` / `no problems found`.
    pub fn summary(&self) -> String {
        let (e, w) = (self.error_count(), self.warning_count());
        if e == 0 && w == 0 {
            return "no problems found".into();
        }
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        format!("{}, {}", plural(e, "error"), plural(w, "warning"))
    }
}

/// Adapter that shows one [`Diagnostic`] through miette.
struct View<'a> {
    d: &'a Diagnostic,
    source: Option<NamedSource<String>>,
    position: (usize, usize),
}

impl fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View").field("d", &self.d).finish()
    }
}

impl fmt::Display for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source.is_some() && self.d.span.is_some() {
            f.write_str(&self.d.message)
        } else {
            // No snippet will be shown: say where.
            let (line, col) = self.position;
            if self.d.span.is_some() {
                write!(f, "{}:{line}:{col}: {}", self.d.file, self.d.message)
            } else {
                write!(f, "{}: {}", self.d.file, self.d.message)
            }
        }
    }
}

impl std::error::Error for View<'_> {}

fn source_span(r: &Range<usize>) -> SourceSpan {
    SourceSpan::from((r.start, r.end.saturating_sub(r.start)))
}

impl miette::Diagnostic for View<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.d.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity() {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.d
            .help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match (&self.source, &self.d.span) {
            (Some(s), Some(_)) => Some(s as &dyn miette::SourceCode),
            _ => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.d.span.as_ref()?;
        self.source.as_ref()?;
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            self.d.label.clone(),
            source_span(span),
        )];
        for r in &self.d.related {
            labels.push(LabeledSpan::new_with_span(
                Some(r.label.clone()),
                source_span(&r.span),
            ));
        }
        Some(Box::new(labels.into_iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            let first = c.as_str().as_bytes()[0];
            match c.severity() {
                Severity::Error => assert_eq!(first, b'E'),
                Severity::Warning => assert_eq!(first, b'W'),
            }
        }
    }

    #[test]
    fn line_col_counts_characters() {
        let t = "ab\nçd: x\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, t.find('x').unwrap()), (2, 5));
    }

    #[test]
    fn renders_both_forms() {
        let mut r = Report::new();
        r.add_source("a.yaml", Arc::from("object: company\ntriggers: [nme]\n"));
        r.push(
            Diagnostic::new(
                Code::UnknownTrigger,
                "a.yaml",
                27..30,
                "unknown trigger `nme`",
            )
            .label("not a company property")
            .help("did you mean `name`?"),
        );
        let human = r.render_human(false);
        assert!(human.contains("a.yaml:2:12"), "{human}");
        assert!(human.contains("E021"));
        assert!(human.contains("did you mean `name`?"));
        let j = r.to_json();
        assert_eq!(j["diagnostics"][0]["line"], 2);
        assert_eq!(j["diagnostics"][0]["column"], 12);
        assert_eq!(j["diagnostics"][0]["severity"], "error");
    }
}

#[cfg(test)]
mod redact_tests {
    use super::*;

    #[test]
    fn redacted_text_never_renders() {
        let mut r = Report::new();
        let text = "a: 1\ntoken_env: pat-na1-secret\nb: x\n";
        r.add_source("t.yaml", Arc::from(text));
        let at = text.find("pat").unwrap();
        r.redact("t.yaml", at..at + "pat-na1-secret".len());
        r.push(Diagnostic::new(
            Code::InvalidConfig,
            "t.yaml",
            30..31,
            "near it",
        ));
        let out = r.render_human(false);
        assert!(!out.contains("secret"), "{out}");
        assert!(out.contains("**************"), "{out}");
    }

    #[test]
    fn redaction_keeps_lines_columns_and_byte_offsets() {
        let text = "a: 1\ntoken_env: pé\u{540d}🎉x\r\nb: [é, y]\n";
        let mut r = Report::new();
        r.add_source("t.yaml", Arc::from(text));
        // A range over several lines, line breaks and non-ASCII characters included.
        let from = text.find("pé").unwrap();
        let to = text.find('y').unwrap();
        r.redact("t.yaml", from..to);
        let masked = r.source("t.yaml").unwrap().to_string();
        assert_eq!(masked.len(), text.len());
        assert_eq!(masked.chars().count(), text.chars().count());
        assert_eq!(masked.lines().count(), text.lines().count());
        assert!(!masked.contains('é') && !masked.contains('🎉'), "{masked}");
        assert!(masked.ends_with("y]\n"), "{masked}");
        for offset in [0, from, text.find('x').unwrap(), to, text.len()] {
            assert_eq!(
                line_col(&masked, offset),
                line_col(text, offset),
                "{offset}"
            );
        }
    }
}
