//! Building one node: its whole artifact, one shard's part, or the merge of
//! all parts. Every path writes into scratch and commits atomically.

use super::log::NodeLog;
use super::ops::{self, Ctx, NodeError, Output, Stage};
use super::plan::Planned;
use super::report::Reporter;
use super::store::{self, Artifact, FORMAT_VERSION, Manifest};
use crate::io::writer::FileInfo;
use crate::spec::{NodeSpec, Pipeline};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Where shard `i` of `n` of a node with fingerprint `fp` is kept.
pub fn part_dir(workdir: &Path, id: &str, fp: &str, i: u32, n: u32) -> PathBuf {
    parts_root(workdir, id, fp, n).join(format!("part-{i:05}"))
}

/// Where the computation between the rounds of a two-round node
/// ([`crate::spec::Op::merge_computes`]) is kept, for the set of `n`.
pub fn cluster_dir(workdir: &Path, id: &str, fp: &str, n: u32) -> PathBuf {
    parts_root(workdir, id, fp, n).join("clusters")
}

/// Where second-round shard `i` of `n` of a two-round node is kept.
pub fn second_part_dir(workdir: &Path, id: &str, fp: &str, i: u32, n: u32) -> PathBuf {
    parts_root(workdir, id, fp, n).join("second").join(format!("part-{i:05}"))
}

/// Where bucket group `g` of `groups` of the set of `n` is kept.
pub fn bucket_dir(workdir: &Path, id: &str, fp: &str, n: u32, g: u32, groups: u32) -> PathBuf {
    parts_root(workdir, id, fp, n)
        .join(format!("buckets-of-{groups}"))
        .join(format!("group-{g:05}"))
}

/// The finished bucket groups of `groups` for the set of `n`.
pub fn done_bucket_groups(workdir: &Path, id: &str, fp: &str, n: u32, groups: u32) -> Vec<u32> {
    (0..groups)
        .filter(|&g| store::load(&bucket_dir(workdir, id, fp, n, g, groups)).is_some())
        .collect()
}

/// The group counts for which bucket groups of the set of `n` exist, in
/// increasing order.
fn bucket_sets(workdir: &Path, id: &str, fp: &str, n: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(parts_root(workdir, id, fp, n)) else {
        return vec![];
    };
    let mut sets: Vec<u32> = rd
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("buckets-of-")
                .and_then(|g| g.parse().ok())
        })
        .collect();
    sets.sort();
    sets
}

/// Bucket groups started for the set of `n`: `(done, groups)` of the
/// largest set of groups, for `kiln status`.
pub fn bucket_progress(workdir: &Path, id: &str, fp: &str, n: u32) -> Option<(usize, u32)> {
    let groups = *bucket_sets(workdir, id, fp, n).last()?;
    Some((done_bucket_groups(workdir, id, fp, n, groups).len(), groups))
}

/// Every bucket group of a complete set for the set of `n` (the largest
/// such set), or none.
fn complete_buckets(workdir: &Path, id: &str, fp: &str, n: u32) -> Vec<Artifact> {
    for groups in bucket_sets(workdir, id, fp, n).into_iter().rev() {
        let found: Vec<Artifact> = (0..groups)
            .filter_map(|g| store::load(&bucket_dir(workdir, id, fp, n, g, groups)).filter(|a| a.manifest.fingerprint == fp))
            .collect();
        if found.len() == groups as usize {
            return found;
        }
    }
    vec![]
}

/// The finished second-round parts of the set of `n`.
pub fn done_second_parts(workdir: &Path, id: &str, fp: &str, n: u32) -> Vec<u32> {
    (0..n)
        .filter(|&i| store::load(&second_part_dir(workdir, id, fp, i, n)).is_some())
        .collect()
}

/// The committed clusters of the set of `n`, if the first round is through.
pub fn clusters(workdir: &Path, id: &str, fp: &str, n: u32) -> Option<Artifact> {
    store::load(&cluster_dir(workdir, id, fp, n)).filter(|a| a.manifest.fingerprint == fp)
}

fn parts_root(workdir: &Path, id: &str, fp: &str, n: u32) -> PathBuf {
    workdir.join(".parts").join(id).join(format!("{fp}-of-{n}"))
}

/// Shard counts for which parts of this fingerprint exist.
pub fn existing_part_sets(workdir: &Path, id: &str, fp: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(workdir.join(".parts").join(id)) else {
        return vec![];
    };
    let prefix = format!("{fp}-of-");
    let mut v: Vec<u32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix(&prefix).and_then(|n| n.parse().ok()))
        .collect();
    v.sort();
    v
}

/// The finished parts of the set of `n` parts.
pub fn done_parts(workdir: &Path, id: &str, fp: &str, n: u32) -> Vec<u32> {
    (0..n)
        .filter(|&i| store::load(&part_dir(workdir, id, fp, i, n)).is_some())
        .collect()
}

/// Removes every part set of this fingerprint (a forced node starts over).
pub fn remove_part_sets(workdir: &Path, id: &str, fp: &str) {
    for n in existing_part_sets(workdir, id, fp) {
        let _ = std::fs::remove_dir_all(parts_root(workdir, id, fp, n));
    }
}

/// Loads the finished input artifacts of a node.
pub fn load_inputs(planned: &Planned, workdir: &Path) -> Result<BTreeMap<String, Artifact>, NodeError> {
    let mut out = BTreeMap::new();
    for (field, info) in &planned.inputs {
        let a = store::load(&workdir.join(&info.node))
            .filter(|a| a.manifest.fingerprint == info.fingerprint)
            .ok_or_else(|| NodeError::Failed(format!("input `{field}` (node `{}`) is not built; run its node first", info.node)))?;
        out.insert(field.clone(), a);
    }
    Ok(out)
}

/// The contiguous range of units that shard `i` of `n` covers.
pub fn shard_range(units: usize, i: u32, n: u32) -> std::ops::Range<usize> {
    let (i, n) = (i as usize, n as usize);
    (units * i / n)..(units * (i + 1) / n)
}

/// Runs the node (or shard `i/n` of it) and commits the result. A shard of
/// a two-round node whose clusters are committed is a second-round shard.
pub fn build(
    p: &Pipeline,
    pl: &Planned,
    node: &NodeSpec,
    rep: &Reporter,
    cancel: &AtomicBool,
    shard: Option<(u32, u32)>,
) -> Result<Manifest, NodeError> {
    match shard {
        None => build_stage(p, pl, node, rep, cancel, Stage::Whole),
        Some((i, n)) => match node
            .op
            .merge_computes()
            .then(|| clusters(&p.workdir, &node.id, &pl.fingerprint, n))
            .flatten()
        {
            Some(c) => build_stage(p, pl, node, rep, cancel, Stage::Second(i, n, &c)),
            None => build_stage(p, pl, node, rep, cancel, Stage::Shard(i, n)),
        },
    }
}

/// Builds one stage of the node and commits it where that stage's result
/// is kept.
fn build_stage(
    p: &Pipeline,
    pl: &Planned,
    node: &NodeSpec,
    rep: &Reporter,
    cancel: &AtomicBool,
    stage: Stage,
) -> Result<Manifest, NodeError> {
    let start = Instant::now();
    let inputs = load_inputs(pl, &p.workdir)?;
    let units = ops::units(p, node, &inputs)?;
    let range = match stage {
        Stage::Shard(i, n) | Stage::Second(i, n, _) => shard_range(units.len(), i, n),
        _ => 0..units.len(),
    };
    let tmp = store::scratch_dir(&p.workdir, &node.id).map_err(NodeError::Failed)?;
    let log = NodeLog::open(&tmp);
    log.line(format!(
        "node {} op {} fingerprint {} units {:?} of {}",
        node.id,
        node.op.name(),
        pl.fingerprint,
        range,
        units.len()
    ));
    let unit_word = if node.op.read_source().is_some() { "bytes" } else { "rows" };
    let bar = rep.bar(&node.id, unit_word);
    let ctx = Ctx {
        pipeline: p,
        node,
        fingerprint: &pl.fingerprint,
        out: &tmp,
        inputs: &inputs,
        cancel,
        bar: &bar,
        log: &log,
        stage,
    };
    let result = ops::run(&ctx, &units, range);
    bar.finish_and_clear();
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            log.line(format!("failed: {e}"));
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    log.line(format!("done: {} rows, {} rejected", out.table.rows, out.table.rejected_rows));
    log.sync();
    let mut m = manifest(pl, node, out, start.elapsed().as_secs_f64());
    let (w, id, fp) = (&p.workdir, &node.id, &pl.fingerprint);
    let dest = match stage {
        Stage::Whole => pl.dir.clone(),
        Stage::Shard(i, n) => {
            m.shard = Some([i, n]);
            part_dir(w, id, fp, i, n)
        }
        Stage::Second(i, n, _) => {
            m.shard = Some([i, n]);
            second_part_dir(w, id, fp, i, n)
        }
        Stage::Buckets(g, groups, parts) => {
            m.shard = Some([g, groups]);
            bucket_dir(w, id, fp, parts.len() as u32, g, groups)
        }
        Stage::Cluster(parts, _) => cluster_dir(w, id, fp, parts.len() as u32),
        Stage::Merge(parts) => {
            m.parts = parts.len() as u32;
            m.wall_time_s += parts.iter().map(|a| a.manifest.wall_time_s).sum::<f64>();
            m.peak_rss_bytes = parts.iter().filter_map(|a| a.manifest.peak_rss_bytes).chain(m.peak_rss_bytes).max();
            pl.dir.clone()
        }
    };
    if let Err(e) = store::commit(&tmp, &dest, &m) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(NodeError::Failed(e));
    }
    Ok(m)
}

fn manifest(pl: &Planned, node: &NodeSpec, out: Output, secs: f64) -> Manifest {
    let t = out.table;
    let schema = match &t.schema {
        Some(s) => store::columns_of(s),
        None => out.schema_hint,
    };
    let bytes = t.files.iter().chain(&t.rejected_files).map(|f| f.bytes).sum();
    let content_hash = match out.content_hash {
        Some(h) => Some(h),
        None => (node.kind != crate::spec::Kind::Report).then(|| t.rows_hash.hex()),
    };
    Manifest {
        format_version: FORMAT_VERSION,
        kind: node.kind,
        node: node.id.clone(),
        op: node.op.name().to_string(),
        fingerprint: pl.fingerprint.clone(),
        params: pl.params.clone(),
        inputs: pl.inputs.clone(),
        seed: pl.seed,
        sources: pl.sources.clone(),
        schema,
        rows: t.rows,
        rejected_rows: t.rejected_rows,
        bytes,
        files: t.files,
        rejected_files: t.rejected_files,
        content_hash,
        rows_hash: t.rows_hash,
        wall_time_s: secs,
        peak_rss_bytes: store::peak_rss_bytes(),
        stats: out.stats,
        extra: out.extra,
        shard: None,
        parts: 1,
        completed_unix: store::unix_now(),
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Adds numbers leaf by leaf (per-step stats of shard parts).
fn add_stats(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in y {
                match x.get_mut(k) {
                    Some(slot) => add_stats(slot, v),
                    None => {
                        x.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a @ Value::Number(_), Value::Number(y)) => {
            if let (Some(p), Some(q)) = (a.as_u64(), y.as_u64()) {
                *a = Value::from(p + q);
            } else if let (Some(p), Some(q)) = (a.as_f64(), y.as_f64()) {
                *a = Value::from(p + q);
            }
        }
        _ => {}
    }
}

/// The `n` first-round parts of a node, or an error naming those missing.
fn first_round(p: &Pipeline, pl: &Planned, node: &NodeSpec, n: u32) -> Result<Vec<Artifact>, NodeError> {
    let mut parts = Vec::new();
    let mut missing = Vec::new();
    for i in 0..n {
        match store::load(&part_dir(&p.workdir, &node.id, &pl.fingerprint, i, n)) {
            Some(a) if a.manifest.fingerprint == pl.fingerprint => parts.push(a),
            _ => missing.push(i.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(NodeError::Failed(format!(
            "cannot merge `{}`: shard part(s) {} of {n} are not finished; run them with --node {} --shard i/{n}",
            node.id,
            missing.join(", "),
            node.id
        )));
    }
    Ok(parts)
}

/// Between the rounds of a two-round node: the computation over all `n`
/// first-round parts, committed for the second-round shards (done once;
/// a second call finds it).
pub fn cluster(p: &Pipeline, pl: &Planned, node: &NodeSpec, n: u32, rep: &Reporter, cancel: &AtomicBool) -> Result<Manifest, NodeError> {
    if !node.op.merge_computes() {
        return Err(NodeError::Failed(format!(
            "node `{}` (op {}) has no clustering step between shard rounds",
            node.id,
            node.op.name()
        )));
    }
    if let Some(c) = clusters(&p.workdir, &node.id, &pl.fingerprint, n) {
        return Ok(c.manifest);
    }
    let parts = first_round(p, pl, node, n)?;
    let buckets = complete_buckets(&p.workdir, &node.id, &pl.fingerprint, n);
    build_stage(p, pl, node, rep, cancel, Stage::Cluster(&parts, &buckets))
}

/// Bucket group `g` of `groups` of a node whose clustering splits
/// ([`crate::spec::Op::bucket_bands`]): the pairs of its share of the bands,
/// over all `n` first-round parts.
#[allow(clippy::too_many_arguments)]
pub fn buckets(
    p: &Pipeline,
    pl: &Planned,
    node: &NodeSpec,
    n: u32,
    g: u32,
    groups: u32,
    rep: &Reporter,
    cancel: &AtomicBool,
) -> Result<Manifest, NodeError> {
    let Some(bands) = node.op.bucket_bands() else {
        return Err(NodeError::Failed(format!(
            "node `{}` (op {}) has no bucket groups (only `dedup` by `minhash` has)",
            node.id,
            node.op.name()
        )));
    };
    if groups > bands {
        return Err(NodeError::Failed(format!(
            "--bands {g}/{groups}: node `{}` has {bands} bands, so at most {bands} groups",
            node.id
        )));
    }
    let parts = first_round(p, pl, node, n)?;
    build_stage(p, pl, node, rep, cancel, Stage::Buckets(g, groups, &parts))
}

/// Merges all `n` parts of a node into its artifact. Files are hard-linked
/// (copied across filesystems), so a crash mid-merge leaves the parts whole.
/// A two-round node whose clusters are committed joins its second-round
/// parts (building those missing here); before that, it runs again over
/// the first-round parts and filters in this one process.
pub fn merge(p: &Pipeline, pl: &Planned, node: &NodeSpec, n: u32, rep: &Reporter, cancel: &AtomicBool) -> Result<Manifest, NodeError> {
    let (w, id, fp) = (&p.workdir, &node.id, &pl.fingerprint);
    let m = match node.op.merge_computes().then(|| clusters(w, id, fp, n)).flatten() {
        Some(c) => {
            let mut parts = Vec::new();
            for i in 0..n {
                let dir = second_part_dir(w, id, fp, i, n);
                let part = match store::load(&dir).filter(|a| &a.manifest.fingerprint == fp) {
                    Some(a) => a,
                    None => {
                        build_stage(p, pl, node, rep, cancel, Stage::Second(i, n, &c))?;
                        store::load(&dir).ok_or_else(|| NodeError::Failed(format!("{} vanished after its build", dir.display())))?
                    }
                };
                parts.push(part);
            }
            join(p, pl, node, &parts, c.manifest.stats.clone())?
        }
        None => {
            let parts = first_round(p, pl, node, n)?;
            match node.op.merge_computes() {
                true => build_stage(p, pl, node, rep, cancel, Stage::Merge(&parts))?,
                false => join(p, pl, node, &parts, Value::Object(Default::default()))?,
            }
        }
    };
    let _ = std::fs::remove_dir_all(parts_root(w, id, fp, n));
    Ok(m)
}

/// Joins finished parts into the node's artifact, their stats added onto
/// `stats`.
fn join(p: &Pipeline, pl: &Planned, node: &NodeSpec, parts: &[Artifact], stats: Value) -> Result<Manifest, NodeError> {
    let start = Instant::now();
    let n = parts.len() as u32;
    let tmp = store::scratch_dir(&p.workdir, &node.id).map_err(NodeError::Failed)?;
    let log = NodeLog::open(&tmp);
    let link = |src: &Path, dst_rel: &str| -> Result<(), String> {
        let dst = tmp.join(dst_rel);
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        std::fs::hard_link(src, &dst)
            .or_else(|_| std::fs::copy(src, &dst).map(|_| ()))
            .map_err(|e| format!("cannot bring {} into the merged artifact: {e}", src.display()))
    };
    let (mut files, mut rejected) = (Vec::<FileInfo>::new(), Vec::<FileInfo>::new());
    let mut m = parts[0].manifest.clone();
    m.stats = stats;
    m.rows_hash = Default::default();
    m.rows = 0;
    m.rejected_rows = 0;
    m.wall_time_s = 0.0;
    for a in parts {
        for f in &a.manifest.files {
            let name = format!("data/part-{:05}.parquet", files.len());
            link(&a.dir.join(&f.name), &name)?;
            files.push(FileInfo { name, ..f.clone() });
        }
        for f in &a.manifest.rejected_files {
            let name = format!("rejected/part-{:05}.parquet", rejected.len());
            link(&a.dir.join(&f.name), &name)?;
            rejected.push(FileInfo { name, ..f.clone() });
        }
        if m.schema.is_empty() {
            m.schema = a.manifest.schema.clone();
        }
        m.rows += a.manifest.rows;
        m.rejected_rows += a.manifest.rejected_rows;
        m.rows_hash.append(&a.manifest.rows_hash);
        m.wall_time_s += a.manifest.wall_time_s;
        add_stats(&mut m.stats, &a.manifest.stats);
        log.line(format!("merged part {:?}: {} rows", a.manifest.shard, a.manifest.rows));
    }
    m.bytes = files.iter().chain(&rejected).map(|f| f.bytes).sum();
    m.files = files;
    m.rejected_files = rejected;
    m.content_hash = m.content_hash.as_ref().map(|_| m.rows_hash.hex());
    m.shard = None;
    m.parts = n;
    m.peak_rss_bytes = parts.iter().filter_map(|a| a.manifest.peak_rss_bytes).max();
    log.line(format!("merged {n} parts in {:.3}s", start.elapsed().as_secs_f64()));
    log.sync();
    store::commit(&tmp, &pl.dir, &m).map_err(NodeError::Failed)?;
    Ok(m)
}
