//! GPT-2's layers as forward/backward pairs over flat f32 slices, llm.c
//! style. Each function states its shapes; backward functions *accumulate*
//! into parameter gradients (`+=`, so micro-batches can be summed) and say
//! whether they overwrite or accumulate into input gradients.
//!
//! Parallel work goes through the current rayon pool. Reductions run in a
//! fixed order (fixed chunking, no atomics), so results are bit-identical for
//! a given thread count.
//!
//! The residual additions have no op of their own: they are fused into the
//! projection matmuls (`matmul::forward` with `residual`), and their backward
//! is the identity on the shared `dresidual` buffer.

pub mod attention;
pub mod encoder;
pub mod gelu;
pub mod layernorm;
pub mod loss;
pub mod matmul;

use std::ops::Range;

/// Defines `fn NAME(args) -> ret { body }` compiled twice: for the baseline
/// target and with AVX-512F, picked at run time. The default x86-64 target
/// has only SSE2, so the vectorised loops of these small ops (GELU, the
/// softmaxes, LayerNorm) run 4 lanes wide; AVX-512 runs them 16 wide.
///
/// Both versions give bit-identical results: Rust never fuses or
/// reassociates float operations, so a wider vector performs the same IEEE
/// operations in the same order (the reductions keep explicit lanes), and
/// the results stay independent of the machine's vector width as well as of
/// the thread count.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// `e^x` in f32 without libm, branch-free so loops over it vectorise.
/// Cephes `expf`: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6
/// polynomial, 2^n by building the exponent bits. Relative error ≈ 2e-7 for
/// x in [-87, 88]; inputs are clamped to that range (below it the result is
/// ~1e-38 instead of 0, which no softmax can tell apart).
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest with the 1.5·2²³ trick instead of `floor` (a libm
    // call on baseline x86-64) and read n from the sum's low mantissa bits
    // instead of a saturating `as i32`: both keep the loop vectorised.
    let t = x * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = t - 12_582_912.0;
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // `wrapping_add`, not `+`: debug and test builds check `+` for overflow,
    // and that panic branch stops every loop calling this from vectorising
    // (it ran scalar in the profiled train_step; n + 127 is in 0..=254 here
    // anyway, after the clamp).
    y * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

/// Sum with 16 independent lanes (vectorisable, fixed order).
#[inline(always)]
pub fn sum_lanes(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, x) in acc.iter_mut().zip(ch) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Maximum with 16 independent lanes; `-inf` for an empty slice.
#[inline(always)]
pub fn max_lanes(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, x) in acc.iter_mut().zip(ch) {
            *a = if *x > *a { *x } else { *a };
        }
    }
    acc.iter().chain(rest).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Replaces each `x` by `e^(x − shift)` and returns their sum (16 lanes).
#[inline(always)]
pub fn exp_inplace_sum(xs: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = xs.chunks_exact_mut(16);
    for ch in &mut chunks {
        for (a, x) in acc.iter_mut().zip(ch.iter_mut()) {
            *x = fast_exp(*x - shift);
            *a += *x;
        }
    }
    let mut rest = 0.0;
    for x in chunks.into_remainder() {
        *x = fast_exp(*x - shift);
        rest += *x;
    }
    acc.iter().sum::<f32>() + rest
}

/// Sum of `e^(x − shift)` (16 lanes), leaving `xs` untouched.
#[inline(always)]
pub fn exp_sum(xs: &[f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; 16];
    let chunks = xs.chunks_exact(16);
    let rest: f32 = chunks.remainder().iter().map(|&x| fast_exp(x - shift)).sum();
    for ch in chunks {
        for (a, x) in acc.iter_mut().zip(ch) {
            *a += fast_exp(*x - shift);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Dot product with 16 independent lanes.
#[inline(always)]
pub fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Splits one buffer into `N` mutable slices at disjoint ranges (any order).
/// Panics if ranges overlap or exceed the buffer: the ranges come from a
/// layout, so that is a bug in the layout, not in the input.
pub fn carve<const N: usize>(buf: &mut [f32], ranges: [Range<usize>; N]) -> [&mut [f32]; N] {
    let mut order: [usize; N] = std::array::from_fn(|i| i);
    order.sort_by_key(|&i| ranges[i].start);
    let mut out: [Option<&mut [f32]>; N] = std::array::from_fn(|_| None);
    let mut rest = buf;
    let mut base = 0;
    for &i in &order {
        let r = &ranges[i];
        assert!(r.start >= base, "carve: range {r:?} overlaps the previous one (ending at {base})");
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(r.start - base);
        let (mine, tail) = tail.split_at_mut(r.len());
        out[i] = Some(mine);
        rest = tail;
        base = r.end;
    }
    out.map(|s| s.unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Finite-difference helpers shared by the op tests.

    /// Deterministic normal data.
    pub fn randn(len: usize, seed: u64, scale: f64) -> Vec<f64> {
        let mut r = crate::model::rng::Rng::new(seed);
        (0..len).map(|_| r.normal() * scale).collect()
    }

    /// f32 copy.
    pub fn f32s(x: &[f64]) -> Vec<f32> {
        x.iter().map(|&v| v as f32).collect()
    }

    /// Central-difference gradient of the scalar `f` at `x` (f64, h = 1e-5:
    /// truncation error O(h²) ≈ 1e-10, far below the f32 errors tested).
    pub fn numeric_grad(x: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
        let mut x = x.to_vec();
        let h = 1e-5;
        (0..x.len())
            .map(|i| {
                let v = x[i];
                x[i] = v + h;
                let up = f(&x);
                x[i] = v - h;
                let down = f(&x);
                x[i] = v;
                (up - down) / (2.0 * h)
            })
            .collect()
    }

    /// Asserts `got` (f32 analytic) matches `want` (f64 numeric): the error
    /// relative to the largest gradient magnitude must be below `tol`.
    pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1e-6f64, |m, w| m.max(w.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = (*g as f64 - w).abs() / scale;
            assert!(
                err < tol,
                "{what}[{i}]: analytic {g} vs numeric {w} (relative error {err:.2e} ≥ {tol:.0e})"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (got, want) = (fast_exp(x) as f64, (x as f64).exp());
            assert!(((got - want) / want).abs() < 5e-7, "exp({x}) = {got}, want {want}");
            x += 0.137;
        }
        assert_eq!(fast_exp(0.0), 1.0);
        assert!(fast_exp(-1000.0) < 1e-37);
    }

    #[test]
    fn lane_reductions_match_sequential() {
        let xs: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        assert_eq!(sum_lanes(&xs), xs.iter().sum::<f32>());
        assert_eq!(max_lanes(&xs), 50.0);
        assert_eq!(dot_lanes(&xs, &xs), xs.iter().map(|x| x * x).sum::<f32>());
        assert_eq!(max_lanes(&[]), f32::NEG_INFINITY);
        let mut ys: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let want: f64 = ys.iter().map(|&y| (y as f64 - 1.0).exp()).sum();
        assert!((exp_sum(&ys, 1.0) as f64 - want).abs() < 1e-5 * want);
        assert!((exp_inplace_sum(&mut ys, 1.0) as f64 - want).abs() < 1e-5 * want);
        assert!((ys[10] as f64 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn carve_returns_requested_ranges_in_request_order() {
        let mut buf: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let [a, b] = carve(&mut buf, [6..8, 1..3]);
        assert_eq!((&a[..], &b[..]), (&[6.0, 7.0][..], &[1.0, 2.0][..]));
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn carve_rejects_overlap() {
        let mut buf = vec![0.0f32; 10];
        let _ = carve(&mut buf, [0..5, 4..6]);
    }
}
