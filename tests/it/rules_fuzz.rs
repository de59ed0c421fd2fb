//! No input makes `tandem check` panic, and every diagnostic it reports lies inside its file:
//! arbitrary text; random documents built from the rule-file vocabulary (with hostile Rhai and
//! JSONPath scalars), written as JSON, as plain block YAML, and through an emitter that uses
//! real YAML syntax (block scalars with chomping and indentation indicators, quoted styles,
//! anchors, aliases, `<<` merges, tags, flow collections, several documents, directives, CRLF,
//! tabs, a BOM, non-ASCII); and random edits of the shipped files and of every valid and invalid
//! fixture — each text checked as a rule file and as a config. A non-UTF-8 file is reported
//! (`E090`), not a panic. `PROPTEST_CASES` sets the number of cases (default 200).

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};
use tandem_core::rules::{Paths, Report, Source, check, check_sources};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200)
}

fn src(name: &str, text: &str) -> Source {
    Source {
        name: name.into(),
        text: Arc::from(text),
    }
}

/// Every diagnostic of `file` has a span inside `text` (on character boundaries, start before
/// end, related spans too) and a 1-based line and column that exist in `text`.
fn assert_located(report: &Report, file: &str, text: &str) {
    let json = report.to_json();
    let rendered = json["diagnostics"].as_array().unwrap();
    assert_eq!(rendered.len(), report.diagnostics().len());
    let lines: Vec<&str> = text.split('\n').collect();
    for (d, j) in report.diagnostics().iter().zip(rendered) {
        if d.file != file {
            continue;
        }
        let spans = d.span.iter().chain(d.related.iter().map(|r| &r.span));
        for span in spans {
            assert!(
                span.start <= span.end && span.end <= text.len(),
                "{} span {span:?} outside a {}-byte file: {}",
                d.code,
                text.len(),
                d.message
            );
            assert!(
                text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
                "{} span {span:?} splits a character: {}",
                d.code,
                d.message
            );
        }
        let line = j["line"].as_u64().unwrap() as usize;
        let column = j["column"].as_u64().unwrap() as usize;
        assert!(
            (1..=lines.len()).contains(&line),
            "{} at line {line} of a {}-line file: {}",
            d.code,
            lines.len(),
            d.message
        );
        let width = lines[line - 1].chars().count();
        assert!(
            (1..=width + 1).contains(&column),
            "{} at {line}:{column}, the line has {width} characters: {}",
            d.code,
            d.message
        );
    }
}

/// Checks `text` as a rule file (next to a valid config) and as a config; must not panic, and
/// every diagnostic must be located inside `text`.
fn check_both(text: &str) {
    let config = src(
        "tandem.yaml",
        include_str!("../fixtures/rules/valid/tandem.yaml"),
    );
    let checked = check_sources(Some(&config), &[src("fuzz.yaml", text)], "rules");
    assert_located(&checked.report, "fuzz.yaml", text);
    // Every diagnostic renders, in both forms.
    let _ = checked.report.render_human(false);
    let _ = checked.report.to_json();
    let checked = check_sources(Some(&src("tandem.yaml", text)), &[], "rules");
    assert_located(&checked.report, "tandem.yaml", text);
    let _ = checked.report.render_human(false);
}

const KEYS: &[&str] = &[
    "object",
    "requires_company",
    "triggers",
    "custom_properties",
    "criteria",
    "dedup",
    "fields",
    "status",
    "accelo_statuses",
    "tests",
    "name",
    "hubspot",
    "accelo",
    "direction",
    "transform",
    "pull",
    "push",
    "precedence",
    "blank",
    "type",
    "options",
    "read_only",
    "id",
    "values",
    "company",
    "links",
    "expect",
    "op",
    "source",
    "target",
    "changes",
    "reason",
    "bypass_criteria",
    "initiator",
    "url",
    "token_env",
    "oauth",
    "store",
    "sync",
    "server",
    "listen",
    "notify",
    "email",
    "to",
    "from",
    "guardrails",
    "max_share",
];

const SCALARS: &[&str] = &[
    "company",
    "contact",
    "both",
    "pull",
    "push",
    "none",
    "keep",
    "clear",
    "initiator",
    "hubspot",
    "accelo",
    "create",
    "update",
    "link",
    "noop",
    "skip",
    "name",
    "lifecyclestage",
    "created",
    "$.name",
    "$.affiliation.email",
    "$..x",
    "$[",
    "$.status",
    "$.postal_address",
    "true",
    "record.name",
    "lower(value)",
    "loop { }",
    "let s = \"x\"; loop { s += s }",
    "fn f(x) { f(x) } f(1)",
    "eval(\"1\")",
    "import \"x\" as y;",
    "record.",
    "value +* 1",
    "first(record.a, record.b, record.c)",
    "domain(value) ?? \"\"",
    "\u{0}",
    "é",
    "",
    "ÿ\u{202e}",
    "{{",
    "]]",
    "Active",
    "Prospect",
    "lead",
    "customer",
    "1",
    "-1",
    "99999999999999999999999",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::sample::select(SCALARS).prop_map(|s| Value::String(s.to_string())),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |kv| {
                    let mut m = Map::new();
                    for (k, v) in kv {
                        m.insert(k.to_string(), v);
                    }
                    Value::Object(m)
                }
            ),
        ]
    })
}

/// Tags, known and unknown (an undeclared handle is a YAML error).
const TAGS: &[&str] = &[
    "!!str",
    "!!int",
    "!!bool",
    "!!null",
    "!!float",
    "!!map",
    "!!seq",
    "!custom",
    "!<tag:yaml.org,2002:str>",
    "!e!undeclared",
];

/// How a scalar is written.
#[derive(Debug, Clone)]
enum Style {
    Plain,
    Single,
    Double,
    /// `|` with chomping (`""`, `-`, `+`) and an optional indentation indicator.
    Literal(&'static str, Option<u8>),
    /// `>` likewise.
    Folded(&'static str, Option<u8>),
}

/// Node properties: an anchor `&aN` and a tag.
#[derive(Debug, Clone)]
struct Props {
    anchor: Option<u8>,
    tag: Option<&'static str>,
}

/// A YAML node with its syntax.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String, Style, Props),
    /// Items, flow style.
    Seq(Vec<Node>, bool, Props),
    /// Entries, flow style, a `<<: *aN` merge.
    Map(Vec<(&'static str, Node)>, bool, Option<u8>, Props),
    /// `*aN` (maybe of an anchor that does not exist).
    Alias(u8),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(SCALARS).prop_map(str::to_string),
        2 => "\\PC{0,12}",
        2 => proptest::collection::vec("[ a-z\u{e9}\u{540d}\u{1F389}'\"#:{}\\[\\],&*!|>%@`-]{0,10}", 1..4)
            .prop_map(|l| l.join("\n")),
        1 => Just("  leading spaces\n second line\n".to_string()),
        1 => Just("line one\n\n\nline four\n\n".to_string()),
        1 => Just("tab\there\r\nand crlf".to_string()),
    ]
}

fn style() -> impl Strategy<Value = Style> {
    let chomp = proptest::sample::select(&["", "-", "+"][..]);
    let indicator = proptest::option::weighted(0.3, 1u8..4);
    prop_oneof![
        2 => Just(Style::Plain),
        2 => Just(Style::Single),
        2 => Just(Style::Double),
        2 => (chomp.clone(), indicator.clone()).prop_map(|(c, i)| Style::Literal(c, i)),
        2 => (chomp, indicator).prop_map(|(c, i)| Style::Folded(c, i)),
    ]
}

fn props() -> impl Strategy<Value = Props> {
    (
        proptest::option::weighted(0.2, 0u8..4),
        proptest::option::weighted(0.1, proptest::sample::select(TAGS)),
    )
        .prop_map(|(anchor, tag)| Props { anchor, tag })
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        8 => (text(), style(), props()).prop_map(|(t, s, p)| Node::Scalar(t, s, p)),
        1 => (0u8..5).prop_map(Node::Alias),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            (
                proptest::collection::vec(inner.clone(), 0..4),
                proptest::bool::weighted(0.25),
                props()
            )
                .prop_map(|(items, flow, p)| Node::Seq(items, flow, p)),
            (
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..5),
                proptest::bool::weighted(0.25),
                proptest::option::weighted(0.2, 0u8..4),
                props()
            )
                .prop_map(|(entries, flow, merge, p)| Node::Map(entries, flow, merge, p)),
        ]
    })
}

/// What surrounds the document and how its text is encoded.
#[derive(Debug, Clone)]
struct Framing {
    directive: bool,
    start: bool,
    end: bool,
    second_document: bool,
    crlf: bool,
    bom: bool,
    /// Lines whose first indentation space becomes a tab.
    tabs: Vec<Index>,
    /// Lines that get a trailing comment.
    comments: Vec<Index>,
}

fn framing() -> impl Strategy<Value = Framing> {
    (
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.3),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.25),
        proptest::bool::weighted(0.15),
        proptest::option::weighted(0.1, any::<Index>()).prop_map(|t| t.into_iter().collect()),
        proptest::collection::vec(any::<Index>(), 0..3),
    )
        .prop_map(
            |(directive, start, end, second_document, crlf, bom, tabs, comments)| Framing {
                directive,
                start,
                end,
                second_document,
                crlf,
                bom,
                tabs,
                comments,
            },
        )
}

fn prefix(p: &Props) -> String {
    let mut s = String::new();
    if let Some(a) = p.anchor {
        s.push_str(&format!("&a{a} "));
    }
    if let Some(t) = p.tag {
        s.push_str(t);
        s.push(' ');
    }
    s
}

fn double_quoted(t: &str) -> String {
    // JSON escapes are YAML escapes; spell some characters with YAML-only escapes too.
    serde_json::to_string(t)
        .unwrap()
        .replace('\u{e9}', "\\xe9")
        .replace('\u{1F389}', "\\U0001F389")
}

fn plain_ok(t: &str, flow: bool) -> bool {
    let specials = if flow {
        ",[]{}#&*!|>'\"%@`:"
    } else {
        "#&*!|>'\"%@`:{}[],"
    };
    !t.is_empty()
        && !t.contains('\n')
        && !t.contains('\r')
        && !t.contains('\t')
        && t.trim() == t
        && !t.chars().any(|c| specials.contains(c))
        && !t.starts_with(['-', '?'])
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

/// Writes nodes as YAML, remembering the anchors defined so far so that most aliases and
/// merges refer to one (`Alias(4)` stays dangling on purpose).
#[derive(Default)]
struct Emitter {
    out: String,
    anchors: Vec<u8>,
}

impl Emitter {
    fn alias(&self, a: u8) -> Option<String> {
        if a >= 4 {
            return Some(format!("*a{a}"));
        }
        if self.anchors.is_empty() {
            return None;
        }
        Some(format!(
            "*a{}",
            self.anchors[a as usize % self.anchors.len()]
        ))
    }

    fn defined(&mut self, p: &Props) {
        if let Some(a) = p.anchor {
            self.anchors.push(a);
        }
    }

    /// Writes `n` right after `key:` or `-` on a line indented by `indent`; nested lines are
    /// indented by `indent + 2`.
    fn after(&mut self, n: &Node, indent: usize) {
        match n {
            Node::Alias(a) => {
                let text = self.alias(*a).unwrap_or_else(|| "no_anchor_yet".into());
                self.out.push_str(&format!(" {text}\n"));
            }
            Node::Scalar(t, style, p) => {
                let pre = prefix(p);
                match style {
                    Style::Plain if plain_ok(t, false) => {
                        self.out.push_str(&format!(" {pre}{t}\n"))
                    }
                    Style::Single if !t.contains('\n') && !t.contains('\r') => self
                        .out
                        .push_str(&format!(" {pre}'{}'\n", t.replace('\'', "''"))),
                    Style::Literal(chomp, ind) | Style::Folded(chomp, ind) => {
                        let mark = if matches!(style, Style::Literal(..)) {
                            '|'
                        } else {
                            '>'
                        };
                        let ind = ind.map(|i| i.to_string()).unwrap_or_default();
                        self.out.push_str(&format!(" {pre}{mark}{ind}{chomp}\n"));
                        for line in t.split('\n') {
                            if !line.is_empty() {
                                self.out.push_str(&pad(indent + 2));
                                self.out.push_str(line);
                            }
                            self.out.push('\n');
                        }
                    }
                    _ => self.out.push_str(&format!(" {pre}{}\n", double_quoted(t))),
                }
                self.defined(p);
            }
            Node::Seq(items, flow, p) => {
                if *flow || items.is_empty() {
                    let f = self.flow(n);
                    self.out.push_str(&format!(" {f}\n"));
                    return;
                }
                self.out.push_str(&format!(" {}\n", prefix(p).trim_end()));
                for item in items {
                    self.out.push_str(&pad(indent + 2));
                    self.out.push('-');
                    self.after(item, indent + 2);
                }
                self.defined(p);
            }
            Node::Map(entries, flow, merge, p) => {
                if *flow || (entries.is_empty() && merge.is_none()) {
                    let f = self.flow(n);
                    self.out.push_str(&format!(" {f}\n"));
                    return;
                }
                self.out.push_str(&format!(" {}\n", prefix(p).trim_end()));
                self.entries(entries, *merge, indent + 2);
                self.defined(p);
            }
        }
    }

    fn entries(&mut self, entries: &[(&str, Node)], merge: Option<u8>, indent: usize) {
        if let Some(alias) = merge.and_then(|m| self.alias(m)) {
            self.out.push_str(&format!("{}<<: {alias}\n", pad(indent)));
        }
        for (k, v) in entries {
            self.out.push_str(&pad(indent));
            self.out.push_str(k);
            self.out.push(':');
            self.after(v, indent);
        }
    }

    fn flow(&mut self, n: &Node) -> String {
        let text = match n {
            Node::Alias(a) => self.alias(*a).unwrap_or_else(|| "no_anchor_yet".into()),
            Node::Scalar(t, style, p) => {
                let body = match style {
                    Style::Plain if plain_ok(t, true) => t.clone(),
                    Style::Single if !t.contains('\n') && !t.contains('\r') => {
                        format!("'{}'", t.replace('\'', "''"))
                    }
                    _ => double_quoted(t),
                };
                format!("{}{body}", prefix(p))
            }
            Node::Seq(items, _, p) => {
                let items: Vec<String> = items.iter().map(|i| self.flow(i)).collect();
                format!("{}[{}]", prefix(p), items.join(", "))
            }
            Node::Map(entries, _, merge, p) => {
                let mut parts: Vec<String> = merge
                    .and_then(|m| self.alias(m))
                    .map(|a| format!("<<: {a}"))
                    .into_iter()
                    .collect();
                for (k, v) in entries {
                    let v = self.flow(v);
                    parts.push(format!("{k}: {v}"));
                }
                format!("{}{{{}}}", prefix(p), parts.join(", "))
            }
        };
        if let Node::Scalar(_, _, p) | Node::Seq(_, _, p) | Node::Map(_, _, _, p) = n {
            self.defined(p);
        }
        text
    }
}

/// A rule-file-like document: `object: …` and `entries` at the top, in real YAML syntax.
fn emit_document(
    object: &str,
    entries: &[(&'static str, Node)],
    merge: Option<u8>,
    f: &Framing,
) -> String {
    let mut e = Emitter {
        out: format!("object: {object}\n"),
        anchors: Vec::new(),
    };
    if object.starts_with('&') {
        e.anchors.push(0);
    }
    e.entries(entries, merge, 0);
    let mut lines: Vec<String> = e.out.lines().map(str::to_string).collect();
    for t in &f.tabs {
        let i = t.index(lines.len());
        if lines[i].starts_with(' ') {
            lines[i].replace_range(0..1, "\t");
        }
    }
    for c in &f.comments {
        let i = c.index(lines.len());
        lines[i].push_str(" # commentaire \u{e9}t\u{e9} \u{540d}\u{524d} \u{1F389}");
    }
    let mut text = String::new();
    if f.directive {
        text.push_str("%YAML 1.2\n---\n");
    } else if f.start {
        text.push_str("--- # the rules\n");
    }
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    if f.end {
        text.push_str("...\n");
    }
    if f.second_document {
        text.push_str("---\nobject: contact\n");
    }
    if f.crlf {
        text = text.replace('\n', "\r\n");
    }
    if f.bom {
        text.insert(0, '\u{feff}');
    }
    text
}

/// YAML fragments that edits insert.
const SNIPPETS: &[&str] = &[
    "|-\n",
    "|+\n",
    ">2\n",
    "> \n",
    "|1-\n",
    "&a ",
    "&a1 ",
    "*a",
    "*a1",
    "<<: *a\n",
    "<<: [*a, *b]\n",
    "!!str ",
    "!!map ",
    "!!binary ",
    "!local ",
    "---\n",
    "...\n",
    "--- |\n",
    "%YAML 1.2\n",
    "%TAG ! tag:x,2024:\n",
    "\t",
    "\r\n",
    "\r",
    "\u{feff}",
    "'",
    "\"",
    "''",
    "\\u00e9",
    "\\",
    "# \u{e9}\n",
    ": ",
    ":",
    "- ",
    "? ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\u{e9}",
    "\u{540d}\u{524d}",
    "\u{1F389}",
    "\u{202e}",
    "\u{200b}",
    "\u{0}",
    "\n",
    "\n  ",
    "\n    - ",
    "`${record.x}`",
    "`",
    "record.",
    "record.nmae",
    "$[",
    "$.",
    "$..",
    "~",
    "null",
    "0x1F",
    "1e3",
    ".inf",
    "yes",
    "@",
    "%",
];

/// One edit of a file's text.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index, usize),
    Insert(Index, String),
    /// Indents the line at the index by this many more spaces (or removes them).
    Reindent(Index, i8),
    DuplicateLine(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => (any::<Index>(), 0usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        3 => (any::<Index>(), proptest::sample::select(SNIPPETS)).prop_map(|(i, s)| Edit::Insert(i, s.to_string())),
        1 => (any::<Index>(), "\\PC{0,6}").prop_map(|(i, s)| Edit::Insert(i, s)),
        1 => (any::<Index>(), -4i8..5).prop_map(|(i, n)| Edit::Reindent(i, n)),
        1 => any::<Index>().prop_map(Edit::DuplicateLine),
    ]
}

fn floor_boundary(t: &str, mut i: usize) -> usize {
    i = i.min(t.len());
    while !t.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &mut String, e: &Edit) {
    match e {
        Edit::Delete(at, n) => {
            let i = floor_boundary(text, at.index(text.len() + 1));
            let mut j = (i + n).min(text.len());
            while !text.is_char_boundary(j) {
                j += 1;
            }
            text.replace_range(i..j, "");
        }
        Edit::Insert(at, s) => {
            let i = floor_boundary(text, at.index(text.len() + 1));
            text.insert_str(i, s);
        }
        Edit::Reindent(at, n) => {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .filter(|i| *i < text.len())
                .collect();
            if starts.is_empty() {
                return;
            }
            let s = starts[at.index(starts.len())];
            if *n >= 0 {
                text.insert_str(s, &pad(*n as usize));
            } else {
                let spaces = text[s..].len() - text[s..].trim_start_matches(' ').len();
                let k = spaces.min(n.unsigned_abs() as usize);
                text.replace_range(s..s + k, "");
            }
        }
        Edit::DuplicateLine(at) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            if lines.is_empty() {
                return;
            }
            let i = at.index(lines.len());
            let mut line = lines[i].to_string();
            if !line.ends_with('\n') {
                line.push('\n');
            }
            let at_byte: usize = lines[..i].iter().map(|l| l.len()).sum();
            text.insert_str(at_byte, &line);
        }
    }
}

/// The shipped files and every fixture: (path, text).
static FILES: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    fn yaml_in(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                yaml_in(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    yaml_in(Path::new("rules"), &mut paths);
    yaml_in(Path::new("tests/fixtures/rules"), &mut paths);
    let files: Vec<(String, String)> = paths
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.display().to_string(), text))
        })
        .collect();
    assert!(files.len() >= 30, "only {} files", files.len());
    files
});

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check_both(&text);
    }

    #[test]
    fn arbitrary_yaml_documents_never_panic(mut doc in tree(), object in proptest::sample::select(&["company", "contact", "x"])) {
        if let Value::Object(m) = &mut doc {
            m.insert("object".into(), Value::String(object.to_string()));
        }
        // JSON is YAML: flow style.
        check_both(&serde_json::to_string(&doc).unwrap());
        // And as block YAML through a simple emitter.
        check_both(&to_block_yaml(&doc, 0));
    }

    #[test]
    fn documents_in_real_yaml_syntax_never_panic(
        object in proptest::sample::select(&["company", "contact", "'company'", "!!str contact", "&o company", "x"]),
        entries in proptest::collection::vec((proptest::sample::select(KEYS), node()), 0..8),
        merge in proptest::option::weighted(0.1, 0u8..4),
        f in framing(),
    ) {
        check_both(&emit_document(object, &entries, merge, &f));
    }

    #[test]
    fn edited_shipped_files_and_fixtures_never_panic(
        which in any::<Index>(),
        edits in proptest::collection::vec(edit(), 1..6),
        crlf in proptest::bool::weighted(0.2),
        bom in proptest::bool::weighted(0.1),
    ) {
        let (_, base) = &FILES[which.index(FILES.len())];
        let mut text = base.clone();
        for e in &edits {
            apply(&mut text, e);
        }
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        if bom {
            text.insert(0, '\u{feff}');
        }
        check_both(&text);
    }
}

#[test]
fn the_emitter_writes_the_yaml_it_claims() {
    // A sanity check of the generator itself: a known document in every scalar style parses to
    // the expected rule file, so the property test above really exercises that syntax.
    let p = |anchor, tag| Props { anchor, tag };
    let entries = vec![
        (
            "triggers",
            Node::Seq(
                vec![
                    Node::Scalar("created".into(), Style::Plain, p(None, None)),
                    Node::Scalar("name".into(), Style::Single, p(Some(1), None)),
                    Node::Scalar("domain".into(), Style::Double, p(None, Some("!!str"))),
                    Node::Alias(1),
                ],
                false,
                p(None, None),
            ),
        ),
        (
            "criteria",
            Node::Map(
                vec![
                    (
                        "pull",
                        Node::Scalar(
                            "present(record.name)\n".into(),
                            Style::Literal("", None),
                            p(None, None),
                        ),
                    ),
                    (
                        "push",
                        Node::Scalar("true".into(), Style::Folded("-", Some(2)), p(None, None)),
                    ),
                ],
                false,
                None,
                p(Some(0), None),
            ),
        ),
        (
            "fields",
            Node::Seq(
                vec![Node::Map(
                    vec![
                        (
                            "hubspot",
                            Node::Scalar("name".into(), Style::Plain, p(None, None)),
                        ),
                        (
                            "accelo",
                            Node::Scalar("$.name".into(), Style::Double, p(None, None)),
                        ),
                    ],
                    true,
                    None,
                    p(None, None),
                )],
                false,
                p(None, None),
            ),
        ),
    ];
    let f = Framing {
        directive: true,
        start: false,
        end: true,
        second_document: false,
        crlf: true,
        bom: true,
        tabs: vec![],
        comments: vec![],
    };
    let text = emit_document("company", &entries, None, &f);
    let config = src(
        "tandem.yaml",
        include_str!("../fixtures/rules/valid/tandem.yaml"),
    );
    let checked = check_sources(Some(&config), &[src("companies.yaml", &text)], "rules");
    let errors: Vec<String> = checked
        .report
        .diagnostics()
        .iter()
        .filter(|d| d.code.as_str().starts_with('E'))
        .map(|d| format!("{} {}", d.code, d.message))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{text}");
    let doc = tandem_core::rules::yaml::parse(&text).value.unwrap();
    assert_eq!(
        doc["triggers"],
        serde_json::json!(["created", "name", "domain", "name"])
    );
    assert_eq!(doc["criteria"]["pull"], "present(record.name)\n");
    assert_eq!(doc["criteria"]["push"], "true");
    assert_eq!(doc["fields"][0]["accelo"], "$.name");
}

#[test]
fn a_non_utf8_file_is_reported_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let valid = Path::new("tests/fixtures/rules/valid");
    for f in ["tandem.yaml", "contacts.yaml"] {
        std::fs::copy(valid.join(f), dir.path().join(f)).unwrap();
    }
    // Latin-1 text: `é` as the single byte 0xE9.
    let companies = dir.path().join("companies.yaml");
    std::fs::write(
        &companies,
        b"object: company\nfields:\n  - hubspot: name\n    accelo: $.caf\xe9\n",
    )
    .unwrap();
    let paths = Paths {
        config: dir.path().join("tandem.yaml"),
        rules_dir: dir.path().to_path_buf(),
    };
    let checked = check(&paths);
    assert!(checked.rules.is_none());
    let json = checked.report.to_json();
    let diags = json["diagnostics"].as_array().unwrap();
    let d = diags
        .iter()
        .find(|d| d["code"] == "E090")
        .unwrap_or_else(|| panic!("no E090 in {json}"));
    assert_eq!(d["file"], companies.display().to_string());
    assert_eq!(d["message"], "cannot read the rule file: not UTF-8 text");
    assert_eq!(d["severity"], "error");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(1), Some(1))
    );
    let _ = checked.report.render_human(false);

    // A non-UTF-8 config likewise.
    std::fs::write(dir.path().join("tandem.yaml"), b"\xff\xfeh\x00u\x00b\x00").unwrap();
    let checked = check(&paths);
    let json = checked.report.to_json();
    assert!(
        json["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["code"] == "E090"
                && d["message"] == "cannot read the config file: not UTF-8 text"),
        "{json}"
    );
}

fn to_block_yaml(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| match v {
                Value::Object(c) if !c.is_empty() => {
                    format!("{pad}{k}:\n{}", to_block_yaml(v, indent + 2))
                }
                Value::Array(a) if !a.is_empty() => {
                    format!("{pad}{k}:\n{}", to_block_yaml(v, indent + 2))
                }
                other => format!("{pad}{k}: {}\n", serde_json::to_string(other).unwrap()),
            })
            .collect(),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|v| match v {
                Value::Object(c) if !c.is_empty() => {
                    let inner = to_block_yaml(v, indent + 2);
                    format!("{pad}- {}", inner.trim_start())
                }
                other => format!("{pad}- {}\n", serde_json::to_string(other).unwrap()),
            })
            .collect(),
        other => format!("{pad}{}\n", serde_json::to_string(other).unwrap()),
    }
}
