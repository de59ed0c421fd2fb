//! YAML text → a JSON value tree plus the source span of every node, addressed by JSON pointer.
//!
//! Rule and config files are read with serde-saphyr's event parser (`granit_parser`) rather than
//! deserialized straight into Rust types, for two reasons: the same tree is validated against
//! the generated JSON Schemas (whose errors are JSON pointers), and every later check needs the
//! exact span of the node it complains about — including the byte range of a Rhai scalar, so
//! that a Rhai error lands on the right character.
//!
//! Scalars resolve by the YAML 1.2 core schema (the one editors and `check-jsonschema` use):
//! `yes`/`no`/`on`/`off` stay strings. Keys are always strings. Duplicate keys, complex keys and
//! extra documents are reported, never silently merged. Alias expansion is budgeted so a
//! "billion laughs" file fails cleanly instead of exhausting memory.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

/// Most nodes (including alias copies) one file may expand to.
const NODE_BUDGET: usize = 200_000;

/// How a scalar was written in the source; decides how positions inside it map back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted.
    Plain,
    /// `'…'`.
    SingleQuoted,
    /// `"…"`.
    DoubleQuoted,
    /// `|` block.
    Literal,
    /// `>` block.
    Folded,
    /// A mapping or sequence.
    Collection,
    /// An alias (`*name`) standing for an anchored node.
    Alias,
}

/// Where one node sits in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The key's span when the node is a mapping value.
    pub key: Option<Range<usize>>,
    /// The value's span (for scalars, including quotes; for block scalars, the content).
    pub value: Range<usize>,
    /// How the value was written.
    pub style: Style,
}

/// JSON pointer → node span, for one file.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    nodes: HashMap<String, Node>,
}

impl SpanIndex {
    /// The node at exactly `pointer`.
    pub fn get(&self, pointer: &str) -> Option<&Node> {
        self.nodes.get(pointer)
    }

    /// The node at `pointer`, or its nearest ancestor that has one (alias copies and implicit
    /// values have no spans of their own).
    pub fn nearest(&self, pointer: &str) -> Option<&Node> {
        let mut p = pointer;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return Some(n);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    /// The span of the value at `pointer` (nearest ancestor if needed; `0..0` as a last resort).
    pub fn value_span(&self, pointer: &str) -> Range<usize> {
        self.nearest(pointer).map_or(0..0, |n| n.value.clone())
    }

    /// The span of the key naming `pointer` if it is a mapping value, else its value span.
    pub fn key_span(&self, pointer: &str) -> Range<usize> {
        match self.get(pointer) {
            Some(Node { key: Some(k), .. }) => k.clone(),
            _ => self.value_span(pointer),
        }
    }
}

/// Appends one reference token to a JSON pointer (RFC 6901 escaping).
pub fn push_pointer(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// What went wrong while reading the YAML itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YamlErrorKind {
    /// Not well-formed YAML.
    Syntax,
    /// A key appears twice in one mapping; `first` is the earlier key.
    DuplicateKey {
        /// The span of the first occurrence.
        first: Range<usize>,
    },
    /// A mapping or sequence used as a key.
    ComplexKey,
    /// More than one document in the file.
    ExtraDocument,
    /// Alias expansion exceeded the node budget.
    TooLarge,
}

/// One problem found while reading the YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Which problem.
    pub kind: YamlErrorKind,
    /// Where (byte range).
    pub span: Range<usize>,
    /// Lower-case description.
    pub message: String,
}

/// The result of reading one file: the tree (absent when the YAML is not well-formed) and its
/// spans, plus every problem found.
#[derive(Debug, Clone, Default)]
pub struct YamlDoc {
    /// The document as JSON; `None` after a syntax error.
    pub value: Option<Value>,
    /// Spans of every node.
    pub index: SpanIndex,
    /// Problems, in source order.
    pub errors: Vec<YamlError>,
}

enum Frame {
    Seq {
        ptr: String,
        items: Vec<Value>,
        start: usize,
        anchor: usize,
        key: Option<Range<usize>>,
    },
    Map {
        ptr: String,
        map: Map<String, Value>,
        keys: HashMap<String, Range<usize>>,
        start: usize,
        anchor: usize,
        key: Option<Range<usize>>,
        /// The pending key (text, span) waiting for its value; `None` when the next node is a key.
        pending: Option<(String, Range<usize>)>,
        /// Drop the next value (its key was a duplicate or complex).
        drop_next: bool,
    },
    /// Consuming a complex key's subtree.
    Skip { depth: usize },
}

struct Builder<'a> {
    src: &'a str,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    root: Option<Value>,
    index: SpanIndex,
    errors: Vec<YamlError>,
    nodes: usize,
}

fn byte_range(span: &Span, src: &str) -> Range<usize> {
    span.byte_range().unwrap_or_else(|| {
        let start = char_to_byte(src, span.start.index());
        let end = char_to_byte(src, span.end.index());
        start..end.max(start)
    })
}

fn char_to_byte(src: &str, chars: usize) -> usize {
    src.char_indices().nth(chars).map_or(src.len(), |(b, _)| b)
}

fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

impl<'a> Builder<'a> {
    /// Where the next node goes: `Some(pointer, key span)` for a value position, `None` for a key
    /// position or a skipped subtree.
    fn slot(&self) -> Option<(String, Option<Range<usize>>)> {
        match self.stack.last() {
            None => Some((String::new(), None)),
            Some(Frame::Seq { ptr, items, .. }) => {
                Some((push_pointer(ptr, &items.len().to_string()), None))
            }
            Some(Frame::Map {
                ptr,
                pending: Some((k, ks)),
                ..
            }) => Some((push_pointer(ptr, k), Some(ks.clone()))),
            Some(Frame::Map { pending: None, .. }) | Some(Frame::Skip { .. }) => None,
        }
    }

    fn in_key_position(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { pending: None, .. }))
    }

    fn budget(&mut self, n: usize, span: &Range<usize>) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > NODE_BUDGET {
            self.errors.push(YamlError {
                kind: YamlErrorKind::TooLarge,
                span: span.clone(),
                message: format!("the document expands to more than {NODE_BUDGET} nodes"),
            });
            false
        } else {
            true
        }
    }

    /// A scalar or alias used as a key.
    fn key(&mut self, text: String, span: Range<usize>) {
        if let Some(Frame::Map {
            keys,
            pending,
            drop_next,
            ..
        }) = self.stack.last_mut()
        {
            if let Some(first) = keys.get(&text) {
                self.errors.push(YamlError {
                    kind: YamlErrorKind::DuplicateKey {
                        first: first.clone(),
                    },
                    message: format!("duplicate key `{text}`"),
                    span: span.clone(),
                });
                *drop_next = true;
            } else {
                keys.insert(text.clone(), span.clone());
            }
            *pending = Some((text, span));
        }
    }

    /// A finished node in value position.
    fn finish(&mut self, value: Value, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map,
                pending,
                drop_next,
                ..
            }) => {
                if let Some((k, _)) = pending.take()
                    && !*drop_next
                {
                    map.insert(k, value);
                }
                *drop_next = false;
            }
            Some(Frame::Skip { .. }) => {}
        }
    }

    fn record(
        &mut self,
        ptr: String,
        key: Option<Range<usize>>,
        value: Range<usize>,
        style: Style,
    ) {
        // A dropped (duplicate) value must not overwrite the span of the first one.
        if let Some(Frame::Map {
            drop_next: true, ..
        }) = self.stack.last()
        {
            return;
        }
        self.index.nodes.insert(ptr, Node { key, value, style });
    }

    fn event(&mut self, ev: Event<'_>, span: Range<usize>) -> bool {
        if let Some(Frame::Skip { depth }) = self.stack.last_mut() {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => *depth += 1,
                Event::SequenceEnd | Event::MappingEnd => {
                    *depth -= 1;
                    if *depth == 0 {
                        self.stack.pop();
                        if let Some(Frame::Map {
                            pending, drop_next, ..
                        }) = self.stack.last_mut()
                        {
                            *pending = Some(("<complex key>".into(), span));
                            *drop_next = true;
                        }
                    }
                }
                _ => {}
            }
            return true;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if !self.budget(1, &span) {
                    return false;
                }
                if self.in_key_position() {
                    if anchor != 0 {
                        self.anchors.insert(anchor, Value::String(text.to_string()));
                    }
                    self.key(text.into_owned(), span);
                    return true;
                }
                let forced_str = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema_tag("str"));
                let (value, st) = match style {
                    ScalarStyle::Plain if !forced_str => (resolve_plain(&text), Style::Plain),
                    ScalarStyle::Plain => (Value::String(text.into_owned()), Style::Plain),
                    ScalarStyle::SingleQuoted => {
                        (Value::String(text.into_owned()), Style::SingleQuoted)
                    }
                    ScalarStyle::DoubleQuoted => {
                        (Value::String(text.into_owned()), Style::DoubleQuoted)
                    }
                    ScalarStyle::Literal => (Value::String(text.into_owned()), Style::Literal),
                    ScalarStyle::Folded => (Value::String(text.into_owned()), Style::Folded),
                };
                if let Some((ptr, key)) = self.slot() {
                    self.record(ptr, key, span, st);
                }
                self.finish(value, anchor);
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                if !self.budget(count_nodes(&value), &span) {
                    return false;
                }
                if self.in_key_position() {
                    let text = match &value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    self.key(text, span);
                    return true;
                }
                if let Some((ptr, key)) = self.slot() {
                    self.record(ptr, key, span, Style::Alias);
                }
                self.finish(value, 0);
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                if !self.budget(1, &span) {
                    return false;
                }
                if self.in_key_position() {
                    self.errors.push(YamlError {
                        kind: YamlErrorKind::ComplexKey,
                        span: span.clone(),
                        message: "a key must be a plain value, not a mapping or a list".into(),
                    });
                    self.stack.push(Frame::Skip { depth: 1 });
                    return true;
                }
                let (ptr, key) = self.slot().unwrap_or_default();
                let frame = if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        ptr,
                        items: Vec::new(),
                        start: span.start,
                        anchor,
                        key,
                    }
                } else {
                    Frame::Map {
                        ptr,
                        map: Map::new(),
                        keys: HashMap::new(),
                        start: span.start,
                        anchor,
                        key,
                        pending: None,
                        drop_next: false,
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return true;
                };
                let (ptr, key, start, anchor, value) = match frame {
                    Frame::Seq {
                        ptr,
                        items,
                        start,
                        anchor,
                        key,
                    } => (ptr, key, start, anchor, Value::Array(items)),
                    Frame::Map {
                        ptr,
                        map,
                        start,
                        anchor,
                        key,
                        ..
                    } => (ptr, key, start, anchor, Value::Object(map)),
                    Frame::Skip { .. } => return true,
                };
                // A block collection starts at its first entry; its end event sits after the last.
                let end = span.end.max(start);
                self.record(ptr, key, start..end, Style::Collection);
                self.finish(value, anchor);
            }
            _ => {}
        }
        true
    }
}

/// Reads one YAML document. Never panics; every problem is returned in [`YamlDoc::errors`].
pub fn parse(src: &str) -> YamlDoc {
    let mut b = Builder {
        src,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        index: SpanIndex::default(),
        errors: Vec::new(),
        nodes: 0,
    };
    let mut documents = 0usize;
    for item in Parser::new_from_str(src) {
        match item {
            Ok((ev, span)) => {
                let range = byte_range(&span, b.src);
                if let Event::DocumentStart(..) = ev {
                    documents += 1;
                    if documents > 1 {
                        b.errors.push(YamlError {
                            kind: YamlErrorKind::ExtraDocument,
                            span: range,
                            message: "a file holds one YAML document; found a second one".into(),
                        });
                        break;
                    }
                    continue;
                }
                if !b.event(ev, range) {
                    return YamlDoc {
                        value: None,
                        index: b.index,
                        errors: b.errors,
                    };
                }
            }
            Err(e) => {
                let m = e.marker();
                let at = m
                    .byte_offset()
                    .unwrap_or_else(|| char_to_byte(src, m.index()))
                    .min(src.len());
                let mut message = e.info();
                if message.is_empty() {
                    message = "invalid YAML".into();
                }
                b.errors.push(YamlError {
                    kind: YamlErrorKind::Syntax,
                    span: at..at,
                    message: lower_first(&message),
                });
                return YamlDoc {
                    value: None,
                    index: b.index,
                    errors: b.errors,
                };
            }
        }
    }
    YamlDoc {
        value: Some(b.root.unwrap_or(Value::Null)),
        index: b.index,
        errors: b.errors,
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(v) = resolve_int(s) {
        return v;
    }
    if is_core_float(s)
        && let Ok(f) = s.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s.to_string())
}

fn resolve_int(s: &str) -> Option<Value> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let parsed: Option<i128> = if let Some(h) = s.strip_prefix("0x") {
        (!h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| i128::from_str_radix(h, 16).ok())
            .flatten()
    } else if let Some(o) = s.strip_prefix("0o") {
        (!o.is_empty() && o.bytes().all(|c| (b'0'..=b'7').contains(&c)))
            .then(|| i128::from_str_radix(o, 8).ok())
            .flatten()
    } else if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        digits
            .parse::<i128>()
            .ok()
            .map(|v| if neg { -v } else { v })
    } else {
        None
    };
    let v = parsed?;
    if let Ok(i) = i64::try_from(v) {
        Some(Value::Number(i.into()))
    } else if let Ok(u) = u64::try_from(v) {
        Some(Value::Number(u.into()))
    } else {
        // Too large for JSON integers: keep the text.
        Some(Value::String(s.to_string()))
    }
}

fn is_core_float(s: &str) -> bool {
    let b = s.strip_prefix(['-', '+']).unwrap_or(s);
    if b.is_empty() {
        return false;
    }
    let (mantissa, exp) = match b.find(['e', 'E']) {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|c| c.is_ascii_digit())
                && frac.bytes().all(|c| c.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
        }
    };
    mantissa_ok && exp_ok
}

/// Maps a character position inside a scalar's *decoded* text to a byte offset in the source.
///
/// Works for every scalar style by re-decoding the source slice; when the re-decoding does not
/// reproduce `decoded` exactly (an exotic escape or folding case), positions fall back to the
/// start of the scalar so a diagnostic is still located on the right value.
pub fn scalar_offsets(src: &str, node: &Node, decoded: &str) -> Vec<usize> {
    let start = node.value.start.min(src.len());
    let end = node.value.end.min(src.len()).max(start);
    let raw = &src[start..end];
    let mapped = match node.style {
        Style::Plain => decode_folded_lines(raw, start, false),
        Style::SingleQuoted => decode_single(raw, start),
        Style::DoubleQuoted => decode_double(raw, start),
        Style::Literal => decode_block(raw, start, false),
        Style::Folded => decode_block(raw, start, true),
        Style::Collection | Style::Alias => None,
    };
    match mapped {
        Some((text, offsets)) if text == decoded => offsets,
        _ => vec![start; decoded.chars().count() + 1],
    }
}

type Decoded = Option<(String, Vec<usize>)>;

/// Plain multi-line scalars: line breaks plus indentation fold to one space; blank lines to `\n`.
fn decode_folded_lines(raw: &str, base: usize, _keep: bool) -> Decoded {
    let mut text = String::new();
    let mut offs = Vec::new();
    let lines: Vec<(usize, &str)> = line_starts(raw);
    let mut blank_run = 0usize;
    let mut first = true;
    for (off, line) in lines {
        let trimmed_start = line.len() - line.trim_start_matches([' ', '\t']).len();
        let content = line[trimmed_start..].trim_end_matches([' ', '\t', '\r']);
        if content.is_empty() {
            blank_run += 1;
            continue;
        }
        if !first {
            if blank_run == 0 {
                text.push(' ');
                offs.push(base + off);
            } else {
                for _ in 0..blank_run {
                    text.push('\n');
                    offs.push(base + off);
                }
            }
        }
        blank_run = 0;
        first = false;
        for (i, c) in content.char_indices() {
            text.push(c);
            offs.push(base + off + trimmed_start + i);
        }
    }
    offs.push(base + raw.len());
    Some((text, offs))
}

fn line_starts(raw: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut off = 0;
    for line in raw.split('\n') {
        out.push((off, line));
        off += line.len() + 1;
    }
    out
}

fn decode_single(raw: &str, base: usize) -> Decoded {
    let inner = raw.strip_prefix('\'')?.strip_suffix('\'')?;
    if inner.contains('\n') {
        return None;
    }
    let mut text = String::new();
    let mut offs = Vec::new();
    let mut it = inner.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c == '\''
            && let Some((_, '\'')) = it.peek()
        {
            it.next();
        }
        text.push(c);
        offs.push(base + 1 + i);
    }
    offs.push(base + 1 + inner.len());
    Some((text, offs))
}

fn decode_double(raw: &str, base: usize) -> Decoded {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\n') {
        return None;
    }
    let mut text = String::new();
    let mut offs = Vec::new();
    let mut it = inner.char_indices();
    while let Some((i, c)) = it.next() {
        let at = base + 1 + i;
        if c != '\\' {
            text.push(c);
            offs.push(at);
            continue;
        }
        let (_, e) = it.next()?;
        let decoded = match e {
            'n' => '\n',
            't' | '\t' => '\t',
            'r' => '\r',
            '0' => '\0',
            '\\' => '\\',
            '"' => '"',
            '/' => '/',
            ' ' => ' ',
            'a' => '\x07',
            'b' => '\x08',
            'e' => '\x1b',
            'f' => '\x0c',
            'v' => '\x0b',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut hex = String::new();
                for _ in 0..n {
                    hex.push(it.next()?.1);
                }
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        };
        text.push(decoded);
        offs.push(at);
    }
    offs.push(base + 1 + inner.len());
    Some((text, offs))
}

/// Block scalars: the span starts at the first content character; every line carries the same
/// indentation, which is stripped. Folded blocks join non-empty lines with a space.
fn decode_block(raw: &str, base: usize, folded: bool) -> Decoded {
    let lines = line_starts(raw);
    // Indentation = that of the second and later non-empty lines (the first starts at content).
    let indent = lines
        .iter()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(_, l)| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut text = String::new();
    let mut offs = Vec::new();
    let mut prev_content = false;
    let n = lines.len();
    for (idx, (off, line)) in lines.into_iter().enumerate() {
        let strip = if idx == 0 { 0 } else { indent.min(line.len()) };
        let content = &line[strip..];
        let is_last = idx + 1 == n;
        if is_last && content.is_empty() {
            break;
        }
        if idx > 0 {
            // The separator between the previous line and this one.
            let sep_at = base + off - 1;
            if folded && prev_content && !content.is_empty() && !content.starts_with(' ') {
                text.push(' ');
            } else {
                text.push('\n');
            }
            offs.push(sep_at);
        }
        for (i, c) in content.char_indices() {
            text.push(c);
            offs.push(base + off + strip + i);
        }
        prev_content = !content.is_empty();
    }
    // Clip (the default chomping) keeps one final newline.
    if raw.ends_with('\n') {
        text.push('\n');
        offs.push(base + raw.len() - 1);
    }
    offs.push(base + raw.len());
    Some((text, offs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_values_and_spans() {
        let src = "a: 1\nb: [x, 'y']\nc:\n  d: yes\n  e: ~\n";
        let doc = parse(src);
        assert!(doc.errors.is_empty(), "{:?}", doc.errors);
        assert_eq!(
            doc.value,
            Some(json!({"a": 1, "b": ["x", "y"], "c": {"d": "yes", "e": null}}))
        );
        let b1 = doc.index.get("/b/1").unwrap();
        assert_eq!(&src[b1.value.clone()], "'y'");
        let d = doc.index.get("/c/d").unwrap();
        assert_eq!(&src[d.key.clone().unwrap()], "d");
        assert_eq!(&src[d.value.clone()], "yes");
    }

    #[test]
    fn duplicate_keys_are_reported_and_first_wins() {
        let doc = parse("a: 1\na: 2\n");
        assert_eq!(doc.value, Some(json!({"a": 1})));
        assert!(matches!(
            doc.errors[0].kind,
            YamlErrorKind::DuplicateKey { ref first } if *first == (0..1)
        ));
        assert_eq!(doc.errors[0].span, 5..6);
    }

    #[test]
    fn syntax_errors_are_located() {
        let doc = parse("a: [b\nc: d");
        assert!(doc.value.is_none());
        assert_eq!(doc.errors[0].kind, YamlErrorKind::Syntax);
    }

    #[test]
    fn complex_keys_and_extra_documents() {
        let doc = parse("? [a, b]\n: 1\nc: 2\n");
        assert_eq!(doc.errors[0].kind, YamlErrorKind::ComplexKey);
        assert_eq!(doc.value, Some(json!({"c": 2})));
        let doc = parse("a: 1\n---\nb: 2\n");
        assert_eq!(doc.errors[0].kind, YamlErrorKind::ExtraDocument);
    }

    #[test]
    fn billion_laughs_is_budgeted() {
        let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in ['b', 'c', 'd', 'e', 'f', 'g'] {
            src.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        let doc = parse(&src);
        assert!(doc.value.is_none());
        assert_eq!(doc.errors[0].kind, YamlErrorKind::TooLarge);
    }

    #[test]
    fn core_schema_scalars() {
        assert_eq!(resolve_plain("yes"), json!("yes"));
        assert_eq!(resolve_plain("012"), json!(12));
        assert_eq!(resolve_plain("0x1F"), json!(31));
        assert_eq!(resolve_plain("1.5e3"), json!(1500.0));
        assert_eq!(resolve_plain("1.2.3"), json!("1.2.3"));
        assert_eq!(resolve_plain("+61 2"), json!("+61 2"));
        assert_eq!(resolve_plain(".5"), json!(0.5));
    }

    fn offsets_of(src: &str, ptr: &str) -> (String, Vec<usize>) {
        let doc = parse(src);
        let node = doc.index.get(ptr).unwrap().clone();
        let v = doc.value.unwrap();
        let text = v.pointer(ptr).unwrap().as_str().unwrap().to_string();
        let offs = scalar_offsets(src, &node, &text);
        (text, offs)
    }

    #[test]
    fn scalar_positions_map_back_for_every_style() {
        for (src, needle) in [
            ("x: 'a + b'\n", "b"),
            ("x: \"a\\t+ b\"\n", "b"),
            ("x: a + b\n", "b"),
            ("x: |\n  let q = 1;\n  a + b\n", "b"),
            ("x: >\n  a +\n  b\n", "b"),
            ("x: a +\n  b\n", "b"),
            ("x: 'it''s b'\n", "b"),
        ] {
            let (text, offs) = offsets_of(src, "/x");
            let ci = text.chars().position(|c| c.to_string() == needle).unwrap();
            let at = offs[ci];
            assert_eq!(&src[at..at + 1], needle, "{src:?} -> {text:?}");
        }
    }
}
