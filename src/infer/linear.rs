//! Linear layers for decoding: `out[n, 0..oc] (+)= bias + inp[n] · wᵀ` with
//! `w` in PyTorch `Linear` layout `[OC, C]` (kiln's parameter layout).
//!
//! Decoding one token is a matrix–vector product per layer, so its speed is
//! the speed at which the weights stream through the core: every weight is
//! used once per token. Two things follow:
//! - the weights may be kept as bf16 (converted once, when the decoder is
//!   built), halving the bytes per token; activations and accumulation stay
//!   f32, so only the weights are rounded;
//! - a few rows of input (a batch of sequences, or a short prompt chunk) are
//!   multiplied against each weight row while it is in registers, so the
//!   weights stream once per call, not once per input row.
//!
//! Long prompt chunks (≥ [`GEMM_ROWS`] rows) are compute-bound instead and go
//! through the training backend's GEMM on the f32 weights.

use crate::backend::cpu::bf16::{from_bf16_bits, to_bf16_bits};
use crate::backend::{Backend, CpuBackend, MatRef};
use rayon::prelude::*;

/// From this many input rows on, a call uses the backend GEMM: the weights
/// are then reused often enough that packing them pays off.
pub const GEMM_ROWS: usize = 16;
/// Output rows per parallel task: enough work per task to amortise rayon's
/// overhead, few enough that the LM head splits into hundreds of tasks.
const ROWS_PER_TASK: usize = 64;
/// Input rows multiplied per pass over a weight row (registers: 4 × 4 accumulators).
const GROUP: usize = 4;

/// One weight matrix `[rows, cols]`: the f32 master (borrowed from the
/// model) and, in bf16 mode, a rounded copy that the matrix–vector path reads.
#[derive(Debug)]
pub struct Weight<'a> {
    f32: &'a [f32],
    bf16: Option<Vec<u16>>,
    /// Whether the bf16 copy is in tile order (see [`Weight::new`]).
    interleaved: bool,
    rows: usize,
    cols: usize,
}

impl<'a> Weight<'a> {
    /// Wraps `w` (`[rows, cols]` row-major); with `bf16` also keeps a
    /// round-to-nearest-even bf16 copy.
    ///
    /// When `cols` is a multiple of 16 the copy is in tile order: each group
    /// of 4 rows holds, block by block, the 16 values of row 0, then of rows
    /// 1, 2 and 3 (`[rows / 4][cols / 16][4][16]`); the last `rows % 4` rows
    /// follow in row order. A 4-row tile then reads one contiguous stream
    /// instead of four rows `cols` apart, which on the AMD EPYC of the
    /// generation bench lifted bf16 decoding from about 19 to 26 GB/s of
    /// weights (BENCHMARKS.md).
    pub fn new(w: &'a [f32], rows: usize, cols: usize, bf16: bool) -> Self {
        assert_eq!(w.len(), rows * cols, "Weight::new: {} values for [{rows}, {cols}]", w.len());
        let interleaved = bf16 && cols.is_multiple_of(16);
        let bf16 = bf16.then(|| {
            let mut h = vec![0u16; w.len()];
            if interleaved {
                let group = 4 * cols;
                let full = rows / 4 * group;
                h[..full].par_chunks_mut(group).zip(w[..full].par_chunks(group)).for_each(|(h, w)| {
                    for (b, block) in h.chunks_exact_mut(64).enumerate() {
                        for (r, out) in block.chunks_exact_mut(16).enumerate() {
                            let src = &w[r * cols + b * 16..][..16];
                            out.iter_mut().zip(src).for_each(|(h, &x)| *h = to_bf16_bits(x));
                        }
                    }
                });
                h[full..].iter_mut().zip(&w[full..]).for_each(|(h, &x)| *h = to_bf16_bits(x));
            } else {
                h.par_chunks_mut(1 << 16)
                    .zip(w.par_chunks(1 << 16))
                    .for_each(|(h, w)| h.iter_mut().zip(w).for_each(|(h, &x)| *h = to_bf16_bits(x)));
            }
            h
        });
        Weight {
            f32: w,
            bf16,
            interleaved,
            rows,
            cols,
        }
    }

    /// Where row `r` starts in the bf16 copy, and how far apart its
    /// consecutive 16-value blocks are.
    fn bf16_row(&self, r: usize) -> (usize, usize) {
        let full = self.rows / 4;
        if self.interleaved && r / 4 < full {
            ((r / 4) * 4 * self.cols + (r % 4) * 16, 64)
        } else {
            (r * self.cols, 16)
        }
    }

    /// Number of output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Computes `out[i, 0..oc] = (accumulate ? out[i, 0..oc] : 0) + bias + inp[i] · w[0..oc]ᵀ`
/// for the `n` rows of `inp` (`[n, C]`); `out` is `[n, ldo]`.
///
/// `simd` selects the AVX-512 matrix–vector kernel (the caller has checked
/// the CPU has it); `be` does the long-chunk GEMM in its own precision.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    be: &mut CpuBackend,
    simd: bool,
    out: &mut [f32],
    ldo: usize,
    inp: &[f32],
    n: usize,
    w: &Weight<'_>,
    bias: Option<&[f32]>,
    accumulate: bool,
    oc: usize,
) {
    let c = w.cols;
    assert!(oc <= w.rows && ldo >= oc && inp.len() >= n * c, "linear::forward shapes");
    assert!(n == 0 || out.len() >= (n - 1) * ldo + oc, "linear::forward: out too small");
    for row in out.chunks_mut(ldo).take(n) {
        let row = &mut row[..oc];
        match (accumulate, bias) {
            (true, Some(b)) => row.iter_mut().zip(b).for_each(|(o, b)| *o += b),
            (true, None) => {}
            (false, Some(b)) => row.copy_from_slice(&b[..oc]),
            (false, None) => row.fill(0.0),
        }
    }
    if n >= GEMM_ROWS {
        be.matmul(n, oc, c, out, ldo, true, MatRef::row_major(inp, c), MatRef::transposed(w.f32, c));
        return;
    }
    let ptr = SendPtr(out.as_mut_ptr());
    (0..oc.div_ceil(ROWS_PER_TASK)).into_par_iter().for_each(|task| {
        let rows = task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(oc);
        for g0 in (0..n).step_by(GROUP) {
            let g = GROUP.min(n - g0);
            let x = &inp[g0 * c..(g0 + g) * c];
            // SAFETY: this task alone writes columns `rows` of rows g0..g0+g
            // of `out`, all inside the asserted `out` length.
            let o = unsafe { ptr.offset(g0 * ldo) };
            unsafe { accumulate_rows(simd, w, rows.clone(), x, g, o, ldo) };
        }
    });
}

/// Pointer wrapper so tasks can write disjoint columns of `out`.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges (see `forward`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer `off` elements in; a method, so closures capture the
    /// whole (Send) wrapper rather than its raw-pointer field.
    ///
    /// # Safety
    /// `off` must stay inside the allocation.
    unsafe fn offset(self, off: usize) -> *mut f32 {
        unsafe { self.0.add(off) }
    }
}

/// `out[i, r] += x[i] · w[r]` for `i < g`, `r ∈ rows`.
///
/// # Safety
/// `out` must address `g` rows of stride `ldo` covering columns `rows`.
unsafe fn accumulate_rows(simd: bool, w: &Weight<'_>, rows: std::ops::Range<usize>, x: &[f32], g: usize, out: *mut f32, ldo: usize) {
    let c = w.cols;
    #[cfg(target_arch = "x86_64")]
    if simd && c.is_multiple_of(16) {
        let mut r = rows.start;
        while r < rows.end {
            // An interleaved 4-row tile must be one whole group of the layout.
            let take = if rows.end - r >= 4 && (!w.interleaved || r.is_multiple_of(4)) {
                4
            } else {
                1
            };
            let mut acc = [[0.0f32; GROUP]; 4];
            // SAFETY: rows r..r+take of w and g rows of x exist; c % 16 == 0;
            // `bf16_row` gives the layout's offsets and strides.
            unsafe {
                match &w.bf16 {
                    Some(h) => {
                        let (start, block) = w.bf16_row(r);
                        let row_step = if block == 64 { 16 } else { c };
                        let tile = avx512::Tile {
                            rows: take,
                            row_step,
                            block,
                        };
                        avx512::tile_bf16(h.as_ptr().add(start), x.as_ptr(), c, tile, g, &mut acc)
                    }
                    None => {
                        let tile = avx512::Tile {
                            rows: take,
                            row_step: c,
                            block: 16,
                        };
                        avx512::tile_f32(w.f32.as_ptr().add(r * c), x.as_ptr(), c, tile, g, &mut acc)
                    }
                }
                for (k, acc) in acc.iter().enumerate().take(take) {
                    for (i, a) in acc.iter().enumerate().take(g) {
                        *out.add(i * ldo + r + k) += a;
                    }
                }
            }
            r += take;
        }
        return;
    }
    let _ = simd;
    for r in rows {
        for i in 0..g {
            let xi = &x[i * c..(i + 1) * c];
            let d = match &w.bf16 {
                Some(h) => {
                    let (start, block) = w.bf16_row(r);
                    if block == 16 {
                        dot_bf16(&h[start..start + c], xi)
                    } else {
                        (0..c / 16).map(|b| dot_bf16(&h[start + b * 64..][..16], &xi[b * 16..][..16])).sum()
                    }
                }
                None => crate::model::ops::dot_lanes(&w.f32[r * c..(r + 1) * c], xi),
            };
            // SAFETY: row i < g, column r inside `rows`.
            unsafe { *out.add(i * ldo + r) += d };
        }
    }
}

/// Dot product of bf16 weights with f32 inputs (portable path).
fn dot_bf16(w: &[u16], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (cw, cx) = (w.chunks_exact(16), x.chunks_exact(16));
    let rest: f32 = cw.remainder().iter().zip(cx.remainder()).map(|(&w, x)| from_bf16_bits(w) * x).sum();
    for (w, x) in cw.zip(cx) {
        for i in 0..16 {
            acc[i] += from_bf16_bits(w[i]) * x[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Whether this CPU runs the AVX-512 kernels.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! Register tiles of up to 4 weight rows × up to 4 input rows: 16 zmm
    //! accumulators, each weight load reused by every input row and each
    //! input load by every weight row.
    use super::GROUP;
    use std::arch::x86_64::*;

    /// 16-value blocks of a weight row fetched ahead of use.
    const PREFETCH: usize = 64;

    /// Where a tile's weights are: `rows` rows (1 or 4), row `r` starting
    /// `r * row_step` values in, its 16-value blocks `block` values apart.
    #[derive(Clone, Copy)]
    pub struct Tile {
        /// Weight rows in the tile: 1 or 4.
        pub rows: usize,
        /// Values from one row's start to the next's.
        pub row_step: usize,
        /// Values from one 16-value block of a row to its next.
        pub block: usize,
    }

    /// Generates a tile function for one weight type; `$load` turns a
    /// pointer to 16 weights into 16 f32 lanes.
    macro_rules! tile {
        ($name:ident, $ty:ty, $load:expr) => {
            /// `acc[k][i] = w[k] · x[i]` for `k < t.rows ≤ 4`, `i < g ≤ 4`.
            ///
            /// # Safety
            /// AVX-512F present; `w` addresses the tile `t` of rows of `c`
            /// values, `x` `g` rows of `c`; `c % 16 == 0`.
            #[target_feature(enable = "avx512f")]
            pub unsafe fn $name(w: *const $ty, x: *const f32, c: usize, t: Tile, g: usize, acc: &mut [[f32; GROUP]; 4]) {
                match (t.rows, g) {
                    (4, 1) => unsafe { body::<4, 1>(w, x, c, t, acc) },
                    (4, 2) => unsafe { body::<4, 2>(w, x, c, t, acc) },
                    (4, 3) => unsafe { body::<4, 3>(w, x, c, t, acc) },
                    (4, _) => unsafe { body::<4, 4>(w, x, c, t, acc) },
                    (_, 1) => unsafe { body::<1, 1>(w, x, c, t, acc) },
                    (_, 2) => unsafe { body::<1, 2>(w, x, c, t, acc) },
                    (_, 3) => unsafe { body::<1, 3>(w, x, c, t, acc) },
                    (_, _) => unsafe { body::<1, 4>(w, x, c, t, acc) },
                }

                #[target_feature(enable = "avx512f")]
                #[inline]
                unsafe fn body<const R: usize, const G: usize>(
                    w: *const $ty,
                    x: *const f32,
                    c: usize,
                    t: Tile,
                    acc: &mut [[f32; GROUP]; 4],
                ) {
                    let load = $load;
                    let mut a = [[_mm512_setzero_ps(); G]; R];
                    let mut k = 0;
                    let mut at = 0;
                    while k < c {
                        let mut xs = [_mm512_setzero_ps(); G];
                        for (i, xv) in xs.iter_mut().enumerate() {
                            // SAFETY: k + 16 ≤ c inside row i < g.
                            *xv = unsafe { _mm512_loadu_ps(x.add(i * c + k)) };
                        }
                        for (r, ar) in a.iter_mut().enumerate() {
                            // Ask for the weights PREFETCH elements ahead: with one
                            // input row this loop is bound by memory latency, not
                            // by its FMAs. A prefetch past the row's end only
                            // warms the next row; it never faults.
                            _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(r * t.row_step + at + PREFETCH * t.block) as *const i8);
                            // SAFETY: row r < rows, block k / 16 of it.
                            let wv = unsafe { load(w.add(r * t.row_step + at)) };
                            for (ai, xv) in ar.iter_mut().zip(&xs) {
                                *ai = _mm512_fmadd_ps(wv, *xv, *ai);
                            }
                        }
                        k += 16;
                        at += t.block;
                    }
                    for r in 0..R {
                        for i in 0..G {
                            acc[r][i] = _mm512_reduce_add_ps(a[r][i]);
                        }
                    }
                }
            }
        };
    }

    tile!(tile_f32, f32, |p: *const f32| unsafe { _mm512_loadu_ps(p) });
    // bf16 → f32 is a 16-bit left shift of each value into an f32 lane.
    tile!(tile_bf16, u16, |p: *const u16| unsafe {
        _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i)),
            16,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Precision;
    use crate::model::rng::Rng;

    fn randn(n: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| r.normal() as f32).collect()
    }

    /// Reference in f64 on (optionally bf16-rounded) weights.
    fn reference(inp: &[f32], w: &[f32], n: usize, c: usize, oc: usize, round: bool) -> Vec<f64> {
        let q = |x: f32| if round { from_bf16_bits(to_bf16_bits(x)) } else { x };
        let mut out = vec![0.0; n * oc];
        for i in 0..n {
            for r in 0..oc {
                out[i * oc + r] = (0..c).map(|k| inp[i * c + k] as f64 * q(w[r * c + k]) as f64).sum();
            }
        }
        out
    }

    #[test]
    fn every_path_matches_the_reference() {
        // c = 48 (SIMD, tile-ordered bf16; 138 rows end in two rows outside the
        // 4-row groups) and c = 20 (scalar tail); oc = 135 leaves a ragged last
        // task and a ragged 4-row tile; n covers 1..GEMM_ROWS and beyond.
        for &(c, oc, rows) in &[(48usize, 135usize, 140usize), (48, 138, 138), (20, 7, 9)] {
            let w = randn(rows * c, 1);
            let bias = randn(oc, 2);
            for &n in &[1usize, 3, 5, GEMM_ROWS + 1] {
                let inp = randn(n * c, 3 + n as u64);
                for &bf16 in &[false, true] {
                    for &simd in &[false, has_avx512()] {
                        let wt = Weight::new(&w, rows, c, bf16);
                        let mut be = CpuBackend::new(if bf16 { Precision::Bf16 } else { Precision::F32 });
                        let ldo = oc + 3;
                        let mut out = vec![1.0f32; n * ldo];
                        forward(&mut be, simd, &mut out, ldo, &inp, n, &wt, Some(&bias), true, oc);
                        // The GEMM path rounds the inputs to bf16 as well.
                        let tol = if !bf16 {
                            1e-4
                        } else if n >= GEMM_ROWS {
                            0.1
                        } else {
                            1e-3
                        };
                        let want = reference(&inp, &w, n, c, oc, bf16);
                        for i in 0..n {
                            for r in 0..oc {
                                let (got, want) = (out[i * ldo + r] as f64, 1.0 + bias[r] as f64 + want[i * oc + r]);
                                assert!(
                                    (got - want).abs() < tol,
                                    "c {c} n {n} bf16 {bf16} simd {simd} [{i},{r}]: {got} vs {want}"
                                );
                            }
                            assert_eq!(out[i * ldo + oc], 1.0, "padding column untouched");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn overwrite_ignores_old_contents() {
        let w = randn(32 * 16, 5);
        let inp = randn(16, 6);
        let wt = Weight::new(&w, 32, 16, false);
        let mut be = CpuBackend::new(Precision::F32);
        let mut out = vec![f32::NAN; 32];
        forward(&mut be, has_avx512(), &mut out, 32, &inp, 1, &wt, None, false, 32);
        let want = reference(&inp, &w, 1, 16, 32, false);
        for (g, w) in out.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-4, "{g} vs {w}");
        }
    }
}
