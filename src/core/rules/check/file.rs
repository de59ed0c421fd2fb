//! One rule or config file being checked: its text, parsed value and spans ([`FileState`]),
//! how a diagnostic is placed at a JSON pointer or inside an expression, and the side
//! (HubSpot or Accelo) an expression reads.

use std::ops::Range;
use std::sync::Arc;

use serde_json::Value;

use crate::expr::{Origin, RecordValue};
use crate::model::{Object, System};
use crate::rules::catalog::HubSpotCatalog;
use crate::rules::diag::{Code, Diagnostic, Report};
use crate::rules::lenient::Lenient;
use crate::rules::paths::Source;
use crate::rules::raw;
use crate::rules::scan::char_index;
use crate::rules::schema::{self, FileKind};
use crate::rules::yaml::{self, SpanIndex};

/// One side's view for checking expressions: which record `record` is, and a sample of it.
pub(super) struct Side<'c> {
    pub(super) system: System,
    pub(super) object: Object,
    pub(super) cat: &'c HubSpotCatalog,
    pub(super) sample: &'c RecordValue,
}

/// A parsed file with its spans.
pub(super) struct FileState {
    pub(super) name: String,
    pub(super) src: Arc<str>,
    pub(super) value: Value,
    pub(super) index: SpanIndex,
    pub(super) object: Object,
    pub(super) raw_tests: Vec<(usize, raw::TestCase)>,
}

pub(super) fn load(src: &Source, kind: FileKind, report: &mut Report) -> Option<FileState> {
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

impl FileState {
    /// Span of the value at `ptr`, limited to its first line.
    /// A mapping or list with a key is pointed at by its key.
    pub(super) fn val(&self, ptr: &str) -> Range<usize> {
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
    pub(super) fn key(&self, ptr: &str) -> Range<usize> {
        self.index.key_span(ptr)
    }

    pub(super) fn diag(
        &self,
        code: Code,
        span: Range<usize>,
        msg: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(code, &self.name, span, msg)
    }

    /// The source span of the character at (`line`, `column`) of the expression at `ptr`.
    pub(super) fn expr_span(
        &self,
        ptr: &str,
        text: &str,
        line: usize,
        column: usize,
    ) -> Range<usize> {
        self.expr_span_len(ptr, text, char_index(text, line, column), 1)
    }

    /// Where the expression `text` at `ptr` is written: for each of its characters, the file's
    /// 1-based (line, column).
    pub(super) fn origin(&self, ptr: &str, text: &str) -> Option<Origin> {
        let node = self.index.get(ptr)?;
        let offsets = yaml::scalar_offsets(&self.src, node, text);
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(self.src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let positions: Vec<(usize, usize)> = offsets
            .iter()
            .map(|&off| {
                let off = off.min(self.src.len());
                let line = line_starts.partition_point(|&s| s <= off).max(1);
                let start = line_starts[line - 1];
                let column = self
                    .src
                    .get(start..off)
                    .map_or(1, |s| s.chars().count() + 1);
                (line, column)
            })
            .collect();
        Some(Origin {
            file: Arc::from(self.name.as_str()),
            positions: Arc::from(positions),
        })
    }

    /// The source span of `len` characters from character `idx` of the expression at `ptr`.
    pub(super) fn expr_span_len(
        &self,
        ptr: &str,
        text: &str,
        idx: usize,
        len: usize,
    ) -> Range<usize> {
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
}

/// The valid entries of a lenient list, with their indexes.
pub(super) fn items<T>(l: &Lenient<Vec<Lenient<T>>>) -> impl Iterator<Item = (usize, &T)> {
    l.get()
        .into_iter()
        .flat_map(|v| v.iter().enumerate())
        .filter_map(|(i, x)| x.get().map(|x| (i, x)))
}
