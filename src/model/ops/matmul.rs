//! Linear layers: `out = inp · wᵀ + bias (+ residual)` with `w` in PyTorch
//! `Linear` layout `[OC, C]`. The transposes are strides handed to the
//! backend, never copies.

use crate::backend::{Backend, MatRef};
use rayon::prelude::*;

/// Columns per bias-gradient task (contiguous within a row).
const BIAS_COLS: usize = 256;

/// `out[N, 0..oc] = residual + bias + inp · wᵀ`, row stride `ldo ≥ oc`.
///
/// Shapes: out `[N, ldo]`, inp `[N, C]`, w `[≥oc, C]` (only the first `oc`
/// rows are used: the LM head skips the padded vocabulary rows), bias `[oc]`,
/// residual `[N, oc]`. Fusing the residual add saves a pass over the
/// activations and a buffer per layer.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    be: &mut dyn Backend,
    out: &mut [f32],
    ldo: usize,
    inp: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    c: usize,
    oc: usize,
) {
    let n = inp.len() / c;
    let seeded = bias.is_some() || residual.is_some();
    if seeded {
        out.par_chunks_mut(ldo).enumerate().for_each(|(r, o)| {
            let o = &mut o[..oc];
            match (residual, bias) {
                (Some(res), Some(b)) => {
                    for ((o, x), b) in o.iter_mut().zip(&res[r * oc..(r + 1) * oc]).zip(b) {
                        *o = x + b;
                    }
                }
                (Some(res), None) => o.copy_from_slice(&res[r * oc..(r + 1) * oc]),
                (None, Some(b)) => o.copy_from_slice(b),
                (None, None) => {}
            }
        });
    }
    be.matmul(n, oc, c, out, ldo, seeded, MatRef::row_major(inp, c), MatRef::transposed(w, c));
}

/// Backward of [`forward`]:
/// - `dinp = dout · w` (overwritten, or added when `accumulate_dinp`),
/// - `dw[0..oc] += doutᵀ · inp`,
/// - `dbias += Σ_rows dout`.
///
/// Shapes: dout `[N, lddo ≥ oc]` (row stride `lddo`), inp, dinp `[N, C]`,
/// w, dw `[≥oc, C]`, dbias `[oc]`. The residual's gradient is `dout` itself
/// and is left to the caller (it shares the buffer).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    be: &mut dyn Backend,
    dinp: &mut [f32],
    accumulate_dinp: bool,
    dw: &mut [f32],
    dbias: Option<&mut [f32]>,
    dout: &[f32],
    lddo: usize,
    inp: &[f32],
    w: &[f32],
    c: usize,
    oc: usize,
) {
    let n = inp.len() / c;
    be.matmul(
        n,
        c,
        oc,
        dinp,
        c,
        accumulate_dinp,
        MatRef {
            data: dout,
            rs: lddo,
            cs: 1,
        },
        MatRef::row_major(w, c),
    );
    be.matmul(
        oc,
        c,
        n,
        dw,
        c,
        true,
        MatRef {
            data: dout,
            rs: 1,
            cs: lddo,
        },
        MatRef::row_major(inp, c),
    );
    if let Some(db) = dbias {
        // Each task owns a contiguous run of columns and sums all rows in
        // order: parallel, yet the same order whatever the thread count.
        db[..oc].par_chunks_mut(BIAS_COLS).enumerate().for_each(|(i, db)| {
            let (j0, len) = (i * BIAS_COLS, db.len());
            for r in 0..n {
                for (g, d) in db.iter_mut().zip(&dout[r * lddo + j0..r * lddo + j0 + len]) {
                    *g += d;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CpuBackend, Precision};
    use crate::model::ops::testutil::*;

    #[test]
    fn backward_matches_finite_differences() {
        // oc = 5 of 7 stored weight rows (as the LM head uses only V of Vp),
        // output row stride 8 > oc.
        let (n, c, oc, rows, ldo) = (6, 4, 5, 7, 8);
        let x = randn(n * c, 1, 1.0);
        let w = randn(rows * c, 2, 1.0);
        let b = randn(oc, 3, 1.0);
        let res = randn(n * oc, 4, 1.0);
        let dout = randn(n * ldo, 5, 1.0);
        let f = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
            let mut s = 0.0;
            for r in 0..n {
                for o in 0..oc {
                    let y = res[r * oc + o] + b[o] + (0..c).map(|k| x[r * c + k] * w[o * c + k]).sum::<f64>();
                    s += dout[r * ldo + o] * y;
                }
            }
            s
        };
        let mut be = CpuBackend::new(Precision::F32);
        let mut out = vec![7.0f32; n * ldo];
        forward(
            &mut be,
            &mut out,
            ldo,
            &f32s(&x),
            &f32s(&w),
            Some(&f32s(&b)),
            Some(&f32s(&res)),
            c,
            oc,
        );
        let y00 = res[0] + b[0] + (0..c).map(|k| x[k] * w[k]).sum::<f64>();
        assert!((out[0] as f64 - y00).abs() < 1e-5);
        assert_eq!(out[oc], 7.0, "columns past oc are left alone");

        let mut dinp = vec![0.0f32; n * c];
        let mut dw = vec![0.0f32; rows * c];
        let mut db = vec![0.0f32; oc];
        backward(
            &mut be,
            &mut dinp,
            false,
            &mut dw,
            Some(&mut db),
            &f32s(&dout),
            ldo,
            &f32s(&x),
            &f32s(&w),
            c,
            oc,
        );
        assert_close("dinp", &dinp, &numeric_grad(&x, |x| f(x, &w, &b)), 1e-5);
        assert_close("dw", &dw, &numeric_grad(&w, |w| f(&x, w, &b)), 1e-5);
        assert_close("db", &db, &numeric_grad(&b, |b| f(&x, &w, b)), 1e-5);
    }
}
