//! `dedup`: a barrier over a whole `documents` artifact. The stages are in
//! [`crate::clean::dedup`]; this adapts them to the engine (parameters,
//! progress, Ctrl-C, the node's log) and runs the last stage, the filter,
//! which writes kept rows in input order and rejects naming the kept copy.
//!
//! Every method also runs sharded ([`shards`]): a shard hashes its slice of
//! the input files into its part, and the merge finishes the method with
//! every part in hand. Documents keep their global numbers, so the result
//! is the one process's.

use super::dedup_shards as shards;
use super::{Ctx, EngineProgress, NodeError, Output};
use crate::clean::dedup::lines::FrequentLines;
use crate::clean::dedup::stages;
use crate::clean::dedup::{DedupError, DedupInput, InputFile, MinhashConfig, Simplify, TextColumn};
use crate::exec::sink::TableSink;
use crate::io::docs::Reject;
use crate::io::table::parquet_batches;
use crate::spec::ops::{DedupMethod, DedupParams};
use arrow::array::{ArrayRef, BooleanArray, LargeStringArray, StringArray, StringViewArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub(super) fn failed(e: DedupError) -> NodeError {
    match e {
        DedupError::Cancelled => NodeError::Cancelled,
        DedupError::Failed(m) => NodeError::Failed(m),
    }
}

/// Deletes the intermediates however the node ends.
struct WorkDir(std::path::PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn run(ctx: &Ctx, p: &DedupParams, range: Range<usize>) -> Result<Output, NodeError> {
    let a = ctx
        .inputs
        .get("input")
        .ok_or_else(|| NodeError::Failed("input artifact missing".into()))?;
    let files: Vec<InputFile> = a
        .data_paths()
        .into_iter()
        .zip(&a.manifest.files)
        .map(|(path, f)| InputFile { path, rows: f.rows })
        .collect();
    let work = WorkDir(ctx.out.join(".dedup-work"));
    std::fs::create_dir_all(&work.0).map_err(|e| format!("cannot create {}: {e}", work.0.display()))?;
    let inp = DedupInput {
        files,
        column: p.column.clone(),
        simplify: Simplify {
            lowercase: p.lowercase,
            digits_to_zero: p.digits_to_zero,
            strip_punctuation: p.strip_punctuation,
            strip_diacritics: p.strip_diacritics,
        },
        memory_bytes: p.memory_mb.saturating_mul(1 << 20),
        work_dir: work.0.clone(),
    };
    let cfg = MinhashConfig {
        n_grams: p.n_grams as usize,
        bands: p.bands as usize,
        rows_per_band: p.rows_per_band as usize,
        hash_seed: p.hash_seed,
    };
    let hooks = EngineProgress(ctx);
    let schema = &a.manifest.schema;
    if ctx.shard.is_some() {
        return match p.method {
            DedupMethod::Minhash => shards::signatures_part(ctx, &inp, &cfg, range, schema),
            DedupMethod::Exact => shards::runs_part(ctx, &inp, &stages::ExactKeys, range, schema),
            DedupMethod::Lines => shards::runs_part(ctx, &inp, &stages::LineKeys, range, schema),
        };
    }
    // Two passes over the input: hashing, then filtering; a merge has the
    // hashes already.
    ctx.bar.set_length(inp.docs() * if ctx.parts.is_empty() { 2 } else { 1 });
    let sink = TableSink::start(ctx.out, 256 << 20);
    let names: Vec<String> = a.manifest.files.iter().map(|f| f.name.clone()).collect();
    let (stats, filter) = match p.method {
        DedupMethod::Exact | DedupMethod::Minhash => {
            let (roots, stats) = if p.method == DedupMethod::Exact {
                let runs = shards::part_runs::<stages::ExactKeys>(ctx, &inp)?;
                stages::exact(&inp, runs, &hooks).map_err(|e| shards::in_merge(ctx, e))?
            } else if !ctx.parts.is_empty() {
                let (sigs, mut stats) = shards::part_signatures(ctx, &inp)?;
                let roots = stages::minhash_clusters(&inp, &cfg, &sigs, &mut stats, &hooks).map_err(|e| shards::in_merge(ctx, e))?;
                (roots, stats)
            } else {
                stages::minhash(&inp, &cfg, &hooks).map_err(failed)?
            };
            let reason = if p.method == DedupMethod::Exact {
                "exact_duplicate"
            } else {
                "minhash_duplicate"
            };
            let f = filter_duplicates(ctx, &inp, &names, &roots, reason, &sink)?;
            (stats, f)
        }
        DedupMethod::Lines => {
            let runs = shards::part_runs::<stages::LineKeys>(ctx, &inp)?;
            let (frequent, stats) = stages::frequent_lines(&inp, p.max_occurrences, runs, &hooks).map_err(|e| shards::in_merge(ctx, e))?;
            ctx.log.line(format!(
                "lines: {} distinct lines in over {} documents",
                frequent.len(),
                p.max_occurrences
            ));
            let f = rewrite_lines(ctx, &inp, &names, &frequent, p.min_chars, &sink)?;
            (stats, f)
        }
    };
    let table = sink.finish()?;
    let method = serde_json::to_value(p.method).unwrap_or_default();
    let mut s = serde_json::to_value(&stats).unwrap_or_default();
    if let Some(o) = s.as_object_mut() {
        o.insert("method".into(), method);
        o.insert("docs_in".into(), json!(inp.docs()));
        o.insert("kept".into(), json!(table.rows));
        o.insert("dropped".into(), json!(table.reasons));
        if p.method == DedupMethod::Lines {
            o.insert("lines_removed".into(), json!(filter.lines_removed));
            o.insert("docs_changed".into(), json!(filter.docs_changed));
        }
    }
    ctx.log.line(format!("dedup: {}", s));
    Ok(Output {
        table,
        stats: json!({ "dedup": s }),
        extra: serde_json::Value::Null,
        schema_hint: a.manifest.schema.clone(),
        content_hash: None,
    })
}

/// Counts from the last pass.
#[derive(Default)]
struct FilterStats {
    lines_removed: u64,
    docs_changed: u64,
}

/// A string column by name, if the batch has one.
fn opt_col<'a>(batch: &'a RecordBatch, name: &str) -> Option<TextColumn<'a>> {
    TextColumn::of(batch, name, std::path::Path::new("")).ok()
}

/// Builds the reject of row `i`: the documents columns plus why.
fn reject(batch: &RecordBatch, text: &TextColumn, i: usize, file: &str, fallback_id: String, reason: String) -> Reject {
    let get = |name: &str| opt_col(batch, name).map(|c| c.get(i).to_string());
    Reject {
        id: get("id").unwrap_or(fallback_id),
        text: text.get(i).to_string(),
        url: get("url").filter(|u| !u.is_empty()),
        source: get("source").unwrap_or_default(),
        file: file.to_string(),
        line: None,
        byte_offset: None,
        step: "dedup".into(),
        reason,
    }
}

/// Reads each input file's batches in order with the global index of
/// their first row.
fn for_each_batch(
    ctx: &Ctx,
    inp: &DedupInput,
    mut f: impl FnMut(usize, u32, &RecordBatch) -> Result<(), NodeError>,
) -> Result<(), NodeError> {
    for (fi, off) in inp.offsets().into_iter().enumerate() {
        let mut doc = off as u32;
        for batch in parquet_batches(&inp.files[fi].path)? {
            if ctx.cancel.load(Ordering::Relaxed) {
                return Err(NodeError::Cancelled);
            }
            let batch = batch?;
            f(fi, doc, &batch)?;
            doc += batch.num_rows() as u32;
            ctx.bar.inc(batch.num_rows() as u64);
        }
    }
    Ok(())
}

/// Stage 4 of `exact`/`minhash`: keeps roots, rejects the rest naming the
/// id of their root. Only the ids of roots that have duplicates are held.
fn filter_duplicates(
    ctx: &Ctx,
    inp: &DedupInput,
    names: &[String],
    roots: &[u32],
    reason: &str,
    sink: &TableSink,
) -> Result<FilterStats, NodeError> {
    let mut has_dup = vec![false; roots.len()];
    for (i, &r) in roots.iter().enumerate() {
        if r as usize != i {
            has_dup[r as usize] = true;
        }
    }
    let mut kept_ids: HashMap<u32, String> = HashMap::new();
    let offsets = inp.offsets();
    for_each_batch(ctx, inp, |fi, first, batch| {
        let text = TextColumn::of(batch, &inp.column, &inp.files[fi].path)?;
        let ids = opt_col(batch, "id");
        let id_of = |i: usize| match &ids {
            Some(c) => c.get(i).to_string(),
            None => format!("{}:{}", names[fi], first as usize + i - offsets[fi] as usize),
        };
        let mut mask = Vec::with_capacity(batch.num_rows());
        let mut rejects = Vec::new();
        for i in 0..batch.num_rows() {
            let doc = first as usize + i;
            let root = roots[doc] as usize;
            if root == doc {
                if has_dup[doc] {
                    kept_ids.insert(doc as u32, id_of(i));
                }
                mask.push(true);
            } else {
                let of = kept_ids.get(&(root as u32)).cloned().unwrap_or_else(|| format!("#{root}"));
                rejects.push(reject(batch, &text, i, &names[fi], id_of(i), format!("{reason}: of {of}")));
                mask.push(false);
            }
        }
        let kept = filter_record_batch(batch, &BooleanArray::from(mask)).map_err(|e| e.to_string())?;
        sink.rows(kept)?;
        sink.rejects(rejects)?;
        Ok(())
    })?;
    Ok(FilterStats::default())
}

/// The `text` column rebuilt from new values, in the input column's type.
fn text_array(ty: &DataType, values: &[Option<String>]) -> ArrayRef {
    let it = values.iter().map(|v| v.as_deref());
    match ty {
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from_iter(it)),
        DataType::Utf8View => Arc::new(StringViewArray::from_iter(it)),
        _ => Arc::new(StringArray::from_iter(it)),
    }
}

/// Stage 2 of `lines`: each document without its frequent lines; documents
/// left shorter than `min_chars` are rejected (`lines_empty`).
fn rewrite_lines(
    ctx: &Ctx,
    inp: &DedupInput,
    names: &[String],
    frequent: &FrequentLines,
    min_chars: u64,
    sink: &TableSink,
) -> Result<FilterStats, NodeError> {
    let mut st = FilterStats::default();
    let simplify = inp.simplify;
    let offsets = inp.offsets();
    for_each_batch(ctx, inp, |fi, first, batch| {
        let text = TextColumn::of(batch, &inp.column, &inp.files[fi].path)?;
        // (new text, lines removed) per row; a row with nothing removed keeps its text.
        let out: Vec<(Option<String>, usize)> = (0..batch.num_rows())
            .into_par_iter()
            .map_init(
                || (String::new(), String::new()),
                |(scratch, buf), i| {
                    let t = text.get(i);
                    let removed = frequent.remove(t, &simplify, scratch, buf);
                    (Some(if removed > 0 { buf.clone() } else { t.to_string() }), removed)
                },
            )
            .collect();
        let mut mask = Vec::with_capacity(out.len());
        let mut rejects = Vec::new();
        for (i, (t, removed)) in out.iter().enumerate() {
            st.lines_removed += *removed as u64;
            st.docs_changed += (*removed > 0) as u64;
            let chars = t.as_deref().unwrap_or("").trim().chars().count() as u64;
            let keep = chars >= min_chars;
            if !keep {
                let row = first as usize + i - offsets[fi] as usize;
                rejects.push(reject(
                    batch,
                    &text,
                    i,
                    &names[fi],
                    format!("{}:{row}", names[fi]),
                    format!("lines_empty: {chars} chars left after removing {removed} lines"),
                ));
            }
            mask.push(keep);
        }
        let idx = batch
            .schema()
            .index_of(&inp.column)
            .map_err(|_| format!("{}: no column `{}`", inp.files[fi].path.display(), inp.column))?;
        let mut cols = batch.columns().to_vec();
        let values: Vec<Option<String>> = out.into_iter().map(|(t, _)| t).collect();
        cols[idx] = text_array(cols[idx].data_type(), &values);
        let rebuilt = RecordBatch::try_new(batch.schema(), cols).map_err(|e| format!("{}: {e}", inp.files[fi].path.display()))?;
        let kept = filter_record_batch(&rebuilt, &BooleanArray::from(mask)).map_err(|e| e.to_string())?;
        sink.rows(kept)?;
        sink.rejects(rejects)?;
        Ok(())
    })?;
    Ok(st)
}
