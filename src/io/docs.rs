//! The `documents` and `rejected` Arrow schemas and their builders.

use arrow::array::{ArrayRef, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::sync::{Arc, OnceLock};

/// `id, text, url?, source, metadata?` (DESIGN.md, data contracts).
pub fn documents_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, false),
            Field::new("metadata", DataType::Utf8, true),
        ]))
    })
    .clone()
}

/// The rejected side output: the documents columns plus where the record
/// was (`file`, `line`, `byte_offset`), which `step` dropped it and why.
pub fn rejected_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, false),
            Field::new("file", DataType::Utf8, false),
            Field::new("line", DataType::UInt64, true),
            Field::new("byte_offset", DataType::UInt64, true),
            Field::new("step", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
        ]))
    })
    .clone()
}

/// Builds a documents batch row by row.
pub struct DocBuilder {
    id: StringBuilder,
    text: StringBuilder,
    url: StringBuilder,
    source: StringBuilder,
    metadata: StringBuilder,
    rows: usize,
}

impl DocBuilder {
    /// A builder sized for about `bytes` of text.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        DocBuilder {
            id: StringBuilder::with_capacity(rows, rows * 24),
            text: StringBuilder::with_capacity(rows, bytes),
            url: StringBuilder::with_capacity(rows, 0),
            source: StringBuilder::with_capacity(rows, rows * 16),
            metadata: StringBuilder::with_capacity(rows, 0),
            rows: 0,
        }
    }

    /// Appends one document.
    pub fn push(&mut self, id: &str, text: &str, url: Option<&str>, source: &str, metadata: Option<&str>) {
        self.id.append_value(id);
        self.text.append_value(text);
        self.url.append_option(url);
        self.source.append_value(source);
        self.metadata.append_option(metadata);
        self.rows += 1;
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The batch.
    pub fn finish(mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.text.finish()),
            Arc::new(self.url.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.metadata.finish()),
        ];
        RecordBatch::try_new(documents_schema(), cols).expect("documents batch") // ok: columns match the schema by construction
    }
}

/// One rejected record.
#[derive(Debug, Clone)]
pub struct Reject {
    /// Document id (`<file>:<line>` for unparseable records).
    pub id: String,
    /// The record as text (lossy UTF-8), so nothing is lost.
    pub text: String,
    /// URL when known.
    pub url: Option<String>,
    /// The `source` value.
    pub source: String,
    /// The input file (relative name).
    pub file: String,
    /// 1-based line, when the format has lines.
    pub line: Option<u64>,
    /// Byte offset in the decompressed stream, when known.
    pub byte_offset: Option<u64>,
    /// The step that dropped it (`read`, `gopher_quality`, ...).
    pub step: String,
    /// Why.
    pub reason: String,
}

/// Builds a rejected batch.
pub fn rejects_batch(rejects: &[Reject]) -> RecordBatch {
    let n = rejects.len();
    let mut b: Vec<StringBuilder> = (0..7).map(|_| StringBuilder::with_capacity(n, 0)).collect();
    let mut line = UInt64Builder::with_capacity(n);
    let mut off = UInt64Builder::with_capacity(n);
    for r in rejects {
        b[0].append_value(&r.id);
        b[1].append_value(&r.text);
        b[2].append_option(r.url.as_deref());
        b[3].append_value(&r.source);
        b[4].append_value(&r.file);
        line.append_option(r.line);
        off.append_option(r.byte_offset);
        b[5].append_value(&r.step);
        b[6].append_value(&r.reason);
    }
    let mut it = b.into_iter().map(|mut s| Arc::new(s.finish()) as ArrayRef);
    let mut next = || it.next().unwrap_or_else(|| Arc::new(StringBuilder::new().finish())); // ok: 7 built above
    let (id, text, url, source, file) = (next(), next(), next(), next(), next());
    let (step, reason) = (next(), next());
    let cols = vec![
        id,
        text,
        url,
        source,
        file,
        Arc::new(line.finish()) as ArrayRef,
        Arc::new(off.finish()),
        step,
        reason,
    ];
    RecordBatch::try_new(rejected_schema(), cols).expect("rejected batch") // ok: columns match the schema by construction
}

impl Reject {
    /// The key its drop is counted under in a manifest's `reasons`:
    /// `<step>: <reason class>` (`read: invalid JSON`).
    pub fn reason_key(&self) -> String {
        format!("{}: {}", self.step, reason_class(&self.reason))
    }
}

/// Folds a reason to its class: text before the first `:`, digits as `N`.
pub fn reason_class(reason: &str) -> String {
    let head = reason.split(':').next().unwrap_or(reason);
    let mut out = String::with_capacity(head.len());
    // A number standing alone ("record 12 is bad") is folded; digits inside
    // a name (`c4_badwords`, `top_2_gram`) are part of it.
    let mut in_number = false;
    let mut prev: Option<char> = None;
    for c in head.chars() {
        let starts_word = prev.is_none_or(|p| !(p.is_alphanumeric() || p == '_'));
        if c.is_ascii_digit() && (in_number || starts_word) {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
        prev = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::reason_class;

    #[test]
    fn reason_classes_fold_numbers_but_not_names() {
        assert_eq!(reason_class("record 12 is 300 bytes: detail 7"), "record N is N bytes");
        assert_eq!(reason_class("c4_too_few_sentences: 2 < 5"), "c4_too_few_sentences");
        assert_eq!(reason_class("top_2_gram"), "top_2_gram");
        assert_eq!(reason_class("http_status 404"), "http_status N");
    }
}
