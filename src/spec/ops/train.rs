//! Parameters of the model ops: `pretrain`, `eval`, `import_model`.

use super::RangeProblem;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Matmul precision of the CPU backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionName {
    /// fp32 everywhere.
    #[default]
    F32,
    /// bf16 matmul operands with fp32 accumulation (AMX or AVX512-BF16 where the CPU has it); fp32 master weights and optimizer state.
    Bf16,
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// The CPU (rayon + gemm).
    #[default]
    Cpu,
    /// An NVIDIA GPU (build with `--features cuda`).
    Cuda,
}

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleName {
    /// Half-cosine from `lr` down to `lr · min_lr_ratio`.
    #[default]
    Cosine,
    /// Straight line down to `lr · min_lr_ratio`.
    Linear,
    /// Stay at `lr`.
    Constant,
    /// Warmup–stable–decay: stay at `lr`, then decay linearly over the last `decay_fraction` of the steps.
    Wsd,
}

/// The architecture of a new model. `vocab_size` comes from the tokenizer
/// and `block_size` from the packed rows unless given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    /// Transformer blocks.
    #[serde(default = "d_layer")]
    pub n_layer: usize,
    /// Attention heads (must divide `n_embd`).
    #[serde(default = "d_head")]
    pub n_head: usize,
    /// Residual width.
    #[serde(default = "d_embd")]
    pub n_embd: usize,
    /// Context length; default: the packed rows' `seq_len`.
    #[serde(default)]
    pub block_size: Option<usize>,
    /// Vocabulary; default: the tokenizer's.
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// Dropout (only 0 is supported yet).
    #[serde(default)]
    pub dropout: f32,
}

fn d_layer() -> usize {
    4
}
fn d_head() -> usize {
    4
}
fn d_embd() -> usize {
    256
}

impl Default for ArchSpec {
    fn default() -> Self {
        ArchSpec {
            n_layer: d_layer(),
            n_head: d_head(),
            n_embd: d_embd(),
            block_size: None,
            vocab_size: None,
            dropout: 0.0,
        }
    }
}

fn d_batch() -> usize {
    8
}
fn d_one() -> usize {
    1
}
fn d_steps() -> u64 {
    1000
}
fn d_lr() -> f32 {
    6e-4
}
fn d_min_lr_ratio() -> f32 {
    0.1
}
fn d_warmup() -> u64 {
    100
}
fn d_decay_fraction() -> f32 {
    0.2
}
fn d_wd() -> f32 {
    0.1
}
fn d_beta1() -> f32 {
    0.9
}
fn d_beta2() -> f32 {
    0.95
}
fn d_eps() -> f32 {
    1e-8
}
fn d_clip() -> f32 {
    1.0
}
fn d_eval_every() -> u64 {
    100
}
fn d_eval_batches() -> u64 {
    10
}
fn d_ckpt_every() -> u64 {
    100
}

/// Pretrains (or continues training) a GPT-2 on packed rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PretrainParams {
    /// The `packed` node (its `train` split trains, its `val` split evaluates).
    pub input: String,
    /// The `tokenizer` node; saved with the model as `tokenizer.json`.
    pub tokenizer: String,
    /// A `model` node to continue from (its architecture is used; `model` is ignored).
    #[serde(default)]
    pub init: Option<String>,
    /// Architecture of a new model.
    #[serde(default)]
    pub model: ArchSpec,
    /// Rows per micro-batch.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "d_one")]
    pub grad_accum: usize,
    /// Tokens per optimizer step; when set, `grad_accum` = this / (batch_size · seq_len), which must divide evenly.
    #[serde(default)]
    pub tokens_per_step: Option<u64>,
    /// Optimizer steps.
    #[serde(default = "d_steps")]
    pub max_steps: u64,
    /// Peak learning rate.
    #[serde(default = "d_lr")]
    pub lr: f32,
    /// Final learning rate as a fraction of `lr`.
    #[serde(default = "d_min_lr_ratio")]
    pub min_lr_ratio: f32,
    /// Linear warmup steps.
    #[serde(default = "d_warmup")]
    pub warmup_steps: u64,
    /// Schedule after warmup.
    #[serde(default)]
    pub schedule: ScheduleName,
    /// For `wsd`: fraction of the steps spent decaying.
    #[serde(default = "d_decay_fraction")]
    pub decay_fraction: f32,
    /// AdamW decoupled weight decay, on matrices only.
    #[serde(default = "d_wd")]
    pub weight_decay: f32,
    /// AdamW β1.
    #[serde(default = "d_beta1")]
    pub beta1: f32,
    /// AdamW β2.
    #[serde(default = "d_beta2")]
    pub beta2: f32,
    /// AdamW epsilon.
    #[serde(default = "d_eps")]
    pub eps: f32,
    /// Global gradient-norm clip (0 = off).
    #[serde(default = "d_clip")]
    pub grad_clip: f32,
    /// Evaluate on the val split every N steps (and at the end; 0 = only at the end).
    #[serde(default = "d_eval_every")]
    pub eval_every: u64,
    /// Val batches per evaluation.
    #[serde(default = "d_eval_batches")]
    pub eval_batches: u64,
    /// Save a resumable checkpoint every N steps (0 = never).
    #[serde(default = "d_ckpt_every")]
    pub checkpoint_every: u64,
    /// Matmul precision.
    #[serde(default)]
    pub precision: PrecisionName,
    /// Where to train.
    #[serde(default)]
    pub backend: BackendName,
    /// Peak GFLOP/s the MFU figure divides by; default: 113.6 per thread (fp32 AVX-512 FMA at 3.55 GHz), twice that for bf16.
    #[serde(default)]
    pub peak_gflops: Option<f64>,
}

impl PretrainParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p: Vec<RangeProblem> = Vec::new();
        let mut need = |ok: bool, field: &str, msg: String| {
            if !ok {
                p.push((field.to_string(), msg));
            }
        };
        need(self.batch_size >= 1, "batch_size", "must be at least 1".into());
        need(self.grad_accum >= 1, "grad_accum", "must be at least 1".into());
        need(self.max_steps >= 1, "max_steps", "must be at least 1".into());
        need(self.lr > 0.0 && self.lr.is_finite(), "lr", format!("{} must be positive", self.lr));
        need(
            (0.0..=1.0).contains(&self.min_lr_ratio),
            "min_lr_ratio",
            format!("{} is outside [0, 1]", self.min_lr_ratio),
        );
        need(
            (0.0..=1.0).contains(&self.decay_fraction),
            "decay_fraction",
            format!("{} is outside [0, 1]", self.decay_fraction),
        );
        need(
            (0.0..1.0).contains(&self.beta1),
            "beta1",
            format!("{} is outside [0, 1)", self.beta1),
        );
        need(
            (0.0..1.0).contains(&self.beta2),
            "beta2",
            format!("{} is outside [0, 1)", self.beta2),
        );
        need(self.eps > 0.0, "eps", "must be positive".into());
        need(self.weight_decay >= 0.0, "weight_decay", "must be at least 0".into());
        need(self.grad_clip >= 0.0, "grad_clip", "must be at least 0".into());
        need(self.eval_batches >= 1, "eval_batches", "must be at least 1".into());
        need(self.peak_gflops.is_none_or(|g| g > 0.0), "peak_gflops", "must be positive".into());
        need(self.tokens_per_step != Some(0), "tokens_per_step", "must be at least 1".into());
        let arch = &self.model;
        need(arch.n_layer >= 1, "model.n_layer", "must be at least 1".into());
        need(arch.n_head >= 1, "model.n_head", "must be at least 1".into());
        need(
            arch.n_head >= 1 && arch.n_embd.is_multiple_of(arch.n_head.max(1)) && arch.n_embd > 0,
            "model.n_embd",
            format!("{} must be a positive multiple of n_head {}", arch.n_embd, arch.n_head),
        );
        need(
            arch.dropout == 0.0,
            "model.dropout",
            format!("{} > 0 is not supported yet; use 0", arch.dropout),
        );
        p
    }
}

/// Loss and bits per byte of a model on documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalParams {
    /// The `model` node.
    pub model: String,
    /// The `documents` node to evaluate on (its `text` column).
    pub input: String,
    /// Context length of the windows; default: the model's `block_size`.
    #[serde(default)]
    pub seq_len: Option<usize>,
    /// Rows per forward pass.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Stop after this many tokens (0 = all).
    #[serde(default)]
    pub max_tokens: u64,
    /// Matmul precision.
    #[serde(default)]
    pub precision: PrecisionName,
}

impl EvalParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        if self.batch_size == 0 {
            p.push(("batch_size".into(), "must be at least 1".into()));
        }
        if self.seq_len == Some(0) {
            p.push(("seq_len".into(), "must be at least 1".into()));
        }
        p
    }
}

/// Imports a Hugging Face GPT-2 directory (`config.json`, `model.safetensors`, `tokenizer.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportModelParams {
    /// The directory.
    pub path: String,
}

impl ImportModelParams {
    /// Range checks (none: the files are checked when the node runs).
    pub fn check(&self) -> Vec<RangeProblem> {
        vec![]
    }
}
