//! `dedup` in shards, in two rounds.
//!
//! 1. A first-round shard hashes its slice of the input files into its
//!    part, which holds no rows:
//!    - `minhash`: the band keys of each input file (`signatures/`), listed
//!      in `extra.signatures` with the input file and first document each
//!      covers;
//!    - `exact` and `lines`: its `(key, document)` records sorted into runs
//!      (`runs/`), listed in `extra.runs` with the input files they cover
//!      and their record count.
//! 2. Clustering (`--cluster`) checks that the parts cover every input file
//!    once and that no file was cut short, finishes the method's first
//!    pass (`minhash` sorts the buckets and clusters, `exact` and `lines`
//!    merge the runs), and keeps what it found ([`clusters_part`]).
//! 3. A second-round shard filters its slice with the clusters.
//! 4. The merge joins the second-round parts.
//!
//! A merge straight after the first round does 2 and 3 in one process. For
//! `minhash`, the bucket sorts of step 2 can run first as jobs of their
//! own, one per group of bands (`--bands g/G`, [`buckets_part`]);
//! clustering then only joins their pairs.

use super::dedup::{Found, failed, has_duplicates, id_of, opt_col};
use super::{Ctx, EngineProgress, NodeError, Output, Stage};
use crate::clean::dedup::lines::FrequentLines;
use crate::clean::dedup::spill::Record;
use crate::clean::dedup::stages::{self, SortedKeys};
use crate::clean::dedup::{DedupError, DedupInput, MinhashConfig};
use crate::exec::sink::TableSink;
use crate::exec::store::{Artifact, Column};
use crate::io::table::parquet_columns;
use serde_json::json;
use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// Says, for an error while merging parts, which command mends it.
pub(super) fn in_merge(ctx: &Ctx, e: DedupError) -> NodeError {
    match failed(e) {
        NodeError::Failed(m) if matches!(ctx.stage, Stage::Merge(_) | Stage::Cluster(..) | Stage::Buckets(..)) => {
            NodeError::Failed(format!(
                "merging the shard parts of `{}`: {m}; run the shard whose part holds it again (--node {} --shard i/N)",
                ctx.node.id, ctx.node.id
            ))
        }
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
pub(super) fn part_runs<K: SortedKeys>(ctx: &Ctx, inp: &DedupInput, parts: &[Artifact]) -> Result<Option<Vec<PathBuf>>, NodeError> {
    if parts.is_empty() {
        return Ok(None);
    }
    let size = K::Rec::SIZE;
    let mut spans: Vec<(u64, u64, &Artifact)> = Vec::new();
    let mut runs = Vec::new();
    for a in parts {
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
pub(super) fn part_signatures(
    ctx: &Ctx,
    inp: &DedupInput,
    parts: &[Artifact],
) -> Result<(Vec<(PathBuf, u64)>, stages::DedupStats), NodeError> {
    let mut by_file: Vec<Option<(PathBuf, u64)>> = vec![None; inp.files.len()];
    let mut stats = stages::DedupStats::default();
    for a in parts {
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
            parts
                .first()
                .and_then(|a| a.dir.parent())
                .map_or(String::new(), |d| d.display().to_string())
        )));
    }
    Ok((by_file.into_iter().flatten().collect(), stats))
}

/// Between the rounds: what the first pass found, kept for the
/// second-round shards. `exact` and `minhash` keep each document's root
/// (`roots.bin`, u32 little-endian per document) and the ids of the roots
/// that have duplicates (`root_ids.bin`: document u32, length u32, UTF-8),
/// read from the input's `id` column alone; `lines` keeps the sorted hashes
/// of the frequent lines (`frequent.bin`, u64 little-endian).
pub(super) fn clusters_part(
    ctx: &Ctx,
    inp: &DedupInput,
    names: &[String],
    found: Found,
    stats: serde_json::Value,
    schema: &[Column],
) -> Result<Output, NodeError> {
    let write = |name: &str, bytes: &[u8]| -> Result<(), NodeError> {
        let path = ctx.out.join(name);
        std::fs::write(&path, bytes).map_err(|e| NodeError::Failed(format!("cannot write {}: {e}", path.display())))
    };
    let extra = match &found {
        Found::Roots(roots) => {
            write("roots.bin", &roots.iter().flat_map(|r| r.to_le_bytes()).collect::<Vec<u8>>())?;
            let ids = root_ids(ctx, inp, names, roots)?;
            let mut bytes = Vec::new();
            for (doc, id) in &ids {
                bytes.extend(doc.to_le_bytes());
                bytes.extend((id.len() as u32).to_le_bytes());
                bytes.extend(id.as_bytes());
            }
            write("root_ids.bin", &bytes)?;
            json!({ "roots": "roots.bin", "root_ids": "root_ids.bin", "docs": roots.len(), "roots_with_duplicates": ids.len() })
        }
        Found::Lines(frequent) => {
            write(
                "frequent.bin",
                &frequent.hashes().iter().flat_map(|h| h.to_le_bytes()).collect::<Vec<u8>>(),
            )?;
            json!({ "frequent": "frequent.bin", "docs": inp.docs(), "lines": frequent.len() })
        }
    };
    ctx.log.line(format!("clusters: {extra}"));
    part_output(ctx, schema, json!({ "dedup": stats }), json!({ "clusters": extra }))
}

/// The ids of the roots that have duplicates, by document, from the input's
/// `id` column (or `file:row` where it has none), as the filter names them.
fn root_ids(ctx: &Ctx, inp: &DedupInput, names: &[String], roots: &[u32]) -> Result<Vec<(u32, String)>, NodeError> {
    let has_dup = has_duplicates(roots);
    let offsets = inp.offsets();
    ctx.bar.set_length(inp.docs());
    let mut out = Vec::new();
    for (fi, f) in inp.files.iter().enumerate() {
        let first = offsets[fi] as usize;
        if !has_dup[first..first + f.rows as usize].iter().any(|&b| b) {
            ctx.bar.inc(f.rows);
            continue;
        }
        let mut row = 0usize;
        for batch in parquet_columns(&f.path, &["id"], 8192)? {
            if ctx.cancel.load(Ordering::Relaxed) {
                return Err(NodeError::Cancelled);
            }
            let batch = batch?;
            let ids = opt_col(&batch, "id");
            for i in 0..batch.num_rows() {
                if has_dup[first + row + i] {
                    out.push(((first + row + i) as u32, id_of(&ids, names, fi, i, row + i)));
                }
            }
            row += batch.num_rows();
            ctx.bar.inc(batch.num_rows() as u64);
        }
        if row as u64 != f.rows {
            return Err(NodeError::Failed(format!(
                "{}: {row} rows read but the manifest says {}",
                f.path.display(),
                f.rows
            )));
        }
    }
    Ok(out)
}

/// A second-round shard's share of the clusters: for input files `range`,
/// the roots of their documents (indexed from the returned first document)
/// and the ids of every root with duplicates, or the frequent lines.
pub(super) fn load_clusters(
    ctx: &Ctx,
    inp: &DedupInput,
    clusters: &Artifact,
    range: Range<usize>,
) -> Result<(Found, u64, HashMap<u32, String>), NodeError> {
    let bad = |what: String| {
        NodeError::Failed(format!(
            "clusters {}: {what}; delete that directory and run `{}` again (the first round's parts are kept)",
            clusters.dir.display(),
            ctx.node.id
        ))
    };
    let read = |name: &str| -> Result<Vec<u8>, NodeError> {
        let path = clusters.dir.join(name);
        std::fs::read(&path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
    };
    let first = inp.offsets().get(range.start).copied().unwrap_or(inp.docs());
    let docs = docs_in(inp, &range);
    let c = &clusters.manifest.extra["clusters"];
    if c["docs"].as_u64() != Some(inp.docs()) {
        return Err(bad(format!("clusters of {} documents for an input of {}", c["docs"], inp.docs())));
    }
    if c["frequent"].is_string() {
        let bytes = read("frequent.bin")?;
        if bytes.len() % 8 != 0 {
            return Err(bad(format!("frequent.bin: {} bytes is not a whole number of u64", bytes.len())));
        }
        let hashes: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect();
        if !hashes.windows(2).all(|w| w[0] < w[1]) {
            return Err(bad("frequent.bin is not in increasing order".into()));
        }
        return Ok((Found::Lines(FrequentLines::from_sorted(hashes)), first, HashMap::new()));
    }
    let bytes = read("roots.bin")?;
    if bytes.len() as u64 != inp.docs() * 4 {
        return Err(bad(format!("roots.bin: {} bytes for {} documents", bytes.len(), inp.docs())));
    }
    let roots: Vec<u32> = bytes[first as usize * 4..(first + docs) as usize * 4]
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
        .collect();
    let bytes = read("root_ids.bin")?;
    let mut ids = HashMap::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let field = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()));
        let (Some(doc), Some(len)) = (field(at), field(at + 4)) else {
            return Err(bad(format!("root_ids.bin is cut short at byte {at}")));
        };
        let id = bytes
            .get(at + 8..at + 8 + len as usize)
            .ok_or_else(|| bad(format!("root_ids.bin is cut short at byte {at}")))?;
        ids.insert(doc, String::from_utf8_lossy(id).into_owned());
        at += 8 + len as usize;
    }
    Ok((Found::Roots(roots), first, ids))
}

/// A bucket job of `minhash`: the candidate pairs of bands group `g` of
/// `groups` (`pairs-BBB.bin`, u32 document pairs), from every first-round
/// part's band keys.
pub(super) fn buckets_part(
    ctx: &Ctx,
    inp: &DedupInput,
    cfg: &MinhashConfig,
    parts: &[Artifact],
    g: u32,
    groups: u32,
    schema: &[Column],
) -> Result<Output, NodeError> {
    let (sigs, _) = part_signatures(ctx, inp, parts)?;
    let bands = crate::exec::node::shard_range(cfg.bands, g, groups);
    let mut stats = stages::DedupStats::default();
    let pairs =
        stages::band_pair_files(inp, cfg, &sigs, bands.clone(), ctx.out, &mut stats, &EngineProgress(ctx)).map_err(|e| in_merge(ctx, e))?;
    let names: Vec<String> = pairs
        .iter()
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    ctx.log.line(format!("bands {bands:?}: {} candidate pairs", stats.candidate_pairs));
    part_output(
        ctx,
        schema,
        json!({ "dedup_buckets": {
            "candidate_pairs": stats.candidate_pairs,
            "spill_runs": stats.spill_runs,
            "peak_spill_bytes": stats.peak_spill_bytes,
            "bytes": stats.intermediate_bytes,
        } }),
        json!({ "bands": [bands.start, bands.end], "pairs": names, "candidate_pairs": stats.candidate_pairs }),
    )
}

/// The pair files of every bucket group, checked to cover each band once
/// and to hold the pairs they claim; their counts go into `stats`.
pub(super) fn bucket_pairs(
    ctx: &Ctx,
    cfg: &MinhashConfig,
    buckets: &[Artifact],
    stats: &mut stages::DedupStats,
) -> Result<Vec<PathBuf>, NodeError> {
    let mut by_band: Vec<Option<PathBuf>> = vec![None; cfg.bands];
    for a in buckets {
        let bad = |what: &str| {
            let group = a.manifest.shard.map_or("g/G".to_string(), |[g, n]| format!("{g}/{n}"));
            NodeError::Failed(format!(
                "bucket group {}: {what}; run it again (--node {} --bands {group})",
                a.dir.display(),
                ctx.node.id
            ))
        };
        let e = &a.manifest.extra;
        let (Some(lo), Some(hi), Some(list), Some(claimed)) = (
            e["bands"][0].as_u64(),
            e["bands"][1].as_u64(),
            e["pairs"].as_array(),
            e["candidate_pairs"].as_u64(),
        ) else {
            return Err(bad("no `bands`, `pairs` and `candidate_pairs` in its manifest"));
        };
        if hi as usize > cfg.bands || list.len() as u64 != hi.saturating_sub(lo) {
            return Err(bad(&format!(
                "bands {lo}..{hi} with {} pair files for {} bands",
                list.len(),
                cfg.bands
            )));
        }
        let mut bytes = 0u64;
        for (b, name) in (lo as usize..hi as usize).zip(list) {
            let path = a
                .dir
                .join(name.as_str().ok_or_else(|| bad(&format!("a malformed pair file {name}")))?);
            bytes += std::fs::metadata(&path)
                .map_err(|err| bad(&format!("cannot read {}: {err}", path.display())))?
                .len();
            if by_band[b].replace(path).is_some() {
                return Err(bad(&format!("band {b} is in two bucket groups")));
            }
        }
        if bytes != claimed * 8 {
            return Err(bad(&format!(
                "its pair files hold {bytes} bytes, not the {claimed} pairs of 8 bytes it wrote"
            )));
        }
        let s = &a.manifest.stats["dedup_buckets"];
        stats.candidate_pairs += claimed;
        stats.spill_runs += s["spill_runs"].as_u64().unwrap_or(0);
        stats.peak_spill_bytes += s["peak_spill_bytes"].as_u64().unwrap_or(0);
        stats.intermediate_bytes += s["bytes"].as_u64().unwrap_or(0);
    }
    let missing: Vec<String> = by_band
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_none())
        .map(|(b, _)| b.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(NodeError::Failed(format!(
            "the bucket groups of `{}` lack bands {}; run its bucket jobs again (--node {} --bands g/G)",
            ctx.node.id,
            missing.join(", "),
            ctx.node.id
        )));
    }
    Ok(by_band.into_iter().flatten().collect())
}
