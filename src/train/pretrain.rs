//! The pretraining loop: micro-batches from the packed loader, gradient
//! accumulation, clipping, AdamW under a schedule, periodic evaluation on
//! the val split, atomic checkpoints, and a `metrics.jsonl` line per step.
//!
//! Resuming: the loop starts from the newest checkpoint in its checkpoint
//! directory (which the engine keys by the node's fingerprint, so a changed
//! config never resumes a stale run). Parameters, moments, the AdamW step
//! and the loader position are restored exactly, and every batch and
//! reduction is deterministic for a thread count, so a run killed at any
//! step and restarted ends bit-identical to one that was never stopped.

use super::checkpoint::{self, Buffers, TrainState};
use super::{AdamW, AdamWConfig, Schedule, grad_norm};
use crate::model::{Gpt, GptConfig, ModelError};
use crate::pack::loader::{Batch, Loader};
use crate::progress::Progress;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the loop needs besides the model and data.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Optimizer steps in all.
    pub max_steps: u64,
    /// Learning rate by step.
    pub schedule: Schedule,
    /// AdamW hyper-parameters.
    pub adamw: AdamWConfig,
    /// Global grad-norm clip (0 = off).
    pub grad_clip: f32,
    /// Evaluate every N steps (0: only at the end).
    pub eval_every: u64,
    /// Val batches per evaluation.
    pub eval_batches: u64,
    /// Checkpoint every N steps (0: never).
    pub checkpoint_every: u64,
    /// Bytes per token of the corpus, for bits per byte.
    pub bytes_per_token: Option<f64>,
    /// Peak FLOP/s for MFU.
    pub peak_flops: f64,
}

/// What the loop reports besides [`Progress`]: each optimizer step's loss
/// and speed.
pub trait Hooks: Progress {
    /// After each optimizer step.
    fn step(&self, step: u64, loss: f32, tokens_per_s: f64);
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Ctrl-C.
    #[error("cancelled")]
    Cancelled,
    /// Anything else; the message says what and where.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for TrainError {
    fn from(s: String) -> Self {
        TrainError::Failed(s)
    }
}

/// The result of a finished run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Steps completed.
    pub steps: u64,
    /// Loss of the last step.
    pub loss: f32,
    /// Training tokens consumed.
    pub tokens: u64,
    /// Final val loss and bits per byte, if there is a val split.
    pub val: Option<(f32, Option<f64>)>,
    /// Steps this process ran (the rest came from a checkpoint).
    pub steps_run: u64,
}

/// Inputs, targets and mask of one micro-batch, `[B·T]` each.
struct Micro {
    inputs: Vec<u32>,
    targets: Vec<u32>,
    mask: Vec<u8>,
    batch: Batch,
}

impl Micro {
    fn fill(&mut self, loader: &mut Loader, t: usize) -> bool {
        loader.next_into(&mut self.batch);
        let b = self.batch.rows.len();
        self.inputs.clear();
        self.targets.clear();
        self.mask.clear();
        for i in 0..b {
            let row = self.batch.row(i);
            self.inputs.extend_from_slice(&row[..t]);
            self.targets.extend_from_slice(&row[1..=t]);
            if let Some(m) = &self.batch.loss_mask {
                self.mask.extend_from_slice(&m[i * (t + 1) + 1..(i + 1) * (t + 1)]);
            }
        }
        self.batch.loss_mask.is_some()
    }
}

/// What the loop needs of a model and its optimizer, so one loop trains on
/// the CPU ([`CpuTrainee`]) and on the GPU (`backend::cuda::CudaTrainee`).
pub trait Trainee {
    /// The architecture.
    fn config(&self) -> &GptConfig;
    /// Number of parameters.
    fn n_params(&self) -> usize;
    /// Sets every gradient to zero.
    fn zero_grad(&mut self) -> Result<(), String>;
    /// Forward with targets: the mean (masked) cross-entropy.
    fn forward(
        &mut self,
        inputs: &[u32],
        targets: Option<&[u32]>,
        mask: Option<&[u8]>,
        b: usize,
        t: usize,
    ) -> Result<Option<f32>, ModelError>;
    /// Accumulates the gradient of `scale ·` the last loss.
    fn backward_scaled(&mut self, scale: f32) -> Result<(), ModelError>;
    /// The global L2 norm of the gradients.
    fn grad_norm(&mut self) -> Result<f32, String>;
    /// One AdamW step at `lr` with the gradients scaled by `grad_scale`.
    fn update(&mut self, lr: f32, grad_scale: f32) -> Result<(), String>;
    /// AdamW steps taken.
    fn adam_step(&self) -> u64;
    /// Restores parameters and moments from the newest checkpoint under `dir`.
    fn load_checkpoint(&mut self, dir: &Path) -> Result<Option<TrainState>, String>;
    /// Writes a checkpoint of parameters and moments with `state`.
    fn save_checkpoint(&mut self, dir: &Path, state: &TrainState) -> Result<(), String>;
}

/// The CPU model with its AdamW state.
#[derive(Debug)]
pub struct CpuTrainee<'m> {
    /// The model.
    pub model: &'m mut Gpt,
    /// Its optimizer.
    pub opt: AdamW,
}

impl<'m> CpuTrainee<'m> {
    /// `model` with fresh AdamW state (decay on its matrices).
    pub fn new(model: &'m mut Gpt, adamw: AdamWConfig) -> Self {
        let opt = AdamW::new(adamw, model.params.len(), model.decay_ranges());
        CpuTrainee { model, opt }
    }
}

impl Trainee for CpuTrainee<'_> {
    fn config(&self) -> &GptConfig {
        self.model.config()
    }
    fn n_params(&self) -> usize {
        self.model.params.len()
    }
    fn zero_grad(&mut self) -> Result<(), String> {
        self.model.zero_grad();
        Ok(())
    }
    fn forward(
        &mut self,
        inputs: &[u32],
        targets: Option<&[u32]>,
        mask: Option<&[u8]>,
        b: usize,
        t: usize,
    ) -> Result<Option<f32>, ModelError> {
        self.model.forward(inputs, targets, mask, b, t)
    }
    fn backward_scaled(&mut self, scale: f32) -> Result<(), ModelError> {
        self.model.backward_scaled(scale)
    }
    fn grad_norm(&mut self) -> Result<f32, String> {
        Ok(grad_norm(&self.model.grads))
    }
    fn update(&mut self, lr: f32, grad_scale: f32) -> Result<(), String> {
        self.opt.update(&mut self.model.params, &self.model.grads, lr, grad_scale);
        Ok(())
    }
    fn adam_step(&self) -> u64 {
        self.opt.step
    }
    fn load_checkpoint(&mut self, dir: &Path) -> Result<Option<TrainState>, String> {
        let s = checkpoint::load_latest(dir, &mut self.model.params, &mut self.opt.m, &mut self.opt.v)?;
        if let Some(s) = s {
            self.opt.step = s.adam_step;
        }
        Ok(s)
    }
    fn save_checkpoint(&mut self, dir: &Path, state: &TrainState) -> Result<(), String> {
        checkpoint::save(
            dir,
            state,
            &Buffers {
                params: &self.model.params,
                m: &self.opt.m,
                v: &self.opt.v,
            },
        )
        .map(|_| ())
    }
}

/// FLOPs per trained token: 6 per weight that multiplies (LM head
/// included, position embeddings excluded), plus causal attention's
/// 6·L·T·C (Chinchilla/PaLM accounting, halved for the causal mask).
pub fn flops_per_token(model: &Gpt, t: usize) -> f64 {
    flops_per_token_of(model.config(), model.params.len(), t)
}

/// [`flops_per_token`] from the config and parameter count.
pub fn flops_per_token_of(c: &GptConfig, n_params: usize, t: usize) -> f64 {
    let wpe = c.block_size * c.n_embd;
    let n = (n_params - wpe) as f64;
    6.0 * n + 6.0 * (c.n_layer * t * c.n_embd) as f64
}

/// Mean loss over the first `batches` batches of `val` (in order).
pub fn evaluate(model: &mut dyn Trainee, val: &mut Loader, batches: u64, t: usize) -> Result<f32, String> {
    let mut micro = Micro {
        inputs: vec![],
        targets: vec![],
        mask: vec![],
        batch: Batch::default(),
    };
    let n = batches.min(val.steps_per_epoch()).max(1);
    let mut sum = 0.0f64;
    for _ in 0..n {
        let masked = micro.fill(val, t);
        let rows = micro.batch.rows.len();
        let loss = model
            .forward(&micro.inputs, Some(&micro.targets), masked.then_some(&micro.mask[..]), rows, t)
            .map_err(|e| e.to_string())?
            .unwrap_or(f32::NAN);
        sum += loss as f64;
    }
    Ok((sum / n as f64) as f32)
}

/// Appends lines to `metrics.jsonl`, keeping only lines up to `from_step`
/// from an earlier (interrupted) run.
fn open_metrics(path: &Path, from_step: u64) -> Result<std::fs::File, String> {
    let kept: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= from_step)
        })
        .map(str::to_string)
        .collect();
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Trains `model` on `train` (a loader over the train split, `[B, T+1]`
/// rows) for `cfg.max_steps` optimizer steps, resuming from `ckpt_dir`.
/// `val` opens a fresh val loader for each evaluation. Metrics go to
/// `ckpt_dir/metrics.jsonl`.
pub fn train(
    model: &mut Gpt,
    train: &mut Loader,
    val: &dyn Fn() -> Option<Loader>,
    cfg: &LoopConfig,
    ckpt_dir: &Path,
    hooks: &dyn Hooks,
) -> Result<Outcome, TrainError> {
    train_with(&mut CpuTrainee::new(model, cfg.adamw), train, val, cfg, ckpt_dir, hooks)
}

/// [`train`] for any [`Trainee`] (the CPU or the GPU model).
pub fn train_with(
    model: &mut dyn Trainee,
    train: &mut Loader,
    val: &dyn Fn() -> Option<Loader>,
    cfg: &LoopConfig,
    ckpt_dir: &Path,
    hooks: &dyn Hooks,
) -> Result<Outcome, TrainError> {
    let t = train.row_len() - 1;
    let mut state = TrainState::default();
    std::fs::create_dir_all(ckpt_dir).map_err(|e| format!("{}: {e}", ckpt_dir.display()))?;
    if let Some(s) = model.load_checkpoint(ckpt_dir)? {
        state = s;
        train.resume(s.loader).map_err(|e| e.to_string())?;
        hooks.note(&format!("resumed from the checkpoint at step {} ({} tokens)", s.step, s.tokens));
    }
    let metrics_path: PathBuf = ckpt_dir.join("metrics.jsonl");
    let mut metrics = open_metrics(&metrics_path, state.step)?;
    let mut line =
        |v: serde_json::Value| -> Result<(), String> { writeln!(metrics, "{v}").map_err(|e| format!("{}: {e}", metrics_path.display())) };
    let mut micro = Micro {
        inputs: vec![],
        targets: vec![],
        mask: vec![],
        batch: Batch::default(),
    };
    let flops_tok = flops_per_token_of(model.config(), model.n_params(), t);
    let eval = |model: &mut dyn Trainee| -> Result<Option<(f32, Option<f64>)>, String> {
        let Some(mut v) = val() else { return Ok(None) };
        let loss = evaluate(model, &mut v, cfg.eval_batches, t)?;
        let bpb = cfg.bytes_per_token.map(|b| loss as f64 / std::f64::consts::LN_2 / b);
        Ok(Some((loss, bpb)))
    };
    let mut outcome = Outcome::default();
    let start_step = state.step;
    while state.step < cfg.max_steps {
        if hooks.cancelled() {
            return Err(TrainError::Cancelled);
        }
        let t0 = Instant::now();
        model.zero_grad()?;
        let mut loss_sum = 0.0f32;
        let mut tokens = 0u64;
        let scale = 1.0 / cfg.grad_accum as f32;
        for _ in 0..cfg.grad_accum {
            let masked = micro.fill(train, t);
            let rows = micro.batch.rows.len();
            let loss = model
                .forward(&micro.inputs, Some(&micro.targets), masked.then_some(&micro.mask[..]), rows, t)
                .map_err(|e| format!("step {}: {e}", state.step + 1))?
                .unwrap_or(f32::NAN);
            if !loss.is_finite() {
                return Err(non_finite(state.step + 1, "loss", loss, ckpt_dir).into());
            }
            model.backward_scaled(scale).map_err(|e| format!("step {}: {e}", state.step + 1))?;
            loss_sum += loss;
            tokens += (rows * t) as u64;
        }
        let loss = loss_sum / cfg.grad_accum as f32;
        let norm = model.grad_norm()?;
        if !norm.is_finite() {
            return Err(non_finite(state.step + 1, "gradient norm", norm, ckpt_dir).into());
        }
        let clip = if cfg.grad_clip > 0.0 && norm > cfg.grad_clip {
            cfg.grad_clip / norm
        } else {
            1.0
        };
        let lr = cfg.schedule.lr(state.step);
        model.update(lr, clip)?;
        state.step += 1;
        state.adam_step = model.adam_step();
        state.tokens += tokens;
        state.loss = loss;
        state.loader = train.position();
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        let tok_s = tokens as f64 / secs;
        line(json!({
            "step": state.step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": state.tokens,
            "tokens_per_s": tok_s, "mfu": tok_s * flops_tok / cfg.peak_flops, "ms": secs * 1e3,
        }))?;
        hooks.step(state.step, loss, tok_s);
        let last = state.step == cfg.max_steps;
        let eval_now = last || (cfg.eval_every > 0 && state.step.is_multiple_of(cfg.eval_every));
        if eval_now && let Some((vl, bpb)) = eval(model)? {
            line(json!({"step": state.step, "val_loss": vl, "val_bpb": bpb}))?;
            hooks.note(&format!(
                "step {}: val loss {vl:.4}{}",
                state.step,
                bpb.map(|b| format!(", {b:.4} bits/byte")).unwrap_or_default()
            ));
            if last {
                outcome.val = Some((vl, bpb));
            }
        }
        if cfg.checkpoint_every > 0 && (state.step.is_multiple_of(cfg.checkpoint_every) || last) {
            model.save_checkpoint(ckpt_dir, &state)?;
        }
    }
    if outcome.val.is_none() && state.step == start_step {
        // Everything came from the checkpoint: evaluate the final model once more.
        outcome.val = eval(model)?;
    }
    outcome.steps = state.step;
    outcome.loss = state.loss;
    outcome.tokens = state.tokens;
    outcome.steps_run = state.step - start_step;
    Ok(outcome)
}

fn non_finite(step: u64, what: &str, value: f32, ckpt_dir: &Path) -> String {
    format!(
        "training diverged: {what} is {value} at step {step}; the last good checkpoint is kept in {} \
         (lower `lr`, raise `warmup_steps`, or check the data)",
        ckpt_dir.display()
    )
}
