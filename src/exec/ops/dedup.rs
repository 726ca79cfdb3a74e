//! `dedup`: a barrier over a whole `documents` artifact. The stages are in
//! [`crate::clean::dedup`]; this adapts them to the engine (parameters,
//! progress, Ctrl-C, the node's log) and runs the last stage, the filter,
//! which writes kept rows in input order and rejects naming the kept copy.
//!
//! Every method also runs sharded, in two rounds (`dedup_shards.rs`):
//! first-round shards hash their slice, clustering finishes the first pass
//! with every part in hand, second-round shards filter their slice.
//! Documents keep their global numbers, so the result is the one process's.

use super::dedup_shards as shards;
use super::{Ctx, EngineProgress, NodeError, Output, Stage};
use crate::clean::dedup::lines::FrequentLines;
use crate::clean::dedup::stages;
use crate::clean::dedup::{DedupError, DedupInput, InputFile, MinhashConfig, Simplify, TextColumn};
use crate::exec::sink::SinkResult;
use crate::exec::sink::TableSink;
use crate::exec::store::Artifact;
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
    let schema = &a.manifest.schema;
    let names: Vec<String> = a.manifest.files.iter().map(|f| f.name.clone()).collect();
    let all = 0..inp.files.len();
    let parts: &[Artifact] = match ctx.stage {
        Stage::Shard(..) => {
            return match p.method {
                DedupMethod::Minhash => shards::signatures_part(ctx, &inp, &cfg, range, schema),
                DedupMethod::Exact => shards::runs_part(ctx, &inp, &stages::ExactKeys, range, schema),
                DedupMethod::Lines => shards::runs_part(ctx, &inp, &stages::LineKeys, range, schema),
            };
        }
        Stage::Buckets(g, groups, parts) => return shards::buckets_part(ctx, &inp, &cfg, parts, g, groups, schema),
        Stage::Cluster(parts, buckets) => {
            let (found, stats) = find(ctx, p, &inp, &cfg, parts, buckets)?;
            return shards::clusters_part(ctx, &inp, &names, found, stats_json(p.method, &stats, inp.docs()), schema);
        }
        Stage::Second(_, _, clusters) => {
            ctx.bar.set_length(inp.files[range.clone()].iter().map(|f| f.rows).sum());
            let (found, base, ids) = shards::load_clusters(ctx, &inp, clusters, range.clone())?;
            let sink = TableSink::start(ctx.out, 256 << 20);
            let filter = filter_found(ctx, p, &inp, &names, &found, range, base, Some(ids), &sink)?;
            let table = sink.finish()?;
            let s = finished_stats(json!({}), &table, &filter, p.method);
            ctx.log.line(format!("dedup: {s}"));
            return Ok(Output {
                table,
                stats: json!({ "dedup": s }),
                extra: serde_json::Value::Null,
                schema_hint: schema.clone(),
                content_hash: None,
            });
        }
        Stage::Merge(parts) => parts,
        Stage::Whole => &[],
    };
    // Two passes over the input: hashing, then filtering; a merge has the
    // hashes already.
    ctx.bar.set_length(inp.docs() * if parts.is_empty() { 2 } else { 1 });
    let (found, stats) = find(ctx, p, &inp, &cfg, parts, &[])?;
    let sink = TableSink::start(ctx.out, 256 << 20);
    let filter = filter_found(ctx, p, &inp, &names, &found, all, 0, None, &sink)?;
    let table = sink.finish()?;
    let s = finished_stats(stats_json(p.method, &stats, inp.docs()), &table, &filter, p.method);
    ctx.log.line(format!("dedup: {}", s));
    Ok(Output {
        table,
        stats: json!({ "dedup": s }),
        extra: serde_json::Value::Null,
        schema_hint: schema.clone(),
        content_hash: None,
    })
}

/// What the first pass finds: each document's root (`exact`, `minhash`;
/// a root is the first document of its group) or the lines to remove
/// (`lines`).
pub(super) enum Found {
    /// Root per document.
    Roots(Vec<u32>),
    /// Lines in more than `max_occurrences` documents.
    Lines(FrequentLines),
}

/// The first pass over the whole input, or over the first-round `parts`
/// (and, for `minhash`, the bucket groups' pairs when they were built).
fn find(
    ctx: &Ctx,
    p: &DedupParams,
    inp: &DedupInput,
    cfg: &MinhashConfig,
    parts: &[Artifact],
    buckets: &[Artifact],
) -> Result<(Found, stages::DedupStats), NodeError> {
    let hooks = EngineProgress(ctx);
    let in_merge = |e| shards::in_merge(ctx, e);
    Ok(match p.method {
        DedupMethod::Exact => {
            let runs = shards::part_runs::<stages::ExactKeys>(ctx, inp, parts)?;
            let (roots, stats) = stages::exact(inp, runs, &hooks).map_err(in_merge)?;
            (Found::Roots(roots), stats)
        }
        DedupMethod::Minhash if parts.is_empty() => {
            let (roots, stats) = stages::minhash(inp, cfg, &hooks).map_err(failed)?;
            (Found::Roots(roots), stats)
        }
        DedupMethod::Minhash if buckets.is_empty() => {
            let (sigs, mut stats) = shards::part_signatures(ctx, inp, parts)?;
            let roots = stages::minhash_clusters(inp, cfg, &sigs, &mut stats, &hooks).map_err(in_merge)?;
            (Found::Roots(roots), stats)
        }
        DedupMethod::Minhash => {
            let (_, mut stats) = shards::part_signatures(ctx, inp, parts)?;
            let pairs = shards::bucket_pairs(ctx, cfg, buckets, &mut stats)?;
            let roots = stages::roots_from_pairs(inp, &pairs, &mut stats).map_err(in_merge)?;
            (Found::Roots(roots), stats)
        }
        DedupMethod::Lines => {
            let runs = shards::part_runs::<stages::LineKeys>(ctx, inp, parts)?;
            let (frequent, stats) = stages::frequent_lines(inp, p.max_occurrences, runs, &hooks).map_err(in_merge)?;
            ctx.log.line(format!(
                "lines: {} distinct lines in over {} documents",
                frequent.len(),
                p.max_occurrences
            ));
            (Found::Lines(frequent), stats)
        }
    })
}

/// The counts of the first pass, as the manifest's `stats.dedup` holds them.
fn stats_json(method: DedupMethod, stats: &stages::DedupStats, docs_in: u64) -> serde_json::Value {
    let mut s = serde_json::to_value(stats).unwrap_or_default();
    if let Some(o) = s.as_object_mut() {
        o.insert("method".into(), serde_json::to_value(method).unwrap_or_default());
        o.insert("docs_in".into(), json!(docs_in));
    }
    s
}

/// `s` with the counts of the filter pass added.
fn finished_stats(mut s: serde_json::Value, table: &SinkResult, filter: &FilterStats, method: DedupMethod) -> serde_json::Value {
    if let Some(o) = s.as_object_mut() {
        o.insert("kept".into(), json!(table.rows));
        o.insert("dropped".into(), json!(table.reasons));
        if method == DedupMethod::Lines {
            o.insert("lines_removed".into(), json!(filter.lines_removed));
            o.insert("docs_changed".into(), json!(filter.docs_changed));
        }
    }
    s
}

/// The filter pass over input files `files`: duplicates rejected (roots
/// indexed from document `base`; `ids`, when given, names the roots that
/// have duplicates), or frequent lines removed.
#[allow(clippy::too_many_arguments)]
fn filter_found(
    ctx: &Ctx,
    p: &DedupParams,
    inp: &DedupInput,
    names: &[String],
    found: &Found,
    files: Range<usize>,
    base: u64,
    ids: Option<HashMap<u32, String>>,
    sink: &TableSink,
) -> Result<FilterStats, NodeError> {
    match found {
        Found::Roots(roots) => {
            let reason = match p.method {
                DedupMethod::Exact => "exact_duplicate",
                _ => "minhash_duplicate",
            };
            filter_duplicates(ctx, inp, names, files, base, roots, ids, reason, sink)
        }
        Found::Lines(frequent) => rewrite_lines(ctx, inp, names, files, frequent, p.min_chars, sink),
    }
}

/// Counts from the last pass.
#[derive(Default)]
pub(super) struct FilterStats {
    lines_removed: u64,
    docs_changed: u64,
}

/// A string column by name, if the batch has one.
pub(super) fn opt_col<'a>(batch: &'a RecordBatch, name: &str) -> Option<TextColumn<'a>> {
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

/// Reads the batches of input files `files` in order with the global index
/// of their first row.
pub(super) fn for_each_batch(
    ctx: &Ctx,
    inp: &DedupInput,
    files: Range<usize>,
    mut f: impl FnMut(usize, u32, &RecordBatch) -> Result<(), NodeError>,
) -> Result<(), NodeError> {
    let offsets = inp.offsets();
    for fi in files {
        let mut doc = offsets[fi] as u32;
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

/// Which roots have duplicates, over a whole input's `roots`.
pub(super) fn has_duplicates(roots: &[u32]) -> Vec<bool> {
    let mut has_dup = vec![false; roots.len()];
    for (i, &r) in roots.iter().enumerate() {
        if r as usize != i {
            has_dup[r as usize] = true;
        }
    }
    has_dup
}

/// The id a reject gives row `row` of input file `fi` (its `id` column, else
/// `file:row`).
pub(super) fn id_of(ids: &Option<TextColumn>, names: &[String], fi: usize, i: usize, row: usize) -> String {
    match ids {
        Some(c) => c.get(i).to_string(),
        None => format!("{}:{row}", names[fi]),
    }
}

/// Stage 4 of `exact`/`minhash` over input files `files`: keeps roots,
/// rejects the rest naming the id of their root. `roots[d - base]` is the
/// root of document `d`. Without `known` (the whole input) the ids of
/// roots that have duplicates are collected on the way, as roots come
/// first; a second-round shard is handed them.
#[allow(clippy::too_many_arguments)]
fn filter_duplicates(
    ctx: &Ctx,
    inp: &DedupInput,
    names: &[String],
    files: Range<usize>,
    base: u64,
    roots: &[u32],
    known: Option<HashMap<u32, String>>,
    reason: &str,
    sink: &TableSink,
) -> Result<FilterStats, NodeError> {
    let has_dup = known.is_none().then(|| has_duplicates(roots));
    let mut kept_ids: HashMap<u32, String> = known.unwrap_or_default();
    let offsets = inp.offsets();
    let base = base as usize;
    for_each_batch(ctx, inp, files, |fi, first, batch| {
        let text = TextColumn::of(batch, &inp.column, &inp.files[fi].path)?;
        let ids = opt_col(batch, "id");
        let id_of = |i: usize| id_of(&ids, names, fi, i, first as usize + i - offsets[fi] as usize);
        let mut mask = Vec::with_capacity(batch.num_rows());
        let mut rejects = Vec::new();
        for i in 0..batch.num_rows() {
            let doc = first as usize + i;
            let root = roots[doc - base] as usize;
            if root == doc {
                if has_dup.as_ref().is_some_and(|h| h[doc - base]) {
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

/// Stage 2 of `lines` over input files `files`: each document without its frequent lines; documents
/// left shorter than `min_chars` are rejected (`lines_empty`).
fn rewrite_lines(
    ctx: &Ctx,
    inp: &DedupInput,
    names: &[String],
    files: Range<usize>,
    frequent: &FrequentLines,
    min_chars: u64,
    sink: &TableSink,
) -> Result<FilterStats, NodeError> {
    let mut st = FilterStats::default();
    let simplify = inp.simplify;
    let offsets = inp.offsets();
    for_each_batch(ctx, inp, files, |fi, first, batch| {
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
