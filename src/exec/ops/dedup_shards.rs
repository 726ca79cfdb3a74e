//! `dedup` in shards. A shard hashes its slice of the input files into its
//! part, which holds no rows:
//! - `minhash`: the band keys of each input file (`signatures/`), listed in
//!   `extra.signatures` with the input file and first document each covers;
//! - `exact` and `lines`: its `(key, document)` records sorted into runs
//!   (`runs/`), listed in `extra.runs` with the input files they cover and
//!   their record count.
//!
//! The merge (the op run again with the parts in hand, see
//! [`crate::spec::Op::merge_computes`]) checks that the parts cover every
//! input file once and that no file was cut short, then finishes the
//! method: `minhash` sorts the buckets and clusters, `exact` and `lines`
//! merge the runs. Nothing is rebuilt from the input but the filter.

use super::dedup::failed;
use super::{Ctx, EngineProgress, NodeError, Output};
use crate::clean::dedup::spill::Record;
use crate::clean::dedup::stages::{self, SortedKeys};
use crate::clean::dedup::{DedupError, DedupInput, MinhashConfig};
use crate::exec::sink::TableSink;
use crate::exec::store::{Artifact, Column};
use serde_json::json;
use std::ops::Range;
use std::path::PathBuf;

/// Says, for an error while merging parts, which command mends it.
pub(super) fn in_merge(ctx: &Ctx, e: DedupError) -> NodeError {
    match failed(e) {
        NodeError::Failed(m) if !ctx.parts.is_empty() => NodeError::Failed(format!(
            "merging the shard parts of `{}`: {m}; run the shard whose part holds it again (--node {} --shard i/N)",
            ctx.node.id, ctx.node.id
        )),
        e => e,
    }
}

/// An error about part `a`, naming the shard to run again.
fn bad_part(ctx: &Ctx, a: &Artifact, what: &str) -> NodeError {
    let shard = a.manifest.shard.map_or("i/N".to_string(), |[i, n]| format!("{i}/{n}"));
    NodeError::Failed(format!(
        "shard part {}: {what}; run that shard again (--node {} --shard {shard})",
        a.dir.display(),
        ctx.node.id
    ))
}

/// The part of a shard: no rows, the input's columns, and what it hashed.
fn part_output(ctx: &Ctx, schema: &[Column], stats: serde_json::Value, extra: serde_json::Value) -> Result<Output, NodeError> {
    Ok(Output {
        table: TableSink::start(ctx.out, 256 << 20).finish()?,
        stats,
        extra,
        schema_hint: schema.to_vec(),
        content_hash: None,
    })
}

/// Documents in input files `range`.
fn docs_in(inp: &DedupInput, range: &Range<usize>) -> u64 {
    inp.files[range.clone()].iter().map(|f| f.rows).sum()
}

/// An `exact` or `lines` shard: the records of input files `range` sorted
/// into runs kept in the part.
pub(super) fn runs_part<K: SortedKeys>(
    ctx: &Ctx,
    inp: &DedupInput,
    keys: &K,
    range: Range<usize>,
    schema: &[Column],
) -> Result<Output, NodeError> {
    let dir = ctx.out.join("runs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let docs = docs_in(inp, &range);
    ctx.bar.set_length(docs);
    let (runs, st) = stages::sorted_runs(keys, inp, range.clone(), &dir, &EngineProgress(ctx)).map_err(failed)?;
    let names: Vec<String> = runs
        .iter()
        .map(|p| {
            format!(
                "runs/{}",
                p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            )
        })
        .collect();
    ctx.log.line(format!(
        "input files {range:?}: {docs} documents, {} records in {} sorted runs",
        st.records,
        runs.len()
    ));
    part_output(
        ctx,
        schema,
        json!({ "dedup_part": { "docs": docs, "records": st.records, "runs": runs.len() } }),
        json!({ "input_files": [range.start, range.end], "runs": names, "records": st.records }),
    )
}

/// The sorted runs of every `exact` or `lines` part (`None` when this is
/// not a merge), checked to cover each input file once and to hold the
/// records they claim.
pub(super) fn part_runs<K: SortedKeys>(ctx: &Ctx, inp: &DedupInput) -> Result<Option<Vec<PathBuf>>, NodeError> {
    if ctx.parts.is_empty() {
        return Ok(None);
    }
    let size = K::Rec::SIZE;
    let mut spans: Vec<(u64, u64, &Artifact)> = Vec::new();
    let mut runs = Vec::new();
    for a in ctx.parts {
        let e = &a.manifest.extra;
        let (Some(span), Some(list), Some(records)) = (e["input_files"].as_array(), e["runs"].as_array(), e["records"].as_u64()) else {
            return Err(bad_part(ctx, a, "no `input_files`, `runs` and `records` in its manifest"));
        };
        let (Some(lo), Some(hi)) = (span.first().and_then(|v| v.as_u64()), span.get(1).and_then(|v| v.as_u64())) else {
            return Err(bad_part(ctx, a, &format!("a malformed `input_files` {}", e["input_files"])));
        };
        let mut bytes = 0u64;
        for r in list {
            let path = a
                .dir
                .join(r.as_str().ok_or_else(|| bad_part(ctx, a, &format!("a malformed run {r}")))?);
            bytes += std::fs::metadata(&path)
                .map_err(|err| bad_part(ctx, a, &format!("cannot read {}: {err}", path.display())))?
                .len();
            runs.push(path);
        }
        if bytes != records * size as u64 {
            return Err(bad_part(
                ctx,
                a,
                &format!("its runs hold {bytes} bytes, not the {records} records of {size} bytes it wrote"),
            ));
        }
        spans.push((lo, hi, a));
    }
    spans.sort_by_key(|&(lo, hi, _)| (lo, hi));
    let mut at = 0u64;
    for &(lo, hi, a) in &spans {
        if lo != at || hi < lo {
            return Err(bad_part(
                ctx,
                a,
                &format!("it covers input files {lo}..{hi}, but the parts before it end at {at}"),
            ));
        }
        at = hi;
    }
    if at != inp.files.len() as u64 {
        return Err(NodeError::Failed(format!(
            "the shard parts of `{}` cover input files 0..{at} of {}; run its shards again",
            ctx.node.id,
            inp.files.len()
        )));
    }
    Ok(Some(runs))
}

/// A `minhash` shard: the band keys of input files `range`, kept in the
/// part for the merge. The part has no rows; its `extra.signatures` lists
/// each key file with the input file and first document it covers.
pub(super) fn signatures_part(
    ctx: &Ctx,
    inp: &DedupInput,
    cfg: &MinhashConfig,
    range: Range<usize>,
    schema: &[Column],
) -> Result<Output, NodeError> {
    let dir = ctx.out.join("signatures");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    ctx.bar.set_length(docs_in(inp, &range));
    let mut stats = stages::DedupStats::default();
    let sigs = stages::minhash_signature_files(inp, cfg, range.clone(), &dir, &mut stats, &EngineProgress(ctx)).map_err(failed)?;
    let list: Vec<serde_json::Value> = range
        .zip(&sigs)
        .map(|(fi, (path, first))| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            json!({ "input_file": fi, "path": format!("signatures/{name}"), "first_doc": first, "docs": inp.files[fi].rows })
        })
        .collect();
    let docs: u64 = list.iter().filter_map(|e| e["docs"].as_u64()).sum();
    ctx.log.line(format!(
        "signatures of input files {:?}: {docs} documents, {} without words",
        list.first()
            .zip(list.last())
            .map(|(a, b)| (a["input_file"].clone(), b["input_file"].clone())),
        stats.no_signature
    ));
    part_output(
        ctx,
        schema,
        json!({ "dedup_signatures": { "docs": docs, "no_signature": stats.no_signature, "bytes": stats.intermediate_bytes } }),
        json!({ "signatures": list }),
    )
}

/// The band-key files of every input file from the finished parts, in
/// input order, and the counts the parts made.
pub(super) fn part_signatures(ctx: &Ctx, inp: &DedupInput) -> Result<(Vec<(PathBuf, u64)>, stages::DedupStats), NodeError> {
    let mut by_file: Vec<Option<(PathBuf, u64)>> = vec![None; inp.files.len()];
    let mut stats = stages::DedupStats::default();
    for a in ctx.parts {
        let bad = |what: &str| bad_part(ctx, a, what);
        let list = a.manifest.extra["signatures"]
            .as_array()
            .ok_or_else(|| bad("no `signatures` list in its manifest"))?;
        for e in list {
            let (Some(fi), Some(path), Some(first)) = (e["input_file"].as_u64(), e["path"].as_str(), e["first_doc"].as_u64()) else {
                return Err(bad(&format!("a malformed `signatures` entry {e}")));
            };
            let slot = by_file
                .get_mut(fi as usize)
                .ok_or_else(|| bad(&format!("input file {fi} of {} is out of range", inp.files.len())))?;
            if slot.is_some() {
                return Err(bad(&format!("input file {fi} is in two parts")));
            }
            *slot = Some((a.dir.join(path), first));
        }
        let part = &a.manifest.stats["dedup_signatures"];
        stats.no_signature += part["no_signature"].as_u64().unwrap_or(0);
        stats.intermediate_bytes += part["bytes"].as_u64().unwrap_or(0);
    }
    let missing: Vec<String> = by_file
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(fi, _)| inp.files[fi].path.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(NodeError::Failed(format!(
            "no shard part of `{}` holds the signatures of {}; remove {} and run its shards again",
            ctx.node.id,
            missing.join(", "),
            ctx.parts
                .first()
                .and_then(|a| a.dir.parent())
                .map_or(String::new(), |d| d.display().to_string())
        )));
    }
    Ok((by_file.into_iter().flatten().collect(), stats))
}
