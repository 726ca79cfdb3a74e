//! The loop the preference trainers (reward model, DPO) share: seeded
//! epochs of shuffled records, one batch per optimizer step, AdamW under a
//! schedule with global-norm clipping over every trained buffer, periodic
//! evaluation, and a `metrics.jsonl` line per step.
//!
//! Unlike pretraining there is no checkpoint/resume: these runs are short
//! (minutes) and a re-run starts over.

use super::{AdamW, AdamWConfig, Schedule, grad_norm};
use crate::model::rng::Rng;
use crate::progress::Progress;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::ops::Range;
use std::path::Path;

/// Named metric values of one batch or evaluation (`loss`, `accuracy`, ...).
pub type Metrics = Vec<(&'static str, f64)>;

/// A model a preference loss trains: batches by record index, buffers to update.
pub trait PairTrainer {
    /// Records in the training set.
    fn len(&self) -> usize;
    /// Whether the training set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Zeroes every gradient.
    fn zero_grad(&mut self);
    /// Forward and backward over training records `idx`, accumulating the
    /// gradient of the batch's mean loss; returns the batch's metrics.
    fn train_batch(&mut self, idx: &[usize]) -> Result<Metrics, String>;
    /// Metrics over the held-out set (`None` when there is none); names get a `val_` prefix in the log.
    fn evaluate(&mut self) -> Result<Option<Metrics>, String>;
    /// `(params, grads)` of each trained buffer, in a fixed order.
    fn buffers(&mut self) -> Vec<(&mut [f32], &[f32])>;
    /// Sizes and weight-decayed ranges of the buffers, in [`PairTrainer::buffers`]' order.
    fn layout(&self) -> Vec<(usize, Vec<Range<usize>>)>;
}

/// The loop's settings.
#[derive(Debug, Clone)]
pub struct PairLoop {
    /// Records per optimizer step.
    pub batch_size: usize,
    /// Optimizer steps.
    pub max_steps: u64,
    /// Learning rate by step.
    pub schedule: Schedule,
    /// AdamW hyper-parameters.
    pub adamw: AdamWConfig,
    /// Global grad-norm clip (0 = off).
    pub grad_clip: f32,
    /// Evaluate every N steps (0: only at the end).
    pub eval_every: u64,
    /// Seeds the order of records in each epoch.
    pub seed: u64,
}

/// What a finished run reports.
#[derive(Debug, Clone, Default)]
pub struct PairOutcome {
    /// Steps run.
    pub steps: u64,
    /// The last step's metrics.
    pub last: Metrics,
    /// The first evaluation (before any update) and the last one.
    pub val_first: Option<Metrics>,
    /// The final evaluation.
    pub val_last: Option<Metrics>,
}

/// Record order of `epoch`: a Fisher–Yates shuffle seeded by (seed, epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn line(out: &mut std::fs::File, path: &Path, step: u64, prefix: &str, m: &Metrics, extra: &[(&str, f64)]) -> Result<(), String> {
    let mut obj = Map::new();
    obj.insert("step".into(), json!(step));
    for (k, v) in m.iter().map(|(k, v)| (*k, v)).chain(extra.iter().map(|(k, v)| (*k, v))) {
        obj.insert(format!("{prefix}{k}"), json!(v));
    }
    writeln!(out, "{}", Value::Object(obj)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Trains `t` for `cfg.max_steps` steps, writing `metrics.jsonl` to `metrics_path`.
pub fn train(t: &mut dyn PairTrainer, cfg: &PairLoop, metrics_path: &Path, progress: &dyn Progress) -> Result<PairOutcome, String> {
    if t.len() < cfg.batch_size {
        return Err(format!("{} training records are fewer than batch_size {}", t.len(), cfg.batch_size));
    }
    let mut opts: Vec<AdamW> = t.layout().into_iter().map(|(n, decay)| AdamW::new(cfg.adamw, n, decay)).collect();
    let mut out = std::fs::File::create(metrics_path).map_err(|e| format!("{}: {e}", metrics_path.display()))?;
    let mut outcome = PairOutcome::default();
    let eval0 = t.evaluate()?;
    if let Some(m) = &eval0 {
        line(&mut out, metrics_path, 0, "val_", m, &[])?;
    }
    outcome.val_first = eval0;
    let per_epoch = (t.len() / cfg.batch_size) as u64;
    let mut order = Vec::new();
    for step in 0..cfg.max_steps {
        if progress.cancelled() {
            return Err("cancelled".into());
        }
        let (epoch, k) = (step / per_epoch, (step % per_epoch) as usize);
        if k == 0 {
            order = epoch_order(t.len(), cfg.seed, epoch);
        }
        let idx = &order[k * cfg.batch_size..(k + 1) * cfg.batch_size];
        t.zero_grad();
        let m = t.train_batch(idx)?;
        let bufs = t.buffers();
        let norm = bufs.iter().map(|(_, g)| (grad_norm(g) as f64).powi(2)).sum::<f64>().sqrt() as f32;
        if !norm.is_finite() || m.iter().any(|(_, v)| !v.is_finite()) {
            return Err(format!(
                "training diverged at step {}: gradient norm {norm}, metrics {m:?} (lower `lr` or check the data)",
                step + 1
            ));
        }
        let clip = if cfg.grad_clip > 0.0 && norm > cfg.grad_clip {
            cfg.grad_clip / norm
        } else {
            1.0
        };
        let lr = cfg.schedule.lr(step);
        for ((params, grads), opt) in bufs.into_iter().zip(opts.iter_mut()) {
            opt.update(params, grads, lr, clip);
        }
        line(
            &mut out,
            metrics_path,
            step + 1,
            "",
            &m,
            &[("lr", lr as f64), ("grad_norm", norm as f64)],
        )?;
        progress.inc(1);
        let last = step + 1 == cfg.max_steps;
        if (last || (cfg.eval_every > 0 && (step + 1).is_multiple_of(cfg.eval_every)))
            && let Some(v) = t.evaluate()?
        {
            line(&mut out, metrics_path, step + 1, "val_", &v, &[])?;
            let text: Vec<String> = v.iter().map(|(k, x)| format!("{k} {x:.4}")).collect();
            progress.note(&format!("step {}: val {}", step + 1, text.join(", ")));
            outcome.val_last = Some(v);
        }
        outcome.last = m;
        outcome.steps = step + 1;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_seeded_permutations() {
        let a = epoch_order(50, 1, 0);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, 1, 0));
        assert_ne!(a, epoch_order(50, 1, 1));
        assert_ne!(a, epoch_order(50, 2, 0));
    }
}
