//! LayerNorm over the last dimension (eps 1e-5, PyTorch's default).

use super::simd_fn;
use rayon::prelude::*;

const EPS: f32 = 1e-5;
/// Rows per backward task: a fixed chunking (independent of the thread
/// count) keeps the weight-gradient reduction order fixed.
pub const ROWS_PER_CHUNK: usize = 64;

/// Scratch floats [`backward`] needs for `n` rows of width `c`.
pub fn scratch_len(n: usize, c: usize) -> usize {
    n.div_ceil(ROWS_PER_CHUNK) * 2 * c
}

/// `out = (inp − mean) · rstd · w + b` per row; saves mean and rstd.
///
/// Shapes: out, inp `[N, C]`; mean, rstd `[N]`; w, b `[C]`.
pub fn forward(out: &mut [f32], mean: &mut [f32], rstd: &mut [f32], inp: &[f32], w: &[f32], b: &[f32]) {
    let c = w.len();
    out.par_chunks_mut(c)
        .zip(inp.par_chunks(c))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .for_each(|((o, x), (m, s))| (*m, *s) = forward_row(o, x, w, b));
}

simd_fn! {
    /// One row of [`forward`]; returns (mean, rstd).
    fn forward_row(out: &mut [f32], x: &[f32], w: &[f32], b: &[f32]) -> (f32, f32) {
        let c = x.len();
        let mu = super::sum_lanes(x) / c as f32;
        // Lane j % 16 takes element j, as one indexed loop would, but in
        // whole 16-wide chunks so that it vectorises.
        let mut acc = [0.0f32; 16];
        let chunks = x.chunks_exact(16);
        let rest = chunks.remainder();
        for ch in chunks {
            for (a, v) in acc.iter_mut().zip(ch) {
                *a += (v - mu) * (v - mu);
            }
        }
        for (a, v) in acc.iter_mut().zip(rest) {
            *a += (v - mu) * (v - mu);
        }
        let var = acc.iter().sum::<f32>() / c as f32;
        let r = 1.0 / (var + EPS).sqrt();
        for (((o, x), w), b) in out.iter_mut().zip(x).zip(w).zip(b) {
            *o = (x - mu) * r * w + b;
        }
        (mu, r)
    }
}

/// Accumulates `dinp += ∂L/∂inp`, `dw += ∂L/∂w`, `db += ∂L/∂b` given `dout`.
///
/// Shapes: dinp, dout, inp `[N, C]`; w, dw, db `[C]`; mean, rstd `[N]`;
/// scratch ≥ [`scratch_len`]`(N, C)`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dinp: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    scratch: &mut [f32],
) {
    let c = w.len();
    let n = mean.len();
    let chunks = n.div_ceil(ROWS_PER_CHUNK);
    let rows = ROWS_PER_CHUNK * c;
    scratch[..chunks * 2 * c]
        .par_chunks_mut(2 * c)
        .zip(dinp.par_chunks_mut(rows))
        .zip(dout.par_chunks(rows).zip(inp.par_chunks(rows)))
        .zip(mean.par_chunks(ROWS_PER_CHUNK).zip(rstd.par_chunks(ROWS_PER_CHUNK)))
        .for_each(|(((part, dinp), (dout, inp)), (mean, rstd))| backward_rows(part, dinp, dout, inp, w, mean, rstd));
    // Fixed-order reduction of the per-chunk partials.
    for part in scratch[..chunks * 2 * c].chunks_exact(2 * c) {
        for (g, p) in dw.iter_mut().zip(&part[..c]) {
            *g += p;
        }
        for (g, p) in db.iter_mut().zip(&part[c..]) {
            *g += p;
        }
    }
}

simd_fn! {
    /// [`backward`] on one chunk of rows: `dinp` accumulates, `part` gets
    /// the chunk's (dw | db) partial sums.
    fn backward_rows(part: &mut [f32], dinp: &mut [f32], dout: &[f32], inp: &[f32], w: &[f32], mean: &[f32], rstd: &[f32]) {
        let c = w.len();
        let (pw, pb) = part.split_at_mut(c);
        pw.fill(0.0);
        pb.fill(0.0);
        for (((di, d), x), (&mu, &r)) in dinp
            .chunks_exact_mut(c)
            .zip(dout.chunks_exact(c))
            .zip(inp.chunks_exact(c))
            .zip(mean.iter().zip(rstd))
        {
            // dnorm = d·w; dx = r·(dnorm − mean(dnorm) − norm·mean(dnorm·norm)).
            // Lane j % 8 takes element j, in whole 8-wide chunks so that it
            // vectorises.
            let (mut s1, mut s2) = ([0.0f32; 8], [0.0f32; 8]);
            let lanes = |s1: &mut [f32; 8], s2: &mut [f32; 8], d: &[f32], x: &[f32], w: &[f32]| {
                for (((a1, a2), (d, x)), w) in s1.iter_mut().zip(s2.iter_mut()).zip(d.iter().zip(x)).zip(w) {
                    let norm = (x - mu) * r;
                    let dn = d * w;
                    *a1 += dn;
                    *a2 += dn * norm;
                }
            };
            let full = c / 8 * 8;
            for ((d, x), w) in d[..full].chunks_exact(8).zip(x[..full].chunks_exact(8)).zip(w[..full].chunks_exact(8)) {
                lanes(&mut s1, &mut s2, d, x, w);
            }
            lanes(&mut s1, &mut s2, &d[full..], &x[full..], &w[full..]);
            let m1 = s1.iter().sum::<f32>() / c as f32;
            let m2 = s2.iter().sum::<f32>() / c as f32;
            for ((((di, d), x), w), (pw, pb)) in di.iter_mut().zip(d).zip(x).zip(w).zip(pw.iter_mut().zip(pb.iter_mut())) {
                let norm = (x - mu) * r;
                *pw += d * norm;
                *pb += d;
                *di += r * (d * w - m1 - norm * m2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::testutil::*;

    fn ln64(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let c = w.len();
        x.chunks(c)
            .flat_map(|row| {
                let mu = row.iter().sum::<f64>() / c as f64;
                let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / c as f64;
                let r = 1.0 / (var + 1e-5).sqrt();
                row.iter()
                    .zip(w)
                    .zip(b)
                    .map(move |((x, w), b)| (x - mu) * r * w + b)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn backward_matches_finite_differences() {
        // 70 rows: more than one backward chunk, the last one partial.
        let (n, c) = (70, 12);
        let x = randn(n * c, 1, 1.5);
        let w = randn(c, 2, 1.0);
        let b = randn(c, 3, 1.0);
        let dout = randn(n * c, 4, 1.0);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| ln64(x, w, b).iter().zip(&dout).map(|(o, d)| o * d).sum::<f64>();

        let (mut out, mut mean, mut rstd) = (vec![0.0f32; n * c], vec![0.0f32; n], vec![0.0f32; n]);
        forward(&mut out, &mut mean, &mut rstd, &f32s(&x), &f32s(&w), &f32s(&b));
        for (o, want) in out.iter().zip(ln64(&x, &w, &b)) {
            assert!((*o as f64 - want).abs() < 1e-5, "{o} vs {want}");
        }
        let mut dinp = vec![1.0f32; n * c]; // accumulates onto what is there
        let (mut dw, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
        let mut scratch = vec![0.0f32; scratch_len(n, c)];
        backward(
            &mut dinp,
            &mut dw,
            &mut db,
            &f32s(&dout),
            &f32s(&x),
            &f32s(&w),
            &mean,
            &rstd,
            &mut scratch,
        );
        let dinp: Vec<f32> = dinp.iter().map(|v| v - 1.0).collect();
        assert_close("dinp", &dinp, &numeric_grad(&x, |x| loss(x, &w, &b)), 1e-4);
        assert_close("dw", &dw, &numeric_grad(&w, |w| loss(&x, w, &b)), 1e-4);
        assert_close("db", &db, &numeric_grad(&b, |b| loss(&x, &w, b)), 1e-4);
    }
}
