//! Token + position embedding.

use rayon::prelude::*;

/// `out[b, t, :] = wte[inp[b, t], :] + wpe[t, :]`.
///
/// Shapes: out `[B·T, C]`, inp `[B·T]` (ids already checked `< Vp`),
/// wte `[Vp, C]`, wpe `[≥T, C]`.
pub fn forward(out: &mut [f32], inp: &[u32], wte: &[f32], wpe: &[f32], t: usize, c: usize) {
    out.par_chunks_mut(c).zip(inp.par_iter()).enumerate().for_each(|(row, (o, &tok))| {
        let e = &wte[tok as usize * c..(tok as usize + 1) * c];
        let p = &wpe[(row % t) * c..(row % t + 1) * c];
        for ((o, e), p) in o.iter_mut().zip(e).zip(p) {
            *o = e + p;
        }
    });
}

/// `dwte[inp[b, t]] += dout[b, t]`, `dwpe[t] += dout[b, t]`.
///
/// Shapes as in [`forward`]. Sequential over positions so that repeated
/// tokens accumulate in a fixed order; it is O(B·T·C), negligible next to
/// the matmuls.
pub fn backward(dwte: &mut [f32], dwpe: &mut [f32], dout: &[f32], inp: &[u32], t: usize, c: usize) {
    for (row, (d, &tok)) in dout.chunks_exact(c).zip(inp).enumerate() {
        let e = &mut dwte[tok as usize * c..(tok as usize + 1) * c];
        for (e, d) in e.iter_mut().zip(d) {
            *e += d;
        }
        let p = &mut dwpe[(row % t) * c..(row % t + 1) * c];
        for (p, d) in p.iter_mut().zip(d) {
            *p += d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testutil::*;

    #[test]
    fn backward_matches_finite_differences() {
        let (b, t, c, v) = (2, 3, 4, 5);
        let inp = [1u32, 4, 1, 0, 1, 3]; // token 1 repeats: its gradient must sum
        let wte = randn(v * c, 1, 1.0);
        let wpe = randn(t * c, 2, 1.0);
        let dout = randn(b * t * c, 3, 1.0);
        // f64 reference of the scalar Σ dout·forward.
        let f = |wte: &[f64], wpe: &[f64]| -> f64 {
            (0..b * t)
                .flat_map(|r| (0..c).map(move |j| (r, j)))
                .map(|(r, j)| dout[r * c + j] * (wte[inp[r] as usize * c + j] + wpe[(r % t) * c + j]))
                .sum()
        };
        let mut out = vec![0.0f32; b * t * c];
        forward(&mut out, &inp, &f32s(&wte), &f32s(&wpe), t, c);
        assert_eq!(out[c + 2], (wte[4 * c + 2] as f32) + (wpe[c + 2] as f32));
        let (mut dwte, mut dwpe) = (vec![0.0f32; v * c], vec![0.0f32; t * c]);
        backward(&mut dwte, &mut dwpe, &f32s(&dout), &inp, t, c);
        assert_close("dwte", &dwte, &numeric_grad(&wte, |x| f(x, &wpe)), 1e-5);
        assert_close("dwpe", &dwpe, &numeric_grad(&wpe, |x| f(&wte, x)), 1e-5);
    }
}
