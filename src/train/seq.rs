//! Variable-length sequences as one batch, and per-token log-probabilities
//! with their gradient: what the reward model, DPO and PPO share.
//!
//! Sequences are **right-padded**. Attention is causal, so a real token
//! never sees the padding after it: every row's positions start at 0 and
//! its logits, hidden states and scores equal those of the row run alone,
//! without position ids or an attention mask. (TRL left-pads prompts because
//! its generator steps all rows in lockstep; kiln's KV-cache decoder keeps a
//! length per sequence, so nothing needs left padding.)

use rayon::prelude::*;

/// `[B, T]` token ids, each row a sequence followed by padding.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqBatch {
    /// `[B·T]` ids.
    pub inputs: Vec<u32>,
    /// Real length of each row.
    pub lens: Vec<usize>,
    /// Rows.
    pub b: usize,
    /// Columns.
    pub t: usize,
}

impl SeqBatch {
    /// Right-pads `seqs` with `pad` to `t` columns. Every sequence must be
    /// non-empty and at most `t` long.
    pub fn new(seqs: &[&[u32]], pad: u32, t: usize) -> Result<SeqBatch, String> {
        if seqs.is_empty() || t == 0 {
            return Err(format!("an empty batch ({} sequences × {t} columns)", seqs.len()));
        }
        let mut inputs = Vec::with_capacity(seqs.len() * t);
        let mut lens = Vec::with_capacity(seqs.len());
        for (i, s) in seqs.iter().enumerate() {
            if s.is_empty() || s.len() > t {
                return Err(format!("sequence {i} has {} tokens; it must have 1 to {t}", s.len()));
            }
            inputs.extend_from_slice(s);
            inputs.resize((i + 1) * t, pad);
            lens.push(s.len());
        }
        Ok(SeqBatch {
            inputs,
            lens,
            b: seqs.len(),
            t,
        })
    }

    /// As [`SeqBatch::new`] with `t` = the longest sequence.
    pub fn tight(seqs: &[&[u32]], pad: u32) -> Result<SeqBatch, String> {
        let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        Self::new(seqs, pad, t)
    }

    /// Flat index of row `i`'s last real token (where a reward model reads
    /// its score).
    pub fn last(&self, i: usize) -> usize {
        i * self.t + self.lens[i] - 1
    }

    /// Flat index of row `i`, column `j`.
    pub fn at(&self, i: usize, j: usize) -> usize {
        i * self.t + j
    }

    /// `(position, target)` pairs that score tokens `from..len` of row `i`:
    /// token `j` is predicted at position `j − 1`. `from` must be ≥ 1.
    pub fn targets(&self, i: usize, from: usize) -> Vec<(usize, u32)> {
        (from.max(1)..self.lens[i])
            .map(|j| (self.at(i, j - 1), self.inputs[self.at(i, j)]))
            .collect()
    }
}

/// Log-sum-exp of `row / temperature`, and the row's max (scaled).
fn lse(row: &[f32], inv_t: f32) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x * inv_t));
    let sum: f64 = row.iter().map(|&x| ((x * inv_t - max) as f64).exp()).sum();
    max + sum.ln() as f32
}

/// `log softmax(logits[pos] / temperature)[target]` for each `(pos,
/// target)`; `logits` is `[N, Vp]` with the real vocabulary in the first
/// `v` columns. Every log-probability kiln's post-training uses comes from
/// here, so policy, reference and old-policy values share one temperature
/// and one summation order.
pub fn token_logprobs(logits: &[f32], vp: usize, v: usize, positions: &[(usize, u32)], temperature: f32) -> Vec<f32> {
    let inv_t = 1.0 / temperature;
    positions
        .par_iter()
        .map(|&(pos, tok)| {
            let row = &logits[pos * vp..pos * vp + v];
            row[tok as usize] * inv_t - lse(row, inv_t)
        })
        .collect()
}

/// Entropy of `softmax(logits[pos] / temperature)` at each position.
pub fn entropies(logits: &[f32], vp: usize, v: usize, positions: &[usize], temperature: f32) -> Vec<f32> {
    let inv_t = 1.0 / temperature;
    positions
        .par_iter()
        .map(|&pos| {
            let row = &logits[pos * vp..pos * vp + v];
            let l = lse(row, inv_t);
            // H = lse − Σ p·z
            let pz: f64 = row.iter().map(|&x| ((x * inv_t - l) as f64).exp() * (x * inv_t) as f64).sum();
            l - pz as f32
        })
        .collect()
}

/// Overwrites `logits` (`[N, Vp]`) with `∂(Σ_k g_k · logp_k)/∂logits`,
/// where `logp_k` is [`token_logprobs`]'s value for `positions[k]`: on a
/// listed row `g/τ · (onehot(target) − softmax(z/τ))`, zero on every other
/// row and on the padded columns. Positions must be distinct. Then
/// [`crate::model::Gpt::backward_from_dlogits`] carries it into the trunk.
pub fn logprob_backward(logits: &mut [f32], vp: usize, v: usize, positions: &[(usize, u32)], grads: &[f32], temperature: f32) {
    let inv_t = 1.0 / temperature;
    let n = logits.len() / vp;
    let mut per_row: Vec<Option<(u32, f32)>> = vec![None; n];
    for (&(pos, tok), &g) in positions.iter().zip(grads) {
        per_row[pos] = Some((tok, g));
    }
    logits.par_chunks_mut(vp).zip(per_row.par_iter()).for_each(|(row, entry)| {
        let Some((tok, g)) = *entry else {
            row.fill(0.0);
            return;
        };
        let l = lse(&row[..v], inv_t);
        let scale = g * inv_t;
        for x in &mut row[..v] {
            *x = -((*x * inv_t - l).exp()) * scale;
        }
        row[tok as usize] += scale;
        row[v..].fill(0.0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Precision;
    use crate::model::rng::Rng;
    use crate::model::{Gpt, tiny_config};

    #[test]
    fn right_padding_keeps_rows_apart() {
        let a: &[u32] = &[1, 2, 3];
        let b: &[u32] = &[4];
        let s = SeqBatch::new(&[a, b], 9, 4).unwrap();
        assert_eq!(s.inputs, vec![1, 2, 3, 9, 4, 9, 9, 9]);
        assert_eq!((s.last(0), s.last(1)), (2, 4));
        assert_eq!(s.targets(0, 1), vec![(0, 2), (1, 3)]);
        assert_eq!(s.targets(1, 1), vec![]);
        assert!(SeqBatch::new(&[a], 0, 2).is_err());
        assert!(SeqBatch::new(&[&[]], 0, 2).is_err());
        assert_eq!(SeqBatch::tight(&[a, b], 0).unwrap().t, 3);
    }

    fn model() -> Gpt {
        let mut m = Gpt::new(tiny_config(), Precision::F32, 5).unwrap();
        let mut r = Rng::new(6);
        m.params.iter_mut().for_each(|p| *p += (r.normal() * 0.1) as f32);
        m
    }

    #[test]
    fn batched_logprobs_equal_unbatched_ones() {
        let mut m = model();
        let (v, vp) = (m.config().vocab_size, m.config().padded_vocab());
        let seqs: Vec<Vec<u32>> = vec![vec![3, 9, 27, 11, 5, 60], vec![7, 1], vec![2, 4, 8, 16]];
        let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        let batch = SeqBatch::new(&refs, 0, 8).unwrap();
        m.forward(&batch.inputs, None, None, batch.b, batch.t).unwrap();
        for (i, s) in seqs.iter().enumerate() {
            let got = token_logprobs(m.logits(), vp, v, &batch.targets(i, 1), 0.7);
            let mut alone = model();
            let one = SeqBatch::tight(&[s], 0).unwrap();
            alone.forward(&one.inputs, None, None, 1, one.t).unwrap();
            let want = token_logprobs(alone.logits(), vp, v, &one.targets(0, 1), 0.7);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "row {i}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn logprob_gradient_matches_finite_differences() {
        let (v, vp) = (5usize, 8usize);
        let mut r = Rng::new(1);
        let logits: Vec<f32> = (0..3 * vp).map(|_| r.normal() as f32).collect();
        let pos = [(0usize, 2u32), (2, 4)];
        let g = [0.8f32, -1.5];
        let tau = 0.7;
        let f = |l: &[f32]| -> f64 {
            token_logprobs(l, vp, v, &pos, tau)
                .iter()
                .zip(&g)
                .map(|(a, b)| (*a * *b) as f64)
                .sum()
        };
        let mut d = logits.clone();
        logprob_backward(&mut d, vp, v, &pos, &g, tau);
        for k in 0..logits.len() {
            let mut up = logits.clone();
            up[k] += 1e-2;
            let mut down = logits.clone();
            down[k] -= 1e-2;
            let num = (f(&up) - f(&down)) / 2e-2;
            assert!((num - d[k] as f64).abs() < 1e-3, "logit {k}: {num} vs {}", d[k]);
        }
        // Row 1 is not listed and the padded columns are never touched.
        assert!(d[vp..2 * vp].iter().all(|&x| x == 0.0));
        assert!(d[v..vp].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn entropy_of_a_uniform_row_is_ln_v() {
        let logits = vec![0.3f32; 8];
        let h = entropies(&logits, 8, 5, &[0], 0.7);
        assert!((h[0] - 5f32.ln()).abs() < 1e-5, "{}", h[0]);
        let peaked = vec![50.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!(entropies(&peaked, 8, 5, &[0], 1.0)[0] < 1e-6);
    }
}
