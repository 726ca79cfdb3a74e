//! Reward-model training: a [`Scorer`] read at each reply's final `<|end|>`
//! and the pairwise (Bradley–Terry) loss of InstructGPT (Ouyang et al.
//! 2022, eq. 1), with Llama 2's optional margin and a centring term:
//!
//! `loss = −log σ(r_c − r_r − margin) + center_coef · (r_c + r_r)²`
//!
//! A record is a ranking of K ≥ 2 replies (a plain pair is K = 2). Its K
//! replies are forwarded once each, in one right-padded batch with every
//! other record's, and all K(K−1)/2 ordered pairs enter the loss. The batch
//! loss is the mean over all its pairs, so a ranking counts exactly as the
//! sum of its pairs would.

use super::prefs::{Metrics, PairTrainer};
use super::seq::SeqBatch;
use crate::model::head::Scorer;
use std::ops::Range;

/// One ranked record: token ids of each reply's full sequence (prompt,
/// reply, `<|end|>`), best first, and the margin its pairs must clear.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// Sequences, best first.
    pub seqs: Vec<Vec<u32>>,
    /// Margin (0 when the data gives none).
    pub margin: f32,
}

/// Sums over the pairs of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairSums {
    /// Σ loss.
    pub loss: f64,
    /// Pairs ranked right (r_c > r_r).
    pub correct: f64,
    /// Σ (r_c − r_r).
    pub margin: f64,
    /// Pairs.
    pub pairs: f64,
}

impl PairSums {
    fn add(&mut self, o: PairSums) {
        self.loss += o.loss;
        self.correct += o.correct;
        self.margin += o.margin;
        self.pairs += o.pairs;
    }

    /// `loss`, `accuracy`, `margin` as means over pairs.
    pub fn metrics(&self) -> Metrics {
        let n = self.pairs.max(1.0);
        vec![("loss", self.loss / n), ("accuracy", self.correct / n), ("margin", self.margin / n)]
    }
}

/// `log(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The pairwise loss of one ranking's scores (best first), summed over its
/// pairs, and d(sum)/d(score) per reply.
pub fn ranking_loss(scores: &[f32], margin: f32, center_coef: f32) -> (PairSums, Vec<f64>) {
    let mut s = PairSums::default();
    let mut d = vec![0.0f64; scores.len()];
    for i in 0..scores.len() {
        for j in i + 1..scores.len() {
            let (rc, rr) = (scores[i] as f64, scores[j] as f64);
            let x = rc - rr - margin as f64;
            let sum = rc + rr;
            s.loss += softplus(-x) + center_coef as f64 * sum * sum;
            s.correct += f64::from(u8::from(rc > rr));
            s.margin += rc - rr;
            s.pairs += 1.0;
            // d softplus(−x)/dx = −σ(−x); x = r_c − r_r − m.
            let g = -sigmoid(-x);
            let c = 2.0 * center_coef as f64 * sum;
            d[i] += g + c;
            d[j] += -g + c;
        }
    }
    (s, d)
}

/// Scores every reply of `recs` in one forward; returns the batch and, per
/// record, the flat positions of its replies' last tokens.
pub fn forward(scorer: &mut Scorer, recs: &[&Ranked], pad: u32) -> Result<(SeqBatch, Vec<Range<usize>>), String> {
    let mut seqs: Vec<&[u32]> = Vec::new();
    let mut spans = Vec::with_capacity(recs.len());
    for r in recs {
        spans.push(seqs.len()..seqs.len() + r.seqs.len());
        seqs.extend(r.seqs.iter().map(Vec::as_slice));
    }
    let batch = SeqBatch::tight(&seqs, pad)?;
    scorer.forward(&batch.inputs, batch.b, batch.t).map_err(|e| e.to_string())?;
    Ok((batch, spans))
}

/// Loss sums of `recs` and, with `backward`, the gradient of their mean
/// over pairs accumulated into the scorer.
pub fn batch_loss(scorer: &mut Scorer, recs: &[&Ranked], pad: u32, center_coef: f32, backward: bool) -> Result<PairSums, String> {
    let (batch, spans) = forward(scorer, recs, pad)?;
    let mut sums = PairSums::default();
    let mut grads: Vec<(usize, f64)> = Vec::new();
    for (r, span) in recs.iter().zip(&spans) {
        let scores: Vec<f32> = span.clone().map(|k| scorer.score_at(batch.last(k))).collect();
        let (s, d) = ranking_loss(&scores, r.margin, center_coef);
        sums.add(s);
        grads.extend(span.clone().zip(d).map(|(k, g)| (batch.last(k), g)));
    }
    if backward {
        let n = sums.pairs.max(1.0);
        let d: Vec<(usize, f32)> = grads.into_iter().map(|(p, g)| (p, (g / n) as f32)).collect();
        scorer.backward(&d).map_err(|e| e.to_string())?;
    }
    Ok(sums)
}

/// A reward model under training, with its data.
pub struct RewardTrainer {
    /// The model.
    pub scorer: Scorer,
    /// Training records.
    pub train: Vec<Ranked>,
    /// Held-out records.
    pub val: Vec<Ranked>,
    /// The padding id (must not be the `<|end|>` the score is read at).
    pub pad: u32,
    /// Weight of the centring term.
    pub center_coef: f32,
    /// Records per evaluation forward.
    pub eval_batch: usize,
}

impl PairTrainer for RewardTrainer {
    fn len(&self) -> usize {
        self.train.len()
    }
    fn zero_grad(&mut self) {
        self.scorer.zero_grad();
    }
    fn train_batch(&mut self, idx: &[usize]) -> Result<Metrics, String> {
        let recs: Vec<&Ranked> = idx.iter().map(|&i| &self.train[i]).collect();
        Ok(batch_loss(&mut self.scorer, &recs, self.pad, self.center_coef, true)?.metrics())
    }
    fn evaluate(&mut self) -> Result<Option<Metrics>, String> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let mut sums = PairSums::default();
        let val = std::mem::take(&mut self.val);
        let result = (|| {
            for chunk in val.chunks(self.eval_batch.max(1)) {
                let recs: Vec<&Ranked> = chunk.iter().collect();
                sums.add(batch_loss(&mut self.scorer, &recs, self.pad, self.center_coef, false)?);
            }
            Ok::<(), String>(())
        })();
        self.val = val;
        result?;
        Ok(Some(sums.metrics()))
    }
    fn buffers(&mut self) -> Vec<(&mut [f32], &[f32])> {
        let s = &mut self.scorer;
        vec![(&mut s.gpt.params[..], &s.gpt.grads[..]), (&mut s.w[..], &s.dw[..])]
    }
    fn layout(&self) -> Vec<(usize, Vec<Range<usize>>)> {
        let w = self.scorer.w.len();
        vec![
            (self.scorer.gpt.params.len(), self.scorer.gpt.decay_ranges()),
            (w, std::iter::once(0..w).collect()),
        ]
    }
}

/// Mean score of `seqs` (each scored at its last token), in batches of `batch`.
pub fn mean_score(scorer: &mut Scorer, seqs: &[Vec<u32>], pad: u32, batch: usize) -> Result<f64, String> {
    let mut sum = 0.0f64;
    for chunk in seqs.chunks(batch.max(1)) {
        let refs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        let b = SeqBatch::tight(&refs, pad)?;
        scorer.forward(&b.inputs, b.b, b.t).map_err(|e| e.to_string())?;
        sum += (0..b.b).map(|i| scorer.score_at(b.last(i)) as f64).sum::<f64>();
    }
    Ok(sum / seqs.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Precision;
    use crate::model::rng::Rng;
    use crate::model::{Gpt, tiny_config};

    fn scorer() -> Scorer {
        let mut gpt = Gpt::new(tiny_config(), Precision::F32, 11).unwrap();
        let mut r = Rng::new(12);
        gpt.params.iter_mut().for_each(|p| *p += (r.normal() * 0.05) as f32);
        let mut s = Scorer::new(gpt, 13);
        // A larger head so score differences are well above f32 noise.
        s.w.iter_mut().for_each(|w| *w *= 20.0);
        s
    }

    fn seq(seed: u64, n: usize) -> Vec<u32> {
        let mut r = Rng::new(seed);
        (1..=n).map(|_| 1 + (r.next_u64() % 60) as u32).collect()
    }

    #[test]
    fn the_pairwise_loss_is_softplus_of_the_negative_margin() {
        let (s, d) = ranking_loss(&[1.0, 0.0], 0.0, 0.0);
        assert!((s.loss - (1.0f64 + (-1.0f64).exp()).ln()).abs() < 1e-12);
        assert_eq!((s.correct, s.pairs), (1.0, 1.0));
        assert!((d[0] + sigmoid(-1.0)).abs() < 1e-12 && (d[0] + d[1]).abs() < 1e-12);
        // A margin makes a right ranking cost more; centring pulls both scores towards 0.
        let (m, _) = ranking_loss(&[1.0, 0.0], 0.5, 0.0);
        assert!(m.loss > s.loss);
        let (c, dc) = ranking_loss(&[1.0, 0.5], 0.0, 0.1);
        let (p, dp) = ranking_loss(&[1.0, 0.5], 0.0, 0.0);
        assert!((c.loss - p.loss - 0.1 * 1.5 * 1.5).abs() < 1e-6);
        for k in 0..2 {
            assert!((dc[k] - dp[k] - 2.0 * 0.1 * 1.5).abs() < 1e-6);
        }
    }

    #[test]
    fn a_ranking_equals_the_sum_of_its_pairs() {
        let (a, b, c) = (seq(1, 5), seq(2, 7), seq(3, 4));
        let ranked = Ranked {
            seqs: vec![a.clone(), b.clone(), c.clone()],
            margin: 0.2,
        };
        let pairs: Vec<Ranked> = [(&a, &b), (&a, &c), (&b, &c)]
            .iter()
            .map(|(x, y)| Ranked {
                seqs: vec![(*x).clone(), (*y).clone()],
                margin: 0.2,
            })
            .collect();
        let mut s1 = scorer();
        s1.zero_grad();
        let r = batch_loss(&mut s1, &[&ranked], 0, 0.01, true).unwrap();
        let mut s2 = scorer();
        s2.zero_grad();
        let p = batch_loss(&mut s2, &pairs.iter().collect::<Vec<_>>(), 0, 0.01, true).unwrap();
        assert_eq!(r.pairs, 3.0);
        assert!((r.loss - p.loss).abs() < 1e-5 * p.loss.abs(), "{} vs {}", r.loss, p.loss);
        assert_eq!(r.correct, p.correct);
        for (g1, g2) in s1.dw.iter().zip(&s2.dw).chain(s1.gpt.grads.iter().zip(&s2.gpt.grads)) {
            assert!((g1 - g2).abs() < 1e-4 * (g2.abs() + 1e-3), "{g1} vs {g2}");
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let recs = [
            Ranked {
                seqs: vec![seq(4, 6), seq(5, 3), seq(6, 8)],
                margin: 0.1,
            },
            Ranked {
                seqs: vec![seq(7, 5), seq(8, 5)],
                margin: 0.0,
            },
        ];
        let refs: Vec<&Ranked> = recs.iter().collect();
        let mut s = scorer();
        s.zero_grad();
        let base = batch_loss(&mut s, &refs, 0, 0.05, true).unwrap();
        let mean = |s: &mut Scorer| {
            let x = batch_loss(s, &refs, 0, 0.05, false).unwrap();
            x.loss / x.pairs
        };
        assert!(base.pairs == 4.0);
        let eps = 1e-2f32;
        for k in [0usize, 5, 13] {
            let o = s.w[k];
            s.w[k] = o + eps;
            let up = mean(&mut s);
            s.w[k] = o - eps;
            let down = mean(&mut s);
            s.w[k] = o;
            let num = (up - down) / (2.0 * eps as f64);
            assert!(
                (num - s.dw[k] as f64).abs() < 2e-3 * num.abs().max(1e-2),
                "dw[{k}] {num} vs {}",
                s.dw[k]
            );
        }
        let r = s.gpt.layout().layer(crate::model::params::Kind::QkvW, 1);
        for k in [r.start + 2, r.start + 77] {
            let (o, g) = (s.gpt.params[k], s.gpt.grads[k]);
            s.gpt.params[k] = o + eps;
            let up = mean(&mut s);
            s.gpt.params[k] = o - eps;
            let down = mean(&mut s);
            s.gpt.params[k] = o;
            let num = (up - down) / (2.0 * eps as f64);
            assert!((num - g as f64).abs() < 3e-3 * num.abs().max(1e-2), "param {k}: {num} vs {g}");
        }
    }
}
