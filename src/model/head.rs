//! A scalar head on the GPT trunk: the reward model, and PPO's value model.
//!
//! It is Hugging Face's `GPT2ForSequenceClassification` with one label: a
//! `score` row vector `w` (`[1, C]`, no bias) applied to the final hidden
//! state (the `ln_f` output). A reward model reads the score at a sequence's
//! last real token; a value model reads it at every position. The LM head is
//! skipped ([`Gpt::forward_trunk`]), so a scorer costs two thirds of a
//! language-model forward on a small model.

use super::rng::Rng;
use super::{Gpt, ModelError};

/// GPT-2 trunk + `score` head.
#[derive(Debug, Clone)]
pub struct Scorer {
    /// The trunk (its LM-head weights are kept so the file stays a GPT-2,
    /// but they are not used).
    pub gpt: Gpt,
    /// `score.weight`, `[C]`.
    pub w: Vec<f32>,
    /// Gradient of `w`, accumulated by [`Scorer::backward`].
    pub dw: Vec<f32>,
    /// Subtracted from every score: a reward model normalised so that the
    /// SFT demonstrations score 0 on average (`kiln_score_offset`).
    pub offset: f32,
    /// Rows × columns of the last forward.
    shape: Option<(usize, usize)>,
    /// d(loss)/d(hidden) scratch, `[B·T, C]`, kept between calls so a
    /// training step allocates nothing once sizes settle.
    dh: Vec<f32>,
}

impl Scorer {
    /// A new head on `gpt`, initialised as transformers does
    /// (`normal(0, initializer_range = 0.02)`).
    pub fn new(gpt: Gpt, seed: u64) -> Self {
        let c = gpt.config().n_embd;
        let mut rng = Rng::new(seed ^ 0x5c0e);
        let w = (0..c).map(|_| (rng.normal() * 0.02) as f32).collect();
        Self::with_weights(gpt, w)
    }

    /// A head with the given `score.weight` (length must be `n_embd`; a
    /// mismatch is the caller's bug and panics in debug builds).
    pub fn with_weights(gpt: Gpt, w: Vec<f32>) -> Self {
        debug_assert_eq!(w.len(), gpt.config().n_embd);
        let dw = vec![0.0; w.len()];
        Scorer {
            gpt,
            w,
            dw,
            offset: 0.0,
            shape: None,
            dh: Vec::new(),
        }
    }

    /// Runs the trunk on `inputs` (`[B·T]`).
    pub fn forward(&mut self, inputs: &[u32], b: usize, t: usize) -> Result<(), ModelError> {
        self.gpt.forward_trunk(inputs, b, t)?;
        self.shape = Some((b, t));
        Ok(())
    }

    /// The score at flat position `pos` (row `pos / T`, column `pos % T`) of
    /// the last forward; NaN when there was none or `pos` is outside it.
    pub fn score_at(&self, pos: usize) -> f32 {
        let c = self.w.len();
        match self.gpt.hidden().get(pos * c..(pos + 1) * c) {
            Some(h) => dot(h, &self.w) - self.offset,
            None => f32::NAN,
        }
    }

    /// Scores at every position of the last forward, `[B·T]`.
    pub fn scores(&self) -> Vec<f32> {
        self.gpt
            .hidden()
            .chunks_exact(self.w.len())
            .map(|h| dot(h, &self.w) - self.offset)
            .collect()
    }

    /// Accumulates the gradient of a loss whose derivative with respect to
    /// the score at flat position `pos` is `g`, for each `(pos, g)` of `d`
    /// (positions not listed have zero gradient), into `dw` and the trunk's
    /// gradients. Consumes the forward, like every backward.
    pub fn backward(&mut self, d: &[(usize, f32)]) -> Result<(), ModelError> {
        let Some((b, t)) = self.shape.take() else {
            return Err(ModelError::State("Scorer::backward needs a forward first"));
        };
        let c = self.w.len();
        self.dh.clear();
        self.dh.resize(b * t * c, 0.0);
        let dh = &mut self.dh;
        let hidden = self.gpt.hidden();
        for &(pos, g) in d {
            if pos >= b * t {
                return Err(ModelError::Shape(format!("score position {pos} is outside the batch of {b}×{t}")));
            }
            let h = &hidden[pos * c..(pos + 1) * c];
            for ((dw, &hx), (dhx, &wx)) in self.dw.iter_mut().zip(h).zip(dh[pos * c..(pos + 1) * c].iter_mut().zip(&self.w)) {
                *dw += g * hx;
                *dhx += g * wx;
            }
        }
        self.gpt.backward_from_dhidden(dh)
    }

    /// Zeroes the trunk's and the head's gradients.
    pub fn zero_grad(&mut self) {
        self.gpt.zero_grad();
        self.dw.fill(0.0);
    }
}

/// f32 dot product, accumulated in f64 so the score does not depend on
/// the width of the SIMD unit.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Precision;
    use crate::model::tiny_config;

    fn scorer(seed: u64) -> Scorer {
        let mut gpt = Gpt::new(tiny_config(), Precision::F32, seed).unwrap();
        let mut r = Rng::new(seed + 9);
        gpt.params.iter_mut().for_each(|p| *p += (r.normal() * 0.05) as f32);
        Scorer::new(gpt, seed)
    }

    fn ids(n: usize, seed: u64) -> Vec<u32> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| (r.next_u64() % 70) as u32).collect()
    }

    /// loss = Σ c_k · score(pos_k); checks dw and one trunk weight against
    /// central differences in f64-friendly steps.
    #[test]
    fn gradients_match_finite_differences() {
        let (b, t) = (2, 6);
        let x = ids(b * t, 3);
        let d = [(5usize, 0.7f32), (8, -1.3), (11, 0.4)];
        let loss = |s: &mut Scorer| -> f64 {
            s.forward(&x, b, t).unwrap();
            d.iter().map(|&(p, c)| c as f64 * s.score_at(p) as f64).sum()
        };
        let mut s = scorer(1);
        s.zero_grad();
        s.forward(&x, b, t).unwrap();
        s.backward(&d).unwrap();
        let eps = 1e-2f32;
        for k in [0usize, 7, 15] {
            let orig = s.w[k];
            s.w[k] = orig + eps;
            let up = loss(&mut s);
            s.w[k] = orig - eps;
            let down = loss(&mut s);
            s.w[k] = orig;
            let num = (up - down) / (2.0 * eps as f64);
            assert!(
                (num - s.dw[k] as f64).abs() < 1e-3 * num.abs().max(1e-2),
                "dw[{k}]: {num} vs {}",
                s.dw[k]
            );
        }
        // A c_fc weight of the first block: the gradient flows through the trunk.
        let r = s.gpt.layout().layer(crate::model::params::Kind::FcW, 0);
        for k in [r.start + 3, r.start + 40] {
            let g = s.gpt.grads[k];
            let orig = s.gpt.params[k];
            s.gpt.params[k] = orig + eps;
            let up = loss(&mut s);
            s.gpt.params[k] = orig - eps;
            let down = loss(&mut s);
            s.gpt.params[k] = orig;
            let num = (up - down) / (2.0 * eps as f64);
            assert!((num - g as f64).abs() < 2e-3 * num.abs().max(1e-2), "param {k}: {num} vs {g}");
        }
    }

    #[test]
    fn a_row_scores_the_same_alone_and_in_a_batch() {
        let mut s = scorer(2);
        let x = ids(16, 4);
        s.forward(&x, 2, 8).unwrap();
        let batched = s.score_at(8 + 5);
        s.forward(&x[8..14], 1, 6).unwrap();
        let alone = s.score_at(5);
        assert!((batched - alone).abs() < 1e-5, "{batched} vs {alone}");
        assert!(s.score_at(99).is_nan());
    }

    #[test]
    fn backward_without_forward_is_an_error() {
        let mut s = scorer(3);
        assert!(s.backward(&[(0, 1.0)]).is_err());
        s.forward(&ids(8, 1), 1, 8).unwrap();
        assert!(s.backward(&[(8, 1.0)]).is_err());
    }
}
