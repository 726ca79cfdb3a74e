//! Parameters of the post-training ops: `prompts`, `sft`, `reward_model`, `dpo`.

use super::{BackendName, PrecisionName, RangeProblem, ScheduleName};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Makes a `prompts` artifact: the conversations a policy is asked to continue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptsParams {
    /// A `chat` node (each conversation minus its last assistant turn, which becomes `reference`), a `preferences`
    /// node (the shared `prompt`; HH-RLHF transcripts come through `format: hh-rlhf-preferences`) or a `documents`
    /// node (each `text` one user message: a plain list of prompts).
    pub input: String,
    /// A `tokenizer` or `model` node; with `max_tokens`, prompts whose rendering is longer are rejected (counted, in
    /// `rejected/`).
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Longest prompt in tokens (chat template, `<|bos|>` and the opening `<|assistant|>` included); needs `tokenizer`.
    #[serde(default)]
    pub max_tokens: Option<u64>,
}

impl PromptsParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        if self.max_tokens == Some(0) {
            p.push(("max_tokens".into(), "must be at least 1".into()));
        }
        if self.max_tokens.is_some() && self.tokenizer.is_none() {
            p.push((
                "max_tokens".into(),
                "needs `tokenizer` (a tokenizer or model node) to count tokens".into(),
            ));
        }
        p
    }
}

fn d_sft_lr() -> f32 {
    1e-4
}
fn d_sft_steps() -> u64 {
    300
}
fn d_sft_warmup() -> u64 {
    10
}
fn d_batch() -> usize {
    8
}
fn d_one() -> usize {
    1
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
    50
}
fn d_eval_batches() -> u64 {
    10
}
fn d_ckpt_every() -> u64 {
    50
}
fn d_linear() -> ScheduleName {
    ScheduleName::Linear
}

/// Supervised fine-tuning: continues a `model` on packed chat rows, with the loss on assistant tokens only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SftParams {
    /// The `model` node to fine-tune (its `tokenizer.json` is kept).
    pub model: String,
    /// The `packed` node made from tokenized `chat` (it must carry a `loss_mask`); its `val` split (pack's
    /// `val_fraction`/`val_docs`: held-out chats) is evaluated. Pack with `mode: bestfit` so every row starts at a
    /// conversation.
    pub input: String,
    /// Rows per micro-batch.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "d_one")]
    pub grad_accum: usize,
    /// Optimizer steps.
    #[serde(default = "d_sft_steps")]
    pub max_steps: u64,
    /// Peak learning rate.
    #[serde(default = "d_sft_lr")]
    pub lr: f32,
    /// Final learning rate as a fraction of `lr`.
    #[serde(default)]
    pub min_lr_ratio: f32,
    /// Linear warmup steps.
    #[serde(default = "d_sft_warmup")]
    pub warmup_steps: u64,
    /// Schedule after warmup (TRL's default is linear decay to 0).
    #[serde(default = "d_linear")]
    pub schedule: ScheduleName,
    /// AdamW decoupled weight decay, on matrices only.
    #[serde(default)]
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
}

/// The range checks every optimizer-driven op shares.
fn optim_checks(p: &mut Vec<RangeProblem>, batch: usize, steps: u64, lr: f32, min_lr_ratio: f32, clip: f32, wd: f32) {
    let mut need = |ok: bool, field: &str, msg: String| {
        if !ok {
            p.push((field.to_string(), msg));
        }
    };
    need(batch >= 1, "batch_size", "must be at least 1".into());
    need(steps >= 1, "max_steps", "must be at least 1".into());
    need(lr > 0.0 && lr.is_finite(), "lr", format!("{lr} must be positive"));
    need(
        (0.0..=1.0).contains(&min_lr_ratio),
        "min_lr_ratio",
        format!("{min_lr_ratio} is outside [0, 1]"),
    );
    need(clip >= 0.0, "grad_clip", "must be at least 0".into());
    need(wd >= 0.0, "weight_decay", "must be at least 0".into());
}

impl SftParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        optim_checks(
            &mut p,
            self.batch_size,
            self.max_steps,
            self.lr,
            self.min_lr_ratio,
            self.grad_clip,
            self.weight_decay,
        );
        if self.grad_accum == 0 {
            p.push(("grad_accum".into(), "must be at least 1".into()));
        }
        if self.eval_batches == 0 {
            p.push(("eval_batches".into(), "must be at least 1".into()));
        }
        for (f, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                p.push((f.into(), format!("{b} is outside [0, 1)")));
            }
        }
        p
    }
}

fn d_rm_lr() -> f32 {
    5e-5
}
fn d_pref_steps() -> u64 {
    200
}
fn d_val_fraction() -> f64 {
    0.1
}
fn d_beta() -> f32 {
    0.1
}
fn d_dpo_lr() -> f32 {
    1e-6
}

/// Trains a reward model: the `model`'s trunk plus a new scalar `score` head on the last token (`<|end|>`), with the
/// pairwise loss `−log σ(r_c − r_r − margin) + center_coef·(r_c + r_r)²`; saved as `GPT2ForSequenceClassification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardModelParams {
    /// The `model` node whose trunk starts the reward model (usually the SFT model).
    pub model: String,
    /// The `preferences` node (pairs, or rankings in `responses`: all K(K−1)/2 pairs of a ranking train together).
    pub input: String,
    /// A held-out `preferences` node; without it `val_fraction` of `input` is held out (seeded).
    #[serde(default)]
    pub val: Option<String>,
    /// Fraction of `input` held out when `val` is not given (0 = no evaluation).
    #[serde(default = "d_val_fraction")]
    pub val_fraction: f64,
    /// A `chat` node: after training, the mean score of its conversations is stored as `kiln_score_offset` and
    /// subtracted by kiln's scorer, so SFT demonstrations score 0 on average.
    #[serde(default)]
    pub normalize: Option<String>,
    /// Weight of the `(r_c + r_r)²` term that keeps rewards centred (0 = off).
    #[serde(default)]
    pub center_coef: f32,
    /// Preference records per optimizer step.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Optimizer steps (the data repeats in a new seeded order each epoch).
    #[serde(default = "d_pref_steps")]
    pub max_steps: u64,
    /// Peak learning rate.
    #[serde(default = "d_rm_lr")]
    pub lr: f32,
    /// Final learning rate as a fraction of `lr`.
    #[serde(default)]
    pub min_lr_ratio: f32,
    /// Linear warmup steps.
    #[serde(default = "d_sft_warmup")]
    pub warmup_steps: u64,
    /// Schedule after warmup.
    #[serde(default = "d_linear")]
    pub schedule: ScheduleName,
    /// AdamW decoupled weight decay, on matrices only.
    #[serde(default)]
    pub weight_decay: f32,
    /// Global gradient-norm clip (0 = off).
    #[serde(default = "d_clip")]
    pub grad_clip: f32,
    /// Evaluate every N steps (and at the end; 0 = only at the end).
    #[serde(default = "d_eval_every")]
    pub eval_every: u64,
    /// Matmul precision.
    #[serde(default)]
    pub precision: PrecisionName,
}

impl RewardModelParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        optim_checks(
            &mut p,
            self.batch_size,
            self.max_steps,
            self.lr,
            self.min_lr_ratio,
            self.grad_clip,
            self.weight_decay,
        );
        if !(0.0..1.0).contains(&self.val_fraction) {
            p.push(("val_fraction".into(), format!("{} is outside [0, 1)", self.val_fraction)));
        }
        if !(self.center_coef >= 0.0 && self.center_coef.is_finite()) {
            p.push(("center_coef".into(), format!("{} must be at least 0", self.center_coef)));
        }
        p
    }
}

/// Direct preference optimisation: trains a `model` on preferences against a frozen reference with the sigmoid
/// loss `−log σ(β((π_c − ref_c) − (π_r − ref_r)))` over each reply's summed log-probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DpoParams {
    /// The `model` node to train (usually the SFT model).
    pub model: String,
    /// The `preferences` node (rankings use their `chosen`/`rejected`: best and worst).
    pub input: String,
    /// The frozen reference `model`; default: a copy of `model` as it starts.
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
    /// A held-out `preferences` node; without it `val_fraction` of `input` is held out (seeded).
    #[serde(default)]
    pub val: Option<String>,
    /// Fraction of `input` held out when `val` is not given (0 = no evaluation).
    #[serde(default = "d_val_fraction")]
    pub val_fraction: f64,
    /// Strength of the implicit KL penalty (DPO's β).
    #[serde(default = "d_beta")]
    pub beta: f32,
    /// Pairs per optimizer step.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Optimizer steps (the data repeats in a new seeded order each epoch).
    #[serde(default = "d_pref_steps")]
    pub max_steps: u64,
    /// Peak learning rate.
    #[serde(default = "d_dpo_lr")]
    pub lr: f32,
    /// Final learning rate as a fraction of `lr`.
    #[serde(default)]
    pub min_lr_ratio: f32,
    /// Linear warmup steps.
    #[serde(default = "d_sft_warmup")]
    pub warmup_steps: u64,
    /// Schedule after warmup.
    #[serde(default = "d_linear")]
    pub schedule: ScheduleName,
    /// AdamW decoupled weight decay, on matrices only.
    #[serde(default)]
    pub weight_decay: f32,
    /// Global gradient-norm clip (0 = off).
    #[serde(default = "d_clip")]
    pub grad_clip: f32,
    /// Evaluate every N steps (and at the end; 0 = only at the end).
    #[serde(default = "d_eval_every")]
    pub eval_every: u64,
    /// Matmul precision.
    #[serde(default)]
    pub precision: PrecisionName,
}

impl DpoParams {
    /// Range checks.
    pub fn check(&self) -> Vec<RangeProblem> {
        let mut p = Vec::new();
        optim_checks(
            &mut p,
            self.batch_size,
            self.max_steps,
            self.lr,
            self.min_lr_ratio,
            self.grad_clip,
            self.weight_decay,
        );
        if !(0.0..1.0).contains(&self.val_fraction) {
            p.push(("val_fraction".into(), format!("{} is outside [0, 1)", self.val_fraction)));
        }
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            p.push(("beta".into(), format!("{} must be positive", self.beta)));
        }
        p
    }
}
