//! Op implementations: each splits its work into units (the grain of
//! sharding) and runs a contiguous range of them into a scratch directory.

mod clean;
mod dedup;
mod dedup_shards;
mod gpu;
mod model;
mod pack;
mod post;
mod prefs;
mod read;
mod rl;
mod sample;
mod tokenize;
mod tokenizer;
mod write;

use super::log::NodeLog;
use super::sink::SinkResult;
use super::store::Artifact;
use crate::spec::{NodeSpec, Op, Pipeline};
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Why a node did not finish.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Ctrl-C.
    #[error("cancelled")]
    Cancelled,
    /// Anything else, with a message that says what and where.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for NodeError {
    fn from(s: String) -> Self {
        NodeError::Failed(s)
    }
}

impl From<crate::io::reader::ReadError> for NodeError {
    fn from(e: crate::io::reader::ReadError) -> Self {
        match e {
            crate::io::reader::ReadError::Cancelled => NodeError::Cancelled,
            crate::io::reader::ReadError::Sink(s) => NodeError::Failed(s),
        }
    }
}

/// What a node runs with.
pub struct Ctx<'a> {
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// This node.
    pub node: &'a NodeSpec,
    /// This node's fingerprint (keys state that must survive a crash, like
    /// training checkpoints, to exactly this configuration).
    pub fingerprint: &'a str,
    /// Scratch directory to write into.
    pub out: &'a Path,
    /// Finished input artifacts by field.
    pub inputs: &'a BTreeMap<String, Artifact>,
    /// Set on Ctrl-C.
    pub cancel: &'a AtomicBool,
    /// Progress (bytes or rows).
    pub bar: &'a ProgressBar,
    /// The node's log.
    pub log: &'a NodeLog,
    /// Which part of the node's work this build does.
    pub stage: Stage<'a>,
}

/// Which part of a node's work a build does. Ops whose merge computes
/// ([`crate::spec::Op::merge_computes`], `dedup`) see every stage; the
/// others only `Whole` and `Shard`.
#[derive(Clone, Copy)]
pub enum Stage<'a> {
    /// All of it, into the artifact.
    Whole,
    /// Shard `i` of `n` (first round), into a part.
    Shard(u32, u32),
    /// The merge: the op again with every first-round part in hand, into
    /// the artifact.
    Merge(&'a [Artifact]),
    /// Between the rounds, optional: bucket group `g` of `groups` over every
    /// first-round part (`minhash`'s pairs of its share of the bands).
    Buckets(u32, u32, &'a [Artifact]),
    /// Between the rounds: the computation over every first-round part (and
    /// the bucket groups, when all were built), kept for the second round
    /// (`dedup`'s clusters).
    Cluster(&'a [Artifact], &'a [Artifact]),
    /// Shard `i` of `n` of the second round, with the result of `Cluster`
    /// in hand, into a second-round part.
    Second(u32, u32, &'a Artifact),
}

/// The engine's progress bar, Ctrl-C flag and log, as packing, dedup and
/// training see them.
pub(super) struct EngineProgress<'a, 'b>(pub &'a Ctx<'b>);

impl crate::progress::Progress for EngineProgress<'_, '_> {
    fn start(&self, total: u64) {
        self.0.bar.set_length(total);
    }
    fn inc(&self, n: u64) {
        self.0.bar.inc(n);
    }
    fn cancelled(&self) -> bool {
        self.0.cancel.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn note(&self, msg: &str) {
        self.0.log.line(msg);
    }
}

/// One piece of a node's work.
#[derive(Debug, Clone)]
pub struct Unit {
    /// For logs (`file.jsonl`, `big.parquet#rg3`).
    pub label: String,
    /// Input bytes (progress, shard balance).
    pub bytes: u64,
}

/// What a node produced.
#[derive(Debug, Default)]
pub struct Output {
    /// Written tables.
    pub table: SinkResult,
    /// Per-step counts.
    pub stats: serde_json::Value,
    /// Op-specific results.
    pub extra: serde_json::Value,
    /// The schema to record when no rows were written.
    pub schema_hint: Vec<super::store::Column>,
    /// The content hash, for artifacts that are not tables (a tokenizer:
    /// the hash of its file); tables hash their rows.
    pub content_hash: Option<String>,
}

/// One unit per data file of the node's `input` artifact (the grain at
/// which ops over a table shard).
fn input_file_units(inputs: &BTreeMap<String, Artifact>) -> Vec<Unit> {
    let Some(a) = inputs.get("input") else { return vec![] };
    a.manifest
        .files
        .iter()
        .map(|f| Unit {
            label: f.name.clone(),
            bytes: f.rows,
        })
        .collect()
}

/// The units of a node's work.
pub fn units(pipeline: &Pipeline, node: &NodeSpec, inputs: &BTreeMap<String, Artifact>) -> Result<Vec<Unit>, NodeError> {
    let _ = pipeline;
    match &node.op {
        Op::Read(p) => read::units(p),
        Op::Sample(p) => Ok(sample::units(p, inputs)),
        Op::Clean(p) if let Some(r) = &p.read => read::units(r),
        Op::Tokenize(_) | Op::Clean(_) | Op::Dedup(_) => Ok(input_file_units(inputs)),
        Op::Prompts(_) | Op::Sft(_) | Op::RewardModel(_) | Op::Dpo(_) => Ok(vec![Unit {
            label: "all".into(),
            bytes: 0,
        }]),
        Op::Write(_)
        | Op::TrainTokenizer(_)
        | Op::Tokenizer(_)
        | Op::Pack(_)
        | Op::Pretrain(_)
        | Op::Eval(_)
        | Op::ImportModel(_)
        | Op::Ppo(_)
        | Op::EvalChat(_) => Ok(vec![Unit {
            label: "all".into(),
            bytes: 0,
        }]),
    }
}

/// Runs units `range` of the node.
pub fn run(ctx: &Ctx, units: &[Unit], range: Range<usize>) -> Result<Output, NodeError> {
    match &ctx.node.op {
        Op::Read(p) => read::run(ctx, p, units, range),
        Op::Sample(p) => sample::run(ctx, p, range),
        Op::Write(p) => write::run(ctx, p),
        Op::TrainTokenizer(p) => tokenizer::train(ctx, p),
        Op::Tokenizer(p) => tokenizer::import(ctx, p),
        Op::Tokenize(p) => tokenize::run(ctx, p, range),
        Op::Pack(p) => pack::run(ctx, p),
        Op::Clean(p) => clean::run(ctx, p, units, range),
        Op::Pretrain(p) => model::pretrain(ctx, p),
        Op::Eval(p) => model::eval(ctx, p),
        Op::ImportModel(p) => model::import(ctx, p),
        Op::Dedup(p) => dedup::run(ctx, p, range),
        Op::Prompts(p) => post::prompts(ctx, p),
        Op::Sft(p) => post::sft(ctx, p),
        Op::RewardModel(p) => prefs::reward_model(ctx, p),
        Op::Dpo(p) => prefs::dpo(ctx, p),
        Op::Ppo(p) => rl::ppo(ctx, p),
        Op::EvalChat(p) => rl::eval_chat(ctx, p),
    }
}
