//! Direct preference optimisation (Rafailov et al. 2023, eq. 7), the
//! sigmoid loss as TRL's `DPOTrainer` computes it:
//!
//! `loss = −log σ(β · ((π_c − ref_c) − (π_r − ref_r)))`
//!
//! where `π_c` is the policy's summed log-probability of the chosen reply's
//! tokens (its closing `<|end|>` included) given the prompt, and `ref_*` the
//! same under the frozen reference. The reference values never change, so
//! they are computed once before training and the reference model is then
//! dropped. Metric names follow TRL (`rewards/chosen` = β(π_c − ref_c), ...).

use super::prefs::{Metrics, PairTrainer};
use super::seq::{SeqBatch, logprob_backward, token_logprobs};
use crate::model::Gpt;
use std::ops::Range;

/// One comparison: the two full sequences and where each reply starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Prompt + chosen reply + `<|end|>`.
    pub chosen: Vec<u32>,
    /// Where the chosen reply starts.
    pub chosen_start: usize,
    /// Prompt + rejected reply + `<|end|>`.
    pub rejected: Vec<u32>,
    /// Where the rejected reply starts.
    pub rejected_start: usize,
}

/// Each row's scored `(position, target)` pairs.
pub type Targets = Vec<Vec<(usize, u32)>>;

/// The summed reply log-probabilities of each pair's (chosen, rejected)
/// under `model`, one forward for the whole batch; also each row's scored
/// positions (rows alternate chosen, rejected) for a backward.
pub fn reply_logps(model: &mut Gpt, pairs: &[&Pair], pad: u32) -> Result<(Vec<(f64, f64)>, Targets), String> {
    let mut seqs: Vec<&[u32]> = Vec::with_capacity(pairs.len() * 2);
    let mut starts = Vec::with_capacity(pairs.len() * 2);
    for p in pairs {
        seqs.push(&p.chosen);
        seqs.push(&p.rejected);
        starts.push(p.chosen_start);
        starts.push(p.rejected_start);
    }
    let batch = SeqBatch::tight(&seqs, pad)?;
    model
        .forward(&batch.inputs, None, None, batch.b, batch.t)
        .map_err(|e| e.to_string())?;
    let (v, vp) = (model.config().vocab_size, model.config().padded_vocab());
    let targets: Vec<Vec<(usize, u32)>> = starts.iter().enumerate().map(|(i, &s)| batch.targets(i, s)).collect();
    let sums: Vec<f64> = targets
        .iter()
        .map(|t| token_logprobs(model.logits(), vp, v, t, 1.0).iter().map(|&x| x as f64).sum())
        .collect();
    Ok((sums.chunks_exact(2).map(|c| (c[0], c[1])).collect(), targets))
}

/// Sums of the DPO quantities over pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DpoSums {
    /// Σ loss.
    pub loss: f64,
    /// Σ β(π_c − ref_c).
    pub chosen: f64,
    /// Σ β(π_r − ref_r).
    pub rejected: f64,
    /// Pairs whose chosen reward is above the rejected one.
    pub correct: f64,
    /// Pairs.
    pub pairs: f64,
}

impl DpoSums {
    fn add(&mut self, o: DpoSums) {
        self.loss += o.loss;
        self.chosen += o.chosen;
        self.rejected += o.rejected;
        self.correct += o.correct;
        self.pairs += o.pairs;
    }

    /// Means over pairs, by TRL's names.
    pub fn metrics(&self) -> Metrics {
        let n = self.pairs.max(1.0);
        vec![
            ("loss", self.loss / n),
            ("rewards/chosen", self.chosen / n),
            ("rewards/rejected", self.rejected / n),
            ("rewards/accuracies", self.correct / n),
            ("rewards/margins", (self.chosen - self.rejected) / n),
        ]
    }
}

/// The loss of one pair from its four log-probabilities, and
/// d loss / d(π_c, π_r).
pub fn pair_loss(pi: (f64, f64), reference: (f64, f64), beta: f64) -> (DpoSums, (f64, f64)) {
    let rc = beta * (pi.0 - reference.0);
    let rr = beta * (pi.1 - reference.1);
    let x = rc - rr;
    // −log σ(x) = softplus(−x); exactly ln 2 at x = 0.
    let loss = (-x).max(0.0) + (-x.abs()).exp().ln_1p();
    let s = 1.0 / (1.0 + x.exp()); // σ(−x)
    let sums = DpoSums {
        loss,
        chosen: rc,
        rejected: rr,
        correct: f64::from(u8::from(rc > rr)),
        pairs: 1.0,
    };
    (sums, (-beta * s, beta * s))
}

/// A policy under DPO, with its data and the reference's log-probabilities.
pub struct DpoTrainer {
    /// The policy.
    pub policy: Gpt,
    /// Training pairs.
    pub train: Vec<Pair>,
    /// Reference (chosen, rejected) log-probabilities of `train`.
    pub train_ref: Vec<(f64, f64)>,
    /// Held-out pairs.
    pub val: Vec<Pair>,
    /// Reference log-probabilities of `val`.
    pub val_ref: Vec<(f64, f64)>,
    /// β.
    pub beta: f64,
    /// Padding id.
    pub pad: u32,
    /// Pairs per forward when evaluating or precomputing.
    pub eval_batch: usize,
}

/// The reference log-probabilities of `pairs`, in batches.
pub fn reference_logps(reference: &mut Gpt, pairs: &[Pair], pad: u32, batch: usize) -> Result<Vec<(f64, f64)>, String> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch.max(1)) {
        let refs: Vec<&Pair> = chunk.iter().collect();
        out.extend(reply_logps(reference, &refs, pad)?.0);
    }
    Ok(out)
}

/// Loss sums of `pairs` under `policy`, and with `backward` the gradient of
/// their mean accumulated into the policy.
pub fn batch_loss(policy: &mut Gpt, pairs: &[&Pair], refs: &[(f64, f64)], beta: f64, pad: u32, backward: bool) -> Result<DpoSums, String> {
    let (logps, targets) = reply_logps(policy, pairs, pad)?;
    let mut sums = DpoSums::default();
    let mut row_grads = Vec::with_capacity(logps.len() * 2);
    for (pi, r) in logps.iter().zip(refs) {
        let (s, (gc, gr)) = pair_loss(*pi, *r, beta);
        sums.add(s);
        row_grads.push(gc);
        row_grads.push(gr);
    }
    if backward {
        let n = sums.pairs.max(1.0);
        let (v, vp) = (policy.config().vocab_size, policy.config().padded_vocab());
        // Every token of a reply carries its row's gradient: ∂Σlogp/∂logp_j = 1.
        let mut positions = Vec::new();
        let mut grads = Vec::new();
        for (t, g) in targets.iter().zip(&row_grads) {
            positions.extend_from_slice(t);
            grads.extend(std::iter::repeat_n((*g / n) as f32, t.len()));
        }
        logprob_backward(policy.logits_mut(), vp, v, &positions, &grads, 1.0);
        policy.backward_from_dlogits().map_err(|e| e.to_string())?;
    }
    Ok(sums)
}

impl PairTrainer for DpoTrainer {
    fn len(&self) -> usize {
        self.train.len()
    }
    fn zero_grad(&mut self) {
        self.policy.zero_grad();
    }
    fn train_batch(&mut self, idx: &[usize]) -> Result<Metrics, String> {
        let pairs: Vec<&Pair> = idx.iter().map(|&i| &self.train[i]).collect();
        let refs: Vec<(f64, f64)> = idx.iter().map(|&i| self.train_ref[i]).collect();
        Ok(batch_loss(&mut self.policy, &pairs, &refs, self.beta, self.pad, true)?.metrics())
    }
    fn evaluate(&mut self) -> Result<Option<Metrics>, String> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let mut sums = DpoSums::default();
        let b = self.eval_batch.max(1);
        for (chunk, refs) in self.val.chunks(b).zip(self.val_ref.chunks(b)) {
            let pairs: Vec<&Pair> = chunk.iter().collect();
            sums.add(batch_loss(&mut self.policy, &pairs, refs, self.beta, self.pad, false)?);
        }
        Ok(Some(sums.metrics()))
    }
    fn buffers(&mut self) -> Vec<(&mut [f32], &[f32])> {
        vec![(&mut self.policy.params[..], &self.policy.grads[..])]
    }
    fn layout(&self) -> Vec<(usize, Vec<Range<usize>>)> {
        vec![(self.policy.params.len(), self.policy.decay_ranges())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Precision;
    use crate::model::rng::Rng;
    use crate::model::tiny_config;

    fn model() -> Gpt {
        let mut m = Gpt::new(tiny_config(), Precision::F32, 21).unwrap();
        let mut r = Rng::new(22);
        m.params.iter_mut().for_each(|p| *p += (r.normal() * 0.1) as f32);
        m
    }

    fn pair(seed: u64) -> Pair {
        let mut r = Rng::new(seed);
        let mut tok = |n: usize| -> Vec<u32> { (0..n).map(|_| 1 + (r.next_u64() % 60) as u32).collect() };
        let prompt = tok(3);
        let (c, rj) = (tok(3), tok(2));
        Pair {
            chosen: [prompt.clone(), c].concat(),
            chosen_start: 3,
            rejected: [prompt, rj].concat(),
            rejected_start: 3,
        }
    }

    #[test]
    fn policy_equal_to_reference_gives_exactly_ln_2() {
        let pairs = [pair(1), pair(2), pair(3)];
        let mut m = model();
        let refs = reference_logps(&mut m, &pairs, 0, 2).unwrap();
        let p: Vec<&Pair> = pairs.iter().collect();
        let s = batch_loss(&mut m, &p, &refs, 0.1, 0, false).unwrap();
        assert_eq!(s.loss / s.pairs, std::f64::consts::LN_2);
        assert_eq!((s.chosen, s.rejected), (0.0, 0.0));
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let pairs = [pair(4), pair(5)];
        let p: Vec<&Pair> = pairs.iter().collect();
        // A reference other than the policy, so the loss is away from ln 2.
        let mut reference = Gpt::new(tiny_config(), Precision::F32, 99).unwrap();
        let refs = reference_logps(&mut reference, &pairs, 0, 8).unwrap();
        let beta = 0.5;
        let mut m = model();
        m.zero_grad();
        batch_loss(&mut m, &p, &refs, beta, 0, true).unwrap();
        let mean = |m: &mut Gpt| {
            let s = batch_loss(m, &p, &refs, beta, 0, false).unwrap();
            s.loss / s.pairs
        };
        let eps = 1e-2f32;
        let fc = m.layout().layer(crate::model::params::Kind::FcW, 0);
        let wte = m.layout().range(crate::model::params::Kind::Wte);
        for k in [fc.start + 5, fc.start + 200, wte.start + 16 * 5 + 3] {
            let (o, g) = (m.params[k], m.grads[k]);
            m.params[k] = o + eps;
            let up = mean(&mut m);
            m.params[k] = o - eps;
            let down = mean(&mut m);
            m.params[k] = o;
            let num = (up - down) / (2.0 * eps as f64);
            assert!((num - g as f64).abs() < 3e-3 * num.abs().max(1e-2), "param {k}: {num} vs {g}");
        }
    }
}
