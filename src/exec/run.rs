//! `kiln run`: picks the nodes to build, runs independent ones side by side
//! under one thread budget, and reports a summary.

use super::node::{self, existing_part_sets};
use super::ops::NodeError;
use super::plan::{Planned, State, plan};
use super::report::{Reporter, human_bytes};
use super::store;
use crate::spec::Pipeline;
use crate::spec::executor::{ExecutorKind, ExecutorSpec};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// What the user asked `kiln run` to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Re-run these nodes (and everything downstream) even if cached.
    pub force: Vec<String>,
    /// Run only these nodes; their inputs must already be built.
    pub only: Vec<String>,
    /// Run this node and what it needs, nothing downstream.
    pub until: Option<String>,
    /// Print what would run and why; run nothing.
    pub dry_run: bool,
    /// The node for `--shard` / `--merge`.
    pub node: Option<String>,
    /// Run shard `i` of `n` of `node` into a part.
    pub shard: Option<(u32, u32)>,
    /// Merge `node`'s finished parts.
    pub merge: bool,
    /// Cluster the finished first-round parts of a two-round `node`.
    pub cluster: bool,
    /// Run the bucket job for band group `g` of `G` of a `minhash` `node`.
    pub bands: Option<(u32, u32)>,
    /// Where the work runs: this process, local worker processes or Slurm.
    pub executor: ExecutorSpec,
    /// Slurm: follow the jobs until they end, then summarize.
    pub wait: bool,
    /// The pipeline file as given, for the commands of worker processes and
    /// Slurm jobs.
    pub file: PathBuf,
    /// `--set` overrides as given.
    pub sets: Vec<String>,
}

/// How one node ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Built now.
    Ran,
    /// Finished artifact reused.
    Cached,
    /// Only a shard part was built.
    Part(u32, u32),
    /// A two-round node's `n` first-round parts were clustered.
    Clustered(u32),
    /// Bucket group `g` of `G` was built.
    Bands(u32, u32),
    /// Would run (dry run).
    WouldRun(Vec<String>),
    /// Failed with this message.
    Failed(String),
    /// Not started because an upstream node failed or the run was stopped.
    Skipped,
    /// Stopped by Ctrl-C.
    Cancelled,
    /// Handed to Slurm as these jobs; not followed to the end.
    Submitted(String),
}

/// One row of the summary.
#[derive(Debug, Clone)]
pub struct NodeResult {
    /// Node id.
    pub id: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Rows written (or present, when cached).
    pub rows: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Seconds spent now (0 when cached).
    pub secs: f64,
    /// Peak RSS recorded in the manifest.
    pub peak_rss: Option<u64>,
}

/// The run's end state.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Per node, in dependency order.
    pub nodes: Vec<NodeResult>,
}

impl RunSummary {
    /// Whether any node failed (or was left unbuilt because another did).
    pub fn failed(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n.outcome, Outcome::Failed(_) | Outcome::Skipped))
    }

    /// Whether the run was stopped by Ctrl-C.
    pub fn cancelled(&self) -> bool {
        self.nodes.iter().any(|n| n.outcome == Outcome::Cancelled)
    }
}

/// Errors in what was asked, before anything runs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn check_ids(p: &Pipeline, ids: &[String], flag: &str) -> Result<(), UsageError> {
    for id in ids {
        if p.node(id).is_none() {
            let known: Vec<&str> = p.nodes.iter().map(|n| n.id.as_str()).collect();
            return Err(UsageError(format!("{flag} {id}: no such node; nodes are {}", known.join(", "))));
        }
    }
    Ok(())
}

/// The nodes a run covers.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Nodes in play, in dependency order.
    pub targets: Vec<String>,
    /// The targets that must be built (the rest are cached).
    pub to_run: Vec<String>,
    /// Nodes rebuilt because of `--force`.
    pub forced: BTreeSet<String>,
}

/// Which nodes are in play, which are forced, which must run; refuses a
/// selection whose unbuilt inputs are left out.
pub fn select(p: &Pipeline, o: &RunOptions, by_id: &HashMap<&str, &Planned>) -> Result<Selection, UsageError> {
    let mut targets: Vec<String> = p.topo_order();
    let until = o.until.clone().or_else(|| o.node.clone());
    if let Some(u) = &until {
        let anc = p.ancestors(u);
        targets.retain(|t| anc.contains(t));
    }
    if !o.only.is_empty() {
        targets.retain(|t| o.only.contains(t));
    }
    let forced: BTreeSet<String> = o.force.iter().flat_map(|f| p.descendants(f)).collect();
    let must_run = |id: &str| forced.contains(id) || by_id[id].state != State::Done;
    let to_run: Vec<String> = targets.iter().filter(|t| must_run(t)).cloned().collect();
    for id in &to_run {
        for d in p.deps(id) {
            if !to_run.contains(&d) && (by_id[d.as_str()].state != State::Done || forced.contains(&d)) {
                return Err(UsageError(format!(
                    "node `{id}` needs `{d}`, which is not built (or is forced) and is not selected; drop --only, or add --only {d}"
                )));
            }
        }
    }
    Ok(Selection { targets, to_run, forced })
}

/// Runs the pipeline as `o` asks.
pub fn run(p: &Pipeline, o: &RunOptions, rep: &Reporter, cancel: &AtomicBool) -> Result<RunSummary, UsageError> {
    check_ids(p, &o.force, "--force")?;
    check_ids(p, &o.only, "--only")?;
    check_ids(p, o.until.as_slice(), "--until")?;
    check_ids(p, o.node.as_slice(), "--node")?;
    std::fs::create_dir_all(&p.workdir).map_err(|e| UsageError(format!("cannot create workdir {}: {e}", p.workdir.display())))?;
    store::clean_stale_scratch(&p.workdir);
    let plans = plan(p);
    let by_id: HashMap<&str, &Planned> = plans.iter().map(|q| (q.id.as_str(), q)).collect();

    if let (Some(id), Some((i, n))) = (&o.node, o.shard) {
        return run_shard(p, by_id[id.as_str()], i, n, rep, cancel, o.dry_run);
    }
    if let (Some(id), true) = (&o.node, o.merge || o.cluster || o.bands.is_some()) {
        let pl = by_id[id.as_str()];
        let nd = p.node(id).ok_or_else(|| UsageError(format!("no node {id}")))?;
        let flag = match (o.cluster, o.bands) {
            (true, _) => "--cluster",
            (_, Some(_)) => "--bands",
            _ => "--merge",
        };
        // The set whose clusters are committed; else the largest complete
        // set of parts; else the largest set, whose merge names what is missing.
        let sets = existing_part_sets(&p.workdir, id, &pl.fingerprint);
        let clustered = sets
            .iter()
            .rev()
            .find(|&&n| node::clusters(&p.workdir, id, &pl.fingerprint, n).is_some());
        let complete = sets
            .iter()
            .rev()
            .find(|&&n| node::done_parts(&p.workdir, id, &pl.fingerprint, n).len() == n as usize);
        let n = *clustered.or(complete).or(sets.last()).ok_or_else(|| {
            UsageError(format!(
                "{flag}: node `{id}` has no shard parts for its current fingerprint; run --node {id} --shard i/N first"
            ))
        })?;
        let t0 = std::time::Instant::now();
        let secs = || t0.elapsed().as_secs_f64();
        let res = match (o.cluster, o.bands) {
            (true, _) => result_of(id, node::cluster(p, pl, nd, n, rep, cancel), secs(), Outcome::Clustered(n)),
            (_, Some((g, groups))) => result_of(
                id,
                node::buckets(p, pl, nd, n, g, groups, rep, cancel),
                secs(),
                Outcome::Bands(g, groups),
            ),
            _ => result_of(id, node::merge(p, pl, nd, n, rep, cancel), secs(), Outcome::Ran),
        };
        report_node(rep, &res);
        return Ok(RunSummary { nodes: vec![res] });
    }

    let sel = select(p, o, &by_id)?;
    if o.executor.kind != ExecutorKind::Inline && !o.dry_run {
        return super::dist::run(p, o, &plans, &sel, rep, cancel);
    }
    let Selection { targets, to_run, forced } = sel;

    if o.dry_run {
        let nodes = targets
            .iter()
            .map(|id| {
                let why = match (&by_id[id.as_str()].state, forced.contains(id)) {
                    (_, true) => vec!["forced".to_string()],
                    (State::Done, false) => vec![],
                    (State::Missing, _) => vec!["not built yet".to_string()],
                    (State::Stale(w), _) => w.clone(),
                };
                let outcome = if why.is_empty() { Outcome::Cached } else { Outcome::WouldRun(why) };
                NodeResult {
                    id: id.clone(),
                    outcome,
                    rows: 0,
                    rejected: 0,
                    secs: 0.0,
                    peak_rss: None,
                }
            })
            .collect();
        return Ok(RunSummary { nodes });
    }

    // Schedule: start every node whose inputs are ready, up to the targets.
    let mut results: HashMap<String, NodeResult> = HashMap::new();
    for id in targets.iter().filter(|t| !to_run.contains(t)) {
        let m = store::load(&by_id[id.as_str()].dir).map(|a| a.manifest);
        results.insert(
            id.clone(),
            NodeResult {
                id: id.clone(),
                outcome: Outcome::Cached,
                rows: m.as_ref().map_or(0, |m| m.rows),
                rejected: m.as_ref().map_or(0, |m| m.rejected_rows),
                secs: 0.0,
                peak_rss: m.and_then(|m| m.peak_rss_bytes),
            },
        );
    }
    let mut pending: Vec<String> = to_run.clone();
    let mut running = 0usize;
    let (tx, rx) = mpsc::channel::<NodeResult>();
    std::thread::scope(|s| {
        loop {
            let stop = cancel.load(Ordering::Relaxed) || results.values().any(|r| matches!(r.outcome, Outcome::Failed(_)));
            if !stop {
                let ready: Vec<String> = pending
                    .iter()
                    .filter(|id| {
                        p.deps(id)
                            .iter()
                            .all(|d| !to_run.contains(d) || results.get(d).is_some_and(|r| r.outcome == Outcome::Ran))
                    })
                    .cloned()
                    .collect();
                for id in ready {
                    pending.retain(|x| x != &id);
                    running += 1;
                    let tx = tx.clone();
                    let pl = by_id[id.as_str()];
                    rep.info("node_start", json!({ "node": id }), format!("▶ {id}"));
                    s.spawn(move || {
                        let t0 = std::time::Instant::now();
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build_whole(p, pl, rep, cancel))).unwrap_or_else(
                            |e| {
                                let msg = e
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                                Err(NodeError::Failed(format!(
                                    "internal error (a bug in kiln, please report it): {}",
                                    msg.unwrap_or_default()
                                )))
                            },
                        );
                        let _ = tx.send(result_of(&id, r, t0.elapsed().as_secs_f64(), Outcome::Ran));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok(r) = rx.recv() else { break };
            running -= 1;
            report_node(rep, &r);
            results.insert(r.id.clone(), r);
        }
    });
    for id in pending {
        results.insert(
            id.clone(),
            NodeResult {
                id,
                outcome: Outcome::Skipped,
                rows: 0,
                rejected: 0,
                secs: 0.0,
                peak_rss: None,
            },
        );
    }
    let nodes = targets.iter().filter_map(|t| results.remove(t)).collect();
    Ok(RunSummary { nodes })
}

/// Builds a whole node; if shard parts of its fingerprint exist, finishes
/// the missing parts and merges them instead (so a plain run completes a
/// sharded job).
fn build_whole(p: &Pipeline, pl: &Planned, rep: &Reporter, cancel: &AtomicBool) -> Result<store::Manifest, NodeError> {
    let Some(nd) = p.node(&pl.id) else {
        return Err(NodeError::Failed(format!("no node {}", pl.id)));
    };
    if let Some(&n) = existing_part_sets(&p.workdir, &pl.id, &pl.fingerprint).last() {
        for i in 0..n {
            let done = store::load(&node::part_dir(&p.workdir, &pl.id, &pl.fingerprint, i, n)).is_some();
            if !done {
                node::build(p, pl, nd, rep, cancel, Some((i, n)))?;
            }
        }
        return node::merge(p, pl, nd, n, rep, cancel);
    }
    node::build(p, pl, nd, rep, cancel, None)
}

fn run_shard(p: &Pipeline, pl: &Planned, i: u32, n: u32, rep: &Reporter, cancel: &AtomicBool, dry: bool) -> Result<RunSummary, UsageError> {
    let Some(nd) = p.node(&pl.id) else {
        return Err(UsageError(format!("no node {}", pl.id)));
    };
    if !nd.op.shardable() {
        return Err(UsageError(format!(
            "node `{}` (op {}) cannot be sharded; run it whole",
            nd.id,
            nd.op.name()
        )));
    }
    if n == 0 || i >= n {
        return Err(UsageError(format!("--shard {i}/{n}: want i/N with 0 <= i < N")));
    }
    if dry {
        let r = NodeResult {
            id: pl.id.clone(),
            outcome: Outcome::WouldRun(vec![format!("shard {i}/{n}")]),
            rows: 0,
            rejected: 0,
            secs: 0.0,
            peak_rss: None,
        };
        return Ok(RunSummary { nodes: vec![r] });
    }
    let t0 = std::time::Instant::now();
    let r = node::build(p, pl, nd, rep, cancel, Some((i, n)));
    let res = result_of(&pl.id, r, t0.elapsed().as_secs_f64(), Outcome::Part(i, n));
    report_node(rep, &res);
    Ok(RunSummary { nodes: vec![res] })
}

fn result_of(id: &str, r: Result<store::Manifest, NodeError>, secs: f64, ok: Outcome) -> NodeResult {
    match r {
        Ok(m) => NodeResult {
            id: id.to_string(),
            outcome: ok,
            // An export's rows live in the exported file, not the artifact.
            rows: m
                .rows
                .max(m.extra.get("export_rows").and_then(serde_json::Value::as_u64).unwrap_or(0)),
            rejected: m.rejected_rows,
            secs,
            peak_rss: m.peak_rss_bytes,
        },
        Err(e) => {
            let outcome = match e {
                NodeError::Cancelled => Outcome::Cancelled,
                NodeError::Failed(m) => Outcome::Failed(m),
            };
            NodeResult {
                id: id.to_string(),
                outcome,
                rows: 0,
                rejected: 0,
                secs,
                peak_rss: None,
            }
        }
    }
}

fn report_node(rep: &Reporter, r: &NodeResult) {
    let fields = json!({ "node": r.id, "outcome": outcome_word(&r.outcome), "rows": r.rows, "rejected": r.rejected, "secs": r.secs, "peak_rss_bytes": r.peak_rss });
    match &r.outcome {
        Outcome::Failed(m) => rep.warn("node_failed", json!({ "node": r.id, "error": m }), format!("✗ {}: {m}", r.id)),
        Outcome::Cancelled => rep.warn("node_cancelled", fields, format!("✗ {}: cancelled", r.id)),
        _ => rep.info(
            "node_done",
            fields,
            format!("✓ {}: {} rows, {} rejected, {:.2}s", r.id, r.rows, r.rejected, r.secs),
        ),
    }
}

fn outcome_word(o: &Outcome) -> String {
    match o {
        Outcome::Ran => "ran".into(),
        Outcome::Cached => "cached".into(),
        Outcome::Part(i, n) => format!("part {i}/{n}"),
        Outcome::Clustered(n) => format!("clustered {n}"),
        Outcome::Bands(g, n) => format!("bands {g}/{n}"),
        Outcome::WouldRun(_) => "would run".into(),
        Outcome::Failed(_) => "failed".into(),
        Outcome::Skipped => "skipped".into(),
        Outcome::Cancelled => "cancelled".into(),
        Outcome::Submitted(_) => "submitted".into(),
    }
}

/// The summary table (text) that ends a run.
pub fn summary_table(s: &RunSummary) -> String {
    let mut out = format!(
        "{:<20} {:<12} {:>12} {:>10} {:>9} {:>10}\n",
        "node", "status", "rows", "rejected", "time", "peak RSS"
    );
    for n in &s.nodes {
        let status = outcome_word(&n.outcome);
        out.push_str(&format!(
            "{:<20} {:<12} {:>12} {:>10} {:>8.2}s {:>10}\n",
            n.id,
            status,
            n.rows,
            n.rejected,
            n.secs,
            n.peak_rss.map(human_bytes).unwrap_or_else(|| "-".into())
        ));
        match &n.outcome {
            Outcome::WouldRun(why) => out.push_str(&format!("{:<20}   why: {}\n", "", why.join("; "))),
            Outcome::Failed(m) => out.push_str(&format!("{:<20}   error: {m}\n", "")),
            Outcome::Submitted(jobs) => out.push_str(&format!("{:<20}   slurm: {jobs}\n", "")),
            _ => {}
        }
    }
    out
}

/// The summary as JSON.
pub fn summary_json(s: &RunSummary) -> serde_json::Value {
    json!({ "event": "summary", "nodes": s.nodes.iter().map(|n| json!({
        "node": n.id, "outcome": outcome_word(&n.outcome), "rows": n.rows, "rejected": n.rejected,
        "secs": n.secs, "peak_rss_bytes": n.peak_rss,
        "why": match &n.outcome { Outcome::WouldRun(w) => json!(w), _ => json!(null) },
        "error": match &n.outcome { Outcome::Failed(m) => json!(m), _ => json!(null) },
    })).collect::<Vec<_>>() })
}
