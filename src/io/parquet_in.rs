//! Reads Parquet into documents: the text column mapped to `text`, ids
//! from a column or `<file>:<row>`, every other column kept as is.

use super::docs::Reject;
use super::files::InputFile;
use super::parse::Parsed;
use super::reader::{ReadConfig, ReadError, file_reject};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Row groups of a Parquet file (for sharding one large file).
pub fn row_groups(file: &InputFile) -> Result<usize, String> {
    let f = std::fs::File::open(&file.path).map_err(|e| format!("cannot open: {e}"))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| format!("not a readable Parquet file: {e}"))?;
    Ok(b.metadata().num_row_groups())
}

/// Reads `groups` (all when `None`) of a Parquet file.
pub fn read_parquet(
    file: &InputFile,
    cfg: &ReadConfig,
    groups: Option<Vec<usize>>,
    cancel: &AtomicBool,
    sink: &mut dyn FnMut(Parsed) -> Result<(), String>,
) -> Result<(), ReadError> {
    let source = cfg.source.clone().unwrap_or_else(|| file.rel.clone());
    let fail = |reason: String, sink: &mut dyn FnMut(Parsed) -> Result<(), String>| {
        sink(Parsed {
            docs: None,
            rejects: vec![file_reject(file, &source, reason)],
            bytes: file.size,
            row_digests: None,
        })
        .map_err(ReadError::Sink)
    };
    if cfg.fields.text.len() != 1 || cfg.fields.id.as_ref().is_some_and(|p| p.len() != 1) {
        return fail(
            "dotted field paths reach into JSON records; name a top-level Parquet column".into(),
            sink,
        );
    }
    let f = match std::fs::File::open(&file.path) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot open: {e}"), sink),
    };
    let builder = match ParquetRecordBatchReaderBuilder::try_new(f) {
        Ok(b) => b,
        Err(e) => return fail(format!("not a readable Parquet file: {e}"), sink),
    };
    let md = builder.metadata().clone();
    let first_row: Vec<u64> = md
        .row_groups()
        .iter()
        .scan(0u64, |acc, rg| {
            let start = *acc;
            *acc += rg.num_rows() as u64;
            Some(start)
        })
        .collect();
    let groups = groups.unwrap_or_else(|| (0..md.num_row_groups()).collect());
    let mut row = groups.first().map_or(0, |g| first_row[*g]);
    let reader = match builder.with_row_groups(groups).with_batch_size(8192).build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot read Parquet: {e}"), sink),
    };
    let cols = Columns {
        text: &cfg.fields.text[0],
        id: cfg.fields.id.as_ref().map(|p| p[0].as_str()),
        url: &cfg.fields.url[0],
        rel: &file.rel,
        source: &source,
        source_fixed: cfg.source.is_some(),
    };
    for batch in reader {
        if cancel.load(Ordering::Relaxed) {
            return Err(ReadError::Cancelled);
        }
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return fail(format!("corrupt Parquet data near row {row}: {e}"), sink),
        };
        let n = batch.num_rows();
        let parsed = match map_batch(&batch, &cols, row) {
            Ok(p) => p,
            Err(reason) => return fail(reason, sink),
        };
        row += n as u64;
        sink(parsed).map_err(ReadError::Sink)?;
    }
    Ok(())
}

fn string_col(batch: &RecordBatch, name: &str) -> Result<Option<StringArray>, String> {
    let Some(col) = batch.column_by_name(name) else { return Ok(None) };
    let c = cast(col, &DataType::Utf8).map_err(|e| format!("column `{name}` ({}) cannot be read as text: {e}", col.data_type()))?;
    Ok(Some(c.as_string::<i32>().clone()))
}

/// How a Parquet file's columns map onto documents.
struct Columns<'a> {
    text: &'a str,
    id: Option<&'a str>,
    url: &'a str,
    rel: &'a str,
    source: &'a str,
    source_fixed: bool,
}

fn map_batch(batch: &RecordBatch, c: &Columns, first_row: u64) -> Result<Parsed, String> {
    let Columns {
        text: text_col,
        id: id_col,
        url: url_col,
        rel,
        source,
        source_fixed,
    } = *c;
    let n = batch.num_rows();
    let text = string_col(batch, text_col)?.ok_or_else(|| format!("no column `{text_col}` (set text_field)"))?;
    // Without an id column, ids are `<file>:<row>`.
    let given_ids = match id_col {
        Some(c) => string_col(batch, c)?,
        None => None,
    };
    let ids: StringArray = (0..n)
        .map(|i| match &given_ids {
            Some(a) if a.is_valid(i) => a.value(i).to_string(),
            _ => format!("{rel}:{}", first_row + i as u64),
        })
        .map(Some)
        .collect();
    let url = string_col(batch, url_col)?.unwrap_or_else(|| StringArray::new_null(n));
    // Like JSON records, a file's own `source` column wins unless `source` is set.
    let own = if source_fixed { None } else { string_col(batch, "source")? };
    let sources: StringArray = (0..n)
        .map(|i| match &own {
            Some(a) if a.is_valid(i) => Some(a.value(i).to_string()),
            _ => Some(source.to_string()),
        })
        .collect();
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(ids.clone()), Arc::new(text.clone()), Arc::new(url), Arc::new(sources)];
    let used = [text_col, url_col, id_col.unwrap_or(""), "id", "text", "url", "source"];
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if !used.contains(&f.name().as_str()) {
            fields.push(f.as_ref().clone().with_nullable(true));
            cols.push(c.clone());
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let all = RecordBatch::try_new(schema, cols).map_err(|e| e.to_string())?;
    let keep: BooleanArray = (0..n).map(|i| Some(text.is_valid(i))).collect();
    let mut rejects = Vec::new();
    for i in (0..n).filter(|i| !text.is_valid(*i)) {
        rejects.push(Reject {
            id: ids.value(i).to_string(),
            text: String::new(),
            url: None,
            source: source.to_string(),
            file: rel.to_string(),
            line: None,
            byte_offset: None,
            step: "read".into(),
            reason: format!("row {}: text column `{text_col}` is null", first_row + i as u64),
        });
    }
    let docs = if rejects.is_empty() {
        all
    } else {
        filter_record_batch(&all, &keep).map_err(|e| e.to_string())?
    };
    Ok(Parsed {
        docs: (docs.num_rows() > 0).then_some(docs),
        rejects,
        bytes: 0,
        row_digests: None,
    })
}
