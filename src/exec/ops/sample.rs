//! `sample`: the first `n` rows, or a seeded `fraction` decided per row by
//! a hash of the seed and the row's id (stable, and the same when sharded).

use super::{Ctx, NodeError, Output, Unit};
use crate::exec::sink::TableSink;
use crate::exec::store::Artifact;
use crate::io::table::parquet_batches;
use crate::spec::ops::SampleParams;
use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use serde_json::json;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::Ordering;

fn input(inputs: &BTreeMap<String, Artifact>) -> Option<&Artifact> {
    inputs.get("input")
}

pub(super) fn units(p: &SampleParams, inputs: &BTreeMap<String, Artifact>) -> Vec<Unit> {
    let Some(a) = input(inputs) else { return vec![] };
    if p.n.is_some() {
        return vec![Unit {
            label: "all".into(),
            bytes: a.manifest.rows,
        }];
    }
    super::input_file_units(inputs)
}

/// Whether the row with this key is kept at `fraction` (uniform in [0, 1)).
pub fn keep(seed: u64, key: &str, fraction: f64) -> bool {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(key.as_bytes());
    let b = h.finalize();
    let x = u64::from_le_bytes(b.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    (x >> 11) as f64 / (1u64 << 53) as f64 <= fraction && fraction > 0.0 || fraction >= 1.0
}

pub(super) fn run(ctx: &Ctx, p: &SampleParams, range: Range<usize>) -> Result<Output, NodeError> {
    let a = input(ctx.inputs).ok_or_else(|| NodeError::Failed("input artifact missing".into()))?;
    let paths = a.data_paths();
    let files: Vec<usize> = if p.n.is_some() {
        (0..paths.len()).collect()
    } else {
        range.clone().collect()
    };
    ctx.bar.set_length(files.iter().map(|i| a.manifest.files[*i].rows).sum());
    let sink = TableSink::start(ctx.out, 256 << 20);
    let mut taken = 0u64;
    let mut rows_in = 0u64;
    'files: for fi in files {
        let mut file_row = 0usize;
        for batch in parquet_batches(&paths[fi])? {
            if ctx.cancel.load(Ordering::Relaxed) {
                return Err(NodeError::Cancelled);
            }
            let batch = batch?;
            rows_in += batch.num_rows() as u64;
            let first_row = file_row;
            file_row += batch.num_rows();
            ctx.bar.inc(batch.num_rows() as u64);
            if let Some(n) = p.n {
                let left = (n - taken) as usize;
                let b = batch.slice(0, left.min(batch.num_rows()));
                taken += b.num_rows() as u64;
                sink.rows(b)?;
                if taken >= n {
                    break 'files;
                }
            } else {
                let fraction = p.fraction.unwrap_or(1.0);
                let ids = batch.column_by_name("id").filter(|c| c.data_type() == &DataType::Utf8);
                let mask: BooleanArray = (0..batch.num_rows())
                    .map(|i| {
                        let key = match ids {
                            Some(c) if c.is_valid(i) => c.as_string::<i32>().value(i).to_string(),
                            _ => format!("{}:{}", a.manifest.files[fi].name, first_row + i),
                        };
                        Some(keep(ctx.pipeline.seed, &key, fraction))
                    })
                    .collect();
                let b = filter_record_batch(&batch, &mask).map_err(|e| e.to_string())?;
                taken += b.num_rows() as u64;
                sink.rows(b)?;
            }
        }
    }
    let table = sink.finish()?;
    let stats = json!({ "sample": { "rows_in": rows_in, "rows_out": taken } });
    Ok(Output {
        table,
        stats,
        extra: serde_json::Value::Null,
        schema_hint: a.manifest.schema.clone(),
        content_hash: None,
    })
}

#[cfg(test)]
mod tests {
    use super::keep;

    #[test]
    fn keep_is_seeded_and_close_to_the_fraction() {
        let kept = (0..20_000).filter(|i| keep(7, &format!("doc{i}"), 0.25)).count();
        assert!((4_500..5_500).contains(&kept), "{kept}");
        let a: Vec<bool> = (0..100).map(|i| keep(1, &i.to_string(), 0.5)).collect();
        let b: Vec<bool> = (0..100).map(|i| keep(2, &i.to_string(), 0.5)).collect();
        assert_ne!(a, b);
        assert!((0..100).all(|i| keep(3, &i.to_string(), 1.0)));
    }
}
