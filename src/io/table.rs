//! Reading artifact tables back, and exporting rows as JSON Lines.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::io::Write;
use std::path::Path;

/// Batches of one Parquet file, in order.
pub fn parquet_batches(path: &Path) -> Result<impl Iterator<Item = Result<RecordBatch, String>> + Send + use<>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let shown = path.display().to_string();
    Ok(r.map(move |b| b.map_err(|e| format!("cannot read {shown}: {e}"))))
}

/// Batches of up to `batch_size` rows of one Parquet file holding only the
/// columns in `names` that it has, in order.
pub fn parquet_columns(
    path: &Path,
    names: &[&str],
    batch_size: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch, String>> + Send + use<>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let idx: Vec<usize> = b
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| names.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = parquet::arrow::ProjectionMask::roots(b.parquet_schema(), idx);
    let r = b
        .with_projection(mask)
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let shown = path.display().to_string();
    Ok(r.map(move |b| b.map_err(|e| format!("cannot read {shown}: {e}"))))
}

/// Rows of a Parquet file (from its footer, without reading data).
pub fn parquet_rows(path: &Path) -> Result<u64, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(b.metadata().file_metadata().num_rows() as u64)
}

/// Writes each row as one JSON object per line. A `metadata` column holding
/// a JSON object is spread back into top-level fields, so a JSONL file read
/// by `read` and exported again keeps its fields.
pub fn write_jsonl(batch: &RecordBatch, out: &mut dyn Write) -> Result<(), String> {
    let schema = batch.schema();
    let opts = FormatOptions::default();
    let fmts: Vec<Option<ArrayFormatter>> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).ok())
        .collect();
    let mut line = String::new();
    for row in 0..batch.num_rows() {
        line.clear();
        line.push('{');
        let mut first = true;
        let mut meta: Option<&str> = None;
        for (i, field) in schema.fields().iter().enumerate() {
            let col = batch.column(i);
            if field.name() == "metadata" && matches!(col.data_type(), DataType::Utf8) {
                if col.is_valid(row) {
                    meta = Some(col.as_string::<i32>().value(row));
                }
                continue;
            }
            if !first {
                line.push(',');
            }
            first = false;
            line.push_str(&json_str(field.name()));
            line.push(':');
            if col.is_null(row) {
                line.push_str("null");
                continue;
            }
            match col.data_type() {
                DataType::Utf8 => line.push_str(&json_str(col.as_string::<i32>().value(row))),
                DataType::LargeUtf8 => line.push_str(&json_str(col.as_string::<i64>().value(row))),
                DataType::Boolean => line.push_str(if col.as_boolean().value(row) { "true" } else { "false" }),
                t if t.is_integer() || t.is_floating() => {
                    let s = fmts[i].as_ref().map(|f| f.value(row).to_string()).unwrap_or_default();
                    line.push_str(if s == "NaN" || s.contains("inf") { "null" } else { &s });
                }
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) | DataType::Struct(_) => {
                    push_json(col.as_ref(), row, &mut line);
                }
                _ => {
                    let s = fmts[i].as_ref().map(|f| f.value(row).to_string()).unwrap_or_default();
                    line.push_str(&json_str(&s));
                }
            }
        }
        if let Some(m) = meta {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(m) {
                Ok(fields) => {
                    for (k, v) in fields {
                        // A metadata key that names a column too is kept beside it, renamed.
                        let key = if schema.fields().iter().any(|f| f.name() == &k) {
                            format!("metadata.{k}")
                        } else {
                            k
                        };
                        line.push_str(if first { "" } else { "," });
                        first = false;
                        line.push_str(&json_str(&key));
                        line.push(':');
                        line.push_str(&v.to_string());
                    }
                }
                Err(_) => {
                    line.push_str(if first { "" } else { "," });
                    line.push_str("\"metadata\":");
                    line.push_str(&json_str(m));
                }
            }
        }
        line.push_str("}\n");
        out.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Appends `col[row]` as JSON: lists and structs as arrays and objects (a
/// chat's `messages` export as the message list they are), strings,
/// booleans and numbers as themselves, anything else as its display string.
fn push_json(col: &dyn Array, row: usize, out: &mut String) {
    if col.is_null(row) {
        out.push_str("null");
        return;
    }
    let items = |out: &mut String, values: &dyn Array, range: std::ops::Range<usize>| {
        out.push('[');
        // One formatter per list for numbers (token ids), not one per item.
        let numeric = values.data_type().is_integer() || values.data_type().is_floating();
        let fmt = numeric
            .then(|| ArrayFormatter::try_new(values, &FormatOptions::default()).ok())
            .flatten();
        for (n, i) in range.enumerate() {
            if n > 0 {
                out.push(',');
            }
            match &fmt {
                Some(f) if values.is_valid(i) => push_number(&f.value(i).to_string(), out),
                _ => push_json(values, i, out),
            }
        }
        out.push(']');
    };
    match col.data_type() {
        DataType::Utf8 => out.push_str(&json_str(col.as_string::<i32>().value(row))),
        DataType::LargeUtf8 => out.push_str(&json_str(col.as_string::<i64>().value(row))),
        DataType::Boolean => out.push_str(if col.as_boolean().value(row) { "true" } else { "false" }),
        DataType::List(_) => {
            let l = col.as_list::<i32>();
            let o = l.value_offsets();
            items(out, l.values().as_ref(), o[row] as usize..o[row + 1] as usize);
        }
        DataType::LargeList(_) => {
            let l = col.as_list::<i64>();
            let o = l.value_offsets();
            items(out, l.values().as_ref(), o[row] as usize..o[row + 1] as usize);
        }
        DataType::FixedSizeList(_, n) => {
            let l = col.as_fixed_size_list();
            let start = l.value_offset_at(row);
            items(out, l.values().as_ref(), start..start + *n as usize);
        }
        DataType::Struct(fields) => {
            let s = col.as_struct();
            out.push('{');
            for (k, (f, c)) in fields.iter().zip(s.columns()).enumerate() {
                if k > 0 {
                    out.push(',');
                }
                out.push_str(&json_str(f.name()));
                out.push(':');
                push_json(c.as_ref(), row, out);
            }
            out.push('}');
        }
        t if t.is_integer() || t.is_floating() => {
            let f = ArrayFormatter::try_new(col, &FormatOptions::default()).ok();
            push_number(&f.map(|f| f.value(row).to_string()).unwrap_or_default(), out);
        }
        _ => {
            let f = ArrayFormatter::try_new(col, &FormatOptions::default()).ok();
            out.push_str(&json_str(&f.map(|f| f.value(row).to_string()).unwrap_or_default()));
        }
    }
}

/// A number as JSON; NaN and infinities have no JSON form and become null.
fn push_number(s: &str, out: &mut String) {
    out.push_str(if s.is_empty() || s == "NaN" || s.contains("inf") {
        "null"
    } else {
        s
    });
}

fn json_str(s: &str) -> String {
    // ok: serialising a str cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}
