//! GELU, tanh approximation (GPT-2's `gelu_new`):
//! `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.

use super::{fast_exp, simd_fn};
use rayon::prelude::*;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const CHUNK: usize = 4096;

/// tanh through `fast_exp` (vectorisable): `tanh(y) = 1 − 2/(e^{2y} + 1)`.
#[inline(always)]
fn tanh(y: f32) -> f32 {
    1.0 - 2.0 / (fast_exp(2.0 * y) + 1.0)
}

/// `out = gelu(inp)`. Shapes: out, inp `[N]`.
pub fn forward(out: &mut [f32], inp: &[f32]) {
    out.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK))
        .for_each(|(o, x)| forward_chunk(o, x));
}

simd_fn! {
    /// [`forward`] on one chunk.
    fn forward_chunk(out: &mut [f32], inp: &[f32]) {
        for (o, &x) in out.iter_mut().zip(inp) {
            *o = 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
        }
    }
}

/// In place: `d = d · gelu'(inp)` (d holds d(out) on entry, d(inp) on exit).
/// Shapes: d, inp `[N]`.
pub fn backward_inplace(d: &mut [f32], inp: &[f32]) {
    d.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK))
        .for_each(|(d, x)| backward_chunk(d, x));
}

simd_fn! {
    /// [`backward_inplace`] on one chunk.
    fn backward_chunk(d: &mut [f32], inp: &[f32]) {
        for (d, &x) in d.iter_mut().zip(inp) {
            let cube = 0.044715 * x * x * x;
            let th = tanh(SQRT_2_OVER_PI * (x + cube));
            let sech2 = 1.0 - th * th;
            let local = 0.5 * (1.0 + th) + 0.5 * x * sech2 * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
            *d *= local;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testutil::*;

    fn gelu64(x: f64) -> f64 {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    }

    #[test]
    fn forward_and_backward_match_f64_reference() {
        // Include the far tails, where tanh saturates.
        let mut x = randn(200, 5, 2.0);
        x.extend([-12.0, -6.0, 0.0, 6.0, 12.0]);
        let dout = randn(x.len(), 6, 1.0);
        let mut out = vec![0.0f32; x.len()];
        forward(&mut out, &f32s(&x));
        for (o, &x) in out.iter().zip(&x) {
            assert!((*o as f64 - gelu64(x)).abs() < 2e-6 * (1.0 + x.abs()), "gelu({x}) = {o}");
        }
        let mut d = f32s(&dout);
        backward_inplace(&mut d, &f32s(&x));
        let want = numeric_grad(&x, |x| x.iter().zip(&dout).map(|(x, d)| d * gelu64(*x)).sum());
        assert_close("dinp", &d, &want, 1e-5);
    }
}
