//! Content hashes of tables that depend on the rows only, never on how
//! they were cut into batches or files: each row is fed to the hasher as
//! its column values, length-prefixed, in order.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Feeds every row of `batch` to `h`.
pub fn hash_rows(batch: &RecordBatch, h: &mut blake3::Hasher) {
    let opts = FormatOptions::default();
    let cols = batch.columns();
    let fmts: Vec<Option<ArrayFormatter>> = cols
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => None,
            _ => ArrayFormatter::try_new(c.as_ref(), &opts).ok(),
        })
        .collect();
    let mut s = String::new();
    for row in 0..batch.num_rows() {
        for (c, f) in cols.iter().zip(&fmts) {
            if c.is_null(row) {
                h.update(&[0]);
                continue;
            }
            let bytes: &[u8] = match c.data_type() {
                DataType::Utf8 => c.as_string::<i32>().value(row).as_bytes(),
                DataType::LargeUtf8 => c.as_string::<i64>().value(row).as_bytes(),
                DataType::Utf8View => c.as_string_view().value(row).as_bytes(),
                _ => {
                    s.clear();
                    if let Some(f) = f {
                        use std::fmt::Write;
                        let _ = write!(s, "{}", f.value(row));
                    }
                    s.as_bytes()
                }
            };
            h.update(&[1]);
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
    }
}

/// Combines per-unit digests into an artifact's content hash.
pub fn combine(units: &[String]) -> String {
    let mut h = blake3::Hasher::new();
    for u in units {
        h.update(u.as_bytes());
    }
    h.finalize().to_hex().to_string()
}
