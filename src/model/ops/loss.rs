//! Softmax + cross-entropy over the real vocabulary, with a loss mask.
//!
//! Only the first `V` of the `Vp` logit columns take part: padded ids get
//! zero probability, zero gradient and are never a valid target. Positions
//! whose mask is 0 contribute nothing; the loss is the mean over counted
//! positions (so a batch where the mask hides half the tokens still has a
//! loss on the same scale).

use super::{exp_sum, fast_exp, max_lanes, simd_fn};
use rayon::prelude::*;

/// Number of counted positions: all, or those with a non-zero mask.
pub fn counted(n: usize, mask: Option<&[u8]>) -> usize {
    mask.map_or(n, |m| m.iter().filter(|&&x| x != 0).count())
}

/// Per-position loss `losses[i] = lse(logits[i, ..V]) − logits[i, target[i]]`
/// (0 where masked out) and the row log-sum-exp `lse[i]`; returns the mean
/// over counted positions (0 when none count).
///
/// Shapes: logits `[N, Vp]`, targets `[N]` (checked `< V`), mask `[N]`,
/// losses, lse `[N]`.
pub fn forward(losses: &mut [f32], lse: &mut [f32], logits: &[f32], targets: &[u32], mask: Option<&[u8]>, v: usize, vp: usize) -> f32 {
    losses
        .par_iter_mut()
        .zip(lse.par_iter_mut())
        .enumerate()
        .for_each(|(i, (loss, lse))| {
            if mask.is_some_and(|m| m[i] == 0) {
                *loss = 0.0;
                *lse = 0.0;
                return;
            }
            let row = &logits[i * vp..i * vp + v];
            let l = log_sum_exp(row);
            *lse = l;
            *loss = l - row[targets[i] as usize];
        });
    let n = counted(losses.len(), mask);
    if n == 0 {
        return 0.0;
    }
    // f64 in index order: exact enough and independent of the thread count.
    (losses.iter().map(|&x| x as f64).sum::<f64>() / n as f64) as f32
}

/// Overwrites `logits` with `scale · ∂loss/∂logits` where loss is the
/// value [`forward`] returned: `(softmax − onehot(target)) / count` on
/// counted rows, 0 on masked rows and on padded columns.
///
/// Shapes as in [`forward`].
pub fn backward(logits: &mut [f32], lse: &[f32], targets: &[u32], mask: Option<&[u8]>, v: usize, vp: usize, scale: f32) {
    let n = counted(lse.len(), mask);
    let g = if n == 0 { 0.0 } else { scale / n as f32 };
    logits.par_chunks_mut(vp).enumerate().for_each(|(i, row)| {
        if g == 0.0 || mask.is_some_and(|m| m[i] == 0) {
            row.fill(0.0);
            return;
        }
        softmax_scaled(&mut row[..v], lse[i], g);
        row[targets[i] as usize] -= g;
        row[v..].fill(0.0);
    });
}

simd_fn! {
    /// `ln Σ e^x` over one row, shifted by its maximum.
    fn log_sum_exp(row: &[f32]) -> f32 {
        let max = max_lanes(row);
        max + exp_sum(row, max).ln()
    }
}

simd_fn! {
    /// `x = e^(x − lse) · g`: the softmax of one row, scaled.
    fn softmax_scaled(row: &mut [f32], lse: f32, g: f32) {
        for x in row {
            *x = fast_exp(*x - lse) * g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testutil::*;

    fn loss64(logits: &[f64], targets: &[u32], mask: &[u8], v: usize, vp: usize) -> f64 {
        let n = mask.iter().filter(|&&m| m != 0).count() as f64;
        let mut s = 0.0;
        for (i, t) in targets.iter().enumerate() {
            if mask[i] == 0 {
                continue;
            }
            let row = &logits[i * vp..i * vp + v];
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
            s += lse - row[*t as usize];
        }
        s / n
    }

    #[test]
    fn masked_loss_and_gradient_match_finite_differences() {
        let (n, v, vp) = (5, 6, 8);
        let mut logits = randn(n * vp, 1, 2.0);
        // Huge padded logits must not matter.
        for i in 0..n {
            logits[i * vp + 6] = 1e4;
            logits[i * vp + 7] = -1e4;
        }
        let targets = [0u32, 5, 3, 3, 1];
        let mask = [1u8, 0, 1, 1, 0];
        let (mut losses, mut lse) = (vec![0.0f32; n], vec![0.0f32; n]);
        let mut l32 = f32s(&logits);
        let loss = forward(&mut losses, &mut lse, &l32, &targets, Some(&mask), v, vp);
        let want = loss64(&logits, &targets, &mask, v, vp);
        assert!((loss as f64 - want).abs() < 1e-5, "{loss} vs {want}");
        assert_eq!((losses[1], losses[4]), (0.0, 0.0));

        backward(&mut l32, &lse, &targets, Some(&mask), v, vp, 1.0);
        let num = numeric_grad(&logits, |x| loss64(x, &targets, &mask, v, vp));
        assert_close("dlogits", &l32, &num, 1e-5);
        for i in 0..n {
            assert_eq!(&l32[i * vp + v..(i + 1) * vp], &[0.0, 0.0], "padded columns get no gradient");
        }
    }

    #[test]
    fn all_masked_is_zero_loss_and_zero_gradient() {
        let (mut losses, mut lse) = (vec![0.0f32; 2], vec![0.0f32; 2]);
        let mut logits = vec![1.0f32; 2 * 64];
        let loss = forward(&mut losses, &mut lse, &logits, &[1, 2], Some(&[0, 0]), 10, 64);
        assert_eq!(loss, 0.0);
        backward(&mut logits, &lse, &[1, 2], Some(&[0, 0]), 10, 64, 1.0);
        assert!(logits.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn uniform_logits_give_log_v() {
        let (mut losses, mut lse) = (vec![0.0f32; 1], vec![0.0f32; 1]);
        let loss = forward(&mut losses, &mut lse, &[0.0f32; 128], &[3], None, 70, 128);
        assert!((loss - 70f32.ln()).abs() < 1e-5, "{loss}");
    }
}
